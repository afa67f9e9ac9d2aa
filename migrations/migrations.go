// Package migrations holds autopatch's schema as embedded SQL files and
// applies them, together with River's own migrations, under one advisory lock
// so replicas starting at once do not race.
package migrations

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

//go:embed *.sql
var files embed.FS

// lockKey is the pg_advisory_xact_lock key that serialises migrations
// ("autopatch" in ASCII, truncated to 8 bytes).
const lockKey int64 = 0x6175746f70617463

// Migration is one embedded SQL file, named NNNN_description.sql.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// All returns autopatch's migrations in order.
func All() ([]Migration, error) {
	entries, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, name := range entries {
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migrations: %s: name must start with a number and _", name)
		}
		b, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("migrations: version %d used twice", out[i].Version)
		}
	}
	return out, nil
}

// Apply brings the database up to date: River's migrations, then
// autopatch's (in one transaction). Applying twice is a no-op.
func Apply(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) error {
	return apply(ctx, pool, "", logger)
}

// ApplySchema is Apply inside one tenant's schema (docs/tenants.md): it
// creates the schema if missing, then applies River's migrations there
// (rivermigrate.Config.Schema, which prefixes every name River's SQL uses)
// and autopatch's (search_path set to the schema alone
// for their transaction, as their SQL names no schema). The pool may be
// any pool of the database; store.OpenSchema's is the usual one. Each
// schema has its own lock, so tenants migrate side by side and replicas
// starting at once still migrate a schema once.
func ApplySchema(ctx context.Context, pool *pgxpool.Pool, schema string, logger *slog.Logger) error {
	// River writes the schema into its SQL as it is: only a plain name
	// may reach it. (store.CheckSchema's rule; store cannot be imported
	// here, its tests migrate through this package.)
	if !schemaRE.MatchString(schema) || len(schema) > 63 {
		return fmt.Errorf("migrations: schema %q is invalid: want lower-case letters, digits and _, starting with a letter or _", schema)
	}
	return apply(ctx, pool, schema, logger)
}

var schemaRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// schemaLockClass is the first key of the two-key pg_advisory_lock that
// serialises a tenant schema's migrations (the second is the schema's
// hash). PostgreSQL keeps two-key locks apart from lockKey's one-key space.
const schemaLockClass int32 = 0x61757470 // "autp"

// apply migrates the schema, "" for public as always.
func apply(ctx context.Context, pool *pgxpool.Pool, schema string, logger *slog.Logger) error {
	all, err := All()
	if err != nil {
		return err
	}
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: logger, Schema: schema})
	if err != nil {
		return fmt.Errorf("migrations: river migrator: %w", err)
	}
	// River's migrations cannot share one transaction (a new enum value is
	// unusable until committed), so the lock is a session lock held on a
	// connection of its own, outside the pool, while River migrates on the
	// pool (replicas waiting on the lock must not starve it of connections).
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("migrations: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if schema == "" {
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey); err != nil {
			return fmt.Errorf("migrations: lock: %w", err)
		}
		defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockKey) //nolint:errcheck
	} else {
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1, hashtext($2))", schemaLockClass, schema); err != nil {
			return fmt.Errorf("migrations: lock %s: %w", schema, err)
		}
		defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1, hashtext($2))", schemaLockClass, schema) //nolint:errcheck
		// River's migrator does not create the schema it is given (only its
		// test helper does: river@v0.51.1 riverdbtest, SchemaCreate).
		if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
			return fmt.Errorf("migrations: create schema %s: %w", schema, err)
		}
	}

	res, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return fmt.Errorf("migrations: river: %w", err)
	}
	for _, v := range res.Versions {
		logger.InfoContext(ctx, "applied river migration", "version", v.Version, "name", v.Name)
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if schema != "" {
			// The schema alone: with public on the path, a table the
			// tenant lacks would be found there and altered instead.
			if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+pgx.Identifier{schema}.Sanitize()); err != nil {
				return fmt.Errorf("migrations: search_path %s: %w", schema, err)
			}
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS autopatch_migrations (
			version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return fmt.Errorf("migrations: create autopatch_migrations: %w", err)
		}
		// Every version not yet applied, not only those above the highest:
		// two branches may land migrations in either order.
		rows, err := tx.Query(ctx, "SELECT version FROM autopatch_migrations")
		if err != nil {
			return fmt.Errorf("migrations: read versions: %w", err)
		}
		applied, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			return fmt.Errorf("migrations: read versions: %w", err)
		}
		for _, m := range all {
			if slices.Contains(applied, m.Version) {
				continue
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("migrations: %s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO autopatch_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
				return fmt.Errorf("migrations: record %s: %w", m.Name, err)
			}
			logger.InfoContext(ctx, "applied autopatch migration", "version", m.Version, "name", m.Name)
		}
		return nil
	})
}
