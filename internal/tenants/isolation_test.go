package tenants

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/calendar"
	"github.com/autopatch/autopatch/internal/store"
	"github.com/autopatch/autopatch/internal/testdb"
	"github.com/autopatch/autopatch/migrations"
)

// probeArgs is a job that reports which tenant's client ran it.
type probeArgs struct {
	Tenant string `json:"tenant"`
}

func (probeArgs) Kind() string { return "tenant_probe" }

type probeWorker struct {
	river.WorkerDefaults[probeArgs]
	ran chan string
}

func (w *probeWorker) Work(_ context.Context, job *river.Job[probeArgs]) error {
	w.ran <- job.Args.Tenant
	return nil
}

// tenantDB is one tenant as serve would wire it: its store on its schema,
// migrated, and a River client on the same schema.
type tenantDB struct {
	tenant Tenant
	store  *store.Store
	river  *river.Client[pgx.Tx]
	ran    chan string
}

type isolationBundle struct {
	admin   *pgxpool.Pool // the default configuration's pool: public
	acme    *tenantDB
	contoso *tenantDB
}

func setupIsolation(t *testing.T) *isolationBundle {
	t.Helper()
	ctx := context.Background()
	url := testdb.URL(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	def, err := store.Open(ctx, url)
	require.NoError(t, err)
	t.Cleanup(def.Close)
	scheds, err := calendar.Parse([]byte(schedulesYAML))
	require.NoError(t, err)

	open := func(name string) *tenantDB {
		tn := Tenant{Name: name}
		st, err := store.OpenSchema(ctx, url, "autopatch "+name, tn.Schema())
		require.NoError(t, err)
		t.Cleanup(st.Close)
		require.NoError(t, migrations.ApplySchema(ctx, st.Pool, tn.Schema(), logger))
		_, err = st.SyncSchedules(ctx, scheds)
		require.NoError(t, err)

		ran := make(chan string, 10)
		workers := river.NewWorkers()
		river.AddWorker(workers, &probeWorker{ran: ran})
		client, err := river.NewClient(riverpgxv5.New(st.Pool), &river.Config{
			Schema:  tn.Schema(),
			Logger:  logger,
			Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2}},
			Workers: workers,
		})
		require.NoError(t, err)
		return &tenantDB{tenant: tn, store: st, river: client, ran: ran}
	}
	return &isolationBundle{admin: def.Pool, acme: open("acme"), contoso: open("contoso-eu")}
}

// insertChange records a change, one deployment of it and a River job in
// one transaction through the tenant's store and client, as a webhook and
// a plan do.
func insertChange(t *testing.T, db *tenantDB, number, sysID string) {
	t.Helper()
	ctx := context.Background()
	start := time.Date(2026, 12, 12, 2, 0, 0, 0, time.UTC)
	require.NoError(t, db.store.InTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO changes (number, sys_id, state, approval, start_at, end_at, update_groups)
			VALUES ($1, $2, 'implement', 'approved', $3, $4, '{SUG-1}')`, number, sysID, start, start.Add(72*time.Hour)); err != nil {
			return err
		}
		if _, err := store.InsertDeployment(ctx, tx, store.Deployment{
			ChangeNumber: number, Schedule: "DB", UpdateGroup: "SUG-1", Name: "AP-" + number + "-DB-SUG-1",
			Collection: "Patch - DB", WindowStart: start, WindowEnd: start.Add(4 * time.Hour),
		}); err != nil {
			return err
		}
		_, err := db.river.InsertTx(ctx, tx, probeArgs{Tenant: db.tenant.Name}, nil)
		return err
	}))
}

// tableNames lists the base tables of a schema.
func tableNames(t *testing.T, pool *pgxpool.Pool, schema string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT table_name::text FROM information_schema.tables
		WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY 1`, schema)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}

// rowCounts counts the rows of every table of a schema, qualified by the
// schema: what is really there, whatever a session's search_path.
func rowCounts(t *testing.T, pool *pgxpool.Pool, schema string, tables []string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range tables {
		var n int
		require.NoError(t, pool.QueryRow(context.Background(),
			"SELECT count(*) FROM "+pgx.Identifier{schema, table}.Sanitize()).Scan(&n))
		out[table] = n
	}
	return out
}

// TestTenantIsolation: two tenants migrated side by side each have the
// whole set of autopatch's and River's tables in their schema, public is
// untouched, every unqualified table name a tenant's session uses resolves
// in its own schema, and rows written through one tenant's store and River
// client (changes, deployments, river_job) are invisible through the
// other's and the default configuration's.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bundle := setupIsolation(t)
	acme, contoso := bundle.acme, bundle.contoso
	require.Equal(t, "tenant_contoso_eu", contoso.tenant.Schema())

	public := tableNames(t, bundle.admin, "public")
	for _, want := range []string{"autopatch_migrations", "changes", "deployments", "schedules", "river_job", "river_queue", "river_migration", "river_leader"} {
		require.Contains(t, public, want)
	}
	publicBefore := rowCounts(t, bundle.admin, "public", public)
	for _, db := range []*tenantDB{acme, contoso} {
		require.Equal(t, public, tableNames(t, bundle.admin, db.tenant.Schema()), "%s: every table of autopatch and River", db.tenant.Name)
		var path []string
		require.NoError(t, db.store.Pool.QueryRow(ctx, "SELECT current_schemas(false)::text[]").Scan(&path))
		require.Equal(t, []string{db.tenant.Schema()}, path, "%s: the one schema on the path", db.tenant.Name)
		// Every table name resolves, through the tenant's own sessions, to
		// the tenant's schema: no statement of store or River, none of
		// which names a schema, can reach another's rows.
		for _, table := range public {
			var schema string
			require.NoError(t, db.store.Pool.QueryRow(ctx, `SELECT n.nspname::text FROM pg_class c
				JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)`, table).Scan(&schema), table)
			require.Equal(t, db.tenant.Schema(), schema, "%s: %s", db.tenant.Name, table)
		}
	}

	insertChange(t, acme, "CHG0000001", "acme-sys-id")

	acmeRows := rowCounts(t, bundle.admin, acme.tenant.Schema(), public)
	contosoRows := rowCounts(t, bundle.admin, contoso.tenant.Schema(), public)
	for _, table := range []string{"changes", "deployments", "deployment_transitions", "river_job"} {
		require.Equal(t, 1, acmeRows[table], "acme: %s", table)
		require.Zero(t, contosoRows[table], "contoso: %s", table)
	}
	require.Equal(t, publicBefore, rowCounts(t, bundle.admin, "public", public), "public untouched")

	// Through the store's own queries.
	c, err := store.GetChange(ctx, acme.store.Pool, "CHG0000001")
	require.NoError(t, err)
	require.Equal(t, "acme-sys-id", c.SysID)
	_, err = store.GetChange(ctx, contoso.store.Pool, "CHG0000001")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = store.GetChange(ctx, bundle.admin, "CHG0000001")
	require.ErrorIs(t, err, store.ErrNotFound, "the default configuration")
	deps, err := store.ChangeDeployments(ctx, acme.store.Pool, "CHG0000001")
	require.NoError(t, err)
	require.Len(t, deps, 1)
	deps, err = store.ChangeDeployments(ctx, contoso.store.Pool, "CHG0000001")
	require.NoError(t, err)
	require.Empty(t, deps)

	// Through River's.
	jobs, err := acme.river.JobList(ctx, river.NewJobListParams())
	require.NoError(t, err)
	require.Len(t, jobs.Jobs, 1)
	_, err = contoso.river.JobGet(ctx, jobs.Jobs[0].ID)
	require.ErrorIs(t, err, river.ErrNotFound)
	jobs, err = contoso.river.JobList(ctx, river.NewJobListParams())
	require.NoError(t, err)
	require.Empty(t, jobs.Jobs)

	// The same change number at the other tenant is another change: no
	// uniqueness crosses tenants either.
	insertChange(t, contoso, "CHG0000001", "contoso-sys-id")
	c, err = store.GetChange(ctx, contoso.store.Pool, "CHG0000001")
	require.NoError(t, err)
	require.Equal(t, "contoso-sys-id", c.SysID)
	c, err = store.GetChange(ctx, acme.store.Pool, "CHG0000001")
	require.NoError(t, err)
	require.Equal(t, "acme-sys-id", c.SysID)
	require.Equal(t, publicBefore, rowCounts(t, bundle.admin, "public", public), "public untouched")
}

// TestTenantRiverClients: each tenant's River client, started with its
// schema, works its own jobs (insert, run, count) and never another's.
func TestTenantRiverClients(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bundle := setupIsolation(t)
	acme, contoso := bundle.acme, bundle.contoso
	for _, db := range []*tenantDB{acme, contoso} {
		require.NoError(t, db.river.Start(ctx))
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, db.river.Stop(ctx))
		})
	}

	ran := func(db *tenantDB) string {
		t.Helper()
		select {
		case who := <-db.ran:
			return who
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the job did not run", db.tenant.Name)
			return ""
		}
	}
	count := func(db *tenantDB) int {
		t.Helper()
		var n int
		require.NoError(t, db.store.Pool.QueryRow(ctx, "SELECT count(*) FROM river_job").Scan(&n))
		return n
	}

	res, err := acme.river.Insert(ctx, probeArgs{Tenant: "acme"}, nil)
	require.NoError(t, err)
	require.Equal(t, "acme", ran(acme))
	require.Equal(t, 1, count(acme))
	require.Zero(t, count(contoso))
	_, err = contoso.river.JobGet(ctx, res.Job.ID)
	require.ErrorIs(t, err, river.ErrNotFound)

	for range 3 {
		_, err = contoso.river.Insert(ctx, probeArgs{Tenant: "contoso-eu"}, nil)
		require.NoError(t, err)
	}
	for range 3 {
		require.Equal(t, "contoso-eu", ran(contoso))
	}
	require.Equal(t, 3, count(contoso))
	require.Equal(t, 1, count(acme))
	select {
	case who := <-acme.ran:
		t.Fatalf("acme's client ran a job of %s", who)
	case <-time.After(200 * time.Millisecond):
	}

	var public int
	require.NoError(t, bundle.admin.QueryRow(ctx, "SELECT count(*) FROM river_job").Scan(&public))
	require.Zero(t, public, "the default configuration's queue")

	// River's Schema alone places the job, whatever the pool's search_path:
	// a client of acme on the default configuration's pool inserts into
	// acme's queue, where acme's started client runs it.
	onPublic, err := river.NewClient(riverpgxv5.New(bundle.admin), &river.Config{Schema: acme.tenant.Schema(), SkipUnknownJobCheck: true})
	require.NoError(t, err)
	_, err = onPublic.Insert(ctx, probeArgs{Tenant: "acme"}, nil)
	require.NoError(t, err)
	require.Equal(t, "acme", ran(acme))
	require.Equal(t, 2, count(acme))
	require.NoError(t, bundle.admin.QueryRow(ctx, "SELECT count(*) FROM river_job").Scan(&public))
	require.Zero(t, public)
}
