package jobs

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/internal/store"
)

// openDue enables, in one call to site conn with a policy refresh of their
// collections, every created deployment of the site whose window has
// started and that no other replica holds. It acts on what the database
// says is due, so a re-plan or a cancellation is respected and a late
// start (autopatch was down) catches up. The due rows stay locked during the SCCM call: another
// replica skips them, so nothing is enabled twice; a crash rolls back and the
// next tick enables again, which the template makes a no-op in SCCM.
func (w *WindowKeeper) openDue(ctx context.Context, site string, conn SCCM, attempt int) (int, error) {
	var n int
	var deferred []store.Deployment
	err := pgx.BeginFunc(ctx, w.deps.Pool, func(tx pgx.Tx) error {
		now := w.deps.now()
		due, err := store.LockDueToOpen(ctx, tx, site, now)
		if err != nil || len(due) == 0 {
			return err
		}
		n = len(due)
		if due, deferred, err = rolloutGuard(ctx, tx, w.deps, due); err != nil || len(due) == 0 {
			return err
		}
		var open, missed []store.Deployment
		for _, d := range due {
			if d.CloseAt.Sub(now) < w.minRemaining(d) {
				missed = append(missed, d)
			} else {
				open = append(open, d)
			}
		}
		if len(missed) > 0 {
			// A process killed between its SCCM enable and its commit left
			// these enabled in SCCM while the database still says created
			// (found by make chaos): disabling is a no-op otherwise, and a
			// missed window must never stay enabled.
			names, _ := namesAndCollections(missed)
			_, err := conn.SetEnabled(ctx, names, false)
			if sccm.IsRefusal(err) {
				// One was deleted in the console: disable the others.
				_, err = w.closeOneByOne(ctx, conn, names)
			}
			if err != nil {
				w.deps.Logger.WarnContext(ctx, "disabling missed windows failed; retrying", "deployments", len(names), "attempt", attempt, "error", err)
				return fmt.Errorf("disable %d missed deployment(s): %w", len(names), err)
			}
		}
		if len(open) > 0 {
			names, collections := namesAndCollections(open)
			if _, err := conn.OpenDeployments(ctx, names, collections); err != nil {
				w.deps.Logger.WarnContext(ctx, "opening windows failed; retrying", "deployments", len(names), "attempt", attempt, "error", err)
				return fmt.Errorf("open %d deployment(s): %w", len(names), err)
			}
		}
		opened := w.deps.now()
		for _, d := range open {
			if err := store.Move(ctx, tx, store.Transition{ID: d.ID, From: store.DeploymentCreated, To: store.DeploymentOpen,
				At: opened, Reason: "enabled, client policy refreshed"}); err != nil {
				return err
			}
			w.deps.Metrics.OpenLag.Observe(opened.Sub(d.WindowStart).Seconds())
		}
		for _, d := range missed {
			reason := fmt.Sprintf("missed: at %s only %s of the window was left (at least %s needed)",
				now.UTC().Format(time.RFC3339), d.CloseAt.Sub(now).Round(time.Second), w.minRemaining(d))
			if d.CloseAt.Before(now) {
				reason = fmt.Sprintf("missed: the window ended at %s before autopatch could open it", d.CloseAt.UTC().Format(time.RFC3339))
			}
			if err := store.Move(ctx, tx, store.Transition{ID: d.ID, From: store.DeploymentCreated, To: store.DeploymentMissed,
				At: now, Reason: reason}); err != nil {
				return err
			}
			w.deps.Metrics.Missed.Inc()
		}
		for _, group := range byChange(open) {
			if err := note(ctx, tx, tableChangeRequest, group[0].ChangeSysID, windowNote("OPENED", "enabled", group, opened)); err != nil {
				return err
			}
		}
		for _, group := range byChange(missed) {
			if err := note(ctx, tx, tableChangeRequest, group[0].ChangeSysID, missedNote(group, now)); err != nil {
				return err
			}
		}
		if len(open) > 0 {
			if err := pollAfterOpen(ctx, tx, w.deps, opened); err != nil {
				return err
			}
		}
		if err := reportMissed(ctx, tx, w.deps, missed, now); err != nil {
			return err
		}
		return nil
	})
	if err == nil && len(deferred) > 0 {
		// Record the holds the guard found, under the change's lock.
		err = pgx.BeginFunc(ctx, w.deps.Pool, func(tx pgx.Tx) error {
			return evaluateRollouts(ctx, tx, w.deps, deferred, w.deps.now())
		})
	}
	return n, err
}

// minRemaining is the least of d's window that must be left to open it.
func (w *WindowKeeper) minRemaining(d store.Deployment) time.Duration {
	return min(w.deps.MinRemaining, d.WindowEnd.Sub(d.WindowStart)/2)
}

func namesAndCollections(rows []store.Deployment) (names, collections []string) {
	seen := map[string]bool{}
	for _, d := range rows {
		names = append(names, d.Name)
		if !seen[d.Collection] {
			seen[d.Collection] = true
			collections = append(collections, d.Collection)
		}
	}
	sort.Strings(collections)
	return names, collections
}

// byChange groups deployments by change, in change order.
func byChange(rows []store.Deployment) [][]store.Deployment {
	idx := map[string]int{}
	var out [][]store.Deployment
	for _, d := range rows {
		i, ok := idx[d.ChangeNumber]
		if !ok {
			i = len(out)
			idx[d.ChangeNumber] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0].ChangeNumber < out[j][0].ChangeNumber })
	return out
}

func windowNote(what, verb string, rows []store.Deployment, at time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "autopatch: window %s for %s at %s UTC; %s:\n", what, rows[0].ChangeNumber, at.UTC().Format("2006-01-02 15:04:05"), verb)
	for _, d := range rows {
		fmt.Fprintf(&b, "- %s (%q, %q), window %s – %s UTC\n", d.Name, d.Collection, d.UpdateGroup,
			clock(d.WindowStart), clock(d.WindowEnd))
	}
	return strings.TrimRight(b.String(), "\n")
}

func missedNote(rows []store.Deployment, at time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "autopatch: window MISSED for %s (checked %s UTC). These deployments were never enabled, so nothing installed or rebooted:\n",
		rows[0].ChangeNumber, at.UTC().Format("2006-01-02 15:04:05"))
	for _, d := range rows {
		fmt.Fprintf(&b, "- %s (%q, %q), window %s – %s UTC\n", d.Name, d.Collection, d.UpdateGroup,
			clock(d.WindowStart), clock(d.WindowEnd))
	}
	b.WriteString("Patch these devices in a later change.")
	return b.String()
}

// clock formats an instant for a work note, in UTC, to the minute unless it
// has seconds (the demo's windows are seconds apart).
func clock(t time.Time) string {
	if t.Second() != 0 {
		return t.UTC().Format("2006-01-02 15:04:05")
	}
	return t.UTC().Format("2006-01-02 15:04")
}
