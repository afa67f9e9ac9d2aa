package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/connectors/scom"
	"github.com/autopatch/autopatch/connectors/servicenow"
	"github.com/autopatch/autopatch/connectors/winrm"
	"github.com/autopatch/autopatch/internal/config"
)

const simSeed = `
update_groups: ["2026-12 Servers"]
latency: 2s
devices:
  - {name: SQL01}
  - {name: WEB01, outcome: silent}
`

const simSchedules = `
schedules:
  - name: DB-SAT-0200
    collection: "Patch - DB - Sat 02:00"
    kind: automatic
    timezone: Europe/London
    recurrence: {anchor: patch_tuesday, offset_days: 4}
    start: "02:00"
    duration: 4h
  - name: ONE-OFF
    collection: "Patch - Special"
    windows: [{start: "2026-12-20T22:00:00Z", end: "2026-12-21T02:00:00Z"}]
`

func TestRunSim(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seedPath := filepath.Join(dir, "seed.yaml")
	schedulesPath := filepath.Join(dir, "schedules.yaml")
	envPath := filepath.Join(dir, "sim.env")
	require.NoError(t, os.WriteFile(seedPath, []byte(simSeed), 0o600))
	require.NoError(t, os.WriteFile(schedulesPath, []byte(simSchedules), 0o600))

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- runSim(ctx, []string{
			"--seed", seedPath, "--schedules", schedulesPath, "--env-file", envPath,
			"--latency", "0s",
		}, &stdout, &stderr)
	}()

	// The env file appears once the estate listens.
	env := waitSimEnv(t, done, envPath, &stderr)

	for _, k := range []string{"AUTOPATCH_SCCM_ENDPOINT", "AUTOPATCH_SCCM_USER", "AUTOPATCH_SCCM_PASSWORD",
		"AUTOPATCH_SCCM_AUTH", "AUTOPATCH_SCCM_CA_FILE", "AUTOPATCH_SCOM_ENDPOINT", "AUTOPATCH_SCOM_USER",
		"AUTOPATCH_SCOM_PASSWORD", "AUTOPATCH_SCOM_AUTH", "AUTOPATCH_SCOM_CA_FILE", "AUTOPATCH_SERVICENOW_URL",
		"AUTOPATCH_SERVICENOW_USER", "AUTOPATCH_SERVICENOW_PASSWORD", "AUTOPATCH_WEBHOOK_SECRET",
		"AUTOPATCH_API_TOKEN", "AUTOPATCH_SIM_URL"} {
		require.NotEmpty(t, env[k], k)
	}
	require.True(t, strings.HasPrefix(env["AUTOPATCH_SCCM_ENDPOINT"], "https://127.0.0.1:"))
	_, err := config.Load(func(k string) string { return env[k] }, "")
	require.NoError(t, err, "serve's configuration accepts the env file")

	// The SCOM management server knows the seed's devices, and ServiceNow answers.
	swc, err := winrm.New(winrm.Config{
		Endpoint: env["AUTOPATCH_SCOM_ENDPOINT"], User: env["AUTOPATCH_SCOM_USER"],
		Password: env["AUTOPATCH_SCOM_PASSWORD"], Auth: env["AUTOPATCH_SCOM_AUTH"],
		CAFile: env["AUTOPATCH_SCOM_CA_FILE"],
	}, nil)
	require.NoError(t, err)
	defer swc.Close()
	raised, err := scom.New(swc, scom.Options{}, nil).RaiseAlerts(t.Context(), []scom.Alert{
		{Key: "autopatch:CHG1:WEB01", Device: "WEB01", Summary: "WEB01 did not report"},
	})
	require.NoError(t, err)
	require.Equal(t, scom.Raised, raised[0].Outcome)
	snow, err := servicenow.New(servicenow.Config{
		URL: env["AUTOPATCH_SERVICENOW_URL"], User: env["AUTOPATCH_SERVICENOW_USER"],
		Password: env["AUTOPATCH_SERVICENOW_PASSWORD"],
	}, nil, nil)
	require.NoError(t, err)
	inc, err := snow.CreateIncident(t.Context(), servicenow.Incident{ShortDescription: "WEB01 did not report",
		CorrelationID: "autopatch:CHG1:WEB01"})
	require.NoError(t, err)

	// serve's settings reach the site, and the schedules' collections exist.
	wc, err := winrm.New(winrm.Config{
		Endpoint: env["AUTOPATCH_SCCM_ENDPOINT"], User: env["AUTOPATCH_SCCM_USER"],
		Password: env["AUTOPATCH_SCCM_PASSWORD"], Auth: env["AUTOPATCH_SCCM_AUTH"],
		CAFile: env["AUTOPATCH_SCCM_CA_FILE"],
	}, nil)
	require.NoError(t, err)
	defer wc.Close()
	client := sccm.New(wc, "", nil)
	moved, err := client.SetMembership(t.Context(), []sccm.Move{
		{Device: "SQL01", Collection: "Patch - DB - Sat 02:00"},
		{Device: "WEB01", Collection: "Patch - Special"},
	}, []string{"Patch - DB - Sat 02:00", "Patch - Special"})
	require.NoError(t, err)
	require.Equal(t, sccm.Moved, moved[1].Outcome)

	resp, err := http.Get(env["AUTOPATCH_SIM_URL"] + "/state")
	require.NoError(t, err)
	defer resp.Body.Close()
	var st struct {
		Collections []struct {
			Name    string   `json:"name"`
			Members []string `json:"members"`
		} `json:"collections"`
		Alerts []struct {
			ID     string `json:"id"`
			Device string `json:"device"`
		} `json:"alerts"`
		Incidents []struct {
			Number string `json:"number"`
		} `json:"incidents"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	require.Len(t, st.Alerts, 1)
	require.Equal(t, raised[0].AlertID, st.Alerts[0].ID)
	require.Equal(t, "WEB01", st.Alerts[0].Device)
	require.Len(t, st.Incidents, 1)
	require.Equal(t, inc.Number, st.Incidents[0].Number)
	require.Len(t, st.Collections, 2)
	require.Equal(t, "Patch - DB - Sat 02:00", st.Collections[0].Name)
	require.Equal(t, []string{"SQL01"}, st.Collections[0].Members)
	require.Equal(t, []string{"WEB01"}, st.Collections[1].Members)

	cancel()
	select {
	case code := <-done:
		require.Equal(t, 0, code, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("runSim did not stop")
	}
	out := stdout.String()
	require.Contains(t, out, env["AUTOPATCH_SCCM_ENDPOINT"])
	require.Contains(t, out, env["AUTOPATCH_SIM_URL"])
	require.Contains(t, out, env["AUTOPATCH_SERVICENOW_URL"])
	require.Contains(t, out, "SCOM management server")
	require.Contains(t, out, "latency 0s per call", "--latency overrides the seed")
	require.NotContains(t, out, env["AUTOPATCH_SCCM_PASSWORD"], "secrets stay in the env file")
	require.NotContains(t, stderr.String(), env["AUTOPATCH_SCCM_PASSWORD"])
	require.NotContains(t, out, env["AUTOPATCH_SERVICENOW_PASSWORD"])
	require.NotContains(t, stderr.String(), env["AUTOPATCH_SERVICENOW_PASSWORD"])
	require.NoFileExists(t, env["AUTOPATCH_SCCM_CA_FILE"], "removed on stop")
}

// TestRunSimGenerate: --generate seeds the scale estate and writes its
// schedules and assignments files.
func TestRunSimGenerate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- runSim(ctx, []string{"--generate", "servers=500,schedules=4,days=2", "--generate-dir", dir,
			"--env-file", filepath.Join(dir, "sim.env"), "--latency", "0s"}, &stdout, &stderr)
	}()
	require.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(dir, "sim.env"))
		return err == nil
	}, 30*time.Second, 20*time.Millisecond, stderr.String())
	cancel()
	require.Equal(t, 0, <-done, stderr.String())
	require.Contains(t, stdout.String(), "generated 500 devices in 4 schedules, 3 update groups")
	require.Contains(t, stdout.String(), "500 computers", "every generated device is in SCOM")
	schedules, err := os.ReadFile(filepath.Join(dir, "schedules.yaml"))
	require.NoError(t, err)
	require.Equal(t, 4, strings.Count(string(schedules), "- {name: MSIT-"))
	assignments, err := os.ReadFile(filepath.Join(dir, "assignments.yaml"))
	require.NoError(t, err)
	require.Equal(t, 500, strings.Count(string(assignments), "- {name: SRV"))
}

func TestRunSimUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	badSeed := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(badSeed, []byte("devices: [{name: A, outcome: boom}]\n"), 0o600))
	noCollection := filepath.Join(dir, "schedules.yaml")
	require.NoError(t, os.WriteFile(noCollection, []byte("schedules: [{name: X}]\n"), 0o600))

	tests := []struct {
		name       string
		args       []string
		code       int
		wantStderr string
	}{
		{"Help", []string{"--help"}, 0, "Usage: autopatch sim"},
		{"UnknownFlag", []string{"--nope"}, 2, "flag provided but not defined"},
		{"ExtraArgument", []string{"extra"}, 2, "unexpected arguments"},
		{"NegativeLatency", []string{"--latency", "-1s"}, 2, "negative"},
		{"MissingSeed", []string{"--seed", filepath.Join(dir, "missing.yaml")}, 1, "no such file"},
		{"BadSeed", []string{"--seed", badSeed}, 1, `device "A"`},
		{"ScheduleWithoutCollection", []string{"--schedules", noCollection}, 1, `schedule 0 ("X") has no collection`},
		{"BusyPort", nil, 1, "address already in use"},
		{"GenerateAndSeed", []string{"--generate", "default", "--seed", badSeed}, 2, "exclude each other"},
		{"BadGenerate", []string{"--generate", "servers=0"}, 2, "servers 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := tt.args
			if tt.name == "BusyPort" {
				ln, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
				require.NoError(t, err)
				defer ln.Close()
				_, p, _ := net.SplitHostPort(ln.Addr().String())
				args = []string{"--control-port", p}
			}
			var stdout, stderr bytes.Buffer
			code := runSim(t.Context(), args, &stdout, &stderr)
			require.Equal(t, tt.code, code, stderr.String())
			require.Contains(t, stderr.String(), tt.wantStderr)
		})
	}
}

// waitSimEnv waits for runSim (its exit code to come on done) to write its
// env file at envPath, which it does once its estate listens, and returns
// the file's settings; runSim ending first fails the test.
func waitSimEnv(t *testing.T, done <-chan int, envPath string, stderr *bytes.Buffer) map[string]string {
	t.Helper()
	var env map[string]string
	require.Eventually(t, func() bool {
		select {
		case code := <-done:
			t.Fatalf("runSim returned %d early: %s", code, stderr.String())
		default:
		}
		b, err := os.ReadFile(envPath)
		if err != nil {
			return false
		}
		env = parseEnv(t, b)
		return true
	}, 30*time.Second, 20*time.Millisecond)
	return env
}

func parseEnv(t *testing.T, b []byte) map[string]string {
	t.Helper()
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		require.True(t, ok, line)
		env[k] = v
	}
	return env
}
