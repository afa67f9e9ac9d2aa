package schedules

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/calendar"
	"github.com/autopatch/autopatch/internal/store"
	"github.com/autopatch/autopatch/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Run(m) }

const fileA = `schedules:
  - {name: DB, collection: "Patch - DB", timezone: Europe/London, recurrence: {anchor: patch_tuesday, offset_days: 4}, start: "02:00", duration: 4h}
  - {name: WEB, collection: "Patch - Web", timezone: America/New_York, recurrence: {anchor: nth_weekday, nth: 3, weekday: sunday}, start: "23:00", duration: 3h}
`

// fileB drops WEB, changes DB and hands WEB's collection to NEW.
const fileB = `schedules:
  - {name: DB, collection: "Patch - DB", timezone: Europe/London, recurrence: {anchor: patch_tuesday, offset_days: 5}, start: "02:00", duration: 4h}
  - {name: NEW, collection: "Patch - Web", timezone: UTC, windows: [{start: "2026-12-20T22:00:00Z", end: "2026-12-21T02:00:00Z"}]}
`

func TestLoadSyncsAndRetires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := &store.Store{Pool: testdb.Pool(t)}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	path := filepath.Join(t.TempDir(), "schedules.yaml")
	var cur Current

	require.NoError(t, os.WriteFile(path, []byte(fileA), 0o600))
	require.NoError(t, cur.Load(ctx, path, st, logger))
	_, ok := cur.Get().Get("WEB")
	require.True(t, ok)

	// Loading the same file again changes nothing.
	res, err := st.SyncSchedules(ctx, cur.Get().All())
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"DB", "WEB"}, res.Unchanged)

	require.NoError(t, os.WriteFile(path, []byte(fileB), 0o600))
	require.NoError(t, cur.Load(ctx, path, st, logger))
	_, ok = cur.Get().Get("WEB")
	require.False(t, ok)

	rows, err := st.ListSchedules(ctx)
	require.NoError(t, err)
	require.Len(t, rows, 3, "retired, not deleted")
	byName := map[string]store.ScheduleRow{}
	for _, r := range rows {
		byName[r.Name] = r
	}
	require.NotNil(t, byName["WEB"].RetiredAt)
	require.Nil(t, byName["DB"].RetiredAt)
	require.Contains(t, string(byName["DB"].Definition), `"offset_days": 5`)
	require.Contains(t, string(byName["WEB"].Definition), `"weekday": "sunday"`)
	require.Nil(t, byName["NEW"].RetiredAt)

	// A bad file keeps the set in force and the table as it was.
	require.NoError(t, os.WriteFile(path, []byte("schedules:\n  - {name: X}\n"), 0o600))
	require.Error(t, cur.Load(ctx, path, st, logger))
	_, ok = cur.Get().Get("NEW")
	require.True(t, ok)

	// WEB comes back with its collection: NEW, which left, is retired
	// first, so the collection is free again; WEB is un-retired.
	require.NoError(t, os.WriteFile(path, []byte(fileA), 0o600))
	require.NoError(t, cur.Load(ctx, path, st, logger))
	rows, err = st.ListSchedules(ctx)
	require.NoError(t, err)
	require.Len(t, rows, 3)
	for _, r := range rows {
		require.Equal(t, r.Name == "NEW", r.RetiredAt != nil, r.Name)
	}
}

func TestResolveSites(t *testing.T) {
	t.Parallel()
	const file = `schedules:
  - {name: DB, collection: "Patch - DB", site: PS1, windows: [{start: "2026-12-20T22:00:00Z", end: "2026-12-21T02:00:00Z"}]}
  - {name: EU, collection: "Patch - EU", site: EU1, windows: [{start: "2026-12-20T22:00:00Z", end: "2026-12-21T02:00:00Z"}]}
  - {name: ANY, collection: "Patch - Any", windows: [{start: "2026-12-20T22:00:00Z", end: "2026-12-21T02:00:00Z"}]}
`
	path := filepath.Join(t.TempDir(), "schedules.yaml")
	require.NoError(t, os.WriteFile(path, []byte(file), 0o600))
	read := func() []calendar.Schedule {
		list, err := ReadFile(path)
		require.NoError(t, err)
		return list
	}

	t.Run("SeveralSites", func(t *testing.T) {
		t.Parallel()
		err := ResolveSites(read(), []string{"PS1", "US1"})
		require.ErrorContains(t, err, `schedule "EU": site: unknown site "EU1" (configured: PS1, US1)`)
		require.ErrorContains(t, err, `schedule "ANY": site: required, several SCCM sites are configured (PS1, US1)`)
		require.NotContains(t, err.Error(), `"DB"`)
	})
	t.Run("NoSitesConfigured", func(t *testing.T) {
		t.Parallel()
		err := ResolveSites(read(), nil)
		require.ErrorContains(t, err, `schedule "DB": site: unknown site "PS1" (configured: none: AUTOPATCH_SCCM_SITES is not set)`)
		require.NotContains(t, err.Error(), `"ANY"`, "no site is the one site of today")
	})
	t.Run("TheOnlySiteByDefault", func(t *testing.T) {
		t.Parallel()
		list := read()[:1]
		list = append(list, read()[0])
		list[1].Site = ""
		require.NoError(t, ResolveSites(list, []string{"PS1"}))
		require.Equal(t, "PS1", list[1].Site)
	})
	t.Run("BadCode", func(t *testing.T) {
		t.Parallel()
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		require.NoError(t, os.WriteFile(bad, []byte(`schedules:
  - {name: DB, collection: "Patch - DB", site: ps-1, windows: [{start: "2026-12-20T22:00:00Z", end: "2026-12-21T02:00:00Z"}]}
`), 0o600))
		_, err := ReadFile(bad)
		require.ErrorContains(t, err, `"DB": site: "ps-1" is not a site code`)
	})
}
