package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// TestDemoFailureShowsTheCause: when serve cannot start, the demo's error
// quotes serve's own message, and the log it names still exists.
func TestDemoFailureShowsTheCause(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "autopatch")
	script := "#!/bin/sh\necho 'time=2026-12-03T07:05:00Z level=INFO msg=starting'\necho 'autopatch serve: AUTOPATCH_SCCM_ENDPOINT=\"sccm01\" is invalid: want an absolute URL' >&2\nexit 1\n"
	require.NoError(t, os.WriteFile(bin, []byte(script), 0o755))

	logDir := t.TempDir()
	var buf bytes.Buffer
	err := Run(context.Background(), Options{Binary: bin, DatabaseURL: "postgres://unused@127.0.0.1:1/x", Out: &buf, LogDir: logDir})
	require.Error(t, err)
	require.Contains(t, err.Error(), "serve exited during start-up")
	require.Contains(t, err.Error(), `AUTOPATCH_SCCM_ENDPOINT="sccm01" is invalid`, "the real cause is printed")
	log, rerr := os.ReadFile(filepath.Join(logDir, "serve.log"))
	require.NoError(t, rerr, "the log the error names is kept")
	require.Contains(t, string(log), "is invalid")

	// Without a log directory the demo's own directory is kept on failure.
	buf.Reset()
	err = Run(context.Background(), Options{Binary: bin, DatabaseURL: "postgres://unused@127.0.0.1:1/x", Out: &buf})
	require.Error(t, err)
	require.Contains(t, buf.String(), "are kept in ")
	kept := buf.String()[strings.LastIndex(buf.String(), "are kept in ")+len("are kept in "):]
	kept = strings.TrimSuffix(strings.TrimSpace(kept), ".")
	_, serr := os.Stat(filepath.Join(kept, "serve.log"))
	require.NoError(t, serr)
	require.NoError(t, os.RemoveAll(kept))
}

// TestDemoTenants runs `autopatch demo --tenants` as `make demo-tenants`
// does: one serve, two customers, each with its own simulated estate
// (issue #20). It passes only when every check of the scenario holds.
func TestDemoTenants(t *testing.T) {
	if testing.Short() {
		t.Skip("the two-customer demo takes about 30 seconds; run without -short")
	}
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "autopatch")
	build := exec.Command("go", "build", "-o", bin, "github.com/autopatch/autopatch/cmd/autopatch")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	summary := filepath.Join(t.TempDir(), "state.json")
	var buf bytes.Buffer
	err = RunTenants(context.Background(), Options{Binary: bin, DatabaseURL: testdb.URL(t), SummaryJSON: summary, Out: &buf})
	require.NoError(t, err, "demo output:\n%s", buf.String())
	require.Contains(t, buf.String(), "Everything expected happened.")
	require.Contains(t, buf.String(), "acme SCCM")
	require.Contains(t, buf.String(), "contoso SNOW")

	b, err := os.ReadFile(summary)
	require.NoError(t, err)
	var states map[string]any
	require.NoError(t, json.Unmarshal(b, &states))
	require.Contains(t, states, "acme")
	require.Contains(t, states, "contoso")
}
