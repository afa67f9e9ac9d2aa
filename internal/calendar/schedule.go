package calendar

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Kind says what autopatch does in a schedule's windows.
type Kind string

// The kinds of schedule (docs/architecture.md §2).
const (
	// KindAutomatic deploys updates and lets SCCM restart the devices.
	KindAutomatic Kind = "automatic"
	// KindManualPatch creates no deployment: the owner patches by hand, autopatch tracks.
	KindManualPatch Kind = "manual_patch"
	// KindManualReboot deploys with restarts suppressed; the owner reboots.
	KindManualReboot Kind = "manual_reboot"
)

// Anchor is what a recurrence counts from.
type Anchor string

// The recurrence anchors.
const (
	// AnchorPatchTuesday places cycle M's window on Patch Tuesday of M plus OffsetDays.
	AnchorPatchTuesday Anchor = "patch_tuesday"
	// AnchorNthWeekday places cycle M's window on the Nth Weekday of calendar month M.
	AnchorNthWeekday Anchor = "nth_weekday"
)

// Recurrence is a monthly rule; each month (cycle) yields at most one window.
type Recurrence struct {
	Anchor Anchor
	// OffsetDays is added to Patch Tuesday (AnchorPatchTuesday only); it may be
	// negative and may move the window into another calendar month.
	OffsetDays int
	// Nth is 1..5, or -1 for the last Weekday of the month (AnchorNthWeekday only).
	Nth int
	// Weekday is the day counted by Nth (AnchorNthWeekday only).
	Weekday time.Weekday
}

// String describes r the way an administrator would say it, e.g. "PT+4" or
// "last Sunday".
func (r Recurrence) String() string {
	switch r.Anchor {
	case AnchorPatchTuesday:
		if r.OffsetDays == 0 {
			return "PT"
		}
		return fmt.Sprintf("PT%+d", r.OffsetDays)
	case AnchorNthWeekday:
		ordinal := map[int]string{1: "1st", 2: "2nd", 3: "3rd", 4: "4th", 5: "5th", -1: "last"}[r.Nth]
		return ordinal + " " + r.Weekday.String()
	}
	return string(r.Anchor)
}

// TimeOfDay is a local wall-clock time with minute precision.
type TimeOfDay struct {
	Hour, Minute int
}

// String formats c as "HH:MM".
func (c TimeOfDay) String() string {
	return fmt.Sprintf("%02d:%02d", c.Hour, c.Minute)
}

// Schedule is one validated entry of the schedules file. Build schedules with Parse;
// the methods assume a valid schedule (Location set, exactly one of Recurrence and
// OneOffs).
type Schedule struct {
	// Name identifies the schedule; it travels into SCCM deployment names.
	Name string
	// Collection is the SCCM device collection the schedule is bound to.
	Collection string
	// Site is the code of the SCCM site whose collection it is; empty means
	// the only site (docs/architecture.md §10.1).
	Site string
	Kind Kind
	// TimeZone is the IANA name as written in the file ("UTC" when a one-off schedule
	// names none); Location is that zone loaded.
	TimeZone string
	Location *time.Location
	// Recurrence is nil for a schedule of one-off windows.
	Recurrence *Recurrence
	// Start and Duration shape every recurring window: local start, elapsed length.
	Start    TimeOfDay
	Duration time.Duration
	// OneOffs are the explicit windows, sorted by start and not overlapping.
	OneOffs []Window
}

// Window is one concrete occurrence of a schedule: the instants [Start, End).
type Window struct {
	Schedule string
	// Start and End are in the schedule's Location.
	Start, End time.Time
	// Cycle is the month that produced the window: the Patch Tuesday's month for
	// patch_tuesday, the calendar month for nth_weekday, the UTC month of the start
	// for one-off windows.
	Cycle Month
}

// LocalString formats w in its own zone for people, e.g.
// "Sat 2026-12-12 02:00–06:00 GMT" or "Sat 2026-12-12 23:00 – Sun 2026-12-13 02:00 EST";
// each end gets its own zone abbreviation when a DST transition lies in between.
func (w Window) LocalString() string {
	return formatRange(w.Start, w.End)
}

// UTCString formats w in UTC like LocalString.
func (w Window) UTCString() string {
	return formatRange(w.Start.UTC(), w.End.UTC())
}

func formatRange(start, end time.Time) string {
	const day = "Mon 2006-01-02"
	clock := clockLayout(start, end)
	sy, sm, sd := start.Date()
	ey, em, ed := end.Date()
	sameDay := sy == ey && sm == em && sd == ed
	sz, _ := start.Zone()
	ez, _ := end.Zone()
	var b strings.Builder
	b.WriteString(start.Format(day + " " + clock))
	switch {
	case sameDay && sz == ez:
		b.WriteString("–" + end.Format(clock) + " " + ez)
	case sameDay:
		b.WriteString(" " + sz + "–" + end.Format(clock) + " " + ez)
	case sz == ez:
		b.WriteString(" – " + end.Format(day+" "+clock) + " " + ez)
	default:
		b.WriteString(" " + sz + " – " + end.Format(day+" "+clock) + " " + ez)
	}
	return b.String()
}

// clockLayout shows seconds only when an instant has them (one-off windows may), so
// the usual case reads "02:00" and nothing is ever silently rounded.
func clockLayout(ts ...time.Time) string {
	for _, t := range ts {
		if t.Second() != 0 || t.Nanosecond() != 0 {
			return "15:04:05"
		}
	}
	return "15:04"
}

// Windows returns every window of s whose start lies in [from, to), sorted by start.
func (s Schedule) Windows(from, to time.Time) []Window {
	if !from.Before(to) {
		return nil
	}
	if s.Recurrence == nil {
		var out []Window
		for _, w := range s.OneOffs {
			if !w.Start.Before(from) && w.Start.Before(to) {
				out = append(out, w)
			}
		}
		return out
	}
	first, last := s.cycleRange(from, to)
	out := make([]Window, 0, last.index()-first.index()+1)
	var hint period
	for m := first; m.Compare(last) <= 0; m = m.AddMonths(1) {
		w, ok := s.occurrence(m, &hint)
		if ok && !w.Start.Before(from) && w.Start.Before(to) {
			out = append(out, w)
		}
	}
	// Occurrences of consecutive cycles are weeks apart, so out is already sorted in
	// every real zone; sorting is a cheap guarantee rather than an assumption.
	sortWindows(out)
	return out
}

// CycleWindows returns the windows produced by cycle m, sorted by start: at most one
// for a recurrence, any number of one-off windows.
func (s Schedule) CycleWindows(m Month) []Window {
	if s.Recurrence == nil {
		var out []Window
		for _, w := range s.OneOffs {
			if w.Cycle == m {
				out = append(out, w)
			}
		}
		return out
	}
	if w, ok := s.occurrence(m, nil); ok {
		return []Window{w}
	}
	return nil
}

// cycleRange returns the cycles that can produce a window starting in [from, to).
// A start in that range has a local date within [date(from)-2, date(to)+2] (the slack
// covers a DST overlap and gap of up to a day); for patch_tuesday the cycle is the
// month of that date minus the offset, which is exact because Patch Tuesday always
// lies on day 8..14, far from a month boundary.
func (s Schedule) cycleRange(from, to time.Time) (first, last Month) {
	// One Date call each: every calendar accessor of a zoned time is a zone lookup.
	ly, lm, ld := from.In(s.Location).Date()
	hy, hm, hd := to.In(s.Location).Date()
	shift := 0
	if s.Recurrence.Anchor == AnchorPatchTuesday {
		shift = s.Recurrence.OffsetDays
	}
	first = dateMonth(ly, lm, ld-shift-2)
	last = dateMonth(hy, hm, hd-shift+2)
	return first, last
}

// occurrence returns the window of cycle m; ok is false when the cycle has none (no
// fifth Sunday in the month). hint carries a zone period between calls (localInstant).
func (s Schedule) occurrence(m Month, hint *period) (w Window, ok bool) {
	r := s.Recurrence
	var day int
	switch r.Anchor {
	case AnchorPatchTuesday:
		day = PatchTuesday(m.Year, m.Month) + r.OffsetDays
	case AnchorNthWeekday:
		if day, ok = nthWeekday(m.Year, m.Month, r.Nth, r.Weekday); !ok {
			return Window{}, false
		}
	default:
		return Window{}, false
	}
	start := localInstant(s.Location, hint, m.Year, m.Month, day, s.Start.Hour, s.Start.Minute)
	return Window{Schedule: s.Name, Start: start, End: start.Add(s.Duration), Cycle: m}, true
}

// sortWindows orders windows by start, then schedule name, so output is stable.
func sortWindows(ws []Window) {
	slices.SortFunc(ws, compareWindows)
}

func compareWindows(a, b Window) int {
	if c := a.Start.Compare(b.Start); c != 0 {
		return c
	}
	return strings.Compare(a.Schedule, b.Schedule)
}
