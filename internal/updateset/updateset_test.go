package updateset_test

import (
	"bytes"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/updateset"
)

const dir = "../../integrations/servicenow"

// TestCheckedInIsGenerated: the update set in the repository is exactly what
// the scripts generate, so the two never drift.
func TestCheckedInIsGenerated(t *testing.T) {
	t.Parallel()
	recs, err := updateset.Load(dir)
	require.NoError(t, err)
	want := updateset.Build(recs)
	got, err := os.ReadFile(filepath.Join(dir, updateset.FileName))
	require.NoError(t, err)
	require.True(t, bytes.Equal(want, got), "%s is not what the scripts generate: run make updateset", updateset.FileName)
}

// The fields of the two record types of an update set file, in the order a
// ServiceNow export (Retrieved Update Sets > Export to XML) writes them.
var (
	remoteUpdateSetFields = []string{"application", "application_name", "application_scope", "application_version", "collisions",
		"commit_date", "deleted", "description", "inserted", "name", "origin_sys_id", "parent", "release_date",
		"remote_base_update_set", "remote_parent_id", "remote_sys_id", "state", "summary", "sys_class_name",
		"sys_created_by", "sys_created_on", "sys_id", "sys_mod_count", "sys_updated_by", "sys_updated_on",
		"update_set", "update_source", "updated"}
	updateXMLFields = []string{"action", "application", "category", "comments", "name", "payload", "payload_hash",
		"remote_update_set", "replace_on_upgrade", "sys_created_by", "sys_created_on", "sys_id", "sys_mod_count",
		"sys_recorded_at", "sys_updated_by", "sys_updated_on", "table", "target_name", "type", "update_domain",
		"update_guid", "update_guid_history", "update_set", "view"}
)

// recordFields are, per table, the fields the platform needs to create the
// record as intended (the rest take their defaults), with sys_update_xml's
// type for it; names as in exported update sets.
var recordFields = map[string]struct {
	typ    string
	fields []string
}{
	"sys_script_include":     {"Script Include", []string{"name", "api_name", "access", "active", "client_callable", "script"}},
	"sys_script":             {"Business Rule", []string{"name", "collection", "when", "order", "active", "advanced", "action_insert", "action_update", "action_delete", "action_query", "condition", "script"}},
	"sysevent_register":      {"Event Registration", []string{"event_name", "table", "fired_by", "description"}},
	"sysevent_script_action": {"Script Action", []string{"name", "event_name", "active", "script", "synchronous"}},
	"sys_properties":         {"System Property", []string{"name", "type", "value", "description", "is_private", "read_roles", "write_roles"}},
	"sys_ui_action":          {"UI Action", []string{"name", "table", "action_name", "active", "form_button", "form_link", "show_insert", "show_update", "client", "condition", "script"}},
	"sc_cat_item":            {"Catalog Item", []string{"name", "short_description", "active", "sc_catalogs", "type"}},
	"item_option_new":        {"Variable", []string{"name", "question_text", "type", "mandatory", "order", "cat_item", "variable_set", "reference"}},
	"question_choice":        {"Question Choice", []string{"question", "value", "text", "order"}},
	"item_option_new_set":    {"Variable Set", []string{"title", "internal_name", "type", "order"}},
	"io_set_item":            {"Catalog Item Variable Set", []string{"sc_cat_item", "variable_set", "order"}},
	"sys_dictionary":         {"Dictionary", []string{"name", "element", "column_label", "internal_type", "max_length", "active"}},
}

type element struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Inner   []element  `xml:",any"`
	Text    string     `xml:",chardata"`
}

func (e element) attr(name string) string {
	for _, a := range e.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (e element) names() []string {
	var out []string
	for _, c := range e.Inner {
		out = append(out, c.XMLName.Local)
	}
	return out
}

func (e element) field(name string) string {
	for _, c := range e.Inner {
		if c.XMLName.Local == name {
			return c.Text
		}
	}
	return ""
}

func parse(t *testing.T, b []byte) element {
	t.Helper()
	var e element
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = true
	require.NoError(t, dec.Decode(&e))
	// Nothing but whitespace after the root element.
	tok, err := dec.Token()
	for err == nil {
		if cd, ok := tok.(xml.CharData); !ok || strings.TrimSpace(string(cd)) != "" {
			t.Fatalf("content after the root element: %v", tok)
		}
		tok, err = dec.Token()
	}
	require.ErrorIs(t, err, io.EOF)
	return e
}

// TestStructure: the file is well-formed, has the structure of an exported
// update set, and every payload is a well-formed record_update of a known
// record type with the fields it needs.
func TestStructure(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(dir, updateset.FileName))
	require.NoError(t, err)
	root := parse(t, b)
	require.Equal(t, "unload", root.XMLName.Local)
	require.Regexp(t, `^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$`, root.attr("unload_date"))
	require.NotEmpty(t, root.Inner)
	set := root.Inner[0]
	require.Equal(t, "sys_remote_update_set", set.XMLName.Local, "the update set comes first")
	require.Equal(t, remoteUpdateSetFields, set.names())
	require.Equal(t, "loaded", set.field("state"))
	setID := set.field("sys_id")

	count := map[string]int{}
	seen := map[string]bool{}
	for _, u := range root.Inner[1:] {
		require.Equal(t, "sys_update_xml", u.XMLName.Local)
		require.Equal(t, "INSERT_OR_UPDATE", u.attr("action"))
		require.Equal(t, updateXMLFields, u.names())
		require.Equal(t, setID, u.field("remote_update_set"), "every update belongs to the update set")
		name := u.field("name")
		require.False(t, seen[name], "update %s appears once", name)
		seen[name] = true

		payload := parse(t, []byte(u.field("payload")))
		require.Equal(t, "record_update", payload.XMLName.Local)
		require.NotEmpty(t, payload.Inner)
		rec := payload.Inner[0]
		table := rec.XMLName.Local
		spec, ok := recordFields[table]
		require.True(t, ok, "%s: unexpected record type %s", name, table)
		count[table]++
		require.Equal(t, spec.typ, u.field("type"), name)
		require.Equal(t, "INSERT_OR_UPDATE", rec.attr("action"))
		want := table
		if table == "sys_dictionary" {
			want = rec.field("name") // a field belongs to its table's record_update
			require.Equal(t, "sys_documentation", payload.Inner[1].XMLName.Local, "the field's label comes with it")
		}
		require.Equal(t, want, payload.attr("table"), name)
		got := rec.names()
		for _, f := range append(spec.fields, "sys_id", "sys_update_name", "sys_scope", "sys_class_name") {
			require.Contains(t, got, f, "%s (%s) has %s", name, table, f)
		}
		require.True(t, sort.StringsAreSorted(got), "%s: fields in export order", name)
		require.Equal(t, name, rec.field("sys_update_name"))
		require.Regexp(t, `^[0-9a-f]{32}$`, rec.field("sys_id"))
	}
	for table := range recordFields {
		require.Positive(t, count[table], "the update set holds a %s", table)
	}
	require.GreaterOrEqual(t, count["sys_script"], 2, "the change and request item business rules")
	// Every property the scripts read (TestPropertiesMatchScripts) is in
	// the file once.
	recs, err := updateset.Load(dir)
	require.NoError(t, err)
	props := 0
	for _, r := range recs {
		if r.Table == "sys_properties" {
			props++
		}
	}
	require.Equal(t, props, count["sys_properties"])
}

// TestScriptsVerbatim: every script file's text is in the update set as it
// is, under the record its name's convention gives it, and every script file
// is either in it or a flow/workflow snippet.
func TestScriptsVerbatim(t *testing.T) {
	t.Parallel()
	recs, err := updateset.Load(dir)
	require.NoError(t, err)
	bySource := map[string][]updateset.Record{}
	for _, r := range recs {
		bySource[r.Source] = append(bySource[r.Source], r)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.js"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		base := filepath.Base(f)
		if strings.HasSuffix(base, "_workflow.js") {
			require.Empty(t, bySource[base])
			continue
		}
		text, err := os.ReadFile(f)
		require.NoError(t, err)
		var found bool
		for _, r := range bySource[base] {
			for _, fl := range r.Fields {
				found = found || (fl.Name == "script" && fl.Value == string(text))
			}
		}
		require.True(t, found, "%s is a script of the update set", base)
	}
	for _, s := range updateset.Scripts(recs) {
		require.NotEmpty(t, strings.TrimSpace(s.Text), s.Record)
	}
}

// TestPropertiesMatchScripts: the system properties of the update set are
// the ones the scripts read.
func TestPropertiesMatchScripts(t *testing.T) {
	t.Parallel()
	recs, err := updateset.Load(dir)
	require.NoError(t, err)
	var shipped []string
	for _, r := range recs {
		if r.Table == "sys_properties" {
			shipped = append(shipped, r.TargetName)
		}
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.js"))
	require.NoError(t, err)
	read := map[string]bool{}
	call := regexp.MustCompile(`gs\.getProperty\('([^']+)'`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range call.FindAllStringSubmatch(string(b), -1) {
			read[m[1]] = true
		}
	}
	var want []string
	for p := range read {
		want = append(want, p)
	}
	require.ElementsMatch(t, want, shipped)
}

// TestConventions: a new script is picked up by its name, and a name that
// follows no convention is an error rather than silently left out.
func TestConventions(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	for _, f := range []string{"system_properties.json", "change_request_fields.json", "catalog_item_automated_patching.variables.json"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(tmp, f), b, 0o600))
	}
	action := "/*\n * UI action.\n *\n *   Name:         Resume rollout\n *   Table:        Change Request [change_request]\n *   Action name:  autopatch_resume\n *   Form button:  true\n *   Condition:    current.active == true\n */\n(function () {\n    action.setRedirectURL(current);\n})();\n"
	require.NoError(t, os.WriteFile(filepath.Join(tmp, "change_request_resume.ui_action.js"), []byte(action), 0o600))
	recs, err := updateset.Load(tmp)
	require.NoError(t, err)
	var got []string
	for _, r := range recs {
		if r.Table == "sys_ui_action" {
			got = append(got, r.TargetName)
		}
	}
	require.Equal(t, []string{"Resume rollout"}, got)

	require.NoError(t, os.WriteFile(filepath.Join(tmp, "helper.js"), []byte("var x = 1;\n"), 0o600))
	_, err = updateset.Load(tmp)
	require.ErrorContains(t, err, "helper.js: no update-set convention")

	require.NoError(t, os.Remove(filepath.Join(tmp, "helper.js")))
	require.NoError(t, os.WriteFile(filepath.Join(tmp, "bad.br.js"), []byte("/*\n *   Name: x\n */\nvar a;\n"), 0o600))
	_, err = updateset.Load(tmp)
	require.ErrorContains(t, err, "bad.br.js: the leading comment lacks Table:, When:")
}
