package migrations_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/testdb"
	"github.com/autopatch/autopatch/migrations"
)

func TestMain(m *testing.M) { testdb.Run(m) }

// TestApplyIdempotent applies the migrations again, from several replicas at
// once, on an already migrated database: nothing changes and nothing fails.
func TestApplyIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	count := func(p *pgxpool.Pool) (n int) {
		require.NoError(t, p.QueryRow(ctx, "SELECT count(*) FROM autopatch_migrations").Scan(&n))
		return n
	}
	before := count(pool)
	all, err := migrations.All()
	require.NoError(t, err)
	require.Equal(t, len(all), before)

	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() { errs <- migrations.Apply(ctx, pool, logger) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, before, count(pool))

	var riverTable bool
	require.NoError(t, pool.QueryRow(ctx, "SELECT to_regclass('river_job') IS NOT NULL").Scan(&riverTable))
	require.True(t, riverTable)
}

// TestApplyFillsGaps: a migration that landed with a lower number than one
// already applied is applied too.
func TestApplyFillsGaps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t)
	all, err := migrations.All()
	require.NoError(t, err)
	require.Greater(t, len(all), 2)
	// Forget that the second migration ran: Apply must run it again.
	_, err = pool.Exec(ctx, "DELETE FROM autopatch_migrations WHERE version = $1", all[1].Version)
	require.NoError(t, err)
	err = migrations.Apply(ctx, pool, slog.New(slog.NewTextHandler(io.Discard, nil)))
	// Its objects exist already, so the re-run fails, naming it: proof that
	// a missing lower version is applied rather than skipped.
	require.ErrorContains(t, err, all[1].Name)
}
