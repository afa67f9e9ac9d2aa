package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/store"
	"github.com/autopatch/autopatch/internal/testdb"
	"github.com/autopatch/autopatch/jobs"
)

func TestMain(m *testing.M) { testdb.Run(m) }

type noopWorker[T river.JobArgs] struct{ river.WorkerDefaults[T] }

func (noopWorker[T]) Work(context.Context, *river.Job[T]) error { return nil }

type fixture struct {
	t    *testing.T
	pool *pgxpool.Pool
	in   *Ingester
}

// newFixture returns an Ingester with one writer, so that a blocked batch
// makes every later delivery queue for the next one.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	pool := testdb.Pool(t)
	workers := river.NewWorkers()
	river.AddWorker(workers, &noopWorker[jobs.PlanChangeArgs]{})
	river.AddWorker(workers, &noopWorker[jobs.UnwindChangeArgs]{})
	river.AddWorker(workers, &noopWorker[jobs.AssignDevicesArgs]{})
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Workers: workers})
	require.NoError(t, err)
	in := New(pool, client, prometheus.NewRegistry())
	in.slots = make(chan struct{}, 1)
	return &fixture{t: t, pool: pool, in: in}
}

func change(n int, updated time.Time) Delivery {
	c := store.Change{
		Number: fmt.Sprintf("CHG%07d", n), SysID: fmt.Sprintf("%032x", n),
		State: "scheduled", Approval: "approved",
		Start: time.Date(2026, 12, 12, 20, 0, 0, 0, time.UTC), End: time.Date(2026, 12, 14, 6, 0, 0, 0, time.UTC),
		UpdateGroups: []string{"2026-12 Servers"}, SysUpdatedOn: updated,
	}
	return Delivery{
		Event: store.Event{
			ID: uuid.New(), Kind: store.EventChange, EventID: fmt.Sprintf("change_request:%s:%d", c.SysID, updated.Unix()),
			RecordNumber: c.Number, RecordSysID: c.SysID, SysUpdatedOn: updated, Payload: []byte(`{}`),
		},
		Change: &c,
	}
}

var v1 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// block holds the record lock of d until the returned release is called,
// and makes sure a batch holding d is waiting for it.
func (f *fixture) block(d Delivery) (result func() (Result, error), release func()) {
	f.t.Helper()
	ctx := context.Background()
	tx, err := f.pool.Begin(ctx)
	require.NoError(f.t, err)
	var once sync.Once
	release = func() { once.Do(func() { require.NoError(f.t, tx.Rollback(ctx)) }) }
	f.t.Cleanup(release) // before the pool closes, even when the test fails
	_, err = tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", store.RecordKey(d.Event))
	require.NoError(f.t, err)
	var (
		res  Result
		rerr error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		res, rerr = f.in.Ingest(ctx, d)
	}()
	require.Eventually(f.t, func() bool {
		var waiting int
		require.NoError(f.t, f.pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&waiting))
		return waiting == 1
	}, 30*time.Second, 10*time.Millisecond, "the first batch waits for the record lock")
	return func() (Result, error) { <-done; return res, rerr }, release
}

// submit starts Ingest for each delivery, in order, each once the previous
// one is queued, and returns a function waiting for their results.
func (f *fixture) submit(ctx context.Context, ds ...Delivery) func() ([]Result, []error) {
	f.t.Helper()
	results, errs := make([]Result, len(ds)), make([]error, len(ds))
	var wg sync.WaitGroup
	for i, d := range ds {
		before := f.queued()
		wg.Go(func() { results[i], errs[i] = f.in.Ingest(ctx, d) })
		require.Eventually(f.t, func() bool { return f.queued() == before+1 }, 30*time.Second, time.Millisecond)
	}
	return func() ([]Result, []error) { wg.Wait(); return results, errs }
}

func (f *fixture) queued() int {
	f.in.mu.Lock()
	defer f.in.mu.Unlock()
	return len(f.in.queue)
}

func (f *fixture) count(query string, args ...any) int {
	f.t.Helper()
	var n int
	require.NoError(f.t, f.pool.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

// batches returns how many transactions were written and how many
// deliveries they held.
func (f *fixture) batches() (count int, deliveries float64) {
	f.t.Helper()
	ch := make(chan prometheus.Metric, 1)
	f.in.batches.Collect(ch)
	var m dto.Metric
	require.NoError(f.t, (<-ch).Write(&m))
	return int(m.GetHistogram().GetSampleCount()), m.GetHistogram().GetSampleSum()
}

// TestGroupCommit: deliveries that arrive while a transaction is written
// go together into the next one, and each gets its own answer and job.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	first, release := f.block(change(1, v1))
	var ds []Delivery
	for i := range 50 {
		ds = append(ds, change(100+i, v1))
	}
	wait := f.submit(context.Background(), ds...)
	release()

	res, err := first()
	require.NoError(t, err)
	require.Equal(t, store.OutcomeAccepted, res.Status)
	results, errs := wait()
	for i := range ds {
		require.NoError(t, errs[i])
		require.Equal(t, Result{ID: ds[i].Event.ID, Status: store.OutcomeAccepted, Jobs: []string{"plan_change"}}, results[i])
	}
	require.Equal(t, 51, f.count("SELECT count(*) FROM webhook_events WHERE outcome = 'accepted'"))
	require.Equal(t, 51, f.count("SELECT count(*) FROM changes WHERE status = 'planned' AND revision = 1"))
	require.Equal(t, 51, f.count("SELECT count(*) FROM river_job WHERE kind = 'plan_change'"))
	n, sum := f.batches()
	require.Equal(t, 2, n, "one transaction for the first, one for the fifty that waited")
	require.Equal(t, 51.0, sum)
}

// TestSameRecordNeverShareABatch: versions of one change queued together
// are judged one after the other, against each other's outcome.
func TestSameRecordNeverShareABatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	first, release := f.block(change(1, v1))
	newer, older, again := change(2, v1.Add(time.Hour)), change(2, v1), change(2, v1.Add(time.Hour))
	again.Event.ID = uuid.New()
	other := change(3, v1)
	wait := f.submit(context.Background(), newer, older, again, other)
	release()
	_, err := first()
	require.NoError(t, err)
	results, errs := wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, store.OutcomeAccepted, results[0].Status)
	require.Equal(t, store.OutcomeStale, results[1].Status, "older than the version accepted before it")
	require.Equal(t, Result{ID: newer.Event.ID, Status: store.OutcomeDuplicate}, results[2])
	require.Equal(t, store.OutcomeAccepted, results[3].Status)
	require.Equal(t, 1, f.count("SELECT count(*) FROM river_job WHERE kind = 'plan_change' AND args->>'change_number' = 'CHG0000002'"))
	require.Equal(t, 2, f.count("SELECT count(*) FROM webhook_events WHERE record_number = 'CHG0000002'"), "the duplicate is not recorded")
	n, sum := f.batches()
	require.Equal(t, 4, n, "the first; newer with other; older; the duplicate")
	require.Equal(t, 5.0, sum)
}

// TestOneBadDeliveryDoesNotSinkItsBatch: when the database refuses one
// delivery of a batch, the others are still written, one by one.
func TestOneBadDeliveryDoesNotSinkItsBatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	first, release := f.block(change(1, v1))
	good1, bad, good2 := change(2, v1), change(3, v1), change(4, v1)
	bad.Event.Payload = []byte(`not json`) // validated requests never look like this
	wait := f.submit(context.Background(), good1, bad, good2)
	release()
	_, err := first()
	require.NoError(t, err)
	results, errs := wait()
	require.NoError(t, errs[0])
	require.Error(t, errs[1])
	require.NoError(t, errs[2])
	require.Equal(t, store.OutcomeAccepted, results[0].Status)
	require.Equal(t, store.OutcomeAccepted, results[2].Status)
	require.Zero(t, f.count("SELECT count(*) FROM webhook_events WHERE id = $1", bad.Event.ID))
	require.Zero(t, f.count("SELECT count(*) FROM changes WHERE number = 'CHG0000003'"), "nothing of the refused delivery is kept")
	require.Equal(t, 2, f.count("SELECT count(*) FROM river_job WHERE kind = 'plan_change' AND args->>'change_number' IN ('CHG0000002', 'CHG0000004')"))
	n, sum := f.batches()
	require.Equal(t, 5, n, "the first; the three together; each alone")
	require.Equal(t, 7.0, sum)
}

// TestMismatchIsRefusedAlone: a change whose number and sys_id contradict
// a stored one is refused with a MismatchError, and nothing of it is
// recorded; the rest of its batch is.
func TestMismatchIsRefusedAlone(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, err := f.in.Ingest(context.Background(), change(5, v1))
	require.NoError(t, err)

	first, release := f.block(change(1, v1))
	wrong := change(6, v1.Add(time.Hour))
	wrong.Change.Number, wrong.Event.RecordNumber = "CHG0000005", "CHG0000005"
	ok := change(7, v1)
	wait := f.submit(context.Background(), wrong, ok)
	release()
	_, err = first()
	require.NoError(t, err)
	results, errs := wait()
	var mismatch *store.MismatchError
	require.True(t, errors.As(errs[0], &mismatch), "%v", errs[0])
	require.Equal(t, "sys_id", mismatch.Field)
	require.Equal(t, fmt.Sprintf("%032x", 5), mismatch.Known)
	require.NoError(t, errs[1])
	require.Equal(t, store.OutcomeAccepted, results[1].Status)
	require.Zero(t, f.count("SELECT count(*) FROM webhook_events WHERE id = $1", wrong.Event.ID))
}

// TestWithdrawnWhileQueued: a delivery whose sender gave up before a batch
// took it is not written.
func TestWithdrawnWhileQueued(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	first, release := f.block(change(1, v1))
	ctx, cancel := context.WithCancel(context.Background())
	gone := change(2, v1)
	wait := f.submit(ctx, gone)
	cancel()
	require.Eventually(t, func() bool { return f.queued() == 0 }, 30*time.Second, time.Millisecond)
	_, errs := wait()
	require.ErrorIs(t, errs[0], context.Canceled)
	release()
	_, err := first()
	require.NoError(t, err)
	require.Zero(t, f.count("SELECT count(*) FROM webhook_events WHERE id = $1", gone.Event.ID))
}

// TestManyAtOnce: concurrent deliveries with any number of writers: each
// is written once with its job, whatever batches they fell into.
func TestManyAtOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.in.slots = make(chan struct{}, writers)
	var wg sync.WaitGroup
	errs := make([]error, 300)
	for i := range 300 {
		wg.Go(func() {
			// Every third delivery repeats another's version.
			_, errs[i] = f.in.Ingest(context.Background(), change(1000+i%200, v1))
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, 200, f.count("SELECT count(*) FROM webhook_events"))
	require.Equal(t, 200, f.count("SELECT count(*) FROM river_job WHERE kind = 'plan_change'"))
	_, sum := f.batches()
	require.Equal(t, 300.0, sum)
}
