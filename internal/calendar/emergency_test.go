package calendar

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPlanBefore(t *testing.T) {
	t.Parallel()

	ss := mustParse(t, `
schedules:
  - name: DB-SAT-0200
    collection: Patch - DB - Sat 02:00
    timezone: Europe/London
    recurrence: {anchor: patch_tuesday, offset_days: 4}
    start: "02:00"
    duration: 4h
  - name: WEB-3RD-SUN
    collection: Patch - Web - 3rd Sun
    timezone: America/New_York
    recurrence: {anchor: nth_weekday, nth: 3, weekday: sunday}
    start: "23:00"
    duration: 3h
  - name: ONE-OFF
    collection: Patch - Special
    windows: [{start: "2026-12-20T22:00:00Z", end: "2026-12-21T02:00:00Z"}]
`)
	utc := func(m time.Month, d, h int) time.Time { return time.Date(2026, m, d, h, 0, 0, 0, time.UTC) }
	type win struct {
		schedule   string
		start, end time.Time
	}
	windows := func(res PlanResult) []win {
		var out []win
		for _, w := range res.Windows {
			out = append(out, win{w.Schedule, w.Start.UTC(), w.End.UTC()})
		}
		return out
	}
	unplaceable := func(res PlanResult) map[string]string {
		out := map[string]string{}
		for _, u := range res.Unplaceable {
			out[u.Schedule] = u.Reason
		}
		return out
	}

	t.Run("SlotsAddedOneAfterAnother", func(t *testing.T) {
		t.Parallel()
		// Emergency on Wed 9 Dec at 10:00, deadline 24 h later: DB's window
		// (Sat 12th) is after the deadline, WEB's (Sun 20th) after the
		// change's end.
		res, added := PlanBefore(ss, utc(12, 9, 10), utc(12, 14, 0), utc(12, 10, 10))
		require.Equal(t, []win{
			{"DB-SAT-0200", utc(12, 9, 10), utc(12, 9, 14)},
			{"WEB-3RD-SUN", utc(12, 9, 14), utc(12, 9, 17)},
		}, windows(res))
		require.Len(t, added, 2)
		require.Contains(t, added[0].Why, "no window in the change before the deadline Thu 2026-12-10 10:00 UTC")
		require.Contains(t, unplaceable(res)["ONE-OFF"], "one-off windows only")
		require.Equal(t, "Europe/London", res.Windows[0].Start.Location().String(), "in the schedule's zone")
	})

	t.Run("RegularWindowKept", func(t *testing.T) {
		t.Parallel()
		// DB's Sat 12th 02:00–06:00 window is before the deadline: kept;
		// WEB's slot goes before it without overlapping it.
		res, added := PlanBefore(ss, utc(12, 11, 0), utc(12, 14, 0), utc(12, 12, 8))
		require.Equal(t, []win{
			{"WEB-3RD-SUN", utc(12, 11, 0), utc(12, 11, 3)},
			{"DB-SAT-0200", utc(12, 12, 2), utc(12, 12, 6)},
		}, windows(res))
		require.Len(t, added, 1)
		require.Equal(t, "WEB-3RD-SUN", added[0].Schedule)
	})

	t.Run("NoRoomBeforeTheDeadline", func(t *testing.T) {
		t.Parallel()
		// Five hours to the deadline: DB's 4 h slot fits, WEB's 3 h does
		// not after it; nothing is placed outside the change or after
		// the deadline.
		res, added := PlanBefore(ss, utc(12, 9, 10), utc(12, 14, 0), utc(12, 9, 15))
		require.Equal(t, []win{{"DB-SAT-0200", utc(12, 9, 10), utc(12, 9, 14)}}, windows(res))
		require.Len(t, added, 1)
		require.Contains(t, unplaceable(res)["WEB-3RD-SUN"], "no slot of 3h0m0s before the deadline Wed 2026-12-09 15:00 UTC")
		require.Contains(t, unplaceable(res)["WEB-3RD-SUN"], "not patched early")
	})

	t.Run("ChangeEndBeforeDeadline", func(t *testing.T) {
		t.Parallel()
		res, _ := PlanBefore(ss, utc(12, 9, 10), utc(12, 9, 13), utc(12, 10, 10))
		// A 3 h change: WEB's 3 h slot fits, DB's 4 h one never does.
		require.Equal(t, []win{{"WEB-3RD-SUN", utc(12, 9, 10), utc(12, 9, 13)}}, windows(res))
		require.Contains(t, unplaceable(res)["DB-SAT-0200"], "no slot of 4h0m0s")
		require.Len(t, unplaceable(res), 2)
	})
}
