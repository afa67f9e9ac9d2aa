// Package store is autopatch's access to PostgreSQL: a pgx pool, one
// transaction helper and the queries, written near the code that needs them
// as plain SQL with $n parameters.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultMaxConns is the pool size when the database URL sets none: the
// default queues' workers (18, each of which may hold a connection through
// a remote call), the window keeper's loop per site, River's listener and
// room for HTTP requests (docs/tenants.md, "max_connections").
const DefaultMaxConns = 32

var (
	// ErrNotFound is returned when a looked-up row does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict is returned when a write would break a uniqueness rule.
	ErrConflict = errors.New("store: conflict")
)

// DBTX is what queries run on: the pool or a transaction.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Store wraps the pool.
type Store struct {
	Pool *pgxpool.Pool
}

// Open connects to the database and checks it answers.
func Open(ctx context.Context, url string) (*Store, error) {
	return OpenAs(ctx, url, "autopatch")
}

// OpenAs is Open with the sessions' application_name set to name (unless
// the URL sets one), so pg_stat_activity shows which replica holds a lock.
// opts are applied after the URL's settings.
func OpenAs(ctx context.Context, url, name string, opts ...Option) (*Store, error) {
	return open(ctx, url, name, "", opts)
}

// Option changes how a pool is opened.
type Option func(*pgxpool.Config)

// WithMaxConns sets the pool's size, above the URL's pool_max_conns: a
// tenant's own max_connections (docs/tenants.md), or public's small pool
// when only tenants are served, is more specific than the URL every pool
// shares. n < 1 leaves the size as it is.
func WithMaxConns(n int) Option {
	return func(c *pgxpool.Config) {
		if n > 0 {
			c.MaxConns = int32(min(n, 1<<30))
		}
	}
}

// URLSetsMaxConns reports whether the database URL sets the pool's size
// (pool_max_conns), which WithMaxConns overrides: the caller says so in
// its log rather than override it silently.
func URLSetsMaxConns(url string) bool { return strings.Contains(url, "pool_max_conns") }

// open is OpenAs; a schema other than "" becomes every session's
// search_path (see OpenSchema).
func open(ctx context.Context, url, name, schema string, opts []Option) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse errors can quote the URL, password included.
		return nil, errors.New("store: AUTOPATCH_DATABASE_URL cannot be parsed")
	}
	// pgxpool's default (4 on a small host) is far too few: window and
	// status jobs hold a connection during their remote call, and webhooks
	// must still be recorded meanwhile. pool_max_conns in the URL wins.
	if !URLSetsMaxConns(url) {
		cfg.MaxConns = DefaultMaxConns
	}
	for _, o := range opts {
		o(cfg)
	}
	if _, set := cfg.ConnConfig.RuntimeParams["application_name"]; !set {
		cfg.ConnConfig.RuntimeParams["application_name"] = name
	}
	if schema != "" {
		// Set here, after the URL's parameters, so a search_path in the
		// URL can never point a tenant's sessions elsewhere.
		cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize()
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: open pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: connect to %s:%d/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	return &Store{Pool: pool}, nil
}

// Close closes the pool.
func (s *Store) Close() { s.Pool.Close() }

// Ping checks that the database answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.Pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// InTx runs fn in a transaction, committing when fn returns nil and rolling
// back otherwise (also on panic).
func (s *Store) InTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.Pool, fn)
}

// mapErr turns driver errors into the package's sentinels.
func mapErr(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return fmt.Errorf("%w: %s", ErrConflict, pgErr.ConstraintName)
	}
	return err
}
