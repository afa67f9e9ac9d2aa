package replica

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/store"
	"github.com/autopatch/autopatch/internal/testdb"
	"github.com/autopatch/autopatch/migrations"
)

func TestMain(m *testing.M) { testdb.Run(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// runningJob inserts a job as a killed process leaves it: running, its last
// attempt by client.
func runningJob(t *testing.T, pool *pgxpool.Pool, client string, attempt, maxAttempts int) int64 {
	t.Helper()
	var id int64
	require.NoError(t, pool.QueryRow(context.Background(), `INSERT INTO river_job
		(args, kind, max_attempts, queue, state, attempt, attempted_at, attempted_by, scheduled_at)
		VALUES ('{}', 'plan_change', $3, 'default', 'running', $2, now(), ARRAY['earlier', $1], now())
		RETURNING id`, client, attempt, maxAttempts).Scan(&id))
	return id
}

func jobState(t *testing.T, pool *pgxpool.Pool, id int64) string {
	t.Helper()
	var s string
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT state::text FROM river_job WHERE id = $1`, id).Scan(&s))
	return s
}

// kill stands for a SIGKILL: the lock's connection closes, and the
// heartbeat is as old as it would be DeadAfterLockLost later.
func kill(t *testing.T, pool *pgxpool.Pool, r *Replica) {
	t.Helper()
	require.NoError(t, r.conn.Close(context.Background()))
	_, err := pool.Exec(context.Background(), `UPDATE replicas SET seen_at = now() - make_interval(secs => $2) WHERE client_id = $1`,
		r.ID, DeadAfterLockLost.Seconds()+1)
	require.NoError(t, err)
	// The server drops the lock when the backend behind the closed
	// connection exits, a moment after the client has closed it.
	require.Eventually(t, func() bool {
		var held bool
		err := pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_locks
			WHERE locktype = 'advisory' AND granted AND classid = $1 AND objid::bigint = $2 AND objsubid = 2
			  AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))`,
			lockClass, r.key).Scan(&held)
		return err == nil && !held
	}, 10*time.Second, 5*time.Millisecond, "the killed replica's lock is released")
}

func TestRescue(t *testing.T) {
	t.Parallel()

	t.Run("JobsOfAKilledReplicaAreAvailableAtOnce", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		pool := testdb.Pool(t)
		rescued := 0
		a, err := Register(ctx, pool, "a", quiet, Options{})
		require.NoError(t, err)
		b, err := Register(ctx, pool, "b", quiet, Options{OnRescue: func(n int) { rescued += n }})
		require.NoError(t, err)
		t.Cleanup(b.deregister)

		jobA := runningJob(t, pool, "a", 1, 25)
		jobB := runningJob(t, pool, "b", 1, 25)
		spent := runningJob(t, pool, "a", 25, 25)

		n, err := b.Rescue(ctx)
		require.NoError(t, err)
		require.Zero(t, n, "a live replica's jobs are never taken over")
		require.Equal(t, "running", jobState(t, pool, jobA))

		kill(t, pool, a)
		n, err = b.Rescue(ctx)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		require.Equal(t, 2, rescued)
		require.Equal(t, "available", jobState(t, pool, jobA))
		require.Equal(t, "discarded", jobState(t, pool, spent), "out of attempts, as River's rescuer would")
		require.Equal(t, "running", jobState(t, pool, jobB), "the survivor's own job is untouched")

		var left int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM replicas WHERE client_id = 'a'`).Scan(&left))
		require.Zero(t, left, "the dead replica is removed once its jobs are taken over")
	})

	t.Run("LockLostBrieflyIsNotDeath", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		pool := testdb.Pool(t)
		a, err := Register(ctx, pool, "a", quiet, Options{})
		require.NoError(t, err)
		b, err := Register(ctx, pool, "b", quiet, Options{})
		require.NoError(t, err)
		t.Cleanup(b.deregister)
		job := runningJob(t, pool, "a", 1, 25)

		// PostgreSQL restarted under a live replica: its lock is gone, its
		// heartbeat is fresh; it will lock again on its next beat.
		require.NoError(t, a.conn.Close(ctx))
		n, err := b.Rescue(ctx)
		require.NoError(t, err)
		require.Zero(t, n)
		a.beat(ctx)
		require.False(t, a.conn.IsClosed(), "the beat reconnects and locks again")
		dead, err := Dead(ctx, pool, "b")
		require.NoError(t, err)
		require.Empty(t, dead)
		require.Equal(t, "running", jobState(t, pool, job))
		a.deregister()
	})

	t.Run("SilentHeartbeatIsDeathEvenWithTheLock", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		pool := testdb.Pool(t)
		a, err := Register(ctx, pool, "a", quiet, Options{})
		require.NoError(t, err)
		t.Cleanup(a.deregister)
		_, err = pool.Exec(ctx, `UPDATE replicas SET seen_at = now() - make_interval(secs => $1) WHERE client_id = 'a'`,
			HeartbeatTimeout.Seconds()+1)
		require.NoError(t, err)
		dead, err := Dead(ctx, pool, "b")
		require.NoError(t, err)
		require.Equal(t, []string{"a"}, dead)
	})

	t.Run("RealProcessKill", func(t *testing.T) {
		// The lock really goes with the connection: a child process
		// registers, is SIGKILLed, and is seen dead DeadAfterLockLost later.
		t.Parallel()
		ctx := context.Background()
		pool := testdb.Pool(t)
		b, err := Register(ctx, pool, "b", quiet, Options{})
		require.NoError(t, err)
		t.Cleanup(b.deregister)
		child := startChild(t, pool.Config().ConnString())
		waitRegistered(t, pool, "child")
		require.NoError(t, child.Process.Kill())
		_, _ = child.Process.Wait()
		job := runningJob(t, pool, "child", 1, 25)
		start := time.Now()
		for {
			n, err := b.Rescue(ctx)
			require.NoError(t, err)
			if n == 1 {
				break
			}
			require.Less(t, time.Since(start), time.Minute, "the killed replica was never seen dead")
			time.Sleep(100 * time.Millisecond)
		}
		require.Equal(t, "available", jobState(t, pool, job))
		t.Logf("killed replica's job taken over %s after the kill", time.Since(start).Round(time.Millisecond))
	})
}

func waitRegistered(t *testing.T, pool *pgxpool.Pool, id string) {
	t.Helper()
	for start := time.Now(); time.Since(start) < time.Minute; time.Sleep(50 * time.Millisecond) {
		var n int
		require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM replicas WHERE client_id = $1`, id).Scan(&n))
		if n == 1 {
			return
		}
	}
	t.Fatalf("%s never registered", id)
}

// TestRescueTenants: with tenants (internal/tenants), the registry stays in
// the registry pool's schema and a dead replica's jobs are taken over in
// every tenant's schema, each counted to its own tenant.
func TestRescueTenants(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.URL(t)
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	schemas := []string{"tenant_acme", "tenant_contoso"}
	var tenantPools []*pgxpool.Pool
	for _, schema := range schemas {
		st, err := store.OpenSchema(ctx, url, "replica test", schema)
		require.NoError(t, err)
		t.Cleanup(st.Close)
		require.NoError(t, migrations.ApplySchema(ctx, st.Pool, schema, quiet))
		tenantPools = append(tenantPools, st.Pool)
	}
	rescued := map[string]int{}
	opts := Options{OnRescue: func(n int) { rescued["public"] += n }}
	for i, p := range tenantPools {
		opts.Tenants = append(opts.Tenants, Jobs{Pool: p, OnRescue: func(n int) { rescued[schemas[i]] += n }})
	}
	a, err := Register(ctx, pool, "a", quiet, Options{})
	require.NoError(t, err)
	b, err := Register(ctx, pool, "b", quiet, opts)
	require.NoError(t, err)
	t.Cleanup(b.deregister)

	public := runningJob(t, pool, "a", 1, 25)
	acme := runningJob(t, tenantPools[0], "a", 1, 25)
	contoso := runningJob(t, tenantPools[1], "a", 1, 25)
	contosoOwn := runningJob(t, tenantPools[1], "b", 1, 25)

	kill(t, pool, a)
	n, err := b.Rescue(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	require.Equal(t, map[string]int{"public": 1, "tenant_acme": 1, "tenant_contoso": 1}, rescued)
	require.Equal(t, "available", jobState(t, pool, public))
	require.Equal(t, "available", jobState(t, tenantPools[0], acme))
	require.Equal(t, "available", jobState(t, tenantPools[1], contoso))
	require.Equal(t, "running", jobState(t, tenantPools[1], contosoOwn), "the survivor's own job is untouched")
	var left int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM replicas WHERE client_id = 'a'`).Scan(&left))
	require.Zero(t, left, "the dead replica is removed once its jobs are taken over in every schema")
}
