package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/config"
	"github.com/autopatch/autopatch/internal/testdb"
)

// tenantsFile writes a tenants file of acme and contoso (each its secrets
// in files beside it, its schedules the example's) with extra appended to
// the list, and returns its path.
func tenantsFile(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"acme", "contoso"} {
		for _, secret := range []string{"sccm", "scom", "snow", "webhook", "token"} {
			require.NoError(t, os.WriteFile(filepath.Join(dir, name+"-"+secret), []byte(name+"-"+secret+"-value\n"), 0o600))
		}
	}
	schedules, err := filepath.Abs("../../integrations/sccm/schedules.example.yaml")
	require.NoError(t, err)
	var b strings.Builder
	b.WriteString("tenants:\n")
	for _, name := range []string{"acme", "contoso"} {
		fmt.Fprintf(&b, `  - name: %[1]s
    sccm:
      - {site: PS1, endpoint: "https://127.0.0.1:1/wsman", user: %[1]s, password_file: %[1]s-sccm}
    scom: {endpoint: "https://127.0.0.1:1/wsman", user: %[1]s, password_file: %[1]s-scom}
    servicenow: {url: "http://127.0.0.1:1", user: %[1]s, password_file: %[1]s-snow}
    schedules_file: %[2]s
    webhook_secret_file: %[1]s-webhook
    api_token_file: %[1]s-token
`, name, schedules)
	}
	b.WriteString(extra)
	path := filepath.Join(dir, "tenants.yaml")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
	return path
}

// tenantsOnlyConfig is a process with a tenants file and no default
// tenant: none of the default tenant's settings is set.
func tenantsOnlyConfig(t *testing.T, dbURL, tenantsPath string) *config.Config {
	t.Helper()
	cfg, err := config.LoadServe(func(k string) string {
		return map[string]string{
			"AUTOPATCH_DATABASE_URL":     dbURL,
			"AUTOPATCH_LISTEN":           "127.0.0.1:0",
			"AUTOPATCH_SHUTDOWN_TIMEOUT": "5s",
			"AUTOPATCH_TENANTS_FILE":     tenantsPath,
			"AUTOPATCH_METRICS_TOKEN":    "ops-token",
		}[k]
	}, "")
	require.NoError(t, err)
	require.False(t, cfg.DefaultTenant())
	return cfg
}

// TestServeTenants: one process serves acme and contoso under /t/{tenant}/
// (docs/architecture.md §10.2), each in its own schema, its credentials
// good on its own path only.
func TestServeTenants(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testdb.URL(t)
	tenantsPath := tenantsFile(t, "")
	base := startServer(t, tenantsOnlyConfig(t, dbURL, tenantsPath))
	waitStatus(t, base+"/readyz", http.StatusOK)

	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	count := func(schema, table string) int {
		t.Helper()
		var n int
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{schema, table}.Sanitize()).Scan(&n))
		return n
	}
	counts := func() map[string]int {
		out := map[string]int{}
		for _, schema := range []string{"public", "tenant_acme", "tenant_contoso"} {
			out[schema+".webhook_events"] = count(schema, "webhook_events")
			out[schema+".river_job"] = count(schema, "river_job")
		}
		return out
	}
	send := func(path, secret, number string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := runSendEnv(ctx, []string{"change", number, "--update-group", "2026-12 Servers", "--schedule", "DB-SAT-0200",
			"--url", base + path}, &stdout, &stderr, secret)
		require.Contains(t, []int{0, 1}, code, stderr.String())
		return stdout.String()
	}

	t.Run("EachTenantsWebhookLandsInItsSchema", func(t *testing.T) {
		before := counts()
		require.Contains(t, send("/t/acme", "acme-webhook-value", "CHG0040001"), "HTTP 202")
		after := counts()
		require.Equal(t, before["tenant_acme.webhook_events"]+1, after["tenant_acme.webhook_events"])
		require.Greater(t, after["tenant_acme.river_job"], before["tenant_acme.river_job"], "the change's job is acme's")
		for _, k := range []string{"public.webhook_events", "public.river_job", "tenant_contoso.webhook_events", "tenant_contoso.river_job"} {
			require.Equal(t, before[k], after[k], k)
		}

		before = counts()
		require.Contains(t, send("/t/contoso", "contoso-webhook-value", "CHG0040001"), "HTTP 202", "the same number at contoso is another change")
		after = counts()
		require.Equal(t, before["tenant_contoso.webhook_events"]+1, after["tenant_contoso.webhook_events"])
		require.Equal(t, before["tenant_acme.webhook_events"], after["tenant_acme.webhook_events"])
		require.Equal(t, before["public.webhook_events"], after["public.webhook_events"])
	})

	t.Run("OtherTenantsSignatureIsRefusedAndNothingRecorded", func(t *testing.T) {
		before := counts()
		require.Contains(t, send("/t/contoso", "acme-webhook-value", "CHG0040002"), "HTTP 401")
		after := counts()
		// The deliveries of the subtests above go on making jobs (plan,
		// creation) meanwhile: the refused one is told by its number.
		for _, k := range []string{"public.webhook_events", "tenant_acme.webhook_events", "tenant_contoso.webhook_events"} {
			require.Equal(t, before[k], after[k], k)
		}
		for _, schema := range []string{"public", "tenant_acme", "tenant_contoso"} {
			var jobs int
			require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{schema, "river_job"}.Sanitize()+
				` WHERE args->>'change_number' = 'CHG0040002'`).Scan(&jobs))
			require.Zero(t, jobs, "no job for the refused delivery in %s", schema)
		}
	})

	notFound := func(t *testing.T, path, token string) map[string]any {
		t.Helper()
		code, body := apiGet(t, base+path, token)
		require.Equal(t, http.StatusNotFound, code, body)
		delete(body, "request_id")
		return body
	}
	t.Run("OtherTenantsTokenIsNotFound", func(t *testing.T) {
		code, body := apiGet(t, base+"/t/acme/api/v1/schedules", "acme-token-value")
		require.Equal(t, http.StatusOK, code, body)
		unknown := notFound(t, "/t/globex/api/v1/schedules", "acme-token-value")
		require.Equal(t, unknown, notFound(t, "/t/contoso/api/v1/schedules", "acme-token-value"),
			"a token of acme on contoso's API is answered as an unknown tenant")
		require.Equal(t, unknown, notFound(t, "/t/contoso/api/v1/changes/CHG0040001", ""))
		require.Equal(t, unknown, notFound(t, "/t/contoso/api/v1/schedules", "contoso-webhook-value"))
	})

	t.Run("UnknownTenantIsNotFound", func(t *testing.T) {
		notFound(t, "/t/globex/api/v1/schedules", "")
		require.Contains(t, send("/t/globex", "acme-webhook-value", "CHG0040003"), "HTTP 404")
		code, _ := get(t, base+"/t/acme/metrics")
		require.Equal(t, http.StatusNotFound, code, "a tenant's metrics need its token")
		code, _ = getAs(t, base+"/t/acme/metrics", "contoso-token-value")
		require.Equal(t, http.StatusNotFound, code, "another tenant's token is answered as an unknown tenant")
	})

	t.Run("TenantsOwnMetrics", func(t *testing.T) {
		code, metrics := getAs(t, base+"/t/acme/metrics", "acme-token-value")
		require.Equal(t, http.StatusOK, code, metrics)
		require.Contains(t, metrics, `autopatch_reload_failed{file="schedules",tenant="acme"} 0`)
		require.NotContains(t, metrics, "contoso")
		for _, line := range strings.Split(metrics, "\n") {
			if line != "" && !strings.HasPrefix(line, "#") {
				require.Contains(t, line, `tenant="acme"`, "only acme's series: %s", line)
			}
		}
	})

	t.Run("NoDefaultTenant", func(t *testing.T) {
		notFound(t, "/api/v1/schedules", "acme-token-value")
		require.Contains(t, send("", "acme-webhook-value", "CHG0040004"), "HTTP 404")
		code, _ := get(t, base+"/healthz")
		require.Equal(t, http.StatusOK, code)
	})

	t.Run("MetricsCarryTheTenant", func(t *testing.T) {
		code, metrics := get(t, base+"/metrics")
		require.Equal(t, http.StatusUnauthorized, code, "with a tenants file, the process's metrics are the operator's")
		require.NotContains(t, metrics, "acme")
		code, metrics = getAs(t, base+"/metrics", "ops-token")
		require.Equal(t, http.StatusOK, code)
		for _, tenant := range []string{"acme", "contoso"} {
			require.Contains(t, metrics, `autopatch_reload_failed{file="schedules",tenant="`+tenant+`"} 0`)
			require.Contains(t, metrics, `autopatch_deployments_open_past_close{tenant="`+tenant+`"} 0`)
			require.Contains(t, metrics, `autopatch_webhook_deliveries_total{kind="change",outcome="accepted",tenant="`+tenant+`"} 1`)
		}
		require.Contains(t, metrics, `autopatch_webhook_deliveries_total{kind="change",outcome="unauthorized",tenant="contoso"} 1`)
		// The queue gauge reads each tenant's own schema at scrape time: a
		// job that no client works, far in the future, in acme's only.
		_, err := conn.Exec(ctx, `INSERT INTO `+pgx.Identifier{"tenant_acme", "river_job"}.Sanitize()+`
			(args, kind, max_attempts, queue, state, scheduled_at) VALUES ('{}', 'probe', 1, 'probe', 'scheduled', now() + interval '1 year')`)
		require.NoError(t, err)
		_, metrics = getAs(t, base+"/metrics", "ops-token")
		require.Contains(t, metrics, `autopatch_jobs{queue="probe",state="scheduled",tenant="acme"} 1`)
		require.NotContains(t, metrics, `autopatch_jobs{queue="probe",state="scheduled",tenant="contoso"}`)
		for _, line := range strings.Split(metrics, "\n") {
			if strings.HasPrefix(line, "autopatch_") && !strings.HasPrefix(line, "autopatch_build_info") {
				require.Contains(t, line, `tenant="`, "every series of autopatch carries a tenant: %s", line)
			}
		}
	})
	// Last: the job of its delivery changes the counts the subtests
	// above compare.
	t.Run("SendAsTenant", func(t *testing.T) {
		sendAs := func(env map[string]string, args ...string) (int, string) {
			t.Helper()
			var stdout, stderr bytes.Buffer
			code := runSendWith(ctx, append([]string{"change", "CHG0040005", "--update-group", "2026-12 Servers", "--schedule", "DB-SAT-0200",
				"--url", base}, args...), &stdout, &stderr, func(k string) string { return env[k] })
			return code, stdout.String() + stderr.String()
		}
		file := map[string]string{"AUTOPATCH_TENANTS_FILE": tenantsPath}
		before := counts()
		code, out := sendAs(file, "--tenant", "contoso")
		require.Equal(t, 0, code, out)
		require.Contains(t, out, "HTTP 202")
		require.NotContains(t, out, "contoso-webhook-value", "the secret is never printed")
		after := counts()
		require.Equal(t, before["tenant_contoso.webhook_events"]+1, after["tenant_contoso.webhook_events"], "signed with contoso's secret, on contoso's path")
		require.Equal(t, before["tenant_acme.webhook_events"], after["tenant_acme.webhook_events"])

		code, out = sendAs(file, "--tenant", "globex")
		require.Equal(t, 2, code, out)
		require.Contains(t, out, "its tenants: acme, contoso")
		code, out = sendAs(map[string]string{"AUTOPATCH_WEBHOOK_SECRET": "x"}, "--tenant", "acme")
		require.Equal(t, 2, code, out)
		require.Contains(t, out, "AUTOPATCH_TENANTS_FILE is not set")
	})
}

// TestServeTenantsWithDefault: a tenants file beside a complete AUTOPATCH_*
// configuration keeps the default tenant at today's routes, labelled
// tenant="default", its token good there only.
func TestServeTenantsWithDefault(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, testdb.URL(t))
	cfg.TenantsFile = tenantsFile(t, "")
	require.True(t, cfg.DefaultTenant())
	base := startServer(t, cfg)
	waitStatus(t, base+"/readyz", http.StatusOK)

	code, body := apiGet(t, base+"/api/v1/schedules", "test-token")
	require.Equal(t, http.StatusOK, code, body)
	code, body = apiGet(t, base+"/api/v1/schedules", "acme-token-value")
	require.Equal(t, http.StatusUnauthorized, code, body)
	code, body = apiGet(t, base+"/t/acme/api/v1/schedules", "test-token")
	require.Equal(t, http.StatusNotFound, code, body)
	code, body = apiGet(t, base+"/t/default/api/v1/schedules", "test-token")
	require.Equal(t, http.StatusNotFound, code, body)
	_, metrics := get(t, base+"/metrics")
	require.Contains(t, metrics, `autopatch_reload_failed{file="schedules",tenant="default"} 0`)
	require.Contains(t, metrics, `autopatch_reload_failed{file="schedules",tenant="acme"} 0`)
}

// TestServeTenantsFileRefused: serve does not start with a tenants file
// that names a tenant twice, lacks a secret or names an unknown site, and
// says which tenant and field.
func TestServeTenantsFileRefused(t *testing.T) {
	t.Parallel()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	schedules := filepath.Join(dir, "schedules.yaml")
	require.NoError(t, os.WriteFile(schedules, []byte(`schedules:
  - {name: LON, collection: "Patch - London", site: US1, windows: [{start: "2026-12-20T22:00:00Z", end: "2026-12-21T02:00:00Z"}]}
`), 0o600))
	for _, tc := range []struct {
		name, extra, want string
	}{
		{"DuplicateName", `  - name: acme
    sccm: [{site: PS1, endpoint: "https://127.0.0.1:1/wsman", user: a, password_file: acme-sccm}]
    scom: {endpoint: "https://127.0.0.1:1/wsman", user: a, password_file: acme-scom}
    servicenow: {url: "http://127.0.0.1:1", user: a, password_file: acme-snow}
    schedules_file: ` + schedules + `
    webhook_secret_file: acme-webhook
    api_token_file: acme-token
`, `tenants[2] "acme": name`},
		{"MissingSecret", `  - name: globex
    sccm: [{site: PS1, endpoint: "https://127.0.0.1:1/wsman", user: g, password_env: GLOBEX_TEST_UNSET_PASSWORD}]
    scom: {endpoint: "https://127.0.0.1:1/wsman", user: g, password_file: acme-scom}
    servicenow: {url: "http://127.0.0.1:1", user: g, password_file: acme-snow}
    schedules_file: ` + schedules + `
    webhook_secret_file: globex-webhook
    api_token_file: acme-token
`, `tenants[2] "globex": sccm[0].password_env: environment variable GLOBEX_TEST_UNSET_PASSWORD is unset or empty`},
		{"UnknownSite", `  - name: initech
    sccm: [{site: PS1, endpoint: "https://127.0.0.1:1/wsman", user: i, password_file: acme-sccm}]
    scom: {endpoint: "https://127.0.0.1:1/wsman", user: i, password_file: acme-scom}
    servicenow: {url: "http://127.0.0.1:1", user: i, password_file: acme-snow}
    schedules_file: ` + schedules + `
    webhook_secret_file: initech-webhook
    api_token_file: initech-token
`, `tenants[2] "initech"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := tenantsFile(t, tc.extra)
			for _, f := range []string{"globex-webhook", "initech-webhook", "initech-token"} {
				require.NoError(t, os.WriteFile(filepath.Join(filepath.Dir(path), f), []byte(f+"\n"), 0o600))
			}
			_, err := initServer(context.Background(), tenantsOnlyConfig(t, testdb.URL(t), path), logger)
			require.ErrorContains(t, err, "AUTOPATCH_TENANTS_FILE: ")
			require.ErrorContains(t, err, tc.want)
			if tc.name == "UnknownSite" {
				require.ErrorContains(t, err, `"US1"`)
			}
		})
	}
}

// TestServeTenantsShareNothingWithDefault: a tenant's webhook secret or API
// token that is also the default tenant's is refused.
func TestServeTenantsShareNothingWithDefault(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, testdb.URL(t))
	cfg.TenantsFile = tenantsFile(t, "")
	cfg.WebhookSecret, cfg.APIToken = "contoso-webhook-value", "acme-token-value"
	_, err := initServer(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.ErrorContains(t, err, `tenants[1] "contoso": webhook_secret: the same as AUTOPATCH_WEBHOOK_SECRET`)
	require.ErrorContains(t, err, `tenants[0] "acme": api_token: the same as AUTOPATCH_API_TOKEN`)
	require.NotContains(t, err.Error(), "-value", "no secret in the message")
}

// TestMigrateTenants: autopatch migrate migrates every tenant's schema too.
func TestMigrateTenants(t *testing.T) {
	t.Parallel()
	dbURL := testdb.URL(t)
	cfg := tenantsOnlyConfig(t, dbURL, tenantsFile(t, ""))
	require.NoError(t, migrateTenants(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil))))
	conn, err := pgx.Connect(context.Background(), dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	for _, schema := range []string{"tenant_acme", "tenant_contoso"} {
		var n int
		require.NoError(t, conn.QueryRow(context.Background(),
			`SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name IN ('webhook_events', 'river_job', 'changes')`, schema).Scan(&n))
		require.Equal(t, 3, n, schema)
	}
}
