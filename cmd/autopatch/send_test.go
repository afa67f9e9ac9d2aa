package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/handlers"
	"github.com/autopatch/autopatch/internal/calendar"
	"github.com/autopatch/autopatch/internal/estate"
)

// TestSendSigns checks that autopatch send signs as the ServiceNow script
// does: the README's test vector, then a delivery checked by an independent
// recomputation on the receiving side.
func TestSendSigns(t *testing.T) {
	// The test vector of integrations/servicenow/README.md §9.
	require.Equal(t, "sha256=D7IgUIJ13nd5nFafdH/YqTU7/zHx47W+1YTVbVALU0M=",
		Signature([]byte("autopatch-test-secret"), "1765569600", []byte(`{"event_id":"readme-test-vector","request_item":{"number":"RITM0010001"}}`)))

	type delivery struct {
		path string
		body map[string]any
	}
	got := make(chan delivery, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		if Signature([]byte("s3cret"), r.Header.Get(handlers.HeaderTimestamp), raw) != r.Header.Get(handlers.HeaderSignature) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var body map[string]any
		_ = json.Unmarshal(raw, &body)
		got <- delivery{r.URL.Path, body}
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"id":"x","status":"accepted"}`))
	}))
	t.Cleanup(srv.Close)
	t.Setenv("AUTOPATCH_WEBHOOK_SECRET", "s3cret")
	t.Setenv("AUTOPATCH_WEBHOOK_USER", "")

	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"send", "change", "CHG0030001", "--url", srv.URL, "--schedule", "TRY-IT"}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	require.Contains(t, stdout.String(), "HTTP 202")
	d := <-got
	require.Equal(t, handlers.PathChangeWebhook, d.path)
	change := d.body["change"].(map[string]any)
	require.Equal(t, estate.SysIDOf("CHG0030001"), change["sys_id"], "the sys_id the simulated estate seeds")
	require.Equal(t, "approved", change["approval"])
	require.Equal(t, map[string]any{"software_update_groups": []any{"2026-12 Servers"}, "schedules": []any{"TRY-IT"}}, d.body["patching"])

	stdout.Reset()
	code = run(context.Background(), []string{"send", "schedule-request", "RITM0010001", "--url", srv.URL, "--sys-id", "0badf00d0badf00d0badf00d0badf00d",
		"--schedule", "DB-SAT-0200", "--device", "SQL01:Payroll:backend"}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	d = <-got
	require.Equal(t, handlers.PathScheduleRequestWebhook, d.path)
	require.Equal(t, []any{map[string]any{"name": "SQL01", "service": "Payroll", "tier": "backend"}}, d.body["devices"])
	require.Equal(t, "0badf00d0badf00d0badf00d0badf00d", d.body["request_item"].(map[string]any)["sys_id"])

	t.Setenv("AUTOPATCH_WEBHOOK_SECRET", "wrong")
	code = run(context.Background(), []string{"send", "change", "CHG0030001", "--url", srv.URL}, &stdout, &stderr)
	require.Equal(t, 1, code, "a refused delivery is exit 1")
	require.Contains(t, stdout.String(), "HTTP 401")
}

func TestSendUsage(t *testing.T) {
	t.Setenv("AUTOPATCH_WEBHOOK_SECRET", "s3cret")
	for _, args := range [][]string{
		{"send"},
		{"send", "change"},
		{"send", "incident", "INC1"},
		{"send", "schedule-request", "RITM1", "--device", "A:B:backend"},
		{"send", "schedule-request", "RITM1", "--schedule", "S", "--device", "A-B-backend"},
	} {
		var stdout, stderr bytes.Buffer
		require.Equal(t, 2, run(context.Background(), args, &stdout, &stderr), strings.Join(args, " "))
	}
}

func TestTrySchedules(t *testing.T) {
	t.Parallel()

	out := filepath.Join(t.TempDir(), "schedules.yaml")
	start := time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC)
	require.NoError(t, writeTrySchedules("../../integrations/sccm/schedules.example.yaml", out, start, start.Add(3*time.Hour)))
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	list, err := calendar.Parse(b)
	require.NoError(t, err, "the written file is a valid schedules file")
	orig, err := os.ReadFile("../../integrations/sccm/schedules.example.yaml")
	require.NoError(t, err)
	origList, err := calendar.Parse(orig)
	require.NoError(t, err)
	require.Len(t, list, len(origList)+1)
	try := list[len(list)-1]
	require.Equal(t, trySchedule, try.Name)
	require.Equal(t, tryCollection, try.Collection)
	ws := try.Windows(start.Add(-time.Hour), start.Add(time.Hour))
	require.Len(t, ws, 1)
	require.True(t, ws[0].Start.Equal(start))
}
