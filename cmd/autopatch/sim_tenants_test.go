package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/config"
	"github.com/autopatch/autopatch/internal/tenants"
)

// TestRunSimTenants: `autopatch sim --tenants acme,contoso` serves one
// estate per customer and writes a tenants file and an env file that
// serve's configuration accepts as they are: the file's tenants only, their
// secrets in the env file, none in the tenants file (issue #20).
func TestRunSimTenants(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seedPath := filepath.Join(dir, "seed.yaml")
	schedulesPath := filepath.Join(dir, "schedules.yaml")
	envPath := filepath.Join(dir, "sim.env")
	require.NoError(t, os.WriteFile(seedPath, []byte(simSeed), 0o600))
	require.NoError(t, os.WriteFile(schedulesPath, []byte(simSchedules), 0o600))

	var stdout, stderr bytes.Buffer
	require.Equal(t, 2, runSim(t.Context(), []string{"--tenants", "acme", "--schedules", schedulesPath}, &stdout, &stderr))
	require.Contains(t, stderr.String(), "--tenants needs --env-file and --schedules")
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--tenants", "acme,contoso", "--schedules", schedulesPath, "--env-file", envPath, "--winrm-port", "5986"}, "ports of each customer's own"},
		{[]string{"--tenants-file", filepath.Join(dir, "t.yaml")}, "--tenants-file needs --tenants"},
	} {
		stderr.Reset()
		require.Equal(t, 2, runSim(t.Context(), bad.args, &stdout, &stderr), "%v", bad.args)
		require.Contains(t, stderr.String(), bad.want)
	}
	stderr.Reset()
	require.Equal(t, 1, runSim(t.Context(), []string{"--tenants", "acme,acme", "--schedules", schedulesPath, "--env-file", envPath}, &stdout, &stderr))
	require.Contains(t, stderr.String(), `tenant "acme" is listed twice`)
	_, err := os.Stat(envPath)
	require.ErrorIs(t, err, os.ErrNotExist, "no env file for an estate that did not start")

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stdout.Reset()
	stderr.Reset()
	done := make(chan int, 1)
	go func() {
		done <- runSim(ctx, []string{"--tenants", "acme,contoso", "--seed", seedPath, "--schedules", schedulesPath,
			"--env-file", envPath, "--latency", "0s"}, &stdout, &stderr)
	}()
	env := waitSimEnv(t, done, envPath, &stderr)

	require.Equal(t, filepath.Join(dir, "tenants.yaml"), env["AUTOPATCH_TENANTS_FILE"])
	var cfg *config.Config
	cfg, err = config.LoadServe(func(k string) string {
		if k == "AUTOPATCH_DATABASE_URL" {
			return "postgres://unused@127.0.0.1:1/x"
		}
		return env[k]
	}, "")
	require.NoError(t, err, "serve's configuration accepts the env file")
	require.False(t, cfg.DefaultTenant(), "only the file's tenants")

	loaded, err := tenants.Load(env["AUTOPATCH_TENANTS_FILE"], func(k string) string { return env[k] })
	require.NoError(t, err)
	require.Len(t, loaded, 2)
	require.Equal(t, "acme", loaded[0].Name)
	require.Equal(t, "contoso", loaded[1].Name)
	require.NotEqual(t, loaded[0].ServiceNow.URL, loaded[1].ServiceNow.URL, "a ServiceNow instance each")
	require.NotEqual(t, loaded[0].SCCM[0].Endpoint, loaded[1].SCCM[0].Endpoint, "a site server each")
	require.Equal(t, schedulesPath, loaded[1].SchedulesFile)
	file, err := os.ReadFile(env["AUTOPATCH_TENANTS_FILE"])
	require.NoError(t, err)
	for k, v := range env {
		if strings.HasPrefix(k, "TENANT_") {
			require.NotContains(t, string(file), v, "%s is in the env file only", k)
		}
	}
	for _, name := range []string{"ACME", "CONTOSO"} {
		resp, err := http.Get(env["AUTOPATCH_SIM_"+name+"_URL"] + "/state")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	require.Contains(t, stdout.String(), "tenant contoso: webhooks at /t/contoso/webhooks/servicenow/...")
	cancel()
	require.Equal(t, 0, <-done)
}
