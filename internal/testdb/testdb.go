// Package testdb gives tests a real, migrated PostgreSQL database of their own.
//
// It uses the server at TEST_DATABASE_URL when set and otherwise starts a
// throwaway cluster (internal/pgtemp) once per test binary. The schema is
// migrated once into a template database named after a hash of the
// migrations; each test gets a fresh clone of it, so tests run in parallel,
// commit for real (River clients need that) and never see each other's rows.
//
// A package that uses it must call Run from TestMain so the throwaway
// cluster is stopped when its tests end.
package testdb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/autopatch/autopatch/internal/pgtemp"
	"github.com/autopatch/autopatch/migrations"
)

var (
	once     sync.Once
	server   string // URL of the maintenance database
	template string
	cluster  *pgtemp.Cluster
	setupErr error
	counter  atomic.Int64
)

// Run runs the tests and then stops the throwaway cluster, if one started.
func Run(m *testing.M) {
	code := m.Run()
	if cluster != nil {
		_ = cluster.Close()
	}
	os.Exit(code)
}

// Cluster returns the throwaway cluster of this test binary, starting it if
// needed, or nil when TEST_DATABASE_URL points at a server. Tests that stop
// and start the server (readiness) use it.
func Cluster(t testing.TB) *pgtemp.Cluster {
	t.Helper()
	setup(t)
	return cluster
}

// URL returns the connection URL of a fresh migrated database that is
// dropped when the test ends.
func URL(t testing.TB) string {
	t.Helper()
	setup(t)
	ctx := context.Background()
	name := fmt.Sprintf("t_%d_%d", os.Getpid(), counter.Add(1))

	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatalf("testdb: connect: %v", err)
	}
	defer admin.Close(ctx)
	// CREATE DATABASE fails while another session is copying the same
	// template; that is brief, so retry.
	for attempt := 0; ; attempt++ {
		_, err = admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, template))
		if err == nil {
			break
		}
		if attempt > 100 || !strings.Contains(err.Error(), "is being accessed by other users") {
			t.Fatalf("testdb: create database: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, server)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name))
	})
	return withDatabase(server, name)
}

// Pool returns a pool on a fresh migrated database, closed when the test ends.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), URL(t))
	if err != nil {
		t.Fatalf("testdb: pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func setup(t testing.TB) {
	t.Helper()
	once.Do(func() { setupErr = start() })
	if setupErr != nil {
		t.Fatalf("testdb: %v", setupErr)
	}
}

func start() error {
	ctx := context.Background()
	server = os.Getenv("TEST_DATABASE_URL")
	if server == "" {
		c, err := pgtemp.Start(ctx)
		if err != nil {
			return err
		}
		cluster = c
		server = c.URL("postgres")
	}

	all, err := migrations.All()
	if err != nil {
		return err
	}
	h := sha256.New()
	for _, m := range all {
		fmt.Fprintf(h, "%d\x00%s\x00", m.Version, m.SQL)
	}
	template = "autopatch_tmpl_" + hex.EncodeToString(h.Sum(nil))[:16]

	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", redact(server), err)
	}
	defer admin.Close(ctx)
	// Several test binaries may share TEST_DATABASE_URL: one builds the
	// template, the others wait for it.
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock(7362)"); err != nil {
		return err
	}
	defer admin.Exec(ctx, "SELECT pg_advisory_unlock(7362)") //nolint:errcheck
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", template).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	building := template + "_build"
	if _, err := admin.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", building)); err != nil {
		return err
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+building); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, withDatabase(server, building))
	if err != nil {
		return err
	}
	err = migrations.Apply(ctx, pool, slog.New(slog.NewTextHandler(io.Discard, nil)))
	pool.Close()
	if err != nil {
		return err
	}
	// Renamed only when complete, so a crash never leaves a half-migrated
	// template that later runs would trust.
	_, err = admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", building, template))
	return err
}

func withDatabase(raw, db string) string {
	u, err := url.Parse(raw)
	if err != nil {
		panic(err)
	}
	u.Path = "/" + db
	return u.String()
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
