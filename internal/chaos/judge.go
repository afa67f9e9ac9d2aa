package chaos

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/autopatch/autopatch/connectors/sccm/sccmsim"
	"github.com/autopatch/autopatch/internal/estate"
)

// The promises checked (issue #13), before the measured stall is added.
const (
	// onTime: every due open and close within this of the later of its
	// instant and the moment autopatch could act again.
	onTime = 5 * time.Second
	// actedOn: an accepted approval planned, its deployments created,
	// within this of the moment autopatch could act.
	actedOn = 10 * time.Second
	// step is the resolution of the availability scan.
	step = 20 * time.Millisecond
)

// Invariant names, as printed.
const (
	invOutside = "no enable outside its window"
	invOpen    = "window opened within 5 s (not missed) while up"
	invClose   = "window closed within 5 s of end or return"
	invDoubled = "nothing doubled"
	invActed   = "every accepted delivery acted on"
)

// Invariants lists them in print order.
var Invariants = []string{invOutside, invOpen, invClose, invDoubled, invActed}

// Violation is one invariant broken, with its evidence.
type Violation struct {
	Invariant string
	Detail    string
}

// Figures are what the judge measured over a run.
type Figures struct {
	Windows, Enables           int
	OpenLags, CloseLags        []time.Duration // from the due moment
	ActLags                    []time.Duration // from the due moment to deployments created
	Recoveries                 []time.Duration // from each kill to the first action after it
	NoRecovery                 int             // kills with no action after them
	Stall                      time.Duration
	EnablesOutside, DoubledAny int
}

// available says whether autopatch could act at t: some replica up,
// PostgreSQL up and the WinRM endpoint answering. (ServiceNow down only
// delays notes and incidents, which the judge does not time.)
func (h *Harness) available(t time.Time) bool {
	for _, iv := range h.pgDown {
		if iv.holds(t) {
			return false
		}
	}
	for _, iv := range h.winrmDown {
		if iv.holds(t) {
			return false
		}
	}
	for _, r := range h.replicas {
		for _, iv := range r.up {
			if iv.holds(t) {
				return true
			}
		}
	}
	return false
}

// due is the first moment at or after t from which autopatch could act for
// at least hold without a break — "the later of the instant and the moment a
// replica was up again" — and whether there is one before limit.
func (h *Harness) due(t time.Time, hold time.Duration, limit time.Time) (time.Time, bool) {
	for c := t; c.Before(limit); {
		if !h.available(c) {
			c = c.Add(step)
			continue
		}
		broken := false
		for s := c; s.Before(c.Add(hold)); s = s.Add(step) {
			if !h.available(s) {
				c, broken = s, true
				break
			}
		}
		if !broken {
			return c, true
		}
	}
	return time.Time{}, false
}

// firstDown is the first moment in [from, to) autopatch could not act.
func (h *Harness) firstDown(from, to time.Time) (time.Time, bool) {
	for s := from; s.Before(to); s = s.Add(step) {
		if !h.available(s) {
			return s, true
		}
	}
	return time.Time{}, false
}

// judge checks the changes of one iteration against state s at now, and
// adds to f. Windows whose close is not yet due are not judged.
func (h *Harness) judge(ctx context.Context, s estate.State, now time.Time, changes []*change, f *Figures) []Violation {
	h.mu.Lock()
	defer h.mu.Unlock()
	tol := onTime + h.stalls.Longest()
	var vs []Violation
	add := func(inv, format string, args ...any) {
		vs = append(vs, Violation{Invariant: inv, Detail: fmt.Sprintf(format, args...)})
	}
	for _, c := range changes {
		if c.accepted.IsZero() {
			continue
		}
		deps := deploymentsOf(s, c.number)
		// Acted on: planned in the database and its deployments in SCCM.
		if due, ok := h.due(c.accepted, actedOn+h.stalls.Longest(), now); ok {
			status, err := h.changeStatus(ctx, c.number)
			var created time.Time
			for _, d := range deps {
				if created.IsZero() || d.CreatedAt.Before(created) {
					created = d.CreatedAt
				}
			}
			switch {
			case err != nil:
				add(invActed, "%s: reading its status: %v", c.number, err)
			case created.IsZero() || status != "planned":
				add(invActed, "%s: accepted %s, status %q, %d deployments by the end", c.number, c.accepted.Format("15:04:05.000"), status, len(deps))
			default:
				lag := created.Sub(due)
				f.ActLags = append(f.ActLags, max(lag, 0))
				if lag > actedOn+h.stalls.Longest() {
					add(invActed, "%s: deployments created %s after it could be acted on (limit %s)", c.number, lag.Round(time.Millisecond), actedOn)
				}
			}
		}
		byName := map[string]int{}
		for _, d := range deps {
			byName[d.Name]++
			if byName[d.Name] == 2 {
				add(invDoubled, "deployment %s created twice in SCCM", d.Name)
			}
		}
		for _, w := range c.windows {
			var dep *sccmsim.DeploymentState
			for i := range deps {
				if deps[i].Collection == collection(w.schedule) {
					dep = &deps[i]
				}
			}
			f.Windows++
			vs = append(vs, h.judgeWindow(c.number, w, dep, now, tol, f)...)
		}
	}
	return vs
}

// judgeWindow checks one window's deployment (nil: never created).
func (h *Harness) judgeWindow(number string, w window, dep *sccmsim.DeploymentState, now time.Time, tol time.Duration, f *Figures) []Violation {
	var vs []Violation
	add := func(inv, format string, args ...any) {
		vs = append(vs, Violation{Invariant: inv, Detail: fmt.Sprintf("%s %s: ", number, w.schedule) + fmt.Sprintf(format, args...)})
	}
	var enables []time.Time
	var lastEnable, disableAfter time.Time
	if dep != nil {
		for _, e := range dep.Events {
			if e.Enabled {
				enables = append(enables, e.At)
				lastEnable, disableAfter = e.At, time.Time{}
				f.Enables++
				if e.At.Before(w.start) || !e.At.Before(w.end) {
					f.EnablesOutside++
					add(invOutside, "enabled at %s, window %s–%s (%s)", e.At.Format("15:04:05.000"),
						w.start.Format("15:04:05"), w.end.Format("15:04:05"), offset(e.At, w))
				}
			} else if !lastEnable.IsZero() && disableAfter.IsZero() {
				disableAfter = e.At
			}
		}
		if len(enables) > 1 {
			add(invDoubled, "enabled %d times", len(enables))
		}
	}
	// Open: a window that started while autopatch could act must be
	// enabled within tol of its start, unless autopatch went down before
	// it did (then a late open or a miss are both allowed).
	if h.available(w.start) {
		// An enable at or after the end opens nothing.
		deadline := w.start.Add(tol)
		if deadline.After(w.end) {
			deadline = w.end.Add(-time.Nanosecond)
		}
		down, wentDown := h.firstDown(w.start, deadline)
		switch {
		case len(enables) > 0 && !enables[0].After(deadline):
			f.OpenLags = append(f.OpenLags, enables[0].Sub(w.start))
		case wentDown && (len(enables) == 0 || enables[0].After(down)):
			// went down before opening: not judged
		case now.Before(deadline):
		case len(enables) == 0:
			add(invOpen, "started while up, never enabled (missed while up)")
		default:
			f.OpenLags = append(f.OpenLags, enables[0].Sub(w.start))
			add(invOpen, "enabled %s after its start", enables[0].Sub(w.start).Round(time.Millisecond))
		}
	} else if len(enables) > 0 {
		if due, ok := h.due(w.start, 0, enables[0].Add(step)); ok {
			f.OpenLags = append(f.OpenLags, enables[0].Sub(due))
		}
	}
	// Close: once enabled, disabled within tol of the later of its end and
	// the moment autopatch could act again.
	if !lastEnable.IsZero() {
		due, ok := h.due(w.end, tol, now)
		switch {
		case !ok:
			// autopatch never stably back since the end: not judged
		case !disableAfter.IsZero() && !disableAfter.After(due.Add(tol)):
			f.CloseLags = append(f.CloseLags, max(disableAfter.Sub(due), 0))
		case disableAfter.IsZero():
			add(invClose, "still enabled %s after its end (due %s)", now.Sub(w.end).Round(time.Millisecond), due.Format("15:04:05.000"))
		default:
			f.CloseLags = append(f.CloseLags, disableAfter.Sub(due))
			add(invClose, "disabled %s after it was due (end %s, due %s)", disableAfter.Sub(due).Round(time.Millisecond),
				w.end.Format("15:04:05"), due.Format("15:04:05.000"))
		}
	}
	return vs
}

// offset says where t lies against w, for the evidence.
func offset(t time.Time, w window) string {
	if t.Before(w.start) {
		return w.start.Sub(t).Round(time.Microsecond).String() + " before its start"
	}
	return t.Sub(w.end).Round(time.Microsecond).String() + " after its end"
}

// judgeRun checks what only the whole run can show: incidents, alerts and
// work notes doubled, and the recovery after each kill.
func (h *Harness) judgeRun(s estate.State, f *Figures) []Violation {
	h.mu.Lock()
	defer h.mu.Unlock()
	var vs []Violation
	dup := func(what string, keys []string) {
		seen := map[string]int{}
		for _, k := range keys {
			seen[k]++
			if seen[k] == 2 {
				f.DoubledAny++
				vs = append(vs, Violation{Invariant: invDoubled, Detail: fmt.Sprintf("%s doubled: %s", what, k)})
			}
		}
	}
	var incidents, alerts, notes []string
	for _, in := range s.Incidents {
		incidents = append(incidents, in.CorrelationID)
	}
	for _, a := range s.Alerts {
		alerts = append(alerts, a.Key+" on "+a.Device)
	}
	for _, n := range s.WorkNotes {
		notes = append(notes, n.SysID+" "+firstLine(n.Text))
	}
	dup("incident", incidents)
	dup("SCOM alert", alerts)
	dup("work note", notes)

	// Recovery: from each kill to the first thing the estate saw autopatch
	// do after it. A remote call the killed process had in flight may
	// still land just after the kill (the estate's latency is 30 ms): what
	// lands within inFlight of the kill is not a survivor's action.
	const inFlight = 150 * time.Millisecond
	var actions []time.Time
	for _, d := range s.Deployments {
		actions = append(actions, d.CreatedAt)
		for _, e := range d.Events {
			actions = append(actions, e.At)
		}
	}
	for _, a := range s.Alerts {
		actions = append(actions, a.RaisedAt)
	}
	for _, n := range s.WorkNotes {
		if t, err := time.Parse(time.RFC3339, n.At); err == nil {
			actions = append(actions, t)
		}
	}
	slices.SortFunc(actions, func(a, b time.Time) int { return a.Compare(b) })
	for _, k := range h.kills {
		if k.replica < 0 { // a PostgreSQL restart is not a dead process
			continue
		}
		i, _ := slices.BinarySearchFunc(actions, k.at.Add(inFlight), func(a, t time.Time) int {
			if a.After(t) {
				return 1
			}
			return -1
		})
		if i < len(actions) {
			f.Recoveries = append(f.Recoveries, actions[i].Sub(k.at))
		} else {
			f.NoRecovery++
		}
	}
	return vs
}

func deploymentsOf(s estate.State, change string) []sccmsim.DeploymentState {
	var out []sccmsim.DeploymentState
	for _, dp := range s.Deployments {
		if strings.HasPrefix(dp.Name, "AP-"+change+"-") {
			out = append(out, dp)
		}
	}
	return out
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// percentile is the p-th percentile (0–100) of ds, nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}
