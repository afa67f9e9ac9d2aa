package jobs

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/autopatch/autopatch/internal/store"
)

// HoldChangeArgs brings a change's deployments in line with its holds after
// a person changed them: the change webhook's On hold (Pause), or a resume
// through the API (Resume, its reason), which has already released the
// holds in the request's transaction.
type HoldChangeArgs struct {
	ChangeNumber string `json:"change_number"`
	// Pause: sync the pause hold with changes.on_hold as it is when the
	// job runs (the newest delivery wins, whatever the jobs' order).
	Pause bool `json:"pause,omitempty"`
	// Resume is the reason of a resume; empty for a pause.
	Resume string `json:"resume,omitempty"`
	// Key makes each request its own job (the change's sys_updated_on, or
	// the resume's time): River's uniqueness must not swallow a release
	// that arrives while the hold's job runs.
	Key string `json:"key"`
}

// Kind implements river.JobArgs.
func (HoldChangeArgs) Kind() string { return "hold_change" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (HoldChangeArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueDefault, UniqueOpts: changeUniqueOpts()}
}

// HoldChangeWorker works HoldChangeArgs. It makes no remote call: holding
// is not enabling, and releasing lets the window keeper open at the time.
type HoldChangeWorker struct {
	river.WorkerDefaults[HoldChangeArgs]
	deps *Deps
}

// Work implements river.Worker.
func (w *HoldChangeWorker) Work(ctx context.Context, job *river.Job[HoldChangeArgs]) error {
	return pgx.BeginFunc(ctx, w.deps.Pool, func(tx pgx.Tx) error {
		c, err := store.LockChange(ctx, tx, job.Args.ChangeNumber)
		if err != nil {
			return err
		}
		now := w.deps.now()
		why := "resumed: " + job.Args.Resume
		var paused *store.Hold
		if job.Args.Pause {
			why = "taken off hold in ServiceNow"
			active, err := store.ActiveHolds(ctx, tx, c.Number)
			if err != nil {
				return err
			}
			switch has := hasHold(active, store.HoldPause, ""); {
			case c.OnHold && !has:
				h := store.Hold{ChangeNumber: c.Number, Kind: store.HoldPause, HeldAt: now,
					Reason: "On hold in ServiceNow"}
				if _, _, err := store.InsertHold(ctx, tx, h); err != nil {
					return err
				}
				w.deps.Metrics.Halts.WithLabelValues(store.HoldPause).Inc()
				paused = &h
			case !c.OnHold && has:
				if _, err := store.ReleaseHolds(ctx, tx, c.Number, []string{store.HoldPause}, why, "servicenow", now); err != nil {
					return err
				}
			}
		}
		held, freed, err := applyHolds(ctx, tx, w.deps, c, now, why)
		if err != nil {
			return err
		}
		// A halt's alert and incident close when the halt is released.
		halts, err := store.UnresolvedHalts(ctx, tx, c.Number)
		if err != nil {
			return err
		}
		for _, id := range halts {
			if err := store.MarkRecovered(ctx, tx, id, now); err != nil {
				return err
			}
		}
		if err := enqueueReports(ctx, tx, halts); err != nil {
			return err
		}
		if paused == nil && w.deps.Force.enabled() {
			// Released: forcing postponed by the hold runs now (a no-op
			// when nothing is past its deadline).
			if err := insertTx(ctx, tx, ForceChangeArgs{ChangeNumber: c.Number, At: now.UTC()}, nil); err != nil {
				return err
			}
		}
		if paused != nil {
			var b strings.Builder
			fmt.Fprintf(&b, "autopatch: %s is On hold in ServiceNow: its windows that have not opened are HELD, never enabled, until it is taken off hold or resumed. An open window stays open to its end. Windows whose time passes while held are missed.\n", c.Number)
			if len(held) > 0 {
				b.WriteString("Held:\n")
				writeWindows(&b, held)
			}
			if err := note(ctx, tx, tableChangeRequest, c.SysID, strings.TrimRight(b.String(), "\n")); err != nil {
				return err
			}
		}
		if len(freed) > 0 {
			return note(ctx, tx, tableChangeRequest, c.SysID, releaseNote(c, why, freed))
		}
		return nil
	})
}
