package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/calendar"
	"github.com/autopatch/autopatch/internal/estate"
	"github.com/autopatch/autopatch/internal/store"
	"github.com/autopatch/autopatch/internal/testdb"
	"github.com/autopatch/autopatch/migrations"
)

// The operator's commands for one tenant (issue #20): doctor, plan and
// report with --tenant NAME, and doctor of every tenant.

// tenantCollections are each simulated customer's schedules' collections:
// none in common, so a check or window of one customer is told apart from
// the other's.
var tenantCollections = map[string][]string{
	"acme":    {"Patch - Acme DB"},
	"contoso": {"Patch - Contoso Web", "Patch - Contoso App"},
}

// tenantSchedules writes a schedules file of the collections, each schedule
// a window on a day of its own: acme's the 20th, contoso's the 21st and on.
func tenantSchedules(t *testing.T, dir, name string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("schedules:\n")
	day := map[string]int{"acme": 20, "contoso": 21}[name]
	for i, c := range tenantCollections[name] {
		fmt.Fprintf(&b, "  - name: %s-%d\n    collection: %q\n    windows: [{start: \"2026-12-%02dT22:00:00Z\", end: \"2026-12-%02dT23:00:00Z\"}]\n",
			strings.ToUpper(name), i+1, c, day+i, day+i)
	}
	path := filepath.Join(dir, name+"-schedules.yaml")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
	return path
}

// tenantsBundle is acme's and contoso's simulated estates, the tenants file
// and env file `autopatch sim --tenants` writes for them, and the settings
// of a process that serves both (no default tenant).
type tenantsBundle struct {
	estates     *estate.Tenants
	tenantsPath string
	env         map[string]string
}

func setupTenants(t *testing.T, dbURL string) *tenantsBundle {
	t.Helper()
	var list []estate.Tenant
	for _, name := range []string{"acme", "contoso"} {
		list = append(list, estate.Tenant{Name: name, Options: estate.Options{
			Seed:                estate.Seed{UpdateGroups: []string{doctorUpdateGroup}},
			ScheduleCollections: tenantCollections[name],
		}})
	}
	ts, err := estate.StartTenants(t.Context(), list)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, ts.Close()) })
	dir := t.TempDir()
	schedules := map[string]string{}
	for _, name := range ts.Names() {
		schedules[name] = tenantSchedules(t, dir, name)
	}
	b := &tenantsBundle{estates: ts, tenantsPath: filepath.Join(dir, "tenants.yaml"), env: map[string]string{"AUTOPATCH_DATABASE_URL": dbURL}}
	require.NoError(t, ts.WriteFiles(b.tenantsPath, filepath.Join(dir, "sim.env"), schedules))
	for _, line := range ts.Env(b.tenantsPath) {
		k, v, _ := strings.Cut(line, "=")
		b.env[k] = v
	}
	return b
}

// migrate migrates the tenants' schemas, as serve's start does.
func (b *tenantsBundle) migrate(t *testing.T, names ...string) {
	t.Helper()
	for _, name := range names {
		schema := "tenant_" + name
		st, err := store.OpenSchema(t.Context(), b.env["AUTOPATCH_DATABASE_URL"], "test", schema)
		require.NoError(t, err)
		require.NoError(t, migrations.ApplySchema(t.Context(), st.Pool, schema, slog.New(slog.DiscardHandler)))
		st.Close()
	}
}

func (b *tenantsBundle) getenv(k string) string { return b.env[k] }

// doctor runs doctor and checks that no secret of either customer is in
// its output.
func (b *tenantsBundle) doctor(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := doctorMain(t.Context(), args, b.getenv, &stdout, &stderr)
	for k, v := range b.env {
		if strings.HasPrefix(k, "TENANT_") {
			require.NotContains(t, stdout.String()+stderr.String(), v, "%s reached the output", k)
		}
	}
	return code, stdout.String(), stderr.String()
}

// section returns the lines of the tenant's section of doctor's output.
func section(t *testing.T, out, tenant string) string {
	t.Helper()
	_, rest, ok := strings.Cut(out, "== tenant "+tenant+" ==\n")
	require.True(t, ok, "no section of tenant %s in:\n%s", tenant, out)
	if i := strings.Index(rest, "== "); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.Index(rest, "autopatch doctor:"); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// TestDoctorTenant: doctor --tenant checks that tenant's SCCM, SCOM,
// ServiceNow (its own credentials), schedules and schema, and nothing of
// the other's; doctor alone checks every tenant and names the failing one.
func TestDoctorTenant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testdb.URL(t)
	b := setupTenants(t, dbURL)
	b.migrate(t, "acme", "contoso")

	t.Run("OneTenant", func(t *testing.T) {
		code, out, stderr := b.doctor(t, "--tenant", "acme", "--update-group", doctorUpdateGroup)
		require.Equal(t, 0, code, out+stderr)
		require.True(t, strings.HasPrefix(out, "== tenant acme ==\n"), out)
		require.NotContains(t, out, "contoso")
		require.NotContains(t, out, "FAIL  ")
		sec := section(t, out, "acme")
		for _, name := range []string{
			"config", "schedules", "database", "database.schema", "database.migrations",
			"sccm[PS1].winrm", "sccm[PS1].site_drive", `sccm[PS1].collection "Patch - Acme DB"`, `sccm[PS1].update_group "2026-12 Servers"`,
			"scom.winrm", "scom.management_pack", "servicenow.read change_request", "servicenow.write incident",
		} {
			require.True(t, strings.HasPrefix(line(t, sec, name), "ok    "), line(t, sec, name))
		}
		require.Contains(t, line(t, sec, "database.schema"), "tenant_acme")
		require.Contains(t, line(t, sec, "sccm[PS1].winrm"), b.estates.Estate("acme").SiteEndpoint("PS1"))
		require.Regexp(t, `autopatch doctor: \d+ ok, 0 warn, 0 FAIL\n$`, out)
		require.Equal(t, map[string]int{"sccm.doctor": 1}, b.estates.Estate("acme").SCCM().CallsByTemplate())
		require.Empty(t, b.estates.Estate("contoso").SCCM().CallsByTemplate(), "nothing of contoso is dialled")

		code, out, _ = b.doctor(t, "--tenant", "acme", "--update-group", doctorUpdateGroup, "--format", "json")
		require.Equal(t, 0, code, out)
		var rep doctorReport
		require.NoError(t, json.Unmarshal([]byte(out), &rep))
		require.True(t, rep.OK)
		require.Equal(t, []string{"acme"}, rep.Tenants)
		for _, c := range rep.Checks {
			require.Equal(t, "acme", c.Tenant, c.Name)
		}
	})

	t.Run("EveryTenantContosoSCCMUnreachable", func(t *testing.T) {
		// contoso's site server no longer answers where the tenants file
		// says it is.
		file, err := os.ReadFile(b.tenantsPath)
		require.NoError(t, err)
		down := filepath.Join(filepath.Dir(b.tenantsPath), "tenants-contoso-down.yaml")
		endpoint := b.estates.Estate("contoso").SiteEndpoint("PS1")
		require.Contains(t, string(file), endpoint)
		require.NoError(t, os.WriteFile(down, []byte(strings.Replace(string(file), endpoint, "https://"+closedPort(t)+"/wsman", 1)), 0o600))
		env := *b
		env.env = map[string]string{}
		for k, v := range b.env {
			env.env[k] = v
		}
		env.env["AUTOPATCH_TENANTS_FILE"] = down

		code, out, stderr := env.doctor(t, "--update-group", doctorUpdateGroup)
		require.Equal(t, 1, code, out+stderr)
		require.NotContains(t, out, "== tenant default ==", "no default tenant is configured")
		acme, contoso := section(t, out, "acme"), section(t, out, "contoso")
		require.NotContains(t, acme, "FAIL")
		l := line(t, contoso, "sccm[PS1].winrm")
		require.True(t, strings.HasPrefix(l, "FAIL  "), l)
		require.Contains(t, l, "connection refused")
		require.Contains(t, l, "the endpoint of tenant contoso's sccm site PS1 in the tenants file")
		require.True(t, strings.HasPrefix(line(t, contoso, "scom.winrm"), "ok    "), "contoso's SCOM still answers")
		require.True(t, strings.HasPrefix(line(t, contoso, "database.migrations"), "ok    "))
		require.Regexp(t, `autopatch doctor: \d+ ok, 0 warn, 1 FAIL; FAIL in tenant contoso\n$`, out)

		code, out, _ = env.doctor(t, "--update-group", doctorUpdateGroup, "--format", "json")
		require.Equal(t, 1, code)
		var rep doctorReport
		require.NoError(t, json.Unmarshal([]byte(out), &rep))
		require.False(t, rep.OK)
		require.Equal(t, []string{"acme", "contoso"}, rep.Tenants)
		require.Equal(t, []string{"contoso"}, rep.FailedTenants)
	})

	t.Run("WithDefaultTenant", func(t *testing.T) {
		// The AUTOPATCH_* settings of a third estate: serve serves it at
		// today's routes beside the file's tenants, and doctor checks it
		// first, as it always has (no database check: doctor never needed
		// the database for it).
		def := setupHealthy(t)
		env := *b
		env.env = map[string]string{}
		for k, v := range b.env {
			env.env[k] = v
		}
		for k, v := range def.env {
			if k != "AUTOPATCH_DATABASE_URL" {
				env.env[k] = v
			}
		}
		// The WinRM CA is the process's, every tenant's: one bundle of
		// both simulators' CAs, as an MSP would hold its customers'.
		var bundle []byte
		for _, f := range []string{def.env["AUTOPATCH_SCCM_CA_FILE"], b.env["AUTOPATCH_SCCM_CA_FILE"]} {
			pem, err := os.ReadFile(f)
			require.NoError(t, err)
			bundle = append(bundle, pem...)
		}
		caFile := filepath.Join(t.TempDir(), "ca.pem")
		require.NoError(t, os.WriteFile(caFile, bundle, 0o600))
		env.env["AUTOPATCH_SCCM_CA_FILE"], env.env["AUTOPATCH_SCOM_CA_FILE"] = caFile, caFile
		code, out, stderr := env.doctor(t, "--update-group", doctorUpdateGroup)
		require.Equal(t, 0, code, out+stderr)
		require.True(t, strings.HasPrefix(out, "== tenant default ==\n"), out)
		require.Less(t, strings.Index(out, "== tenant acme =="), strings.Index(out, "== tenant contoso =="))
		line(t, section(t, out, "default"), `sccm.collection "Patch - DB - Sat 02:00"`)
		require.NotContains(t, section(t, out, "default"), "database")
		line(t, section(t, out, "contoso"), `sccm[PS1].collection "Patch - Contoso App"`)

		code, out, _ = env.doctor(t, "--tenant", "default", "--update-group", doctorUpdateGroup)
		require.Equal(t, 0, code, out)
		require.True(t, strings.HasPrefix(out, "== tenant default ==\n"), out)
		require.NotContains(t, out, "acme")
		require.NotContains(t, out, "contoso")
	})

	t.Run("SchemaNotMigrated", func(t *testing.T) {
		conn, err := pgx.Connect(ctx, dbURL)
		require.NoError(t, err)
		defer conn.Close(ctx)
		// A tenant added to the file, serve not restarted: its schema is
		// missing.
		_, err = conn.Exec(ctx, `DROP SCHEMA tenant_contoso CASCADE`)
		require.NoError(t, err)
		code, out, _ := b.doctor(t, "--tenant", "contoso", "--update-group", doctorUpdateGroup)
		require.Equal(t, 1, code, out)
		l := line(t, out, "database.schema")
		require.Contains(t, l, "FAIL  database.schema: schema tenant_contoso does not exist")
		require.Contains(t, l, "fix: run `autopatch migrate` with AUTOPATCH_TENANTS_FILE set")

		// Half migrated: autopatch's migrations missing, River's there.
		_, err = conn.Exec(ctx, `CREATE SCHEMA tenant_contoso`)
		require.NoError(t, err)
		st, err := store.OpenSchema(ctx, dbURL, "test", "tenant_contoso")
		require.NoError(t, err)
		defer st.Close()
		require.NoError(t, migrations.ApplySchema(ctx, st.Pool, "tenant_contoso", slog.New(slog.DiscardHandler)))
		_, err = st.Pool.Exec(ctx, `DELETE FROM autopatch_migrations WHERE version = 12`)
		require.NoError(t, err)
		code, out, _ = b.doctor(t, "--tenant", "contoso", "--update-group", doctorUpdateGroup)
		require.Equal(t, 1, code, out)
		require.Contains(t, line(t, out, "database.migrations"), "FAIL  database.migrations: not applied in tenant_contoso: 0012_forcing_sites.sql")
	})
}

// TestTenantFlagRefusals: --tenant without a tenants file, an unknown
// tenant, default without a default tenant, and the flags --tenant
// excludes, in each command; a tenants file that does not load.
func TestTenantFlagRefusals(t *testing.T) {
	t.Parallel()
	tenantsPath := tenantsFile(t, "")
	withFile := func(k string) string {
		return map[string]string{"AUTOPATCH_TENANTS_FILE": tenantsPath, "AUTOPATCH_DATABASE_URL": "postgres://unused@127.0.0.1:1/x"}[k]
	}
	withoutFile := func(k string) string {
		return map[string]string{"AUTOPATCH_DATABASE_URL": "postgres://unused@127.0.0.1:1/x"}[k]
	}
	now := func() time.Time { return time.Date(2026, 12, 13, 0, 0, 0, 0, time.UTC) }
	commands := map[string]func(args []string, getenv func(string) string, stdout, stderr io.Writer) int{
		"doctor": func(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
			return doctorMain(t.Context(), args, getenv, stdout, stderr)
		},
		"plan": func(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
			return planMain(append(args, "--month", "2026-12"), getenv, stdout, stderr)
		},
		"report": func(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
			return report(t.Context(), append(args, "--cycle", "2026-12"), stdout, stderr, getenv, now)
		},
	}
	for _, tc := range []struct {
		name   string
		args   []string
		getenv func(string) string
		want   string
	}{
		{"NoTenantsFile", []string{"--tenant", "acme"}, withoutFile,
			`--tenant "acme": AUTOPATCH_TENANTS_FILE is not set: without a tenants file the only tenant is the default one`},
		{"UnknownTenant", []string{"--tenant", "globex"}, withFile,
			`--tenant "globex": no such tenant in AUTOPATCH_TENANTS_FILE ` + tenantsPath + `; its tenants: acme, contoso`},
		{"UpperCase", []string{"--tenant", "ACME"}, withFile, `its tenants: acme, contoso`},
		{"NoDefaultTenant", []string{"--tenant", "default"}, withFile, "--tenant default: this process has no default tenant"},
	} {
		for _, cmd := range []string{"doctor", "plan", "report"} {
			t.Run(tc.name+"/"+cmd, func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				require.Equal(t, 2, commands[cmd](tc.args, tc.getenv, &stdout, &stderr), stderr.String())
				require.Contains(t, stderr.String(), tc.want)
				require.Empty(t, stdout.String())
			})
		}
	}

	t.Run("PlanExcludes", func(t *testing.T) {
		for _, bad := range []struct {
			args []string
			want string
		}{
			{[]string{"--tenant", "acme", "--schedules", planSchedules, "--month", "2026-12"}, "--tenant and --schedules exclude each other"},
			{[]string{"--tenant", "acme", "--check", "--assignments", "x", "--services", "y"}, "--tenant and --services exclude each other"},
			{[]string{"--schedules", planSchedules, "--config", "c.yaml", "--month", "2026-12"}, "--config goes with --tenant"},
		} {
			var stdout, stderr bytes.Buffer
			require.Equal(t, 2, planMain(bad.args, withFile, &stdout, &stderr), bad.args)
			require.Contains(t, stderr.String(), bad.want)
		}
	})

	t.Run("TenantsFileDoesNotLoad", func(t *testing.T) {
		// acme's SCOM password file is gone: serve would not start, and
		// the commands say why, naming the tenant and the field.
		dir := t.TempDir()
		file, err := os.ReadFile(tenantsPath)
		require.NoError(t, err)
		broken := filepath.Join(dir, "tenants.yaml")
		require.NoError(t, os.WriteFile(broken, []byte(strings.ReplaceAll(string(file), "password_file: acme-scom", "password_env: ACME_TEST_UNSET_SCOM")), 0o600))
		for _, name := range []string{"acme", "contoso"} {
			for _, secret := range []string{"sccm", "scom", "snow", "webhook", "token"} {
				src, err := os.ReadFile(filepath.Join(filepath.Dir(tenantsPath), name+"-"+secret))
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(filepath.Join(dir, name+"-"+secret), src, 0o600))
			}
		}
		getenv := func(k string) string {
			return map[string]string{"AUTOPATCH_TENANTS_FILE": broken, "AUTOPATCH_DATABASE_URL": "postgres://unused@127.0.0.1:1/x"}[k]
		}
		const want = `tenants[0] "acme": scom.password_env: environment variable ACME_TEST_UNSET_SCOM is unset or empty`
		for _, args := range [][]string{{"--tenant", "contoso"}, nil} {
			var stdout, stderr bytes.Buffer
			require.Equal(t, 1, doctorMain(t.Context(), args, getenv, &stdout, &stderr), stdout.String())
			require.Contains(t, stdout.String(), "== tenants file ==\nFAIL  tenants_file: ")
			require.Contains(t, stdout.String(), want)
			require.Contains(t, stdout.String(), "FAIL in the tenants file\n")
			require.NotContains(t, stdout.String(), "-value", "no secret")
		}
		for _, cmd := range []string{"plan", "report"} {
			var stdout, stderr bytes.Buffer
			require.Equal(t, 1, commands[cmd]([]string{"--tenant", "contoso"}, getenv, &stdout, &stderr), cmd)
			require.Contains(t, stderr.String(), "AUTOPATCH_TENANTS_FILE: ")
			require.Contains(t, stderr.String(), want)
			require.NotContains(t, stderr.String(), "-value", "no secret")
		}
	})
}

// TestPlanTenant: plan --tenant reads that tenant's schedules file; two
// tenants, two sets of windows.
func TestPlanTenant(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	schedules := map[string]string{"acme": tenantSchedules(t, dir, "acme"), "contoso": tenantSchedules(t, dir, "contoso")}
	tenantsPath := tenantsFile(t, "")
	file, err := os.ReadFile(tenantsPath)
	require.NoError(t, err)
	// tenantsFile gives both the example's schedules: each its own here.
	example, err := filepath.Abs("../../integrations/sccm/schedules.example.yaml")
	require.NoError(t, err)
	text := strings.Replace(string(file), example, schedules["acme"], 1)
	text = strings.Replace(text, example, schedules["contoso"], 1)
	require.NoError(t, os.WriteFile(tenantsPath, []byte(text), 0o600))
	env := map[string]string{"AUTOPATCH_TENANTS_FILE": tenantsPath}
	run := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := planMain(args, func(k string) string { return env[k] }, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}

	windows := map[string][]calendar.WindowJSON{}
	for _, name := range []string{"acme", "contoso"} {
		code, out, stderr := run("--tenant", name, "--month", "2026-12", "--format", "json")
		require.Equal(t, 0, code, stderr)
		var doc struct {
			Tenant  string                `json:"tenant"`
			Windows []calendar.WindowJSON `json:"windows"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &doc))
		require.Equal(t, name, doc.Tenant)
		windows[name] = doc.Windows
	}
	require.Len(t, windows["acme"], 1)
	require.Equal(t, "ACME-1", windows["acme"][0].Schedule)
	require.Equal(t, "2026-12-20T22:00:00Z", windows["acme"][0].StartUTC)
	require.Len(t, windows["contoso"], 2)
	for _, w := range windows["contoso"] {
		require.True(t, strings.HasPrefix(w.Schedule, "CONTOSO-"), w.Schedule)
	}
	require.Equal(t, "2026-12-21T22:00:00Z", windows["contoso"][0].StartUTC)

	code, out, _ := run("--tenant", "contoso", "--change-start", "2026-12-21 00:00:00", "--change-end", "2026-12-23 00:00:00")
	require.Equal(t, 0, code)
	require.True(t, strings.HasPrefix(out, "Tenant contoso: schedules "+schedules["contoso"]+"\n\n"), out)
	require.Contains(t, out, "CONTOSO-2")
	require.NotContains(t, out, "ACME-1")

	// --check with the tenant's schedules: an assignment to acme's
	// schedule is unknown at contoso.
	assignments := filepath.Join(dir, "assignments.yaml")
	require.NoError(t, os.WriteFile(assignments, []byte("devices:\n  - {name: SQL01, service: db, tier: backend, schedule: ACME-1}\n"), 0o600))
	code, _, stderr := run("--tenant", "acme", "--check", "--assignments", assignments, "--month", "2026-12")
	require.Equal(t, 0, code, stderr)
	code, _, stderr = run("--tenant", "contoso", "--check", "--assignments", assignments, "--month", "2026-12")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "ACME-1")

	// default: AUTOPATCH_SCHEDULES_FILE, with or without a tenants file.
	env = map[string]string{"AUTOPATCH_SCHEDULES_FILE": schedules["contoso"]}
	code, out, stderr = run("--tenant", "default", "--month", "2026-12", "--format", "json")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "CONTOSO-1")
	env = map[string]string{}
	code, _, stderr = run("--tenant", "default", "--month", "2026-12")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "--tenant default: AUTOPATCH_SCHEDULES_FILE is not set")
}

// TestReportTenant: report --tenant reads that tenant's schema only: a
// change recorded at acme is in acme's report, not contoso's nor the
// default tenant's.
func TestReportTenant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testdb.URL(t)
	tenantsPath := tenantsFile(t, "")
	for _, name := range []string{"acme", "contoso"} {
		st, err := store.OpenSchema(ctx, dbURL, "test", "tenant_"+name)
		require.NoError(t, err)
		require.NoError(t, migrations.ApplySchema(ctx, st.Pool, "tenant_"+name, slog.New(slog.DiscardHandler)))
		if name == "acme" {
			_, err = st.Pool.Exec(ctx, reportChangeSQL+`
				INSERT INTO device_results (deployment_id, device_name, status_type, error_code, message, status_time, observed_at)
				SELECT id, 'ACMESQL01', 1, NULL, 'ok', '2026-12-12 03:00Z', '2026-12-12 06:00:02Z' FROM deployments;
			`)
			require.NoError(t, err)
		}
		st.Close()
	}
	env := map[string]string{"AUTOPATCH_DATABASE_URL": dbURL, "AUTOPATCH_TENANTS_FILE": tenantsPath}
	now := func() time.Time { return time.Date(2026, 12, 13, 0, 0, 0, 0, time.UTC) }
	run := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := report(ctx, args, &stdout, &stderr, func(k string) string { return env[k] }, now)
		return code, stdout.String(), stderr.String()
	}

	code, out, stderr := run("--tenant", "acme", "--change", "CHG0031234")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "ACMESQL01")
	code, out, stderr = run("--tenant", "acme", "--cycle", "2026-12", "--format", "csv")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "CHG0031234,ACMESQL01")

	code, _, stderr = run("--tenant", "contoso", "--change", "CHG0031234")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `--change: autopatch has received no change "CHG0031234" at tenant contoso`)
	code, out, stderr = run("--tenant", "contoso", "--cycle", "2026-12", "--format", "json")
	require.Equal(t, 0, code, stderr)
	require.NotContains(t, out, "ACMESQL01")
	require.NotContains(t, out, "CHG0031234")

	// Without --tenant: public, as before tenants; acme's change is not
	// there either.
	code, _, stderr = run("--change", "CHG0031234")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `no change "CHG0031234"`+"\n")

	// A tenant whose schema was never migrated: said so, no fallback to
	// public.
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `DROP SCHEMA tenant_contoso CASCADE; CREATE SCHEMA tenant_contoso`)
	require.NoError(t, err)
	code, _, stderr = run("--tenant", "contoso", "--cycle", "2026-12")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "tenant contoso: schema tenant_contoso is not migrated")
	require.Contains(t, stderr, "run `autopatch migrate`")
}
