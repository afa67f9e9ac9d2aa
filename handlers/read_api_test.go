package handlers

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/schedules"
	"github.com/autopatch/autopatch/internal/store"
	"github.com/autopatch/autopatch/internal/testdb"
)

// TestReadAPIMatchesOpenAPI puts a change with a plan, deployments and their
// history, and a device with assignments and results in a real database,
// then checks that every read endpoint answers as openapi.yaml says, for
// found, not found and unauthorised.
func TestReadAPIMatchesOpenAPI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	file := filepath.Join(t.TempDir(), "schedules.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`schedules:
  - {name: DB, collection: "Patch - DB", timezone: Europe/London, recurrence: {anchor: patch_tuesday, offset_days: 4}, start: "02:00", duration: 4h}
  - {name: WEB, collection: "Patch - Web", timezone: America/New_York, recurrence: {anchor: nth_weekday, nth: 3, weekday: sunday}, start: "23:00", duration: 3h}
`), 0o600))
	var current schedules.Current
	require.NoError(t, current.Load(ctx, file, &store.Store{Pool: pool}, logger))

	_, err := pool.Exec(ctx, `
		INSERT INTO changes (number, sys_id, state, approval, start_at, end_at, update_groups, status, revision)
		VALUES ('CHG0031234', 'c0ffee00c0ffee00c0ffee00c0ffee00', 'scheduled', 'approved',
		        '2026-12-12 00:00Z', '2026-12-14 06:00Z', '{"2026-12 Servers"}', 'planned', 1);
		INSERT INTO plans (change_number, version, change_start, change_end) VALUES ('CHG0031234', 1, '2026-12-12 00:00Z', '2026-12-14 06:00Z');
		INSERT INTO plan_entries (plan_id, schedule_name, window_start, window_end)
		SELECT id, 'DB', '2026-12-12 02:00Z', '2026-12-12 06:00Z' FROM plans;
		INSERT INTO plan_entries (plan_id, schedule_name, unplaceable)
		SELECT id, 'WEB', 'next window starts after the change ends' FROM plans;
		INSERT INTO deployments (change_number, schedule_name, update_group, name, collection, window_start, window_end, close_at, state, sccm_id, opened_at, closed_at)
		VALUES ('CHG0031234', 'DB', '2026-12 Servers', 'AP-CHG0031234-DB-2026-12 Servers', 'Patch - DB',
		        '2026-12-12 02:00Z', '2026-12-12 06:00Z', '2026-12-12 06:00Z', 'closed', '16777217', '2026-12-12 02:00:01Z', '2026-12-12 06:00:00Z');
		INSERT INTO deployment_transitions (deployment_id, from_state, to_state, reason)
		SELECT id, 'created', 'open', 'enabled' FROM deployments;
		INSERT INTO devices (name, resource_id, schedule_name, service, tier) VALUES ('SQL01', 16777300, 'DB', 'Payroll', 'backend');
		INSERT INTO devices (name, resource_id, schedule_name, service, tier) VALUES ('SQL 02', 16777301, 'DB', 'HR Portal', 'backend');
		INSERT INTO device_assignments (device_id, schedule_name, service, tier, request_item, outcome)
		SELECT id, 'DB', 'Payroll', 'backend', 'RITM0010001', 'moved' FROM devices;
		INSERT INTO device_results (deployment_id, device_name, status_type, error_code, message, observed_at)
		SELECT id, 'SQL01', 5, 2149842978, 'failed', now() FROM deployments;
	`)
	require.NoError(t, err)

	e := New(Options{
		Logger: logger, Ready: func(context.Context) error { return nil }, Registry: prometheus.NewRegistry(),
		APIToken: "token", Store: &store.Store{Pool: pool}, Schedules: &current, Pool: pool,
		Now: func() time.Time { return time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC) },
	})
	for _, tt := range []struct {
		path  string
		token string
		want  int
	}{
		{"/api/v1/schedules", "token", http.StatusOK},
		{"/api/v1/schedules", "", http.StatusUnauthorized},
		{"/api/v1/schedules/DB/windows?from=2026-12-01T00:00:00Z&to=2027-03-01T00:00:00Z", "token", http.StatusOK},
		{"/api/v1/schedules/NOPE/windows", "token", http.StatusNotFound},
		{"/api/v1/changes/CHG0031234", "token", http.StatusOK},
		{"/api/v1/changes/CHG0000001", "token", http.StatusNotFound},
		{"/api/v1/changes/CHG0031234", "wrong", http.StatusUnauthorized},
		{"/api/v1/devices/sql01", "token", http.StatusOK},
		{"/api/v1/devices/NOPE01", "token", http.StatusNotFound},
		{"/api/v1/services/payroll", "token", http.StatusOK},
		{"/api/v1/services/Nothing", "token", http.StatusNotFound},
		// Path parameters are decoded: names may hold spaces.
		{"/api/v1/devices/SQL%2002", "token", http.StatusOK},
		{"/api/v1/services/HR%20Portal", "token", http.StatusOK},
	} {
		req := httptest.NewRequest(http.MethodGet, tt.path, nil)
		if tt.token != "" {
			req.Header.Set("Authorization", "Bearer "+tt.token)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		require.Equal(t, tt.want, rec.Code, "%s: %s", tt.path, rec.Body.String())
		checkSpec(t, req, nil, tt.token == "token", rec.Result(), rec.Body.Bytes())
		if tt.path == "/api/v1/changes/CHG0031234" && tt.want == http.StatusOK {
			// A change sent before classifications is normal: Patch Tuesday + 30 days.
			require.Contains(t, rec.Body.String(), `"classification":"normal"`)
			require.Contains(t, rec.Body.String(), `"deadline_given":false`)
		}
	}
}
