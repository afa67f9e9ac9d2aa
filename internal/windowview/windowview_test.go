package windowview

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/calendar"
	"github.com/autopatch/autopatch/internal/store"
)

func schedules(t *testing.T) []calendar.Schedule {
	t.Helper()
	ss, err := calendar.Parse([]byte(`schedules:
  - {name: DB, collection: "Patch - DB", timezone: Europe/London, recurrence: {anchor: patch_tuesday, offset_days: 4}, start: "02:00", duration: 4h}
  - {name: WEB, collection: "Patch - Web", timezone: America/New_York, recurrence: {anchor: nth_weekday, nth: 3, weekday: sunday}, start: "23:00", duration: 3h}
`))
	require.NoError(t, err)
	return ss
}

func TestBuild(t *testing.T) {
	t.Parallel()
	ss := schedules(t)
	from := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(0, 1, 0)
	// The windows the calendar computes, to key the rows on.
	db := ss[0].Windows(from, to)[0]
	web := ss[1].Windows(from, to)[0]

	t.Run("NothingDone", func(t *testing.T) {
		t.Parallel()
		vs := Build(ss, true, from, to, nil, nil)
		require.Len(t, vs, 2)
		for _, v := range vs {
			require.Equal(t, StateScheduled, v.State)
			require.Empty(t, v.Changes)
		}
		require.True(t, vs[0].Start.Before(vs[1].Start))
	})
	t.Run("MostPressingDeploymentWins", func(t *testing.T) {
		t.Parallel()
		deps := []store.WindowDeployment{
			{ChangeNumber: "CHG2", Schedule: "DB", WindowStart: db.Start, State: store.DeploymentClosed},
			{ChangeNumber: "CHG1", Schedule: "DB", WindowStart: db.Start, State: store.DeploymentOpen},
			{ChangeNumber: "CHG9", Schedule: "DB", WindowStart: db.Start.Add(time.Hour), State: store.DeploymentOpen}, // not a window of DB
		}
		held := []store.HeldWindow{{ChangeNumber: "CHG1", Schedule: "WEB", WindowStart: web.Start, Reason: "tier frontend: 2 of 2"}}
		vs := Build(ss, true, from, to, deps, held)
		byName := map[string]View{}
		for _, v := range vs {
			if v.Stray {
				require.Equal(t, []string{"CHG9"}, v.Changes)
				continue
			}
			byName[v.Schedule] = v
		}
		require.Len(t, vs, 3)
		require.Equal(t, StateOpen, byName["DB"].State)
		require.Equal(t, []string{"CHG1", "CHG2"}, byName["DB"].Changes)
		require.Equal(t, StateHeld, byName["WEB"].State)
		require.Equal(t, "tier frontend: 2 of 2", byName["WEB"].HeldReason)
	})
}

func TestStrayDeployments(t *testing.T) {
	t.Parallel()
	ss := schedules(t)
	from := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(0, 1, 0)
	// DB's window moved an hour after its deployment was made, and a
	// retired schedule's deployment is still open.
	moved := ss[0].Windows(from, to)[0].Start.Add(-time.Hour)
	deps := []store.WindowDeployment{
		{ChangeNumber: "CHG1", Schedule: "DB", WindowStart: moved, WindowEnd: moved.Add(4 * time.Hour), State: store.DeploymentCreated},
		{ChangeNumber: "CHG1", Schedule: "OLD", WindowStart: moved, WindowEnd: moved.Add(time.Hour), State: store.DeploymentOpen},
	}
	vs := Build(ss, true, from, to, deps, nil)
	require.Len(t, vs, 4)
	var stray []string
	for _, v := range vs {
		if v.Stray {
			stray = append(stray, v.Schedule+" "+v.State)
			require.Equal(t, []string{"CHG1"}, v.Changes)
		}
	}
	require.ElementsMatch(t, []string{"DB created", "OLD open"}, stray)
	require.Equal(t, "Europe/London", vs[0].TimeZone)

	vs = Build(ss[:1], false, from, to, deps, nil)
	require.Len(t, vs, 2, "asked about DB only: its window and its stray deployment")
}

func TestDSTChanges(t *testing.T) {
	t.Parallel()
	london, err := time.LoadLocation("Europe/London")
	require.NoError(t, err)
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	got := DSTChanges([]*time.Location{london, ny, time.UTC}, from, from.AddDate(0, 1, 0))
	require.Len(t, got, 2)
	// New York springs forward on the second Sunday of March at 02:00 EST,
	// London on the last Sunday at 01:00 GMT.
	require.Equal(t, "America/New_York", got[0].Zone)
	require.Equal(t, time.Date(2026, 3, 8, 7, 0, 0, 0, time.UTC), got[0].At.UTC())
	require.Equal(t, "EST", got[0].Before)
	require.Equal(t, "EDT", got[0].After)
	require.Equal(t, "Europe/London", got[1].Zone)
	require.Equal(t, time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC), got[1].At.UTC())
	require.Equal(t, "GMT", got[1].Before)
	require.Equal(t, "BST", got[1].After)
}
