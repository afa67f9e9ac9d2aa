package sccm

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestTemplatesAreConstants parses templates.go (and doctor.go) and checks that every Script
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
		require.Containsf(t, tmpl.Script, "$ErrorActionPreference = 'Stop'", "%s must stop on errors", tmpl.Name)
		require.Containsf(t, tmpl.Script, "Write-ApAnswer (", "%s must answer", tmpl.Name)
		require.Equalf(t, 1, strings.Count(tmpl.Script, "Write-ApAnswer ("), "%s answers exactly once", tmpl.Name)
		require.False(t, names[tmpl.Name], "duplicate name %s", tmpl.Name)
		require.False(t, texts[tmpl.Script], "duplicate script %s", tmpl.Name)
		names[tmpl.Name], texts[tmpl.Script] = true, true
		require.Equal(t, tmpl, template(tmpl.Name))
	}
	require.Len(t, names, 11)
}

// TestTemplatesUseTheDocumentedCmdlets pins the ConfigMgr cmdlets and
// parameters of docs/architecture.md §5 to the template that must use them.
func TestTemplatesUseTheDocumentedCmdlets(t *testing.T) {
	t.Parallel()

	tests := []struct {
		template string
		want     []string
	}{
		{ResolveDevicesTemplate, []string{"Get-CMDevice -Name $Name -Fast -DisableWildcardHandling"}},
		{SetMembershipTemplate, []string{
			"Add-CMDeviceCollectionDirectMembershipRule -CollectionId $target.CollectionID -ResourceId $resourceId",
			"Remove-CMDeviceCollectionDirectMembershipRule -CollectionId $other.CollectionID -ResourceId $resourceId -Force",
		}},
		{CreateDeploymentsTemplate, []string{
			"New-CMSoftwareUpdateDeployment @params",
			"DeploymentType          = 'Required'",
			"TimeBasedOn             = 'Utc'",
			"SoftwareInstallation    = $true",
			"AllowRestart            = $true",
			"DeadlineDateTime        = $deadline",
			// $true SUPPRESSES the restart: the Set- page says so (the New-
			// page words it the other way round, MicrosoftDocs/
			// sccm-docs-powershell-ref#237), so the flags are set with Set-
			// and SuppressReboot is read back (issue #12, defect 4).
			"$suppress = [bool]$spec.suppress_restart",
			"Set-CMSoftwareUpdateDeployment -InputObject $deployment -Enable $false -RestartServer $suppress -RestartWorkstation $suppress",
			"if ($suppress) { $wantSuppress = 3 }",
			"if (([int]$deployment.SuppressReboot -band 3) -ne $wantSuppress) {",
			"UserNotification        = 'DisplaySoftwareCenterOnly'",
			// The returned object is never trusted (defect 3): read back, fail loudly.
			"$null = New-CMSoftwareUpdateDeployment @params",
			"if ([bool]$deployment.Enabled) {",
			// An existing deployment's deadline goes through the cmdlet (defect 2).
			"Set-CMSoftwareUpdateDeployment -InputObject $existing -AvailableDateTime $available -DeploymentExpireDateTime $deadline -TimeBasedOn Utc",
			"if (-not (Test-ApSameTime $deployment.EnforcementDeadline $deadline)) {",
		}},
		{SetEnabledTemplate, []string{
			"Set-CMSoftwareUpdateDeployment -InputObject $deployment -Enable $enable",
			"Invoke-CMClientAction -CollectionId $collection.CollectionID -ActionType ClientNotificationRequestMachinePolicyNow",
		}},
		{RefreshPolicyTemplate, []string{"Invoke-CMClientAction -CollectionId $collection.CollectionID -ActionType ClientNotificationRequestMachinePolicyNow"}},
		{DeleteDeploymentsTemplate, []string{"Remove-CMSoftwareUpdateDeployment -InputObject $deployment -Force"}},
		{DeploymentStatusTemplate, []string{
			"Get-CMSoftwareUpdateDeploymentStatus -InputObject $deployment | Get-CMDeploymentStatusDetails",
			"Get-CMCollectionMember -CollectionId $deployment.TargetCollectionID",
			"status_type              = 4",
		}},
		{MaintenanceWindowsTemplate, []string{"ServiceWindowsCount"}},
		{ForceWaveTemplate, []string{
			"if ([string]$collection.CollectionID -like 'SMS*') {",
			// Membership in three calls whatever the wave's size.
			"Get-CMDeviceCollectionDirectMembershipRule -CollectionId $collection.CollectionID",
			"Remove-CMDeviceCollectionDirectMembershipRule -CollectionId $collection.CollectionID -ResourceId $staleIds -Force",
			"Add-CMDeviceCollectionDirectMembershipRule -CollectionId $collection.CollectionID -ResourceId $missingIds",
			"$null = Invoke-CMCollectionUpdate -CollectionId $collection.CollectionID",
			"Get-CMDevice -ResourceId $resourceId -Fast",
			"$null = New-CMSoftwareUpdateDeployment @params",
			"DeploymentType          = 'Required'",
			"AvailableDateTime       = $at",
			"DeadlineDateTime        = $at",
			"TimeBasedOn             = 'Utc'",
			"AllowRestart            = $true",
			"UserNotification        = 'DisplaySoftwareCenterOnly'",
			"AcceptEula              = $true",
			// Enabled once, restarts not suppressed, and read back.
			"if (-not $was) {",
			"Set-CMSoftwareUpdateDeployment -InputObject $deployment -Enable $true -RestartServer $false -RestartWorkstation $false",
			"if (-not [bool]$deployment.Enabled) {",
			"if (([int]$deployment.SuppressReboot -band 3) -ne 0) {",
			"Invoke-CMClientAction -CollectionId $collection.CollectionID -ActionType ClientNotificationRequestMachinePolicyNow",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.template, func(t *testing.T) {
			t.Parallel()
			script := template(tt.template).Script
			for _, w := range tt.want {
				require.Contains(t, script, w)
			}
			require.Contains(t, script, "Import-Module -Name $modulePath")
			require.Contains(t, script, "Get-CMCollection -CollectionType Device -Name $Name -DisableWildcardHandling |")
			require.NotContains(t, script, "EnforcementDeadline'].DateTimeValue")
			require.NotContains(t, script, "$collection.CollectionID -NotificationType", "deprecated since 1710")
			require.Contains(t, script, "Get-PSDrive -PSProvider CMSite")
		})
	}
}

// TestTemplatesReadOnlyWhatTheClientSends checks every $Data.<field> a
// template reads is a key of the data the client sends to it, so the client
// and the templates cannot drift apart silently.
func TestTemplatesReadOnlyWhatTheClientSends(t *testing.T) {
	t.Parallel()

	now := time.Now()
	samples := map[string]any{
		ResolveDevicesTemplate: resolveRequest{Names: []string{"a"}},
		SetMembershipTemplate: membershipRequest{Moves: []moveData{{Device: "a", Collection: "c"}},
			ManagedCollections: []string{"c"}},
		CreateDeploymentsTemplate: createRequest{Deployments: []deploymentData{{Name: "n", Collection: "c",
			UpdateGroup: "g", Available: now, Deadline: now}}},
		SetEnabledTemplate:         enableRequest{Names: []string{"n"}, Enabled: true, RefreshCollections: []string{}},
		RefreshPolicyTemplate:      refreshRequest{Collections: []string{"c"}},
		DeleteDeploymentsTemplate:  namesRequest{Names: []string{"n"}},
		DeploymentStatusTemplate:   namesRequest{Names: []string{"n"}},
		MaintenanceWindowsTemplate: siteRequest{},
		DoctorTemplate:             doctorRequest{Collections: []string{"c"}, UpdateGroups: []string{"g"}},
		DeviceStateTemplate:        deviceStateRequest{Reads: []StateRead{{Collection: "c", UpdateGroups: []string{"g"}}}},
		ForceWaveTemplate: forceRequest{Collection: "c", Devices: []ForceDevice{{Name: "d", ResourceID: 1}},
			Deployments: []ForceDeployment{{Name: "n", UpdateGroup: "g"}}, At: now.UTC().Format(time.RFC3339)},
	}
	// Top-level fields, and the fields of the array elements the templates
	// iterate as $move, $spec and $entry.
	fieldRe := regexp.MustCompile(`\$(Data|move|spec|entry)\.([A-Za-z_]+)`)
	for _, tmpl := range Templates() {
		sample, ok := samples[tmpl.Name]
		require.Truef(t, ok, "no sample for %s", tmpl.Name)
		b, err := json.Marshal(sample)
		require.NoError(t, err)
		var top map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(b, &top))
		keys := map[string][]string{"Data": keysOf(top)}
		for _, arr := range []struct{ field, variable string }{{"moves", "move"}, {"deployments", "spec"}, {"devices", "entry"}} {
			if raw, ok := top[arr.field]; ok {
				var elems []map[string]json.RawMessage
				require.NoError(t, json.Unmarshal(raw, &elems))
				keys[arr.variable] = keysOf(elems[0])
			}
		}
		for _, m := range fieldRe.FindAllStringSubmatch(tmpl.Script, -1) {
			require.Containsf(t, keys[m[1]], m[2], "%s reads $%s.%s, which the client does not send", tmpl.Name, m[1], m[2])
		}
	}
}

func keysOf(m map[string]json.RawMessage) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
