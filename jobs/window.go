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
