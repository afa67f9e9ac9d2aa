package handlers

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
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

type listBundle struct {
	e       http.Handler
	current *schedules.Current
}

// setupLists stores three changes (one planned with a deployment in the DB
// schedule's December window and a hold on WEB's), five devices and three
// failures.
func setupLists(t *testing.T) listBundle {
	t.Helper()
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
	// December 2026: Patch Tuesday the 8th, DB on Sat 12 02:00 GMT; WEB on
	// Sun 20 23:00 EST = Mon 21 04:00Z.
	_, err := pool.Exec(ctx, `
		INSERT INTO changes (number, sys_id, state, approval, start_at, end_at, update_groups, status, revision) VALUES
		  ('CHG0000001', 'a0000000000000000000000000000001', 'scheduled', 'approved', '2026-10-10 00:00Z', '2026-10-12 00:00Z', '{"2026-10 Servers"}', 'planned', 1),
		  ('CHG0000002', 'a0000000000000000000000000000002', 'canceled', 'approved', '2026-11-14 00:00Z', '2026-11-16 00:00Z', '{"2026-11 Servers"}', 'canceled', 2),
		  ('CHG0000003', 'a0000000000000000000000000000003', 'scheduled', 'approved', '2026-12-12 00:00Z', '2026-12-22 06:00Z', '{"2026-12 Servers"}', 'planned', 1);
		INSERT INTO plans (change_number, version, change_start, change_end) VALUES ('CHG0000003', 1, '2026-12-12 00:00Z', '2026-12-22 06:00Z');
		INSERT INTO plan_entries (plan_id, schedule_name, window_start, window_end, held)
		SELECT id, 'WEB', '2026-12-21 04:00Z', '2026-12-21 07:00Z', 'service Shop: frontend would be all down' FROM plans;
		INSERT INTO deployments (change_number, schedule_name, update_group, name, collection, window_start, window_end, close_at, state)
		VALUES ('CHG0000003', 'DB', '2026-12 Servers', 'AP-CHG0000003-DB', 'Patch - DB', '2026-12-12 02:00Z', '2026-12-12 06:00Z', '2026-12-12 06:00Z', 'open');
		INSERT INTO devices (name, schedule_name, service, tier) VALUES
		  ('SQL01', 'DB', 'Shop', 'backend'), ('sql02', 'DB', 'Shop', 'backend'), ('WEB01', 'WEB', 'Shop', 'frontend'),
		  ('WEB02', 'WEB', 'shop ', 'frontend'), ('<script>alert(1)</script>', NULL, NULL, NULL);
		INSERT INTO failures (change_number, subject, kind, correlation_id, state, deployment_id)
		SELECT 'CHG0000003', 'SQL01', 'error', 'c1', 'open', id FROM deployments;
		INSERT INTO failures (change_number, subject, kind, correlation_id, state) VALUES
		  ('CHG0000001', 'WEB01', 'no_status', 'c2', 'resolved'),
		  ('CHG0000003', 'sql02', 'error', 'c3', 'open');
	`)
	require.NoError(t, err)
	e := New(Options{
		Logger: logger, Ready: func(context.Context) error { return nil }, Registry: prometheus.NewRegistry(),
		APIToken: "token", Store: &store.Store{Pool: pool}, Schedules: &current, Pool: pool,
		Now: func() time.Time { return time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC) },
	})
	return listBundle{e: e, current: &current}
}

// get sends a GET with the token, checks the answer against openapi.yaml
// and decodes a 200's body into out.
func (b listBundle) get(t *testing.T, path string, out any) (int, []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("Authorization", "Bearer token")
	rec := httptest.NewRecorder()
	b.e.ServeHTTP(rec, req)
	checkSpec(t, req, nil, rec.Code != http.StatusBadRequest, rec.Result(), rec.Body.Bytes())
	if rec.Code == http.StatusOK && out != nil {
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), out))
	}
	return rec.Code, rec.Body.Bytes()
}

// walk follows next_cursor from path with limit=2 and returns every item
// of the list field.
func walk[T any](t *testing.T, b listBundle, path, field string) []T {
	t.Helper()
	var all []T
	cursor := ""
	for page := 0; ; page++ {
		require.Less(t, page, 20, "pagination does not end")
		u, err := url.Parse(path)
		require.NoError(t, err)
		q := u.Query()
		q.Set("limit", "2")
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		u.RawQuery = q.Encode()
		var body map[string]json.RawMessage
		code, raw := b.get(t, u.String(), &body)
		require.Equal(t, http.StatusOK, code, "%s", raw)
		var items []T
		require.NoError(t, json.Unmarshal(body[field], &items))
		require.LessOrEqual(t, len(items), 2)
		all = append(all, items...)
		var next *string
		require.NoError(t, json.Unmarshal(body["next_cursor"], &next))
		if next == nil {
			return all
		}
		cursor = *next
	}
}

func TestListChanges(t *testing.T) {
	t.Parallel()
	b := setupLists(t)

	t.Run("PagesNewestFirst", func(t *testing.T) {
		t.Parallel()
		type item struct {
			Number   string             `json:"number"`
			Progress changeProgressJSON `json:"progress"`
		}
		got := walk[item](t, b, "/api/v1/changes", "changes")
		require.Len(t, got, 3)
		require.Equal(t, []string{"CHG0000003", "CHG0000002", "CHG0000001"}, []string{got[0].Number, got[1].Number, got[2].Number})
		require.Equal(t, changeProgressJSON{Windows: 1, WindowsOpen: 1, Failures: 2, FailuresOpen: 2}, got[0].Progress)
	})
	t.Run("Filters", func(t *testing.T) {
		t.Parallel()
		var resp changeListResponse
		code, raw := b.get(t, "/api/v1/changes?status=planned&from=2026-11-01T00:00:00Z", &resp)
		require.Equal(t, http.StatusOK, code, "%s", raw)
		require.Len(t, resp.Changes, 1)
		require.Equal(t, "CHG0000003", resp.Changes[0].Number)
		require.Nil(t, resp.NextCursor)
	})
	t.Run("BadInputNamesTheParameter", func(t *testing.T) {
		t.Parallel()
		for param, path := range map[string]string{
			"status": "/api/v1/changes?status=done",
			"from":   "/api/v1/changes?from=yesterday",
			"limit":  "/api/v1/changes?limit=0",
			"cursor": "/api/v1/changes?cursor=not-a-cursor!",
		} {
			code, raw := b.get(t, path, nil)
			require.Equal(t, http.StatusBadRequest, code, path)
			var e APIError
			require.NoError(t, json.Unmarshal(raw, &e))
			require.Equal(t, param, e.Details[0].Field, path)
			require.Contains(t, e.Message, param)
		}
	})
}

func TestListDevices(t *testing.T) {
	t.Parallel()
	b := setupLists(t)
	type item struct {
		Name string `json:"name"`
	}
	names := func(items []item) []string {
		var out []string
		for _, i := range items {
			out = append(out, i.Name)
		}
		return out
	}
	got := walk[item](t, b, "/api/v1/devices", "devices")
	require.Equal(t, []string{"<script>alert(1)</script>", "SQL01", "sql02", "WEB01", "WEB02"}, names(got))
	got = walk[item](t, b, "/api/v1/devices?q=SQL", "devices")
	require.Equal(t, []string{"SQL01", "sql02"}, names(got))
	got = walk[item](t, b, "/api/v1/devices?service=SHOP&tier=frontend", "devices")
	require.Equal(t, []string{"WEB01", "WEB02"}, names(got))

	code, raw := b.get(t, "/api/v1/devices?tier=top", nil)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, string(raw), `"field":"tier"`)
}

func TestListFailures(t *testing.T) {
	t.Parallel()
	b := setupLists(t)
	got := walk[failureJSON](t, b, "/api/v1/failures", "failures")
	require.Len(t, got, 3)
	require.Greater(t, got[0].ID, got[1].ID)
	require.Equal(t, "DB", got[len(got)-1].Schedule, "the failure of the open deployment carries its window")
	got = walk[failureJSON](t, b, "/api/v1/failures?state=open&change=CHG0000003&device=sql01", "failures")
	require.Len(t, got, 1)
	require.Equal(t, "SQL01", got[0].Subject)

	code, raw := b.get(t, "/api/v1/failures?kind=oops", nil)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, string(raw), `"field":"kind"`)
}

func TestListWindows(t *testing.T) {
	t.Parallel()
	b := setupLists(t)
	type item struct {
		Schedule   string   `json:"schedule"`
		StartUTC   string   `json:"start_utc"`
		State      string   `json:"state"`
		Changes    []string `json:"changes"`
		HeldReason string   `json:"held_reason"`
	}
	from, to := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)
	got := walk[item](t, b, "/api/v1/windows?from=2026-12-01T00:00:00Z&to=2027-06-01T00:00:00Z", "windows")

	// Exactly the windows internal/calendar computes, in start order.
	var want []string
	for _, s := range b.current.Get().All() {
		for _, w := range s.Windows(from, to) {
			want = append(want, w.Start.UTC().Format(time.RFC3339)+" "+s.Name)
		}
	}
	var gotKeys []string
	for _, w := range got {
		gotKeys = append(gotKeys, w.StartUTC+" "+w.Schedule)
	}
	require.ElementsMatch(t, want, gotKeys)
	require.IsIncreasing(t, gotKeys)

	require.Equal(t, item{Schedule: "DB", StartUTC: "2026-12-12T02:00:00Z", State: "open", Changes: []string{"CHG0000003"}}, got[0])
	require.Equal(t, item{Schedule: "WEB", StartUTC: "2026-12-21T04:00:00Z", State: "held", Changes: []string{"CHG0000003"},
		HeldReason: "service Shop: frontend would be all down"}, got[1])
	require.Equal(t, "scheduled", got[2].State)

	var resp windowListResponse
	code, raw := b.get(t, "/api/v1/windows?from=2026-12-01T00:00:00Z&to=2027-06-01T00:00:00Z&state=held&schedule=WEB", &resp)
	require.Equal(t, http.StatusOK, code, "%s", raw)
	require.Len(t, resp.Windows, 1)

	for param, path := range map[string]string{
		"to":       "/api/v1/windows?from=2026-12-01T00:00:00Z&to=2026-11-01T00:00:00Z",
		"schedule": "/api/v1/windows?schedule=NOPE",
		"state":    "/api/v1/windows?state=burning",
		"cursor":   "/api/v1/windows?cursor=eyJ0IjoxfQ",
	} {
		code, raw := b.get(t, path, nil)
		require.Equal(t, http.StatusBadRequest, code, path)
		require.Contains(t, string(raw), `"field":"`+param+`"`, path)
	}
}
