package store

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Run(m) }

func TestInTx(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := &Store{Pool: testdb.Pool(t)}
	require.NoError(t, s.Ping(ctx))

	insert := func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO changes (number, sys_id, state, approval, start_at, end_at, update_groups)
			VALUES ('CHG0000001', 'a', 'new', 'requested', now(), now() + interval '1 hour', '{}')`)
		return err
	}
	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx pgx.Tx) error {
		require.NoError(t, insert(tx))
		return boom
	})
	require.ErrorIs(t, err, boom)
	var n int
	require.NoError(t, s.Pool.QueryRow(ctx, "SELECT count(*) FROM changes").Scan(&n))
	require.Zero(t, n, "rolled back")

	require.NoError(t, s.InTx(ctx, insert))
	require.NoError(t, s.Pool.QueryRow(ctx, "SELECT count(*) FROM changes").Scan(&n))
	require.Equal(t, 1, n)

	err = mapErr(s.InTx(ctx, insert))
	require.ErrorIs(t, err, ErrConflict)
	require.ErrorIs(t, mapErr(s.Pool.QueryRow(ctx, "SELECT 1 FROM changes WHERE false").Scan(&n)), ErrNotFound)
}
