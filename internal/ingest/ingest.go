// Package ingest records accepted webhook deliveries and enqueues their
// River jobs, many deliveries per transaction.
//
// Each delivery is judged under its record's lock against everything
// committed before (duplicate, stale, what a change asks for) and recorded
// with its jobs in the same transaction: either both happen or neither. The
// deliveries waiting while a transaction runs go together into the next one
// (group commit), so a burst costs a few statements per batch instead of
// seven per delivery, and nobody waits for a timer: a lone delivery is
// written at once.
package ingest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/autopatch/autopatch/internal/store"
	"github.com/autopatch/autopatch/jobs"
)

// JobInserter enqueues River jobs inside a caller's transaction; a
// *river.Client[pgx.Tx] is one.
type JobInserter interface {
	InsertManyTx(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
}

// Delivery is an authenticated, validated webhook delivery.
type Delivery struct {
	Event store.Event
	// Change is the change a change delivery describes; nil for a
	// schedule request.
	Change *store.Change
	// Deferral is the deferral a deferral delivery asks for; nil for the
	// others. It is recorded with the delivery, and its work notes (on the
	// change and on the request item) enqueued, in one transaction.
	Deferral *store.Deferral
}

// Result is what became of a delivery.
type Result struct {
	// ID is the recorded delivery's id; for a duplicate, the first one's.
	ID uuid.UUID
	// Status is store.OutcomeAccepted, OutcomeStale or OutcomeDuplicate.
	Status string
	// Jobs are the kinds of the jobs enqueued.
	Jobs []string
}

const (
	// maxBatch bounds one transaction: its statements stay small and one
	// slow batch holds few deliveries.
	maxBatch = 256
	// writers is how many transactions run at once: while one waits for
	// PostgreSQL, the next batch gathers and starts.
	writers = 2
	// batchTimeout bounds one transaction, whoever asked for it.
	batchTimeout = 30 * time.Second
)

// Ingester writes deliveries. Its zero value is not usable: use New.
type Ingester struct {
	pool    *pgxpool.Pool
	jobs    JobInserter
	slots   chan struct{}
	batches prometheus.Histogram

	mu    sync.Mutex
	queue []*pending
}

// New returns an Ingester writing to pool and enqueueing with jobs; its
// batch sizes are registered with reg.
func New(pool *pgxpool.Pool, jobs JobInserter, reg prometheus.Registerer) *Ingester {
	batches := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "autopatch_webhook_batch_deliveries",
		Help:    "Webhook deliveries written per transaction (deliveries that arrive while one is written share the next).",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
	})
	reg.MustRegister(batches)
	return &Ingester{pool: pool, jobs: jobs, slots: make(chan struct{}, writers), batches: batches}
}

type pending struct {
	d     Delivery
	keys  []string // what no other delivery of its batch may share
	taken bool     // in a batch (under Ingester.mu)
	done  chan struct{}
	res   Result
	err   error
}

// Ingest records d and enqueues its jobs, or says why not: a
// *store.MismatchError when a change's number and sys_id disagree with a
// stored change (nothing is recorded), another error when the database
// failed (nothing is recorded either; the sender retries).
//
// There is no writer goroutine: a caller whose delivery waits takes a free
// writer slot and writes the queue, its own delivery and whatever else is
// waiting, then returns once its own is written.
func (in *Ingester) Ingest(ctx context.Context, d Delivery) (Result, error) {
	p := &pending{d: d, keys: batchKeys(d), done: make(chan struct{})}
	in.mu.Lock()
	in.queue = append(in.queue, p)
	in.mu.Unlock()
	for {
		select {
		case <-p.done: // written by another caller's batch
			return p.res, p.err
		default:
		}
		select {
		case <-p.done:
			return p.res, p.err
		case in.slots <- struct{}{}:
			batch := in.take()
			if len(batch) > 0 {
				in.write(batch)
			}
			<-in.slots
			if len(batch) == 0 {
				// Nothing was queued, so another caller's batch has
				// this delivery: wait for it instead of spinning.
				<-p.done
				return p.res, p.err
			}
		case <-ctx.Done():
			if in.withdraw(p) {
				return Result{}, ctx.Err()
			}
			// Already being written: its outcome is decided by the
			// batch, so wait for it rather than report a guess.
			<-p.done
			return p.res, p.err
		}
	}
}

// batchKeys are the record, change number and event id of d: two
// deliveries sharing one are never in one batch, so each is judged
// against the other's committed outcome.
func batchKeys(d Delivery) []string {
	ev := d.Event
	keys := []string{store.RecordKey(ev), ev.Kind + ":number:" + ev.RecordNumber}
	if ev.EventID != "" {
		keys = append(keys, ev.Kind+":event:"+ev.EventID)
	}
	return keys
}

// take removes from the queue, in arrival order, up to maxBatch deliveries
// that share no key; the others wait for the next batch.
func (in *Ingester) take() []*pending {
	in.mu.Lock()
	defer in.mu.Unlock()
	var (
		batch []*pending
		rest  []*pending
		used  = map[string]bool{}
	)
	for _, p := range in.queue {
		if len(batch) == maxBatch || anyUsed(used, p.keys) {
			rest = append(rest, p)
			continue
		}
		for _, k := range p.keys {
			used[k] = true
		}
		p.taken = true
		batch = append(batch, p)
	}
	in.queue = rest
	return batch
}

func anyUsed(used map[string]bool, keys []string) bool {
	for _, k := range keys {
		if used[k] {
			return true
		}
	}
	return false
}

// withdraw removes p from the queue; false if a batch has it already.
func (in *Ingester) withdraw(p *pending) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if p.taken {
		return false
	}
	for i, q := range in.queue {
		if q == p {
			in.queue = append(in.queue[:i], in.queue[i+1:]...)
			break
		}
	}
	return true
}

// write writes a batch and answers its deliveries. When the transaction
// fails, each delivery is tried alone, so one that the database refuses
// does not take the others down with it.
func (in *Ingester) write(batch []*pending) {
	in.batches.Observe(float64(len(batch)))
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	err := pgx.BeginFunc(ctx, in.pool, func(tx pgx.Tx) error { return in.writeTx(ctx, tx, batch) })
	if err != nil && len(batch) > 1 {
		for _, p := range batch {
			in.write([]*pending{p})
		}
		return
	}
	for _, p := range batch {
		if err != nil {
			p.res, p.err = Result{}, err
		}
		close(p.done)
	}
}

// writeTx judges and records a batch in tx; the answers go into the
// pendings (and count only if tx commits).
func (in *Ingester) writeTx(ctx context.Context, tx pgx.Tx, batch []*pending) error {
	evs := make([]store.Event, len(batch))
	var numbers, sysIDs []string
	for i, p := range batch {
		evs[i] = p.d.Event
		if c := p.d.Change; c != nil {
			numbers, sysIDs = append(numbers, c.Number), append(sysIDs, c.SysID)
		}
	}
	prior, stored, err := store.ReadDeliveries(ctx, tx, evs, numbers, sysIDs)
	if err != nil {
		return err
	}

	var (
		record    []store.Event
		outcomes  []string
		saves     []store.ChangeRow
		deferrals []*pending
		enqueue   []river.InsertManyParams
	)
	for i, p := range batch {
		p.res, p.err = Result{ID: p.d.Event.ID}, nil
		if prior[i].Duplicate != uuid.Nil {
			p.res = Result{ID: prior[i].Duplicate, Status: store.OutcomeDuplicate}
			continue
		}
		p.res.Status = store.OutcomeAccepted
		if prior[i].Stale(p.d.Event.SysUpdatedOn) {
			p.res.Status = store.OutcomeStale
		} else {
			args, save, stale, err := judge(p.d, stored)
			if err != nil {
				p.err = err // refused: nothing recorded
				continue
			}
			if stale {
				p.res.Status = store.OutcomeStale
			}
			if save != nil {
				saves = append(saves, *save)
			}
			if p.d.Deferral != nil {
				deferrals = append(deferrals, p)
			}
			for _, a := range args {
				enqueue = append(enqueue, river.InsertManyParams{Args: a})
				p.res.Jobs = append(p.res.Jobs, a.Kind())
			}
		}
		record = append(record, p.d.Event)
		outcomes = append(outcomes, p.res.Status)
	}
	if err := store.WriteDeliveries(ctx, tx, record, outcomes, saves); err != nil {
		return err
	}
	for _, p := range deferrals {
		if err := store.WriteDeferral(ctx, tx, p.d.Event.ID, *p.d.Deferral); err != nil {
			return err
		}
	}
	if len(enqueue) > 0 {
		if _, err := in.jobs.InsertManyTx(ctx, tx, enqueue); err != nil {
			return fmt.Errorf("ingest: enqueue %d job(s): %w", len(enqueue), err)
		}
	}
	return nil
}

// judge decides what a current delivery asks for: the jobs to enqueue, the
// change version to store, or that the stored change itself is newer
// (stale). The revision in a change job's args makes each version its own
// job: one that arrives while an older one runs is not swallowed by River's
// uniqueness, and the older job, finding a newer revision on the row,
// leaves the work to it.
func judge(d Delivery, stored []store.ChangeRow) (args []river.JobArgs, save *store.ChangeRow, stale bool, err error) {
	if d.Deferral != nil {
		return jobs.DeferralJobs(*d.Deferral), nil, false, nil
	}
	if d.Change == nil {
		return []river.JobArgs{jobs.AssignDevicesArgs{EventID: d.Event.ID}}, nil, false, nil
	}
	c := *d.Change
	prev, err := store.MatchChange(stored, c)
	if err != nil {
		return nil, nil, false, err
	}
	dec := store.DecideChange(prev, c)
	if dec.Stale {
		return nil, nil, true, nil
	}
	save = &store.ChangeRow{Change: c, Status: dec.Status, Revision: dec.Revision}
	switch dec.Action {
	case store.ActionPlan:
		args = []river.JobArgs{jobs.PlanChangeArgs{ChangeNumber: c.Number, Revision: dec.Revision}}
	case store.ActionUnwind:
		args = []river.JobArgs{jobs.UnwindChangeArgs{ChangeNumber: c.Number, Revision: dec.Revision}}
	}
	// On hold changed: hold or release the change's windows (issue #16).
	// Not a revision of the plan: a plan or unwind in flight stays valid.
	if c.OnHold != (prev != nil && prev.OnHold) {
		args = append(args, jobs.HoldChangeArgs{ChangeNumber: c.Number, Pause: true,
			Key: c.SysUpdatedOn.UTC().Format(time.RFC3339Nano)})
	}
	return args, save, false, nil
}
