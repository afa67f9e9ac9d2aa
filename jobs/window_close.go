package jobs

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/internal/store"
)

// closeDue disables, in one call to site conn, every open deployment of the
// site that must close by now (its window ended, or a cancellation or
// re-plan asked for it to close now) and that no other replica holds. Closing always happens: after
// failures, restarts, a crash mid-window or a canceled change.
func (w *WindowKeeper) closeDue(ctx context.Context, site string, conn SCCM, attempt int) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, w.deps.Pool, func(tx pgx.Tx) error {
		now := w.deps.now()
		due, err := store.LockDueToClose(ctx, tx, site, now)
		if err != nil || len(due) == 0 {
			return err
		}
		n = len(due)
		names, _ := namesAndCollections(due)
		gone := map[string]string{}
		_, err = conn.SetEnabled(ctx, names, false)
		if sccm.IsRefusal(err) {
			// Someone deleted a deployment in the console: find which, so
			// the others still close.
			gone, err = w.closeOneByOne(ctx, conn, names)
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
func (w *WindowKeeper) closeOneByOne(ctx context.Context, conn SCCM, names []string) (map[string]string, error) {
	gone := map[string]string{}
	for _, n := range names {
		_, err := conn.SetEnabled(ctx, []string{n}, false)
		switch {
		case sccm.IsRefusal(err):
			gone[n] = err.Error()
		case err != nil:
			return nil, err
		}
	}
	return gone, nil
}
