package sccm_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/connectors/winrm/pscheck"
)

// TestTemplatesMatchDocumentedSignatures extracts every command invocation of
// every template and fails on any cmdlet, parameter, parameter-set combination
// or literal value that the documented table (cmdlets.yaml) does not hold.
func TestTemplatesMatchDocumentedSignatures(t *testing.T) {
	t.Parallel()

	table := sccm.Signatures()
	for _, tpl := range sccm.Templates() {
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

// TestSignatureTable reports the table's size and checks that every cmdlet
// it holds is called by some template: a row nobody uses is a row nobody
// re-checks when the docs change.
func TestSignatureTable(t *testing.T) {
	t.Parallel()

	table := sccm.Signatures()
	cmdlets, sets := table.Counts()
	t.Logf("cmdlets.yaml: %d cmdlets, %d parameter sets", cmdlets, sets)
	require.Equal(t, 15, cmdlets)

	used := map[string]bool{}
	for _, tpl := range sccm.Templates() {
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
