package wsmansim_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/winrm"
	"github.com/autopatch/autopatch/connectors/winrm/pscheck"
	"github.com/autopatch/autopatch/connectors/winrm/wsmansim"
)

// TestTemplateHostCheckSignatures: with a signature table, the host refuses
// a script the table refuses (a template too) with PowerShell's error record
// before anything is dispatched, and still refuses a documented script that
// is not a template as a constrained endpoint does.
func TestTemplateHostCheckSignatures(t *testing.T) {
	t.Parallel()

	table, err := pscheck.Load()
	require.NoError(t, err)

	t.Run("TemplatesTheTableHolds", func(t *testing.T) {
		t.Parallel()
		h, seen := newTestHost(nil)
		h.CheckSignatures(table)
		out, stderr, exit := h.Run(t.Context(), hostTemplates[0].Script, []byte(`{"a":1}`))
		require.Equal(t, 0, exit, stderr)
		require.JSONEq(t, `{"a":1}`, string(out))
		require.Len(t, seen(), 1)
	})
	t.Run("ScriptTheTableRefuses", func(t *testing.T) {
		t.Parallel()
		h, seen := newTestHost(nil)
		h.CheckSignatures(table)
		script := "param($Data)\n$Data | ConvertTo-Json -Depht 3\n"
		_, stderr, exit := h.Run(t.Context(), script, []byte(`{}`))
		require.Equal(t, 1, exit)
		require.Equal(t, "A parameter cannot be found that matches parameter name 'Depht'.\n"+
			"At line:2 char:9\n"+
			"+ $Data | ConvertTo-Json -Depht 3\n"+
			"+         ~~~~~~~~~~~~~~\n"+
			"    + CategoryInfo          : InvalidArgument: (:) [ConvertTo-Json], ParameterBindingException\n"+
			"    + FullyQualifiedErrorId : NamedParameterNotFound", stderr)
		require.Empty(t, seen(), "nothing dispatched")
	})
	t.Run("TemplateTheTableRefuses", func(t *testing.T) {
		t.Parallel()
		bad := winrm.Template{Name: "Bad", Script: "param($Data)\nGet-Nothing -Name 'x'\n"}
		h := wsmansim.NewTemplateHost("testsim", []winrm.Template{bad}, func(string, []byte) (any, *wsmansim.PSError) {
			t.Fatal("a refused template must not be dispatched")
			return nil, nil
		}, nil)
		h.CheckSignatures(table)
		for range 2 { // the second run uses the remembered result
			_, stderr, exit := h.Run(t.Context(), bad.Script, []byte(`{}`))
			require.Equal(t, 1, exit)
			require.Contains(t, stderr, "The term 'Get-Nothing' is not recognized as the name of a cmdlet")
			require.Contains(t, stderr, "FullyQualifiedErrorId : CommandNotFoundException")
		}
		require.Equal(t, map[string]int{"Bad": 2}, h.CallsByTemplate(), "counted under its own name")
	})
	t.Run("DocumentedButNotATemplate", func(t *testing.T) {
		t.Parallel()
		h, seen := newTestHost(nil)
		h.CheckSignatures(table)
		_, stderr, exit := h.Run(t.Context(), "param($Data)\n$Data | ConvertTo-Json -Depth 3\n", []byte(`{}`))
		require.Equal(t, 1, exit)
		require.Contains(t, stderr, "approved script templates")
		require.Empty(t, seen())
	})
}
