package calendar

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// weekdaysOf lists, by walking the month one day at a time, the days that fall on wd.
// It shares nothing with PatchTuesday/nthWeekday's modular arithmetic.
func weekdaysOf(year int, month time.Month, wd time.Weekday) []int {
	var days []int
	for d := time.Date(year, month, 1, 12, 0, 0, 0, time.UTC); d.Month() == month; d = d.AddDate(0, 0, 1) {
		if d.Weekday() == wd {
			days = append(days, d.Day())
		}
	}
	return days
}

func TestPatchTuesday(t *testing.T) {
	t.Parallel()

	t.Run("EveryMonth2000To2100", func(t *testing.T) {
		t.Parallel()
		for year := 2000; year <= 2100; year++ {
			for month := time.January; month <= time.December; month++ {
				tuesdays := weekdaysOf(year, month, time.Tuesday)
				require.Equal(t, tuesdays[1], PatchTuesday(year, month), "%d-%02d", year, month)
			}
		}
	})

	t.Run("KnownDates", func(t *testing.T) {
		t.Parallel()
		// Microsoft's published release dates.
		for _, tc := range []struct {
			year  int
			month time.Month
			day   int
		}{
			{2024, time.January, 9}, {2025, time.October, 14}, {2026, time.December, 8}, {2026, time.September, 8},
		} {
			require.Equal(t, tc.day, PatchTuesday(tc.year, tc.month))
		}
	})
}

func TestNthWeekday(t *testing.T) {
	t.Parallel()
	for year := 2020; year <= 2032; year++ {
		for month := time.January; month <= time.December; month++ {
			for wd := time.Sunday; wd <= time.Saturday; wd++ {
				days := weekdaysOf(year, month, wd)
				for nth := 1; nth <= 5; nth++ {
					day, ok := nthWeekday(year, month, nth, wd)
					if nth <= len(days) {
						require.True(t, ok)
						require.Equal(t, days[nth-1], day, "%d-%02d nth %d %s", year, month, nth, wd)
					} else {
						require.False(t, ok, "%d-%02d has no %d %s", year, month, nth, wd)
					}
				}
				day, ok := nthWeekday(year, month, -1, wd)
				require.True(t, ok)
				require.Equal(t, days[len(days)-1], day, "%d-%02d last %s", year, month, wd)
			}
		}
	}
}

func TestMonth(t *testing.T) {
	t.Parallel()

	m, err := ParseMonth("2026-12")
	require.NoError(t, err)
	require.Equal(t, Month{Year: 2026, Month: time.December}, m)
	require.Equal(t, "2026-12", m.String())
	require.Equal(t, Month{Year: 2027, Month: time.January}, m.AddMonths(1))
	require.Equal(t, Month{Year: 2025, Month: time.December}, m.AddMonths(-12))
	require.Equal(t, Month{Year: 2024, Month: time.November}, m.AddMonths(-25))
	require.Equal(t, 31, m.Days())
	require.Equal(t, 29, Month{Year: 2028, Month: time.February}.Days())
	require.Equal(t, -1, m.Compare(m.AddMonths(1)))
	require.Equal(t, 1, m.Compare(m.AddMonths(-1)))
	require.Equal(t, 0, m.Compare(Month{Year: 2026, Month: time.December}))

	for _, bad := range []string{"2026-13", "2026-1", "26-12", "2026/12", ""} {
		_, err := ParseMonth(bad)
		require.Error(t, err, bad)
	}
}
