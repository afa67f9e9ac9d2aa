package calendar

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Added is a window Plan did not find and PlanBefore added: a slot of the
// schedule's length before an emergency change's deadline (docs/architecture.md
// §9.2).
type Added struct {
	Schedule string
	// Why says, for people, why the slot was added.
	Why string
}

// PlanBefore is Plan for a change whose devices must be patched by
// deadline (an emergency): a schedule whose window in the change does not
// end by the deadline (or that has none) gets instead the first slot of its
// own length that starts at or after the change's start, ends by the
// deadline and the change's end, and overlaps no other window of the
// change. The added slots therefore never run beside each other or beside
// a regular window, so a redundancy group spread over schedules is never
// all down at once; the plan's service-safety check still judges the
// result (tiers in order, groups within one schedule). Schedules are
// placed in name order. A schedule for which no such slot exists is
// unplaceable, and the reason says so: it is never patched early or
// outside the change.
func PlanBefore(schedules []Schedule, changeStart, changeEnd, deadline time.Time) (PlanResult, []Added) {
	res := Plan(schedules, changeStart, changeEnd)
	limit := changeEnd
	if deadline.Before(limit) {
		limit = deadline
	}
	byName := map[string]Schedule{}
	for _, s := range schedules {
		byName[s.Name] = s
	}
	var (
		kept []Window
		need []string
	)
	for _, w := range res.Windows {
		if w.End.After(deadline) {
			need = append(need, w.Schedule)
			continue
		}
		kept = append(kept, w)
	}
	var unplaceable []Unplaceable
	for _, u := range res.Unplaceable {
		if _, ok := byName[u.Schedule]; ok && changeStart.Before(changeEnd) {
			need = append(need, u.Schedule)
			continue
		}
		unplaceable = append(unplaceable, u)
	}
	slices.Sort(need)
	var added []Added
	for _, name := range need {
		s := byName[name]
		if s.Duration <= 0 {
			unplaceable = append(unplaceable, Unplaceable{Schedule: name, Reason: fmt.Sprintf(
				"emergency: a schedule of one-off windows only has none before the deadline %s: not patched early; add a window or patch by hand",
				formatInstant(deadline.UTC()))})
			continue
		}
		start, ok := firstGap(kept, changeStart, s.Duration, limit)
		if !ok {
			unplaceable = append(unplaceable, Unplaceable{Schedule: name, Reason: fmt.Sprintf(
				"emergency: no slot of %s before the deadline %s that overlaps no other window of the change: not patched early; patch by hand or move the deadline",
				s.Duration, formatInstant(deadline.UTC()))})
			continue
		}
		w := Window{Schedule: name, Start: start.In(s.Location), End: start.Add(s.Duration).In(s.Location), Cycle: MonthOf(start.UTC())}
		if s.Location == nil {
			w.Start, w.End = start.UTC(), start.Add(s.Duration).UTC()
		}
		kept = append(kept, w)
		why := "emergency: its schedule has no window in the change before the deadline " + formatInstant(deadline.UTC())
		added = append(added, Added{Schedule: name, Why: why})
	}
	sortWindows(kept)
	slices.SortFunc(unplaceable, func(a, b Unplaceable) int { return strings.Compare(a.Schedule, b.Schedule) })
	if kept == nil {
		kept = []Window{}
	}
	if unplaceable == nil {
		unplaceable = []Unplaceable{}
	}
	return PlanResult{Windows: kept, Unplaceable: unplaceable}, added
}

// firstGap is the earliest start ≥ from of a slot of length d that ends by
// limit and overlaps none of windows (half-open).
func firstGap(windows []Window, from time.Time, d time.Duration, limit time.Time) (time.Time, bool) {
	ws := slices.Clone(windows)
	slices.SortFunc(ws, func(a, b Window) int { return a.Start.Compare(b.Start) })
	start := from
	for _, w := range ws {
		if !start.Add(d).After(w.Start) {
			break // fits before w (and every later one starts later)
		}
		if w.End.After(start) {
			start = w.End
		}
	}
	return start, !start.Add(d).After(limit)
}
