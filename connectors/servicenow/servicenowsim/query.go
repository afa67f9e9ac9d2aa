package servicenowsim

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// encodedQuery is a parsed sysparm_query: groups separated by ^NQ, any of
// which may match; each group is a list of AND-ed clauses, and each clause a
// list of OR-ed conditions (cond^ORcond).
type encodedQuery [][][]condition

type condition struct {
	field, op, value string
}

// operators, longest first so that a prefix (IN, =) never shadows a longer
// operator (INSTANCEOF is not supported; <= before <).
var operators = []string{
	"ISNOTEMPTY", "ISEMPTY", "STARTSWITH", "ENDSWITH", "NOTLIKE", "NOT IN", "LIKE", "IN",
	"!=", "<=", ">=", "=", "<", ">",
}

// parseQuery parses the subset of ServiceNow's encoded query syntax the
// simulator implements. Like an instance it splits on every ^, so a value
// cannot contain one: that is exactly why a client must never put an
// unchecked ^ into a query. Unlike an instance it refuses operators and
// field names it does not understand rather than ignoring them, so a
// malformed query fails a test instead of matching everything.
func parseQuery(q string) (encodedQuery, error) {
	var out encodedQuery
	if q == "" {
		return encodedQuery{nil}, nil // one empty group matches every record
	}
	for _, groupText := range strings.Split(q, "^NQ") {
		var group [][]condition
		for _, term := range strings.Split(groupText, "^") {
			switch {
			case term == "" || term == "EQ":
				continue // an instance tolerates empty terms and the ^EQ terminator
			case strings.HasPrefix(term, "ORDERBY"):
				continue // ordering is applied to the matches, see orderOf
			case strings.HasPrefix(term, "OR"):
				if len(group) == 0 {
					return nil, fmt.Errorf("^OR without a preceding condition in %q", term)
				}
				c, err := parseCondition(term[len("OR"):])
				if err != nil {
					return nil, err
				}
				group[len(group)-1] = append(group[len(group)-1], c)
			default:
				c, err := parseCondition(term)
				if err != nil {
					return nil, err
				}
				group = append(group, []condition{c})
			}
		}
		out = append(out, group)
	}
	return out, nil
}

// unsupported lists operators of an instance the simulator does not
// implement. They are checked first because some start like a supported
// operator (INSTANCEOF like IN) and would otherwise parse as it.
var unsupported = []string{
	"INSTANCEOF", "DYNAMIC", "BETWEEN", "RELATIVE", "DATEPART", "MORETHAN", "LESSTHAN",
	"SAMEAS", "NSAMEAS", "VALCHANGES", "CHANGESFROM", "CHANGESTO", "EMPTYSTRING", "ANYTHING",
	"NOTON", "ON", "GT_FIELD", "LT_FIELD", "GT_OR_EQUALS_FIELD", "LT_OR_EQUALS_FIELD",
}

func parseCondition(term string) (condition, error) {
	i := 0
	for i < len(term) && (term[i] >= 'a' && term[i] <= 'z' || term[i] >= '0' && term[i] <= '9' || term[i] == '_' || term[i] == '.') {
		i++
	}
	field, rest := term[:i], term[i:]
	if field == "" {
		return condition{}, fmt.Errorf("no field name in condition %q", term)
	}
	for _, op := range unsupported {
		if strings.HasPrefix(rest, op) {
			return condition{}, fmt.Errorf("operator %s is not simulated in condition %q", op, term)
		}
	}
	for _, op := range operators {
		if strings.HasPrefix(rest, op) {
			return condition{field: field, op: op, value: rest[len(op):]}, nil
		}
	}
	return condition{}, fmt.Errorf("unsupported operator in condition %q", term)
}

func (q encodedQuery) matches(row record) bool {
	for _, group := range q {
		if groupMatches(group, row) {
			return true
		}
	}
	return false
}

func groupMatches(group [][]condition, row record) bool {
	for _, clause := range group {
		ok := false
		for _, c := range clause {
			if c.matches(row) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// matches compares as an instance does on its usual database collation:
// strings case-insensitively, and numbers numerically for < and >.
func (c condition) matches(row record) bool {
	v, ok := row[c.field]
	if !ok {
		v = "" // a field the table lacks reads as empty
	}
	lv, lc := strings.ToLower(v), strings.ToLower(c.value)
	switch c.op {
	case "=":
		return lv == lc
	case "!=":
		return lv != lc
	case "STARTSWITH":
		return strings.HasPrefix(lv, lc)
	case "ENDSWITH":
		return strings.HasSuffix(lv, lc)
	case "LIKE":
		return strings.Contains(lv, lc)
	case "NOTLIKE":
		return !strings.Contains(lv, lc)
	case "ISEMPTY":
		return v == ""
	case "ISNOTEMPTY":
		return v != ""
	case "IN", "NOT IN":
		in := false
		for _, item := range strings.Split(lc, ",") {
			if item == lv {
				in = true
				break
			}
		}
		return in == (c.op == "IN")
	default: // <, <=, >, >=
		cmp := strings.Compare(lv, lc)
		a, errA := strconv.ParseFloat(v, 64)
		b, errB := strconv.ParseFloat(c.value, 64)
		if errA == nil && errB == nil {
			switch {
			case a < b:
				cmp = -1
			case a > b:
				cmp = 1
			default:
				cmp = 0
			}
		}
		switch c.op {
		case "<":
			return cmp < 0
		case "<=":
			return cmp <= 0
		case ">":
			return cmp > 0
		default:
			return cmp >= 0
		}
	}
}

// orderBy is one ORDERBY<field> or ORDERBYDESC<field> term.
type orderBy struct {
	field string
	desc  bool
}

// orderOf returns a query's ordering terms, first term first. An instance
// sorts the matching records by them before sysparm_offset and
// sysparm_limit apply, so "the latest entry" (ORDERBYDESCsys_created_on with
// a limit of 1) is the latest, not the first inserted.
func orderOf(q string) []orderBy {
	var out []orderBy
	for _, term := range strings.Split(q, "^") {
		switch {
		case strings.HasPrefix(term, "ORDERBYDESC"):
			out = append(out, orderBy{field: term[len("ORDERBYDESC"):], desc: true})
		case strings.HasPrefix(term, "ORDERBY"):
			out = append(out, orderBy{field: term[len("ORDERBY"):]})
		}
	}
	return out
}

// sortRecords orders rows by the terms, stably (ties keep insertion
// order). Values compare as text: the simulator stores dates as glide
// date-times (yyyy-MM-dd HH:mm:ss) and numbers zero-padded, which sort as
// text the way an instance sorts them.
func sortRecords(rows []record, by []orderBy) {
	if len(by) == 0 {
		return
	}
	slices.SortStableFunc(rows, func(a, b record) int {
		for _, o := range by {
			c := strings.Compare(a[o.field], b[o.field])
			if o.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return 0
	})
}
