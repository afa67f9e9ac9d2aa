package demo

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Run(m) }

// TestDemo runs `autopatch demo` as `make demo` does: the real binary, a
// throwaway PostgreSQL (or TEST_DATABASE_URL's server), the simulated
// estate. It passes only when every expectation of the scenario holds.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo takes about 90 seconds; run without -short")
	}
	bin := filepath.Join(t.TempDir(), "autopatch")
	build := exec.Command("go", "build", "-o", bin, "github.com/autopatch/autopatch/cmd/autopatch")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	summary := filepath.Join(t.TempDir(), "state.json")
	var buf bytes.Buffer
	err = Run(context.Background(), Options{Binary: bin, DatabaseURL: testdb.URL(t), SummaryJSON: summary, Out: &buf})
	require.NoError(t, err, "demo output:\n%s", buf.String())
	require.Contains(t, buf.String(), "Everything expected happened.")

	b, err := os.ReadFile(summary)
	require.NoError(t, err)
	require.Contains(t, string(b), `"deployments"`)
	require.Contains(t, string(b), `"work_notes"`)
}
