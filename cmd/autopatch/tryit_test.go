package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/config"
	"github.com/autopatch/autopatch/internal/estate"
	"github.com/autopatch/autopatch/internal/testdb"
)

// TestTryIt plays the README's "Try it" against the shipped seed, as make
// run sets it up, with TRY-IT's window a few seconds ahead instead of two
// minutes: the schedule requests and the change sent by `autopatch send`
// end with the servers in the collection, a deployment created disabled and
// enabled at the window's start, and work notes on the request items and the
// change, and no work note that ServiceNow refused (no retry loop).
func TestTryIt(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()

	seed, err := estate.LoadSeed("../../integrations/sim/estate.yaml")
	require.NoError(t, err)
	seed.Latency = 20 * time.Millisecond
	schedules := filepath.Join(dir, "schedules.yaml")
	start := time.Now().Add(4 * time.Second).Truncate(time.Second)
	require.NoError(t, writeTrySchedules("../../integrations/sccm/schedules.example.yaml", schedules, start, start.Add(time.Hour)))
	collections, err := scheduleCollections(schedules)
	require.NoError(t, err)
	est, err := estate.Start(ctx, estate.Options{Seed: seed, ScheduleCollections: collections[""], PlainHTTP: true, Dir: dir,
		WebhookSecret: "dev-webhook-secret", APIToken: "dev-api-token"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = est.Close() })

	env := map[string]string{
		"AUTOPATCH_DATABASE_URL":   testdb.URL(t),
		"AUTOPATCH_LISTEN":         "127.0.0.1:0",
		"AUTOPATCH_SCHEDULES_FILE": schedules,
		"AUTOPATCH_LOG_LEVEL":      "warn",
	}
	for _, kv := range est.Env() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	cfg, err := config.LoadServe(func(k string) string { return env[k] }, "")
	require.NoError(t, err)
	var logs bytes.Buffer
	srvCtx, cancel := context.WithCancel(context.Background())
	srv, err := initServer(srvCtx, cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.run(srvCtx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	url := "http://" + srv.listener.Addr().String()
	waitStatus(t, url+"/readyz", 200)

	send := func(args ...string) string {
		var stdout, stderr bytes.Buffer
		args = append(args, "--url", url)
		code := runSendEnv(ctx, args, &stdout, &stderr, "dev-webhook-secret")
		require.Equal(t, 0, code, "autopatch send %v: %s%s", args, stdout.String(), stderr.String())
		return stdout.String()
	}
	// The README's steps 1 to 3.
	require.Contains(t, send("schedule-request", "RITM0010002", "--schedule", "TRY-IT",
		"--device", "SQL01:Payroll:backend", "--device", "BILL-DB01:Billing:backend", "--device", "INT-WEB02:Intranet:frontend"), "HTTP 202")
	require.Contains(t, send("schedule-request", "RITM0010003", "--schedule", "TRY-IT",
		"--device", "APP01:Payroll:middle", "--device", "WEB01:Payroll:frontend"), "HTTP 202")
	require.Contains(t, send("change", "CHG0030001", "--update-group", "2026-12 Servers", "--schedule", "TRY-IT"), "HTTP 202")

	// Step 4: what the estate holds once the window has opened.
	deadline := time.Now().Add(60 * time.Second)
	var s estate.State
	for {
		s = est.State()
		var enabled bool
		for _, d := range s.Deployments {
			enabled = enabled || (d.Name == "AP-CHG0030001-TRY-IT-2026-12 Servers" && d.Enabled)
		}
		// The OPENED note is the last to come: the plan's, the creation's
		// and the pre-flight's come before it, so counting notes is not
		// waiting for it.
		if enabled && strings.Contains(strings.Join(notesOn(s, estate.SysIDOf("CHG0030001")), "\n"), "window OPENED") {
			break
		}
		require.True(t, time.Now().Before(deadline), "the deployment was not enabled with its notes in time: %+v", s)
		time.Sleep(200 * time.Millisecond)
	}
	for _, c := range s.Collections {
		if c.Name == "Patch - Try it" {
			require.ElementsMatch(t, []string{"SQL01", "BILL-DB01", "INT-WEB02"}, c.Members)
		}
	}
	for _, d := range s.Deployments {
		require.Equal(t, "AP-CHG0030001-TRY-IT-2026-12 Servers", d.Name)
		require.Len(t, d.Events, 1)
		require.False(t, d.Events[0].At.Before(start), "never enabled before its window")
	}
	ritm2 := notesOn(s, estate.SysIDOf("RITM0010002"))
	require.Len(t, ritm2, 1)
	require.Contains(t, ritm2[0], "moved into the collection")
	ritm3 := notesOn(s, estate.SysIDOf("RITM0010003"))
	require.Len(t, ritm3, 1)
	require.Contains(t, ritm3[0], "refused RITM0010003")
	change := strings.Join(notesOn(s, estate.SysIDOf("CHG0030001")), "\n---\n")
	require.Contains(t, change, "autopatch plan v1 for CHG0030001")
	require.Contains(t, change, "DISABLED until their window opens")
	require.Contains(t, change, "window OPENED")

	// Nothing ServiceNow refused: every request the simulated instance
	// answered succeeded.
	for _, r := range est.ServiceNow().Requests() {
		require.Less(t, r.Status, 400, "ServiceNow answered %+v", r)
	}
	require.NotContains(t, logs.String(), "level=ERROR", "serve logged an error:\n%s", logs.String())
}

func notesOn(s estate.State, sysID string) []string {
	var out []string
	for _, n := range s.WorkNotes {
		if n.SysID == sysID {
			out = append(out, n.Text)
		}
	}
	return out
}

// runSendEnv is runSend with the secret given, not read from the
// environment (tests run in parallel).
func runSendEnv(ctx context.Context, args []string, stdout, stderr io.Writer, secret string) int {
	return runSendWith(ctx, append([]string(nil), args...), stdout, stderr, func(k string) string {
		if k == "AUTOPATCH_WEBHOOK_SECRET" {
			return secret
		}
		return ""
	})
}
