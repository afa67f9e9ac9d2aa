package sccm_test

import (
	"testing"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/connectors/winrm/pscheck/pschecktest"
)

// TestTemplatesMatchDocumentedSignatures holds every template to the
// documented table (cmdlets.yaml).
func TestTemplatesMatchDocumentedSignatures(t *testing.T) {
	t.Parallel()
	pschecktest.TemplatesMatch(t, sccm.Signatures(), sccm.Templates())
}

// TestSignatureTable checks the table's size and that every row is used.
func TestSignatureTable(t *testing.T) {
	t.Parallel()
	pschecktest.TableUsed(t, sccm.Signatures(), sccm.Templates(), 16)
}
