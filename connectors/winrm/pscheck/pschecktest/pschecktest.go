// Package pschecktest holds the signature tests every connector runs on its
// own PowerShell templates, so the SCCM and SCOM connectors check theirs the
// same way.
package pschecktest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/winrm"
	"github.com/autopatch/autopatch/connectors/winrm/pscheck"
)

// TemplatesMatch extracts every command invocation of every template and
// fails on any cmdlet, parameter, parameter-set combination or literal value
// that the documented table does not hold.
func TemplatesMatch(t *testing.T, table *pscheck.Table, templates []winrm.Template) {
	t.Helper()
	for _, tpl := range templates {
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

// TableUsed checks the table's size (wantCmdlets: a row added or dropped is
// a deliberate change) and that every cmdlet it holds is called by some
// template: a row nobody uses is a row nobody re-checks when the docs change.
func TableUsed(t *testing.T, table *pscheck.Table, templates []winrm.Template, wantCmdlets int) {
	t.Helper()
	cmdlets, sets := table.Counts()
	t.Logf("cmdlets.yaml: %d cmdlets, %d parameter sets", cmdlets, sets)
	require.Equal(t, wantCmdlets, cmdlets)

	used := map[string]bool{}
	for _, tpl := range templates {
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
