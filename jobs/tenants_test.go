package jobs

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/estate"
	"github.com/autopatch/autopatch/internal/store"
	"github.com/autopatch/autopatch/internal/tenants"
	"github.com/autopatch/autopatch/internal/testdb"
	"github.com/autopatch/autopatch/migrations"
)

// tenantHarness is one tenant as serve is to run it (docs/tenants.md): a
// schema of its own in the test's database, migrated by
// migrations.ApplySchema, a pool from store.OpenSchema whose search_path is
// that schema alone, its own simulated estate and ServiceNow instance, and
// (startClient) its own River client, with Deps.Schema set, and window
// keeper. Everything else is the single-tenant harness, so the tenant's
// jobs and keeper are the very code the other tests exercise.
type tenantHarness struct {
	*harness
	name   string
	schema string
}

// newTenantHarness starts a tenant named label plus a random suffix in
// the database at url: the suffix keeps schemas apart even if two tests
// ever shared a database.
func newTenantHarness(t testing.TB, url, label string, opts ...func(*estate.Options)) *tenantHarness {
	t.Helper()
	ctx := context.Background()
	tenant := tenants.Tenant{Name: label + "-" + strings.ToLower(rand.Text()[:8])}
	schema := tenant.Schema()
	st, err := store.OpenSchema(ctx, url, "autopatch-test-"+tenant.Name, schema)
	require.NoError(t, err)
	// Registered before the harness's own cleanups, so it runs after them:
	// the tenant's client and keeper stop before its pool closes.
	t.Cleanup(st.Close)
	require.NoError(t, migrations.ApplySchema(ctx, st.Pool, schema, slog.New(slog.NewTextHandler(io.Discard, nil))))
	return &tenantHarness{harness: newHarnessIn(t, st.Pool, schema, opts...), name: tenant.Name, schema: schema}
}

// count runs a count(*) query through the tenant's pool: in its schema,
// as every statement of the tenant's runs.
func (h *tenantHarness) count(query string, args ...any) int {
	h.t.Helper()
	return countIn(h.t, h.pool, query, args...)
}

func countIn(t testing.TB, pool *pgxpool.Pool, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

// TestTenantsFairness: two tenants in one process (issue #20, "Fairness").
// A has a huge change (100 schedules, 200 deployments) whose windows start
// at the same instant as B's, and A's SCCM goes down before that instant
// and stays down past the end of B's windows, so A's keeper and jobs fail
// and retry throughout. B's windows open and close on time all the same;
// A's are missed, never enabled, and noted once its SCCM is back. Neither
// tenant's rows, jobs or SCCM deployments are found at the other's, nor in
// public.
func TestTenantsFairness(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.URL(t)
	a := newTenantHarness(t, url, "a")
	b := newTenantHarness(t, url, "b")
	// A's change numbers apart from B's, so that a row of one found in the
	// other's schema is told apart (the same number at two tenants is
	// allowed: internal/tenants TestTenantIsolation).
	a.changes.Store(1000)
	a.startClient()
	b.startClient()

	now := time.Now().Truncate(time.Second)
	w := window{now.Add(15 * time.Second), now.Add(21 * time.Second)}
	var huge []string
	for i := range 100 {
		huge = append(huge, schedule(fmt.Sprintf("A%03d", i), "automatic", w))
	}
	a.load(huge...)
	b.load(schedule("AUTO", "automatic", w), schedule("REBOOT", "manual_reboot", w), schedule("MORE", "automatic", w))
	aNumber, aSysID := a.approve(now, now.Add(time.Hour))
	bNumber, _ := b.approve(now, now.Add(time.Hour))
	a.waitFor("A's deployments created", func() bool { return a.states(aNumber)["created"] == 200 })
	// Down before the windows' start, or A's windows would not be kept
	// through a down SCCM at all and the test would show nothing.
	require.True(t, time.Now().Before(w.start), "A's deployments were created only after the windows' start; the machine is too loaded for this test")
	a.est.SetWinRMDown(true)

	b.waitFor("B's deployments closed", func() bool { return b.states(bNumber)["closed"] == 6 })
	bDeps := b.deployments(bNumber)
	require.Len(t, bDeps, 6, "B: 3 schedules × 2 update groups")
	for _, d := range bDeps {
		b.requireOnTime(t, d, w)
	}
	// A was down across its windows' start and is down still: nothing of
	// A's was enabled, in SCCM or in A's rows.
	require.Zero(t, a.states(aNumber)["open"], "A's windows opened while its SCCM was down")
	for _, d := range a.deployments(aNumber) {
		requireNeverEnabled(t, d)
	}

	// Back up with less than half of A's windows left: A's keeper marks
	// them missed on its own and notes it, as for a single tenant.
	a.est.SetWinRMDown(false)
	a.waitFor("A's windows missed", func() bool { return a.states(aNumber)["missed"] == 200 })
	for _, d := range a.deployments(aNumber) {
		requireNeverEnabled(t, d)
	}
	a.waitFor("A's missed note", func() bool { return strings.Contains(a.notes(aSysID), "window MISSED") })

	// Isolation: each tenant's schema holds its own change, deployments
	// and River jobs and nothing of the other's.
	for _, tt := range []struct {
		name        string
		h           *tenantHarness
		own, other  string
		deployments int
	}{
		{"A", a, aNumber, bNumber, 200},
		{"B", b, bNumber, aNumber, 6},
	} {
		h := tt.h
		require.Equal(t, 1, h.count(`SELECT count(*) FROM changes`), "%s: its change only", tt.name)
		require.Equal(t, 1, h.count(`SELECT count(*) FROM changes WHERE number = $1`, tt.own), tt.name)
		require.Equal(t, tt.deployments, h.count(`SELECT count(*) FROM deployments`), "%s: its deployments only", tt.name)
		require.Equal(t, tt.deployments, h.count(`SELECT count(*) FROM deployments WHERE change_number = $1`, tt.own), tt.name)
		require.Positive(t, h.count(`SELECT count(*) FROM river_job WHERE args->>'change_number' = $1`, tt.own), "%s: its jobs are in its schema", tt.name)
		require.Zero(t, h.count(`SELECT count(*) FROM river_job WHERE args->>'change_number' <> $1`, tt.own), "%s: no job of another change", tt.name)
		require.Zero(t, h.count(`SELECT count(*) FROM deployments WHERE change_number = $1`, tt.other), tt.name)
		require.Empty(t, h.deployments(tt.other), "%s: its SCCM holds no deployment of the other tenant", tt.name)
		t.Logf("tenant %s (schema %s): %d change, %d deployments, %d River jobs", tt.name, h.schema,
			h.count(`SELECT count(*) FROM changes`), h.count(`SELECT count(*) FROM deployments`), h.count(`SELECT count(*) FROM river_job`))
	}
	// The default tenant's schema (public) saw nothing of either.
	public, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	defer public.Close()
	require.Zero(t, countIn(t, public, `SELECT count(*) FROM changes`))
	require.Zero(t, countIn(t, public, `SELECT count(*) FROM deployments`))
	require.Zero(t, countIn(t, public, `SELECT count(*) FROM river_job`))
}
