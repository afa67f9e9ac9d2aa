package scomsim

import (
	"fmt"
	"slices"

	"github.com/autopatch/autopatch/connectors/scom"
	"github.com/autopatch/autopatch/connectors/winrm/wsmansim"
)

// pack is the management pack as the doctor template sees it. The zero value
// is the pack autopatch ships, imported, with every rule enabled: the state
// the rest of the simulator assumes. Changing it affects what the doctor
// reports only; the simulated rules keep raising alerts.
type pack struct {
	missing  bool
	version  string          // "" means scom.ManagementPackVersion
	disabled map[string]bool // rule ID -> disabled
}

// RemoveManagementPack makes the management group lack autopatch's pack, as
// before an administrator imports it.
func (g *Group) RemoveManagementPack() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pack.missing = true
}

// SetManagementPackVersion makes the imported pack report version, as an
// older import would.
func (g *Group) SetManagementPackVersion(version string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pack.version = version
}

// SetRuleEnabled sets a rule's Enabled value (false as in the pack's XML
// Enabled="false"). Unknown rule IDs are an error.
func (g *Group) SetRuleEnabled(rule string, enabled bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !slices.Contains(scom.AlertRules(), rule) {
		return fmt.Errorf("scomsim: set rule enabled: no rule %q in %s", rule, scom.ManagementPackName)
	}
	if g.pack.disabled == nil {
		g.pack.disabled = map[string]bool{}
	}
	g.pack.disabled[rule] = !enabled
	return nil
}

type doctorRequest struct {
	ManagementPack string `json:"management_pack"`
	Class          string `json:"class"`
	EventSource    string `json:"event_source"`
}

// doctor plays scom.DoctorTemplate: the module loads and the connection
// succeeds (a wrong management server is refused by dispatch). The group
// holds one pack, autopatch's, and one class, Windows Computer; any other
// name is not found, as Get-SCOMManagementPack -Name and Get-SCOMClass -Name
// return nothing for a name that does not exist. The "autopatch" event source
// is registered in the Application log unless Options.NoEventSource or
// SetEventSource(false) says otherwise (the state raise_alerts checks);
// EventLog.LogNameFromSourceName answers "" for a source that is not
// registered, and so for any other name.
func (g *Group) doctor(req doctorRequest) (any, *wsmansim.PSError) {
	mp := map[string]any{"found": false, "version": ""}
	rules := []map[string]any{}
	if !g.pack.missing && req.ManagementPack == scom.ManagementPackName {
		version := g.pack.version
		if version == "" {
			version = scom.ManagementPackVersion
		}
		mp = map[string]any{"found": true, "version": version}
		for _, id := range scom.AlertRules() {
			enabled := "true"
			if g.pack.disabled[id] {
				enabled = "false"
			}
			rules = append(rules, map[string]any{"name": id, "enabled": enabled})
		}
	}
	sourceLog := ""
	if req.EventSource == scom.EventSource && !g.noSource {
		sourceLog = scom.EventLog
	}
	return map[string]any{
		"event_source":    map[string]any{"log": sourceLog, "error": ""},
		"module":          map[string]any{"ok": true, "error": ""},
		"connection":      map[string]any{"ok": true, "error": ""},
		"management_pack": mp,
		"rules":           rules,
		"class":           map[string]any{"found": req.Class == scom.WindowsComputerClass},
	}, nil
}
