package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/ledger"
	"github.com/autopatch/autopatch/internal/testdb"
	"github.com/autopatch/autopatch/migrations"
)

// TestReport prints the ledger of a change with one device patched in its
// window and one that failed, in the three formats, and refuses bad input.
func TestReport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.URL(t)
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	require.NoError(t, migrations.Apply(ctx, pool, newLogger(testConfig(t, url), &bytes.Buffer{})))
	_, err = pool.Exec(ctx, reportChangeSQL+`
		INSERT INTO device_results (deployment_id, device_name, status_type, error_code, message, status_time, observed_at)
		SELECT id, 'SQL01', 1, NULL, 'ok', '2026-12-12 03:00Z', '2026-12-12 06:00:02Z' FROM deployments;
		INSERT INTO device_results (deployment_id, device_name, status_type, error_code, message, status_time, observed_at)
		SELECT id, 'SQL02', 5, 2149842978, 'failed', '2026-12-12 03:30Z', '2026-12-12 06:00:02Z' FROM deployments;
	`)
	require.NoError(t, err)
	env := func(k string) string {
		if k == "AUTOPATCH_DATABASE_URL" {
			return url
		}
		return ""
	}
	now := func() time.Time { return time.Date(2026, 12, 13, 0, 0, 0, 0, time.UTC) }
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := report(ctx, args, &out, &errOut, env, now)
		return code, out.String(), errOut.String()
	}

	code, out, _ := run("--change", "CHG0031234", "--format", "json")
	require.Equal(t, 0, code)
	var l ledger.Ledger
	require.NoError(t, json.Unmarshal([]byte(out), &l))
	require.Len(t, l.Devices, 2)
	require.Equal(t, "patched_in_window", string(l.Devices[0].Outcome))
	require.Equal(t, "failed", string(l.Devices[1].Outcome))
	require.Equal(t, "0x80240022", l.Devices[1].ErrorCode)

	code, out, _ = run("--cycle", "2026-12", "--format", "csv")
	require.Equal(t, 0, code)
	rows, err := csv.NewReader(bytes.NewBufferString(out)).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 3)
	require.Equal(t, []string{"CHG0031234", "SQL02", "failed"}, []string{rows[2][0], rows[2][1], rows[2][6]})

	code, out, _ = run("--change", "CHG0031234")
	require.Equal(t, 0, code)
	require.Contains(t, out, "devices 2, patched by deadline 1 (50.0%), patched outside window 0")
	require.Contains(t, out, "SQL02")

	for _, bad := range []struct {
		args []string
		code int
		msg  string
	}{
		{nil, 2, "exactly one of --change and --cycle"},
		{[]string{"--change", "CHG1", "--cycle", "2026-12"}, 2, "exactly one"},
		{[]string{"--cycle", "2026-13"}, 2, "--cycle: want YYYY-MM"},
		{[]string{"--cycle", "2026-12", "--format", "xml"}, 2, "--format"},
		{[]string{"--change", "CHG0000001"}, 1, "--change: autopatch has received no change"},
	} {
		code, _, errOut := run(bad.args...)
		require.Equal(t, bad.code, code, bad.args)
		require.Contains(t, errOut, bad.msg, bad.args)
	}
}

// reportChangeSQL writes change CHG0031234 as autopatch leaves it once its
// one window (schedule DB, 2026-12-12 02:00–06:00 UTC) has closed: its
// plan and its deployment; the caller adds the device results.
const reportChangeSQL = `
	INSERT INTO schedules (name, collection, kind, timezone, definition) VALUES ('DB', 'Patch - DB', 'automatic', 'UTC', '{}');
	INSERT INTO changes (number, sys_id, state, approval, start_at, end_at, update_groups, status, revision)
	VALUES ('CHG0031234', 'c0ffee00c0ffee00c0ffee00c0ffee00', 'scheduled', 'approved',
	        '2026-12-12 00:00Z', '2026-12-14 06:00Z', '{"2026-12 Servers"}', 'planned', 1);
	INSERT INTO plans (change_number, version, change_start, change_end) VALUES ('CHG0031234', 1, '2026-12-12 00:00Z', '2026-12-14 06:00Z');
	INSERT INTO plan_entries (plan_id, schedule_name, window_start, window_end)
	SELECT id, 'DB', '2026-12-12 02:00Z', '2026-12-12 06:00Z' FROM plans;
	INSERT INTO deployments (change_number, schedule_name, update_group, name, collection, window_start, window_end, close_at, state, final_polled_at)
	VALUES ('CHG0031234', 'DB', '2026-12 Servers', 'AP-CHG0031234-DB', 'Patch - DB',
	        '2026-12-12 02:00Z', '2026-12-12 06:00Z', '2026-12-12 06:00Z', 'closed', '2026-12-12 06:00:02Z');
`
