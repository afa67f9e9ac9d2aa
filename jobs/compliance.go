package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/internal/calendar"
	"github.com/autopatch/autopatch/internal/compliance"
	"github.com/autopatch/autopatch/internal/ledger"
	"github.com/autopatch/autopatch/internal/store"
)

// The compliance ledger (issue #14, docs/architecture.md §9.1 and §9.4). Its
// evidence comes from two reads: the status poll (poll_status.go), which
// re-decides the ledger of every change it read in the same transaction,
// and the compliance sweep below, which reads the client state of the
// members of windows about to open (the pre-flight) and the compliance of
// manual schedules' devices, one SCCM call for every change and device,
// then the status of closed windows whose devices may still report, one
// more call.

// Defaults of the sweep's timing.
const (
	// DefaultPreflightLead is AUTOPATCH_PREFLIGHT_LEAD's default.
	DefaultPreflightLead = 24 * time.Hour
	// DefaultComplianceInterval is how often the sweep runs.
	DefaultComplianceInterval = 15 * time.Minute
	// DefaultReminderLead is how long before the deadline the owners of a
	// manual schedule whose devices are not compliant are reminded.
	DefaultReminderLead = 7 * 24 * time.Hour
)

// ComplianceOptions time the ledger's reads and deadlines. The zero value
// means the defaults.
type ComplianceOptions struct {
	// Ledger decides deadlines (AUTOPATCH_DEADLINE_NORMAL).
	Ledger ledger.Options
	// PreflightLead is how long before a window its members' clients are
	// checked (AUTOPATCH_PREFLIGHT_LEAD).
	PreflightLead time.Duration
	// Interval is how often the compliance sweep runs.
	Interval time.Duration
	// ReminderLead is how long before the deadline manual schedules'
	// owners are reminded.
	ReminderLead time.Duration
}

func (o ComplianceOptions) preflightLead() time.Duration {
	if o.PreflightLead > 0 {
		return o.PreflightLead
	}
	return DefaultPreflightLead
}

func (o ComplianceOptions) interval() time.Duration {
	if o.Interval > 0 {
		return o.Interval
	}
	return DefaultComplianceInterval
}

func (o ComplianceOptions) reminderLead() time.Duration {
	if o.ReminderLead > 0 {
		return o.ReminderLead
	}
	return DefaultReminderLead
}

// refreshLedger re-decides the ledger of a change after new evidence, in
// the transaction that stored it: records each device's outcome (counting
// the devices newly patched outside their window) and, once the change's
// last window has closed and been read, writes the summary on the change.
func refreshLedger(ctx context.Context, tx pgx.Tx, deps *Deps, number string, now time.Time) error {
	// The poll and the sweep may both re-decide a change: one at a time.
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('autopatch ledger ' || $1))", number); err != nil {
		return fmt.Errorf("ledger of %s: lock: %w", number, err)
	}
	ev, err := store.ChangeLedgerEvidence(ctx, tx, number)
	if err != nil {
		return err
	}
	devs := ledger.Devices(ev, now, deps.Compliance.Ledger)
	outs := make([]store.Outcome, 0, len(devs))
	for _, d := range devs {
		outs = append(outs, store.Outcome{Device: d.Device, Outcome: string(d.Outcome), ByDeadline: d.ByDeadline, Deadline: d.Deadline})
	}
	changed, err := store.RecordOutcomes(ctx, tx, number, ledger.CycleOf(ev.Change).String(), outs, now)
	if err != nil {
		return err
	}
	if ev.Change.Status != store.ChangeCanceled {
		if err := scheduleForcing(ctx, tx, deps, number, devs, now); err != nil {
			return err
		}
	}
	for _, o := range changed {
		if o == string(compliance.PatchedOutsideWindow) {
			deps.Metrics.OutsideWindow.Inc()
		}
	}
	if !windowsDone(ev, now) {
		return nil
	}
	first, err := store.MarkNoted(ctx, tx, number, "closed")
	if err != nil || !first {
		return err
	}
	l := ledger.Ledger{Scope: ledger.Scope{Change: number}, AsOf: now.UTC(), Devices: devs}
	l.Summary = summarize(devs, now)
	deps.Logger.InfoContext(ctx, "last window closed; compliance summary noted on the change", "change", number,
		"devices", l.Summary.Devices, "patched_by_deadline", l.Summary.PatchedByDeadline)
	return note(ctx, tx, tableChangeRequest, ev.Change.SysID, summaryNote(deps, l, "after its last window"))
}

// deadlineSummary writes the summary on the change once more when its
// deadline has passed (docs/architecture.md §9.1).
func deadlineSummary(ctx context.Context, deps *Deps, ev store.LedgerEvidence, now time.Time) error {
	return pgx.BeginFunc(ctx, deps.Pool, func(tx pgx.Tx) error {
		first, err := store.MarkNoted(ctx, tx, ev.Change.Number, "deadline")
		if err != nil || !first {
			return err
		}
		devs := ledger.Devices(ev, now, deps.Compliance.Ledger)
		l := ledger.Ledger{Scope: ledger.Scope{Change: ev.Change.Number}, AsOf: now.UTC(), Devices: devs, Summary: summarize(devs, now)}
		return note(ctx, tx, tableChangeRequest, ev.Change.SysID, summaryNote(deps, l, "at its deadline"))
	})
}

func summarize(devs []ledger.Device, now time.Time) compliance.Summary {
	entries := make([]compliance.Entry, 0, len(devs))
	for _, d := range devs {
		r := compliance.Result{Outcome: d.Outcome}
		if d.StatusAt != nil {
			r.StatusAt = *d.StatusAt
		}
		entries = append(entries, compliance.Entry{Result: r, Deadline: d.Deadline})
	}
	return compliance.Summarize(entries, now)
}

// windowsDone: every window of the change's plan has ended, and every
// deployment that opened had its final status read.
func windowsDone(ev store.LedgerEvidence, now time.Time) bool {
	if ev.Plan == nil {
		return false
	}
	windows := 0
	for _, e := range ev.Plan.Entries {
		if e.WindowEnd != nil {
			windows++
			if now.Before(*e.WindowEnd) {
				return false
			}
		}
	}
	if windows == 0 {
		return false
	}
	for _, d := range ev.Deployments {
		switch d.State {
		case store.DeploymentPlanned, store.DeploymentCreated, store.DeploymentOpen:
			return false
		case store.DeploymentClosed:
			if d.FinalPolledAt == nil {
				return false
			}
		}
	}
	return true
}

// summaryNote is the work note of a change's compliance: the counts by
// outcome and the devices that are not patched.
func summaryNote(deps *Deps, l ledger.Ledger, when string) string {
	var b strings.Builder
	s := l.Summary
	fmt.Fprintf(&b, "autopatch: compliance of %s %s (as of %s)\n", l.Scope.Change, when, l.AsOf.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "Devices: %d. Patched by the deadline: %d (%.0f%%). Patched outside their window: %d.\n",
		s.Devices, s.PatchedByDeadline, 100*s.ByDeadlineRatio(), s.PatchedOutsideWindow)
	for _, o := range compliance.Outcomes {
		if n := s.ByOutcome[o]; n > 0 {
			fmt.Fprintf(&b, "- %s: %d\n", o, n)
		}
	}
	var open []string
	for _, d := range l.Devices {
		if !d.Outcome.Patched() && d.Outcome != compliance.Pending {
			open = append(open, fmt.Sprintf("%s (%s): %s", d.Device, d.Outcome, d.Evidence))
		}
	}
	if len(open) > 0 {
		b.WriteString("Not patched:\n")
		for _, o := range open {
			b.WriteString("- " + o + "\n")
		}
	}
	b.WriteString("Full ledger: GET " + deps.apiPath("/api/v1/compliance?change="+l.Scope.Change) + " or " + deps.cli("report") + " --change " + l.Scope.Change)
	return b.String()
}

// ComplianceSweepArgs reads, for every planned change whose ledger can
// still move, the client state of the members of windows that open within
// the pre-flight lead and the compliance of its manual schedules' devices;
// notes the pre-flight on the change, reminds manual schedules' owners
// before the deadline and raises one incident per manual device still not
// compliant at it. It runs every ComplianceOptions.Interval.
type ComplianceSweepArgs struct{}

// Kind implements river.JobArgs.
func (ComplianceSweepArgs) Kind() string { return "compliance_sweep" }

// InsertOpts: one sweep at a time; retried with backoff while SCCM is
// unreachable (the ledger keeps the last evidence meanwhile).
func (ComplianceSweepArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueSCCM, MaxAttempts: 10, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: inFlight}}
}

// ComplianceSweepWorker works ComplianceSweepArgs.
type ComplianceSweepWorker struct {
	river.WorkerDefaults[ComplianceSweepArgs]
	deps *Deps
}

// Timeout implements river.Worker.
func (w *ComplianceSweepWorker) Timeout(*river.Job[ComplianceSweepArgs]) time.Duration {
	return pollTimeout
}

// NextRetry implements river.Worker: the windows' backoff (2 s doubling to
// 30 s), never later than the next sweep.
func (w *ComplianceSweepWorker) NextRetry(job *river.Job[ComplianceSweepArgs]) time.Time {
	return time.Now().Add(min(windowRetry(job.Attempt), w.deps.Compliance.interval()))
}

// Work implements river.Worker.
func (w *ComplianceSweepWorker) Work(ctx context.Context, job *river.Job[ComplianceSweepArgs]) error {
	now := w.deps.now()
	// A change's deadline is at most ~75 days after its start (a cycle's
	// Patch Tuesday plus the normal 30 days, or a little more); older
	// changes are settled.
	numbers, err := store.PlannedChangesSince(ctx, w.deps.Pool, now.AddDate(0, 0, -75))
	if err != nil {
		return err
	}
	if err := w.sweep(ctx, numbers, now); err != nil {
		w.deps.Logger.WarnContext(ctx, "compliance read failed; retrying", "attempt", job.Attempt, "error", err)
		return fmt.Errorf("compliance read: %w", err)
	}
	if err := w.lateStatus(ctx, now); err != nil {
		w.deps.Logger.WarnContext(ctx, "late status read failed; retrying", "attempt", job.Attempt, "error", err)
		return fmt.Errorf("late status read: %w", err)
	}
	return nil
}

// lateStatus reads again, in one SCCM call per site, the closed windows' deployments
// whose devices may still report (not reported, pending a restart or
// failed at the close), until their change's deadline: an install that was
// still running when its window closed reports its success, with its own
// status time, after the window's final read. The read is acted on as a
// status poll's (poll_status.go): results stored, failures of recovered
// devices resolved, the ledger re-decided. It holds the poll lock, so it
// never overlaps a poll.
func (w *ComplianceSweepWorker) lateStatus(ctx context.Context, now time.Time) error {
	deps := w.deps
	var retry error // sites that failed, after the others committed
	err := pgx.BeginFunc(ctx, deps.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '60s'"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", pollLockKey); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = 0"); err != nil {
			return err
		}
		unsettled, err := store.UnsettledDeployments(ctx, tx, now.AddDate(0, 0, -75))
		if err != nil || len(unsettled) == 0 {
			return err
		}
		deadlines := map[string]time.Time{}
		var targets []store.Deployment
		for _, d := range unsettled {
			dl, ok := deadlines[d.ChangeNumber]
			if !ok {
				c, err := store.GetChange(ctx, tx, d.ChangeNumber)
				if err != nil {
					return err
				}
				dl = deps.Compliance.Ledger.Deadline(c)
				// Re-read for deferred devices until their own deadline.
				deferrals, err := store.DeferralsOf(ctx, tx, d.ChangeNumber)
				if err != nil {
					return err
				}
				if latest := latestDeferral(deferrals); latest.After(dl) {
					dl = latest
				}
				deadlines[d.ChangeNumber] = dl
			}
			if now.Before(dl) {
				targets = append(targets, d)
			}
		}
		if len(targets) == 0 {
			return nil
		}
		rep, read, err := statusBySite(ctx, deps, targets)
		retry = err
		if len(read) == 0 {
			return nil
		}
		p := &poll{deps: deps, tx: tx, now: deps.now(), targets: read}
		return p.apply(ctx, rep)
	})
	return errors.Join(err, retry)
}

// dueRead is what the sweep reads for one change: the windows whose
// pre-flight is due and the manual schedules whose window has started.
type dueRead struct {
	ev                store.LedgerEvidence
	deadline          time.Time
	preflight, manual []store.PlanEntry
}

// latestDeferral is the latest until of deferrals; zero for none.
func latestDeferral(deferrals map[string]time.Time) time.Time {
	var latest time.Time
	for _, u := range deferrals {
		if u.After(latest) {
			latest = u
		}
	}
	return latest
}

// due finds what is due for a change; nil when nothing is. A change whose
// deadline has passed gets its summary once more here.
func (w *ComplianceSweepWorker) due(ctx context.Context, number string, now time.Time) (*dueRead, error) {
	deps := w.deps
	ev, err := store.ChangeLedgerEvidence(ctx, deps.Pool, number)
	if err != nil || ev.Plan == nil {
		return nil, err
	}
	d := &dueRead{ev: ev, deadline: deps.Compliance.Ledger.Deadline(ev.Change)}
	// A deferred device is followed until its own deadline (§9.2).
	settle := d.deadline
	if latest := latestDeferral(ev.Deferrals); latest.After(settle) {
		settle = latest
	}
	if now.After(settle.Add(deps.Compliance.interval() * 4)) {
		return nil, nil // settled: its deadline passed and was acted on
	}
	if !now.Before(d.deadline) && windowsDone(ev, now) {
		if err := deadlineSummary(ctx, deps, ev, now); err != nil {
			return nil, err
		}
	}
	lead := deps.Compliance.preflightLead()
	for _, e := range ev.Plan.Entries {
		if e.WindowStart == nil || e.Held != "" {
			continue
		}
		kind := ev.Kinds[e.Schedule]
		if !now.Before(e.WindowStart.Add(-lead)) && now.Before(*e.WindowEnd) {
			done, err := store.Noted(ctx, deps.Pool, number, preflightKey(e))
			if err != nil {
				return nil, err
			}
			if !done {
				d.preflight = append(d.preflight, e)
			}
		}
		if (kind == string(calendar.KindManualPatch) || kind == string(calendar.KindManualReboot)) && !now.Before(*e.WindowStart) {
			d.manual = append(d.manual, e)
		}
	}
	if len(d.preflight) == 0 && len(d.manual) == 0 {
		return nil, nil
	}
	return d, nil
}

// sweep reads, in one SCCM call per site for every change, the collections whose
// pre-flight or compliance read is due, then records and acts on what it
// read, one transaction per change.
func (w *ComplianceSweepWorker) sweep(ctx context.Context, numbers []string, now time.Time) error {
	type ref struct {
		change            int
		schedule          string
		preflight, manual bool
	}
	var (
		dues  []*dueRead
		reads []sccm.StateRead
		refs  []ref
	)
	for _, n := range numbers {
		d, err := w.due(ctx, n, now)
		if err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		if d == nil {
			continue
		}
		byName := map[string]int{}
		for _, e := range slices.Concat(d.preflight, d.manual) {
			if _, ok := byName[e.Schedule]; !ok {
				byName[e.Schedule] = len(refs)
				reads = append(reads, sccm.StateRead{Collection: d.ev.Collections[e.Schedule]})
				refs = append(refs, ref{change: len(dues), schedule: e.Schedule})
			}
		}
		for _, e := range d.preflight {
			refs[byName[e.Schedule]].preflight = true
		}
		for _, e := range d.manual {
			i := byName[e.Schedule]
			refs[i].manual = true
			reads[i].UpdateGroups = d.ev.Change.UpdateGroups
		}
		dues = append(dues, d)
	}
	if len(reads) == 0 {
		return nil
	}
	sites := make([]string, len(refs))
	for i, r := range refs {
		sites[i] = w.deps.siteOf(r.schedule)
	}
	// One call per site; a change with a read at a site that failed is
	// recorded by the retry, not half now.
	states, unread, retry := deviceStatesBySite(ctx, w.deps, reads, sites)
	read := w.deps.now()
	byChange := make([][]sccm.DeviceState, len(dues))
	skip := make([]bool, len(dues))
	for i := range unread {
		skip[refs[i].change] = true
	}
	for _, s := range states {
		c := refs[s.Read].change
		byChange[c] = append(byChange[c], s)
	}
	for i, d := range dues {
		if skip[i] {
			continue
		}
		number := d.ev.Change.Number
		err := pgx.BeginFunc(ctx, w.deps.Pool, func(tx pgx.Tx) error {
			var health []store.ClientHealth
			var comp []store.ManualCompliance
			inactive := map[string][]string{}
			for _, s := range byChange[i] {
				r := refs[s.Read]
				if r.preflight {
					h := store.ClientHealth{Change: number, Device: s.Device, Schedule: r.schedule, Installed: s.IsClient,
						Active: s.Active, ObservedAt: read}
					if !s.LastPolicyRequest.IsZero() {
						t := s.LastPolicyRequest
						h.LastPolicyRequest = &t
					}
					health = append(health, h)
					if !s.IsClient || !s.Active {
						inactive[r.schedule] = append(inactive[r.schedule], clientLine(s.Device, h))
					}
				}
				if r.manual {
					comp = append(comp, store.ManualCompliance{Change: number, Device: s.Device, Schedule: r.schedule,
						Required: s.Required, RebootPending: s.RebootPending, ObservedAt: read})
				}
			}
			if err := store.RecordClientHealth(ctx, tx, health); err != nil {
				return err
			}
			if err := store.RecordManualCompliance(ctx, tx, comp); err != nil {
				return err
			}
			for _, e := range d.preflight {
				first, err := store.MarkNoted(ctx, tx, number, preflightKey(e))
				if err != nil {
					return err
				}
				if first {
					text := preflightNote(number, e, d.ev.Collections[e.Schedule], inactive[e.Schedule])
					if err := note(ctx, tx, tableChangeRequest, d.ev.Change.SysID, text); err != nil {
						return err
					}
				}
			}
			if err := refreshLedger(ctx, tx, w.deps, number, now); err != nil {
				return err
			}
			return w.manualFollowUp(ctx, tx, d.ev, d.manual, d.deadline, now)
		})
		if err != nil {
			return fmt.Errorf("%s: %w", number, err)
		}
	}
	return retry
}

// manualFollowUp reminds the owners of manual schedules whose devices are
// not compliant before the deadline, and raises one incident per such
// device at it.
func (w *ComplianceSweepWorker) manualFollowUp(ctx context.Context, tx pgx.Tx, ev store.LedgerEvidence, manual []store.PlanEntry, deadline, now time.Time) error {
	if len(manual) == 0 || now.Before(deadline.Add(-w.deps.Compliance.reminderLead())) {
		return nil
	}
	ev2, err := store.ChangeLedgerEvidence(ctx, tx, ev.Change.Number)
	if err != nil {
		return err
	}
	devs := ledger.Devices(ev2, now, w.deps.Compliance.Ledger)
	behind := map[string][]ledger.Device{}
	for _, d := range devs {
		if d.Outcome == compliance.ManualNoncompliant || d.Outcome == compliance.PendingReboot ||
			(d.Outcome == compliance.Pending && d.Kind == string(calendar.KindManualPatch)) {
			behind[d.Schedule] = append(behind[d.Schedule], d)
		}
	}
	var report []int64
	for _, e := range manual {
		late := behind[e.Schedule]
		if len(late) == 0 {
			continue
		}
		if now.Before(deadline) {
			first, err := store.MarkNoted(ctx, tx, ev.Change.Number, "reminder "+e.Schedule)
			if err != nil {
				return err
			}
			if !first {
				continue
			}
			items, err := store.ManualRequestItems(ctx, tx, e.Schedule)
			if err != nil {
				return err
			}
			for _, it := range items {
				if err := note(ctx, tx, tableRequestItem, it[1], reminderNote(ev.Change.Number, e.Schedule, deadline, late)); err != nil {
					return err
				}
			}
			continue
		}
		for _, d := range late {
			if now.Before(d.Deadline) {
				continue // deferred: its incident waits for its own deadline
			}
			id, created, err := store.InsertFailure(ctx, tx, store.Failure{
				ChangeNumber: ev.Change.Number, Subject: d.Device, Kind: store.FailureNoncompliant,
				CorrelationID: failureKey(ev.Change.Number, store.FailureNoncompliant, d.Device),
				AlertComputer: d.Device, Message: d.Evidence, FirstSeenAt: now,
			})
			if err != nil {
				return err
			}
			if created {
				w.deps.Metrics.Failures.WithLabelValues(store.FailureNoncompliant).Inc()
				report = append(report, id)
			}
		}
	}
	return enqueueReports(ctx, tx, report)
}

func preflightKey(e store.PlanEntry) string {
	return "preflight " + e.Schedule + " " + e.WindowStart.UTC().Format(time.RFC3339)
}

func clientLine(device string, h store.ClientHealth) string {
	switch {
	case !h.Installed:
		return device + ": no SCCM client"
	case h.LastPolicyRequest == nil:
		return device + ": client inactive, never requested policy"
	}
	return device + ": client inactive, last policy request " + h.LastPolicyRequest.UTC().Format("2006-01-02 15:04 UTC")
}

func preflightNote(number string, e store.PlanEntry, collection string, inactive []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "autopatch: client pre-flight of %s, window of %s (%s) from %s\n", number, e.Schedule, collection,
		e.WindowStart.UTC().Format("2006-01-02 15:04 UTC"))
	if len(inactive) == 0 {
		b.WriteString("Every member's SCCM client is installed and active.")
		return b.String()
	}
	fmt.Fprintf(&b, "%d device(s) will not patch (counted as client_inactive in the compliance ledger):\n", len(inactive))
	for _, l := range inactive {
		b.WriteString("- " + l + "\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

func reminderNote(number, schedule string, deadline time.Time, late []ledger.Device) string {
	var b strings.Builder
	fmt.Fprintf(&b, "autopatch: reminder — the devices of schedule %s must be patched for %s by %s.\n"+
		"Not yet compliant (as SCCM reports them):\n", schedule, number, deadline.UTC().Format("2006-01-02 15:04 UTC"))
	for _, d := range late {
		fmt.Fprintf(&b, "- %s (%s): %s\n", d.Device, d.Outcome, d.Evidence)
	}
	b.WriteString("A device still not compliant at the deadline gets an incident.")
	return b.String()
}
