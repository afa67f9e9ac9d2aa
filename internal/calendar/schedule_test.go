package calendar

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func mustParse(t testing.TB, yaml string) []Schedule {
	t.Helper()
	ss, err := Parse([]byte(yaml))
	require.NoError(t, err)
	return ss
}

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func TestWindows(t *testing.T) {
	t.Parallel()

	ss := mustParse(t, `
schedules:
  - name: PT-PLUS-25
    collection: A
    timezone: Europe/Berlin
    recurrence: {anchor: patch_tuesday, offset_days: 25}
    start: "22:00"
    duration: 4h
  - name: PT-MINUS-8
    collection: B
    timezone: Asia/Tokyo
    recurrence: {anchor: patch_tuesday, offset_days: -8}
    start: "01:00"
    duration: 2h
  - name: FIFTH-SUN
    collection: C
    timezone: UTC
    recurrence: {anchor: nth_weekday, nth: 5, weekday: sunday}
    start: "03:00"
    duration: 1h
  - name: LAST-SAT-NY
    collection: D
    timezone: America/New_York
    recurrence: {anchor: nth_weekday, nth: -1, weekday: saturday}
    start: "23:00"
    duration: 4h
  - name: ONE-OFF
    collection: E
    timezone: Asia/Kolkata
    windows:
      - {start: "2026-12-31T22:00:00Z", end: "2027-01-01T02:00:00Z"}
      - {start: "2026-11-30T20:00:00+01:00", end: "2026-11-30T22:00:00+01:00"}
`)
	byName := map[string]Schedule{}
	for _, s := range ss {
		byName[s.Name] = s
	}

	t.Run("PatchTuesdayOffsetCrossesIntoNextYear", func(t *testing.T) {
		t.Parallel()
		s := byName["PT-PLUS-25"]
		// PT 2026-12 is the 8th; +25 days is 2027-01-02, still cycle 2026-12.
		ws := s.Windows(date(2027, 1, 1), date(2027, 2, 1))
		require.Len(t, ws, 1)
		require.Equal(t, Month{2026, time.December}, ws[0].Cycle)
		require.Equal(t, "2027-01-02T22:00:00+01:00", ws[0].Start.Format(time.RFC3339))
		require.Equal(t, "2027-01-03T02:00:00+01:00", ws[0].End.Format(time.RFC3339))
		require.Equal(t, ws, s.CycleWindows(Month{2026, time.December}))
		// The January cycle's window is PT 2027-01-12 + 25 = 2027-02-06.
		jan := s.CycleWindows(Month{2027, time.January})
		require.Len(t, jan, 1)
		require.Equal(t, "2027-02-06T22:00:00+01:00", jan[0].Start.Format(time.RFC3339))
	})

	t.Run("NegativeOffsetIntoPreviousMonth", func(t *testing.T) {
		t.Parallel()
		s := byName["PT-MINUS-8"]
		// PT 2026-12-08 − 8 days = 2026-11-30, 01:00 JST = 2026-11-29T16:00Z.
		ws := s.CycleWindows(Month{2026, time.December})
		require.Len(t, ws, 1)
		require.Equal(t, time.Date(2026, 11, 29, 16, 0, 0, 0, time.UTC), ws[0].Start.UTC())
		// Windows in November hold both the November and the December cycle.
		nov := s.Windows(date(2026, 11, 1), date(2026, 12, 1))
		require.Len(t, nov, 2)
		require.Equal(t, Month{2026, time.November}, nov[0].Cycle)
		require.Equal(t, Month{2026, time.December}, nov[1].Cycle)
	})

	t.Run("FifthSundaySkipsMonths", func(t *testing.T) {
		t.Parallel()
		s := byName["FIFTH-SUN"]
		ws := s.Windows(date(2026, 1, 1), date(2027, 1, 1))
		var got []string
		for _, w := range ws {
			got = append(got, w.Start.Format("2006-01-02"))
		}
		// Independently: the months of 2026 with five Sundays.
		var want []string
		for m := time.January; m <= time.December; m++ {
			if sundays := weekdaysOf(2026, m, time.Sunday); len(sundays) == 5 {
				want = append(want, date(2026, m, sundays[4]).Format("2006-01-02"))
			}
		}
		require.Equal(t, want, got)
		require.Len(t, want, 4) // Mar, May, Aug, Nov
		require.Empty(t, s.CycleWindows(Month{2026, time.February}))
	})

	t.Run("StraddlesFallBackElapsedDuration", func(t *testing.T) {
		t.Parallel()
		// The last Saturday of October 2026 is the 31st; 23:00 EDT + 4h elapsed crosses
		// midnight and the 02:00 fall-back, ending at 02:00 EST, not 03:00.
		ws := byName["LAST-SAT-NY"].CycleWindows(Month{2026, time.October})
		require.Len(t, ws, 1)
		require.Equal(t, time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC), ws[0].Start.UTC())
		require.Equal(t, time.Date(2026, 11, 1, 7, 0, 0, 0, time.UTC), ws[0].End.UTC())
		require.Equal(t, "Sat 2026-10-31 23:00 EDT – Sun 2026-11-01 02:00 EST", ws[0].LocalString())
		require.Equal(t, "Sun 2026-11-01 03:00–07:00 UTC", ws[0].UTCString())
	})

	t.Run("StraddlesSpringForwardElapsedDuration", func(t *testing.T) {
		t.Parallel()
		ss := mustParse(t, `
schedules:
  - name: SYD
    collection: S
    timezone: Australia/Sydney
    recurrence: {anchor: nth_weekday, nth: 1, weekday: sunday}
    start: "01:00"
    duration: 3h
  - name: LHI
    collection: L
    timezone: Australia/Lord_Howe
    recurrence: {anchor: nth_weekday, nth: 1, weekday: sunday}
    start: "01:00"
    duration: 3h
`)
		// 2026-10-04: Sydney 02:00 → 03:00, Lord Howe 02:00 → 02:30.
		syd := ss[0].CycleWindows(Month{2026, time.October})[0]
		require.Equal(t, "Sun 2026-10-04 01:00 AEST–05:00 AEDT", syd.LocalString())
		require.Equal(t, 3*time.Hour, syd.End.Sub(syd.Start))
		lhi := ss[1].CycleWindows(Month{2026, time.October})[0]
		require.Equal(t, "Sun 2026-10-04 01:00 +1030–04:30 +11", lhi.LocalString())
		require.Equal(t, time.Date(2026, 10, 3, 14, 30, 0, 0, time.UTC), lhi.Start.UTC())
	})

	t.Run("OneOffs", func(t *testing.T) {
		t.Parallel()
		s := byName["ONE-OFF"]
		require.Equal(t, "Asia/Kolkata", s.Location.String())
		ws := s.Windows(date(2026, 1, 1), date(2028, 1, 1))
		require.Len(t, ws, 2)
		// Sorted by start although the file lists them the other way round.
		require.Equal(t, "2026-12-01T00:30:00+05:30", ws[0].Start.Format(time.RFC3339))
		require.Equal(t, Month{2026, time.November}, ws[0].Cycle) // UTC month of the start
		require.Equal(t, Month{2026, time.December}, ws[1].Cycle)
		require.Equal(t, ws[1:], s.CycleWindows(Month{2026, time.December}))
		require.Empty(t, s.Windows(ws[1].Start.Add(time.Second), date(2028, 1, 1)))
		require.Equal(t, ws[1:], s.Windows(ws[1].Start, ws[1].Start.Add(time.Nanosecond)))
	})

	t.Run("EmptyRange", func(t *testing.T) {
		t.Parallel()
		for _, s := range ss {
			require.Empty(t, s.Windows(date(2026, 5, 1), date(2026, 5, 1)))
			require.Empty(t, s.Windows(date(2026, 6, 1), date(2026, 5, 1)))
		}
	})
}

// TestWindowsProperties checks generated schedules over random ranges against
// independent computations of each rule.
func TestWindowsProperties(t *testing.T) {
	t.Parallel()
	ss := genSchedules(t, 7, 300)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range ss {
		for range 3 {
			from := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.Int64N(int64(10 * 365 * 24 * time.Hour))))
			to := from.Add(time.Duration(rng.Int64N(int64(400 * 24 * time.Hour))))
			ws := s.Windows(from, to)

			// Exactly the windows of all cycles whose start is in range: cycles far
			// enough either side to cover offsets of ±400 days.
			var want []Window
			for m := MonthOf(from.UTC()).AddMonths(-16); m.Compare(MonthOf(to.UTC()).AddMonths(16)) <= 0; m = m.AddMonths(1) {
				for _, w := range s.CycleWindows(m) {
					if !w.Start.Before(from) && w.Start.Before(to) {
						want = append(want, w)
					}
				}
			}
			require.Equal(t, len(want), len(ws), "%s [%s, %s)", s.Name, from, to)
			for k := range want {
				require.True(t, want[k].Start.Equal(ws[k].Start))
			}

			for k, w := range ws {
				require.Equal(t, s.Name, w.Schedule)
				require.Equal(t, s.Location, w.Start.Location())
				require.False(t, w.Start.Before(from))
				require.True(t, w.Start.Before(to))
				if k > 0 {
					require.True(t, ws[k-1].Start.Before(w.Start), "sorted, no duplicates")
				}
				if s.Recurrence == nil {
					require.Equal(t, MonthOf(w.Start.UTC()), w.Cycle)
					continue
				}
				require.Equal(t, s.Duration, w.End.Sub(w.Start), "elapsed duration")
				requireOccurrence(t, s, w)
			}
		}
	}
}

// requireOccurrence checks that w is where s's rule puts cycle w.Cycle: the local date
// Patch Tuesday + offset (in local days) or the nth weekday of the month, at the start
// time — or, when that wall clock does not exist, later the same way the clock jumped.
func requireOccurrence(t *testing.T, s Schedule, w Window) {
	t.Helper()
	m := w.Cycle
	var day time.Time
	switch s.Recurrence.Anchor {
	case AnchorPatchTuesday:
		tuesdays := weekdaysOf(m.Year, m.Month, time.Tuesday)
		day = date(m.Year, m.Month, tuesdays[1]).AddDate(0, 0, s.Recurrence.OffsetDays)
	case AnchorNthWeekday:
		days := weekdaysOf(m.Year, m.Month, s.Recurrence.Weekday)
		n := s.Recurrence.Nth
		if n == -1 {
			n = len(days)
		}
		require.LessOrEqual(t, n, len(days))
		day = date(m.Year, m.Month, days[n-1])
	}
	req := day.Add(time.Duration(s.Start.Hour)*time.Hour + time.Duration(s.Start.Minute)*time.Minute)
	got := wallAt(w.Start, s.Location)
	if got.Equal(req) {
		// The earlier instant of an overlap: an hour (or less) before, the clock read
		// something else.
		for d := 15 * time.Minute; d <= 3*time.Hour; d += 15 * time.Minute {
			require.False(t, wallAt(w.Start.Add(-d), s.Location).Equal(req), "%s cycle %s: earlier instant exists", s.Name, m)
		}
		return
	}
	// A gap: no instant reads req, and the start is req moved forward by the gap.
	require.True(t, got.After(req) && got.Sub(req) <= 3*time.Hour, "%s cycle %s: want %s, got %s", s.Name, m, req, got)
	for u := w.Start.Add(-6 * time.Hour); u.Before(w.Start.Add(6 * time.Hour)); u = u.Add(time.Minute) {
		require.False(t, wallAt(u, s.Location).Equal(req), "%s cycle %s: %s exists at %s", s.Name, m, req, u)
	}
	_, offAfter := w.Start.Zone()
	_, offBefore := w.Start.Add(-got.Sub(req) - time.Minute).Zone()
	require.Equal(t, time.Duration(offAfter-offBefore)*time.Second, got.Sub(req), "moved by the gap")
}
