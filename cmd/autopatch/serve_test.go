package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/config"
	"github.com/autopatch/autopatch/internal/pgtemp"
	"github.com/autopatch/autopatch/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Run(m) }

func testConfig(t *testing.T, dbURL string) *config.Config {
	t.Helper()
	cfg, err := config.Load(func(k string) string {
		return map[string]string{
			"AUTOPATCH_DATABASE_URL":     dbURL,
			"AUTOPATCH_LISTEN":           "127.0.0.1:0",
			"AUTOPATCH_WEBHOOK_SECRET":   "test-secret",
			"AUTOPATCH_API_TOKEN":        "test-token",
			"AUTOPATCH_SHUTDOWN_TIMEOUT": "5s",
		}[k]
	}, "")
	require.NoError(t, err)
	require.NoError(t, cfg.ValidateServe())
	return cfg
}

// startServer runs serve until the test ends and returns its base URL.
func startServer(t *testing.T, cfg *config.Config) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := initServer(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return "http://" + srv.listener.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// waitStatus polls url until it answers want (readiness changes are
// asynchronous: River starts, the database goes away). It fails the test
// after a generous bound; it asserts a state, not a duration.
func waitStatus(t *testing.T, url string, want int) {
	t.Helper()
	var last int
	for range 300 {
		if last, _ = get(t, url); last == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: status %d, want %d", url, last, want)
}

func TestServeHealth(t *testing.T) {
	t.Parallel()
	base := startServer(t, testConfig(t, testdb.URL(t)))

	code, body := get(t, base+"/healthz")
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"status":"ok"}`, body)
	waitStatus(t, base+"/readyz", http.StatusOK)

	code, body = get(t, base+"/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "autopatch_http_request_duration_seconds")
	require.Contains(t, body, "go_goroutines")

	// Unknown routes get the uniform error body with the request id.
	resp, err := http.Get(base + "/nope")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	var e struct {
		Error     string `json:"error"`
		RequestID string `json:"request_id"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
	require.Equal(t, "not_found", e.Error)
	require.Equal(t, resp.Header.Get("X-Request-Id"), e.RequestID)
	require.NotEmpty(t, e.RequestID)
}

// TestServeReadinessFollowsDatabase stops PostgreSQL under a running serve:
// /readyz turns 503, and 200 again once the database is back, without a
// restart. It uses a cluster of its own so other tests keep theirs.
func TestServeReadinessFollowsDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cluster, err := pgtemp.Start(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cluster.Close() })

	base := startServer(t, testConfig(t, cluster.URL("postgres")))
	waitStatus(t, base+"/readyz", http.StatusOK)

	require.NoError(t, cluster.StopServer(ctx))
	waitStatus(t, base+"/readyz", http.StatusServiceUnavailable)
	code, _ := get(t, base+"/healthz")
	require.Equal(t, http.StatusOK, code, "liveness does not depend on the database")

	require.NoError(t, cluster.StartServer(ctx))
	waitStatus(t, base+"/readyz", http.StatusOK)
}

func TestMigrateTwice(t *testing.T) {
	url := testdb.URL(t)
	t.Setenv("AUTOPATCH_DATABASE_URL", url)
	for range 2 {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"migrate"}, &stdout, &stderr)
		require.Equal(t, 0, code, stderr.String())
		require.Contains(t, stdout.String(), "up to date")
	}
}

func TestServeRequiresDatabaseURL(t *testing.T) {
	t.Setenv("AUTOPATCH_DATABASE_URL", "")
	t.Setenv("AUTOPATCH_DATABASE_URL_FILE", "")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"serve"}, &stdout, &stderr)
	require.NotEqual(t, 0, code)
	require.Contains(t, stderr.String(), "AUTOPATCH_DATABASE_URL is required")
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"serve", "migrate", "plan", "sim"} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{name, "--help"}, &stdout, &stderr)
		require.Equal(t, 0, code, name)
		require.True(t, strings.Contains(stdout.String()+stderr.String(), "Usage"), name)
	}
	var stdout, stderr bytes.Buffer
	require.Equal(t, 2, run(context.Background(), []string{"bogus"}, &stdout, &stderr))
	require.Contains(t, stderr.String(), `unknown command "bogus"`)
}
