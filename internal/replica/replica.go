// Package replica makes a second serve process a failover in seconds.
//
// Every process registers a row in replicas and holds a session advisory
// lock on a connection of its own while it lives. Every process also looks,
// once a second, for replicas that are gone — their lock is no longer held
// (the connection died with the process) and their heartbeat has stopped, or
// their heartbeat is long overdue (a host that vanished without closing its
// socket) — and makes the River jobs they were running available again at
// once, through River's own driver call (JobRescueMany, the call River's
// stuck-job rescuer makes). River's own rescuer would wait
// RescueStuckJobsAfter (minutes, because a live replica's SCCM call may take
// that long and must not be run twice).
//
// Taking over a job never doubles an action: the jobs re-read and lock the
// rows they act on, and a dead process's transactions were rolled back with
// its connections.
package replica

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
)

// lockClass is the first key of every replica's advisory lock ("AP").
const lockClass = 16720

// Timing of liveness. A replica whose lock is gone is taken for dead once
// its heartbeat is DeadAfterLockLost old: long enough for a live replica to
// reconnect and lock again after PostgreSQL itself restarted, short enough
// that a killed replica's jobs come back within seconds. A replica that
// still holds its lock but has not beaten for HeartbeatTimeout is dead too.
const (
	Heartbeat         = time.Second
	DeadAfterLockLost = 3 * time.Second
	HeartbeatTimeout  = 30 * time.Second
)

// Options configure a Replica.
type Options struct {
	// OnRescue is told how many jobs were taken over from dead replicas.
	OnRescue func(n int)
	// Tenants are the River schemas of the tenants served (internal/tenants)
	// besides the registry's own: a dead replica ran jobs in every one of
	// them, and every one is searched for them. The registry itself stays
	// one per database, in the schema of the pool given to Register.
	Tenants []Jobs
}

// Jobs is one schema's River jobs: a pool whose search_path is the schema.
type Jobs struct {
	Pool *pgxpool.Pool
	// OnRescue is told how many of the schema's jobs were taken over.
	OnRescue func(n int)
}

// Replica is this process's registration.
type Replica struct {
	ID     string
	pool   *pgxpool.Pool
	logger *slog.Logger
	opts   Options

	conn *pgx.Conn // holds the advisory lock; only Run's goroutine uses it
	key  int32
}

// NewID makes a client ID for River and the replicas table: host, pid and
// time, so a log line says which process it was.
func NewID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d-%d", host, os.Getpid(), time.Now().UnixMilli())
}

// Register records the process and takes its lock. The row becomes visible
// to the others only with the lock already held, so no survivor ever takes a
// starting replica for a dead one.
func Register(ctx context.Context, pool *pgxpool.Pool, id string, logger *slog.Logger, opts Options) (*Replica, error) {
	r := &Replica{ID: id, pool: pool, logger: logger, opts: opts}
	if err := r.connect(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Replica) connect(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, r.pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("replica: connect: %w", err)
	}
	host, _ := os.Hostname()
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO replicas (client_id, host, pid) VALUES ($1, $2, $3)
			ON CONFLICT (client_id) DO UPDATE SET seen_at = now()
			RETURNING lock_key`, r.ID, host, os.Getpid()).Scan(&r.key); err != nil {
			return err
		}
		// A session lock taken inside a transaction outlives its commit.
		_, err := tx.Exec(ctx, `SELECT pg_advisory_lock($1, $2)`, lockClass, r.key)
		return err
	})
	if err != nil {
		conn.Close(context.Background())
		return fmt.Errorf("replica: register %s: %w", r.ID, err)
	}
	r.conn = conn
	return nil
}

// Run beats the heartbeat and takes over the jobs of dead replicas until ctx
// ends, then removes the registration (a graceful stop has finished its jobs).
func (r *Replica) Run(ctx context.Context) {
	t := time.NewTicker(Heartbeat)
	defer t.Stop()
	for {
		r.beat(ctx)
		if n, err := r.Rescue(ctx); err != nil && ctx.Err() == nil {
			r.logger.WarnContext(ctx, "looking for dead replicas failed", "error", err)
		} else if n > 0 {
			r.logger.WarnContext(ctx, "took over the jobs of a stopped replica", "jobs", n)
		}
		select {
		case <-ctx.Done():
			r.deregister()
			return
		case <-t.C:
		}
	}
}

// beat updates seen_at, reconnecting (and locking again) when the lock's
// connection was lost, e.g. to a PostgreSQL restart.
func (r *Replica) beat(ctx context.Context) {
	if r.conn == nil || r.conn.IsClosed() {
		if err := r.connect(ctx); err != nil {
			if ctx.Err() == nil {
				r.logger.WarnContext(ctx, "replica registration lost; reconnecting", "error", err)
			}
			return
		}
	}
	cctx, cancel := context.WithTimeout(ctx, Heartbeat)
	defer cancel()
	if _, err := r.conn.Exec(cctx, `UPDATE replicas SET seen_at = now() WHERE client_id = $1`, r.ID); err != nil {
		r.conn.Close(context.Background())
		r.conn = nil
	}
}

func (r *Replica) deregister() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.pool.Exec(ctx, `DELETE FROM replicas WHERE client_id = $1`, r.ID); err != nil {
		r.logger.Warn("removing the replica registration failed", "error", err)
	}
	if r.conn != nil {
		r.conn.Close(ctx)
	}
}

// Dead lists the replicas that are gone, as of now.
func Dead(ctx context.Context, db interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, self string) ([]string, error) {
	rows, err := db.Query(ctx, `SELECT r.client_id FROM replicas r
		WHERE r.client_id <> $1
		  AND (r.seen_at < now() - make_interval(secs => $3)
		       OR (r.seen_at < now() - make_interval(secs => $2)
		           AND NOT EXISTS (SELECT 1 FROM pg_locks l
		                WHERE l.locktype = 'advisory' AND l.granted
		                  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		                  AND l.classid = $4 AND l.objid::bigint = r.lock_key AND l.objsubid = 2)))`,
		self, DeadAfterLockLost.Seconds(), HeartbeatTimeout.Seconds(), lockClass)
	if err != nil {
		return nil, fmt.Errorf("replica: dead replicas: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Rescue makes the running jobs of dead replicas available now and removes
// those replicas. The jobs are locked while they are rescued, so two
// survivors never both rescue one job, and a job a survivor has started
// again since is never touched (its last attempt is the survivor's).
//
// The tenants' schemas are rescued first, each in its own transaction; the
// dead replicas are removed with the registry's own jobs only after all of
// them succeeded, so a failed schema is searched again at the next beat.
func (r *Replica) Rescue(ctx context.Context) (int, error) {
	dead, err := Dead(ctx, r.pool, r.ID)
	if err != nil || len(dead) == 0 {
		return 0, err
	}
	var total int
	for _, t := range r.opts.Tenants {
		var n int
		err := pgx.BeginFunc(ctx, t.Pool, func(tx pgx.Tx) (err error) {
			n, err = r.rescueJobs(ctx, t.Pool, tx, dead)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("replica: rescue: %w", err)
		}
		if n > 0 && t.OnRescue != nil {
			t.OnRescue(n)
		}
		total += n
	}
	var n int
	err = pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) (err error) {
		if n, err = r.rescueJobs(ctx, r.pool, tx, dead); err != nil {
			return err
		}
		for _, id := range dead {
			r.logger.WarnContext(ctx, "replica stopped; taking over its jobs", "replica", id)
		}
		_, err = tx.Exec(ctx, `DELETE FROM replicas WHERE client_id = ANY($1)`, dead)
		return err
	})
	if err != nil {
		return total, fmt.Errorf("replica: rescue: %w", err)
	}
	if n > 0 && r.opts.OnRescue != nil {
		r.opts.OnRescue(n)
	}
	return total + n, nil
}

// rescueJobs makes the running jobs of the dead replicas in the schema of
// pool available, in tx, and returns how many.
func (r *Replica) rescueJobs(ctx context.Context, pool *pgxpool.Pool, tx pgx.Tx, dead []string) (int, error) {
	rows, err := tx.Query(ctx, `SELECT id, attempt, max_attempts, attempted_by[array_length(attempted_by, 1)]
			FROM river_job
			WHERE state = 'running' AND attempted_by[array_length(attempted_by, 1)] = ANY($1)
			ORDER BY id FOR UPDATE`, dead)
	if err != nil {
		return 0, err
	}
	type stuck struct {
		id                   int64
		attempt, maxAttempts int
		by                   string
	}
	jobs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (stuck, error) {
		var s stuck
		return s, row.Scan(&s.id, &s.attempt, &s.maxAttempts, &s.by)
	})
	if err != nil || len(jobs) == 0 {
		return 0, err
	}
	now := time.Now().UTC()
	params := &riverdriver.JobRescueManyParams{StuckHorizon: now.Add(time.Second)}
	for _, j := range jobs {
		e, err := json.Marshal(rivertype.AttemptError{At: now, Attempt: j.attempt,
			Error: "autopatch: replica " + j.by + " stopped while running this job; taken over by " + r.ID})
		if err != nil {
			return 0, err
		}
		// Available at once, not retryable: a retryable job waits for
		// the leader's scheduler, and the dead replica may have been the
		// leader. A job out of attempts is discarded as River would.
		state, finalized := rivertype.JobStateAvailable, (*time.Time)(nil)
		if j.attempt >= j.maxAttempts {
			state, finalized = rivertype.JobStateDiscarded, &now
		}
		params.ID = append(params.ID, j.id)
		params.Error = append(params.Error, e)
		params.FinalizedAt = append(params.FinalizedAt, finalized)
		params.ScheduledAt = append(params.ScheduledAt, now)
		params.State = append(params.State, string(state))
	}
	if _, err := riverpgxv5.New(pool).UnwrapExecutor(tx).JobRescueMany(ctx, params); err != nil {
		return 0, fmt.Errorf("rescue jobs: %w", err)
	}
	return len(jobs), nil
}
