package jobs

import (
	"context"
	"time"

	"github.com/riverqueue/river"

	"github.com/autopatch/autopatch/internal/store"
)

// windowLead is how long before its instant a window job is scheduled.
// River promotes scheduled jobs only every 5 s; starting early and waiting
// for the exact instant in the worker opens and closes windows on time.
const windowLead = 15 * time.Second

// windowTimeout bounds one window job: the wait plus the remote call.
const windowTimeout = 15 * time.Minute

// windowInsertOpts schedules a window job windowLead before its instant.
// When that moment has passed the job is inserted available: River parks any
// job given a ScheduledAt, even a past one, until its scheduler's next run.
func windowInsertOpts(at, now time.Time) *river.InsertOpts {
	start := at.Add(-windowLead)
	if !start.After(now) {
		return nil
	}
	return &river.InsertOpts{ScheduledAt: start}
}

// waitUntil waits for at. A job that starts much earlier than its lead
// (scheduled long ahead, or a clock step) is snoozed rather than holding a
// worker.
func waitUntil(ctx context.Context, at, now time.Time) error {
	d := at.Sub(now)
	if d <= 0 {
		return nil
	}
	if d > 2*windowLead {
		return river.JobSnooze(d - windowLead)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// windowRetry retries a window job quickly: its window is running out.
// 2 s, 4 s, 8 s … at most 30 s apart.
func windowRetry(attempt int) time.Duration {
	d := 2 * time.Second << min(attempt-1, 4)
	return min(d, 30*time.Second)
}

// windowMaxAttempts keeps retrying for hours at 30 s intervals; the window
// decides when it is too late (missed), not the attempt count.
const windowMaxAttempts = 1000

// drainFor bounds how long a window job keeps taking newly due work.
const drainFor = 30 * time.Second

// drain runs batch until nothing due is left. Rows that another job holds
// are waited for briefly: if that job fails, this one takes them over
// instead of leaving them to the sweep.
func drain(ctx context.Context, deps *Deps, closing bool, batch func() (int, error)) error {
	deadline := deps.now().Add(drainFor)
	for {
		n, err := batch()
		if err != nil {
			return err
		}
		if n > 0 {
			continue
		}
		left, err := store.DueRemaining(ctx, deps.Pool, deps.now(), closing)
		if err != nil || left == 0 || deps.now().After(deadline) {
			return err
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
