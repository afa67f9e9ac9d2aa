package sccmsim

import "github.com/autopatch/autopatch/connectors/winrm/wsmansim"

type doctorRequest struct {
	Collections  []string `json:"collections"`
	UpdateGroups []string `json:"update_groups"`
}

// doctor plays sccm.DoctorTemplate. The simulated site server always has the
// console installed and serves its one site, so the module and site steps
// succeed (a wrong site code is refused by dispatch, as the prelude's
// New-PSDrive would be). Every simulated collection is a device collection.
func (s *Site) doctor(req doctorRequest) (any, *wsmansim.PSError) {
	collections := []map[string]any{}
	for _, name := range req.Collections {
		c, ok := s.colByName[name]
		if !ok {
			collections = append(collections, map[string]any{
				"name": name, "found": false, "collection_type": 0, "service_windows": 0,
			})
			continue
		}
		collections = append(collections, map[string]any{
			"name": name, "found": true, "collection_type": 2, "service_windows": c.windows,
		})
	}
	groups := []map[string]any{}
	for _, name := range req.UpdateGroups {
		_, ok := s.groups[name]
		groups = append(groups, map[string]any{"name": name, "found": ok})
	}
	return map[string]any{
		"module":        map[string]any{"ok": true, "error": ""},
		"site":          map[string]any{"ok": true, "code": s.siteCode, "error": ""},
		"collections":   collections,
		"update_groups": groups,
	}, nil
}
