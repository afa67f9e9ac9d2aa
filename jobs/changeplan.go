package jobs

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/internal/calendar"
	"github.com/autopatch/autopatch/internal/schedules"
	"github.com/autopatch/autopatch/internal/store"
)

// changePlan is the plan of one change version: which schedules are in
// scope, the window each got, and why the others got none.
type changePlan struct {
	change     store.ChangeRow
	scope      map[string]calendar.Schedule
	result     calendar.PlanResult
	notInForce []string // named by the change but not in the schedules file
	// safety is the service-safety check of the plan; under the hold
	// policy its held schedules keep their window in the plan's entries
	// but get no deployment.
	safety *planSafety
	// deadline is when the change's devices must be patched by, and why
	// (docs/architecture.md §9.2); zero when not known.
	deadline    time.Time
	deadlineWhy string
	// list is the schedules in scope; added the windows an emergency
	// change got before its deadline, and stranded the devices of its
	// schedules that could get none (docs/architecture.md §9.2).
	list     []calendar.Schedule
	added    []calendar.Added
	stranded map[string][]string
}

// held returns why service safety holds schedule out of the change; empty
// when it does not.
func (p *changePlan) held(schedule string) string {
	if p.safety == nil {
		return ""
	}
	return p.safety.held[schedule]
}

func newChangePlan(c store.ChangeRow, set *schedules.Set) *changePlan {
	p := &changePlan{change: c, scope: map[string]calendar.Schedule{}}
	var list []calendar.Schedule
	if c.Schedules == nil {
		// Omitted: every automatic and manual_reboot schedule. manual_patch
		// schedules are only tracked when a change names them.
		for _, s := range set.All() {
			if s.Kind != calendar.KindManualPatch {
				list = append(list, s)
			}
		}
	} else {
		for _, name := range c.Schedules {
			if s, ok := set.Get(name); ok {
				list = append(list, s)
			} else {
				p.notInForce = append(p.notInForce, name)
			}
		}
	}
	for _, s := range list {
		p.scope[s.Name] = s
	}
	p.list = list
	p.result = calendar.Plan(list, c.Start, c.End)
	return p
}

// placeBefore re-plans an emergency change so that every schedule has a
// window before deadline where one fits (calendar.PlanBefore), and reads
// the devices of the schedules that could get none, for the note.
func (p *changePlan) placeBefore(ctx context.Context, tx pgx.Tx, deadline time.Time) error {
	p.result, p.added = calendar.PlanBefore(p.list, p.change.Start, p.change.End, deadline)
	var names []string
	for _, u := range p.result.Unplaceable {
		names = append(names, u.Schedule)
	}
	if len(names) == 0 {
		return nil
	}
	var err error
	p.stranded, err = store.DeviceNamesBySchedule(ctx, tx, names)
	return err
}

func (p *changePlan) entries() []store.PlanEntry {
	var out []store.PlanEntry
	for _, w := range p.result.Windows {
		start, end := w.Start, w.End
		out = append(out, store.PlanEntry{Schedule: w.Schedule, WindowStart: &start, WindowEnd: &end, Held: p.held(w.Schedule)})
	}
	for _, u := range p.result.Unplaceable {
		out = append(out, store.PlanEntry{Schedule: u.Schedule, Unplaceable: u.Reason})
	}
	return out
}

func deploymentKey(schedule, group string) string { return schedule + "\x00" + group }

// desired lists the deployments of the plan: one per placed schedule that is
// not manual_patch, per update group.
func (p *changePlan) desired() map[string]store.Deployment {
	out := map[string]store.Deployment{}
	for _, w := range p.result.Windows {
		s := p.scope[w.Schedule]
		if s.Kind == calendar.KindManualPatch || p.held(s.Name) != "" {
			continue
		}
		for _, g := range p.change.UpdateGroups {
			out[deploymentKey(s.Name, g)] = store.Deployment{
				ChangeNumber:    p.change.Number,
				Schedule:        s.Name,
				UpdateGroup:     g,
				Name:            sccm.DeploymentName(p.change.Number, s.Name, g),
				Collection:      s.Collection,
				Site:            s.Site,
				WindowStart:     w.Start.UTC(),
				WindowEnd:       w.End.UTC(),
				SuppressRestart: s.Kind == calendar.KindManualReboot,
			}
		}
	}
	return out
}

type reconciled struct {
	toCreate, kept, moved, obsoleted, closeNow int
}

// reconcile moves the change's live deployments to the plan: kept when
// unchanged, moved (and re-created in SCCM with the new times) when their
// window changed before opening, obsolete when the plan dropped them, closed
// now when open but no longer in the plan; new ones are added.
func (p *changePlan) reconcile(ctx context.Context, tx pgx.Tx, live []store.Deployment, version int, now time.Time) (reconciled, error) {
	var r reconciled
	want := p.desired()
	reason := fmt.Sprintf("plan v%d", version)
	for _, d := range live {
		key := deploymentKey(d.Schedule, d.UpdateGroup)
		nd, ok := want[key]
		same := ok && nd.WindowStart.Equal(d.WindowStart) && nd.WindowEnd.Equal(d.WindowEnd) &&
			nd.Collection == d.Collection && nd.Site == d.Site && nd.SuppressRestart == d.SuppressRestart
		var err error
		switch {
		case same && d.CloseAt.Equal(d.WindowEnd):
			r.kept++
			delete(want, key)
		case d.State == store.DeploymentOpen:
			// Open, but the plan wants another window (or none): close it
			// now; a successor, if any, is created under the same name.
			if d.CloseAt.After(now) {
				t := now
				err = store.Move(ctx, tx, store.Transition{ID: d.ID, From: d.State, To: d.State, At: now,
					CloseAt: &t, Reason: reason + ": window no longer in the plan, closing now"})
				r.closeNow++
			}
		case ok && nd.Collection == d.Collection && nd.Site == d.Site:
			window := [2]time.Time{nd.WindowStart, nd.WindowEnd}
			err = store.Move(ctx, tx, store.Transition{ID: d.ID, From: d.State, To: store.DeploymentPlanned, At: now,
				Window: &window, Reason: fmt.Sprintf("%s: window moved from %s", reason, d.WindowStart.Format(time.RFC3339))})
			r.moved++
			delete(want, key)
		default:
			err = store.Move(ctx, tx, store.Transition{ID: d.ID, From: d.State, To: store.DeploymentObsolete, At: now,
				Reason: reason + ": no longer in the plan"})
			r.obsoleted++
		}
		if err != nil {
			return r, err
		}
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, err := store.InsertDeployment(ctx, tx, want[k]); err != nil {
			return r, err
		}
	}
	r.toCreate = len(keys) + r.moved
	return r, nil
}

// note is the plan as a work note for the people on the change.
func (p *changePlan) note(version int, r reconciled) string {
	c := p.change
	var b strings.Builder
	fmt.Fprintf(&b, "autopatch plan v%d for %s\n", version, c.Number)
	fmt.Fprintf(&b, "Change window: %s – %s UTC\n", c.Start.UTC().Format("2006-01-02 15:04"), c.End.UTC().Format("2006-01-02 15:04"))
	fmt.Fprintf(&b, "Software update groups: %s\n", strings.Join(c.UpdateGroups, "; "))
	if !p.deadline.IsZero() {
		fmt.Fprintf(&b, "Deadline: %s UTC (%s)\n",
			p.deadline.UTC().Format("2006-01-02 15:04"), p.deadlineWhy)
	}
	if len(p.result.Windows) > 0 {
		b.WriteString("\nWindows:\n")
	}
	for _, w := range p.result.Windows {
		s := p.scope[w.Schedule]
		fmt.Fprintf(&b, "- %s (collection %q): %s", s.Name, s.Collection, w.LocalString())
		if s.Location != time.UTC {
			fmt.Fprintf(&b, " = %s", w.UTCString())
		}
		switch s.Kind {
		case calendar.KindManualPatch:
			b.WriteString(" — manual_patch: tracked only, the owner patches by hand; no deployment")
		case calendar.KindManualReboot:
			b.WriteString(" — manual_reboot: updates install, restart suppressed; the owner reboots")
		}
		if p.held(s.Name) != "" {
			b.WriteString(" — HELD by service safety: no deployment in this change")
		}
		b.WriteString("\n")
	}
	if len(p.added) > 0 {
		b.WriteString("\nEmergency windows added (before the deadline, one after another, inside the change):\n")
		for _, a := range p.added {
			fmt.Fprintf(&b, "- %s: %s\n", a.Schedule, a.Why)
		}
	}
	if len(p.result.Unplaceable) > 0 || len(p.notInForce) > 0 {
		b.WriteString("\nNot placed in this change:\n")
	}
	for _, u := range p.result.Unplaceable {
		fmt.Fprintf(&b, "- %s: %s\n", u.Schedule, u.Reason)
		if devs := p.stranded[u.Schedule]; len(devs) > 0 {
			fmt.Fprintf(&b, "  devices not patched before the deadline (%d): %s\n", len(devs), strings.Join(devs, ", "))
		}
	}
	for _, name := range p.notInForce {
		fmt.Fprintf(&b, "- %s: not in the schedules file in force\n", name)
	}
	if text := p.safety.noteText(); text != "" {
		b.WriteString(text + "\n")
	}
	fmt.Fprintf(&b, "\nDeployments: %d to create or update (disabled until their window opens), %d unchanged, %d to delete, %d open to close now.",
		r.toCreate, r.kept, r.obsoleted, r.closeNow)
	return b.String()
}
