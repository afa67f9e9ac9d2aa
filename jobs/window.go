package jobs

import (
	"context"
	"time"

	"github.com/riverqueue/river"
)

// windowLead is how long before its instant a poll may start waiting in
// its worker rather than being snoozed.
const windowLead = 15 * time.Second

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
	return sleep(ctx, d)
}

// sleep waits d, or until ctx ends (its error then).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// quickRetry is for work whose window is running out (the keeper's opens
// and closes, a change's creation): every second for attempts 1–5, so an
// outage of a few seconds costs seconds, then windowRetry's 2 s doubling to
// at most 30 s. Found by make chaos: a 3.8 s WinRM outage at a window's start
// put the keeper 4 s back, past the next window's start.
func quickRetry(attempt int) time.Duration {
	if attempt <= 5 {
		return time.Second
	}
	return windowRetry(attempt - 5)
}

// windowRetry retries quickly: 2 s, 4 s, 8 s … at most 30 s apart.
func windowRetry(attempt int) time.Duration {
	d := 2 * time.Second << min(attempt-1, 4)
	return min(d, 30*time.Second)
}
