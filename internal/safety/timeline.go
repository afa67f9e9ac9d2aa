package safety

import (
	"slices"
	"time"

	"github.com/autopatch/autopatch/internal/calendar"
)

// DefaultCycles is how many patch cycles ahead the checker looks (issue #8).
const DefaultCycles = 12

// Horizon is the part of the calendar a check covers: the windows produced by
// the Cycles cycles from First on that end after After.
type Horizon struct {
	First  calendar.Month
	Cycles int
	// After drops windows that are over: a rule broken in the past cannot
	// be helped, and must not refuse a request today. Zero keeps them all.
	After time.Time
}

// NextCycles is the horizon of a check made at now: the cycle in progress
// (now's UTC month) and the DefaultCycles−1 after it, plus the previous
// cycle, whose late windows (a Patch Tuesday offset of +25 days lands in the
// next month) may still lie ahead; only windows that end after now count.
func NextCycles(now time.Time) Horizon {
	return Horizon{First: calendar.MonthOf(now.UTC()).AddMonths(-1), Cycles: DefaultCycles + 1, After: now}
}

// Last returns the horizon's last cycle.
func (h Horizon) Last() calendar.Month { return h.First.AddMonths(h.Cycles - 1) }

// win is a window reduced to what the sweep needs: Unix nanoseconds and the
// index of its cycle in the horizon.
type win struct {
	start, end int64
	cycle      int32
}

// Timeline is every schedule's windows over a horizon, computed once and
// shared by every check made with it. It is immutable and safe for
// concurrent use.
type Timeline struct {
	h     Horizon
	names []string
	index map[string]int32
	kinds []calendar.Kind
	wins  [][]win             // per schedule, sorted by start
	full  [][]calendar.Window // the same windows, for reports
}

// NewTimeline computes the windows of schedules over h.
func NewTimeline(schedules []calendar.Schedule, h Horizon) *Timeline {
	tl := &Timeline{
		h:     h,
		names: make([]string, len(schedules)),
		index: make(map[string]int32, len(schedules)),
		kinds: make([]calendar.Kind, len(schedules)),
		wins:  make([][]win, len(schedules)),
		full:  make([][]calendar.Window, len(schedules)),
	}
	for i, s := range schedules {
		tl.names[i] = s.Name
		tl.index[s.Name] = int32(i)
		tl.kinds[i] = s.Kind
		var full []calendar.Window
		for c := range h.Cycles {
			for _, w := range s.CycleWindows(h.First.AddMonths(c)) {
				if !h.After.IsZero() && !w.End.After(h.After) {
					continue
				}
				full = append(full, w)
			}
		}
		slices.SortFunc(full, func(a, b calendar.Window) int { return a.Start.Compare(b.Start) })
		ws := make([]win, len(full))
		for k, w := range full {
			ws[k] = win{start: w.Start.UnixNano(), end: w.End.UnixNano(), cycle: int32(cycleIndex(h.First, w.Cycle))}
		}
		tl.wins[i], tl.full[i] = ws, full
	}
	return tl
}

// Horizon returns the horizon the timeline covers.
func (tl *Timeline) Horizon() Horizon { return tl.h }

// Schedules returns the schedule names in the order given to NewTimeline.
func (tl *Timeline) Schedules() []string { return tl.names }

// Kind returns the kind of a schedule; ok is false for an unknown one.
func (tl *Timeline) Kind(schedule string) (calendar.Kind, bool) {
	i, ok := tl.index[schedule]
	if !ok {
		return "", false
	}
	return tl.kinds[i], true
}

// Windows returns a schedule's windows over the horizon, sorted by start
// (nil for an unknown schedule). Callers must not modify it.
func (tl *Timeline) Windows(schedule string) []calendar.Window {
	i, ok := tl.index[schedule]
	if !ok {
		return nil
	}
	return tl.full[i]
}

func cycleIndex(first, m calendar.Month) int {
	return (m.Year-first.Year)*12 + int(m.Month) - int(first.Month)
}
