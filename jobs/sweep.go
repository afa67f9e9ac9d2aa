package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
)

// sweepInterval is how often the leader checks for windows whose job was
// lost (its client crashed mid-run and River has not rescued it yet).
const sweepInterval = 30 * time.Second

// SweepWindowsArgs is the periodic safety net of the window jobs: when a
// deployment is due to open or close and is not, it asks for an open or close
// now. The scheduled jobs normally do the work on time; this only bounds how
// late a crash can make them.
type SweepWindowsArgs struct{}

// Kind implements river.JobArgs.
func (SweepWindowsArgs) Kind() string { return "sweep_windows" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (SweepWindowsArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueDefault, UniqueOpts: river.UniqueOpts{ByPeriod: sweepInterval}}
}

// SweepWindowsWorker works SweepWindowsArgs.
type SweepWindowsWorker struct {
	river.WorkerDefaults[SweepWindowsArgs]
	deps *Deps
}

// sweepGrace leaves the scheduled jobs time to do their work first.
const sweepGrace = 20 * time.Second

// Work implements river.Worker.
func (w *SweepWindowsWorker) Work(ctx context.Context, job *river.Job[SweepWindowsArgs]) error {
	cutoff := w.deps.now().Add(-sweepGrace)
	var openDue, closeDue bool
	err := w.deps.Pool.QueryRow(ctx, `SELECT
		EXISTS (SELECT 1 FROM deployments WHERE state = 'created' AND window_start <= $1),
		EXISTS (SELECT 1 FROM deployments WHERE state = 'open' AND close_at <= $1)`, cutoff).Scan(&openDue, &closeDue)
	if err != nil {
		return fmt.Errorf("sweep windows: %w", err)
	}
	now := w.deps.now().UTC()
	if openDue {
		w.deps.Logger.WarnContext(ctx, "sweep found windows due to open; opening now")
		if err := insert(ctx, OpenWindowArgs{At: now}); err != nil {
			return err
		}
	}
	if closeDue {
		w.deps.Logger.WarnContext(ctx, "sweep found windows due to close; closing now")
		if err := insert(ctx, CloseWindowArgs{At: now}); err != nil {
			return err
		}
	}
	return nil
}
