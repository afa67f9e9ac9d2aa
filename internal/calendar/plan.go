package calendar

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// PlanHorizonMonths is how far past a change's start Plan looks for a schedule's next
// window when none fits, to tell people when it would be.
const PlanHorizonMonths = 13

// PlanResult is the plan of one change.
type PlanResult struct {
	// Windows holds the chosen window of each placeable schedule, sorted by start then
	// schedule.
	Windows []Window
	// Unplaceable lists the schedules without a window inside the change, sorted by
	// schedule name.
	Unplaceable []Unplaceable
}

// Unplaceable says why a schedule has no window in a change.
type Unplaceable struct {
	Schedule string
	// Reason is written for people, e.g. "next window Sat 2026-12-19 02:00–06:00 GMT
	// (Europe/London) starts after the change ends (change ends Mon 2026-12-14 06:00 UTC)".
	Reason string
}

// Plan picks, for each schedule, its earliest window with start ≥ changeStart and
// end ≤ changeEnd (docs/architecture.md §4.2); a schedule without one is unplaceable, with the
// reason.
func Plan(schedules []Schedule, changeStart, changeEnd time.Time) PlanResult {
	res := PlanResult{Windows: []Window{}, Unplaceable: []Unplaceable{}}
	for _, s := range schedules {
		w, reason, ok := planOne(s, changeStart, changeEnd)
		if ok {
			res.Windows = append(res.Windows, w)
		} else {
			res.Unplaceable = append(res.Unplaceable, Unplaceable{Schedule: s.Name, Reason: reason})
		}
	}
	sortWindows(res.Windows)
	slices.SortFunc(res.Unplaceable, func(a, b Unplaceable) int { return strings.Compare(a.Schedule, b.Schedule) })
	return res
}

func planOne(s Schedule, changeStart, changeEnd time.Time) (Window, string, bool) {
	changeEnds := "(change ends " + formatInstant(changeEnd.UTC()) + ")"
	if !changeStart.Before(changeEnd) {
		return Window{}, fmt.Sprintf("the change ends before it starts (change starts %s, ends %s)",
			formatInstant(changeStart.UTC()), formatInstant(changeEnd.UTC())), false
	}
	inside := s.Windows(changeStart, changeEnd)
	for _, w := range inside {
		if !w.End.After(changeEnd) {
			return w, "", true
		}
	}
	if len(inside) > 0 {
		return Window{}, fmt.Sprintf("next window %s ends after the change %s", describe(s, inside[0]), changeEnds), false
	}
	horizon := changeStart.AddDate(0, PlanHorizonMonths, 0)
	if changeEnd.Before(horizon) {
		if next := s.Windows(changeEnd, horizon); len(next) > 0 {
			return Window{}, fmt.Sprintf("next window %s starts after the change ends %s", describe(s, next[0]), changeEnds), false
		}
		return Window{}, fmt.Sprintf("no window in the %d months after the change start (change starts %s)",
			PlanHorizonMonths, formatInstant(changeStart.UTC())), false
	}
	return Window{}, fmt.Sprintf("no window between the change start and end (change starts %s, ends %s)",
		formatInstant(changeStart.UTC()), formatInstant(changeEnd.UTC())), false
}

func describe(s Schedule, w Window) string {
	local := w.LocalString()
	if abbrev, _ := w.Start.Zone(); abbrev == s.TimeZone {
		return local // "UTC (UTC)" says nothing twice
	}
	return local + " (" + s.TimeZone + ")"
}

// formatInstant formats t for reasons: "Mon 2026-12-14 06:00 UTC".
func formatInstant(t time.Time) string {
	return t.Format("Mon 2006-01-02 " + clockLayout(t) + " MST")
}
