package servicenowsim

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

const (
	tableIncident = "incident"
	tableChange   = "change_request"
	tableRITM     = "sc_req_item"

	// glideDateTime is how the Table API writes date-time values (UTC).
	glideDateTime = "2006-01-02 15:04:05"
)

// referenceFields maps the reference fields the simulator knows to the table
// they point at, for the {"link","value"} form of a response.
var referenceFields = map[string]string{
	"assigned_to":      "sys_user",
	"assignment_group": "sys_user_group",
	"caller_id":        "sys_user",
	"cat_item":         "sc_cat_item",
	"cmdb_ci":          "cmdb_ci",
	"opened_by":        "sys_user",
	"request":          "sc_request",
	"requested_for":    "sys_user",
}

// record is one row: every value is a string, as the Table API shows it.
type record map[string]string

// table is one simulated table. Its rows are kept in insertion order.
type table struct {
	name     string
	prefix   string // of the number, e.g. INC
	seq      int    // next number
	rows     []record
	byID     map[string]record
	fields   map[string]bool // every field that exists
	readOnly map[string]bool // fields a write leaves alone
	defaults map[string]string
	// inactive lists the states that clear the active flag. An incident that
	// is only resolved (6) stays active until it is closed, as on an
	// instance, where the autoclose job closes it later.
	inactive map[string]bool
}

func newTables() map[string]*table {
	task := []string{
		"sys_id", "number", "state", "active", "short_description", "description",
		"work_notes", "comments", "assignment_group", "assigned_to", "cmdb_ci",
		"urgency", "impact", "priority", "correlation_id", "correlation_display",
		"opened_at", "opened_by", "closed_at", "close_notes", "sys_class_name",
		"sys_created_on", "sys_created_by", "sys_updated_on", "sys_updated_by", "sys_mod_count",
	}
	readOnly := map[string]bool{
		"sys_id": true, "number": true, "active": true, "opened_at": true, "opened_by": true,
		"closed_at": true, "resolved_at": true, "sys_class_name": true, "sys_created_on": true,
		"sys_created_by": true, "sys_updated_on": true, "sys_updated_by": true, "sys_mod_count": true,
		// Journal fields are not stored on the row; see Server.journal.
		"work_notes": true, "comments": true,
	}
	mk := func(name, prefix string, start int, extra []string, defaults map[string]string, inactive ...string) *table {
		t := &table{
			name: name, prefix: prefix, seq: start,
			byID:     map[string]record{},
			fields:   map[string]bool{},
			readOnly: readOnly,
			defaults: defaults,
			inactive: map[string]bool{},
		}
		for _, f := range append(slices.Clone(task), extra...) {
			t.fields[f] = true
		}
		for _, s := range inactive {
			t.inactive[s] = true
		}
		return t
	}
	return map[string]*table{
		tableIncident: mk(tableIncident, "INC", 10001,
			[]string{"caller_id", "category", "subcategory", "close_code", "resolved_at"},
			map[string]string{"state": "1", "urgency": "3", "impact": "3"},
			"7", "8"),
		tableChange: mk(tableChange, "CHG", 30001,
			[]string{"type", "approval", "start_date", "end_date", "close_code", "category"},
			map[string]string{"state": "-5", "type": "normal", "approval": "not requested"},
			"3", "4"),
		tableRITM: mk(tableRITM, "RITM", 10001,
			[]string{"request", "cat_item", "requested_for", "approval", "stage"},
			map[string]string{"state": "1", "approval": "requested"},
			"3", "4", "7"),
	}
}

func (t *table) known(field string) bool { return t.fields[field] }

// fieldNames returns every field, sorted, for a response without
// sysparm_fields.
func (t *table) fieldNames() []string {
	return slices.Sorted(maps.Keys(t.fields))
}

// insert adds a record built from defaults and the writable fields given,
// and returns it. An empty number gets the table's next one.
func (t *table) insert(sysID, number string, fields map[string]string, now time.Time, user string) record {
	row := record{}
	for name := range t.fields {
		row[name] = ""
	}
	maps.Copy(row, t.defaults)
	if number == "" {
		number = fmt.Sprintf("%s%07d", t.prefix, t.seq)
		t.seq++
	}
	ts := now.UTC().Format(glideDateTime)
	row["sys_id"] = sysID
	row["number"] = number
	row["sys_class_name"] = t.name
	row["opened_at"] = ts
	row["opened_by"] = user
	row["sys_created_on"] = ts
	row["sys_created_by"] = user
	row["sys_mod_count"] = "-1" // apply counts the insert as modification 0
	row = t.apply(row, fields, now, user)
	t.rows = append(t.rows, row)
	t.byID[sysID] = row
	return row
}

// apply returns a copy of row with the writable fields given, and with the
// fields an instance derives (active, priority, resolution times, sys_*).
// Unknown fields are ignored, as an instance ignores them.
func (t *table) apply(row record, fields map[string]string, now time.Time, user string) record {
	out := maps.Clone(row)
	for name, value := range fields {
		if t.fields[name] && !t.readOnly[name] {
			out[name] = value
		}
	}
	ts := now.UTC().Format(glideDateTime)
	out["active"] = strconv.FormatBool(!t.inactive[out["state"]])
	if t.name == tableIncident {
		// The stock priority lookup: impact + urgency - 1.
		impact, errI := strconv.Atoi(out["impact"])
		urgency, errU := strconv.Atoi(out["urgency"])
		if errI == nil && errU == nil {
			out["priority"] = strconv.Itoa(impact + urgency - 1)
		}
		switch out["state"] {
		case "6":
			if row["state"] != "6" || out["resolved_at"] == "" {
				out["resolved_at"] = ts
			}
		case "7", "8":
			if out["closed_at"] == "" {
				out["closed_at"] = ts
			}
		default:
			out["resolved_at"] = ""
			out["closed_at"] = ""
		}
	}
	mod, _ := strconv.Atoi(out["sys_mod_count"])
	out["sys_mod_count"] = strconv.Itoa(mod + 1)
	out["sys_updated_on"] = ts
	out["sys_updated_by"] = user
	return out
}

// violations returns what the stock data policy says about a record, or "".
// A resolved or closed incident needs a resolution code and notes, and the
// policy applies to web-service updates too.
func (t *table) violations(row record) string {
	if t.name != tableIncident {
		return ""
	}
	switch row["state"] {
	case "6", "7":
		if row["close_code"] == "" {
			return "Resolution code is mandatory"
		}
		if row["close_notes"] == "" {
			return "Resolution notes is mandatory"
		}
	}
	return ""
}

// replace stores an updated copy of an existing record in place.
func (t *table) replace(updated record) {
	row := t.byID[updated["sys_id"]]
	clear(row)
	maps.Copy(row, updated)
}

// remove deletes a record just inserted (a refused insert). Its number
// stays used, as an instance's number counter does not go back.
func (t *table) remove(sysID string) {
	delete(t.byID, sysID)
	t.rows = slices.DeleteFunc(t.rows, func(r record) bool { return r["sys_id"] == sysID })
}
