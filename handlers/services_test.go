package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/config"
	"github.com/autopatch/autopatch/internal/safety"
	"github.com/autopatch/autopatch/internal/schedules"
	"github.com/autopatch/autopatch/internal/store"
	"github.com/autopatch/autopatch/internal/testdb"
)

// serviceSchedules: LON and NYC overlap only on 14 March 2026 (New York on
// summer time, London not yet); EARLY comes the day before both.
const serviceSchedules = `schedules:
  - {name: LON, collection: "Patch - LON", timezone: Europe/London, recurrence: {anchor: patch_tuesday, offset_days: 4}, start: "06:00", duration: 2h}
  - {name: NYC, collection: "Patch - NYC", timezone: America/New_York, recurrence: {anchor: patch_tuesday, offset_days: 4}, start: "03:00", duration: 1h}
  - {name: EARLY, collection: "Patch - EARLY", timezone: UTC, recurrence: {anchor: patch_tuesday, offset_days: 3}, start: "02:00", duration: 2h}
`

type serviceBundle struct {
	pool   *pgxpool.Pool
	server *httptest.Server
	set    *schedules.Current
	now    time.Time
}

func setupServices(t *testing.T, rulesYAML string) serviceBundle {
	t.Helper()
	ctx := context.Background()
	pool := testdb.Pool(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	path := filepath.Join(t.TempDir(), "schedules.yaml")
	require.NoError(t, os.WriteFile(path, []byte(serviceSchedules), 0o600))
	var current schedules.Current
	require.NoError(t, current.Load(ctx, path, &store.Store{Pool: pool}, logger))
	_, err := pool.Exec(ctx, `INSERT INTO devices (name, schedule_name, service, tier) VALUES
		('WEB01', 'LON', 'Web Shop', 'frontend'), ('WEB02', 'NYC', 'web shop', 'frontend'),
		('SQL01', 'EARLY', 'Web Shop', 'backend'), ('HR01', 'NYC', 'HR', 'frontend')`)
	require.NoError(t, err)
	var rules safety.CurrentServices
	if rulesYAML != "" {
		r, err := safety.ParseServices([]byte(rulesYAML))
		require.NoError(t, err)
		rules.Set(r)
	}
	b := serviceBundle{pool: pool, set: &current, now: time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)}
	e := New(Options{
		Logger: logger, Ready: func(context.Context) error { return nil }, Registry: prometheus.NewRegistry(),
		APIToken: config.Secret("test-token"), Store: &store.Store{Pool: pool}, Schedules: &current,
		Pool: pool, Now: func() time.Time { return b.now }, ServiceRules: &rules,
	})
	b.server = httptest.NewServer(e)
	t.Cleanup(b.server.Close)
	return b
}

func (b serviceBundle) get(t *testing.T, path, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.server.URL+path, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, body
}

func TestGetService(t *testing.T) {
	t.Parallel()
	b := setupServices(t, "")

	code, _ := b.get(t, "/api/v1/services/HR", "")
	require.Equal(t, http.StatusUnauthorized, code)
	code, body := b.get(t, "/api/v1/services/Nobody", "test-token")
	require.Equal(t, http.StatusNotFound, code)
	require.Contains(t, string(body), `autopatch manages no device of service \"Nobody\"`)

	code, body = b.get(t, "/api/v1/services/WEB%20SHOP", "test-token")
	require.Equal(t, http.StatusOK, code, "%s", body)
	var got serviceResponse
	require.NoError(t, json.Unmarshal(body, &got))

	require.Contains(t, []string{"Web Shop", "web shop"}, got.Service, "a stored spelling")
	require.Equal(t, horizonJSON{FirstCycle: "2025-12", LastCycle: "2026-12", From: "2026-01-05T00:00:00Z"}, got.Horizon)
	require.Len(t, got.Tiers, 2, "backend and frontend; no middle")
	back, front := got.Tiers[0], got.Tiers[1]
	require.Equal(t, "backend", back.Tier)
	require.Equal(t, 1, back.Members)
	require.Nil(t, back.MaxUnavailable, "one device: no redundancy to keep")
	require.Equal(t, "frontend", front.Tier)
	require.Equal(t, 2, front.Members)
	require.Equal(t, 1, *front.MaxUnavailable)
	require.Equal(t, "default", front.MaxUnavailableSource)
	require.Len(t, front.Schedules, 2)
	for _, s := range front.Schedules {
		require.True(t, s.InForce)
		require.Equal(t, "automatic", s.Kind)
		require.Len(t, s.Devices, 1)
		// The next windows, straight from the calendar.
		sc, ok := b.set.Get().Get(s.Schedule)
		require.True(t, ok)
		want := sc.Windows(b.now, b.now.AddDate(1, 0, 0))[:3]
		require.Len(t, s.NextWindows, 3)
		for i, w := range s.NextWindows {
			require.Equal(t, NewWindowJSON(want[i]), w)
		}
	}

	// Frontends overlap on 14 March only; the backend (PT+3) comes before
	// the frontends every month.
	require.Len(t, got.Violations, 1)
	v := got.Violations[0]
	require.Equal(t, "redundancy", v.Kind)
	require.Equal(t, "frontend", v.Tier)
	require.Equal(t, "2026-03", v.Cycle)
	require.Equal(t, "2026-03-14T07:00:00Z", v.From)
	require.Equal(t, "2026-03-14T08:00:00Z", v.To)
	require.Equal(t, 2, v.Down)
	require.Equal(t, 1, v.Limit)
	require.Equal(t, []string{"WEB01", "WEB02"}, v.Devices)
	require.Len(t, v.Windows, 2)
	require.Equal(t, "LON", v.Windows[0].Schedule)
	require.Equal(t, "2026-03-14T06:00:00Z", v.Windows[0].StartUTC)
	require.Equal(t, "NYC", v.Windows[1].Schedule)
	require.Equal(t, "2026-03-14T03:00:00-04:00", v.Windows[1].Start)
	require.Contains(t, v.Message, "2 of its 2 devices")
}

func TestGetServiceTierOrderAndRules(t *testing.T) {
	t.Parallel()
	b := setupServices(t, "services: [{name: web shop, max_unavailable: 2}]")
	code, body := b.get(t, "/api/v1/services/Web%20Shop", "test-token")
	require.Equal(t, http.StatusOK, code, "%s", body)
	var got serviceResponse
	require.NoError(t, json.Unmarshal(body, &got))
	front := got.Tiers[1]
	require.Equal(t, 2, *front.MaxUnavailable)
	require.Equal(t, "services_file", front.MaxUnavailableSource)
	require.Empty(t, got.Violations, "two of two may be down")

	// The backend moves into the frontends' window: the order breaks in
	// each of 2026's cycles (December 2025's windows are over).
	_, err := b.pool.Exec(context.Background(), `UPDATE devices SET schedule_name = 'LON' WHERE name = 'SQL01'`)
	require.NoError(t, err)
	code, body = b.get(t, "/api/v1/services/web%20shop", "test-token")
	require.Equal(t, http.StatusOK, code, "%s", body)
	got = serviceResponse{}
	require.NoError(t, json.Unmarshal(body, &got))
	require.Len(t, got.Violations, 12)
	for i, v := range got.Violations {
		require.Equal(t, "tier_order", v.Kind)
		require.Equal(t, "backend", v.BeforeTier)
		require.Equal(t, "frontend", v.Tier)
		require.Equal(t, fmt.Sprintf("2026-%02d", i+1), v.Cycle)
		// NYC's frontend starts as the backend's LON window ends, except
		// in March's DST gap, when it starts an hour early.
		want := []string{"SQL01", "WEB01"}
		if v.Cycle == "2026-03" {
			want = append(want, "WEB02")
		}
		require.Equal(t, want, v.Devices, v.Cycle)
	}
}
