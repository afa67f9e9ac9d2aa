package handlers

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/ledger"
	"github.com/autopatch/autopatch/internal/schedules"
	"github.com/autopatch/autopatch/internal/store"
	"github.com/autopatch/autopatch/internal/testdb"
)

// TestComplianceAPI puts a closed window's statuses in a real database and
// checks GET /api/v1/compliance: the outcomes, the JSON and the CSV
// agreeing, bad input refused naming the parameter, and the answers as
// openapi.yaml says.
func TestComplianceAPI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	file := filepath.Join(t.TempDir(), "schedules.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`schedules:
  - {name: DB, collection: "Patch - DB", timezone: UTC, recurrence: {anchor: patch_tuesday, offset_days: 4}, start: "02:00", duration: 4h}
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
		INSERT INTO deployments (change_number, schedule_name, update_group, name, collection, window_start, window_end, close_at, state, opened_at, closed_at, final_polled_at)
		VALUES ('CHG0031234', 'DB', '2026-12 Servers', 'AP-CHG0031234-DB', 'Patch - DB',
		        '2026-12-12 02:00Z', '2026-12-12 06:00Z', '2026-12-12 06:00Z', 'closed', '2026-12-12 02:00:01Z', '2026-12-12 06:00:00Z', '2026-12-12 06:00:02Z');
		INSERT INTO devices (name, schedule_name, service, tier) VALUES ('SQL01', 'DB', 'Payroll', 'backend'), ('SQL02', 'DB', 'Payroll', 'backend');
		INSERT INTO device_results (deployment_id, device_name, status_type, error_code, message, status_time, observed_at)
		SELECT id, 'SQL01', 1, NULL, 'ok', '2026-12-12 03:00Z', '2026-12-12 06:00:02Z' FROM deployments;
		INSERT INTO device_results (deployment_id, device_name, status_type, error_code, message, status_time, observed_at)
		SELECT id, 'SQL02', 5, 2149842978, 'failed', '2026-12-12 03:30Z', '2026-12-12 06:00:02Z' FROM deployments;
		INSERT INTO device_results (deployment_id, device_name, status_type, error_code, message, status_time, observed_at)
		SELECT id, 'WEB09', 1, NULL, 'ok', '2026-12-12 06:20Z', '2026-12-12 06:00:02Z' FROM deployments;
	`)
	require.NoError(t, err)

	now := time.Date(2026, 12, 13, 0, 0, 0, 0, time.UTC)
	e := New(Options{
		Logger: logger, Ready: func(context.Context) error { return nil }, Registry: prometheus.NewRegistry(),
		APIToken: "token", Store: &store.Store{Pool: pool}, Schedules: &current, Pool: pool,
		Now: func() time.Time { return now },
	})
	get := func(t *testing.T, path, token string) *httptest.ResponseRecorder {
		t.Helper()
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		checkSpec(t, req, nil, token == "token" && !strings.Contains(path, "format=xml"), rec.Result(), rec.Body.Bytes())
		return rec
	}

	t.Run("JSONAndCSVAgree", func(t *testing.T) {
		rec := get(t, "/api/v1/compliance?change=CHG0031234", "token")
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		var l ledger.Ledger
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &l))
		got := map[string]string{}
		for _, d := range l.Devices {
			got[d.Device] = string(d.Outcome)
		}
		require.Equal(t, map[string]string{"SQL01": "patched_in_window", "SQL02": "failed", "WEB09": "patched_outside_window"}, got)
		require.Equal(t, 3, l.Summary.Devices)
		require.Equal(t, 1, l.Summary.PatchedOutsideWindow)
		require.Equal(t, 2, l.Summary.PatchedByDeadline, "the deadline is 30 days after Patch Tuesday")
		require.NotNil(t, l.EvidenceAt)
		require.Equal(t, time.Date(2026, 12, 12, 6, 0, 2, 0, time.UTC), *l.EvidenceAt, "the age of the evidence")

		rec = get(t, "/api/v1/compliance?change=CHG0031234&format=csv", "token")
		require.Equal(t, http.StatusOK, rec.Code)
		require.Equal(t, "text/csv; charset=utf-8", rec.Header().Get("Content-Type"))
		rows, err := csv.NewReader(rec.Body).ReadAll()
		require.NoError(t, err)
		require.Equal(t, ledger.CSVHeader, rows[0])
		require.Len(t, rows, len(l.Devices)+1)
		for i, d := range l.Devices {
			row := rows[i+1]
			require.Equal(t, d.Device, row[1])
			require.Equal(t, string(d.Outcome), row[6])
			require.Equal(t, d.Evidence, row[slices.Index(ledger.CSVHeader, "evidence")])
		}
	})
	t.Run("Cycle", func(t *testing.T) {
		rec := get(t, "/api/v1/compliance?cycle=2026-12", "token")
		require.Equal(t, http.StatusOK, rec.Code)
		var l ledger.Ledger
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &l))
		require.Equal(t, "2026-12", l.Scope.Cycle)
		require.Len(t, l.Devices, 3)
		rec = get(t, "/api/v1/compliance?cycle=2027-01", "token")
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &l))
		require.Empty(t, l.Devices)
	})
	t.Run("BadInputNamesTheParameter", func(t *testing.T) {
		for path, field := range map[string]string{
			"/api/v1/compliance":                                 "change",
			"/api/v1/compliance?cycle=2026-13":                   "cycle",
			"/api/v1/compliance?cycle=December":                  "cycle",
			"/api/v1/compliance?change=CHG0000001":               "change",
			"/api/v1/compliance?change=CHG0031234&cycle=2026-12": "cycle",
			"/api/v1/compliance?change=CHG0031234&format=xml":    "format",
		} {
			rec := get(t, path, "token")
			require.Equal(t, http.StatusBadRequest, rec.Code, path)
			var body struct {
				Error   string       `json:"error"`
				Details []FieldError `json:"details"`
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
			require.Equal(t, "validation_failed", body.Error)
			require.Equal(t, field, body.Details[0].Field, path)
		}
	})
	t.Run("Unauthorized", func(t *testing.T) {
		require.Equal(t, http.StatusUnauthorized, get(t, "/api/v1/compliance?change=CHG0031234", "").Code)
	})
}
