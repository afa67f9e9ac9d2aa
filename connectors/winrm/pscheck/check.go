package pscheck

import (
	"fmt"
	"slices"
	"strings"
)

// Problem is one refusal: what PowerShell would print for it.
type Problem struct {
	// Line is the 1-based line of the template the command starts on.
	Line int
	// Column is the 1-based column of the command name on that line.
	Column int
	// Command is the command the problem is about ("" for a parse error).
	Command string
	// Text is the source line, as PowerShell quotes it in the error position
	// (see Position).
	Text string
	// Message is PowerShell's error message.
	Message string
	// Category is PowerShell's CategoryInfo ("InvalidArgument: (:) [Get-X], ParameterBindingException").
	Category string
	// ErrorID is the FullyQualifiedErrorId's first part ("NamedParameterNotFound").
	ErrorID string
}

// Error formats the problem as "line N: message".
func (p Problem) Error() string { return fmt.Sprintf("line %d: %s", p.Line, p.Message) }

// Position is PowerShell's position message for the problem: "At line:N
// char:C", the offending line and a marker under the command.
func (p Problem) Position() string {
	col := max(p.Column, 1)
	marker := strings.Repeat(" ", col-1) + strings.Repeat("~", max(len(p.Command), 1))
	return fmt.Sprintf("At line:%d char:%d\n+ %s\n+ %s", max(p.Line, 1), col, p.Text, marker)
}

// Check parses script and checks every command it calls against the table
// and against the script's own functions. It returns nil when all is known.
// The checks, in PowerShell's order for each command: the command exists,
// each named parameter exists, a parameter that needs a value has one, the
// named parameters fit one parameter set, positional arguments fit a
// positional slot of that set, and literal values are accepted values.
func (t *Table) Check(script string) []Problem {
	s, err := Parse(script)
	if err != nil {
		pe, _ := err.(*ParseError)
		line := 0
		msg := err.Error()
		if pe != nil {
			line, msg = pe.Line, pe.Message
		}
		return []Problem{{Line: line, Message: msg, Category: "ParserError: (:) [], ParentContainsErrorRecordException", ErrorID: "ParseError"}}
	}
	var out []Problem
	for _, inv := range s.Invocations {
		out = append(out, t.checkInvocation(s, inv)...)
	}
	return out
}

func (t *Table) checkInvocation(s *Script, inv Invocation) []Problem {
	problem := func(msg, category, id string) Problem {
		return Problem{Line: inv.Line, Column: inv.Column, Command: inv.Name, Text: inv.Text, Message: msg, Category: category, ErrorID: id}
	}
	bindErr := func(msg, id string) []Problem {
		return []Problem{problem(msg, "InvalidArgument: (:) ["+inv.Name+"], ParameterBindingException", id)}
	}

	// The script's own functions come first, as in PowerShell's command lookup.
	if fn, ok := s.Functions[strings.ToLower(inv.Name)]; ok {
		return checkFunction(fn, inv, bindErr)
	}
	c, ok := t.Lookup(inv.Name)
	if !ok {
		return []Problem{problem("The term '"+inv.Name+"' is not recognized as the name of a cmdlet, function, script file, "+
			"or operable program. Check the spelling of the name, or if a path was included, verify that the path is correct and try again.",
			"ObjectNotFound: ("+inv.Name+":String) [], CommandNotFoundException", "CommandNotFoundException")}
	}

	type bound struct {
		p   *Parameter
		arg *Arg
	}
	var (
		named      []bound
		positional []Arg
		seen       = map[*Parameter]bool{}
		unresolved bool // a splat of a variable whose hashtable is not literal
	)
	lookup := func(name string) (*Parameter, bool, bool) {
		k := strings.ToLower(name)
		if p, ok := c.byName[k]; ok {
			return p, false, true
		}
		if p, ok := t.common[k]; ok {
			if (strings.EqualFold(p.Name, "WhatIf") || strings.EqualFold(p.Name, "Confirm")) && !c.ShouldProcess {
				return nil, false, false
			}
			return p, true, true
		}
		return nil, false, false
	}
	bind := func(name string, arg *Arg) []Problem {
		p, common, ok := lookup(name)
		if !ok {
			return bindErr("A parameter cannot be found that matches parameter name '"+name+"'.", "NamedParameterNotFound")
		}
		if seen[p] {
			return bindErr("Cannot bind parameter because parameter '"+p.Name+"' is specified more than once. "+
				"To provide multiple values to parameters that can accept multiple values, use the array syntax. "+
				"For example, \"-parameter value1,value2,value3\".", "ParameterAlreadyBound")
		}
		seen[p] = true
		if !common {
			named = append(named, bound{p, arg})
		} else if arg != nil {
			if perr := checkValues(inv.Name, p, *arg, problem); perr != nil {
				return []Problem{*perr}
			}
		}
		return nil
	}

	els := inv.Elements
	for i := 0; i < len(els); i++ {
		el := els[i]
		switch {
		case el.Splat != "":
			entries, ok := s.Hashtables[strings.ToLower(el.Splat)]
			if !ok {
				unresolved = true
				continue
			}
			for _, e := range entries {
				if probs := bind(e.Key, &e.Arg); probs != nil {
					return probs
				}
			}
		case el.Param != "":
			p, _, ok := lookup(el.Param)
			var arg *Arg
			switch {
			case el.Colon:
				arg = &el.Arg
			case ok && !p.Switch:
				if i+1 >= len(els) || els[i+1].Param != "" || els[i+1].Splat != "" {
					typ := p.Type
					if typ == "" {
						typ = "Object"
					}
					return bindErr("Missing an argument for parameter '"+p.Name+"'. Specify a parameter of type '"+typ+"' and try again.",
						"MissingArgument")
				}
				i++
				arg = &els[i].Arg
			}
			if probs := bind(el.Param, arg); probs != nil {
				return probs
			}
		default:
			positional = append(positional, el.Arg)
		}
	}

	// Parameter sets: the named parameters must all belong to one set, and
	// the positional arguments must fit that set's positional slots.
	sets := c.Sets
	if len(sets) == 0 {
		all := &ParameterSet{Name: "__AllParameterSets"}
		for _, p := range c.Parameters {
			all.Parameters = append(all.Parameters, p.Name)
		}
		sets = []*ParameterSet{all}
	}
	var fit []*ParameterSet
	for _, set := range sets {
		if slices.IndexFunc(named, func(b bound) bool { return !containsFold(set.Parameters, b.p.Name) }) < 0 {
			fit = append(fit, set)
		}
	}
	if len(fit) == 0 && !unresolved {
		return bindErr("Parameter set cannot be resolved using the specified named parameters.", "AmbiguousParameterSet")
	}
	if len(positional) > 0 && !unresolved {
		best := 0
		for _, set := range fit {
			free := 0
			for _, n := range set.Positional {
				if slices.IndexFunc(named, func(b bound) bool { return strings.EqualFold(b.p.Name, n) }) < 0 {
					free++
				}
			}
			best = max(best, free)
		}
		if len(positional) > best {
			return bindErr("A positional parameter cannot be found that accepts argument '"+positional[best].Text+"'.",
				"PositionalParameterNotFound")
		}
	}
	for _, b := range named {
		if b.arg == nil {
			continue
		}
		if perr := checkValues(inv.Name, b.p, *b.arg, problem); perr != nil {
			return []Problem{*perr}
		}
	}
	return nil
}

// checkValues refuses a literal value the parameter does not accept, with the
// text PowerShell prints for a ValidateSet or an enum conversion.
func checkValues(cmd string, p *Parameter, arg Arg, problem func(msg, category, id string) Problem) *Problem {
	if len(p.Values) == 0 || !arg.Literal {
		return nil
	}
	for _, v := range arg.Values {
		if containsFold(p.Values, v) {
			continue
		}
		if p.Enum {
			pr := problem("Cannot bind parameter '"+p.Name+"'. Cannot convert value \""+v+"\" to type \""+p.Type+"\". "+
				"Error: \"Unable to match the identifier name "+v+" to a valid enumerator name. Specify one of the following "+
				"enumerator names and try again:\n"+strings.Join(p.Values, ", ")+"\"",
				"InvalidArgument: (:) ["+cmd+"], ParameterBindingException", "CannotConvertArgumentNoMessage")
			return &pr
		}
		pr := problem("Cannot validate argument on parameter '"+p.Name+"'. The argument \""+v+"\" does not belong to the set \""+
			strings.Join(p.Values, ",")+"\" specified by the ValidateSet attribute. Supply an argument that is in the set and then try the command again.",
			"InvalidData: (:) ["+cmd+"], ParameterBindingValidationException", "ParameterArgumentValidationError")
		return &pr
	}
	return nil
}

// checkFunction checks a call of one of the script's own functions against
// its own parameter list. Simple functions (no [CmdletBinding()]) take their
// parameters by name or by position and put anything left over in $args, so
// PowerShell itself would not refuse an unknown -Name here: it would silently
// leave the parameter unset. That is always a typo in a template, so the
// check refuses it, with the text an advanced function would print.
func checkFunction(fn *Function, inv Invocation, bindErr func(msg, id string) []Problem) []Problem {
	for _, el := range inv.Elements {
		if el.Param == "" {
			continue
		}
		if !containsFold(fn.Params, el.Param) {
			return bindErr("A parameter cannot be found that matches parameter name '"+el.Param+"'.", "NamedParameterNotFound")
		}
	}
	return nil
}
