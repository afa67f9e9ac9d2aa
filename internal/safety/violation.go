package safety

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/autopatch/autopatch/internal/calendar"
)

// Kind names the rule a violation breaks.
type Kind string

// The rules.
const (
	// KindRedundancy: more members of a redundancy group than allowed are
	// inside windows at the same instant.
	KindRedundancy Kind = "redundancy"
	// KindTierOrder: in one cycle (or one change), a tier's window starts
	// before a window of a tier that must patch first has ended.
	KindTierOrder Kind = "tier_order"
	// KindTierNotPlaced (plans only): a change patches a tier while a tier
	// that must patch first has devices on a schedule in the change's scope
	// that gets no window in it (or is held).
	KindTierNotPlaced Kind = "tier_not_placed"
)

// Violation is one broken rule, with what people need to fix it.
type Violation struct {
	Kind    Kind
	Service string
	// Tier is the redundancy group's tier, or the tier that patches too
	// early (tier order).
	Tier Tier
	// Before is the tier that must patch first (tier order, not placed).
	Before Tier
	// Cycle is the patch cycle of the windows involved (for a redundancy
	// violation across two cycles, the earlier one's).
	Cycle calendar.Month
	// From and To bound the broken stretch: the instants at which too many
	// members are down (redundancy), or from the first too-early start to the
	// last late end (tier order). Zero for tier_not_placed.
	From time.Time
	To   time.Time
	// Down is the most members of the group inside windows at once, Limit
	// how many may be, Members the group's size (redundancy only).
	Down    int
	Limit   int
	Members int
	// Windows are the windows involved, sorted by start: for tier order, the
	// late windows of Before and the early ones of Tier; for not placed, the
	// placed windows of Tier and, without a window, the schedules of Before.
	Windows []Involved
}

// Involved is one window (or, for tier_not_placed, a schedule without one)
// taking part in a violation.
type Involved struct {
	Window calendar.Window
	Tier   Tier
	// Devices is how many of the service's devices of Tier are on the
	// window's schedule.
	Devices int
	// NotPlaced says why the schedule has no window in the change (Window
	// then has only its Schedule set).
	NotPlaced string
}

// Schedules returns the schedules of the windows involved, sorted, each
// once.
func (v Violation) Schedules() []string {
	var out []string
	for _, w := range v.Windows {
		out = append(out, w.Window.Schedule)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// String describes v in one line, for work notes and the CLI.
func (v Violation) String() string {
	var b strings.Builder
	switch v.Kind {
	case KindRedundancy:
		fmt.Fprintf(&b, "%s / %s: %d of its %d devices would be in a window at once (at most %d may be), %s",
			v.Service, v.Tier, v.Down, v.Members, v.Limit, formatUTC(v.From, v.To))
		b.WriteString(": ")
		b.WriteString(describeWindows(v.Windows, false))
	case KindTierOrder:
		fmt.Fprintf(&b, "%s: %s would patch before %s has finished (cycle %s): ", v.Service, v.Tier, v.Before, v.Cycle)
		var early, late []Involved
		for _, w := range v.Windows {
			if w.Tier == v.Tier {
				early = append(early, w)
			} else {
				late = append(late, w)
			}
		}
		fmt.Fprintf(&b, "%s %s starts before %s %s ends", v.Tier, describeWindows(early, false), v.Before, describeWindows(late, false))
	case KindTierNotPlaced:
		var placed, missing []Involved
		for _, w := range v.Windows {
			if w.NotPlaced != "" {
				missing = append(missing, w)
			} else {
				placed = append(placed, w)
			}
		}
		fmt.Fprintf(&b, "%s: %s is patched in this change (%s) but %s is not: %s",
			v.Service, v.Tier, describeWindows(placed, false), v.Before, describeWindows(missing, true))
	default:
		fmt.Fprintf(&b, "%s: %s", v.Service, v.Kind)
	}
	return b.String()
}

func describeWindows(ws []Involved, reasons bool) string {
	parts := make([]string, 0, len(ws))
	for _, w := range ws {
		devices := "devices"
		if w.Devices == 1 {
			devices = "device"
		}
		if w.NotPlaced != "" {
			if reasons {
				parts = append(parts, fmt.Sprintf("%s (%d %s): %s", w.Window.Schedule, w.Devices, devices, w.NotPlaced))
			} else {
				parts = append(parts, fmt.Sprintf("%s (%d %s)", w.Window.Schedule, w.Devices, devices))
			}
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s (%d %s)", w.Window.Schedule, w.Window.LocalString(), w.Devices, devices))
	}
	return strings.Join(parts, "; ")
}

// formatUTC shows [from, to) to the minute, or to the second when either
// end is not on a minute (short windows would otherwise read 07:05–07:05).
func formatUTC(from, to time.Time) string {
	from, to = from.UTC(), to.UTC()
	clock := "15:04"
	if from.Second() != 0 || to.Second() != 0 {
		clock = "15:04:05"
	}
	if from.Format("2006-01-02") == to.Format("2006-01-02") {
		return from.Format("Mon 2006-01-02 "+clock) + "–" + to.Format(clock) + " UTC"
	}
	return from.Format("Mon 2006-01-02 "+clock) + " – " + to.Format("Mon 2006-01-02 "+clock) + " UTC"
}

// Summary is a violation that recurs: the same rule broken by the same
// schedules of the same service and tier in several cycles.
type Summary struct {
	First Violation
	// Count is how many times it occurs; Cycles are their cycles, in order.
	Count  int
	Cycles []calendar.Month
}

// String describes s: the first occurrence, and how often it recurs.
func (s Summary) String() string {
	if s.Count == 1 {
		return s.First.String()
	}
	return fmt.Sprintf("%s — and %d more time(s) in the cycles checked (%s to %s)",
		s.First.String(), s.Count-1, s.Cycles[0], s.Cycles[len(s.Cycles)-1])
}

// Summarize groups recurring violations, keeping the order of their first
// occurrences: a service that breaks a rule every month reads as one line.
func Summarize(vs []Violation) []Summary {
	var out []Summary
	index := map[string]int{}
	for _, v := range vs {
		key := strings.Join([]string{string(v.Kind), ServiceKey(v.Service), string(v.Tier), string(v.Before), strings.Join(v.Schedules(), "\x00")}, "\x01")
		i, ok := index[key]
		if !ok {
			index[key] = len(out)
			out = append(out, Summary{First: v, Count: 1, Cycles: []calendar.Month{v.Cycle}})
			continue
		}
		out[i].Count++
		if c := out[i].Cycles; c[len(c)-1] != v.Cycle {
			out[i].Cycles = append(c, v.Cycle)
		}
	}
	return out
}

// Assignment is one device: its service, tier and schedule.
type Assignment struct {
	Device   string
	Service  string
	Tier     Tier
	Schedule string
}

// Devices returns the devices of assignments that take part in v: those of
// its service and tier (for tier rules, either tier) on the schedules of its
// windows; sorted, each once.
func Devices(v Violation, assignments []Assignment) []string {
	key := ServiceKey(v.Service)
	type st struct {
		tier  Tier
		sched string
	}
	want := map[st]bool{}
	for _, w := range v.Windows {
		want[st{w.Tier, w.Window.Schedule}] = true
	}
	var out []string
	for _, a := range assignments {
		if want[st{a.Tier, a.Schedule}] && ServiceKey(a.Service) == key {
			out = append(out, a.Device)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
