package jobs

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// RefreshLedgerArgs re-decides a change's ledger when something other than
// an SCCM read changed it: an approved deferral (docs/architecture.md §9.2),
// so that its devices' stored outcomes (deferred) and the gauges by cycle
// follow at once rather than at the change's next read.
type RefreshLedgerArgs struct {
	ChangeNumber string `json:"change_number"`
}

// Kind implements river.JobArgs.
func (RefreshLedgerArgs) Kind() string { return "refresh_ledger" }

// InsertOpts: not unique. A refresh running while another deferral commits
// may have read before it, so each deferral gets its own; a refresh is one
// short transaction.
func (RefreshLedgerArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueDefault}
}

// RefreshLedgerWorker works RefreshLedgerArgs. It makes no remote call.
type RefreshLedgerWorker struct {
	river.WorkerDefaults[RefreshLedgerArgs]
	deps *Deps
}

// Work implements river.Worker.
func (w *RefreshLedgerWorker) Work(ctx context.Context, job *river.Job[RefreshLedgerArgs]) error {
	return pgx.BeginFunc(ctx, w.deps.Pool, func(tx pgx.Tx) error {
		return refreshLedger(ctx, tx, w.deps, job.Args.ChangeNumber, w.deps.now())
	})
}
