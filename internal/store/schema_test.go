package store

import (
	"context"
	"io"
	"log/slog"
	neturl "net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/testdb"
	"github.com/autopatch/autopatch/migrations"
)

// TestOpenSchema: a tenant's store reads and writes its schema alone, even
// when the URL names another search_path, and the default store still
// works in public.
func TestOpenSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.URL(t)

	// The URL's search_path loses to the tenant's.
	u, err := neturl.Parse(url)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", "public")
	u.RawQuery = q.Encode()
	st, err := OpenSchema(ctx, u.String(), "autopatch test", "tenant_x")
	require.NoError(t, err)
	t.Cleanup(st.Close)
	var path string
	require.NoError(t, st.Pool.QueryRow(ctx, "SHOW search_path").Scan(&path))
	require.Equal(t, `"tenant_x"`, path)

	// Before the schema is migrated, autopatch's tables are not found: public
	// is not on the path to fall back on.
	_, err = GetChange(ctx, st.Pool, "CHG0000001")
	require.ErrorContains(t, err, `relation "changes" does not exist`)

	require.NoError(t, migrations.ApplySchema(ctx, st.Pool, "tenant_x", slog.New(slog.NewTextHandler(io.Discard, nil))))
	_, err = st.Pool.Exec(ctx, `INSERT INTO changes (number, sys_id, state, approval, start_at, end_at, update_groups)
		VALUES ('CHG0000001', 'a', 'new', 'requested', now(), now() + interval '1 hour', '{}')`)
	require.NoError(t, err)
	c, err := GetChange(ctx, st.Pool, "CHG0000001")
	require.NoError(t, err)
	require.Equal(t, "a", c.SysID)

	def, err := Open(ctx, url)
	require.NoError(t, err)
	t.Cleanup(def.Close)
	require.NoError(t, def.Pool.QueryRow(ctx, "SHOW search_path").Scan(&path))
	require.Equal(t, `"$user", public`, path, "the default store as before")
	_, err = GetChange(ctx, def.Pool, "CHG0000001")
	require.ErrorIs(t, err, ErrNotFound, "the tenant's row is not in public")
}

func TestOpenSchemaRefusesNames(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"", "Tenant", "tenant-x", "a b", `x"; DROP`} {
		_, err := OpenSchema(context.Background(), "postgres://localhost/x", "autopatch", name)
		require.ErrorContains(t, err, "is invalid", name)
	}
}

// TestOpenSchemaMaxConns: a tenant's pool is DefaultMaxConns, the URL's
// pool_max_conns, or WithMaxConns above both.
func TestOpenSchemaMaxConns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.URL(t)
	u, err := neturl.Parse(url)
	require.NoError(t, err)
	q := u.Query()
	q.Set("pool_max_conns", "7")
	u.RawQuery = q.Encode()
	withURL := u.String()
	require.True(t, URLSetsMaxConns(withURL))
	require.False(t, URLSetsMaxConns(url))

	for _, tc := range []struct {
		name string
		url  string
		opts []Option
		want int32
	}{
		{"Default", url, nil, DefaultMaxConns},
		{"URL", withURL, nil, 7},
		{"Option", url, []Option{WithMaxConns(12)}, 12},
		{"OptionAboveURL", withURL, []Option{WithMaxConns(12)}, 12},
		{"ZeroLeavesIt", withURL, []Option{WithMaxConns(0)}, 7},
	} {
		st, err := OpenSchema(ctx, tc.url, "autopatch test", "tenant_pool", tc.opts...)
		require.NoError(t, err, tc.name)
		require.Equal(t, tc.want, st.Pool.Config().MaxConns, tc.name)
		st.Close()
	}
}
