package jobs

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/autopatch/autopatch/internal/store"
)

// UnwindChangeArgs asks for a change's deployments to be taken back because
// the change was canceled or its approval withdrawn: deployments whose
// window has not opened are deleted, open ones disabled. The webhook has
// already set changes.status to canceled and bumped changes.revision; the
// worker re-reads the row, and does nothing if the change has since been
// approved again (a plan_change follows then). See PlanChangeArgs for the
// revision check.
type UnwindChangeArgs struct {
	ChangeNumber string `json:"change_number"`
	// Revision: see PlanChangeArgs.
	Revision int64 `json:"revision"`
}

// Kind implements river.JobArgs.
func (UnwindChangeArgs) Kind() string { return "unwind_change" }

// InsertOpts: one pending unwind per change version. The unwind itself only
// decides; the deletes and disables it asks for run on their own queues.
func (UnwindChangeArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueDefault, UniqueOpts: changeUniqueOpts()}
}

// UnwindChangeWorker works UnwindChangeArgs.
type UnwindChangeWorker struct {
	river.WorkerDefaults[UnwindChangeArgs]
	deps *Deps
}

// Work implements river.Worker: deployments not yet open become obsolete
// (create_deployments deletes them from SCCM), open ones close now.
func (w *UnwindChangeWorker) Work(ctx context.Context, job *river.Job[UnwindChangeArgs]) error {
	return pgx.BeginFunc(ctx, w.deps.Pool, func(tx pgx.Tx) error {
		c, err := store.LockChange(ctx, tx, job.Args.ChangeNumber)
		if err != nil {
			return err
		}
		if job.Args.Revision < c.Revision || c.Approved() {
			// A newer version asked for something else (a re-approval
			// plans again).
			return nil
		}
		rows, err := store.LockChangeDeployments(ctx, tx, c.Number, store.DeploymentPlanned, store.DeploymentCreated, store.DeploymentOpen, store.DeploymentHeld)
		if err != nil {
			return err
		}
		now := w.deps.now()
		var removed, closing int
		for _, d := range rows {
			t := store.Transition{ID: d.ID, From: d.State, To: store.DeploymentObsolete, At: now,
				Reason: fmt.Sprintf("change %s (approval %s): unwound", c.State, c.Approval)}
			if d.State == store.DeploymentOpen {
				t.To, t.CloseAt = d.State, &now
				t.Reason = "change canceled or approval withdrawn: closing now"
				closing++
			} else {
				removed++
			}
			if err := store.Move(ctx, tx, t); err != nil {
				return err
			}
		}
		if err := store.SetChangeStatus(ctx, tx, c.Number, store.ChangeCanceled); err != nil {
			return err
		}
		// Forced remediation stops too (§9.2): waves not run are canceled,
		// a running one is disabled now by the window keeper.
		waves, wclosing, err := store.CancelForcing(ctx, tx, c.Number, now)
		if err != nil {
			return err
		}
		if removed > 0 {
			if err := insertTx(ctx, tx, CreateDeploymentsArgs{ChangeNumber: c.Number}, nil); err != nil {
				return err
			}
		}
		text := fmt.Sprintf("autopatch: %s is %s (approval: %s). Unwound: %d deployment(s) not yet open will be deleted from SCCM; %d open deployment(s) are being disabled now.",
			c.Number, c.State, c.Approval, removed, closing)
		if waves+wclosing > 0 {
			text += fmt.Sprintf(" Forced remediation stopped: %d wave(s) not yet run are canceled; %d running wave(s) are being disabled now.", waves, wclosing)
		}
		return note(ctx, tx, tableChangeRequest, c.SysID, text)
	})
}
