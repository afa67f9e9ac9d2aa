package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/connectors/scom"
	"github.com/autopatch/autopatch/connectors/servicenow"
	"github.com/autopatch/autopatch/connectors/winrm"
	"github.com/autopatch/autopatch/internal/config"
	"github.com/autopatch/autopatch/internal/schedules"
	"github.com/autopatch/autopatch/internal/store"
	"github.com/autopatch/autopatch/internal/tenants"
	"github.com/autopatch/autopatch/migrations"
)

const doctorUsage = `Usage: autopatch doctor [flags]

Runs read-only checks against the configured SCCM site, SCOM management group
and ServiceNow instance, with serve's configuration, and prints one line per
check: ok, warn or FAIL, the check's name, what was found and, when not ok,
what to do. Exits 1 when any check FAILs, 0 otherwise (warnings included).
Nothing is created, changed or deleted anywhere.

Update groups: the groups a change may name are not in any file; give them with
--update-group (repeatable) and/or AUTOPATCH_DOCTOR_UPDATE_GROUPS
(comma-separated). Both lists are checked.

Tenants: with AUTOPATCH_TENANTS_FILE, doctor checks every tenant serve would
serve (the default one, when its AUTOPATCH_* settings are set, then each of
the file's), side by side, each under a "== tenant NAME ==" heading, and
exits 1 when any tenant has a FAIL; the last line names them. --tenant NAME
checks that tenant only: its SCCM sites, SCOM and ServiceNow with its own
credentials, its schedules file, and its database schema (tenant_NAME:
present, autopatch's and River's migrations applied). --tenant default is the
tenant of the AUTOPATCH_* settings alone. The update groups are checked at
every tenant's sites.

Flags:
`

// Statuses of a check, as printed.
const (
	statusOK   = "ok"
	statusWarn = "warn"
	statusFail = "FAIL"
)

// check is one line of the doctor's report.
type check struct {
	Status string `json:"status"`
	Name   string `json:"name"`
	Detail string `json:"detail"`
	// Fix says what to do; empty when the check is ok.
	Fix string `json:"fix,omitempty"`
	// Tenant is whose check this is, once a tenants file or --tenant is
	// in use; empty (left out) otherwise, as before tenants.
	Tenant string `json:"tenant,omitempty"`
}

// doctorReport is the --format json document.
type doctorReport struct {
	OK bool `json:"ok"`
	// Tenants are the tenants checked, in order, when a tenants file or
	// --tenant is in use; FailedTenants those with a FAIL.
	Tenants       []string `json:"tenants,omitempty"`
	FailedTenants []string `json:"failed_tenants,omitempty"`
	Checks        []check  `json:"checks"`
}

// runDoctor is `autopatch doctor`: 0 when no check fails, 1 when one does,
// 2 for bad usage.
func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return doctorMain(ctx, args, os.Getenv, stdout, stderr)
}

// doctorMain is runDoctor with the environment as a function, for tests.
func doctorMain(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, doctorUsage)
		fs.PrintDefaults()
	}
	configFile := fs.String("config", "", "optional YAML configuration `FILE` (as serve's)")
	format := fs.String("format", "text", "output `format`: text or json")
	timeout := fs.Duration("timeout", 3*time.Minute, "give up on the remote checks after this `duration`")
	var groups []string
	fs.Func("update-group", "software update group `NAME` a change may name (repeatable)", func(v string) error {
		if strings.TrimSpace(v) == "" {
			return errors.New("empty name")
		}
		groups = append(groups, v)
		return nil
	})
	tenantName := fs.String("tenant", "", tenantFlagDoc)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "autopatch doctor: unexpected arguments: %v\n", fs.Args())
		fs.Usage()
		return 2
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintf(stderr, "autopatch doctor: --format %q: want text or json\n", *format)
		return 2
	}

	var sections []doctorSection
	cfg, err := config.Load(getenv, *configFile)
	if err != nil {
		// Nothing can be reached with an invalid configuration.
		sections = []doctorSection{{checks: configChecks(err)}}
	} else {
		var doctors []*doctor
		if doctors, sections, err = doctorsFor(cfg, *tenantName, getenv, mergeGroups(groups, cfg.DoctorUpdateGroups)); err != nil {
			fmt.Fprintf(stderr, "autopatch doctor: %v\n", err)
			return 2
		}
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		// The tenants side by side: each one's checks take seconds (a
		// WinRM call per system), and a patch night's check of every
		// customer should take no longer than one's.
		parts := make([]doctorSection, len(doctors))
		var wg sync.WaitGroup
		for i, d := range doctors {
			wg.Go(func() { parts[i] = doctorSection{tenant: d.name(), checks: d.run(ctx)} })
		}
		wg.Wait()
		sections = append(sections, parts...)
	}
	tenantMode := *tenantName != "" || (cfg != nil && cfg.TenantsFile != "")

	var checks []check
	var names, failedTenants []string
	fileFailed := false
	for _, sec := range sections {
		failed := false
		isTenant := tenantMode && sec.tenant != tenantsFileSection && sec.tenant != ""
		for _, c := range sec.checks {
			if isTenant {
				c.Tenant = sec.tenant
			}
			checks = append(checks, c)
			failed = failed || c.Status == statusFail
		}
		switch {
		case isTenant:
			names = append(names, sec.tenant)
			if failed {
				failedTenants = append(failedTenants, sec.tenant)
			}
		case sec.tenant == tenantsFileSection:
			fileFailed = true
		}
	}
	failed := slices.ContainsFunc(checks, func(c check) bool { return c.Status == statusFail })
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		rep := doctorReport{OK: !failed, Checks: checks}
		if tenantMode {
			rep.Tenants, rep.FailedTenants = names, failedTenants
		}
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "autopatch doctor: %v\n", err)
			return 1
		}
	} else if tenantMode {
		printSections(stdout, sections, failedTenants, fileFailed)
	} else {
		printChecks(stdout, checks)
	}
	if failed {
		return 1
	}
	return 0
}

// doctorSection is the checks of one tenant ("" without tenants, or for
// the tenants file itself when it does not load).
type doctorSection struct {
	tenant string
	checks []check
}

// tenantsFileSection heads the tenants file's own check.
const tenantsFileSection = "tenants file"

// doctorsFor returns the doctors of the tenants to check: the one of
// today's configuration without a tenants file, the tenant of --tenant, or
// every tenant serve would serve. A tenants file that does not load is a
// section of FAILs rather than an error: the operator gets it with the
// other tenants' checks, as serve would refuse to start on it. The error
// is a --tenant that names no tenant (exit 2).
func doctorsFor(cfg *config.Config, name string, getenv func(string) string, groups []string) ([]*doctor, []doctorSection, error) {
	if name != "" {
		tenant, err := chooseTenant(cfg, name, getenv)
		if isUsage(err) {
			return nil, nil, err
		}
		if err != nil {
			return nil, []doctorSection{{tenant: tenantsFileSection, checks: tenantsFileChecks(err)}}, nil
		}
		return []*doctor{{cfg: tenant.cfg, updateGroups: groups, tenant: tenant.file}}, nil, nil
	}
	var doctors []*doctor
	if cfg.DefaultTenant() {
		doctors = append(doctors, &doctor{cfg: cfg, updateGroups: groups})
	}
	if cfg.TenantsFile == "" {
		return doctors, nil, nil
	}
	list, err := loadTenants(cfg, getenv)
	if err != nil {
		return doctors, []doctorSection{{tenant: tenantsFileSection, checks: tenantsFileChecks(err)}}, nil
	}
	for i := range list {
		doctors = append(doctors, &doctor{cfg: tenantConfig(cfg, list[i]), updateGroups: groups, tenant: &list[i]})
	}
	return doctors, nil, nil
}

// tenantsFileChecks turns the tenants file's errors (one line each, naming
// the tenant, the field and the line, never a secret) into FAIL lines.
func tenantsFileChecks(err error) []check {
	return failChecks(err, "tenants_file", "correct the tenants file (docs/tenants.md); serve refuses to start with it as it is")
}

// failChecks makes one FAIL line named name per line of err (an
// errors.Join of one error per problem), each with fix.
func failChecks(err error, name, fix string) []check {
	var out []check
	for _, msg := range strings.Split(err.Error(), "\n") {
		if msg = strings.TrimSpace(msg); msg != "" {
			out = append(out, check{Status: statusFail, Name: name, Detail: msg, Fix: fix})
		}
	}
	return out
}

// name is the tenant's name: tenants.DefaultName for the AUTOPATCH_*
// settings' tenant.
func (d *doctor) name() string {
	if d.tenant == nil {
		return tenants.DefaultName
	}
	return d.tenant.Name
}

// printSections is printChecks with a heading per tenant, and a last line
// that names the tenants with a FAIL: with ten customers, the one to wake
// up for is on the last line.
func printSections(w io.Writer, sections []doctorSection, failedTenants []string, fileFailed bool) {
	var all []check
	for _, sec := range sections {
		switch sec.tenant {
		case "": // the settings do not load: no tenant to speak of
		case tenantsFileSection:
			fmt.Fprintf(w, "== %s ==\n", sec.tenant)
		default:
			fmt.Fprintf(w, "== tenant %s ==\n", sec.tenant)
		}
		for _, c := range sec.checks {
			fmt.Fprintf(w, "%-4s  %s\n", c.Status, oneLine(checkLine(c)))
		}
		all = append(all, sec.checks...)
	}
	counts := map[string]int{}
	for _, c := range all {
		counts[c.Status]++
	}
	fmt.Fprintf(w, "autopatch doctor: %d ok, %d warn, %d FAIL", counts[statusOK], counts[statusWarn], counts[statusFail])
	var where []string
	if fileFailed {
		where = append(where, "the tenants file")
	}
	if len(failedTenants) > 0 {
		where = append(where, "tenant "+strings.Join(failedTenants, ", "))
	}
	if len(where) > 0 {
		fmt.Fprintf(w, "; FAIL in %s", strings.Join(where, " and "))
	}
	fmt.Fprintln(w)
}

// printChecks writes one line per check and a count.
func printChecks(w io.Writer, checks []check) {
	counts := map[string]int{}
	for _, c := range checks {
		counts[c.Status]++
		fmt.Fprintf(w, "%-4s  %s\n", c.Status, oneLine(checkLine(c)))
	}
	fmt.Fprintf(w, "autopatch doctor: %d ok, %d warn, %d FAIL\n", counts[statusOK], counts[statusWarn], counts[statusFail])
}

// checkLine is a check as printed, but its status.
func checkLine(c check) string {
	line := c.Name + ": " + c.Detail
	if c.Fix != "" {
		line += " — fix: " + c.Fix
	}
	return line
}

// oneLine folds remote error texts (PowerShell's are multi-line) into one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// mergeGroups joins the flag's groups and the setting's, each name once, in order.
func mergeGroups(flagGroups []string, setting string) []string {
	var out []string
	for _, g := range append(slices.Clone(flagGroups), strings.Split(setting, ",")...) {
		if g = strings.TrimSpace(g); g != "" && !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out
}

// configChecks turns a configuration error (errors.Join of one error per
// setting) into one FAIL line per setting.
func configChecks(err error) []check {
	return failChecks(err, "config", "set it in the environment (AUTOPATCH_*, secrets also as AUTOPATCH_*_FILE) or in the --config file; see README, Configuration")
}

// doctor runs the checks with one configuration.
type doctor struct {
	cfg          *config.Config
	updateGroups []string
	// tenant is the tenants file's tenant whose configuration cfg is
	// (tenantConfig); nil for the default tenant. Its fixes name the
	// tenants file's keys, and its schema is checked too.
	tenant *tenants.Tenant
}

// settingNames are the settings a check's fix tells the operator to
// correct: the AUTOPATCH_* variables for the default tenant, the tenants
// file's keys for a file tenant, whose endpoints, users and passwords are
// there, and whose winrm block, when it has one, overrides the process's
// AUTOPATCH_SCCM_*/AUTOPATCH_SCOM_* authentication, CA and timeout.
type settingNames struct {
	all         string // "the AUTOPATCH_SCCM_* settings"
	endpoint    string // "AUTOPATCH_SCCM_ENDPOINT"
	credentials string // "AUTOPATCH_SCCM_USER / _PASSWORD"
	shared      string // prefix of _AUTH, _CA_FILE, _INSECURE_SKIP_VERIFY, _TIMEOUT
	// winrm, for a file tenant, is where its own WinRM settings are (the
	// tenants file's winrm block), which win over the process's shared ones.
	winrm   string
	missing string // why a system is not checked
}

// winrmSetting names the WinRM setting key (AUTH, CA_FILE,
// INSECURE_SKIP_VERIFY, TIMEOUT) where it is set.
func (n settingNames) winrmSetting(key string) string {
	if n.winrm == "" {
		return n.shared + "_" + key
	}
	return "winrm." + strings.ToLower(key) + " of " + n.winrm + " (else " + n.shared + "_" + key + ")"
}

func envNames(prefix string) settingNames {
	return settingNames{all: "the " + prefix + "_* settings", endpoint: prefix + "_ENDPOINT", credentials: prefix + "_USER / _PASSWORD",
		shared: prefix, missing: prefix + "_ENDPOINT, _USER or _PASSWORD is not set"}
}

// fileNames names a file tenant's key (sccm site PS1, scom, servicenow).
func (d *doctor) fileNames(key, shared string) settingNames {
	where := "tenant " + d.tenant.Name + "'s " + key + " in the tenants file"
	return settingNames{all: where, endpoint: "the endpoint of " + where, credentials: "the user / password_env (or password_file) of " + where,
		shared: shared, winrm: "tenant " + d.tenant.Name + " in the tenants file", missing: where + " lacks its endpoint, user or password"}
}

// sccmNames names the settings of the SCCM site code ("" for the one site
// of AUTOPATCH_SCCM_ENDPOINT).
func (d *doctor) sccmNames(code string) settingNames {
	if d.tenant != nil {
		return d.fileNames("sccm site "+code, "AUTOPATCH_SCCM")
	}
	if code == "" {
		return envNames("AUTOPATCH_SCCM")
	}
	n := envNames("AUTOPATCH_SCCM_" + code)
	// A site has its own endpoint, user and password, not its own
	// authentication, CA or timeout (docs/architecture.md §10.1).
	n.shared = "AUTOPATCH_SCCM"
	return n
}

func (d *doctor) scomNames() settingNames {
	if d.tenant != nil {
		return d.fileNames("scom", "AUTOPATCH_SCOM")
	}
	return envNames("AUTOPATCH_SCOM")
}

func (d *doctor) serviceNowNames() settingNames {
	if d.tenant != nil {
		n := d.fileNames("servicenow", "")
		n.endpoint = "the url of tenant " + d.tenant.Name + "'s servicenow in the tenants file"
		return n
	}
	return settingNames{all: "the AUTOPATCH_SERVICENOW_* settings", endpoint: "AUTOPATCH_SERVICENOW_URL",
		credentials: "AUTOPATCH_SERVICENOW_USER / _PASSWORD (and _OAUTH_CLIENT_ID / _SECRET when set)",
		missing:     "AUTOPATCH_SERVICENOW_URL, _USER or _PASSWORD is not set"}
}

// run checks the configuration, then the three systems at once (they are
// independent, and each WinRM call takes seconds), and returns the checks in a
// fixed order: configuration, SCCM, SCOM, ServiceNow.
func (d *doctor) run(ctx context.Context) []check {
	var checks []check
	if err := d.cfg.ValidateServe(); err != nil {
		checks = append(checks, configChecks(err)...)
	} else {
		checks = append(checks, check{Status: statusOK, Name: "config", Detail: "every setting serve requires is set and valid"})
	}
	collections, scheduleChecks := d.scheduleCollections()
	checks = append(checks, scheduleChecks...)
	if d.cfg.Force.Collection != "" {
		// Forced remediation needs its collection too (README, Forced remediation).
		collections = append(collections, scheduleCollection{name: d.cfg.Force.Collection, forced: true})
	}

	systems := []func(context.Context) []check{
		func(ctx context.Context) []check { return d.sccm(ctx, collections) },
		d.scom,
		d.serviceNow,
	}
	if d.tenant != nil {
		// A file tenant's schema is made by serve's start or by
		// autopatch migrate; a tenant added to the file since has none,
		// and its webhooks would fail. (The default tenant's doctor does
		// not open the database, as before tenants: /readyz and migrate
		// answer for public.)
		systems = append([]func(context.Context) []check{d.database}, systems...)
	}
	parts := make([][]check, len(systems))
	var wg sync.WaitGroup
	for i, f := range systems {
		wg.Add(1)
		go func() {
			defer wg.Done()
			parts[i] = f(ctx)
		}()
	}
	wg.Wait()
	for _, p := range parts {
		checks = append(checks, p...)
	}
	return checks
}

// scheduleCollection is one collection of the schedules file with the
// schedules bound to it.
type scheduleCollection struct {
	name      string
	site      string
	schedules []string
	forced    bool // AUTOPATCH_FORCE_COLLECTION
}

// scheduleCollections reads the schedules file as serve does.
func (d *doctor) scheduleCollections() ([]scheduleCollection, []check) {
	if d.cfg.SchedulesFile == "" {
		return nil, nil // reported by the configuration check
	}
	list, err := schedules.ReadFile(d.cfg.SchedulesFile)
	if err == nil {
		err = schedules.ResolveSites(list, d.cfg.SiteCodes())
	}
	if err != nil {
		fix := "correct the schedules file (README, Schedules file); `autopatch plan --schedules FILE` shows what it means"
		if d.tenant != nil {
			fix = "correct tenant " + d.tenant.Name + "'s schedules file (README, Schedules file); `autopatch plan --tenant " + d.tenant.Name + "` shows what it means"
		}
		return nil, []check{{Status: statusFail, Name: "schedules", Detail: err.Error(), Fix: fix}}
	}
	var out []scheduleCollection
	index := map[string]int{}
	for _, s := range list {
		i, ok := index[s.Collection]
		if !ok {
			i = len(out)
			index[s.Collection] = i
			out = append(out, scheduleCollection{name: s.Collection, site: s.Site})
		}
		out[i].schedules = append(out[i].schedules, s.Name)
	}
	return out, []check{{Status: statusOK, Name: "schedules",
		Detail: fmt.Sprintf("%s: %d schedules, %d collections", d.cfg.SchedulesFile, len(list), len(out))}}
}

// ---- Database (a file tenant's schema) ----------------------------------------

// database checks, read-only, that the tenant's schema exists and holds
// every migration of this autopatch, River's and its own.
func (d *doctor) database(ctx context.Context) []check {
	if !d.cfg.DatabaseURL.IsSet() {
		return []check{skipped("database", "AUTOPATCH_DATABASE_URL is not set")}
	}
	schema := d.tenant.Schema()
	migrate := "run `autopatch migrate` with AUTOPATCH_TENANTS_FILE set (it migrates every tenant's schema), or restart serve with AUTOPATCH_MIGRATE_ON_START=true (the default)"
	st, err := store.OpenSchema(ctx, d.cfg.DatabaseURL.Reveal(), "autopatch doctor "+d.tenant.Name, schema)
	if err != nil {
		// store's errors name host, port and database, never the URL's password.
		return []check{{Status: statusFail, Name: "database", Detail: err.Error(),
			Fix: "check AUTOPATCH_DATABASE_URL and that PostgreSQL answers there"}}
	}
	defer st.Close()
	checks := []check{{Status: statusOK, Name: "database", Detail: "connected to " + config.RedactURL(d.cfg.DatabaseURL.Reveal())}}
	var exists bool
	if err := st.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&exists); err != nil {
		return append(checks, check{Status: statusFail, Name: "database.schema", Detail: err.Error(), Fix: "check the database user's rights"})
	}
	if !exists {
		return append(checks, check{Status: statusFail, Name: "database.schema", Detail: "schema " + schema + " does not exist", Fix: migrate})
	}
	checks = append(checks, check{Status: statusOK, Name: "database.schema", Detail: "schema " + schema + " exists"})

	var missing []string
	all, err := migrations.All()
	if err != nil {
		return append(checks, check{Status: statusFail, Name: "database.migrations", Detail: err.Error(), Fix: "rebuild autopatch"})
	}
	var applied []int
	rows, err := st.Pool.Query(ctx, `SELECT version FROM autopatch_migrations`)
	if err == nil {
		applied, err = pgx.CollectRows(rows, pgx.RowTo[int])
	}
	var pgErr *pgconn.PgError
	if err != nil && !(errors.As(err, &pgErr) && pgErr.Code == "42P01") { // 42P01: no table, nothing applied
		return append(checks, check{Status: statusFail, Name: "database.migrations", Detail: err.Error(), Fix: "check the database user's rights"})
	}
	for _, m := range all {
		if !slices.Contains(applied, m.Version) {
			missing = append(missing, m.Name)
		}
	}
	// River's own tables (its jobs, leader, queues) are migrated into the
	// schema too (migrations.ApplySchema); its Validate only reads.
	migrator, err := rivermigrate.New(riverpgxv5.New(st.Pool), &rivermigrate.Config{Schema: schema, Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		var res *rivermigrate.ValidateResult
		if res, err = migrator.Validate(ctx, nil); err == nil && !res.OK {
			missing = append(missing, "River's: "+strings.Join(res.Messages, "; "))
		}
	}
	if err != nil {
		return append(checks, check{Status: statusFail, Name: "database.migrations", Detail: "River's migrations: " + err.Error(), Fix: migrate})
	}
	if len(missing) > 0 {
		return append(checks, check{Status: statusFail, Name: "database.migrations",
			Detail: "not applied in " + schema + ": " + strings.Join(missing, ", "), Fix: migrate})
	}
	return append(checks, check{Status: statusOK, Name: "database.migrations",
		Detail: fmt.Sprintf("autopatch's %d migrations and River's applied in %s", len(all), schema)})
}

// ---- SCCM ------------------------------------------------------------------

// sccm checks the site of AUTOPATCH_SCCM_*, or each site of
// AUTOPATCH_SCCM_SITES with its own schedules' collections, one after the
// other (docs/architecture.md §10.1). A site's checks are named sccm[CODE].
func (d *doctor) sccm(ctx context.Context, collections []scheduleCollection) []check {
	if len(d.cfg.Sites) == 0 {
		return d.sccmSite(ctx, "sccm", d.sccmNames(""), "", d.cfg.SCCM, collections)
	}
	var checks []check
	for _, site := range d.cfg.Sites {
		var own []scheduleCollection
		for _, c := range collections {
			// The forced collection is needed at every site: each forces
			// its own devices (docs/architecture.md §9.2, §10.1).
			if c.site == site.Code || c.forced {
				own = append(own, c)
			}
		}
		checks = append(checks, d.sccmSite(ctx, "sccm["+site.Code+"]", d.sccmNames(site.Code), site.Code, site.WinRM, own)...)
	}
	return checks
}

func (d *doctor) sccmSite(ctx context.Context, system string, n settingNames, code string, w config.WinRM, collections []scheduleCollection) []check {
	if w.Endpoint == "" || w.User == "" || !w.Password.IsSet() {
		return []check{skipped(system, n.missing)}
	}
	runner, err := winrm.New(winrmConfig(w), nil)
	if err != nil {
		return []check{{Status: statusFail, Name: system + ".winrm", Detail: err.Error(),
			Fix: "correct " + n.all + " (README, Configuration)"}}
	}
	defer runner.Close()
	names := make([]string, len(collections))
	for i, c := range collections {
		names[i] = c.name
	}
	rep, err := sccm.New(runner, code, nil).Doctor(ctx, names, d.updateGroups)
	if err != nil {
		return []check{winrmFailure(system, n, err)}
	}
	checks := []check{winrmOK(system, w)}
	if rep.ModuleError != "" {
		return append(checks, check{Status: statusFail, Name: system + ".module", Detail: rep.ModuleError,
			Fix: "install the Configuration Manager console on the host " + n.endpoint + " names (the site server), so that SMS_ADMIN_UI_PATH is set and the ConfigurationManager module loads for the service account"})
	}
	checks = append(checks, check{Status: statusOK, Name: system + ".module", Detail: "ConfigurationManager module loaded"})
	if rep.SiteError != "" {
		return append(checks, check{Status: statusFail, Name: system + ".site_drive", Detail: rep.SiteError,
			Fix: "give the service account a Configuration Manager security role (Administration > Security > Administrative Users) so that the module creates the CMSite drive, and connect to the site server"})
	}
	checks = append(checks, check{Status: statusOK, Name: system + ".site_drive", Detail: "CMSite drive " + rep.SiteCode + ":"})

	windows := 0
	for i, c := range rep.Collections {
		name := fmt.Sprintf("%s.collection %q", system, c.Name)
		var used string
		if i < len(collections) {
			used = "schedule " + strings.Join(collections[i].schedules, ", ")
			if collections[i].forced {
				used = "AUTOPATCH_FORCE_COLLECTION"
			}
		}
		switch {
		case !c.Found:
			checks = append(checks, check{Status: statusFail, Name: name, Detail: "not found (" + used + ")",
				Fix: "create the device collection in the console (Assets and Compliance > Device Collections), or correct the schedule's collection in the schedules file; names are compared exactly, case included"})
		case c.UserCollection:
			checks = append(checks, check{Status: statusFail, Name: name, Detail: "is a user collection (" + used + ")",
				Fix: "bind the schedule to a device collection: autopatch adds devices by ResourceId and deploys to devices"})
		default:
			checks = append(checks, check{Status: statusOK, Name: name, Detail: "device collection (" + used + ")"})
			if c.MaintenanceWindows > 0 {
				windows++
				checks = append(checks, check{Status: statusWarn, Name: fmt.Sprintf("%s.maintenance_windows %q", system, c.Name),
					Detail: fmt.Sprintf("has %d maintenance window(s) of its own", c.MaintenanceWindows),
					Fix:    "delete them (collection Properties > Maintenance Windows): autopatch opens the window by enabling the deployment, and a member installs only inside its collections' own maintenance windows, so the two fight"})
			}
		}
	}
	if windows == 0 && len(rep.Collections) > 0 {
		checks = append(checks, check{Status: statusOK, Name: system + ".maintenance_windows",
			Detail: "no schedule collection has maintenance windows of its own"})
	}

	if len(d.updateGroups) == 0 {
		checks = append(checks, check{Status: statusWarn, Name: system + ".update_group", Detail: "no update group given, none checked",
			Fix: "pass --update-group NAME (repeatable) or set AUTOPATCH_DOCTOR_UPDATE_GROUPS to the groups your changes will name"})
	}
	for _, g := range rep.UpdateGroups {
		name := fmt.Sprintf("%s.update_group %q", system, g.Name)
		if g.Found {
			checks = append(checks, check{Status: statusOK, Name: name, Detail: "software update group exists"})
			continue
		}
		checks = append(checks, check{Status: statusFail, Name: name, Detail: "not found",
			Fix: "create the group (Software Library > Software Updates > Software Update Groups) or correct the name the change carries; names are compared exactly, case included"})
	}
	return checks
}

// ---- SCOM ------------------------------------------------------------------

func (d *doctor) scom(ctx context.Context) []check {
	n := d.scomNames()
	if d.cfg.SCOM.Endpoint == "" || d.cfg.SCOM.User == "" || !d.cfg.SCOM.Password.IsSet() {
		return []check{skipped("scom", n.missing)}
	}
	runner, err := winrm.New(winrmConfig(d.cfg.SCOM), nil)
	if err != nil {
		return []check{{Status: statusFail, Name: "scom.winrm", Detail: err.Error(),
			Fix: "correct " + n.all + " (README, Configuration)"}}
	}
	defer runner.Close()
	rep, err := scom.New(runner, scom.Options{}, nil).Doctor(ctx)
	if err != nil {
		return []check{winrmFailure("scom", n, err)}
	}
	checks := []check{winrmOK("scom", d.cfg.SCOM), scomEventSource(rep)}
	if rep.ModuleError != "" {
		return append(checks, check{Status: statusFail, Name: "scom.module", Detail: rep.ModuleError,
			Fix: "point " + n.endpoint + " at a management server (the OperationsManager module is installed with it and with the Operations console)"})
	}
	checks = append(checks, check{Status: statusOK, Name: "scom.module", Detail: "OperationsManager module loaded"})
	if rep.ConnectionError != "" {
		return append(checks, check{Status: statusFail, Name: "scom.connection", Detail: rep.ConnectionError,
			Fix: "make sure the System Center Data Access service runs, and give the service account an Operations Manager user role (Operator or Advanced Operator)"})
	}
	checks = append(checks, check{Status: statusOK, Name: "scom.connection", Detail: "connected to the management group"})

	const importFix = "import integrations/scom/Autopatch.Alerts.xml (Administration > Management Packs > Import Management Packs, or Import-SCOMManagementPack)"
	switch {
	case !rep.ManagementPackFound:
		checks = append(checks, check{Status: statusFail, Name: "scom.management_pack", Detail: scom.ManagementPackName + " is not imported", Fix: importFix})
	case scom.CompareVersions(rep.ManagementPackVersion, scom.ManagementPackVersion) < 0:
		// Before 1.1.0.0 the rules listened to the SDK event provider, which
		// the event-log route no longer feeds: no alert would be raised.
		checks = append(checks, check{Status: statusFail, Name: "scom.management_pack",
			Detail: fmt.Sprintf("%s %s is imported; this autopatch needs %s, whose rules read the %s events in the %s log (older packs listen to the SDK event provider, which autopatch no longer writes to)",
				scom.ManagementPackName, rep.ManagementPackVersion, scom.ManagementPackVersion, scom.EventSource, scom.EventLog),
			Fix: importFix + " over the older version"})
	case rep.ManagementPackVersion != scom.ManagementPackVersion:
		checks = append(checks, check{Status: statusWarn, Name: "scom.management_pack",
			Detail: fmt.Sprintf("%s %s is imported; this autopatch ships %s", scom.ManagementPackName, rep.ManagementPackVersion, scom.ManagementPackVersion),
			Fix:    importFix + " to get the version this autopatch was built with"})
	default:
		checks = append(checks, check{Status: statusOK, Name: "scom.management_pack",
			Detail: scom.ManagementPackName + " " + rep.ManagementPackVersion + " imported (the version shipped)"})
	}
	if rep.ManagementPackFound {
		for _, id := range scom.AlertRules() {
			name := "scom.rule " + id
			enabled, ok := rep.Rules[id]
			switch {
			case !ok:
				checks = append(checks, check{Status: statusFail, Name: name, Detail: "not in the imported management pack", Fix: importFix})
			case scom.RuleDisabled(enabled):
				checks = append(checks, check{Status: statusFail, Name: name, Detail: "disabled in the imported management pack (Enabled=false)",
					Fix: importFix + " unchanged, or add an override that enables the rule for the All Management Servers Resource Pool"})
			default:
				checks = append(checks, check{Status: statusOK, Name: name,
					Detail: "present, Enabled=" + enabled + " in the pack (an override can still disable it: check Authoring > Overrides)"})
			}
		}
	}
	if rep.ClassFound {
		checks = append(checks, check{Status: statusOK, Name: "scom.class", Detail: scom.WindowsComputerClass + " class found"})
	} else {
		checks = append(checks, check{Status: statusFail, Name: "scom.class", Detail: scom.WindowsComputerClass + " class not found",
			Fix: "the class comes with Microsoft.Windows.Library in every management group: " + n.endpoint + " does not reach an Operations Manager management server"})
	}
	return checks
}

// scomEventSource checks that the event source raise_alerts writes under is
// registered in the Application log of the management server: the management
// pack's rules read events of that source only, and raise_alerts refuses to
// write until it is registered.
func scomEventSource(rep scom.DoctorReport) check {
	const name = "scom.event_source"
	register := "run once as an administrator on the management server: New-EventLog -LogName " + scom.EventLog + " -Source " + scom.EventSource
	switch {
	case rep.EventSourceError != "":
		return check{Status: statusFail, Name: name, Detail: "could not look up the event source " + scom.EventSource + ": " + rep.EventSourceError,
			Fix: "make sure the account can read HKLM\\SYSTEM\\CurrentControlSet\\Services\\EventLog, or " + register}
	case rep.EventSourceLog == "":
		return check{Status: statusFail, Name: name, Detail: "the event source " + scom.EventSource + " is not registered on the management server (alerts cannot be raised)",
			Fix: register}
	case !strings.EqualFold(rep.EventSourceLog, scom.EventLog):
		return check{Status: statusFail, Name: name,
			Detail: "the event source " + scom.EventSource + " is registered in the " + rep.EventSourceLog + " log, not " + scom.EventLog + " (the rules read " + scom.EventLog + ")",
			Fix:    "run as an administrator on the management server: Remove-EventLog -Source " + scom.EventSource + "; New-EventLog -LogName " + scom.EventLog + " -Source " + scom.EventSource}
	}
	return check{Status: statusOK, Name: name, Detail: "event source " + scom.EventSource + " registered in the " + scom.EventLog + " log"}
}

// ---- WinRM -----------------------------------------------------------------

func winrmOK(system string, w config.WinRM) check {
	return check{Status: statusOK, Name: system + ".winrm",
		Detail: fmt.Sprintf("%s answered, %s authenticated (%s)", config.RedactURL(w.Endpoint), w.User, w.Auth)}
}

// winrmFailure names what stopped the one WinRM call of a system, and its fix.
// The connector's error never holds the password; the settings are named by
// n (AUTOPATCH_SCCM_*, AUTOPATCH_SCOM_*, or a tenant's keys in the tenants
// file).
func winrmFailure(system string, n settingNames, err error) check {
	c := check{Status: statusFail, Name: system + ".winrm", Detail: err.Error()}
	var (
		unknownCA   x509.UnknownAuthorityError
		hostname    x509.HostnameError
		invalid     x509.CertificateInvalidError
		verify      *tls.CertificateVerificationError
		record      tls.RecordHeaderError
		dns         *net.DNSError
		scriptError *winrm.ScriptError
	)
	msg := err.Error()
	switch {
	case errors.Is(err, winrm.ErrUnauthorized):
		c.Detail = "credentials refused (HTTP 401 or access denied): " + msg
		c.Fix = n.credentials + " are wrong, or " + n.winrmSetting("AUTH") + " does not match what the listener accepts " +
			"(ntlm or kerberos with a domain account; basic only with a local account and Auth/Basic enabled on the listener); " +
			"the account must also be allowed to use WinRM on the host (local Administrators or Remote Management Users)"
	case errors.As(err, &hostname):
		c.Detail = "TLS: the certificate does not name the host: " + msg
		c.Fix = "use in " + n.endpoint + " the host name the WinRM HTTPS listener's certificate was issued to (its subject or a SAN)"
	case errors.As(err, &unknownCA), errors.As(err, &invalid), errors.As(err, &verify),
		strings.Contains(msg, "x509:"), strings.Contains(msg, "certificate"):
		c.Detail = "TLS certificate not trusted: " + msg
		c.Fix = "set " + n.winrmSetting("CA_FILE") + " to the PEM of the CA that issued the WinRM HTTPS listener's certificate " +
			"(or add it to the system roots); " + n.winrmSetting("INSECURE_SKIP_VERIFY") + " is for labs only"
	case errors.As(err, &record):
		c.Detail = "TLS handshake got plain HTTP: " + msg
		c.Fix = n.endpoint + " uses https:// on a plain-HTTP port: use the HTTPS listener's port (5986)"
	case errors.Is(err, syscall.ECONNREFUSED), strings.Contains(msg, "connection refused"):
		c.Detail = "connection refused: " + msg
		c.Fix = "no WinRM listener on that host and port: on the host, create the HTTPS listener " +
			"(winrm quickconfig -transport:https, with a certificate for the host's name) and allow TCP 5986 in Windows Firewall; check the port in " + n.endpoint
	case errors.As(err, &dns):
		c.Detail = "host name does not resolve: " + msg
		c.Fix = "correct the host in " + n.endpoint + " (a name DNS resolves, the one on the listener's certificate)"
	case errors.Is(err, winrm.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		c.Detail = "no answer in time: " + msg
		c.Fix = "a firewall may be dropping TCP 5986 to the host, or the host is overloaded; raise " + n.winrmSetting("TIMEOUT") + " or doctor's --timeout if it is only slow"
	case errors.As(err, &scriptError):
		c.Name = system + ".script"
		c.Detail = "the doctor's script failed on the host: " + msg
		c.Fix = "read PowerShell's error above; a constrained (JEA) endpoint must allow autopatch's templates, the doctor's included"
	default:
		c.Fix = "check that " + n.endpoint + " is the host's WinRM URL (https://host:5986/wsman) and that WinRM runs there (Test-WSMan from another host)"
	}
	return c
}

func skipped(system, why string) check {
	return check{Status: statusFail, Name: system, Detail: "not checked: " + why, Fix: "set the settings named (README, Configuration)"}
}

// ---- ServiceNow --------------------------------------------------------------

// doctorTables are the tables autopatch reads and writes.
var doctorTables = []string{servicenow.TableChangeRequest, servicenow.TableRequestItem, servicenow.TableIncident}

// doctorReadTables are read too; sys_journal_field because a retried work
// note looks itself up there before it is written again
// (servicenow.HasWorkNote).
var doctorReadTables = append(slices.Clone(doctorTables), "sys_journal_field")

func (d *doctor) serviceNow(ctx context.Context) []check {
	sn := d.cfg.ServiceNow
	n := d.serviceNowNames()
	if sn.URL == "" || sn.User == "" || !sn.Password.IsSet() {
		return []check{skipped("servicenow", n.missing)}
	}
	client, err := servicenow.New(servicenow.Config{
		URL: sn.URL, User: sn.User, Password: sn.Password.Reveal(),
		OAuthClientID: sn.OAuthClientID, OAuthClientSecret: sn.OAuthClientSecret.Reveal(),
		Timeout: sn.Timeout, MaxRetries: -1, // the doctor reports the first answer
	}, nil, nil)
	if err != nil {
		return []check{{Status: statusFail, Name: "servicenow", Detail: err.Error(), Fix: "correct " + n.all}}
	}
	var checks []check
	for _, table := range doctorReadTables {
		name := "servicenow.read " + table
		rows, err := client.CheckRead(ctx, table)
		if err == nil {
			detail := "Table API read answered"
			if rows >= 0 {
				detail += fmt.Sprintf(", %d records visible to the user", rows)
			}
			checks = append(checks, check{Status: statusOK, Name: name, Detail: detail})
			continue
		}
		c := serviceNowFailure(name, n, err)
		checks = append(checks, c)
		if !errors.Is(err, servicenow.ErrUnauthorized) || apiStatus(err) == 401 {
			// The instance is not reached or refuses the user: every other
			// check would fail the same way.
			return append(checks, check{Status: statusFail, Name: "servicenow", Detail: "other ServiceNow checks skipped after the failure above", Fix: c.Fix})
		}
	}
	return append(checks, d.writeChecks(ctx, client)...)
}

// writeChecks tests write access without writing: by the integration user's
// roles (servicenow.UserRoles explains why a role check and its sources).
func (d *doctor) writeChecks(ctx context.Context, client *servicenow.Client) []check {
	const limits = "role check only: an ACL, data policy or business rule of the instance can still refuse the write"
	roles, err := client.UserRoles(ctx)
	if err != nil {
		return []check{{Status: statusWarn, Name: "servicenow.write",
			Detail: "could not read the integration user's roles from sys_user_has_role, write access unknown: " + err.Error(),
			Fix: "have a ServiceNow admin confirm that " + d.cfg.ServiceNow.User + " has itil (or sn_change_write, sn_request_write and sn_incident_write), " +
				"or allow it to read its own sys_user_has_role rows so that doctor can check"}}
	}
	var checks []check
	for _, table := range doctorTables {
		want := servicenow.WriteRoles(table)
		name := "servicenow.write " + table
		i := slices.IndexFunc(want, func(r string) bool { return slices.Contains(roles, r) })
		if i >= 0 {
			checks = append(checks, check{Status: statusOK, Name: name, Detail: "user has role " + want[i] + " (" + limits + ")"})
			continue
		}
		checks = append(checks, check{Status: statusFail, Name: name,
			Detail: fmt.Sprintf("user has none of %s (has: %s; %s)", strings.Join(want, ", "), orNone(roles), limits),
			Fix:    fmt.Sprintf("grant %s one of %s (User Administration > Users > Roles)", d.cfg.ServiceNow.User, strings.Join(want[1:], " or "))})
	}
	return checks
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "no roles"
	}
	return strings.Join(s, ", ")
}

// apiStatus is the HTTP status of a ServiceNow API error, or 0.
func apiStatus(err error) int {
	var api *servicenow.APIError
	if errors.As(err, &api) {
		return api.Status
	}
	return 0
}

// serviceNowFailure names what stopped one ServiceNow request, and its fix.
func serviceNowFailure(name string, n settingNames, err error) check {
	c := check{Status: statusFail, Name: name, Detail: err.Error()}
	msg := err.Error()
	switch {
	case apiStatus(err) == 401:
		c.Detail = "credentials refused (HTTP 401): " + msg
		c.Fix = "check " + n.credentials + "; the user must be active and not locked out"
	case apiStatus(err) == 403:
		c.Detail = "read denied (HTTP 403): " + msg
		c.Fix = "grant the integration user a role that reads the table: itil, or sn_change_read / sn_request_read / sn_incident_read"
	case strings.Contains(msg, "x509:") || strings.Contains(msg, "certificate"):
		c.Detail = "TLS certificate not trusted: " + msg
		c.Fix = "the instance's certificate must chain to a system root; a TLS-inspecting proxy's CA must be in the system roots"
	case strings.Contains(msg, "connection refused"):
		c.Detail = "connection refused: " + msg
		c.Fix = "check " + n.endpoint + " (https://<instance>.service-now.com) and any proxy or firewall between autopatch and the instance"
	case errors.Is(err, servicenow.ErrTransport):
		c.Detail = "no answer: " + msg
		c.Fix = "check " + n.endpoint + ", DNS and any proxy or firewall between autopatch and the instance"
	default:
		c.Fix = "check " + n.endpoint + " and the integration user's access; the error above is the instance's answer"
	}
	return c
}
