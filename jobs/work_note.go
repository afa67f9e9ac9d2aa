package jobs

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// ServiceNow tables autopatch writes work notes on.
const (
	tableChangeRequest = "change_request"
	tableRequestItem   = "sc_req_item"
)

// WorkNoteArgs appends one work note to a ServiceNow record. Notes are jobs
// of their own, inserted in the transaction of the decision they report, so
// a ServiceNow outage delays them but never loses one or blocks patching.
type WorkNoteArgs struct {
	Table string `json:"table"`
	SysID string `json:"sys_id"`
	Text  string `json:"text"`
}

// Kind implements river.JobArgs.
func (WorkNoteArgs) Kind() string { return "work_note" }

// InsertOpts: the same note on the same record is written once.
func (WorkNoteArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueServiceNow, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// WorkNoteWorker works WorkNoteArgs.
type WorkNoteWorker struct {
	river.WorkerDefaults[WorkNoteArgs]
	deps *Deps
}

// Work implements river.Worker. The client retries 429 and 5xx itself;
// what still fails is retried by River with backoff. A second attempt may
// follow a first that wrote the note and died before River recorded it (a
// killed replica's job is taken over within seconds), so it looks for the
// note before writing it again.
func (w *WorkNoteWorker) Work(ctx context.Context, job *river.Job[WorkNoteArgs]) error {
	if job.Attempt > 1 {
		written, err := w.deps.ServiceNow.HasWorkNote(ctx, job.Args.Table, job.Args.SysID, job.Args.Text)
		if err != nil {
			return fmt.Errorf("work note on %s %s: %w", job.Args.Table, job.Args.SysID, err)
		}
		if written {
			return nil
		}
	}
	if err := w.deps.ServiceNow.AddWorkNote(ctx, job.Args.Table, job.Args.SysID, job.Args.Text); err != nil {
		return fmt.Errorf("work note on %s %s: %w", job.Args.Table, job.Args.SysID, err)
	}
	return nil
}

// note enqueues a work note in tx.
func note(ctx context.Context, tx pgx.Tx, table, sysID, text string) error {
	return insertTx(ctx, tx, WorkNoteArgs{Table: table, SysID: sysID, Text: text}, nil)
}
