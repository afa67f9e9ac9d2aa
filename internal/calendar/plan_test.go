package calendar

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPlan(t *testing.T) {
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
	utc := func(y int, m time.Month, d, h, mi int) time.Time { return time.Date(y, m, d, h, mi, 0, 0, time.UTC) }

	t.Run("WholeMonth", func(t *testing.T) {
		t.Parallel()
		res := Plan(ss, utc(2026, 12, 8, 0, 0), utc(2027, 1, 4, 0, 0))
		require.Empty(t, res.Unplaceable)
		var got []string
		for _, w := range res.Windows {
			got = append(got, w.Schedule+" "+w.LocalString())
		}
		require.Equal(t, []string{
			"DB-SAT-0200 Sat 2026-12-12 02:00–06:00 GMT",
			"ONE-OFF Sun 2026-12-20 22:00 – Mon 2026-12-21 02:00 UTC",
			"WEB-3RD-SUN Sun 2026-12-20 23:00 – Mon 2026-12-21 02:00 EST",
		}, got)
	})

	t.Run("EarliestWindowWins", func(t *testing.T) {
		t.Parallel()
		// A quarter-long change holds three cycles of DB-SAT-0200: the first is chosen.
		res := Plan(ss[:1], utc(2026, 10, 1, 0, 0), utc(2027, 1, 1, 0, 0))
		require.Len(t, res.Windows, 1)
		require.Equal(t, Month{2026, time.October}, res.Windows[0].Cycle)
		require.Equal(t, utc(2026, 10, 17, 1, 0), res.Windows[0].Start.UTC()) // 02:00 BST
	})

	t.Run("ChangeStartsInsideAWindow", func(t *testing.T) {
		t.Parallel()
		// The December window started before the change: not eligible, even in part.
		res := Plan(ss[:1], utc(2026, 12, 12, 3, 0), utc(2027, 1, 31, 0, 0))
		require.Len(t, res.Windows, 1)
		require.Equal(t, Month{2027, time.January}, res.Windows[0].Cycle)
	})

	t.Run("WindowExactlyFillsTheChange", func(t *testing.T) {
		t.Parallel()
		res := Plan(ss[:1], utc(2026, 12, 12, 2, 0), utc(2026, 12, 12, 6, 0))
		require.Len(t, res.Windows, 1)
		require.Empty(t, res.Unplaceable)
	})

	t.Run("Reasons", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name       string
			start, end time.Time
			schedule   int
			want       string
		}{
			{"EndsAfter", utc(2026, 12, 12, 0, 0), utc(2026, 12, 12, 5, 0), 0,
				"next window Sat 2026-12-12 02:00–06:00 GMT (Europe/London) ends after the change (change ends Sat 2026-12-12 05:00 UTC)"},
			{"StartsAfter", utc(2026, 12, 1, 0, 0), utc(2026, 12, 10, 0, 0), 0,
				"next window Sat 2026-12-12 02:00–06:00 GMT (Europe/London) starts after the change ends (change ends Thu 2026-12-10 00:00 UTC)"},
			{"StartsAfterCrossingMidnight", utc(2026, 12, 14, 6, 0), utc(2026, 12, 15, 0, 0), 1,
				"next window Sun 2026-12-20 23:00 – Mon 2026-12-21 02:00 EST (America/New_York) starts after the change ends (change ends Tue 2026-12-15 00:00 UTC)"},
			{"OneOffInThePast", utc(2027, 1, 1, 0, 0), utc(2027, 1, 31, 0, 0), 2,
				"no window in the 13 months after the change start (change starts Fri 2027-01-01 00:00 UTC)"},
			{"OneOffEndsAfter", utc(2026, 12, 20, 0, 0), utc(2026, 12, 21, 0, 0), 2,
				"next window Sun 2026-12-20 22:00 – Mon 2026-12-21 02:00 UTC ends after the change (change ends Mon 2026-12-21 00:00 UTC)"},
			{"LongerThanHorizon", utc(2027, 1, 1, 0, 0), utc(2029, 1, 1, 0, 0), 2,
				"no window between the change start and end (change starts Fri 2027-01-01 00:00 UTC, ends Mon 2029-01-01 00:00 UTC)"},
			{"Backwards", utc(2026, 12, 14, 0, 0), utc(2026, 12, 12, 0, 0), 0,
				"the change ends before it starts (change starts Mon 2026-12-14 00:00 UTC, ends Sat 2026-12-12 00:00 UTC)"},
			{"Seconds", utc(2026, 12, 12, 0, 0), utc(2026, 12, 12, 5, 59).Add(59 * time.Second), 0,
				"next window Sat 2026-12-12 02:00–06:00 GMT (Europe/London) ends after the change (change ends Sat 2026-12-12 05:59:59 UTC)"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				res := Plan(ss[tc.schedule:tc.schedule+1], tc.start, tc.end)
				require.Empty(t, res.Windows)
				require.Equal(t, []Unplaceable{{Schedule: ss[tc.schedule].Name, Reason: tc.want}}, res.Unplaceable)
			})
		}
	})

	t.Run("EmptyIsNotNil", func(t *testing.T) {
		t.Parallel()
		res := Plan(nil, utc(2026, 12, 1, 0, 0), utc(2026, 12, 2, 0, 0))
		require.NotNil(t, res.Windows)
		require.NotNil(t, res.Unplaceable)
	})
}

// TestPlanProperties plans random changes over generated schedules and checks the
// result against a brute force over every cycle's windows.
func TestPlanProperties(t *testing.T) {
	t.Parallel()
	ss := genSchedules(t, 11, 200)
	rng := rand.New(rand.NewPCG(3, 4))
	for range 60 {
		cs := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.Int64N(int64(9 * 365 * 24 * time.Hour))))
		ce := cs.Add(time.Duration(rng.Int64N(int64(45 * 24 * time.Hour))))
		res := Plan(ss, cs, ce)

		require.Equal(t, len(ss), len(res.Windows)+len(res.Unplaceable), "every schedule once")
		require.True(t, slices.IsSortedFunc(res.Windows, compareWindows))
		require.True(t, slices.IsSortedFunc(res.Unplaceable, func(a, b Unplaceable) int {
			return compareWindows(Window{Schedule: a.Schedule}, Window{Schedule: b.Schedule})
		}))
		placed := map[string]Window{}
		for _, w := range res.Windows {
			require.False(t, w.Start.Before(cs), "starts inside the change")
			require.False(t, w.End.After(ce), "ends inside the change")
			placed[w.Schedule] = w
		}
		for _, u := range res.Unplaceable {
			require.NotEmpty(t, u.Reason)
		}
		for _, s := range ss {
			// Brute force: every window of the cycles around the change that fits.
			var best *Window
			for m := MonthOf(cs.UTC()).AddMonths(-15); m.Compare(MonthOf(ce.UTC()).AddMonths(15)) <= 0; m = m.AddMonths(1) {
				for _, w := range s.CycleWindows(m) {
					if !w.Start.Before(cs) && !w.End.After(ce) && (best == nil || w.Start.Before(best.Start)) {
						best = &w
					}
				}
			}
			got, ok := placed[s.Name]
			if best == nil {
				require.False(t, ok, "%s placed at %s in [%s, %s)", s.Name, got.Start, cs, ce)
				continue
			}
			require.True(t, ok, "%s not placed; %s fits [%s, %s)", s.Name, best.Start, cs, ce)
			require.True(t, best.Start.Equal(got.Start))
			require.Equal(t, best.Cycle, got.Cycle)
		}
	}
}
