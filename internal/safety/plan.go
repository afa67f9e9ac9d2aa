package safety

import (
	"slices"
	"strings"

	"github.com/autopatch/autopatch/internal/calendar"
)

// PlanEntry is one schedule of a change's plan.
type PlanEntry struct {
	Schedule string
	// Window is the schedule's window in the change; nil when it has none.
	Window *calendar.Window
	// Reason says why it has none (Window nil).
	Reason string
	// Fixed marks a window autopatch cannot leave out of the change: a
	// manual_patch schedule's, whose owners patch by hand in it whatever
	// autopatch deploys.
	Fixed bool
}

// Hold is a schedule left out of a change by the hold policy.
type Hold struct {
	Schedule string
	// Reason is the violation it would have caused, for the plan entry
	// (plan_entries.held) and the work note.
	Reason string
}

// PlanVerdict is the check of a change's plan.
type PlanVerdict struct {
	// Violations are those of the plan as computed.
	Violations []Violation
	// Held lists, under the hold policy, the schedules left out of the
	// change, sorted by name.
	Held []Hold
	// Remaining are, under the hold policy, the violations that holding
	// cannot resolve (they involve only fixed windows).
	Remaining []Violation
}

// CheckPlan checks a change's plan: its windows must keep every redundancy
// group within its limit and every service's tiers in order (a change is
// one round of patching, whatever the cycles of its windows), and a tier
// may not be patched while a tier that must go first has devices on a
// schedule of the plan that gets no window in it.
//
// With hold set, schedules are left out until the rest is safe: the
// latest-starting window of each redundancy violation, the too-early windows
// of a tier-order violation, and the windows of a tier whose predecessor is
// not placed. Leaving a schedule out can strand a later tier of another
// service, which is then held too. Fixed windows are never held.
func (inv *Inventory) CheckPlan(entries []PlanEntry, hold bool) PlanVerdict {
	n := len(inv.tl.names)
	plan := make([]*PlanEntry, n)
	for i := range entries {
		if idx := inv.schedIndex(entries[i].Schedule); idx >= 0 {
			plan[idx] = &entries[i]
		}
	}
	held := map[int32]string{}
	var out PlanVerdict
	for round := 0; ; round++ {
		vs := inv.checkPlanOnce(plan, held)
		if round == 0 {
			out.Violations = vs
		}
		if !hold || len(vs) == 0 {
			out.Remaining = vs
			break
		}
		added := 0
		holdIt := func(sched int32, v Violation) {
			if _, done := held[sched]; done || plan[sched] == nil || plan[sched].Fixed || plan[sched].Window == nil {
				return
			}
			held[sched] = v.String()
			added++
		}
		for _, v := range vs {
			switch v.Kind {
			case KindRedundancy:
				// The window that joined last; ties to the later name.
				best := int32(-1)
				for _, w := range v.Windows {
					i := inv.schedIndex(w.Window.Schedule)
					if _, done := held[i]; done || plan[i].Fixed {
						continue
					}
					if best < 0 || !w.Window.Start.Before(plan[best].Window.Start) {
						best = i
					}
				}
				if best >= 0 {
					holdIt(best, v)
				}
			case KindTierOrder, KindTierNotPlaced:
				for _, w := range v.Windows {
					if w.Tier == v.Tier && w.NotPlaced == "" {
						holdIt(inv.schedIndex(w.Window.Schedule), v)
					}
				}
			}
		}
		if added == 0 {
			out.Remaining = vs
			break
		}
	}
	for i, reason := range held {
		out.Held = append(out.Held, Hold{Schedule: inv.tl.names[i], Reason: reason})
	}
	slices.SortFunc(out.Held, func(a, b Hold) int { return strings.Compare(a.Schedule, b.Schedule) })
	return out
}

// checkPlanOnce checks the plan's windows less the held ones.
func (inv *Inventory) checkPlanOnce(plan []*PlanEntry, held map[int32]string) []Violation {
	src := source{wins: make([][]win, len(plan)), full: make([][]calendar.Window, len(plan)), cycles: 1}
	for i, e := range plan {
		if _, h := held[int32(i)]; e == nil || e.Window == nil || h {
			continue
		}
		src.wins[i] = []win{{start: e.Window.Start.UnixNano(), end: e.Window.End.UnixNano()}}
		src.full[i] = []calendar.Window{*e.Window}
	}
	c := inv.newChecker(src)
	for i := range inv.svcs {
		s := &inv.svcs[i]
		c.service(s)
		c.notPlaced(s, plan, held)
	}
	sortViolations(c.out)
	return c.out
}

// notPlaced reports each tier placed in the plan while an earlier tier of
// the service has devices on a schedule of the plan without a window (or
// held).
func (c *checker) notPlaced(s *service, plan []*PlanEntry, held map[int32]string) {
	for b := 1; b < 3; b++ {
		var placed []Involved
		for _, ct := range s.tiers[b].counts {
			for _, w := range c.src.full[ct.sched] {
				placed = append(placed, Involved{Window: w, Tier: Tiers[b], Devices: int(ct.n)})
			}
		}
		if len(placed) == 0 {
			continue
		}
		for a := range b {
			var missing []Involved
			for _, ct := range s.tiers[a].counts {
				e := plan[ct.sched]
				if e == nil {
					continue // not in the change's scope: the admin's choice
				}
				reason, isHeld := held[ct.sched]
				switch {
				case isHeld:
					reason = "held by service safety"
				case e.Window == nil:
					reason = e.Reason
					if reason == "" {
						reason = "no window in the change"
					}
				default:
					continue
				}
				missing = append(missing, Involved{Window: calendar.Window{Schedule: e.Schedule}, Tier: Tiers[a], Devices: int(ct.n), NotPlaced: reason})
			}
			if len(missing) == 0 {
				continue
			}
			v := Violation{Kind: KindTierNotPlaced, Service: s.name, Tier: Tiers[b], Before: Tiers[a],
				Windows: append(slices.Clone(placed), missing...)}
			sortInvolved(v.Windows[:len(placed)])
			v.Cycle = v.Windows[0].Window.Cycle
			c.out = append(c.out, v)
		}
	}
}
