package scom_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/scom"
	"github.com/autopatch/autopatch/connectors/winrm/pscheck/pschecktest"
)

// TestTemplatesMatchDocumentedSignatures holds every template to the
// documented table (cmdlets.yaml).
func TestTemplatesMatchDocumentedSignatures(t *testing.T) {
	t.Parallel()
	pschecktest.TemplatesMatch(t, scom.Signatures(), scom.Templates())
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

// TestSignatureTable checks the table's size and that every row is used.
func TestSignatureTable(t *testing.T) {
	t.Parallel()
	pschecktest.TableUsed(t, scom.Signatures(), scom.Templates(), 7)
}
