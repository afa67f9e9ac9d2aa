package jobs

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/sccm"
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

// stallingSCCM makes every call to the SCCM it wraps take delay first
// (none while zero), as a site server that hangs would: a test makes a
// tenant's SCCM slow once its deployments exist, or a site slow from the
// start (newSitesHarness). The wait ends with the
// call's context, so stopping the client is not held up by it.
type stallingSCCM struct {
	SCCM
	delay *atomic.Int64 // a time.Duration
}

func (s stallingSCCM) wait(ctx context.Context) error {
	d := time.Duration(s.delay.Load())
	if d <= 0 {
		return nil
	}
	return sleep(ctx, d)
}

func (s stallingSCCM) CreateDeployments(ctx context.Context, specs []sccm.DeploymentSpec) ([]sccm.Deployment, error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	return s.SCCM.CreateDeployments(ctx, specs)
}

func (s stallingSCCM) OpenDeployments(ctx context.Context, names, collections []string) ([]sccm.EnableResult, error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	return s.SCCM.OpenDeployments(ctx, names, collections)
}

func (s stallingSCCM) SetEnabled(ctx context.Context, names []string, enabled bool) ([]sccm.EnableResult, error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	return s.SCCM.SetEnabled(ctx, names, enabled)
}

func (s stallingSCCM) DeploymentStatus(ctx context.Context, names []string) (sccm.StatusReport, error) {
	if err := s.wait(ctx); err != nil {
		return sccm.StatusReport{}, err
	}
	return s.SCCM.DeploymentStatus(ctx, names)
}

// TestTenantsFairness: two tenants in one process (issue #20, "Fairness").
// A has a huge change (100 schedules, 200 deployments) whose windows start
// at the same instant as B's, and A's SCCM fails from before that instant
// until past the end of B's windows: Down, its WinRM listener refuses every
// call (A's keeper and jobs fail and retry throughout); Slow, every call
// takes 8 s, longer than B's whole promise (A's keeper holds its rows and
// a connection through each call). B's windows open and close on time all
// the same. Neither tenant's rows, jobs or SCCM deployments are found at
// the other's, nor in public.
func TestTenantsFairness(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		// fail makes A's SCCM fail (true) or recover (false).
		fail func(a *tenantHarness, stall *atomic.Int64, failing bool)
		// settled is A's windows once its SCCM is back: Down is down for
		// more than half of them, so they are missed and never enabled;
		// Slow's may be opened late or missed, as for a slow site
		// (TestSlowSiteOthersOnTime).
		settled func(t *testing.T, a *tenantHarness, number, sysID string)
	}{
		{
			name: "Down",
			fail: func(a *tenantHarness, _ *atomic.Int64, failing bool) { a.est.SetWinRMDown(failing) },
			settled: func(t *testing.T, a *tenantHarness, number, sysID string) {
				a.waitFor("A's windows missed", func() bool { return a.states(number)["missed"] == 200 })
				for _, d := range a.deployments(number) {
					requireNeverEnabled(t, d)
				}
				a.waitFor("A's missed note", func() bool { return strings.Contains(a.notes(sysID), "window MISSED") })
			},
		},
		{
			name: "Slow",
			fail: func(_ *tenantHarness, stall *atomic.Int64, failing bool) {
				if failing {
					stall.Store(int64(8 * time.Second))
				} else {
					stall.Store(0)
				}
			},
			settled: func(t *testing.T, a *tenantHarness, number, _ string) {
				a.waitFor("A's windows settled", func() bool {
					s := a.states(number)
					return s["closed"]+s["missed"] == 200
				})
				t.Logf("A's windows once its SCCM answered again: %v", a.states(number))
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url := testdb.URL(t)
			a := newTenantHarness(t, url, "a")
			b := newTenantHarness(t, url, "b")
			var stall atomic.Int64
			a.deps.SCCM = stallingSCCM{SCCM: a.deps.SCCM, delay: &stall}
			// A's change numbers apart from B's, so that a row of one
			// found in the other's schema is told apart (the same number
			// at two tenants is allowed: internal/tenants
			// TestTenantIsolation).
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
			// Failing before the windows' start, or A's keeper would not
			// meet its failing SCCM at the instant B's windows open.
			require.True(t, time.Now().Before(w.start), "A's deployments were created only after the windows' start; the machine is too loaded for this test")
			tt.fail(a, &stall, true)

			b.waitFor("B's deployments closed", func() bool { return b.states(bNumber)["closed"] == 6 })
			bDeps := b.deployments(bNumber)
			require.Len(t, bDeps, 6, "B: 3 schedules × 2 update groups")
			for _, d := range bDeps {
				b.requireOnTime(t, d, w)
			}
			tt.fail(a, &stall, false)
			tt.settled(t, a, aNumber, aSysID)
			requireTenantsApart(t, url, a, b, aNumber, bNumber)
		})
	}
}

// TestTenantsAndSitesSideBySide: two tenants and three sites in one
// process (issue #20, "Done when"). A's one site refuses every call from
// before the windows' start until past their end; B's change spans B's
// three sites, one window at each, at the same instant as A's. Each of
// B's sites opens and closes its window on time, in its own calls, and
// holds only its own deployment; A's windows are missed, never enabled,
// and noted; neither schema holds a row or job of the other's change.
func TestTenantsAndSitesSideBySide(t *testing.T) {
	t.Parallel()
	url := testdb.URL(t)
	a := newTenantHarness(t, url, "a")
	further := []string{"PS2", "PS3"}
	bt := newTenantHarness(t, url, "b", func(o *estate.Options) { o.Sites = further })
	b := withSites(t, bt.harness, further, nil)
	a.changes.Store(1000) // A's change numbers apart from B's
	a.startClient()
	b.startClient()

	now := time.Now().Truncate(time.Second)
	w := window{now.Add(12 * time.Second), now.Add(20 * time.Second)}
	a.load(schedule("AUTO", "automatic", w), schedule("MORE", "automatic", w))
	b.loadEachSite(w)
	aNumber, aSysID := a.approve(now, now.Add(time.Hour))
	bNumber, _ := b.approve(now, now.Add(time.Hour))
	a.waitFor("A's deployments created", func() bool { return a.states(aNumber)["created"] == 4 })
	b.waitFor("B's deployments created at its three sites", func() bool { return b.states(bNumber)["created"] == 6 })
	require.True(t, time.Now().Before(w.start), "the deployments were created only after the windows' start; the machine is too loaded for this test")
	a.est.SetWinRMDown(true)

	b.waitFor("B's windows closed at every site", func() bool { return b.states(bNumber)["closed"] == 6 })
	for _, c := range b.codes {
		at := b.deploymentsAt(c, bNumber)
		require.Len(t, at, 2, "site %s: its schedule's 2 update groups", c)
		for _, d := range at {
			require.Contains(t, d.Name, "-AUTO-"+c+"-", "site %s holds only its own schedule's deployments", c)
			b.requireOnTime(t, d, w)
		}
		require.Empty(t, b.deploymentsAt(c, aNumber), "site %s of B holds nothing of A's", c)
	}
	time.Sleep(time.Until(w.end.Add(time.Second)))
	a.est.SetWinRMDown(false)
	a.waitFor("A's windows missed", func() bool { return a.states(aNumber)["missed"] == 4 })
	for _, d := range a.deployments(aNumber) {
		requireNeverEnabled(t, d)
	}
	require.Empty(t, a.deployments(bNumber), "A's site holds nothing of B's")
	a.waitFor("A's missed note", func() bool { return strings.Contains(a.notes(aSysID), "window MISSED") })

	for _, tt := range []struct {
		name       string
		h          *tenantHarness
		own, other string
		rows       int
	}{{"A", a, aNumber, bNumber, 4}, {"B", bt, bNumber, aNumber, 6}} {
		require.Equal(t, tt.rows, tt.h.count(`SELECT count(*) FROM deployments`), "%s: its own deployments only", tt.name)
		require.Equal(t, tt.rows, tt.h.count(`SELECT count(*) FROM deployments WHERE change_number = $1`, tt.own), tt.name)
		require.Zero(t, tt.h.count(`SELECT count(*) FROM changes WHERE number = $1`, tt.other), "%s: the other's change is not in its schema", tt.name)
		require.Zero(t, tt.h.count(`SELECT count(*) FROM river_job WHERE args->>'change_number' = $1`, tt.other), "%s: no job of the other's change", tt.name)
	}
}

// requireTenantsApart: each tenant's schema holds its own change,
// deployments and River jobs and nothing of the other's; each tenant's
// SCCM holds only its own deployments; the default tenant's schema
// (public) holds nothing of either.
func requireTenantsApart(t *testing.T, url string, a, b *tenantHarness, aNumber, bNumber string) {
	t.Helper()
	for _, tt := range []struct {
		name       string
		h          *tenantHarness
		own, other string
	}{
		{"A", a, aNumber, bNumber},
		{"B", b, bNumber, aNumber},
	} {
		h := tt.h
		deployments := len(h.deployments(tt.own))
		require.Positive(t, deployments, tt.name)
		require.Equal(t, 1, h.count(`SELECT count(*) FROM changes`), "%s: its change only", tt.name)
		require.Equal(t, 1, h.count(`SELECT count(*) FROM changes WHERE number = $1`, tt.own), tt.name)
		require.Equal(t, deployments, h.count(`SELECT count(*) FROM deployments`), "%s: its deployments only, one row each", tt.name)
		require.Equal(t, deployments, h.count(`SELECT count(*) FROM deployments WHERE change_number = $1`, tt.own), tt.name)
		require.Positive(t, h.count(`SELECT count(*) FROM river_job WHERE args->>'change_number' = $1`, tt.own), "%s: its jobs are in its schema", tt.name)
		require.Zero(t, h.count(`SELECT count(*) FROM river_job WHERE args->>'change_number' <> $1`, tt.own), "%s: no job of another change", tt.name)
		require.Empty(t, h.deployments(tt.other), "%s: its SCCM holds no deployment of the other tenant", tt.name)
		t.Logf("tenant %s (schema %s): %d change, %d deployments, %d River jobs", tt.name, h.schema,
			h.count(`SELECT count(*) FROM changes`), h.count(`SELECT count(*) FROM deployments`), h.count(`SELECT count(*) FROM river_job`))
	}
	public, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	defer public.Close()
	require.Zero(t, countIn(t, public, `SELECT count(*) FROM changes`))
	require.Zero(t, countIn(t, public, `SELECT count(*) FROM deployments`))
	require.Zero(t, countIn(t, public, `SELECT count(*) FROM river_job`))
}
