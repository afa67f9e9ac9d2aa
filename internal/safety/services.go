package safety

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"

	"go.yaml.in/yaml/v3"

	"github.com/autopatch/autopatch/internal/yamlnode"
)

// ServiceRule is one entry of the services file: a service whose redundancy
// groups may have at most MaxUnavailable members inside windows at once.
type ServiceRule struct {
	Name           string
	MaxUnavailable int
}

// Services is a parsed services file. The zero value and nil have no rules:
// every group gets the default, n−1.
type Services struct {
	rules []ServiceRule
	byKey map[string]int
}

// ServiceKey is how service names are compared: without surrounding blanks
// and case-insensitively, so "Payroll" and "payroll " from two requests are
// one service and a typo of case never splits a redundancy group in two.
func ServiceKey(name string) string {
	return strings.ToLower(strings.TrimSpace(name))
}

// MaxUnavailable returns the service's max_unavailable from the file; ok is
// false when the file does not name the service.
func (s *Services) MaxUnavailable(service string) (n int, ok bool) {
	if s == nil {
		return 0, false
	}
	i, ok := s.byKey[ServiceKey(service)]
	if !ok {
		return 0, false
	}
	return s.rules[i].MaxUnavailable, true
}

// Rules returns the entries in file order. Callers must not modify it.
func (s *Services) Rules() []ServiceRule {
	if s == nil {
		return nil
	}
	return s.rules
}

// FileError is one problem in a services or assignments file; its message
// names the entry, e.g. `services[1] "Payroll": max_unavailable: want a
// whole number of at least 1, got "0" (line 5)`.
type FileError = yamlnode.FieldError

// ParseServices reads and validates a services file:
//
//	services:
//	  - name: Payroll
//	    max_unavailable: 1
//
// Every problem is reported, one *FileError each, joined: unknown keys
// (a misspelt setting must not silently fall back to the default), a
// missing or duplicate name (names compare as ServiceKey does), and a
// max_unavailable that is not a whole number of at least 1.
func ParseServices(data []byte) (*Services, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("safety: parse services: the file is empty (write `services: []` for none)")
		}
		return nil, fmt.Errorf("safety: parse services: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("safety: parse services: want one YAML document, found more")
	}
	var errs []error
	fail := func(index int, name, field string, n *yaml.Node, format string, args ...any) {
		line := 0
		if n != nil {
			line = n.Line
		}
		errs = append(errs, &FileError{List: "services", Index: index, Name: name, Field: field, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	out := &Services{byKey: map[string]int{}}
	root := yamlnode.Deref(&doc)
	if root == nil || root.Kind != yaml.MappingNode {
		return nil, errors.New("safety: invalid services file: want a mapping with the key services")
	}
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], yamlnode.Deref(root.Content[i+1])
		if k.Value != "services" {
			fail(-1, "", k.Value, k, "unknown key (want services)")
			continue
		}
		list = v
	}
	switch {
	case list == nil:
		fail(-1, "", "services", root, "required")
	case list != nil && list.Kind == yaml.ScalarNode && list.Tag == "!!null":
	case list != nil && list.Kind != yaml.SequenceNode:
		fail(-1, "", "services", list, "want a list")
	case list != nil:
		for i, item := range list.Content {
			item = yamlnode.Deref(item)
			if item == nil || item.Kind != yaml.MappingNode {
				fail(i, "", "", item, "want a mapping with name and max_unavailable")
				continue
			}
			var rule ServiceRule
			var nameN, maxN *yaml.Node
			for j := 0; j+1 < len(item.Content); j += 2 {
				k, v := item.Content[j], yamlnode.Deref(item.Content[j+1])
				switch k.Value {
				case "name":
					nameN = v
				case "max_unavailable":
					maxN = v
				default:
					fail(i, "", k.Value, k, "unknown key (want name, max_unavailable)")
				}
			}
			if nameN != nil && nameN.Kind == yaml.ScalarNode {
				rule.Name = strings.TrimSpace(nameN.Value)
			}
			switch {
			case nameN == nil:
				fail(i, "", "name", item, "required")
			case nameN.Kind != yaml.ScalarNode || rule.Name == "":
				fail(i, "", "name", nameN, "want a service name")
			}
			if first, dup := out.byKey[ServiceKey(rule.Name)]; dup && rule.Name != "" {
				fail(i, rule.Name, "name", nameN, "services[%d] names the same service", first)
			}
			switch {
			case maxN == nil:
				fail(i, rule.Name, "max_unavailable", item, "required")
			default:
				n, err := strconv.Atoi(maxN.Value)
				if maxN.Kind != yaml.ScalarNode || maxN.Tag != "!!int" || err != nil || n < 1 {
					fail(i, rule.Name, "max_unavailable", maxN, "want a whole number of at least 1, got %q", maxN.Value)
				}
				rule.MaxUnavailable = n
			}
			if _, dup := out.byKey[ServiceKey(rule.Name)]; !dup && rule.Name != "" {
				out.byKey[ServiceKey(rule.Name)] = len(out.rules)
			}
			out.rules = append(out.rules, rule)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("safety: invalid services file:\n%w", errors.Join(errs...))
	}
	return out, nil
}

// CurrentServices holds the services file in force, swapped whole on reload
// so a check never sees half a file. The zero value holds no rules.
type CurrentServices struct {
	p atomic.Pointer[Services]
}

// Get returns the rules in force (nil: none, every group gets n−1).
func (c *CurrentServices) Get() *Services {
	if c == nil {
		return nil
	}
	return c.p.Load()
}

// Set puts s in force.
func (c *CurrentServices) Set(s *Services) { c.p.Store(s) }
