package scom

import (
	"encoding/json"
	"encoding/xml"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTemplatesAreConstants parses templates.go and checks that every Script
// in Templates() is a constant built only from string literals and other
// constants: nothing can be spliced into a template at run time.
func TestTemplatesAreConstants(t *testing.T) {
	t.Parallel()

	fset := token.NewFileSet()
	var files []*ast.File
	for _, name := range []string{"templates.go", "doctor.go"} {
		f, err := parser.ParseFile(fset, name, nil, 0)
		require.NoError(t, err)
		files = append(files, f)
	}

	consts := map[string]ast.Expr{}
	for _, decl := range slices.Concat(files[0].Decls, files[1].Decls) {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				consts[name.Name] = vs.Values[i]
			}
		}
	}

	var onlyLiterals func(e ast.Expr) bool
	onlyLiterals = func(e ast.Expr) bool {
		switch e := e.(type) {
		case *ast.BasicLit:
			return e.Kind == token.STRING
		case *ast.Ident:
			v, ok := consts[e.Name]
			return ok && onlyLiterals(v)
		case *ast.BinaryExpr:
			return e.Op == token.ADD && onlyLiterals(e.X) && onlyLiterals(e.Y)
		case *ast.ParenExpr:
			return onlyLiterals(e.X)
		}
		return false
	}

	var scripts []string
	ast.Inspect(files[0], func(n ast.Node) bool {
		kv, ok := n.(*ast.KeyValueExpr)
		if !ok {
			return true
		}
		if key, ok := kv.Key.(*ast.Ident); ok && key.Name == "Script" {
			ident, ok := kv.Value.(*ast.Ident)
			require.Truef(t, ok, "Script at %s is not a named constant", fset.Position(kv.Pos()))
			require.Truef(t, onlyLiterals(ident), "Script %s is not built from string constants only", ident.Name)
			scripts = append(scripts, ident.Name)
		}
		return true
	})
	require.Len(t, scripts, len(Templates()), "every template's script was checked")
}

func TestTemplatesShape(t *testing.T) {
	t.Parallel()

	names := map[string]bool{}
	texts := map[string]bool{}
	for _, tmpl := range Templates() {
		require.Truef(t, strings.HasPrefix(tmpl.Script, "param($Data)\n"), "%s must begin with param($Data)", tmpl.Name)
		require.NotContainsf(t, tmpl.Script, "%", "%s: no format verbs or the %% alias", tmpl.Name)
		require.NotContainsf(t, tmpl.Script, "`", "%s: no backtick escapes", tmpl.Name)
		require.NotContainsf(t, tmpl.Script, "Invoke-Expression", "%s: nothing is evaluated as code", tmpl.Name)
		require.NotContainsf(t, tmpl.Script, "$Event ", "%s: $Event is an automatic variable", tmpl.Name)
		require.Containsf(t, tmpl.Script, "$ErrorActionPreference = 'Stop'", "%s must stop on errors", tmpl.Name)
		require.Equalf(t, 1, strings.Count(tmpl.Script, "Write-ApAnswer ("), "%s answers exactly once", tmpl.Name)
		require.False(t, names[tmpl.Name], "duplicate name %s", tmpl.Name)
		require.False(t, texts[tmpl.Script], "duplicate script %s", tmpl.Name)
		names[tmpl.Name], texts[tmpl.Script] = true, true
		require.Equal(t, tmpl, template(tmpl.Name))
	}
	require.Len(t, names, 4)
}

// TestTemplatesUseTheDocumentedCmdlets pins the OperationsManager cmdlets and
// .NET event-log calls of the event-log route to the template that must use them.
func TestTemplatesUseTheDocumentedCmdlets(t *testing.T) {
	t.Parallel()

	tests := []struct {
		template string
		want     []string
	}{
		{RaiseAlertsTemplate, []string{
			"Get-SCOMClass -Name 'Microsoft.Windows.Computer'",
			"Get-SCOMClassInstance -Class $class",
			"[System.Diagnostics.EventLog]::LogNameFromSourceName($ApSource, '.')",
			"[System.Diagnostics.EventInstance]::new([long]$ApEventId, 0, [System.Diagnostics.EventLogEntryType]$entryTypes[[string]$spec.severity])",
			"[System.Diagnostics.EventLog]::WriteEvent($ApSource, $instance, $parameters)",
			"Find-ApAlertsByKey -Key $key -OpenOnly $true",
		}},
		{SetTicketTemplate, []string{"TicketId = $ticket", "Set-SCOMAlert @params"}},
		{ResolveAlertsTemplate, []string{"ResolutionState = $ApClosed", "Set-SCOMAlert @params"}},
	}
	for _, tt := range tests {
		t.Run(tt.template, func(t *testing.T) {
			t.Parallel()
			script := template(tt.template).Script
			for _, w := range tt.want {
				require.Contains(t, script, w)
			}
			require.Contains(t, script, "Import-Module -Name OperationsManager")
			require.Contains(t, script, "New-SCOMManagementGroupConnection -ComputerName $ManagementServer")
			require.Contains(t, script, "Get-SCOMAlert -Criteria $criteria")
		})
	}
	// The constants the Go side and the simulator use are the script's.
	require.Contains(t, prelude, "$ApSource = '"+EventSource+"'")
	require.Contains(t, prelude, "$ApLog = '"+EventLog+"'")
	require.Contains(t, prelude, "$ApEventId = "+strconv.Itoa(EventID)+"\n")
	require.Contains(t, prelude, "$ApMaxEventString = "+strconv.Itoa(MaxEventStringLength)+"\n")
	require.Contains(t, prelude, "$ApMaxKeyLength = "+strconv.Itoa(MaxKeyLength)+"\n")
	require.Contains(t, prelude, "$ApMaxTicketLength = "+strconv.Itoa(MaxTicketIDLength)+"\n")
	require.Contains(t, prelude, "$ApClosed = "+strconv.Itoa(ResolutionClosed)+"\n")
	require.Contains(t, prelude, "ResolutionState <> "+strconv.Itoa(ResolutionClosed)+"'")
	// The only place data meets the criteria language: quoted, quotes doubled.
	require.Contains(t, prelude, `return "'" + $Value.Replace("'", "''") + "'"`)
	require.Equal(t, 1, strings.Count(prelude, "-Criteria ("), "the id look-up is the other criteria, built from a [guid]")
}

// TestTemplatesReadOnlyWhatTheClientSends checks every $Data.<field> (and the
// fields of the array elements the templates iterate) a template reads is a
// key of the data the client sends to it, so the client and the templates
// cannot drift apart silently.
func TestTemplatesReadOnlyWhatTheClientSends(t *testing.T) {
	t.Parallel()

	samples := map[string]any{
		RaiseAlertsTemplate: raiseRequest{Alerts: []alertData{{Key: "k", Device: "d", Severity: "critical", Summary: "s"}}},
		SetTicketTemplate:   ticketRequest{Links: []refData{{Key: "k", TicketID: "INC1"}}},
		// The element keys of refs, with ticket_id, which is omitted when empty.
		ResolveAlertsTemplate: resolveRequest{Refs: []refData{{Key: "k"}}},
		DoctorTemplate:        doctorRequest{},
	}
	fieldRe := regexp.MustCompile(`(?i)\$(Data|spec|link|ref)\.([A-Za-z_]+)`)
	keysOf := func(t *testing.T, v any) (top []string, elems map[string][]string) {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		var m map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(b, &m))
		elems = map[string][]string{}
		for k, raw := range m {
			top = append(top, k)
			var arr []map[string]json.RawMessage
			if json.Unmarshal(raw, &arr) == nil && len(arr) > 0 {
				for ek := range arr[0] {
					elems[k] = append(elems[k], ek)
				}
			}
		}
		return top, elems
	}
	// Array element variables per template.
	element := map[string]map[string]string{
		RaiseAlertsTemplate:   {"spec": "alerts"},
		SetTicketTemplate:     {"link": "links", "ref": "links"}, // Find-ApAlerts -Ref $link
		ResolveAlertsTemplate: {"ref": "refs"},
	}
	for _, tmpl := range Templates() {
		top, elems := keysOf(t, samples[tmpl.Name])
		body := strings.TrimPrefix(tmpl.Script, "param($Data)"+prelude)
		// The doctor's script reports a failed module import or connection
		// instead of throwing, so it has no prelude.
		require.Truef(t, tmpl.Name == DoctorTemplate || body != tmpl.Script, "%s: the script is param, prelude, body", tmpl.Name)
		check := func(text string) {
			for _, m := range fieldRe.FindAllStringSubmatch(text, -1) {
				v := strings.ToLower(m[1])
				if v == "data" {
					require.Containsf(t, top, m[2], "%s reads $Data.%s, which the client does not send", tmpl.Name, m[2])
					continue
				}
				arr, ok := element[tmpl.Name][v]
				if !ok {
					continue // the prelude's Find-ApAlerts, checked below for the templates that call it
				}
				require.Containsf(t, elems[arr], m[2], "%s reads $%s.%s, which the client does not send", tmpl.Name, m[1], m[2])
			}
		}
		check(body)
		if strings.Contains(body, "Find-ApAlerts -Ref") {
			check(prelude)
		}
	}
}

// mp is the part of the management pack the connector depends on.
type mp struct {
	References []struct {
		Alias string `xml:"Alias,attr"`
		ID    string `xml:"ID"`
	} `xml:"Manifest>References>Reference"`
	Rules []struct {
		ID          string `xml:"ID,attr"`
		Target      string `xml:"Target,attr"`
		Remotable   string `xml:"Remotable,attr"`
		DataSources []struct {
			TypeID       string `xml:"TypeID,attr"`
			ComputerName string `xml:"ComputerName"`
			LogName      string `xml:"LogName"`
			Filters      []struct {
				XPath string `xml:"ValueExpression>XPathQuery"`
				Value string `xml:"ValueExpression>Value"`
			} `xml:"Expression>And>Expression>SimpleExpression"`
		} `xml:"DataSources>DataSource"`
		ConditionDetections []struct {
			TypeID string `xml:"TypeID,attr"`
		} `xml:"ConditionDetection"`
		WriteAction struct {
			TypeID         string `xml:"TypeID,attr"`
			Priority       int    `xml:"Priority"`
			Severity       int    `xml:"Severity"`
			EntityType     string `xml:"ManagedEntityTypeId"`
			KeyPropertyID  string `xml:"KeyProperties>KeyProperty>PropertyId"`
			KeyValue       string `xml:"KeyProperties>KeyProperty>Value"`
			AlertMessageID string `xml:"AlertMessageId"`
			Param1         string `xml:"AlertParameters>AlertParameter1"`
			Param2         string `xml:"AlertParameters>AlertParameter2"`
			Suppression    string `xml:"Suppression>SuppressionValue"`
			Custom1        string `xml:"Custom1"`
			Custom2        string `xml:"Custom2"`
			Custom3        string `xml:"Custom3"`
			Custom4        string `xml:"Custom4"`
		} `xml:"WriteActions>WriteAction"`
	} `xml:"Monitoring>Rules>Rule"`
	DisplayStrings []struct {
		ElementID   string `xml:"ElementID,attr"`
		Name        string `xml:"Name"`
		Description string `xml:"Description"`
	} `xml:"LanguagePacks>LanguagePack>DisplayStrings>DisplayString"`
}

// TestManagementPackMatchesTheTemplates reads integrations/scom and checks
// its rules listen for what raise_alerts writes and map the event's
// parameters where the connector and the simulator expect them.
func TestManagementPackMatchesTheTemplates(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../integrations/scom/Autopatch.Alerts.xml")
	require.NoError(t, err)
	var pack mp
	require.NoError(t, xml.Unmarshal(raw, &pack))

	aliases := map[string]string{}
	for _, r := range pack.References {
		aliases[r.ID] = r.Alias
	}
	sc, windows, health := aliases["Microsoft.SystemCenter.Library"], aliases["Microsoft.Windows.Library"], aliases["System.Health.Library"]
	require.NotEmpty(t, sc)
	require.NotEmpty(t, windows)
	require.NotEmpty(t, health)

	param := func(n int) string { return "$Data/Params/Param[" + strconv.Itoa(n) + "]$" }
	// What the template's event carries at each position.
	require.Contains(t, raiseAlertsScript,
		"$parameters = [object[]]@($key, $result.computer, [string]$spec.summary, [string]$spec.description,\n        [string]$spec.change, [string]$spec.error_code, $device)")

	display := map[string][2]string{}
	for _, d := range pack.DisplayStrings {
		display[d.ElementID] = [2]string{d.Name, d.Description}
	}
	wantLevels := map[string]struct{ level, severity, priority int }{
		"critical": {1, 2, 2}, "warning": {2, 1, 1}, "information": {4, 0, 0},
	}
	require.Len(t, pack.Rules, len(wantLevels))
	var seen []string
	for _, r := range pack.Rules {
		t.Run(r.ID, func(t *testing.T) {
			// Every management server reads its own Application log: the
			// template writes on whichever one autopatch reaches.
			require.Equal(t, sc+"!Microsoft.SystemCenter.ManagementServer", r.Target)
			require.Equal(t, "false", r.Remotable)
			require.Len(t, r.DataSources, 1)
			ds := r.DataSources[0]
			require.Equal(t, windows+"!Microsoft.Windows.EventProvider", ds.TypeID)
			require.Equal(t, `$Target/Host/Property[Type="`+windows+`!Microsoft.Windows.Computer"]/NetworkName$`, ds.ComputerName)
			require.Equal(t, EventLog, ds.LogName)
			require.Empty(t, r.ConditionDetections, "the data source filters")
			filters := map[string]string{}
			for _, f := range ds.Filters {
				filters[f.XPath] = f.Value
			}
			require.Len(t, filters, 3)
			require.Equal(t, EventSource, filters["PublisherName"])
			require.Equal(t, strconv.Itoa(EventID), filters["EventDisplayNumber"])
			sev := strings.ToLower(strings.TrimPrefix(r.ID, "Autopatch.Alerts.Rule."))
			want, ok := wantLevels[sev]
			require.True(t, ok, "rule per severity")
			entryType := map[int]string{1: "Error", 2: "Warning", 4: "Information"}[want.level]
			require.Contains(t, raiseAlertsScript, sev+" = '"+entryType+"'", "the template's entry type for %s", sev)
			require.Equal(t, strconv.Itoa(want.level), filters["EventLevel"])
			seen = append(seen, sev)

			wa := r.WriteAction
			require.Equal(t, health+"!System.Health.GenerateAlertForType", wa.TypeID)
			require.Equal(t, want.severity, wa.Severity)
			require.Equal(t, want.priority, wa.Priority)
			require.Equal(t, `$MPElement[Name="`+windows+`!Microsoft.Windows.Computer"]$`, wa.EntityType)
			require.Equal(t, `$MPElement[Name="`+windows+`!Microsoft.Windows.Computer"]/PrincipalName$`, wa.KeyPropertyID)
			require.Equal(t, param(2), wa.KeyValue, "raised on the computer the template found")
			require.Equal(t, param(3), wa.Param1, "{0}: summary")
			require.Equal(t, param(4), wa.Param2, "{1}: description")
			require.Equal(t, param(1), wa.Suppression, "one open alert per key")
			require.Equal(t, param(1), wa.Custom1, "the key, which the templates look alerts up by")
			require.Equal(t, param(5), wa.Custom2, "change")
			require.Equal(t, param(6), wa.Custom3, "error code")
			require.Equal(t, param(7), wa.Custom4, "device")
			require.Contains(t, prelude, "'CustomField1 = '")

			msg := strings.TrimSuffix(strings.TrimPrefix(wa.AlertMessageID, `$MPElement[Name="`), `"]$`)
			require.Equal(t, "{0}\n\n{1}", display[msg][1])
			require.NotEmpty(t, display[msg][0])
			require.NotEmpty(t, display[r.ID][0])
		})
	}
	slices.Sort(seen)
	require.Equal(t, []string{"critical", "information", "warning"}, seen)
}
