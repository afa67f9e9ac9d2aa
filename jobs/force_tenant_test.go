package jobs

import (
	"context"
	"io"
	"log/slog"
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

// TestForcedInTenant: a tenant of the tenants file with force_collection
// (serve gives it Deps.Force and Deps.Schema, cmd/autopatch
// TestServeTenantSettings) forces its devices past their deadline as the
// default tenant does, and its change's waves, forced devices and
// force_change job are in its schema alone: public, in the same database,
// has none of them.
func TestForcedInTenant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.URL(t)
	tenant := tenants.Tenant{Name: "acme"}
	st, err := store.OpenSchema(ctx, url, "autopatch-test-acme", tenant.Schema())
	require.NoError(t, err)
	t.Cleanup(st.Close)
	require.NoError(t, migrations.ApplySchema(ctx, st.Pool, tenant.Schema(), slog.New(slog.NewTextHandler(io.Discard, nil))))

	// OFF01 reports nothing in its window (it is not in the collection):
	// it is forced at the deadline, in one wave, and its wave patches it.
	now := time.Now().Truncate(time.Second)
	w := window{now.Add(4 * time.Second), now.Add(6 * time.Second)}
	deadline := w.end.Add(2 * time.Second)
	h := forceHarnessWith(t, failureOptions{devices: []estate.SeedDevice{{Name: "OFF01"}}, pool: st.Pool, schema: tenant.Schema()},
		nil, nil, w, deadline, 2*time.Second)
	h.startClient()
	number, _ := h.approveCritical(now, now.Add(time.Hour), "FRC")
	h.waitFor("the tenant's forced wave closed and read", func() bool { return allResultsRead(h, number, 1) })

	ws := h.waves(number)
	require.Len(t, ws, 1)
	require.Equal(t, map[string]int64{"off01": ws[0].ID}, h.waveOf(number))
	require.NotEmpty(t, h.forcedDeployments(number))
	require.Equal(t, 1, countIn(t, st.Pool, `SELECT count(*) FROM river_job WHERE kind = $1`, ForceChangeArgs{}.Kind()),
		"the force_change job is in the tenant's queue")

	public, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(public.Close)
	for _, q := range []string{
		`SELECT count(*) FROM public.changes`,
		`SELECT count(*) FROM public.forced_waves`,
		`SELECT count(*) FROM public.river_job`,
	} {
		require.Zero(t, countIn(t, public, q), q)
	}
}
