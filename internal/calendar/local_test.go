package calendar

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}

// The exact instants below are worked out by hand from the zones' published rules.
func TestLocalInstantDST(t *testing.T) {
	t.Parallel()

	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		require.NoError(t, err)
		return v
	}
	for _, tc := range []struct {
		name     string
		zone     string
		local    string // requested wall clock, YYYY-MM-DD HH:MM
		want     string // instant, RFC 3339 UTC
		wantWall string // the wall clock the instant reads, when it differs (gap)
	}{
		// America/New_York: spring forward 2026-03-08 02:00 EST → 03:00 EDT,
		// fall back 2026-11-01 02:00 EDT → 01:00 EST.
		{"NewYorkPlain", "America/New_York", "2026-07-14 02:30", "2026-07-14T06:30:00Z", ""},
		{"NewYorkGap", "America/New_York", "2026-03-08 02:30", "2026-03-08T07:30:00Z", "2026-03-08 03:30"},
		{"NewYorkGapStart", "America/New_York", "2026-03-08 02:00", "2026-03-08T07:00:00Z", "2026-03-08 03:00"},
		{"NewYorkAfterGap", "America/New_York", "2026-03-08 03:00", "2026-03-08T07:00:00Z", ""},
		{"NewYorkBeforeGap", "America/New_York", "2026-03-08 01:59", "2026-03-08T06:59:00Z", ""},
		{"NewYorkOverlapEarlier", "America/New_York", "2026-11-01 01:30", "2026-11-01T05:30:00Z", ""},
		{"NewYorkOverlapStart", "America/New_York", "2026-11-01 01:00", "2026-11-01T05:00:00Z", ""},
		{"NewYorkAfterOverlap", "America/New_York", "2026-11-01 02:00", "2026-11-01T07:00:00Z", ""},
		// Europe/London: 2026-03-29 01:00 GMT → 02:00 BST; 2026-10-25 02:00 BST → 01:00 GMT.
		{"LondonGap", "Europe/London", "2026-03-29 01:30", "2026-03-29T01:30:00Z", "2026-03-29 02:30"},
		{"LondonOverlapEarlier", "Europe/London", "2026-10-25 01:30", "2026-10-25T00:30:00Z", ""},
		{"LondonWinter", "Europe/London", "2026-12-12 02:00", "2026-12-12T02:00:00Z", ""},
		// Australia/Sydney (southern hemisphere): 2026-10-04 02:00 AEST → 03:00 AEDT;
		// 2026-04-05 03:00 AEDT → 02:00 AEST.
		{"SydneyGap", "Australia/Sydney", "2026-10-04 02:30", "2026-10-03T16:30:00Z", "2026-10-04 03:30"},
		{"SydneyOverlapEarlier", "Australia/Sydney", "2026-04-05 02:30", "2026-04-04T15:30:00Z", ""},
		{"SydneySummer", "Australia/Sydney", "2026-01-17 02:00", "2026-01-16T15:00:00Z", ""},
		// Asia/Kolkata: +05:30 all year, no DST.
		{"Kolkata", "Asia/Kolkata", "2026-03-08 02:30", "2026-03-07T21:00:00Z", ""},
		{"KolkataMidnight", "Asia/Kolkata", "2026-11-01 00:00", "2026-10-31T18:30:00Z", ""},
		// Australia/Lord_Howe: a 30-minute shift. 2026-10-04 02:00 +10:30 → 02:30 +11:00;
		// 2026-04-05 02:00 +11:00 → 01:30 +10:30.
		{"LordHoweGap", "Australia/Lord_Howe", "2026-10-04 02:15", "2026-10-03T15:45:00Z", "2026-10-04 02:45"},
		{"LordHoweGapStart", "Australia/Lord_Howe", "2026-10-04 02:00", "2026-10-03T15:30:00Z", "2026-10-04 02:30"},
		{"LordHoweAfterGap", "Australia/Lord_Howe", "2026-10-04 02:30", "2026-10-03T15:30:00Z", ""},
		{"LordHoweOverlapEarlier", "Australia/Lord_Howe", "2026-04-05 01:45", "2026-04-04T14:45:00Z", ""},
		{"LordHoweBeforeOverlap", "Australia/Lord_Howe", "2026-04-05 01:29", "2026-04-04T14:29:00Z", ""},
		// Pacific/Apia skipped 30 December 2011 (-10:00 → +14:00): a 24-hour gap.
		{"ApiaSkippedDay", "Pacific/Apia", "2011-12-30 10:00", "2011-12-30T20:00:00Z", "2011-12-31 10:00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			loc := mustZone(t, tc.zone)
			req, err := time.ParseInLocation("2006-01-02 15:04", tc.local, time.UTC)
			require.NoError(t, err)
			got := localInstant(loc, nil, req.Year(), req.Month(), req.Day(), req.Hour(), req.Minute())
			require.Equal(t, utc(tc.want), got.UTC(), "%s in %s", tc.local, tc.zone)
			require.Equal(t, loc, got.Location())
			wantWall := tc.wantWall
			if wantWall == "" {
				wantWall = tc.local
			}
			require.Equal(t, wantWall, got.Format("2006-01-02 15:04"))
		})
	}
}

// TestLocalInstantOracle compares localInstant with a brute-force search around
// every transition of the test zones from 2020 to 2030.
func TestLocalInstantOracle(t *testing.T) {
	t.Parallel()
	for _, zone := range []string{"America/New_York", "Europe/London", "Australia/Sydney", "Asia/Kolkata", "Australia/Lord_Howe", "America/Santiago"} {
		t.Run(zone, func(t *testing.T) {
			t.Parallel()
			loc := mustZone(t, zone)
			// Transitions found by stepping hour by hour, then narrowing to the minute.
			var transitions []time.Time
			for u := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC); u.Year() < 2031; u = u.Add(time.Hour) {
				if offsetAt(u, loc) != offsetAt(u.Add(time.Hour), loc) {
					m := u
					for offsetAt(m, loc) == offsetAt(u, loc) {
						m = m.Add(time.Minute)
					}
					transitions = append(transitions, m)
				}
			}
			if zone == "Asia/Kolkata" {
				require.Empty(t, transitions)
				transitions = []time.Time{time.Date(2026, 3, 8, 2, 0, 0, 0, time.UTC)} // any instant
			} else {
				require.GreaterOrEqual(t, len(transitions), 20)
			}
			for _, tr := range transitions {
				before := wallAt(tr.Add(-time.Minute), loc).Add(time.Minute)
				for d := -3 * time.Hour; d <= 3*time.Hour; d += 5 * time.Minute {
					req := before.Add(d)
					got := localInstant(loc, nil, req.Year(), req.Month(), req.Day(), req.Hour(), req.Minute())
					require.Equal(t, oracle(loc, req, tr), got.UTC(), "%s %s", zone, req.Format("2006-01-02 15:04"))
				}
			}
		})
	}
}

func offsetAt(u time.Time, loc *time.Location) int {
	_, off := u.In(loc).Zone()
	return off
}

// wallAt is the wall clock in loc at u, as a UTC-labelled time for comparison.
func wallAt(u time.Time, loc *time.Location) time.Time {
	l := u.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), 0, time.UTC)
}

// oracle scans every minute within five hours of the transition tr for instants at
// which loc's clock reads req: the first is the answer (the earlier of an overlap);
// none means a gap, and the answer is req read with the offset before the gap.
func oracle(loc *time.Location, req, tr time.Time) time.Time {
	for u := tr.Add(-5 * time.Hour); u.Before(tr.Add(5 * time.Hour)); u = u.Add(time.Minute) {
		if wallAt(u, loc).Equal(req) {
			return u
		}
	}
	for u := tr.Add(-5 * time.Hour); ; u = u.Add(time.Minute) {
		if wallAt(u, loc).After(req) {
			prev := offsetAt(u.Add(-time.Minute), loc)
			return req.Add(-time.Duration(prev) * time.Second)
		}
	}
}

func ExampleSchedule_Windows() {
	ss, err := Parse([]byte(`
schedules:
  - name: WEB-2ND-SUN
    collection: Patch - Web - 2nd Sun
    timezone: America/New_York
    recurrence: {anchor: nth_weekday, nth: 2, weekday: sunday}
    start: "01:30"
    duration: 3h
`))
	if err != nil {
		panic(err)
	}
	// 2026-03-08 is both the second Sunday and the US spring-forward day: the window
	// starts at 01:30 EST and, three elapsed hours later, ends at 05:30 EDT.
	for _, w := range ss[0].Windows(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)) {
		fmt.Println(w.Cycle, w.LocalString(), "=", w.UTCString())
	}
	// Output: 2026-03 Sun 2026-03-08 01:30 EST–05:30 EDT = Sun 2026-03-08 06:30–09:30 UTC
}
