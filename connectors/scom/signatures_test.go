package scom_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/scom"
	"github.com/autopatch/autopatch/connectors/winrm/pscheck"
)

// TestTemplatesMatchDocumentedSignatures extracts every command invocation of
// every template and fails on any cmdlet, parameter, parameter-set combination
// or literal value that the documented table (cmdlets.yaml) does not hold.
func TestTemplatesMatchDocumentedSignatures(t *testing.T) {
	t.Parallel()

	table := scom.Signatures()
	for _, tpl := range scom.Templates() {
		t.Run(tpl.Name, func(t *testing.T) {
			t.Parallel()
			s, err := pscheck.Parse(tpl.Script)
			require.NoError(t, err)
			require.NotEmpty(t, s.Invocations)
			for _, p := range table.Check(tpl.Script) {
				t.Errorf("%s line %d: %s\n    %s", tpl.Name, p.Line, p.Message, p.Text)
			}
		})
	}
}

// TestSignatureTableRefusesWrongTemplates feeds deliberately wrong variants
// of a real template and expects PowerShell's refusal for each.
func TestSignatureTableRefusesWrongTemplates(t *testing.T) {
	t.Parallel()

	raise := scom.Templates()[0].Script
	tests := []struct {
		name, from, to, want string
	}{
		{"UndocumentedParameter", "Get-SCOMAlert -Criteria $criteria", "Get-SCOMAlert -Criteria $criteria -Filter 'x'",
			"A parameter cannot be found that matches parameter name 'Filter'."},
		{"ParametersOfTwoSets", "Get-SCOMClass -Name 'Microsoft.Windows.Computer'", "Get-SCOMClass -Name 'Microsoft.Windows.Computer' -Id $id",
			"Parameter set cannot be resolved using the specified named parameters."},
		{"UnknownCmdlet", "Get-SCOMClassInstance -Class $class", "Get-SCOMMonitoringObject -Class $class",
			"The term 'Get-SCOMMonitoringObject' is not recognized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wrong := strings.Replace(raise, tt.from, tt.to, 1)
			require.NotEqual(t, raise, wrong)
			probs := scom.Signatures().Check(wrong)
			require.NotEmpty(t, probs)
			require.Contains(t, probs[0].Message, tt.want)
		})
	}
}

// TestSignatureTable reports the table's size and checks that every cmdlet
// it holds is called by some template: a row nobody uses is a row nobody
// re-checks when the docs change.
func TestSignatureTable(t *testing.T) {
	t.Parallel()

	table := scom.Signatures()
	cmdlets, sets := table.Counts()
	t.Logf("cmdlets.yaml: %d cmdlets, %d parameter sets", cmdlets, sets)
	require.Equal(t, 7, cmdlets)

	used := map[string]bool{}
	for _, tpl := range scom.Templates() {
		s, err := pscheck.Parse(tpl.Script)
		require.NoError(t, err)
		for _, inv := range s.Invocations {
			if c, ok := table.Lookup(inv.Name); ok {
				used[c.Name] = true
			}
		}
	}
	for _, name := range table.Names() {
		require.True(t, used[name], "cmdlets.yaml holds %s, which no template calls", name)
	}
}
