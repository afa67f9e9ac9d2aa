// Package updateset builds the ServiceNow update set that installs
// autopatch's ServiceNow side in one import (Retrieved Update Sets > Import
// Update Set from XML), from the files in integrations/servicenow, so that
// the scripts an administrator reads and the records the update set creates
// never drift apart. `go run ./internal/updateset/gen` (make updateset)
// writes it; a test fails when the file checked in is not what the scripts
// generate.
//
// Which record a script becomes is decided by its file name, so a new
// script is picked up without touching the generator:
//
//	Name.js               Script Include "Name" (a name starting with a capital)
//	*.br.js               Business Rule (sys_script)
//	*.action.js           Script Action (sysevent_script_action) and its event (sysevent_register)
//	*.ui_action.js        UI Action (sys_ui_action)
//	*_workflow.js         not a record: a snippet pasted into a flow or workflow
//
// A record's other fields come from "Key: value" lines in the script's
// leading comment (Name, Table, When, Order, Insert, Update, Condition,
// Event name, Action name, Form button, …; see the scripts). Any other .js
// file is an error, so a script is never silently left out. The system
// properties, the catalog item with its variables and multi-row variable
// set, and the Change Request fields come from the JSON files beside the
// scripts.
//
// The XML has the shape ServiceNow exports: an <unload> holding one
// sys_remote_update_set and one sys_update_xml per record, whose payload is
// the record's own <record_update> document. sys_ids are derived from the
// records' names, so regenerating gives the same file and re-importing
// updates the records instead of duplicating them.
package updateset

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Name is the update set's name, as the administrator sees it.
const Name = "autopatch: ServiceNow integration"

// FileName is the update set's file in integrations/servicenow.
const FileName = "autopatch.update_set.xml"

// stamp is the creation time written on every record. It is fixed so that
// the file only changes when its content does.
const stamp = "2026-12-01 00:00:00"

const author = "autopatch"

// Field is one field of a record. Display is the display_value attribute
// of a reference field.
type Field struct {
	Name, Value, Display string
	// Script marks a field that holds JavaScript (checked by acorn).
	Script bool
}

// Record is one record the update set creates or updates.
type Record struct {
	// Table is the record's table; ParentTable the record_update's table
	// when it differs (a dictionary entry belongs to the table it extends).
	Table, ParentTable string
	SysID              string
	// UpdateName is sys_update_name: <table>_<sys_id>, or the name-based
	// form ServiceNow uses for dictionary entries and properties.
	UpdateName string
	TargetName string
	// Type is sys_update_xml.type as the platform names the record type.
	Type string
	// TableRef is sys_update_xml.table: the table a business rule or UI
	// action acts on, empty for the others.
	TableRef string
	Fields   []Field
	// Also are records written in the same record_update (a dictionary
	// entry's documentation).
	Also []Record
	// Source is the file the record comes from.
	Source string
}

// Script is an embedded script, for the parse check.
type Script struct {
	Record, Field, Text string
}

// Scripts returns every script field of recs.
func Scripts(recs []Record) []Script {
	var out []Script
	for _, r := range recs {
		for _, f := range r.Fields {
			if f.Script {
				out = append(out, Script{Record: r.UpdateName, Field: f.Name, Text: f.Value})
			}
		}
	}
	return out
}

// SysID derives a stable sys_id from a record's identity.
func SysID(parts ...string) string {
	sum := md5.Sum([]byte("autopatch-updateset:" + strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:])
}

// Load reads the records of dir (integrations/servicenow).
func Load(dir string) ([]Record, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("updateset: %w", err)
	}
	var recs []Record
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".js") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("updateset: %w", err)
		}
		r, err := fromScript(name, string(b))
		if err != nil {
			errs = append(errs, fmt.Errorf("updateset: %s: %w", name, err))
			continue
		}
		recs = append(recs, r...)
	}
	props, err := properties(filepath.Join(dir, "system_properties.json"))
	if err != nil {
		errs = append(errs, err)
	}
	recs = append(recs, props...)
	fields, err := dictionary(filepath.Join(dir, "change_request_fields.json"))
	if err != nil {
		errs = append(errs, err)
	}
	recs = append(recs, fields...)
	cat, err := catalogItem(filepath.Join(dir, "catalog_item_automated_patching.variables.json"))
	if err != nil {
		errs = append(errs, err)
	}
	recs = append(recs, cat...)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return recs, nil
}

var identifier = regexp.MustCompile(`^[A-Z][A-Za-z0-9_]*$`)

// fromScript turns one script file into its records, by the file name's
// convention.
func fromScript(file, text string) ([]Record, error) {
	h := header(text)
	base := strings.TrimSuffix(file, ".js")
	switch {
	case strings.HasSuffix(file, "_workflow.js"):
		return nil, nil
	case strings.HasSuffix(file, ".ui_action.js"):
		return uiAction(file, text, h)
	case strings.HasSuffix(file, ".br.js"):
		return businessRule(file, text, h)
	case strings.HasSuffix(file, ".action.js"):
		return scriptAction(file, text, h)
	case identifier.MatchString(base):
		return scriptInclude(file, base, text)
	}
	return nil, errors.New(`no update-set convention for this name: Name.js (script include), *.br.js, *.action.js, *.ui_action.js or *_workflow.js (not in the update set)`)
}

// header reads the "Key: value" lines of a script's leading comment. A key
// keeps its first value; a value ends where two spaces and "(" start a
// remark.
func header(text string) map[string]string {
	out := map[string]string{}
	end := strings.Index(text, "*/")
	if !strings.HasPrefix(strings.TrimSpace(text), "/*") || end < 0 {
		return out
	}
	line := regexp.MustCompile(`^\s*\*\s+([A-Z][A-Za-z ]*[a-z]):\s+(\S.*)$`)
	remark := regexp.MustCompile(`\s{2,}\(.*$`)
	for _, l := range strings.Split(text[:end], "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		key := strings.ToLower(m[1])
		if _, seen := out[key]; seen {
			continue
		}
		out[key] = strings.TrimSpace(remark.ReplaceAllString(m[2], ""))
	}
	return out
}

// tableName takes "Change Request [change_request]" or "change_request".
func tableName(v string) string {
	if i, j := strings.LastIndex(v, "["), strings.LastIndex(v, "]"); i >= 0 && j > i {
		return v[i+1 : j]
	}
	return v
}

func need(h map[string]string, keys ...string) error {
	var missing []string
	for _, k := range keys {
		if h[k] == "" {
			missing = append(missing, strings.ToUpper(k[:1])+k[1:]+":")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the leading comment lacks %s", strings.Join(missing, ", "))
	}
	return nil
}

func boolOf(h map[string]string, key, def string) string {
	v := strings.ToLower(h[key])
	if v == "" {
		return def
	}
	if v == "true" || v == "false" {
		return v
	}
	return "invalid:" + v
}

func checkBools(fields []Field) error {
	for _, f := range fields {
		if strings.HasPrefix(f.Value, "invalid:") {
			return fmt.Errorf("%s: want true or false, not %q", f.Name, strings.TrimPrefix(f.Value, "invalid:"))
		}
	}
	return nil
}

// common are the system fields every exported record carries.
func common(table, sysID, sysName, updateName string) []Field {
	return []Field{
		{Name: "sys_class_name", Value: table},
		{Name: "sys_created_by", Value: author},
		{Name: "sys_created_on", Value: stamp},
		{Name: "sys_id", Value: sysID},
		{Name: "sys_mod_count", Value: "0"},
		{Name: "sys_name", Value: sysName},
		{Name: "sys_package", Value: "global", Display: "Global"},
		{Name: "sys_policy", Value: ""},
		{Name: "sys_scope", Value: "global", Display: "Global"},
		{Name: "sys_update_name", Value: updateName},
		{Name: "sys_updated_by", Value: author},
		{Name: "sys_updated_on", Value: stamp},
	}
}

func record(table, sysID, target, typ, tableRef, source string, fields []Field) Record {
	update := table + "_" + sysID
	fields = append(fields, common(table, sysID, target, update)...)
	sort.SliceStable(fields, func(i, j int) bool { return fields[i].Name < fields[j].Name })
	return Record{Table: table, SysID: sysID, UpdateName: update, TargetName: target, Type: typ, TableRef: tableRef, Fields: fields, Source: source}
}

func scriptInclude(file, name, text string) ([]Record, error) {
	id := SysID("sys_script_include", name)
	return []Record{record("sys_script_include", id, name, "Script Include", "", file, []Field{
		{Name: "access", Value: "public"},
		{Name: "active", Value: "true"},
		{Name: "api_name", Value: "global." + name},
		{Name: "caller_access", Value: ""},
		{Name: "client_callable", Value: "false"},
		{Name: "description", Value: "autopatch: " + file + " (integrations/servicenow)"},
		{Name: "name", Value: name},
		{Name: "sandbox_callable", Value: "false"},
		{Name: "script", Value: text, Script: true},
	})}, nil
}

func businessRule(file, text string, h map[string]string) ([]Record, error) {
	if err := need(h, "name", "table", "when"); err != nil {
		return nil, err
	}
	when := strings.ToLower(h["when"])
	switch when {
	case "before", "after", "async", "display":
	default:
		return nil, fmt.Errorf("When: %q: want before, after, async or display", h["when"])
	}
	table := tableName(h["table"])
	order := h["order"]
	if order == "" {
		order = "100"
	}
	if _, err := strconv.Atoi(order); err != nil {
		return nil, fmt.Errorf("Order: %q is not a number", order)
	}
	fields := []Field{
		{Name: "abort_action", Value: "false"},
		{Name: "access", Value: "package_private"},
		{Name: "action_delete", Value: boolOf(h, "delete", "false")},
		{Name: "action_insert", Value: boolOf(h, "insert", "false")},
		{Name: "action_query", Value: boolOf(h, "query", "false")},
		{Name: "action_update", Value: boolOf(h, "update", "false")},
		{Name: "active", Value: boolOf(h, "active", "true")},
		{Name: "add_message", Value: "false"},
		{Name: "advanced", Value: "true"},
		{Name: "change_fields", Value: "false"},
		{Name: "client_callable", Value: "false"},
		{Name: "collection", Value: table},
		{Name: "condition", Value: h["condition"], Script: h["condition"] != ""},
		{Name: "description", Value: "autopatch: " + file + " (integrations/servicenow)"},
		{Name: "execute_function", Value: "false"},
		{Name: "filter_condition", Value: ""},
		{Name: "is_rest", Value: "false"},
		{Name: "message", Value: ""},
		{Name: "name", Value: h["name"]},
		{Name: "order", Value: order},
		{Name: "priority", Value: "100"},
		{Name: "rest_method", Value: ""},
		{Name: "rest_method_text", Value: ""},
		{Name: "rest_service", Value: ""},
		{Name: "rest_service_text", Value: ""},
		{Name: "rest_variables", Value: ""},
		{Name: "role_conditions", Value: ""},
		{Name: "script", Value: text, Script: true},
		{Name: "sys_domain", Value: "global"},
		{Name: "sys_domain_path", Value: "/"},
		{Name: "sys_overrides", Value: ""},
		{Name: "template", Value: ""},
		{Name: "when", Value: when},
	}
	if err := checkBools(fields); err != nil {
		return nil, err
	}
	return []Record{record("sys_script", SysID("sys_script", table, h["name"]), h["name"], "Business Rule", table, file, fields)}, nil
}

func scriptAction(file, text string, h map[string]string) ([]Record, error) {
	if err := need(h, "name", "event name", "table"); err != nil {
		return nil, err
	}
	event, table := h["event name"], tableName(h["table"])
	reg := record("sysevent_register", SysID("sysevent_register", event), event, "Event Registration", "", file, []Field{
		{Name: "caller_access", Value: ""},
		{Name: "derived_priority", Value: "100"},
		{Name: "description", Value: h["description"]},
		{Name: "event_name", Value: event},
		{Name: "fired_by", Value: h["fired by"]},
		{Name: "priority", Value: ""},
		{Name: "queue", Value: ""},
		{Name: "table", Value: table},
	})
	fields := []Field{
		{Name: "active", Value: boolOf(h, "active", "true")},
		{Name: "condition_script", Value: ""},
		{Name: "description", Value: "autopatch: " + file + " (integrations/servicenow)"},
		{Name: "event_name", Value: event},
		{Name: "name", Value: h["name"]},
		{Name: "order", Value: "100"},
		{Name: "script", Value: text, Script: true},
		{Name: "synchronous", Value: "false"},
	}
	if err := checkBools(fields); err != nil {
		return nil, err
	}
	act := record("sysevent_script_action", SysID("sysevent_script_action", h["name"]), h["name"], "Script Action", "", file, fields)
	return []Record{reg, act}, nil
}

func uiAction(file, text string, h map[string]string) ([]Record, error) {
	if err := need(h, "name", "table", "action name"); err != nil {
		return nil, err
	}
	table := tableName(h["table"])
	order := h["order"]
	if order == "" {
		order = "100"
	}
	fields := []Field{
		{Name: "action_name", Value: h["action name"]},
		{Name: "active", Value: boolOf(h, "active", "true")},
		{Name: "client", Value: boolOf(h, "client", "false")},
		{Name: "comments", Value: "autopatch: " + file + " (integrations/servicenow)"},
		{Name: "condition", Value: h["condition"], Script: h["condition"] != ""},
		{Name: "form_action", Value: "true"},
		{Name: "form_button", Value: boolOf(h, "form button", "true")},
		{Name: "form_context_menu", Value: boolOf(h, "form context menu", "false")},
		{Name: "form_link", Value: boolOf(h, "form link", "false")},
		{Name: "form_style", Value: ""},
		{Name: "hint", Value: h["hint"]},
		{Name: "isolate_script", Value: "false"},
		{Name: "list_action", Value: "false"},
		{Name: "list_banner_button", Value: "false"},
		{Name: "list_button", Value: "false"},
		{Name: "list_choice", Value: "false"},
		{Name: "list_context_menu", Value: "false"},
		{Name: "list_link", Value: "false"},
		{Name: "list_save_with_form_button", Value: "false"},
		{Name: "list_style", Value: ""},
		{Name: "name", Value: h["name"]},
		{Name: "onclick", Value: h["onclick"]},
		{Name: "order", Value: order},
		{Name: "script", Value: text, Script: true},
		{Name: "show_insert", Value: boolOf(h, "show insert", "false")},
		{Name: "show_multiple_update", Value: "false"},
		{Name: "show_query", Value: "false"},
		{Name: "show_update", Value: boolOf(h, "show update", "true")},
		{Name: "table", Value: table},
		{Name: "ui11_compatible", Value: "true"},
		{Name: "ui16_compatible", Value: "true"},
	}
	if err := checkBools(fields); err != nil {
		return nil, err
	}
	return []Record{record("sys_ui_action", SysID("sys_ui_action", table, h["action name"]), h["name"], "UI Action", table, file, fields)}, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("updateset: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("updateset: %s: %w", filepath.Base(path), err)
	}
	return nil
}

// properties are the system properties: sys_properties records, whose
// update name is the property's name, as ServiceNow records them.
func properties(path string) ([]Record, error) {
	var file struct {
		Comment    string `json:"_comment"`
		Properties []struct {
			Name, Type, Value, Description string
			Private                        bool
		} `json:"properties"`
	}
	if err := readJSON(path, &file); err != nil {
		return nil, err
	}
	var out []Record
	for _, p := range file.Properties {
		switch p.Type {
		case "string", "integer", "password2", "boolean":
		default:
			return nil, fmt.Errorf("updateset: %s: %s: type %q", filepath.Base(path), p.Name, p.Type)
		}
		r := record("sys_properties", SysID("sys_properties", p.Name), p.Name, "System Property", "", filepath.Base(path), []Field{
			{Name: "choices", Value: ""},
			{Name: "description", Value: p.Description},
			{Name: "ignore_cache", Value: "false"},
			{Name: "is_private", Value: strconv.FormatBool(p.Private)},
			{Name: "name", Value: p.Name},
			{Name: "read_roles", Value: "admin"},
			{Name: "suffix", Value: "autopatch"},
			{Name: "type", Value: p.Type},
			{Name: "value", Value: p.Value},
			{Name: "write_roles", Value: "admin"},
		})
		r.UpdateName = "sys_properties_" + r.SysID
		out = append(out, r)
	}
	return out, nil
}

// dictionary are the Change Request fields: sys_dictionary entries with
// their labels (sys_documentation), in one record_update of the table.
func dictionary(path string) ([]Record, error) {
	var file struct {
		Comment string `json:"_comment"`
		Table   string `json:"table"`
		Fields  []struct {
			Element   string `json:"element"`
			Label     string `json:"label"`
			Type      string `json:"type"`
			MaxLength int    `json:"max_length"`
			Hint      string `json:"hint"`
		} `json:"fields"`
	}
	if err := readJSON(path, &file); err != nil {
		return nil, err
	}
	var out []Record
	for _, f := range file.Fields {
		id := SysID("sys_dictionary", file.Table, f.Element)
		update := "sys_dictionary_" + file.Table + "_" + f.Element
		d := record("sys_dictionary", id, file.Table+"."+f.Element, "Dictionary", file.Table, filepath.Base(path), []Field{
			{Name: "active", Value: "true"},
			{Name: "array", Value: "false"},
			{Name: "attributes", Value: ""},
			{Name: "column_label", Value: f.Label},
			{Name: "comments", Value: f.Hint},
			{Name: "default_value", Value: ""},
			{Name: "display", Value: "false"},
			{Name: "element", Value: f.Element},
			{Name: "internal_type", Value: f.Type, Display: "String"},
			{Name: "mandatory", Value: "false"},
			{Name: "max_length", Value: strconv.Itoa(f.MaxLength)},
			{Name: "name", Value: file.Table},
			{Name: "read_only", Value: "false"},
			{Name: "reference", Value: ""},
			{Name: "unique", Value: "false"},
		})
		d.ParentTable = file.Table
		d.UpdateName = update
		setField(&d, "sys_update_name", update)
		setField(&d, "sys_name", f.Label)
		docID := SysID("sys_documentation", file.Table, f.Element, "en")
		doc := record("sys_documentation", docID, f.Label, "Field Label", "", filepath.Base(path), []Field{
			{Name: "element", Value: f.Element},
			{Name: "help", Value: f.Hint},
			{Name: "hint", Value: f.Hint},
			{Name: "label", Value: f.Label},
			{Name: "language", Value: "en"},
			{Name: "name", Value: file.Table},
			{Name: "plural", Value: f.Label},
			{Name: "url", Value: ""},
			{Name: "url_target", Value: ""},
		})
		setField(&doc, "sys_update_name", update)
		d.Also = append(d.Also, doc)
		out = append(out, d)
	}
	return out, nil
}

func setField(r *Record, name, value string) {
	for i := range r.Fields {
		if r.Fields[i].Name == name {
			r.Fields[i].Value = value
		}
	}
}

// variableTypes are the Service Catalog variable types (item_option_new.type)
// by the names the catalog's UI uses.
var variableTypes = map[string]string{
	"Yes / No": "1", "Multi Line Text": "2", "Multiple Choice": "3", "Select Box": "5",
	"Single Line Text": "6", "CheckBox": "7", "Reference": "8", "Date": "9", "Date/Time": "10",
	"Label": "11", "List Collector": "21",
}

type variableJSON struct {
	Order         int    `json:"order"`
	Name          string `json:"name"`
	Type          string `json:"type"`
	Question      string `json:"question"`
	Title         string `json:"title"`
	Mandatory     bool   `json:"mandatory"`
	IncludeNone   bool   `json:"include_none"`
	HelpText      string `json:"help_text"`
	Reference     string `json:"reference"`
	ReferenceQual string `json:"reference_qualifier"`
	Note          string `json:"_note"`
	Choices       []struct {
		Value string `json:"value"`
		Text  string `json:"text"`
	} `json:"choices"`
	Columns []variableJSON `json:"columns"`
}

// catalogItem is "Automated Patching": sc_cat_item, its variables
// (item_option_new) with their choices (question_choice), the multi-row
// variable set (item_option_new_set, type one_to_many) with its columns, and
// the set's link to the item (io_set_item).
func catalogItem(path string) ([]Record, error) {
	var file struct {
		Comment     string `json:"_comment"`
		CatalogItem struct {
			Name             string `json:"name"`
			ShortDescription string `json:"short_description"`
			Category         string `json:"category"`
			Fulfilment       string `json:"fulfilment"`
		} `json:"catalog_item"`
		Variables []variableJSON `json:"variables"`
	}
	if err := readJSON(path, &file); err != nil {
		return nil, err
	}
	src := filepath.Base(path)
	item := file.CatalogItem
	itemID := SysID("sc_cat_item", item.Name)
	out := []Record{record("sc_cat_item", itemID, item.Name, "Catalog Item", "", src, []Field{
		{Name: "active", Value: "true"},
		{Name: "availability", Value: "on_desktop"},
		{Name: "billable", Value: "false"},
		{Name: "category", Value: ""},
		{Name: "cost", Value: "0"},
		{Name: "delivery_plan", Value: ""},
		{Name: "description", Value: item.ShortDescription + ". autopatch moves each server into the schedule's SCCM collection and writes the outcome on the request item. Fulfilled by the business rule \"Autopatch: send schedule request\" (or " + item.Fulfilment + ")."},
		{Name: "hide_sp", Value: "false"},
		{Name: "name", Value: item.Name},
		{Name: "no_cart", Value: "true"},
		{Name: "no_quantity", Value: "true"},
		{Name: "order", Value: "0"},
		{Name: "sc_catalogs", Value: "e0d08b13c3330100c8b837659bba8fb4", Display: "Service Catalog"},
		{Name: "short_description", Value: item.ShortDescription},
		{Name: "type", Value: "item"},
		{Name: "use_sc_layout", Value: "true"},
		{Name: "visible_standalone", Value: "true"},
		{Name: "workflow", Value: ""},
	})}
	for _, v := range file.Variables {
		if v.Type == "Multi-Row Variable Set" {
			setID := SysID("item_option_new_set", v.Name)
			out = append(out, record("item_option_new_set", setID, v.Title, "Variable Set", "", src, []Field{
				{Name: "description", Value: v.HelpText},
				{Name: "display_title", Value: "true"},
				{Name: "internal_name", Value: v.Name},
				{Name: "layout", Value: "normal"},
				{Name: "name", Value: v.Name},
				{Name: "order", Value: strconv.Itoa(v.Order)},
				{Name: "title", Value: v.Title},
				{Name: "type", Value: "one_to_many"},
			}))
			out = append(out, record("io_set_item", SysID("io_set_item", item.Name, v.Name), item.Name+" - "+v.Title, "Catalog Item Variable Set", "", src, []Field{
				{Name: "order", Value: strconv.Itoa(v.Order)},
				{Name: "sc_cat_item", Value: itemID, Display: item.Name},
				{Name: "variable_set", Value: setID, Display: v.Title},
			}))
			for _, c := range v.Columns {
				recs, err := variable(src, c, "", "", setID, v.Title)
				if err != nil {
					return nil, err
				}
				out = append(out, recs...)
			}
			continue
		}
		recs, err := variable(src, v, itemID, item.Name, "", "")
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
	}
	return out, nil
}

// variable is one item_option_new and its question_choice records. It
// belongs to the item itemID or to the variable set setID.
func variable(src string, v variableJSON, itemID, itemName, setID, setTitle string) ([]Record, error) {
	typ, ok := variableTypes[v.Type]
	if !ok {
		return nil, fmt.Errorf("updateset: %s: variable %s: unknown type %q", src, v.Name, v.Type)
	}
	owner := itemID + setID
	id := SysID("item_option_new", owner, v.Name)
	fields := []Field{
		{Name: "active", Value: "true"},
		{Name: "cat_item", Value: itemID, Display: itemName},
		{Name: "default_value", Value: ""},
		{Name: "help_text", Value: v.HelpText},
		{Name: "include_none", Value: strconv.FormatBool(v.IncludeNone)},
		{Name: "mandatory", Value: strconv.FormatBool(v.Mandatory)},
		{Name: "name", Value: v.Name},
		{Name: "order", Value: strconv.Itoa(v.Order)},
		{Name: "question_text", Value: v.Question},
		{Name: "read_only", Value: "false"},
		{Name: "reference", Value: v.Reference},
		{Name: "reference_qual", Value: v.ReferenceQual},
		{Name: "reference_qual_condition", Value: v.ReferenceQual},
		{Name: "show_help", Value: strconv.FormatBool(v.HelpText != "")},
		{Name: "type", Value: typ},
		{Name: "use_reference_qualifier", Value: map[bool]string{true: "simple", false: ""}[v.ReferenceQual != ""]},
		{Name: "variable_set", Value: setID, Display: setTitle},
		{Name: "visible_standalone", Value: "true"},
	}
	out := []Record{record("item_option_new", id, v.Question, "Variable", "", src, fields)}
	for i, c := range v.Choices {
		out = append(out, record("question_choice", SysID("question_choice", id, c.Value), c.Text, "Question Choice", "", src, []Field{
			{Name: "inactive", Value: "false"},
			{Name: "order", Value: strconv.Itoa((i + 1) * 100)},
			{Name: "question", Value: id, Display: v.Question},
			{Name: "text", Value: c.Text},
			{Name: "value", Value: c.Value},
		}))
	}
	return out, nil
}

// Build renders the update set of recs.
func Build(recs []Record) []byte {
	setID := SysID("sys_remote_update_set", Name)
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<!-- Generated by go run ./internal/updateset/gen from integrations/servicenow; do not edit: edit the scripts and run make updateset. -->` + "\n")
	fmt.Fprintf(&b, "<unload unload_date=%q>\n", stamp)
	b.WriteString(`<sys_remote_update_set action="INSERT_OR_UPDATE">` + "\n")
	desc := fmt.Sprintf("autopatch's ServiceNow side (%d records): the script include AutopatchClient, the business rules, the retry event and script action, the UI actions, the system properties, the Change Request fields and the catalog item \"Automated Patching\". Generated from integrations/servicenow; after committing it, set autopatch.url and autopatch.webhook.secret_base64 (integrations/servicenow/README.md).", len(recs))
	for _, f := range []Field{
		{Name: "application", Value: "global", Display: "Global"},
		{Name: "application_name", Value: "Global"},
		{Name: "application_scope", Value: "global"},
		{Name: "application_version"},
		{Name: "collisions"},
		{Name: "commit_date"},
		{Name: "deleted"},
		{Name: "description", Value: desc},
		{Name: "inserted"},
		{Name: "name", Value: Name},
		{Name: "origin_sys_id"},
		{Name: "parent", Display: " "},
		{Name: "release_date", Value: stamp},
		{Name: "remote_base_update_set", Display: " "},
		{Name: "remote_parent_id"},
		{Name: "remote_sys_id", Value: SysID("sys_update_set", Name)},
		{Name: "state", Value: "loaded"},
		{Name: "summary"},
		{Name: "sys_class_name", Value: "sys_remote_update_set"},
		{Name: "sys_created_by", Value: author},
		{Name: "sys_created_on", Value: stamp},
		{Name: "sys_id", Value: setID},
		{Name: "sys_mod_count", Value: "0"},
		{Name: "sys_updated_by", Value: author},
		{Name: "sys_updated_on", Value: stamp},
		{Name: "update_set", Display: " "},
		{Name: "update_source", Display: " "},
		{Name: "updated"},
	} {
		writeField(&b, f)
		b.WriteByte('\n')
	}
	b.WriteString("</sys_remote_update_set>\n")
	for _, r := range recs {
		payload := Payload(r)
		guid := SysID("update_guid", r.UpdateName)
		hash := strconv.Itoa(int(javaHash(payload)))
		b.WriteString(`<sys_update_xml action="INSERT_OR_UPDATE">` + "\n")
		for _, f := range []Field{
			{Name: "action", Value: "INSERT_OR_UPDATE"},
			{Name: "application", Value: "global", Display: "Global"},
			{Name: "category", Value: "customer"},
			{Name: "comments"},
			{Name: "name", Value: r.UpdateName},
		} {
			writeField(&b, f)
			b.WriteByte('\n')
		}
		b.WriteString("<payload><![CDATA[" + payload + "]]></payload>\n")
		for _, f := range []Field{
			{Name: "payload_hash", Value: hash},
			{Name: "remote_update_set", Value: setID, Display: Name},
			{Name: "replace_on_upgrade", Value: "false"},
			{Name: "sys_created_by", Value: author},
			{Name: "sys_created_on", Value: stamp},
			{Name: "sys_id", Value: SysID("sys_update_xml", r.UpdateName)},
			{Name: "sys_mod_count", Value: "0"},
			{Name: "sys_recorded_at", Value: "19ad8a6b0000000001"},
			{Name: "sys_updated_by", Value: author},
			{Name: "sys_updated_on", Value: stamp},
			{Name: "table", Value: r.TableRef},
			{Name: "target_name", Value: r.TargetName},
			{Name: "type", Value: r.Type},
			{Name: "update_domain", Value: "global"},
			{Name: "update_guid", Value: guid},
			{Name: "update_guid_history", Value: guid + ":" + hash},
			{Name: "update_set", Display: " "},
			{Name: "view"},
		} {
			writeField(&b, f)
			b.WriteByte('\n')
		}
		b.WriteString("</sys_update_xml>\n")
	}
	b.WriteString("</unload>\n")
	return b.Bytes()
}

// Payload is a record's <record_update> document, as sys_update_xml.payload
// holds it. Values are escaped (never CDATA), so the payload can sit in the
// CDATA section of the outer document: an escaped ">" cannot close it.
func Payload(r Record) string {
	var b bytes.Buffer
	table := r.Table
	if r.ParentTable != "" {
		table = r.ParentTable
	}
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?><record_update table=%q>`, table)
	writeRecord(&b, r)
	for _, a := range r.Also {
		writeRecord(&b, a)
	}
	b.WriteString("</record_update>")
	return b.String()
}

func writeRecord(b *bytes.Buffer, r Record) {
	attrs := ""
	if r.Table == "sys_dictionary" || r.Table == "sys_documentation" {
		for _, f := range r.Fields {
			if f.Name == "element" {
				attrs = fmt.Sprintf(" element=%q", f.Value)
			}
		}
		if r.Table == "sys_documentation" {
			attrs += ` language="en"`
		}
	}
	fmt.Fprintf(b, `<%s action="INSERT_OR_UPDATE"%s>`, r.Table, attrs)
	for _, f := range r.Fields {
		writeField(b, f)
	}
	fmt.Fprintf(b, "</%s>", r.Table)
}

func writeField(b *bytes.Buffer, f Field) {
	attr := ""
	if f.Display != "" {
		attr = ` display_value="` + escape.Replace(strings.TrimSpace(f.Display)) + `"`
	}
	if f.Value == "" {
		fmt.Fprintf(b, "<%s%s/>", f.Name, attr)
		return
	}
	fmt.Fprintf(b, "<%s%s>%s</%s>", f.Name, attr, escape.Replace(f.Value), f.Name)
}

// escape escapes character data as ServiceNow's exports do: markup only,
// line breaks kept, so a script stays readable in the file.
var escape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// javaHash is Java's String.hashCode, which ServiceNow records as
// payload_hash.
func javaHash(s string) int32 {
	var h int32
	for _, c := range utf16(s) {
		h = 31*h + int32(c)
	}
	return h
}

func utf16(s string) []uint16 {
	var out []uint16
	for _, r := range s {
		if r >= 0x10000 {
			r -= 0x10000
			out = append(out, uint16(0xD800+(r>>10)), uint16(0xDC00+(r&0x3FF)))
			continue
		}
		out = append(out, uint16(r))
	}
	return out
}
