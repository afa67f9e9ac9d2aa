package safety

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/autopatch/autopatch/internal/yamlnode"
)

// ParseAssignments reads an assignments file, the devices of an estate as
// `autopatch plan --check` takes them:
//
//	devices:
//	  - {name: SQL01, service: Payroll, tier: backend, schedule: DB-SAT-0200}
//
// known reports whether a schedule exists (nil: any). Every problem is
// reported, one *FileError each, joined: unknown keys, missing fields, an
// invalid tier, an unknown schedule, a device named twice (names compare
// case-insensitively, as SCCM's do).
func ParseAssignments(data []byte, known func(schedule string) bool) ([]Assignment, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("safety: parse assignments: the file is empty")
		}
		return nil, fmt.Errorf("safety: parse assignments: %w", err)
	}
	var errs []error
	fail := func(index int, name, field string, n *yaml.Node, format string, args ...any) {
		line := 0
		if n != nil {
			line = n.Line
		}
		errs = append(errs, &FileError{List: "devices", Index: index, Name: name, Field: field, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	root := yamlnode.Deref(&doc)
	if root == nil || root.Kind != yaml.MappingNode {
		return nil, errors.New("safety: invalid assignments file: want a mapping with the key devices")
	}
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], yamlnode.Deref(root.Content[i+1])
		if k.Value != "devices" {
			fail(-1, "", k.Value, k, "unknown key (want devices)")
			continue
		}
		list = v
	}
	var out []Assignment
	seen := map[string]int{}
	switch {
	case list == nil:
		fail(-1, "", "devices", root, "required")
	case list.Kind == yaml.ScalarNode && list.Tag == "!!null":
	case list.Kind != yaml.SequenceNode:
		fail(-1, "", "devices", list, "want a list")
	default:
		for i, item := range list.Content {
			item = yamlnode.Deref(item)
			if item == nil || item.Kind != yaml.MappingNode {
				fail(i, "", "", item, "want a mapping with name, service, tier and schedule")
				continue
			}
			fields := map[string]*yaml.Node{}
			for j := 0; j+1 < len(item.Content); j += 2 {
				k, v := item.Content[j], yamlnode.Deref(item.Content[j+1])
				switch k.Value {
				case "name", "service", "tier", "schedule":
					fields[k.Value] = v
				default:
					fail(i, "", k.Value, k, "unknown key (want name, service, tier, schedule)")
				}
			}
			name := ""
			get := func(field string) string {
				v, ok := fields[field]
				switch {
				case !ok:
					fail(i, name, field, item, "required")
				case v.Kind != yaml.ScalarNode || strings.TrimSpace(v.Value) == "":
					fail(i, name, field, v, "want a non-empty string")
				default:
					return strings.TrimSpace(v.Value)
				}
				return ""
			}
			name = get("name")
			a := Assignment{Device: name, Service: get("service"), Tier: Tier(get("tier")), Schedule: get("schedule")}
			if a.Tier != "" && a.Tier.rank() < 0 {
				fail(i, name, "tier", fields["tier"], "want backend, middle or frontend, got %q", a.Tier)
			}
			if a.Schedule != "" && known != nil && !known(a.Schedule) {
				fail(i, name, "schedule", fields["schedule"], "no schedule %q in the schedules file", a.Schedule)
			}
			if name != "" {
				if first, dup := seen[strings.ToLower(name)]; dup {
					fail(i, name, "name", fields["name"], "devices[%d] has the same name", first)
				} else {
					seen[strings.ToLower(name)] = i
				}
			}
			out = append(out, a)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("safety: invalid assignments file:\n%w", errors.Join(errs...))
	}
	return out, nil
}

// InventoryOf counts assignments into an inventory over tl.
func InventoryOf(tl *Timeline, rules *Services, assignments []Assignment) (*Inventory, error) {
	inv := NewInventory(tl, rules)
	// Services have a few devices each; a guess that is too high costs a
	// little memory, one too low some growth.
	inv.Reserve(len(assignments) / 4)
	for _, a := range assignments {
		if err := inv.Add(a.Service, a.Tier, a.Schedule, 1); err != nil {
			return nil, err
		}
	}
	return inv, nil
}
