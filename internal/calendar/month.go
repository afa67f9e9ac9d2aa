package calendar

import (
	"fmt"
	"time"
)

// Month identifies a calendar month. Windows carry the Month of the patch cycle that
// produced them, which is not always the month they fall in: a Patch Tuesday offset
// can push a cycle's window into the next (or previous) calendar month.
type Month struct {
	Year  int
	Month time.Month
}

// MonthOf returns the month of t's calendar date in t's location.
func MonthOf(t time.Time) Month {
	y, m, _ := t.Date()
	return Month{Year: y, Month: m}
}

// ParseMonth parses "YYYY-MM".
func ParseMonth(s string) (Month, error) {
	t, err := time.Parse("2006-01", s)
	if err != nil {
		return Month{}, fmt.Errorf("calendar: parse month %q: want YYYY-MM", s)
	}
	return MonthOf(t), nil
}

// String formats m as "YYYY-MM".
func (m Month) String() string {
	return fmt.Sprintf("%04d-%02d", m.Year, int(m.Month))
}

// AddMonths returns the month n months after m (n may be negative).
func (m Month) AddMonths(n int) Month {
	i := m.index() + n
	y, mo := floorDiv(i, 12)
	return Month{Year: y, Month: time.Month(mo + 1)}
}

// Compare returns -1, 0 or +1 as m is before, equal to or after o.
func (m Month) Compare(o Month) int {
	a, b := m.index(), o.index()
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Days returns the number of days in m.
func (m Month) Days() int {
	return time.Date(m.Year, m.Month+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// index numbers months consecutively so that month arithmetic is integer arithmetic.
func (m Month) index() int {
	return m.Year*12 + int(m.Month) - 1
}

// floorDiv returns the floored quotient and the non-negative remainder of a/b.
func floorDiv(a, b int) (q, r int) {
	q, r = a/b, a%b
	if r < 0 {
		q--
		r += b
	}
	return q, r
}

// dateMonth returns the month of the (normalised) civil date year-month-day.
func dateMonth(year int, month time.Month, day int) Month {
	return MonthOf(time.Date(year, month, day, 0, 0, 0, 0, time.UTC))
}

// PatchTuesday returns the day of the month of the second Tuesday of month in year.
// It is a calendar date; the schedule's time zone decides which instant it starts at.
func PatchTuesday(year int, month time.Month) int {
	first := time.Date(year, month, 1, 0, 0, 0, 0, time.UTC).Weekday()
	firstTuesday := 1 + int((time.Tuesday-first+7)%7)
	return firstTuesday + 7
}

// nthWeekday returns the day of the month of the nth wd in month (nth -1 is the last
// one); ok is false when the month has no such day (a fifth Monday, say).
func nthWeekday(year int, month time.Month, nth int, wd time.Weekday) (day int, ok bool) {
	first := time.Date(year, month, 1, 0, 0, 0, 0, time.UTC).Weekday()
	days := Month{Year: year, Month: month}.Days()
	if nth == -1 {
		last := (first + time.Weekday(days-1)) % 7
		return days - int((last-wd+7)%7), true
	}
	day = 1 + int((wd-first+7)%7) + 7*(nth-1)
	return day, day <= days
}
