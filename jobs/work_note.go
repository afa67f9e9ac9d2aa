package jobs

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/autopatch/autopatch/internal/store"
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

// DeferralJobs are the jobs of an approved deferral (docs/architecture.md
// §9.2): its work notes, one on the change and one on the request item that
// asked for it, and the refresh of the change's ledger. Devices forced before the deferral arrived are named
// as such: the deferral is recorded for them, and moves nothing.
func DeferralJobs(d store.Deferral) []river.JobArgs {
	var deferred, forced []string
	for _, name := range d.Devices {
		if at, ok := d.ForcedAt[strings.ToLower(name)]; ok {
			forced = append(forced, fmt.Sprintf("%s (forced %s UTC)", name, at.UTC().Format("2006-01-02 15:04")))
			continue
		}
		deferred = append(deferred, name)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "autopatch: deferral %s for %s, approved by %s\n", d.RequestItem.Number, d.Change, d.ApprovedBy)
	if len(deferred) > 0 {
		fmt.Fprintf(&b, "Deferred until %s UTC (%d device(s)): %s\n", d.Until.UTC().Format("2006-01-02 15:04"), len(deferred), strings.Join(deferred, ", "))
	}
	if len(forced) > 0 {
		fmt.Fprintf(&b, "Not deferred, already forced (%d device(s)): %s\n", len(forced), strings.Join(forced, ", "))
	}
	fmt.Fprintf(&b, "Reason: %s", d.Reason)
	text := b.String()
	out := []river.JobArgs{WorkNoteArgs{Table: tableRequestItem, SysID: d.RequestItem.SysID, Text: text}}
	if d.ChangeSysID != "" {
		out = append(out, WorkNoteArgs{Table: tableChangeRequest, SysID: d.ChangeSysID, Text: text})
	}
	return append(out, RefreshLedgerArgs{ChangeNumber: d.Change})
}
