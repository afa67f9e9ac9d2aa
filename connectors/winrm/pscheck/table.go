// Package pscheck checks constant PowerShell templates against a table of the
// documented signatures of the commands they call: cmdlet names, parameter
// sets, parameter names and aliases, switch or valued, and the accepted enum
// values. The table is data (YAML), one file per connector, each row citing
// the documentation page and version it was transcribed from; the PowerShell
// 5.1 built-ins the templates use ship with this package (builtins.yaml) and
// are part of every table.
//
// A connector's tests run every template through Table.Check, and its
// simulator refuses a script that the table refuses, with the text
// PowerShell itself would print, so "works against the simulator" implies
// "calls only what the vendor documents".
//
// Parameter names must be written in full (or as a documented alias).
// PowerShell also accepts any unambiguous prefix (-Coll for -CollectionName),
// but a prefix that is unambiguous today can become ambiguous when a module
// version adds a parameter, so the table refuses prefixes: a stricter check
// than PowerShell's, never a looser one.
package pscheck

import (
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

//go:embed builtins.yaml
var builtinsYAML []byte

// Table holds the documented signatures of the commands templates may call.
// It is read-only after Load and safe for concurrent use.
type Table struct {
	cmdlets map[string]*Cmdlet // by lower-case name
	common  map[string]*Parameter
	// own are the cmdlets of the connector files (not the built-ins), in file order.
	own []*Cmdlet
}

// Cmdlet is one documented command.
type Cmdlet struct {
	// Name is the command name as documented.
	Name string `yaml:"name"`
	// Source is the documentation page (URL) and the version it documents.
	Source string `yaml:"source"`
	// ShouldProcess is true when the cmdlet takes -WhatIf and -Confirm.
	ShouldProcess bool `yaml:"should_process"`
	// Parameters are the cmdlet's parameters (common parameters excluded).
	Parameters []*Parameter `yaml:"parameters"`
	// Sets are the documented parameter sets. Empty means one set that holds
	// every parameter.
	Sets []*ParameterSet `yaml:"parameter_sets"`

	byName map[string]*Parameter // lower-case name or alias
}

// Parameter is one documented parameter.
type Parameter struct {
	Name    string   `yaml:"name"`
	Aliases []string `yaml:"aliases"`
	// Switch parameters take no value (-Force, or -Force:$false).
	Switch bool `yaml:"switch"`
	// Type is the documented .NET type, used in error texts.
	Type string `yaml:"type"`
	// Values are the accepted values, when the docs list them (ValidateSet
	// or an enum type). Empty means any value.
	Values []string `yaml:"values"`
	// Enum is true when Values come from an enum type rather than a
	// ValidateSet attribute: PowerShell words the refusal differently.
	Enum bool `yaml:"enum"`
}

// ParameterSet is one documented parameter set.
type ParameterSet struct {
	Name string `yaml:"name"`
	// Parameters are the names of the set's parameters.
	Parameters []string `yaml:"parameters"`
	// Positional are the set's positional parameters in position order.
	Positional []string `yaml:"positional"`
}

type file struct {
	Common  []*Parameter `yaml:"common_parameters"`
	Cmdlets []*Cmdlet    `yaml:"cmdlets"`
}

// Load builds a table from the built-ins and the given YAML documents (a
// connector's cmdlets.yaml). A cmdlet defined twice, a set that names an
// undefined parameter or a row without a source is an error: the table is
// only as good as its citations.
func Load(docs ...[]byte) (*Table, error) {
	t := &Table{cmdlets: map[string]*Cmdlet{}, common: map[string]*Parameter{}}
	if err := t.add(builtinsYAML, false); err != nil {
		return nil, fmt.Errorf("pscheck: builtins.yaml: %w", err)
	}
	for i, d := range docs {
		if err := t.add(d, true); err != nil {
			return nil, fmt.Errorf("pscheck: document %d: %w", i+1, err)
		}
	}
	return t, nil
}

// MustLoad is Load for embedded tables, which tests keep valid.
func MustLoad(docs ...[]byte) *Table {
	t, err := Load(docs...)
	if err != nil {
		panic(err)
	}
	return t
}

func (t *Table) add(doc []byte, own bool) error {
	var f file
	dec := yaml.NewDecoder(strings.NewReader(string(doc)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	for _, p := range f.Common {
		t.common[strings.ToLower(p.Name)] = p
		for _, a := range p.Aliases {
			t.common[strings.ToLower(a)] = p
		}
	}
	for _, c := range f.Cmdlets {
		if err := c.index(); err != nil {
			return err
		}
		key := strings.ToLower(c.Name)
		if _, dup := t.cmdlets[key]; dup {
			return fmt.Errorf("cmdlet %s is defined twice", c.Name)
		}
		t.cmdlets[key] = c
		if own {
			t.own = append(t.own, c)
		}
	}
	return nil
}

func (c *Cmdlet) index() error {
	if c.Name == "" {
		return errors.New("a cmdlet without a name")
	}
	if !strings.HasPrefix(c.Source, "https://") {
		return fmt.Errorf("cmdlet %s: source must cite the documentation page (https://...)", c.Name)
	}
	c.byName = map[string]*Parameter{}
	for _, p := range c.Parameters {
		for _, n := range append([]string{p.Name}, p.Aliases...) {
			k := strings.ToLower(n)
			if _, dup := c.byName[k]; dup {
				return fmt.Errorf("cmdlet %s: parameter or alias %s is defined twice", c.Name, n)
			}
			c.byName[k] = p
		}
	}
	for _, s := range c.Sets {
		for _, n := range slices.Concat(s.Parameters, s.Positional) {
			if p, ok := c.byName[strings.ToLower(n)]; !ok || !strings.EqualFold(p.Name, n) {
				return fmt.Errorf("cmdlet %s: set %s names %s, which is not one of its parameters", c.Name, s.Name, n)
			}
		}
		for _, n := range s.Positional {
			if !containsFold(s.Parameters, n) {
				return fmt.Errorf("cmdlet %s: set %s: positional %s is not in the set", c.Name, s.Name, n)
			}
		}
	}
	return nil
}

// Lookup returns the cmdlet called name (case-insensitive).
func (t *Table) Lookup(name string) (*Cmdlet, bool) {
	c, ok := t.cmdlets[strings.ToLower(name)]
	return c, ok
}

// Counts reports the size of the connector part of the table (built-ins not
// counted): cmdlets and parameter sets. A cmdlet documented without sets
// counts as one set.
func (t *Table) Counts() (cmdlets, sets int) {
	for _, c := range t.own {
		sets += max(1, len(c.Sets))
	}
	return len(t.own), sets
}

// BuiltinCounts reports the same figures for the built-ins.
func (t *Table) BuiltinCounts() (cmdlets, sets int) {
	for _, c := range t.cmdlets {
		if !slices.Contains(t.own, c) {
			cmdlets++
			sets += max(1, len(c.Sets))
		}
	}
	return cmdlets, sets
}

func containsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(x, s) })
}

// Names returns the names of the connector part of the table (built-ins not
// included), in file order.
func (t *Table) Names() []string {
	names := make([]string, len(t.own))
	for i, c := range t.own {
		names[i] = c.Name
	}
	return names
}
