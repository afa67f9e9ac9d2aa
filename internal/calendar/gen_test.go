package calendar

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testZones mixes hemispheres, half-hour and non-hour shifts, a zone whose
// transitions happen at midnight (Santiago) and zones without DST.
var testZones = []string{
	"America/New_York", "Europe/London", "Australia/Sydney", "Asia/Kolkata",
	"Australia/Lord_Howe", "America/Santiago", "Europe/Berlin", "Asia/Tokyo",
	"America/St_Johns", "Pacific/Chatham", "UTC",
}

// genSchedulesYAML writes a schedules file of n varied schedules, deterministic for a
// seed: both anchors, offsets that cross months (and years), starts in the small
// hours where DST transitions live, durations across the allowed range, and some
// one-off schedules.
func genSchedulesYAML(seed uint64, n int) string {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	offsets := []int{0, 1, 2, 3, 4, 5, 6, -1, -2, -7, -8, -14, 10, 20, 25, 30, 45, -40, 400, -400}
	starts := []string{"00:00", "00:30", "01:00", "01:30", "01:45", "02:00", "02:15", "02:30", "03:00", "22:00", "23:00", "23:30", "12:00"}
	var b strings.Builder
	b.WriteString("schedules:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: S%04d\n    collection: Patch %04d\n", i, i)
		if i%17 == 16 {
			// One-off windows: a handful spread over 2019..2031.
			b.WriteString("    windows:\n")
			at := time.Date(2019+rng.IntN(3), time.Month(1+rng.IntN(12)), 1+rng.IntN(28), rng.IntN(24), 0, 0, 0, time.UTC)
			for range 1 + rng.IntN(6) {
				end := at.Add(time.Duration(1+rng.IntN(24*4)) * 15 * time.Minute)
				fmt.Fprintf(&b, "      - {start: %q, end: %q}\n", at.Format(time.RFC3339), end.Format(time.RFC3339))
				at = end.Add(time.Duration(1+rng.IntN(24*400)) * time.Hour)
			}
			continue
		}
		fmt.Fprintf(&b, "    timezone: %s\n", testZones[rng.IntN(len(testZones))])
		if rng.IntN(2) == 0 {
			fmt.Fprintf(&b, "    recurrence: {anchor: patch_tuesday, offset_days: %d}\n", offsets[rng.IntN(len(offsets))])
		} else {
			nth := []int{1, 2, 3, 4, 5, -1}[rng.IntN(6)]
			fmt.Fprintf(&b, "    recurrence: {anchor: nth_weekday, nth: %d, weekday: %s}\n", nth, strings.ToLower(time.Weekday(rng.IntN(7)).String()))
		}
		fmt.Fprintf(&b, "    start: %q\n", starts[rng.IntN(len(starts))])
		fmt.Fprintf(&b, "    duration: %s\n", time.Duration(1+rng.IntN(96))*15*time.Minute)
	}
	return b.String()
}

func genSchedules(t testing.TB, seed uint64, n int) []Schedule {
	t.Helper()
	ss, err := Parse([]byte(genSchedulesYAML(seed, n)))
	require.NoError(t, err)
	require.Len(t, ss, n)
	return ss
}
