package jobs

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/internal/compliance"
	"github.com/autopatch/autopatch/internal/forcing"
	"github.com/autopatch/autopatch/internal/ledger"
	"github.com/autopatch/autopatch/internal/store"
)

// ForceOptions are the settings of forced remediation
// (docs/architecture.md §9.2, AUTOPATCH_FORCE_*).
type ForceOptions struct {
	// Collection is the collection autopatch manages for forcing; empty:
	// nothing is forced.
	Collection string
	// At is the time of day forcing starts at or after the deadline
	// (minutes after midnight in Location); negative: at the deadline.
	At       int
	Location *time.Location
	// WaveLength is how long a wave's deployments stay enabled.
	WaveLength time.Duration
}

func (o ForceOptions) enabled() bool { return o.Collection != "" }

// forceTime is when a device whose deadline is deadline is forced.
func (o ForceOptions) forceTime(deadline time.Time) time.Time {
	return forcing.At(deadline, o.At, o.Location)
}

func (o ForceOptions) waveLength() time.Duration {
	if o.WaveLength > 0 {
		return o.WaveLength
	}
	return 2 * time.Hour
}

// forcedSlot is the schedule part of a forced deployment's name; a schedule
// name cannot hold parentheses, so it never meets a window's deployment.
const forcedSlot = "(forced)"

// ForceChangeArgs decides, at a force time, which devices of a change are
// forced and in which waves (docs/architecture.md §9.2): those neither
// patched nor deferred whose own force time (their deadline's, moved by a
// deferral) has come and that were not forced before. It only decides: the
// window keeper runs the waves.
//
// It is inserted for the change's deadline when the change is planned, and
// for every deadline still ahead each time the ledger is re-decided (a
// deferral moves one); unique by args, so each force time is one job. A
// job that finds nothing to force (everything patched, deferred further,
// or forced by an earlier run) does nothing.
type ForceChangeArgs struct {
	ChangeNumber string    `json:"change_number"`
	At           time.Time `json:"at"`
}

// Kind implements river.JobArgs.
func (ForceChangeArgs) Kind() string { return "force_change" }

// InsertOpts: one job per change and force time.
func (ForceChangeArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueDefault, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// ForceChangeWorker works ForceChangeArgs. It makes no remote call.
type ForceChangeWorker struct {
	river.WorkerDefaults[ForceChangeArgs]
	deps *Deps
}

// scheduleForcing asks, in tx, for a force_change job at each force time of
// devs that is still to come or has just come (the devices not patched):
// at most one job per time (unique by args).
func scheduleForcing(ctx context.Context, tx pgx.Tx, deps *Deps, number string, devs []ledger.Device, now time.Time) error {
	if !deps.Force.enabled() {
		return nil
	}
	times := map[time.Time]bool{}
	for _, d := range devs {
		if d.Outcome.Patched() || d.ForcedAt != nil || d.Deadline.IsZero() {
			continue
		}
		times[deps.Force.forceTime(d.Deadline).UTC()] = true
	}
	for at := range times {
		var opts *river.InsertOpts
		if at.After(now) {
			opts = &river.InsertOpts{ScheduledAt: at}
		}
		if err := insertTx(ctx, tx, ForceChangeArgs{ChangeNumber: number, At: at}, opts); err != nil {
			return fmt.Errorf("schedule forcing of %s: %w", number, err)
		}
	}
	return nil
}

// Work implements river.Worker.
func (w *ForceChangeWorker) Work(ctx context.Context, job *river.Job[ForceChangeArgs]) error {
	if !w.deps.Force.enabled() {
		return nil
	}
	now := w.deps.now()
	if now.Before(job.Args.At) {
		// River ran it early (its scheduler's resolution is seconds).
		return river.JobSnooze(job.Args.At.Sub(now))
	}
	waiting := 0
	err := pgx.BeginFunc(ctx, w.deps.Pool, func(tx pgx.Tx) error {
		c, err := store.LockChange(ctx, tx, job.Args.ChangeNumber)
		if err != nil {
			return err
		}
		if c.Status == store.ChangeCanceled {
			return nil
		}
		// A halted or paused change is not forced: whatever made its
		// rollout stop would be forced onto every device left. Forcing
		// waits for the release, which asks for it again (hold_change.go),
		// or the cancel, and says so once.
		holds, err := store.ActiveHolds(ctx, tx, c.Number)
		if err != nil {
			return err
		}
		for _, h := range holds {
			if h.Kind != store.HoldBudget && h.Kind != store.HoldPause {
				continue
			}
			first, err := store.MarkNoted(ctx, tx, c.Number, "forcing postponed "+job.Args.At.UTC().Format(time.RFC3339))
			if err != nil || !first {
				return err
			}
			return note(ctx, tx, tableChangeRequest, c.SysID, fmt.Sprintf(
				"autopatch: forced remediation of %s is POSTPONED: the change's rollout is held (%s: %s). "+
					"The devices past their deadline are forced when the rollout is resumed or taken off hold; cancel the change to stop forcing.",
				c.Number, h.Kind, h.Reason))
		}
		ev, err := store.ChangeLedgerEvidence(ctx, tx, c.Number)
		if err != nil {
			return err
		}
		devs := ledger.Devices(ev, now, w.deps.Compliance.Ledger)
		var due []ledger.Device
		waiting = 0
		for _, d := range devs {
			if d.Outcome.Patched() || d.ForcedAt != nil {
				continue
			}
			if _, ok := ev.Forced[strings.ToLower(d.Device)]; ok {
				continue
			}
			if now.Before(w.deps.Force.forceTime(d.Deadline)) {
				continue // deferred past this time, or its deadline is later
			}
			if d.Outcome == compliance.Pending || (d.WindowEnd != nil && now.Before(*d.WindowEnd)) {
				// Its own window is still to come or to be read (a change
				// approved after its deadline): never forced before it;
				// this job looks again.
				waiting++
				continue
			}
			due = append(due, d)
		}
		if len(due) == 0 {
			return nil
		}
		// Each site forces its own devices in its own forced collection:
		// one run, and waves one at a time, per site (§10.1).
		sites, bySiteDue := bySite(due, func(d ledger.Device) string { return w.deps.siteOf(d.Schedule) })
		for _, site := range sites {
			run := w.plan(ev, c.UpdateGroups, bySiteDue[site], job.Args.At, now)
			run.Site = site
			queuedUntil, err := store.LastForcedEnd(ctx, tx, site, now)
			if err != nil {
				return err
			}
			if _, err := store.InsertForcedRun(ctx, tx, run); err != nil {
				return err
			}
			w.deps.Logger.InfoContext(ctx, "forced remediation planned", "change", c.Number, "site", site,
				"devices", len(bySiteDue[site]), "waves", len(run.Waves))
			if err := note(ctx, tx, tableChangeRequest, c.SysID, forcePlanNote(c.Number, run, queuedUntil, now)); err != nil {
				return err
			}
		}
		return refreshLedger(ctx, tx, w.deps, c.Number, now)
	})
	if err == nil && waiting > 0 {
		return river.JobSnooze(forceWaitingRecheck)
	}
	return err
}

// forceWaitingRecheck is how often a force time that found devices whose
// own window had not ended yet looks again.
const forceWaitingRecheck = time.Minute

// plan splits the devices due into waves that keep service safety: the
// group sizes count every device of the change in the group, so a member
// patched in its window is up and counts toward n.
func (w *ForceChangeWorker) plan(ev store.LedgerEvidence, groups []string, due []ledger.Device, at, now time.Time) store.ForcedRun {
	sizes := map[[2]string]int{}
	for _, d := range ev.Devices {
		sizes[[2]string{d.Service, d.Tier}]++
	}
	devices := make([]forcing.Device, len(due))
	byName := map[string]ledger.Device{}
	for i, d := range due {
		devices[i] = forcing.Device{Name: d.Device, Service: d.Service, Tier: d.Tier}
		byName[d.Device] = d
	}
	waves := forcing.Plan(devices, forcing.Rules{
		Services:  w.deps.Safety.Services.Get(),
		GroupSize: func(service, tier string) int { return sizes[[2]string{service, tier}] },
	})
	sorted := append([]string(nil), groups...)
	sort.Strings(sorted)
	names := make([]string, len(sorted))
	for i, g := range sorted {
		names[i] = sccm.DeploymentName(ev.Change.Number, forcedSlot, g)
	}
	run := store.ForcedRun{Change: ev.Change.Number, RunAt: at.UTC(), NotBefore: at.UTC(), Duration: w.deps.Force.waveLength(),
		Collection: w.deps.Force.Collection, Deployments: names, UpdateGroups: sorted, PlannedAt: now}
	for _, wv := range waves {
		var fds []store.ForcedDevice
		for _, d := range wv.Devices {
			ld := byName[d.Name]
			fds = append(fds, store.ForcedDevice{Device: ld.Device, Schedule: ld.Schedule, Deadline: ld.Deadline})
		}
		run.Waves = append(run.Waves, fds)
	}
	return run
}

func forcePlanNote(number string, run store.ForcedRun, queuedUntil, now time.Time) string {
	var b strings.Builder
	n := 0
	for _, wv := range run.Waves {
		n += len(wv)
	}
	at := ""
	if run.Site != "" {
		at = " at site " + run.Site
	}
	fmt.Fprintf(&b, "autopatch: FORCED REMEDIATION of %s: %d device(s) were neither patched nor deferred at their deadline. "+
		"They will be put into collection %q%s with a required deployment of %s, in %d wave(s) of %s each, one after the other "+
		"(redundant members of a service never in the same wave, tiers in order).\n",
		number, n, run.Collection, at, strings.Join(run.UpdateGroups, ", "), len(run.Waves), run.Duration)
	if queuedUntil.After(now) {
		fmt.Fprintf(&b, "Forced waves already queued run first (one wave at a time); the first wave starts when they end (about %s UTC).\n",
			queuedUntil.UTC().Format("2006-01-02 15:04"))
	}
	for i, wv := range run.Waves {
		names := make([]string, len(wv))
		for j, d := range wv {
			names[j] = fmt.Sprintf("%s (deadline %s UTC)", d.Device, d.Deadline.UTC().Format("2006-01-02 15:04"))
		}
		fmt.Fprintf(&b, "- wave %d: %s\n", i+1, listDevices(names))
	}
	b.WriteString("Canceling the change stops the waves not yet run and disables the one running.")
	return b.String()
}
