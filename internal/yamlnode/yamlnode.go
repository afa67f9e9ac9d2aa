// Package yamlnode holds what autopatch's strictly checked YAML files (the
// schedules, services, assignments and tenants files) share: the error that
// names an entry, its field and its line, and the walk through aliases
// to a value. Each file's parser reports every problem at once with it.
package yamlnode

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// FieldError is one problem in a file; its message names the list entry
// and the field, e.g. `schedules[2] "DB-SAT-0200": timezone: unknown time
// zone "Europe/Lundon" (line 14)`.
type FieldError struct {
	// List is the file's list: schedules, services, devices or tenants.
	List string
	// Index is the entry's position in the list, from 0; -1 for the file
	// as a whole.
	Index int
	// Name is the entry's name when it has one.
	Name string
	// Field is the path inside the entry, e.g. "recurrence.nth" or
	// "sccm[0].password_env".
	Field string
	// Line is 1-based; 0 when unknown.
	Line int
	// Msg says what is wrong.
	Msg string
}

// Error implements error.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Index >= 0 {
		fmt.Fprintf(&b, "%s[%d]", e.List, e.Index)
		if e.Name != "" {
			fmt.Fprintf(&b, " %q", e.Name)
		}
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	return b.String()
}

// Line is n's line, 0 for no node.
func Line(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	return n.Line
}

// Deref follows aliases and the document wrapper to the node that holds
// the value; nil for an empty document.
func Deref(n *yaml.Node) *yaml.Node {
	for n != nil && (n.Kind == yaml.AliasNode || n.Kind == yaml.DocumentNode) {
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		} else if len(n.Content) > 0 {
			n = n.Content[0]
		} else {
			return nil
		}
	}
	return n
}

// IsNull reports a missing or empty (`key:` or `key: ~`) value.
func IsNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}
