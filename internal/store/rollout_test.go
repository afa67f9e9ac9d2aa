package store

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/testdb"
)

// TestBudgetCounts: the budget counts the device failures of windows that
// closed at their end and have not recovered, among the devices SCCM
// reported for those windows; an open window, a window closed early and a
// recovered device do not count.
func TestBudgetCounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t)
	t0 := time.Date(2026, 12, 12, 2, 0, 0, 0, time.UTC)
	_, err := pool.Exec(ctx, `
		INSERT INTO schedules (name, collection, kind, timezone, definition) VALUES
			('A', 'Patch - A', 'automatic', 'UTC', '{}'), ('B', 'Patch - B', 'automatic', 'UTC', '{}'),
			('C', 'Patch - C', 'automatic', 'UTC', '{}'), ('D', 'Patch - D', 'automatic', 'UTC', '{}');
		INSERT INTO changes (number, sys_id, state, approval, start_at, end_at, update_groups, status)
			VALUES ('CHG0031234', 'c0ffee', 'scheduled', 'approved', '2026-12-12 02:00Z'::timestamptz, '2026-12-12 02:00Z'::timestamptz + interval '1 day', '{"G"}', 'planned');
		-- A closed at its end; B open; C closed early (canceled); D closed at its end.
		INSERT INTO deployments (change_number, schedule_name, update_group, name, collection, window_start, window_end, close_at, state) VALUES
			('CHG0031234', 'A', 'G', 'AP-A', 'Patch - A', '2026-12-12 02:00Z'::timestamptz, '2026-12-12 02:00Z'::timestamptz + interval '4 hours', '2026-12-12 02:00Z'::timestamptz + interval '4 hours', 'closed'),
			('CHG0031234', 'B', 'G', 'AP-B', 'Patch - B', '2026-12-12 02:00Z'::timestamptz + interval '5 hours', '2026-12-12 02:00Z'::timestamptz + interval '9 hours', '2026-12-12 02:00Z'::timestamptz + interval '9 hours', 'open'),
			('CHG0031234', 'C', 'G', 'AP-C', 'Patch - C', '2026-12-12 02:00Z'::timestamptz, '2026-12-12 02:00Z'::timestamptz + interval '4 hours', '2026-12-12 02:00Z'::timestamptz + interval '1 hour', 'closed'),
			('CHG0031234', 'D', 'G', 'AP-D', 'Patch - D', '2026-12-12 02:00Z'::timestamptz + interval '1 hour', '2026-12-12 02:00Z'::timestamptz + interval '3 hours', '2026-12-12 02:00Z'::timestamptz + interval '3 hours', 'closed');
		INSERT INTO device_results (deployment_id, device_name, status_type, observed_at)
		SELECT d.id, v.dev, v.st, now() FROM deployments d JOIN (VALUES
			('AP-A', 'SQL01', 5), ('AP-A', 'SQL02', 4), ('AP-A', 'SQL03', 1), ('AP-A', 'SQL04', 1),
			('AP-B', 'APP01', 5), ('AP-C', 'WEB01', 5), ('AP-D', 'sql01', 5), ('AP-D', 'WEB02', 1)) AS v(name, dev, st) ON v.name = d.name;
		INSERT INTO devices (name, schedule_name, service, tier) VALUES ('SQL01', 'A', 'Payroll', 'backend');
	`)
	require.NoError(t, err)
	fail := func(subject, kind, deployment string, recovered bool) {
		var recoveredAt *time.Time
		if recovered {
			recoveredAt = &t0
		}
		_, err := pool.Exec(ctx, `INSERT INTO failures (change_number, subject, kind, deployment_id, correlation_id, recovered_at)
			SELECT 'CHG0031234', $1, $2, id, 'autopatch:CHG0031234:' || $1, $4 FROM deployments WHERE name = $3`,
			subject, kind, deployment, recoveredAt)
		require.NoError(t, err)
	}
	fail("SQL01", "error", "AP-A", false)
	fail("SQL02", "no_status", "AP-A", false)
	fail("SQL03", "error", "AP-A", true)  // recovered since
	fail("APP01", "error", "AP-B", false) // window still open
	fail("WEB01", "error", "AP-C", false) // closed early
	fail("WEB02", "error", "AP-D", false)

	failures, devices, err := BudgetCounts(ctx, pool, "CHG0031234")
	require.NoError(t, err)
	var names []string
	for _, f := range failures {
		names = append(names, f.Device)
	}
	require.Equal(t, []string{"SQL01", "SQL02", "WEB02"}, names, "closed windows' failures, oldest window first")
	require.Equal(t, 5, devices, "SQL01..04 and WEB02 (sql01 is SQL01)")
	require.Equal(t, "Payroll", failures[0].Service)
	require.Equal(t, "backend", failures[0].Tier)

	all, err := FailedDevices(ctx, pool, "CHG0031234")
	require.NoError(t, err)
	require.Len(t, all, 5, "tier gating sees failures of every window, recovered ones excepted")
}

// TestResume: resuming a change releases its holds with the reason and
// accepts the budget's counts; a change with no hold is ErrNotHeld, an
// unknown one ErrNotFound; one hold of a kind and scope is in force at once.
func TestResume(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t)
	now := time.Now()
	_, err := pool.Exec(ctx, `INSERT INTO changes (number, sys_id, state, approval, start_at, end_at, update_groups, status)
		VALUES ('CHG0031234', 'c0ffee', 'scheduled', 'approved', now(), now() + interval '1 day', '{"G"}', 'planned')`)
	require.NoError(t, err)

	tx := func(fn func(tx pgx.Tx) error) error { return pgx.BeginFunc(ctx, pool, fn) }
	require.ErrorIs(t, tx(func(tx pgx.Tx) error {
		_, err := Resume(ctx, tx, "CHG0031234", "why", "api", now)
		return err
	}), ErrNotHeld)
	require.ErrorIs(t, tx(func(tx pgx.Tx) error {
		_, err := Resume(ctx, tx, "CHG0099999", "why", "api", now)
		return err
	}), ErrNotFound)

	require.NoError(t, tx(func(tx pgx.Tx) error {
		for _, h := range []Hold{
			{ChangeNumber: "CHG0031234", Kind: HoldBudget, Reason: "budget", HeldAt: now},
			{ChangeNumber: "CHG0031234", Kind: HoldPause, Reason: "paused", HeldAt: now},
			{ChangeNumber: "CHG0031234", Kind: HoldTier, Scope: "WEB@x", Reason: "tier", HeldAt: now},
		} {
			_, created, err := InsertHold(ctx, tx, h)
			require.NoError(t, err)
			require.True(t, created)
		}
		_, created, err := InsertHold(ctx, tx, Hold{ChangeNumber: "CHG0031234", Kind: HoldBudget, Reason: "again", HeldAt: now})
		require.NoError(t, err)
		require.False(t, created, "one budget hold in force at a time")
		return nil
	}))
	var released []Hold
	require.NoError(t, tx(func(tx pgx.Tx) error {
		var err error
		released, err = Resume(ctx, tx, "CHG0031234", "fixed; jane.doe", "api", now)
		return err
	}))
	require.Len(t, released, 3)
	for _, h := range released {
		require.False(t, h.Active())
		require.Equal(t, "fixed; jane.doe", h.ReleaseReason)
		require.Equal(t, "api", h.ReleasedBy)
	}
	active, err := ActiveHolds(ctx, pool, "CHG0031234")
	require.NoError(t, err)
	require.Empty(t, active)
	all, err := ChangeHolds(ctx, pool, "CHG0031234")
	require.NoError(t, err)
	require.Len(t, all, 3, "the history keeps released holds")
	scopes, err := ResumedScopes(ctx, pool, "CHG0031234")
	require.NoError(t, err)
	require.Equal(t, map[string]bool{"WEB@x": true}, scopes)
}
