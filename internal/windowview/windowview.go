// Package windowview joins the windows internal/calendar computes with what
// autopatch did about them — the deployments of changes and the windows a
// plan held back for service safety — into one state per window: what
// GET /api/v1/windows and the console's calendar show.
package windowview

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/autopatch/autopatch/internal/calendar"
	"github.com/autopatch/autopatch/internal/store"
)

// Window states. A window with a live deployment takes the deployment's
// state; a window only a plan held back is held; a window no change has
// touched is scheduled.
const (
	StateScheduled = "scheduled"
	StatePlanned   = store.DeploymentPlanned
	StateCreated   = store.DeploymentCreated
	StateOpen      = store.DeploymentOpen
	StateClosed    = store.DeploymentClosed
	StateMissed    = store.DeploymentMissed
	StateFailed    = store.DeploymentFailed
	StateHeld      = store.DeploymentHeld
)

// States lists every state, in the order a legend shows them.
var States = []string{StateScheduled, StatePlanned, StateCreated, StateOpen, StateClosed, StateMissed, StateHeld, StateFailed}

// rank orders deployment states when a window has several deployments (one
// per update group, or of several changes): the window shows the one that
// matters most now.
// A deployment held by rollout control (error budget, tier gating, pause)
// has the state held itself, and outranks created: it will not open.
var rank = map[string]int{
	StateOpen: 8, StateHeld: 7, StateCreated: 6, StatePlanned: 5, StateFailed: 4, StateMissed: 3, StateClosed: 2,
}

// View is one window and what autopatch did about it.
type View struct {
	calendar.Window
	// Kind and TimeZone are the schedule's.
	Kind     calendar.Kind
	TimeZone string
	State    string
	// Deployments are the live deployments in this window.
	Deployments []store.WindowDeployment
	// Changes are the numbers of the changes with a deployment in, or a
	// hold on, this window, sorted.
	Changes []string
	// HeldReason is the service-safety reason of a hold.
	HeldReason string
	// Stray is set for a window that only deployments know: the schedule
	// in force (changed or retired since) no longer computes it, yet SCCM
	// may still hold its deployments. Shown so that none is hidden.
	Stray bool
}

// Build returns the windows of schedules starting in [from, to), sorted by
// start then schedule, each with its state. deps and held may hold rows of
// other windows; those are ignored, except the deployments of a window a
// schedule no longer computes, which become Stray views: of the schedules
// given, and with others set, of schedules not given (retired ones, when
// schedules are all those in force).
func Build(schedules []calendar.Schedule, others bool, from, to time.Time, deps []store.WindowDeployment, held []store.HeldWindow) []View {
	type key struct {
		schedule string
		start    int64
	}
	byWindow := map[key][]store.WindowDeployment{}
	for _, d := range deps {
		k := key{d.Schedule, d.WindowStart.Unix()}
		byWindow[k] = append(byWindow[k], d)
	}
	holds := map[key][]store.HeldWindow{}
	for _, h := range held {
		k := key{h.Schedule, h.WindowStart.Unix()}
		holds[k] = append(holds[k], h)
	}
	var out []View
	matched := map[key]bool{}
	byName := map[string]calendar.Schedule{}
	for _, s := range schedules {
		byName[s.Name] = s
		for _, w := range s.Windows(from, to) {
			v := View{Window: w, Kind: s.Kind, TimeZone: s.TimeZone, State: StateScheduled}
			k := key{s.Name, w.Start.Unix()}
			matched[k] = true
			v.Deployments = byWindow[k]
			for _, d := range v.Deployments {
				if rank[d.State] > rank[v.State] {
					v.State = d.State
				}
				v.Changes = append(v.Changes, d.ChangeNumber)
			}
			if hs := holds[k]; len(hs) > 0 {
				if len(v.Deployments) == 0 {
					v.State = StateHeld
				}
				for _, h := range hs {
					v.Changes = append(v.Changes, h.ChangeNumber)
					if v.HeldReason == "" {
						v.HeldReason = h.Reason
					}
				}
			}
			slices.Sort(v.Changes)
			v.Changes = slices.Compact(v.Changes)
			out = append(out, v)
		}
	}
	// Deployments of windows the schedules no longer compute.
	strays := map[key]*View{}
	for _, d := range deps {
		k := key{d.Schedule, d.WindowStart.Unix()}
		if matched[k] || d.WindowStart.Before(from) || !d.WindowStart.Before(to) {
			continue
		}
		s, known := byName[d.Schedule]
		if !known && !others {
			continue
		}
		v := strays[k]
		if v == nil {
			loc := time.UTC
			if known {
				loc = s.Location
			}
			v = &View{Window: calendar.Window{Schedule: d.Schedule, Start: d.WindowStart.In(loc), End: d.WindowEnd.In(loc),
				Cycle: calendar.MonthOf(d.WindowStart.UTC())}, Kind: s.Kind, TimeZone: loc.String(), State: StateScheduled, Stray: true}
			strays[k] = v
		}
		v.Deployments = append(v.Deployments, d)
		if rank[d.State] > rank[v.State] {
			v.State = d.State
		}
		v.Changes = append(v.Changes, d.ChangeNumber)
	}
	for _, v := range strays {
		slices.Sort(v.Changes)
		v.Changes = slices.Compact(v.Changes)
		out = append(out, *v)
	}
	slices.SortStableFunc(out, func(a, b View) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return strings.Compare(a.Schedule, b.Schedule)
	})
	return out
}

// Load reads the deployments and holds of [from, to) and builds the views
// (others as in Build).
// Deployments are read with a day's margin either side: a deployment's
// window is the computed one, so only the exact start matches.
func Load(ctx context.Context, db store.DBTX, schedules []calendar.Schedule, others bool, from, to time.Time) ([]View, error) {
	deps, err := store.DeploymentsBetween(ctx, db, from.Add(-24*time.Hour), to.Add(24*time.Hour))
	if err != nil {
		return nil, err
	}
	held, err := store.HeldBetween(ctx, db, from.Add(-24*time.Hour), to.Add(24*time.Hour))
	if err != nil {
		return nil, err
	}
	return Build(schedules, others, from, to, deps, held), nil
}

// DSTChange is a change of a zone's UTC offset.
type DSTChange struct {
	Zone string
	// At is the instant of the change; Before and After the zone
	// abbreviations (GMT → BST) and offsets either side.
	At                        time.Time
	Before, After             string
	OffsetBefore, OffsetAfter int
}

// DSTChanges returns the offset changes of the zones in [from, to), sorted
// by instant then zone. It searches hour by hour, then narrows to the
// minute: zones change on the minute.
func DSTChanges(zones []*time.Location, from, to time.Time) []DSTChange {
	var out []DSTChange
	for _, loc := range zones {
		t := from.In(loc)
		name, off := t.Zone()
		for t.Before(to) {
			next := t.Add(time.Hour)
			if next.After(to) {
				next = to
			}
			n2, o2 := next.In(loc).Zone()
			if o2 != off || n2 != name {
				lo, hi := t, next // offset at lo is off, at hi is o2
				for hi.Sub(lo) > time.Minute {
					mid := lo.Add(hi.Sub(lo) / 2).Truncate(time.Minute)
					if mid.Equal(lo) {
						break
					}
					if _, om := mid.In(loc).Zone(); om == off {
						lo = mid
					} else {
						hi = mid
					}
				}
				out = append(out, DSTChange{Zone: loc.String(), At: hi, Before: name, After: n2, OffsetBefore: off, OffsetAfter: o2})
				name, off = n2, o2
			}
			if next.Equal(to) {
				break
			}
			t = next
		}
	}
	slices.SortStableFunc(out, func(a, b DSTChange) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(a.Zone, b.Zone)
	})
	return out
}
