package jobs

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/autopatch/autopatch/internal/rollout"
	"github.com/autopatch/autopatch/internal/store"
)

// Rollout control (issue #16, docs/architecture.md §9.3). A change's windows that
// have not opened are held — deployment state held, which the code that
// opens windows never selects — when:
//
//   - budget: the failures of its closed windows exceed its error budget
//     (a halt: one work note, one SCOM alert, one incident);
//   - tier:   a window has frontend members of a service whose backend or
//     middle members failed in an earlier window of the change;
//   - pause:  the change is On hold in ServiceNow.
//
// The holds are rows of rollout_holds; applyHolds brings the deployments'
// states in line with them under the change's lock. Holds are decided in
// the transaction that records the failures (poll_status), and openDue
// checks the same decision before it enables anything, so a crash between
// a failure and its hold, or a second replica, never opens a window the
// decision holds. A window already open when the budget is exceeded stays
// open to its end: its devices may be mid-install.

// budgetFor is the error budget of a change: its own, or the configured one.
func (d *Deps) budgetFor(c store.ChangeRow) rollout.Budget {
	if c.ErrorBudget != "" {
		if b, err := rollout.ParseBudget(c.ErrorBudget); err == nil {
			return b
		}
	}
	if d.ErrorBudget != nil {
		return *d.ErrorBudget
	}
	return rollout.DefaultBudget
}

// windowScope names a window of a change in a tier hold: schedule@start.
func windowScope(schedule string, start time.Time) string {
	return schedule + "@" + start.UTC().Format(time.RFC3339Nano)
}

// rolloutVerdict is what the rollout rules say of a change now.
type rolloutVerdict struct {
	budget   rollout.Budget
	exceeded bool
	failures []store.BudgetFailure // counted against the budget since the last resume
	devices  int
	gates    []rollout.Gate
}

// holds reports whether v holds the window of d, and why.
func (v rolloutVerdict) holds(d store.Deployment) string {
	if v.exceeded {
		return "error budget exceeded"
	}
	for _, g := range v.gates {
		if g.Window.Schedule == d.Schedule && g.Window.Start.Equal(d.WindowStart) {
			return g.Reason
		}
	}
	return ""
}

// rebootRequired is ERROR_SUCCESS_REBOOT_REQUIRED: installed, restart
// pending.
const rebootRequired = 0x80070BC2

// outcome is a failure's outcome as the compliance ledger names it
// (docs/architecture.md §9.1), until the ledger provides it.
func outcome(f store.BudgetFailure) string {
	switch {
	case f.Kind == store.FailureNoStatus:
		return rollout.OutcomeNotReported
	case f.ErrorCode != nil && uint32(*f.ErrorCode) == rebootRequired:
		return rollout.OutcomePendingReboot
	}
	return rollout.OutcomeFailed
}

// judgeRollout reads what the rollout rules decide on and applies them. It only
// reads, so openDue can ask it without taking the change's lock.
func judgeRollout(ctx context.Context, db store.DBTX, deps *Deps, c store.ChangeRow) (rolloutVerdict, error) {
	v := rolloutVerdict{budget: deps.budgetFor(c)}
	all, devices, err := store.BudgetCounts(ctx, db, c.Number)
	if err != nil {
		return v, err
	}
	var failures []store.BudgetFailure
	for _, f := range all {
		if rollout.Counts(outcome(f)) {
			failures = append(failures, f)
		}
	}
	// Failures are listed oldest window first: those a resume accepted
	// are the first FailuresAcked.
	if c.FailuresAcked < len(failures) {
		v.failures = failures[c.FailuresAcked:]
	}
	v.devices = max(devices-c.DevicesAcked, 0)
	v.exceeded = v.budget.Exceeded(len(failures)-c.FailuresAcked, v.devices)

	failed, err := store.FailedDevices(ctx, db, c.Number)
	if err != nil {
		return v, err
	}
	members, err := store.WaitingMembers(ctx, db, c.Number)
	if err != nil {
		return v, err
	}
	var ms []rollout.Member
	for _, m := range members {
		ms = append(ms, rollout.Member{Device: m.Device, Service: m.Service, Tier: m.Tier,
			Window: rollout.Window{Schedule: m.Schedule, Start: m.WindowStart}})
	}
	var fs []rollout.Failed
	for _, f := range failed {
		fs = append(fs, rollout.Failed{Device: f.Device, Service: f.Service, Tier: f.Tier, Start: f.WindowStart})
	}
	resumed, err := store.ResumedScopes(ctx, db, c.Number)
	if err != nil {
		return v, err
	}
	for _, g := range rollout.TierGates(ms, fs) {
		if !resumed[windowScope(g.Window.Schedule, g.Window.Start)] {
			v.gates = append(v.gates, g)
		}
	}
	return v, nil
}

// evaluateRollout decides a change's holds from its failures and applies
// them, in tx (the transaction that recorded the failures). It returns the
// failures to report (a new halt).
func evaluateRollout(ctx context.Context, tx pgx.Tx, deps *Deps, number string, now time.Time) ([]int64, error) {
	c, err := store.LockChange(ctx, tx, number)
	if err != nil || c.Status != store.ChangePlanned {
		return nil, err
	}
	active, err := store.ActiveHolds(ctx, tx, number)
	if err != nil {
		return nil, err
	}
	v, err := judgeRollout(ctx, tx, deps, c)
	if err != nil {
		return nil, err
	}
	var report []int64
	var newHolds []store.Hold
	// A halt with nothing left to hold would only be noise: the failures
	// have their own alerts and incidents. Windows held already (tier
	// gating, a pause) count: their other holds may be released.
	waiting, err := store.LockChangeDeployments(ctx, tx, number, store.DeploymentPlanned, store.DeploymentCreated, store.DeploymentHeld)
	if err != nil {
		return nil, err
	}
	if v.exceeded && len(waiting) > 0 && !hasHold(active, store.HoldBudget, "") {
		h := store.Hold{ChangeNumber: number, Kind: store.HoldBudget, HeldAt: now,
			Reason: fmt.Sprintf("error budget exceeded: %d failure(s) in the closed windows, more than the budget of %s",
				len(v.failures), v.budget.Describe(v.devices))}
		id, created, err := store.InsertHold(ctx, tx, h)
		if err != nil {
			return nil, err
		}
		if created {
			h.ID = id
			subject := fmt.Sprintf("halt#%d", id)
			fid, _, err := store.InsertFailure(ctx, tx, store.Failure{
				ChangeNumber: number, Subject: subject, Kind: store.FailureHalt,
				CorrelationID: failureKey(number, store.FailureHalt, subject),
				AlertComputer: deps.WindowComputer, Message: h.Reason, FirstSeenAt: now,
			})
			if err != nil {
				return nil, err
			}
			if err := store.SetHoldFailure(ctx, tx, id, fid); err != nil {
				return nil, err
			}
			report = append(report, fid)
			deps.Metrics.Failures.WithLabelValues(store.FailureHalt).Inc()
			deps.Metrics.Halts.WithLabelValues(store.HoldBudget).Inc()
			deps.Logger.WarnContext(ctx, "error budget exceeded: rollout halted", "change", number,
				"failures", len(v.failures), "budget", v.budget.String(), "devices", v.devices)
			newHolds = append(newHolds, h)
		}
	}
	gated := map[string]bool{}
	for _, g := range v.gates {
		scope := windowScope(g.Window.Schedule, g.Window.Start)
		gated[scope] = true
		if hasHold(active, store.HoldTier, scope) {
			continue
		}
		h := store.Hold{ChangeNumber: number, Kind: store.HoldTier, Scope: scope, Reason: g.Reason, HeldAt: now}
		if _, created, err := store.InsertHold(ctx, tx, h); err != nil {
			return nil, err
		} else if created {
			deps.Metrics.Halts.WithLabelValues(store.HoldTier).Inc()
			newHolds = append(newHolds, h)
		}
	}
	// A tier hold lifts by itself once the failed members below recovered
	// (they reported success later in the change).
	var lifted []string
	for _, h := range active {
		if h.Kind == store.HoldTier && !gated[h.Scope] {
			lifted = append(lifted, h.Scope)
		}
	}
	if len(lifted) > 0 {
		if err := releaseScopes(ctx, tx, number, lifted, now); err != nil {
			return nil, err
		}
	}
	held, released, err := applyHolds(ctx, tx, deps, c, now, "the failed backend and middle members recovered")
	if err != nil {
		return nil, err
	}
	if len(newHolds) > 0 && deps.beforeHoldCommit != nil {
		if err := deps.beforeHoldCommit(deps); err != nil {
			return nil, err
		}
	}
	for _, h := range newHolds {
		text, err := holdNote(ctx, tx, deps, c, h, v, held)
		if err != nil {
			return nil, err
		}
		if err := note(ctx, tx, tableChangeRequest, c.SysID, text); err != nil {
			return nil, err
		}
	}
	if len(released) > 0 {
		if err := note(ctx, tx, tableChangeRequest, c.SysID, releaseNote(c, "the failed backend and middle members of the service recovered", released)); err != nil {
			return nil, err
		}
	}
	return report, nil
}

// releaseScopes releases the tier holds of the windows scopes.
func releaseScopes(ctx context.Context, tx pgx.Tx, number string, scopes []string, now time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE rollout_holds SET released_at = $3,
			release_reason = 'the failed backend and middle members recovered', released_by = 'autopatch'
		WHERE change_number = $1 AND kind = 'tier' AND scope = ANY($2) AND released_at IS NULL`, number, scopes, now)
	if err != nil {
		return fmt.Errorf("release tier holds of %s: %w", number, err)
	}
	return nil
}

func hasHold(holds []store.Hold, kind, scope string) bool {
	for _, h := range holds {
		if h.Kind == kind && h.Scope == scope && h.Active() {
			return true
		}
	}
	return false
}

// covering returns the reason of the first hold in force over d, or "".
func covering(holds []store.Hold, d store.Deployment) string {
	for _, h := range holds {
		if h.Active() && (h.Scope == "" || h.Scope == windowScope(d.Schedule, d.WindowStart)) {
			return h.Kind + ": " + h.Reason
		}
	}
	return ""
}

// applyHolds brings the deployments of c that have not opened in line with
// its holds in force, under c's lock (taken by the caller): held when a
// hold covers them, back to where they were when none does any more (a
// window whose time passed meanwhile is then missed by openDue, as any
// late window). released says why, for the transitions.
func applyHolds(ctx context.Context, tx pgx.Tx, deps *Deps, c store.ChangeRow, now time.Time, released string) (held, freed []store.Deployment, err error) {
	holds, err := store.ActiveHolds(ctx, tx, c.Number)
	if err != nil {
		return nil, nil, err
	}
	rows, err := store.LockChangeDeployments(ctx, tx, c.Number, store.DeploymentPlanned, store.DeploymentCreated, store.DeploymentHeld)
	if err != nil {
		return nil, nil, err
	}
	toCreate := false
	for _, d := range rows {
		why := covering(holds, d)
		switch {
		case why != "" && d.State != store.DeploymentHeld:
			if err := store.Move(ctx, tx, store.Transition{ID: d.ID, From: d.State, To: store.DeploymentHeld, At: now,
				Reason: "held (" + why + ")"}); err != nil {
				return nil, nil, err
			}
			deps.Metrics.Held.Inc()
			held = append(held, d)
		case why == "" && d.State == store.DeploymentHeld && d.HeldFrom != nil:
			to := *d.HeldFrom
			if err := store.Move(ctx, tx, store.Transition{ID: d.ID, From: d.State, To: to, At: now,
				Reason: "released: " + released}); err != nil {
				return nil, nil, err
			}
			toCreate = toCreate || to == store.DeploymentPlanned
			freed = append(freed, d)
		}
	}
	if toCreate {
		if err := insertTx(ctx, tx, CreateDeploymentsArgs{ChangeNumber: c.Number}, nil); err != nil {
			return nil, nil, err
		}
	}
	return held, freed, nil
}

// holdNote is the work note of a new hold.
func holdNote(ctx context.Context, tx pgx.Tx, deps *Deps, c store.ChangeRow, h store.Hold, v rolloutVerdict, held []store.Deployment) (string, error) {
	var b strings.Builder
	switch h.Kind {
	case store.HoldBudget:
		fmt.Fprintf(&b, "autopatch: rollout of %s HALTED at %s UTC: %d failure(s) in the windows closed so far exceed the error budget of %s (a budget of N holds at failure N+1).\n",
			c.Number, h.HeldAt.UTC().Format("2006-01-02 15:04:05"), len(v.failures), v.budget.Describe(v.devices))
		b.WriteString("\nFailures:\n")
		for _, f := range v.failures {
			what := "no status by the end of the window"
			switch {
			case outcome(f) == rollout.OutcomePendingReboot:
				what = "installed, restart pending"
			case f.Kind == store.FailureError && f.ErrorCode != nil:
				what = "error " + errorName(*f.ErrorCode)
			}
			fmt.Fprintf(&b, "- %s (%s, window %s UTC): %s\n", f.Device, f.Schedule, clock(f.WindowStart), what)
		}
	case store.HoldTier:
		fmt.Fprintf(&b, "autopatch: window HELD in %s: %s.\n", c.Number, h.Reason)
	}
	var mine, opened []store.Deployment
	for _, d := range held {
		if h.Scope == windowScope(d.Schedule, d.WindowStart) {
			mine = append(mine, d)
		}
	}
	if h.Scope == "" {
		// The whole change: every held window (some may have been held
		// before, by tier gating), and the open ones, which stay open.
		all, err := store.ChangeDeployments(ctx, tx, c.Number)
		if err != nil {
			return "", err
		}
		for _, d := range all {
			switch d.State {
			case store.DeploymentHeld:
				mine = append(mine, d)
			case store.DeploymentOpen:
				opened = append(opened, d)
			}
		}
	}
	if len(mine) > 0 {
		b.WriteString("\nHeld, never enabled until the change is resumed:\n")
		writeWindows(&b, mine)
	}
	if len(opened) > 0 {
		b.WriteString("\nOpen now and left open to the end of their window (their devices may be mid-install):\n")
		writeWindows(&b, opened)
	}
	fmt.Fprintf(&b, "\nResume with the UI action \"Resume autopatch rollout\" on this change (POST %s with a reason). Windows whose time passes while held are missed.", deps.apiPath("/api/v1/changes/"+c.Number+"/resume"))
	return b.String(), nil
}

// releaseNote is the work note of released windows.
func releaseNote(c store.ChangeRow, why string, freed []store.Deployment) string {
	var b strings.Builder
	fmt.Fprintf(&b, "autopatch: rollout of %s RELEASED: %s.\nThese windows open at their time (missed if it has passed):\n", c.Number, why)
	writeWindows(&b, freed)
	return strings.TrimRight(b.String(), "\n")
}

// writeWindows lists deployments by window.
func writeWindows(b *strings.Builder, rows []store.Deployment) {
	for _, group := range byWindow(rows) {
		d := group[0]
		var names []string
		for _, g := range group {
			names = append(names, g.Name)
		}
		sort.Strings(names)
		fmt.Fprintf(b, "- %s (%q), window %s – %s UTC: %s\n", d.Schedule, d.Collection, clock(d.WindowStart), clock(d.WindowEnd), strings.Join(names, ", "))
	}
}

// evaluateRollouts evaluates the rollout of every change of rows, in tx,
// and asks for the reports of new halts.
func evaluateRollouts(ctx context.Context, tx pgx.Tx, deps *Deps, rows []store.Deployment, now time.Time) error {
	var report []int64
	for _, group := range byChange(rows) {
		ids, err := evaluateRollout(ctx, tx, deps, group[0].ChangeNumber, now)
		if err != nil {
			return fmt.Errorf("rollout of %s: %w", group[0].ChangeNumber, err)
		}
		report = append(report, ids...)
	}
	return enqueueReports(ctx, tx, report)
}

// rolloutGuard is openDue's own check, before it enables anything: of the
// due rows, those the rollout rules hold now are left out (and returned as
// deferred, for evaluateRollouts to record the hold after the open's
// transaction). So a hold does not depend on the poll that should have
// recorded it having committed: a crash between a failure and its hold, or
// a poll that could not reach SCCM, never lets a held window open.
func rolloutGuard(ctx context.Context, tx pgx.Tx, deps *Deps, due []store.Deployment) (open, deferred []store.Deployment, err error) {
	for _, group := range byChange(due) {
		c, err := store.GetChange(ctx, tx, group[0].ChangeNumber)
		if err != nil {
			return nil, nil, err
		}
		if c.Status != store.ChangePlanned {
			open = append(open, group...)
			continue
		}
		v, err := judgeRollout(ctx, tx, deps, c)
		if err != nil {
			return nil, nil, err
		}
		for _, d := range group {
			if v.holds(d) != "" {
				deferred = append(deferred, d)
			} else {
				open = append(open, d)
			}
		}
	}
	return open, deferred, nil
}
