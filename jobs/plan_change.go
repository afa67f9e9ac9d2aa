package jobs

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/autopatch/autopatch/internal/deadline"
	"github.com/autopatch/autopatch/internal/ledger"
	"github.com/autopatch/autopatch/internal/store"
)

// PlanChangeArgs asks for the plan of a change to be (re)computed from the
// changes row as it is when the job runs: the webhook that enqueues it has
// already stored the change's dates, update groups and schedules.
//
// River counts a running job among unique jobs, so a delivery that arrives
// while a plan of the same change runs would be swallowed if the args were
// only the change number. The webhook bumps changes.revision for every plan
// or unwind it asks for and puts the revision in the args: each version gets
// its own job, identical deliveries still collapse, and an older job that
// finds a newer revision on the row leaves the work to the newer one. No
// re-plan is ever lost.
type PlanChangeArgs struct {
	ChangeNumber string `json:"change_number"`
	// Revision is changes.revision when the job was asked for. A job whose
	// revision is older than the row's does nothing: the newer job (River
	// keeps jobs with different args apart) plans the newer version.
	Revision int64 `json:"revision"`
}

// Kind implements river.JobArgs.
func (PlanChangeArgs) Kind() string { return "plan_change" }

// InsertOpts makes one pending plan_change per change.
func (PlanChangeArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueDefault, UniqueOpts: changeUniqueOpts()}
}

// changeUniqueOpts is the uniqueness of jobs about one change version: by
// args (change number and revision), among jobs that have not finished.
// Completed jobs are left out (River's default keeps them for a day, which
// would swallow a re-plan of the same revision after a failed attempt's
// manual retry), and so is retryable: a job waiting out a long backoff must
// not delay a fresh request.
func changeUniqueOpts() river.UniqueOpts {
	return river.UniqueOpts{
		ByArgs: true,
		ByState: []rivertype.JobState{
			rivertype.JobStateAvailable,
			rivertype.JobStatePending,
			rivertype.JobStateRunning, // required by River
			rivertype.JobStateScheduled,
		},
	}
}

// PlanChangeWorker computes a change's plan and brings its deployments in
// line with it. It makes no remote call: it decides, in one transaction
// under the change's row lock, and enqueues the work (create, close, note) in
// that same transaction, so a crash leaves either all of it or none.
type PlanChangeWorker struct {
	river.WorkerDefaults[PlanChangeArgs]
	deps *Deps
}

// Work implements river.Worker.
func (w *PlanChangeWorker) Work(ctx context.Context, job *river.Job[PlanChangeArgs]) error {
	return pgx.BeginFunc(ctx, w.deps.Pool, func(tx pgx.Tx) error {
		c, err := store.LockChange(ctx, tx, job.Args.ChangeNumber)
		if err != nil {
			return err
		}
		if job.Args.Revision < c.Revision {
			w.deps.Logger.InfoContext(ctx, "plan superseded by a newer version of the change", "change", c.Number)
			return nil
		}
		if !c.Approved() || c.Status == store.ChangeCanceled {
			w.deps.Logger.InfoContext(ctx, "change is not approved; nothing to plan", "change", c.Number, "approval", c.Approval, "state", c.State)
			return nil
		}
		now := w.deps.now()
		p := newChangePlan(c, w.deps.Schedules.Get())
		p.deadline = w.deps.Compliance.Ledger.Deadline(c)
		p.deadlineWhy = w.deps.Compliance.Ledger.Policy().Why(deadline.Classification(c.Classification), c.Start, c.Deadline)
		if deadline.Classification(c.Classification) == deadline.Emergency {
			if err := p.placeBefore(ctx, tx, p.deadline); err != nil {
				return err
			}
		}
		if p.safety, err = w.deps.checkPlanSafety(ctx, tx, p); err != nil {
			return err
		}

		version, err := store.InsertPlan(ctx, tx, c, p.entries())
		if err != nil {
			return err
		}
		live, err := store.LockChangeDeployments(ctx, tx, c.Number, store.DeploymentPlanned, store.DeploymentCreated, store.DeploymentOpen, store.DeploymentHeld)
		if err != nil {
			return err
		}
		r, err := p.reconcile(ctx, tx, live, version, now)
		if err != nil {
			return err
		}
		if err := store.SetChangeStatus(ctx, tx, c.Number, store.ChangePlanned); err != nil {
			return err
		}
		// Holds in force (a halt, a pause) hold the new and moved windows too.
		if _, _, err := applyHolds(ctx, tx, w.deps, c, now, "re-planned"); err != nil {
			return err
		}
		if err := note(ctx, tx, tableChangeRequest, c.SysID, p.note(version, r)); err != nil {
			return err
		}
		if r.toCreate > 0 || r.obsoleted > 0 {
			if err := insertTx(ctx, tx, CreateDeploymentsArgs{ChangeNumber: c.Number}, nil); err != nil {
				return err
			}
		}
		// Forcing at the deadline (§9.2): later ledger refreshes add the
		// force times a deferral moves.
		return scheduleForcing(ctx, tx, w.deps, c.Number, []ledger.Device{{Deadline: p.deadline}}, now)
	})
}
