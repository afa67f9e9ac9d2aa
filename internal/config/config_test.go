package config

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoad(t *testing.T) {
	t.Parallel()

	t.Run("Defaults", func(t *testing.T) {
		t.Parallel()
		cfg, err := Load(env(nil), "")
		require.NoError(t, err)
		require.Equal(t, ":8080", cfg.Listen)
		require.Equal(t, 5*time.Minute, cfg.StatusPollInterval)
		require.True(t, cfg.MigrateOnStart)
		require.Equal(t, 2, cfg.Queues.SCCM)
		require.Equal(t, "ntlm", cfg.SCCM.Auth)
		require.False(t, cfg.SCCM.InsecureSkipVerify)
		require.Equal(t, Incident{Urgency: 2, Impact: 2}, cfg.Incident)
		require.Equal(t, 50, cfg.StormThreshold)
		require.Empty(t, cfg.SCOMWindowComputer)
	})

	t.Run("EnvironmentOverridesFile", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		file := filepath.Join(dir, "autopatch.yaml")
		require.NoError(t, os.WriteFile(file, []byte("listen: ':9000'\nsccm_endpoint: https://sccm01:5986/wsman\nqueue_sccm_workers: 3\n"), 0o600))
		cfg, err := Load(env(map[string]string{"AUTOPATCH_LISTEN": ":9100"}), file)
		require.NoError(t, err)
		require.Equal(t, ":9100", cfg.Listen)
		require.Equal(t, "https://sccm01:5986/wsman", cfg.SCCM.Endpoint)
		require.Equal(t, 3, cfg.Queues.SCCM)
	})

	t.Run("SecretFromFile", func(t *testing.T) {
		t.Parallel()
		file := filepath.Join(t.TempDir(), "secret")
		require.NoError(t, os.WriteFile(file, []byte("s3cr3t\n"), 0o600))
		cfg, err := Load(env(map[string]string{"AUTOPATCH_SCCM_PASSWORD_FILE": file}), "")
		require.NoError(t, err)
		require.Equal(t, "s3cr3t", cfg.SCCM.Password.Reveal())
	})

	t.Run("SecretAndFileBothSet", func(t *testing.T) {
		t.Parallel()
		_, err := Load(env(map[string]string{
			"AUTOPATCH_API_TOKEN": "a", "AUTOPATCH_API_TOKEN_FILE": "/x",
		}), "")
		require.ErrorContains(t, err, "AUTOPATCH_API_TOKEN and AUTOPATCH_API_TOKEN_FILE are both set")
	})

	t.Run("UnknownFileKey", func(t *testing.T) {
		t.Parallel()
		file := filepath.Join(t.TempDir(), "c.yaml")
		require.NoError(t, os.WriteFile(file, []byte("lisen: ':1'\n"), 0o600))
		_, err := Load(env(nil), file)
		require.ErrorContains(t, err, "unknown settings: lisen")
	})

	invalid := []struct {
		name, key, value, want string
	}{
		{"Duration", "AUTOPATCH_STATUS_POLL_INTERVAL", "5 minutes", `AUTOPATCH_STATUS_POLL_INTERVAL="5 minutes" is invalid`},
		{"NegativeDuration", "AUTOPATCH_SHUTDOWN_TIMEOUT", "-1s", "AUTOPATCH_SHUTDOWN_TIMEOUT"},
		{"Bool", "AUTOPATCH_MIGRATE_ON_START", "maybe", "AUTOPATCH_MIGRATE_ON_START"},
		{"Int", "AUTOPATCH_QUEUE_SCCM_WORKERS", "0", "AUTOPATCH_QUEUE_SCCM_WORKERS"},
		{"Auth", "AUTOPATCH_SCOM_AUTH", "digest", "AUTOPATCH_SCOM_AUTH"},
		{"Endpoint", "AUTOPATCH_SCCM_ENDPOINT", "sccm01:5986", "AUTOPATCH_SCCM_ENDPOINT"},
		{"LogLevel", "AUTOPATCH_LOG_LEVEL", "loud", "AUTOPATCH_LOG_LEVEL"},
		{"Urgency", "AUTOPATCH_INCIDENT_URGENCY", "4", "AUTOPATCH_INCIDENT_URGENCY=4 is invalid"},
		{"Impact", "AUTOPATCH_INCIDENT_IMPACT", "high", `AUTOPATCH_INCIDENT_IMPACT="high" is invalid`},
		{"BudgetNegative", "AUTOPATCH_ERROR_BUDGET", "-1", `AUTOPATCH_ERROR_BUDGET is invalid: "-1"`},
		{"BudgetShareAbove100", "AUTOPATCH_ERROR_BUDGET", "110%", `AUTOPATCH_ERROR_BUDGET is invalid: "110%"`},
		{"BudgetQuoted", "AUTOPATCH_ERROR_BUDGET", `"12"`, `AUTOPATCH_ERROR_BUDGET is invalid`},
		{"StormThreshold", "AUTOPATCH_STORM_THRESHOLD", "0", "AUTOPATCH_STORM_THRESHOLD"},
		{"DatabaseURL", "AUTOPATCH_DATABASE_URL", "mysql://x", "AUTOPATCH_DATABASE_URL is invalid"},
	}
	for _, tt := range invalid {
		t.Run("Invalid"+tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(env(map[string]string{tt.key: tt.value}), "")
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()

	cfg, err := Load(env(nil), "")
	require.NoError(t, err)
	require.ErrorContains(t, cfg.ValidateDatabase(), "AUTOPATCH_DATABASE_URL is required")
	err = cfg.ValidateServe()
	require.ErrorContains(t, err, "AUTOPATCH_DATABASE_URL is required")
	require.ErrorContains(t, err, "AUTOPATCH_WEBHOOK_SECRET")
	require.ErrorContains(t, err, "AUTOPATCH_API_TOKEN is required")
	require.ErrorContains(t, err, "AUTOPATCH_SCHEDULES_FILE is required")
	require.ErrorContains(t, err, "AUTOPATCH_SCCM_ENDPOINT is required")
	require.ErrorContains(t, err, "AUTOPATCH_SCCM_USER and AUTOPATCH_SCCM_PASSWORD are required")
	require.ErrorContains(t, err, "AUTOPATCH_SCOM_ENDPOINT is required")
	require.ErrorContains(t, err, "AUTOPATCH_SCOM_USER and AUTOPATCH_SCOM_PASSWORD are required")
	require.ErrorContains(t, err, "AUTOPATCH_SERVICENOW_URL is required")

	cfg, err = Load(env(map[string]string{
		"AUTOPATCH_DATABASE_URL":        "postgres://u:p@localhost/db",
		"AUTOPATCH_WEBHOOK_SECRET":      "k",
		"AUTOPATCH_API_TOKEN":           "t",
		"AUTOPATCH_SCHEDULES_FILE":      "schedules.yaml",
		"AUTOPATCH_SCCM_ENDPOINT":       "https://sccm01:5986/wsman",
		"AUTOPATCH_SCCM_USER":           "CORP\\svc-autopatch",
		"AUTOPATCH_SCCM_PASSWORD":       "p",
		"AUTOPATCH_SCOM_ENDPOINT":       "https://scom01:5986/wsman",
		"AUTOPATCH_SCOM_USER":           "CORP\\svc-autopatch",
		"AUTOPATCH_SCOM_PASSWORD":       "p",
		"AUTOPATCH_SERVICENOW_URL":      "https://example.service-now.com",
		"AUTOPATCH_SERVICENOW_USER":     "svc.autopatch",
		"AUTOPATCH_SERVICENOW_PASSWORD": "p",
	}), "")
	require.NoError(t, err)
	require.NoError(t, cfg.ValidateServe())
}

// TestSecretsNeverPrinted checks every way a secret could reach a log line or
// an error message.
func TestSecretsNeverPrinted(t *testing.T) {
	t.Parallel()

	const value = "hunter2-very-secret"
	vars := map[string]string{}
	for _, s := range Settings() {
		if s.Secret {
			vars[s.Env] = value
		}
	}
	vars["AUTOPATCH_DATABASE_URL"] = "postgres://autopatch:" + value + "@db/autopatch"
	cfg, err := Load(env(vars), "")
	require.NoError(t, err)

	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	logger.Info("config", "cfg", cfg, "sccm", cfg.SCCM, "token", cfg.APIToken)
	js, err := json.Marshal(cfg)
	require.NoError(t, err)
	for _, out := range []string{
		buf.String(), string(js),
		fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg.WebhookSecret),
		RedactURL(cfg.DatabaseURL.Reveal()),
	} {
		require.NotContains(t, out, value)
	}

	// An invalid secret's error names the setting but not the value.
	_, err = Load(env(map[string]string{"AUTOPATCH_DATABASE_URL": "mysql://" + value}), "")
	require.ErrorContains(t, err, "AUTOPATCH_DATABASE_URL")
	require.NotContains(t, err.Error(), value)
}

func TestSettingsDocumented(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, s := range Settings() {
		require.NotEmpty(t, s.Doc, s.Env)
		require.False(t, seen[s.Env], "duplicate %s", s.Env)
		seen[s.Env] = true
	}
	require.True(t, seen["AUTOPATCH_SCCM_ENDPOINT"])
	require.True(t, seen["AUTOPATCH_SERVICENOW_OAUTH_CLIENT_SECRET"])
}

var update = flag.Bool("update", false, "rewrite the README's configuration table")

// TestREADMEDocumentsEverySetting keeps the README's configuration table in
// step with the settings autopatch reads. Regenerate it with
// go test ./internal/config -run README -update.
func TestREADMEDocumentsEverySetting(t *testing.T) {
	const path = "../../README.md"
	const begin, end = "<!-- config-table -->\n", "<!-- /config-table -->\n"
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	readme := string(b)
	i, j := strings.Index(readme, begin), strings.Index(readme, end)
	require.True(t, i >= 0 && j > i, "README.md lacks the config-table markers")

	var table strings.Builder
	table.WriteString("| variable | default | secret (`_FILE` too) | meaning |\n| --- | --- | --- | --- |\n")
	for _, s := range Settings() {
		def, secret := "—", ""
		if s.Default != "" {
			def = "`" + s.Default + "`"
		}
		if s.Secret {
			secret = "yes"
		}
		fmt.Fprintf(&table, "| `%s` | %s | %s | %s |\n", s.Env, def, secret, s.Doc)
	}
	want := readme[:i+len(begin)] + table.String() + readme[j:]
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(want), 0o644))
		return
	}
	if want != readme {
		t.Fatal("README.md's configuration table is out of date: go test ./internal/config -run README -update")
	}
}

// TestLoadServeReportsEverythingAtOnce: invalid values, invalid
// combinations and missing settings come in one error, each named once.
func TestLoadServeReportsEverythingAtOnce(t *testing.T) {
	t.Parallel()

	_, err := LoadServe(env(map[string]string{
		"AUTOPATCH_STATUS_POLL_INTERVAL":  "often",
		"AUTOPATCH_QUEUE_SCCM_WORKERS":    "0",
		"AUTOPATCH_LOG_LEVEL":             "chatty",
		"AUTOPATCH_SCCM_ENDPOINT":         "sccm01:5986",
		"AUTOPATCH_SAFETY_REQUEST_POLICY": "maybe",
	}), "")
	require.Error(t, err)
	msg := err.Error()
	for _, name := range []string{
		"AUTOPATCH_STATUS_POLL_INTERVAL=", "AUTOPATCH_QUEUE_SCCM_WORKERS=", "AUTOPATCH_LOG_LEVEL=",
		"AUTOPATCH_SCCM_ENDPOINT=", "AUTOPATCH_SAFETY_REQUEST_POLICY=",
		"AUTOPATCH_DATABASE_URL is required", "AUTOPATCH_API_TOKEN is required", "AUTOPATCH_SCOM_ENDPOINT is required",
		"AUTOPATCH_SERVICENOW_URL is required", "AUTOPATCH_SCHEDULES_FILE is required", "AUTOPATCH_WEBHOOK_SECRET or",
	} {
		require.Equal(t, 1, strings.Count(msg, name), "%s once in:\n%s", name, msg)
	}
}

// TestDefaultTenant: with a tenants file, the AUTOPATCH_* tenant is served
// only when one of its settings is set, and then it must be complete;
// without one it is always served.
func TestDefaultTenant(t *testing.T) {
	t.Parallel()
	base := map[string]string{"AUTOPATCH_DATABASE_URL": "postgres://localhost/autopatch"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}

	t.Run("TenantsOnly", func(t *testing.T) {
		t.Parallel()
		cfg, err := LoadServe(env(with("AUTOPATCH_TENANTS_FILE", "tenants.yaml", "AUTOPATCH_METRICS_TOKEN", "m")), "")
		require.NoError(t, err)
		require.False(t, cfg.DefaultTenant())
	})
	t.Run("MetricsTokenRequired", func(t *testing.T) {
		t.Parallel()
		_, err := LoadServe(env(with("AUTOPATCH_TENANTS_FILE", "tenants.yaml")), "")
		require.ErrorContains(t, err, "AUTOPATCH_METRICS_TOKEN is required with AUTOPATCH_TENANTS_FILE")
	})
	t.Run("HalfADefaultIsReported", func(t *testing.T) {
		t.Parallel()
		_, err := LoadServe(env(with("AUTOPATCH_TENANTS_FILE", "tenants.yaml", "AUTOPATCH_API_TOKEN", "t")), "")
		require.ErrorContains(t, err, "AUTOPATCH_SCHEDULES_FILE is required")
		require.ErrorContains(t, err, "AUTOPATCH_SCCM_ENDPOINT is required")
	})
	t.Run("DatabaseStillRequired", func(t *testing.T) {
		t.Parallel()
		_, err := LoadServe(env(map[string]string{"AUTOPATCH_TENANTS_FILE": "tenants.yaml"}), "")
		require.ErrorContains(t, err, "AUTOPATCH_DATABASE_URL is required")
	})
	t.Run("NoTenantsFile", func(t *testing.T) {
		t.Parallel()
		cfg, err := Load(env(base), "")
		require.NoError(t, err)
		require.True(t, cfg.DefaultTenant())
	})
}
