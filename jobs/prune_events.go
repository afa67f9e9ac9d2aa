package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
)

// PruneEventsArgs deletes webhook deliveries older than the retention. They
// are only needed to recognise a late duplicate, which ServiceNow does not
// send months later; the changes and assignments they caused are kept.
type PruneEventsArgs struct {
	Retention time.Duration `json:"retention"`
}

// Kind implements river.JobArgs.
func (PruneEventsArgs) Kind() string { return "prune_events" }

// InsertOpts makes one pending prune at a time.
func (PruneEventsArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: time.Hour}}
}

// PruneEventsWorker works PruneEventsArgs.
type PruneEventsWorker struct {
	river.WorkerDefaults[PruneEventsArgs]
	Pool *pgxpool.Pool
}

// Work deletes old events that no assignment row refers to.
func (w *PruneEventsWorker) Work(ctx context.Context, job *river.Job[PruneEventsArgs]) error {
	_, err := w.Pool.Exec(ctx, `DELETE FROM webhook_events e
		WHERE received_at < now() - make_interval(secs => $1)
		  AND NOT EXISTS (SELECT 1 FROM device_assignments a WHERE a.webhook_event = e.id)`,
		job.Args.Retention.Seconds())
	if err != nil {
		return fmt.Errorf("prune events: %w", err)
	}
	return nil
}
