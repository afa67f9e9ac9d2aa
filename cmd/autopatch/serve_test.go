package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
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
	return configOf(t, testEnv(dbURL))
}

// testEnv is a complete single-tenant configuration whose remote systems
// these tests never contact.
func testEnv(dbURL string) map[string]string {
	return map[string]string{
		"AUTOPATCH_DATABASE_URL":        dbURL,
		"AUTOPATCH_LISTEN":              "127.0.0.1:0",
		"AUTOPATCH_WEBHOOK_SECRET":      "test-secret",
		"AUTOPATCH_API_TOKEN":           "test-token",
		"AUTOPATCH_SHUTDOWN_TIMEOUT":    "5s",
		"AUTOPATCH_SCHEDULES_FILE":      "../../integrations/sccm/schedules.example.yaml",
		"AUTOPATCH_SCCM_ENDPOINT":       "https://127.0.0.1:1/wsman",
		"AUTOPATCH_SCCM_USER":           "autopatch",
		"AUTOPATCH_SCCM_PASSWORD":       "pw",
		"AUTOPATCH_SCOM_ENDPOINT":       "https://127.0.0.1:1/wsman",
		"AUTOPATCH_SCOM_USER":           "autopatch",
		"AUTOPATCH_SCOM_PASSWORD":       "pw",
		"AUTOPATCH_SERVICENOW_URL":      "http://127.0.0.1:1",
		"AUTOPATCH_SERVICENOW_USER":     "autopatch",
		"AUTOPATCH_SERVICENOW_PASSWORD": "pw",
	}
}

// configOf loads env as serve does, and requires what serve requires.
func configOf(t *testing.T, env map[string]string) *config.Config {
	t.Helper()
	cfg, err := config.Load(func(k string) string { return env[k] }, "")
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
	return getAs(t, url, "")
}

// getAs is get with a bearer token (none if empty).
func getAs(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
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
	t.Setenv("AUTOPATCH_SCHEDULES_FILE", "")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"serve"}, &stdout, &stderr)
	require.NotEqual(t, 0, code)
	require.Contains(t, stderr.String(), "AUTOPATCH_DATABASE_URL is required")
	// Every problem at once, not one per start-up.
	require.Contains(t, stderr.String(), "problems with the settings:")
	require.Contains(t, stderr.String(), "  - AUTOPATCH_SCHEDULES_FILE is required")
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

func apiGet(t *testing.T, url, token string) (int, map[string]any) {
	t.Helper()
	code, raw := getAs(t, url, token)
	var body map[string]any
	require.NoError(t, json.Unmarshal([]byte(raw), &body), raw)
	return code, body
}

func TestScheduleAPI(t *testing.T) {
	t.Parallel()
	base := startServer(t, testConfig(t, testdb.URL(t)))

	code, body := apiGet(t, base+"/api/v1/schedules", "")
	require.Equal(t, http.StatusUnauthorized, code)
	require.Equal(t, "unauthorized", body["error"])
	code, _ = apiGet(t, base+"/api/v1/schedules", "wrong-token")
	require.Equal(t, http.StatusUnauthorized, code)

	code, body = apiGet(t, base+"/api/v1/schedules", "test-token")
	require.Equal(t, http.StatusOK, code)
	names := []string{}
	for _, s := range body["schedules"].([]any) {
		names = append(names, s.(map[string]any)["name"].(string))
	}
	require.Contains(t, names, "DB-SAT-0200")
	require.Contains(t, names, "WEB-3RD-SUN")

	// December 2026: Patch Tuesday is the 8th (the 1st is a Tuesday), so
	// PT+4 at 02:00 Europe/London (GMT in winter) is Saturday the 12th.
	code, body = apiGet(t, base+"/api/v1/schedules/DB-SAT-0200/windows?from=2026-12-01T00:00:00Z&to=2027-01-01T00:00:00Z", "test-token")
	require.Equal(t, http.StatusOK, code)
	windows := body["windows"].([]any)
	require.Len(t, windows, 1)
	w := windows[0].(map[string]any)
	require.Equal(t, "2026-12-12T02:00:00+00:00", w["start"], "local time with the schedule's own offset")
	require.Equal(t, "2026-12-12T02:00:00Z", w["start_utc"])
	require.Equal(t, "2026-12", w["cycle"])
	require.Equal(t, "2026-12-12T06:00:00Z", w["end_utc"])

	for _, tt := range []struct{ query, field string }{
		{"from=yesterday", "from"},
		{"from=2026-12-01T00:00:00Z&to=2026-11-01T00:00:00Z", "to"},
		{"from=2026-01-01T00:00:00Z&to=2028-01-01T00:00:00Z", "to"},
	} {
		code, body = apiGet(t, base+"/api/v1/schedules/DB-SAT-0200/windows?"+tt.query, "test-token")
		require.Equal(t, http.StatusBadRequest, code, tt.query)
		require.Equal(t, "validation_failed", body["error"])
		require.Equal(t, tt.field, body["details"].([]any)[0].(map[string]any)["field"], tt.query)
	}
	code, _ = apiGet(t, base+"/api/v1/schedules/NOPE/windows", "test-token")
	require.Equal(t, http.StatusNotFound, code)
}

// TestServeReloadFailureShows: a schedules file that fails to reload keeps
// the schedules in force, and says so in /readyz (still 200) and in
// autopatch_reload_failed, until a reload succeeds.
func TestServeReloadFailureShows(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, testdb.URL(t))
	good, err := os.ReadFile(cfg.SchedulesFile)
	require.NoError(t, err)
	cfg.SchedulesFile = filepath.Join(t.TempDir(), "schedules.yaml")
	require.NoError(t, os.WriteFile(cfg.SchedulesFile, good, 0o600))

	ctx, cancel := context.WithCancel(context.Background())
	srv, err := initServer(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	base := "http://" + srv.listener.Addr().String()
	waitStatus(t, base+"/readyz", http.StatusOK)
	_, metrics := get(t, base+"/metrics")
	require.Contains(t, metrics, `autopatch_reload_failed{file="schedules"} 0`)

	require.NoError(t, os.WriteFile(cfg.SchedulesFile, []byte("schedules:\n  - name: X\n    collection: C\n    timezone: Europe/Lundon\n    recurrence: {anchor: patch_tuesday, offset_days: 0}\n    start: \"02:00\"\n    duration: 1h\n"), 0o600))
	srv.reload(ctx)
	code, body := get(t, base+"/readyz")
	require.Equal(t, http.StatusOK, code, "the old schedules stay in force: still ready")
	var ready struct {
		Status   string   `json:"status"`
		Warnings []string `json:"warnings"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &ready))
	require.Equal(t, "ok", ready.Status)
	require.Len(t, ready.Warnings, 1)
	require.Contains(t, ready.Warnings[0], "schedules file reload failed")
	require.Contains(t, ready.Warnings[0], "Europe/Lundon")
	_, metrics = get(t, base+"/metrics")
	require.Contains(t, metrics, `autopatch_reload_failed{file="schedules"} 1`)
	require.Contains(t, metrics, `autopatch_build_info{`)
	require.Contains(t, metrics, `autopatch_jobs{queue="sccm",state="available"} 0`)
	require.Contains(t, metrics, "autopatch_deployments_open_past_close 0")
	require.Contains(t, metrics, `autopatch_remote_calls_total{outcome="unreachable",site="",system="sccm"} 0`)
	code, body = get(t, base+"/api/v1/schedules")
	require.Equal(t, http.StatusUnauthorized, code, body)

	require.NoError(t, os.WriteFile(cfg.SchedulesFile, good, 0o600))
	srv.reload(ctx)
	code, body = get(t, base+"/readyz")
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"status":"ok"}`, body)
	_, metrics = get(t, base+"/metrics")
	require.Contains(t, metrics, `autopatch_reload_failed{file="schedules"} 0`)
}
