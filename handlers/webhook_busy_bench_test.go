package handlers

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/store"
	"github.com/autopatch/autopatch/internal/testdb"
	"github.com/autopatch/autopatch/jobs"
)

// planLikeWorker stands in for plan_change while a burst arrives: one
// transaction that locks the change, reads it and writes it, as planning
// does (without the calendar and the SCCM call that follows).
type planLikeWorker struct {
	river.WorkerDefaults[jobs.PlanChangeArgs]
	pool   *pgxpool.Pool
	worked *atomic.Int64
}

func (w *planLikeWorker) Work(ctx context.Context, job *river.Job[jobs.PlanChangeArgs]) error {
	err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT 1 FROM changes WHERE number = $1 FOR UPDATE`, job.Args.ChangeNumber); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE changes SET updated_at = now() WHERE number = $1`, job.Args.ChangeNumber)
		return err
	})
	w.worked.Add(1)
	return err
}

// BenchmarkWebhookIngestWorkersBusy is BenchmarkWebhookIngest with a River
// client working what the burst enqueues on the same pool, as serve does:
// the default queue's 10 workers run a plan-like transaction per
// accepted change while the clients post (issue #19: where ingest's time
// goes under mixed load). It reports the jobs worked per second beside
// the ingest figures.
func BenchmarkWebhookIngestWorkersBusy(b *testing.B) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(testdb.URL(b))
	require.NoError(b, err)
	cfg.MaxConns = store.DefaultMaxConns // as serve runs it
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(b, err)
	b.Cleanup(pool.Close)
	bundle := setupPool(b, pool, &WebhookAuth{Secret: testSecret})

	var worked atomic.Int64
	workers := river.NewWorkers()
	river.AddWorker(workers, &planLikeWorker{pool: pool, worked: &worked})
	river.AddWorker(workers, &noopWorker[jobs.UnwindChangeArgs]{})
	river.AddWorker(workers, &noopWorker[jobs.AssignDevicesArgs]{})
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Workers: workers, Queues: map[string]river.QueueConfig{jobs.QueueDefault: {MaxWorkers: 10}},
	})
	require.NoError(b, err)
	require.NoError(b, client.Start(ctx))
	b.Cleanup(func() {
		stop, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = client.Stop(stop)
	})

	start, before := time.Now(), worked.Load()
	warmed := postAll(b, bundle.server.URL, bundle.now, http.StatusAccepted)
	b.ReportMetric(float64(worked.Load()-before)/time.Since(start).Seconds(), "jobs_worked/s")
	b.ReportMetric(bundle.meanBatch(b), "per_tx")
	require.Equal(b, b.N+warmed, bundle.events(b))
}
