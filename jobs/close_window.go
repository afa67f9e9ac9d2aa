package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/internal/store"
)

// CloseWindowArgs disables, at instant At, every open deployment that must
// close by then (its window ended, or a cancellation or re-plan asked for it
// to close now), in one SCCM call. Closing always happens: after failures,
// restarts, a crash mid-window or a canceled change; the sweep re-asks for it
// if this job itself is lost with its client.
type CloseWindowArgs struct {
	At time.Time `json:"at"`
}

// Kind implements river.JobArgs.
func (CloseWindowArgs) Kind() string { return "close_window" }

// InsertOpts: one job per instant.
func (CloseWindowArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueWindows, MaxAttempts: windowMaxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// CloseWindowWorker works CloseWindowArgs.
type CloseWindowWorker struct {
	river.WorkerDefaults[CloseWindowArgs]
	deps *Deps
}

// Timeout implements river.Worker.
func (w *CloseWindowWorker) Timeout(*river.Job[CloseWindowArgs]) time.Duration { return windowTimeout }

// NextRetry implements river.Worker.
func (w *CloseWindowWorker) NextRetry(job *river.Job[CloseWindowArgs]) time.Time {
	return time.Now().Add(windowRetry(job.Attempt))
}

// Work implements river.Worker.
func (w *CloseWindowWorker) Work(ctx context.Context, job *river.Job[CloseWindowArgs]) error {
	if err := waitUntil(ctx, job.Args.At, w.deps.now()); err != nil {
		return err
	}
	return drain(ctx, w.deps, true, func() (int, error) { return w.closeDue(ctx, job.Attempt) })
}

// closeDue closes, in one SCCM call, what is due and not taken by another job.
func (w *CloseWindowWorker) closeDue(ctx context.Context, attempt int) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, w.deps.Pool, func(tx pgx.Tx) error {
		now := w.deps.now()
		due, err := store.LockDueToClose(ctx, tx, now)
		if err != nil || len(due) == 0 {
			return err
		}
		n = len(due)
		names, _ := namesAndCollections(due)
		gone := map[string]string{}
		_, err = w.deps.SCCM.SetEnabled(ctx, names, false)
		if sccm.IsRefusal(err) {
			// Someone deleted a deployment in the console: find which, so
			// the others still close.
			gone, err = w.closeOneByOne(ctx, names)
		}
		if err != nil {
			w.deps.Logger.ErrorContext(ctx, "closing windows failed; retrying", "deployments", len(names), "attempt", attempt, "error", err)
			return fmt.Errorf("close %d deployment(s): %w", len(names), err)
		}
		closed := w.deps.now()
		for _, d := range due {
			reason := "disabled"
			if d.CloseAt.Before(d.WindowEnd) {
				reason = "disabled early (change canceled or re-planned)"
			}
			if why, ok := gone[d.Name]; ok {
				reason = "no longer in SCCM: " + why
			}
			if err := store.Move(ctx, tx, store.Transition{ID: d.ID, From: store.DeploymentOpen, To: store.DeploymentClosed,
				At: closed, Reason: reason}); err != nil {
				return err
			}
			w.deps.Metrics.CloseLag.Observe(closed.Sub(d.CloseAt).Seconds())
		}
		for _, group := range byChange(due) {
			if err := note(ctx, tx, tableChangeRequest, group[0].ChangeSysID, windowNote("CLOSED", "disabled", group, closed)); err != nil {
				return err
			}
		}
		if err := pollAfterClose(ctx, tx, closed); err != nil {
			return err
		}
		return nil
	})
	return n, err
}

// closeOneByOne disables deployments one call each and returns those SCCM
// refused (they no longer exist), so a deleted one never keeps the others
// enabled. Only used after a batch was refused.
func (w *CloseWindowWorker) closeOneByOne(ctx context.Context, names []string) (map[string]string, error) {
	gone := map[string]string{}
	for _, n := range names {
		_, err := w.deps.SCCM.SetEnabled(ctx, []string{n}, false)
		switch {
		case sccm.IsRefusal(err):
			gone[n] = err.Error()
		case err != nil:
			return nil, err
		}
	}
	return gone, nil
}
