package migrations_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/testdb"
	"github.com/autopatch/autopatch/migrations"
)

// objects lists a schema's tables, views, sequences, indexes, functions
// and types with their kind, so two calls tell whether the schema changed.
func objects(t *testing.T, pool *pgxpool.Pool, schema string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT c.relkind::text || ' ' || c.relname FROM pg_class c
			JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1
		UNION ALL
		SELECT 'function ' || p.proname FROM pg_proc p
			JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1
		UNION ALL
		SELECT 'type ' || ty.typname FROM pg_type ty
			JOIN pg_namespace n ON n.oid = ty.typnamespace WHERE n.nspname = $1
		ORDER BY 1`, schema)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

// tables lists a schema's base tables by name.
func tables(t *testing.T, pool *pgxpool.Pool, schema string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT table_name::text FROM information_schema.tables
		WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY 1`, schema)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

// TestApplySchema migrates two tenant schemas side by side, each from
// several replicas at once: each gets every table public has (autopatch's
// and River's) and every other object, every migration is recorded once in each, and public does
// not change at all.
func TestApplySchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	publicBefore := objects(t, pool, "public")
	publicTables := tables(t, pool, "public")
	require.Contains(t, publicTables, "changes")
	require.Contains(t, publicTables, "river_job")
	require.Contains(t, publicTables, "autopatch_migrations")
	var publicVersions, publicRiverVersions int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM public.autopatch_migrations").Scan(&publicVersions))
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM public.river_migration").Scan(&publicRiverVersions))

	schemas := []string{"tenant_a", "tenant_b"}
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 3 {
		for _, s := range schemas {
			wg.Go(func() { errs <- migrations.ApplySchema(ctx, pool, s, logger) })
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	all, err := migrations.All()
	require.NoError(t, err)
	for _, s := range schemas {
		require.Equal(t, publicTables, tables(t, pool, s), "schema %s has every table", s)
		require.Equal(t, publicBefore, objects(t, pool, s), "and every index, sequence, function and type")
		var n, river int
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM "+s+".autopatch_migrations").Scan(&n))
		require.Equal(t, len(all), n, "each migration once in %s", s)
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM "+s+".river_migration").Scan(&river))
		require.Equal(t, publicRiverVersions, river, "River's migrations in %s", s)
	}
	require.Equal(t, publicBefore, objects(t, pool, "public"), "public untouched")
	var n int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM public.autopatch_migrations").Scan(&n))
	require.Equal(t, publicVersions, n)

	// Again: nothing changes.
	before := objects(t, pool, "tenant_a")
	require.NoError(t, migrations.ApplySchema(ctx, pool, "tenant_a", logger))
	require.Equal(t, before, objects(t, pool, "tenant_a"))
}

func TestApplySchemaRefusesNames(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"", "Tenant_A", "tenant-a", "a;drop", `"x"`, "1abc"} {
		err := migrations.ApplySchema(context.Background(), nil, name, slog.New(slog.NewTextHandler(io.Discard, nil)))
		require.ErrorContains(t, err, "is invalid", name)
	}
}
