package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/config"
	"github.com/autopatch/autopatch/internal/estate"
	"github.com/autopatch/autopatch/internal/testdb"
)

// TestServeSites: serve with AUTOPATCH_SCCM_SITES gives the jobs one
// connector per site, and refuses to start with a schedule at a site it
// does not know (docs/architecture.md §10.1).
func TestServeSites(t *testing.T) {
	t.Parallel()
	schedules := func(site string) string {
		path := filepath.Join(t.TempDir(), "schedules.yaml")
		require.NoError(t, os.WriteFile(path, []byte(`schedules:
  - {name: LON, collection: "Patch - London", site: PS1, windows: [{start: "2026-12-20T22:00:00Z", end: "2026-12-21T02:00:00Z"}]}
  - {name: FRA, collection: "Patch - Frankfurt", site: `+site+`, windows: [{start: "2026-12-20T22:00:00Z", end: "2026-12-21T02:00:00Z"}]}
`), 0o600))
		return path
	}
	load := func(t *testing.T, dbURL, schedulesFile string) *config.Config {
		env := testEnv(dbURL)
		delete(env, "AUTOPATCH_SCCM_ENDPOINT")
		env["AUTOPATCH_SCHEDULES_FILE"] = schedulesFile
		env["AUTOPATCH_SCCM_SITES"] = "PS1,EU1"
		env["AUTOPATCH_SCCM_PS1_ENDPOINT"] = "https://127.0.0.1:1/wsman"
		env["AUTOPATCH_SCCM_EU1_ENDPOINT"] = "https://127.0.0.1:2/wsman"
		return configOf(t, env)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	t.Run("OneConnectorPerSite", func(t *testing.T) {
		t.Parallel()
		// A deployment made while the estate had one site.
		dbURL := testdb.URL(t)
		conn, err := pgx.Connect(context.Background(), dbURL)
		require.NoError(t, err)
		_, err = conn.Exec(context.Background(), `
			INSERT INTO schedules (name, collection, kind, timezone, definition) VALUES ('OLD', 'Patch - Old', 'automatic', 'UTC', '{}');
			INSERT INTO changes (number, sys_id, state, approval, start_at, end_at, update_groups, schedules, revision)
				VALUES ('CHG0000001', '00000000000000000000000000000001', 'scheduled', 'approved', now(), now() + interval '1 day', '{}', '{}', 1);
			INSERT INTO deployments (change_number, schedule_name, update_group, name, collection, window_start, window_end, close_at, state)
				VALUES ('CHG0000001', 'OLD', 'G', 'AP-CHG0000001-OLD-G', 'Patch - Old', now() + interval '1 hour', now() + interval '2 hours', now() + interval '2 hours', 'created')`)
		require.NoError(t, err)
		require.NoError(t, conn.Close(context.Background()))

		srv, err := initServer(context.Background(), load(t, dbURL, schedules("EU1")), logger)
		require.NoError(t, err)
		t.Cleanup(func() {
			_ = srv.listener.Close()
			srv.close()
		})
		require.Len(t, srv.tenants[0].deps.Sites, 2)
		require.Equal(t, "PS1", srv.tenants[0].deps.Sites[0].Code)
		require.Equal(t, "EU1", srv.tenants[0].deps.Sites[1].Code)
		fra, ok := srv.tenants[0].schedules.Get().Get("FRA")
		require.True(t, ok)
		require.Equal(t, "EU1", fra.Site)
		var site string
		require.NoError(t, srv.store.Pool.QueryRow(context.Background(), `SELECT site FROM deployments WHERE name = 'AP-CHG0000001-OLD-G'`).Scan(&site))
		require.Equal(t, "PS1", site, "the single site's deployments are the first site's")
	})

	t.Run("UnknownSite", func(t *testing.T) {
		t.Parallel()
		_, err := initServer(context.Background(), load(t, testdb.URL(t), schedules("US1")), logger)
		require.ErrorContains(t, err, `schedule "FRA": site: unknown site "US1" (configured: PS1, EU1)`)
	})
}

// TestDoctorChecksEverySite: with AUTOPATCH_SCCM_SITES, doctor checks each
// site's server for the collections of that site's schedules, one call
// each, under checks named sccm[CODE].
func TestDoctorChecksEverySite(t *testing.T) {
	t.Parallel()
	e, err := estate.Start(t.Context(), estate.Options{
		Seed:                estate.Seed{UpdateGroups: []string{doctorUpdateGroup}},
		ScheduleCollections: []string{"Patch - London"},
		Sites:               []string{"EU1"},
		SiteCollections:     map[string][]string{"EU1": {"Patch - Frankfurt"}},
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	path := filepath.Join(t.TempDir(), "schedules.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`schedules:
  - {name: LON, collection: "Patch - London", site: PS1, windows: [{start: "2026-12-20T22:00:00Z", end: "2026-12-21T02:00:00Z"}]}
  - {name: FRA, collection: "Patch - Frankfurt", site: EU1, windows: [{start: "2026-12-20T22:00:00Z", end: "2026-12-21T02:00:00Z"}]}
`), 0o600))
	b := &doctorBundle{estate: e, env: map[string]string{
		"AUTOPATCH_SCHEDULES_FILE": path,
		"AUTOPATCH_DATABASE_URL":   "postgres://autopatch@localhost/autopatch",
	}}
	for _, l := range e.Env() {
		k, v, _ := strings.Cut(l, "=")
		b.env[k] = v
	}

	code, out := b.run(t, "--update-group", doctorUpdateGroup)
	require.Equal(t, 0, code, out)
	for _, name := range []string{
		"sccm[PS1].winrm", "sccm[PS1].site_drive", `sccm[PS1].collection "Patch - London"`, `sccm[PS1].update_group "2026-12 Servers"`,
		"sccm[EU1].winrm", "sccm[EU1].site_drive", `sccm[EU1].collection "Patch - Frankfurt"`, `sccm[EU1].update_group "2026-12 Servers"`,
	} {
		line(t, out, name)
	}
	require.Contains(t, line(t, out, "sccm[EU1].site_drive"), "EU1:")
	require.NotContains(t, out, `sccm[PS1].collection "Patch - Frankfurt"`, "each site is asked for its own collections")
	require.Equal(t, map[string]int{"sccm.doctor": 1}, e.SCCM().CallsByTemplate())
	require.Equal(t, map[string]int{"sccm.doctor": 1}, e.Site("EU1").CallsByTemplate())
}
