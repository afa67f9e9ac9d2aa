// Package jobs holds autopatch's River jobs, one file per kind: the args
// (what was asked, stored durably with the job) and the worker (which re-reads
// the rows it acts on, so running twice is safe).
package jobs

import (
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/autopatch/autopatch/internal/config"
)

// Queues, one per remote system so a slow or failing system cannot hold up
// the others, and small so WinRM's per-user shell limits are respected.
const (
	QueueDefault    = river.QueueDefault
	QueueSCCM       = "sccm"
	QueueSCOM       = "scom"
	QueueServiceNow = "servicenow"
)

// Deps are what the workers need.
type Deps struct {
	Pool   *pgxpool.Pool
	Logger *slog.Logger
}

// NewClient builds the River client with every worker registered and the
// queues sized from configuration.
func NewClient(deps Deps, q config.Queues) (*river.Client[pgx.Tx], error) {
	workers := river.NewWorkers()
	river.AddWorker(workers, &PruneEventsWorker{Pool: deps.Pool})

	return river.NewClient(riverpgxv5.New(deps.Pool), &river.Config{
		Logger: deps.Logger,
		Queues: map[string]river.QueueConfig{
			QueueDefault:    {MaxWorkers: q.Default},
			QueueSCCM:       {MaxWorkers: q.SCCM},
			QueueSCOM:       {MaxWorkers: q.SCOM},
			QueueServiceNow: {MaxWorkers: q.ServiceNow},
		},
		Workers: workers,
		PeriodicJobs: []*river.PeriodicJob{
			river.NewPeriodicJob(river.PeriodicInterval(24*time.Hour), func() (river.JobArgs, *river.InsertOpts) {
				return PruneEventsArgs{Retention: 180 * 24 * time.Hour}, nil
			}, &river.PeriodicJobOpts{RunOnStart: true}),
		},
	})
}
