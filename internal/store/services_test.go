package store

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/testdb"
)

func TestServiceMembersAndCounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t)
	_, err := pool.Exec(ctx, `INSERT INTO schedules (name, collection, kind, timezone, definition) VALUES
		('DB', 'Patch - DB', 'automatic', 'UTC', '{}'), ('WEB', 'Patch - WEB', 'automatic', 'UTC', '{}')`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO devices (name, schedule_name, service, tier) VALUES
		('SQL01', 'DB', 'Payroll', 'backend'),
		('sql02', 'DB', ' payroll ', 'backend'),
		('WEB01', 'WEB', 'PAYROLL', 'frontend'),
		('HR01', 'WEB', 'HR', 'frontend'),
		('HR02', 'DB', 'HR', 'backend'),
		('LOOSE', NULL, NULL, NULL)`)
	require.NoError(t, err)

	names := func(ms []ServiceMember) []string {
		out := []string{}
		for _, m := range ms {
			out = append(out, m.Device)
		}
		return out
	}
	got, err := ServiceMembers(ctx, pool, []string{"payroll"}, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"SQL01", "sql02", "WEB01"}, names(got), "one service whatever the case and blanks; by tier")
	require.Equal(t, ServiceMember{Device: "WEB01", Service: "PAYROLL", Tier: "frontend", Schedule: "WEB"}, got[2])

	got, err = ServiceMembers(ctx, pool, []string{"nobody"}, []string{"hr01", "loose"})
	require.NoError(t, err)
	require.Equal(t, []string{"HR01"}, names(got), "named devices of any service; unmanaged ones left out")

	counts, err := ServiceCounts(ctx, pool)
	require.NoError(t, err)
	require.ElementsMatch(t, []ServiceCount{
		{" payroll ", "backend", "DB", 1},
		{"HR", "backend", "DB", 1},
		{"HR", "frontend", "WEB", 1},
		{"PAYROLL", "frontend", "WEB", 1},
		{"Payroll", "backend", "DB", 1},
	}, counts)
}

func TestLockServices(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t)
	held := func(key string) bool {
		conn, err := pool.Acquire(ctx)
		require.NoError(t, err)
		defer conn.Release()
		var got bool
		require.NoError(t, conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended('autopatch:service:' || $1, 0))`, key).Scan(&got))
		if got {
			_, err := conn.Exec(ctx, `SELECT pg_advisory_unlock_all()`)
			require.NoError(t, err)
		}
		return !got
	}
	unlock, err := LockServices(ctx, pool, []string{"payroll", "hr", "payroll"})
	require.NoError(t, err)
	require.True(t, held("payroll"))
	require.True(t, held("hr"))
	require.False(t, held("web"))
	unlock()
	require.False(t, held("payroll"))
	require.False(t, held("hr"))
}
