package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/autopatch/autopatch/internal/store"
)

// WindowKeeper opens and closes windows at their instants in every replica,
// so that no window depends on one process staying alive (issue #13). It
// runs one loop per SCCM site, so a site that is down or slow delays only
// its own windows (docs/architecture.md §10.1). Each loop sleeps until the
// site's next instant the database knows of (or a second, to see new plans,
// cancellations and re-plans), then closes and opens whatever is due there
// in one SCCM call each. The due rows are locked (SKIP LOCKED) for the
// whole call and change state in the same transaction, so of all the
// replicas exactly one acts on a row; when a process dies mid-call,
// PostgreSQL rolls its transaction back and frees the rows for the next
// replica's tick.
//
// The keeper replaced both the River open_window/close_window jobs (a
// process killed while it held them left its windows to River's stuck-job
// rescue, minutes later) and the periodic sweep behind them: a restart finds
// due and missed windows on its first tick.
type WindowKeeper struct {
	deps   *Deps
	client *river.Client[pgx.Tx]
}

// keeperPoll bounds how long the keeper sleeps without looking: how late a
// window can be seen that was planned, moved or canceled meanwhile.
const keeperPoll = time.Second

// keeperBusy is the pause when something is due but another replica holds
// it, so the keeper does not spin while that replica's call runs.
const keeperBusy = 250 * time.Millisecond

// NewWindowKeeper returns the keeper of this process; Run starts it.
func NewWindowKeeper(deps *Deps, client *river.Client[pgx.Tx]) *WindowKeeper {
	return &WindowKeeper{deps: deps, client: client}
}

// Run keeps the windows of every site until ctx ends.
func (k *WindowKeeper) Run(ctx context.Context) {
	ctx = withClient(ctx, k.client)
	var wg sync.WaitGroup
	for _, site := range k.deps.siteCodes() {
		wg.Go(func() { k.run(ctx, site) })
	}
	wg.Wait()
}

// run keeps the windows of one site until ctx ends.
func (k *WindowKeeper) run(ctx context.Context, site string) {
	failures := 0
	idle := false
	for {
		wait := keeperPoll
		next, err := store.NextWindowInstant(ctx, k.deps.Pool, site)
		switch {
		case err != nil:
			wait = quickRetry(max(failures, 1))
		case next != nil:
			wait = min(wait, next.Sub(k.deps.now()))
			if wait <= 0 && idle {
				wait = keeperBusy
			}
		}
		if failures > 0 {
			wait = max(wait, quickRetry(failures))
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		} else if ctx.Err() != nil {
			return
		}
		n, err := k.tick(ctx, site, failures+1)
		switch {
		case err != nil && ctx.Err() == nil:
			failures++
			k.deps.Logger.WarnContext(ctx, "window keeper: will retry", "site", site, "attempt", failures, "error", err)
		case err == nil:
			failures = 0
		}
		// Nothing done although something may be due: another replica
		// holds it, or it is not due yet by the database's clock.
		idle = n == 0
	}
}

// tick closes, then opens, what is due now. Closing first: a window that
// ends as another starts never has both enabled longer than needed.
// Forced waves (force_wave.go) come after windows: a window is on time to
// the second, a wave's start is only "as soon as its turn comes". Each
// site's loop keeps its own site's waves.
func (k *WindowKeeper) tick(ctx context.Context, site string, attempt int) (int, error) {
	conn, err := k.deps.keeperSCCM(site)
	if err != nil {
		return 0, fmt.Errorf("window keeper: %w", err)
	}
	closed, cerr := k.closeDue(ctx, site, conn, attempt)
	opened, oerr := k.openDue(ctx, site, conn, attempt)
	n := closed + opened
	wclosed, wcerr := k.closeWaves(ctx, site, conn, attempt)
	wopened, woerr := k.openNextWave(ctx, site, conn, attempt)
	n += wclosed + wopened
	if err := errors.Join(cerr, oerr, wcerr, woerr); err != nil {
		return n, fmt.Errorf("window keeper: %w", err)
	}
	return n, nil
}
