package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/riverqueue/river"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/connectors/scom"
	"github.com/autopatch/autopatch/connectors/servicenow"
	"github.com/autopatch/autopatch/connectors/winrm"
	"github.com/autopatch/autopatch/handlers"
	"github.com/autopatch/autopatch/handlers/ui"
	"github.com/autopatch/autopatch/internal/buildinfo"
	"github.com/autopatch/autopatch/internal/config"
	"github.com/autopatch/autopatch/internal/forcing"
	"github.com/autopatch/autopatch/internal/remotemetrics"
	"github.com/autopatch/autopatch/internal/replica"
	"github.com/autopatch/autopatch/internal/rollout"
	"github.com/autopatch/autopatch/internal/safety"
	"github.com/autopatch/autopatch/internal/schedules"
	"github.com/autopatch/autopatch/internal/store"
	"github.com/autopatch/autopatch/internal/tenants"
	"github.com/autopatch/autopatch/jobs"
	"github.com/autopatch/autopatch/migrations"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "optional YAML configuration `file`")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: autopatch serve [--config FILE]

Runs the webhook and read API server and the job workers until SIGINT or
SIGTERM, then stops in order: HTTP, jobs, database pool. Settings come from
AUTOPATCH_* variables (see README.md); a missing or invalid one stops start-up
with a message that names it.

Flags:
`)
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	cfg, err := config.LoadServe(os.Getenv, *configFile)
	if err != nil {
		if lines := strings.Split(err.Error(), "\n"); len(lines) > 1 {
			fmt.Fprintf(stderr, "autopatch serve: %d problems with the settings:\n  - %s\n", len(lines), strings.Join(lines, "\n  - "))
			return 1
		}
		fmt.Fprintf(stderr, "autopatch serve: %v\n", err)
		return 1
	}
	logger := newLogger(cfg, stderr)
	srv, err := initServer(ctx, cfg, logger)
	if err != nil {
		logger.Error("start-up failed", "error", err)
		return 1
	}
	if err := srv.run(ctx); err != nil {
		logger.Error("serve failed", "error", err)
		return 1
	}
	return 0
}

// server is a started-up autopatch: everything built, nothing running yet.
type server struct {
	cfg      *config.Config
	logger   *slog.Logger
	registry *prometheus.Registry
	// store is the database's public schema: the replicas' registry, and
	// the default tenant's tables when it is served.
	store    *store.Store
	id       string    // this replica's ID, River's client ID too
	tenants  []*tenant // the default tenant first, when it is served
	http     *http.Server
	listener net.Listener
}

// tenant is one customer this process serves (docs/architecture.md §10.2):
// the default tenant of the AUTOPATCH_* settings, in the schema public at
// today's routes, or one of the tenants file's, in its own schema under
// /t/{name}/. Both are built by newTenant.
type tenant struct {
	name         string         // tenants.DefaultName for the AUTOPATCH_* settings
	cfg          *config.Config // the process's settings with the tenant's own in place (tenantConfig)
	logger       *slog.Logger
	store        *store.Store
	river        *river.Client[pgx.Tx]
	riverRunning atomic.Bool
	deps         *jobs.Deps // for the window keeper
	schedules    schedules.Current
	services     safety.CurrentServices // the services file in force
	handler      *echo.Echo             // its webhooks, read API and console; the default's also the process's routes
	// registry holds the tenant's metrics: the process's registry in a
	// single-tenant process, else its own, which /t/{name}/metrics serves
	// and the process's /metrics gathers with the others (metrics).
	registry *prometheus.Registry

	// reloadFailed is 1 per file (schedules, services) while its last
	// reload on SIGHUP failed; reloadErrs holds why, for /readyz.
	reloadFailed *prometheus.GaugeVec
	reloadMu     sync.Mutex
	reloadErrs   map[string]string
}

// initServer builds the server: config → database (migrated) → tenants
// (each: River, jobs, handlers) → HTTP. Tests call it with their own config.
func initServer(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*server, error) {
	var files []tenants.Tenant
	if cfg.TenantsFile != "" {
		var err error
		if files, err = tenants.Load(cfg.TenantsFile, os.Getenv); err != nil {
			return nil, fmt.Errorf("AUTOPATCH_TENANTS_FILE: %w", err)
		}
		if err := sharedWithDefault(cfg, files); err != nil {
			return nil, err
		}
	}
	id := replica.NewID()
	var publicOpts []store.Option
	if !cfg.DefaultTenant() {
		// Without a default tenant, public holds only the replicas'
		// registry (its lock is a connection of its own) and /readyz's
		// ping: a few connections, not a tenant's worth, when sizing
		// PostgreSQL for many tenants (README, "Several customers").
		publicOpts = append(publicOpts, store.WithMaxConns(publicOnlyMaxConns))
	}
	st, err := store.OpenAs(ctx, cfg.DatabaseURL.Reveal(), "autopatch "+id, publicOpts...)
	if err != nil {
		return nil, err
	}
	// public is migrated even without a default tenant: the replicas'
	// registry lives there.
	if cfg.MigrateOnStart {
		if err := migrations.Apply(ctx, st.Pool, logger); err != nil {
			st.Close()
			return nil, err
		}
	}
	s := &server{cfg: cfg, logger: logger, store: st, id: id, registry: prometheus.NewRegistry()}
	fail := func(err error) (*server, error) {
		s.close()
		return nil, err
	}
	s.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	buildinfo.Read().Register(s.registry)

	if cfg.DefaultTenant() {
		t, err := s.newTenant(ctx, tenants.DefaultName, cfg, st)
		if err != nil {
			return fail(err)
		}
		s.tenants = append(s.tenants, t)
	}
	for _, ft := range files {
		tst, err := store.OpenSchema(ctx, cfg.DatabaseURL.Reveal(), "autopatch "+id+" "+ft.Name, ft.Schema(),
			store.WithMaxConns(ft.MaxConns))
		if err != nil {
			return fail(fmt.Errorf("tenant %q: %w", ft.Name, err))
		}
		if ft.MaxConns > 0 && store.URLSetsMaxConns(cfg.DatabaseURL.Reveal()) {
			// Not silently: the URL's size still holds for every other
			// pool, this tenant's is its own (docs/tenants.md).
			logger.WarnContext(ctx, "the tenant's max_connections is its pool size, not the database URL's pool_max_conns",
				"tenant", ft.Name, "max_connections", ft.MaxConns)
		}
		if cfg.MigrateOnStart {
			if err := migrations.ApplySchema(ctx, tst.Pool, ft.Schema(), logger); err != nil {
				tst.Close()
				return fail(fmt.Errorf("tenant %q: %w", ft.Name, err))
			}
		}
		t, err := s.newTenant(ctx, ft.Name, tenantConfig(cfg, ft), tst)
		if err != nil {
			tst.Close()
			return fail(fmt.Errorf("tenant %q: %w", ft.Name, err))
		}
		s.tenants = append(s.tenants, t)
	}

	var root *echo.Echo
	mounted := map[string]http.Handler{}
	for _, t := range s.tenants {
		if t.name == tenants.DefaultName {
			root = t.handler
		} else {
			mounted[t.name] = t.handler
		}
	}
	if root == nil {
		// No default tenant: the process's routes alone, unprefixed. Its
		// requests carry tenant="" beside the tenants' (one metric name,
		// one set of label names).
		root = handlers.New(handlers.Options{Logger: logger, Ready: s.ready, Registry: s.registry, Metrics: prometheus.GathererFunc(s.gather), MetricsToken: cfg.MetricsToken,
			Registerer: prometheus.WrapRegistererWith(prometheus.Labels{"tenant": ""}, s.registry)})
	}
	var h http.Handler = root
	if len(mounted) > 0 {
		// An unknown tenant's console answers as a tenant's, so that it
		// does not tell which tenants exist.
		if err := ui.RegisterStranger(root, logger); err != nil {
			return fail(err)
		}
		h = handlers.Tenants(root, mounted)
	}
	s.http = handlers.Server(cfg.Listen, h)
	if s.listener, err = net.Listen("tcp", cfg.Listen); err != nil {
		return fail(fmt.Errorf("listen on %s (AUTOPATCH_LISTEN): %w", cfg.Listen, err))
	}
	return s, nil
}

// publicOnlyMaxConns is the size of public's pool when no default tenant
// is served: the replicas' heartbeat and takeover and /readyz's ping, one
// at a time in practice.
const publicOnlyMaxConns = 4

// sharedWithDefault refuses a file tenant whose webhook secret or API token
// is the default tenant's: tenants.Load refuses that between the file's
// tenants, and for the same reason (one's credentials would be good on the
// other's routes).
func sharedWithDefault(cfg *config.Config, files []tenants.Tenant) error {
	var errs []error
	for i, t := range files {
		if cfg.WebhookSecret.IsSet() && t.WebhookSecret == cfg.WebhookSecret {
			errs = append(errs, fmt.Errorf("AUTOPATCH_TENANTS_FILE: tenants[%d] %q: webhook_secret: the same as AUTOPATCH_WEBHOOK_SECRET (the default tenant's)", i, t.Name))
		}
		if cfg.APIToken.IsSet() && t.APIToken == cfg.APIToken {
			errs = append(errs, fmt.Errorf("AUTOPATCH_TENANTS_FILE: tenants[%d] %q: api_token: the same as AUTOPATCH_API_TOKEN (the default tenant's)", i, t.Name))
		}
	}
	return errors.Join(errs...)
}

// close closes every tenant's store and public's.
func (s *server) close() {
	for _, t := range s.tenants {
		if t.store != s.store {
			t.store.Close()
		}
	}
	s.store.Close()
}

// newTenant builds a tenant on its store: its schedules and services, its
// connectors, jobs.Deps, River client (on the store's schema) and
// handlers. Its metrics carry tenant="<name>" once a tenants file is in
// use; the default tenant of a single-tenant process stays unlabelled, so
// existing dashboards keep working.
func (s *server) newTenant(ctx context.Context, name string, cfg *config.Config, st *store.Store) (*tenant, error) {
	logger := s.logger
	registry := s.registry
	var reg prometheus.Registerer = registry
	if s.cfg.TenantsFile != "" {
		registry = prometheus.NewRegistry()
		reg = prometheus.WrapRegistererWith(prometheus.Labels{"tenant": name}, registry)
		logger = logger.With("tenant", name)
	}
	schema := ""
	if name != tenants.DefaultName {
		schema = (tenants.Tenant{Name: name}).Schema()
	}
	t := &tenant{name: name, cfg: cfg, logger: logger, store: st, registry: registry}
	// setting names a setting in errors: the default tenant's variable, or
	// the tenants file's key (the caller names the tenant).
	setting := func(env, key string) string {
		if name == tenants.DefaultName {
			return env
		}
		return key
	}
	t.schedules.Sites = cfg.SiteCodes()
	if len(cfg.Sites) > 0 {
		n, err := store.AdoptSitelessDeployments(ctx, st.Pool, cfg.Sites[0].Code)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			logger.InfoContext(ctx, "deployments of the single site taken as the first site's", "site", cfg.Sites[0].Code, "deployments", n)
		}
	}
	if err := t.schedules.Load(ctx, cfg.SchedulesFile, st, logger); err != nil {
		return nil, fmt.Errorf("%s: %w", setting("AUTOPATCH_SCHEDULES_FILE", "schedules_file"), err)
	}
	if err := t.loadServices(); err != nil {
		return nil, fmt.Errorf("%s: %w", setting("AUTOPATCH_SERVICES_FILE", "services_file"), err)
	}
	reg.MustRegister(jobs.NewDeploymentStates(st.Pool), jobs.NewQueueDepth(st.Pool), jobs.NewOverdueWindows(st.Pool),
		jobs.NewComplianceGauges(st.Pool))
	calls := remotemetrics.New(reg)
	t.reloadFailed = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "autopatch_reload_failed",
		Help: "1 while the last reload (SIGHUP) of the file failed and the previous content stays in force, else 0.",
	}, []string{"file"})
	t.reloadFailed.WithLabelValues("schedules").Set(0)
	t.reloadFailed.WithLabelValues("services").Set(0)
	reg.MustRegister(t.reloadFailed)

	sccmRunner, err := winrm.New(winrmConfig(firstSite(cfg)), logger.With("system", "sccm"))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting("AUTOPATCH_SCCM_*", "sccm"), err)
	}
	// single is the one site of AUTOPATCH_SCCM_ENDPOINT, or without sites
	// the connector of what is not yet per site.
	single := sccm.New(calls.Runner("sccm", sccmRunner), "", logger.With("system", "sccm"))
	var sites []jobs.Site
	var consoleSites []ui.Site // the collections page reads every site
	if len(cfg.Sites) == 0 {
		consoleSites = []ui.Site{{Collections: single.CollectionsWithMaintenanceWindows}}
	}
	for _, site := range cfg.Sites {
		r, err := winrm.New(winrmConfig(site.WinRM), logger.With("system", "sccm", "site", site.Code))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", setting("AUTOPATCH_SCCM_"+site.Code+"_*", "sccm site "+site.Code), err)
		}
		conn := sccm.New(calls.SiteRunner("sccm", site.Code, r), site.Code, logger.With("system", "sccm", "site", site.Code))
		sites = append(sites, jobs.NewSite(site.Code, conn, site.Workers))
		consoleSites = append(consoleSites, ui.Site{Code: site.Code, Collections: conn.CollectionsWithMaintenanceWindows})
	}
	scomRunner, err := winrm.New(winrmConfig(cfg.SCOM), logger.With("system", "scom"))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting("AUTOPATCH_SCOM_*", "scom"), err)
	}
	snow, err := servicenow.New(servicenow.Config{
		URL: cfg.ServiceNow.URL, User: cfg.ServiceNow.User, Password: cfg.ServiceNow.Password.Reveal(),
		OAuthClientID: cfg.ServiceNow.OAuthClientID, OAuthClientSecret: cfg.ServiceNow.OAuthClientSecret.Reveal(),
		Timeout: cfg.ServiceNow.Timeout,
	}, &http.Client{Transport: calls.Transport("servicenow", nil)}, logger.With("system", "servicenow"))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting("AUTOPATCH_SERVICENOW_*", "servicenow"), err)
	}
	t.deps = &jobs.Deps{
		Pool: st.Pool, Logger: logger, Schedules: &t.schedules, ClientID: s.id, Sites: sites, Schema: schema,
		SCCM:         single,
		ServiceNow:   snow,
		Metrics:      jobs.NewMetrics(reg),
		MinRemaining: cfg.MinWindowRemaining,
		SCOM:         scom.New(calls.Runner("scom", scomRunner), scom.Options{}, logger.With("system", "scom")),
		PollInterval: cfg.StatusPollInterval,
		Incidents: jobs.IncidentSettings{
			AssignmentGroup: cfg.Incident.AssignmentGroup, Urgency: cfg.Incident.Urgency, Impact: cfg.Incident.Impact,
		},
		StormThreshold: cfg.StormThreshold,
		WindowComputer: windowComputer(cfg),
		ErrorBudget:    errorBudget(cfg),
		Compliance: jobs.ComplianceOptions{
			Ledger:        ledgerOptions(cfg),
			PreflightLead: cfg.PreflightLead, Interval: cfg.ComplianceInterval,
		},
		Safety: jobs.SafetyOptions{
			Services: &t.services, RequestPolicy: cfg.Safety.RequestPolicy, PlanPolicy: cfg.Safety.PlanPolicy,
		},
		Force: forceOptions(cfg),
	}
	if name != tenants.DefaultName {
		t.deps.Tenant = name // its notes name /t/<name>/api/v1/... and --tenant
	}
	t.river, err = jobs.NewClient(t.deps, cfg.Queues)
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	opts := handlers.Options{
		Logger: logger, Registry: registry, Registerer: reg, Metrics: prometheus.GathererFunc(s.gather),
		APIToken: cfg.APIToken, Store: st, Schedules: &t.schedules, Pool: st.Pool,
		ServiceRules: &t.services,
		Compliance:   ledgerOptions(cfg),
		Webhooks: &handlers.WebhookOptions{Store: st, Jobs: t.river, Auth: handlers.WebhookAuth{
			Secret: cfg.WebhookSecret, User: cfg.WebhookUser, Password: cfg.WebhookPassword,
		}},
	}
	// The default tenant is served at the root, with the process's routes;
	// a file tenant under /t/{name}/ (handlers.Tenants takes the prefix
	// off), its console too: the administrator's console (handlers/ui,
	// docs/architecture.md §9.5) writes its URLs under the base.
	consoleBase := ""
	if name != tenants.DefaultName {
		opts.Tenant, consoleBase = name, "/t/"+name
	} else {
		opts.Ready, opts.MetricsToken = s.ready, s.cfg.MetricsToken
	}
	t.handler = handlers.New(opts)
	if err := ui.Register(t.handler, ui.Options{
		Logger: logger, Base: consoleBase, Token: cfg.APIToken, DB: st.Pool, Schedules: &t.schedules, ServiceRules: &t.services,
		Sites: consoleSites, ServiceNowURL: cfg.ServiceNow.URL,
		Ledger: ledgerOptions(cfg),
	}); err != nil {
		return nil, err
	}
	return t, nil
}

// gather is the process's /metrics: its own registry (Go, process, build,
// the unprefixed routes' requests) and every tenant's.
func (s *server) gather() ([]*dto.MetricFamily, error) {
	gs := prometheus.Gatherers{s.registry}
	for _, t := range s.tenants {
		if t.registry != s.registry {
			gs = append(gs, t.registry)
		}
	}
	return gs.Gather()
}

// tenantConfig is the process's settings with a file tenant's own in place:
// its SCCM sites, SCOM (and the Windows Computer of its window alerts),
// ServiceNow (with its OAuth client), the WinRM settings of its winrm
// block, its forced-remediation collection, schedules and services files,
// webhook secret and API token. The rest (database, listen address,
// queues, intervals, deadlines, forcing's time of day and wave length,
// policies, ServiceNow's timeout) applies to every tenant. What names the
// default tenant's estate is never carried over even where the tenant
// leaves the key out: its OAuth client, its Windows Computer and its
// forced collection exist in its estate, not the tenant's. The tenant's
// pool size is not a setting of config.Config: initServer opens its store
// with it.
func tenantConfig(base *config.Config, t tenants.Tenant) *config.Config {
	c := *base
	c.SchedulesFile, c.ServicesFile = t.SchedulesFile, t.ServicesFile
	c.WebhookSecret, c.WebhookUser, c.WebhookPassword = t.WebhookSecret, "", ""
	c.APIToken = t.APIToken
	c.Sites = nil
	codes := make([]string, 0, len(t.SCCM))
	for _, site := range t.SCCM {
		w := t.WinRM.Apply(base.SCCM)
		w.Endpoint, w.User, w.Password = site.Endpoint, site.User, site.Password
		c.Sites = append(c.Sites, config.SCCMSite{Code: site.Code, WinRM: w, Workers: defaultSiteWorkers})
		codes = append(codes, site.Code)
	}
	c.SCCMSites = strings.Join(codes, ",")
	c.SCCM = c.Sites[0].WinRM
	c.SCOM = t.WinRM.Apply(base.SCOM)
	c.SCOM.Endpoint, c.SCOM.User, c.SCOM.Password = t.SCOM.Endpoint, t.SCOM.User, t.SCOM.Password
	c.ServiceNow.URL, c.ServiceNow.User, c.ServiceNow.Password = t.ServiceNow.URL, t.ServiceNow.User, t.ServiceNow.Password
	c.ServiceNow.OAuthClientID, c.ServiceNow.OAuthClientSecret = t.ServiceNow.OAuthClientID, t.ServiceNow.OAuthClientSecret
	// "": windowComputer falls back to the host of the tenant's first site.
	c.SCOMWindowComputer = t.SCOM.WindowComputer
	c.Force.Collection = t.ForceCollection
	return &c
}

// defaultSiteWorkers is AUTOPATCH_SCCM_<CODE>_WORKERS's default, the
// concurrency of a file tenant's sites (the tenants file has no key for it).
const defaultSiteWorkers = 2

// ready is /readyz: the database answers and every tenant's job client
// runs.
func (s *server) ready(ctx context.Context) error {
	for _, t := range s.tenants {
		if !t.riverRunning.Load() {
			return errors.New(t.prefix() + "job client is not running")
		}
		if err := t.store.Ping(ctx); err != nil {
			return errors.New(t.prefix() + "database unreachable")
		}
	}
	if err := s.store.Ping(ctx); err != nil {
		return errors.New("database unreachable")
	}
	var warnings handlers.Warnings
	for _, t := range s.tenants {
		t.reloadMu.Lock()
		for _, file := range []string{"schedules", "services"} {
			if msg, ok := t.reloadErrs[file]; ok {
				warnings = append(warnings, t.prefix()+msg)
			}
		}
		t.reloadMu.Unlock()
	}
	if len(warnings) > 0 {
		return warnings
	}
	return nil
}

// prefix starts the tenant's messages in /readyz: nothing for the default
// tenant, whose messages are today's.
func (t *tenant) prefix() string {
	if t.name == tenants.DefaultName {
		return ""
	}
	return "tenant " + t.name + ": "
}

// reloaded records the outcome of a file's reload for the metric and
// /readyz.
func (t *tenant) reloaded(file string, err error) {
	t.reloadMu.Lock()
	defer t.reloadMu.Unlock()
	if t.reloadErrs == nil {
		t.reloadErrs = map[string]string{}
	}
	if err == nil {
		delete(t.reloadErrs, file)
		t.reloadFailed.WithLabelValues(file).Set(0)
		return
	}
	t.reloadErrs[file] = fmt.Sprintf("%s file reload failed at %s; the %s in force are kept: %v",
		file, time.Now().UTC().Format(time.RFC3339), file, err)
	t.reloadFailed.WithLabelValues(file).Set(1)
}

// run starts River and HTTP, waits for ctx, then stops in order: HTTP first
// (no new webhooks), then River (running jobs finish or are cancelled at the
// deadline and retried later), then the pools.
func (s *server) run(ctx context.Context) error {
	defer s.close()
	// Registered before River starts: the other replicas must never see
	// this one's jobs running without its lock held. The registry is
	// public's; a dead replica's jobs are searched for in every tenant's
	// schema.
	var opts replica.Options
	for _, t := range s.tenants {
		rescued := t.deps.Metrics.JobsRescued
		onRescue := func(n int) { rescued.Add(float64(n)) }
		if t.store == s.store {
			opts.OnRescue = onRescue
		} else {
			opts.Tenants = append(opts.Tenants, replica.Jobs{Pool: t.store.Pool, OnRescue: onRescue})
		}
	}
	rep, err := replica.Register(ctx, s.store.Pool, s.id, s.logger, opts)
	if err != nil {
		return err
	}
	for i, t := range s.tenants {
		if err := t.river.Start(ctx); err != nil {
			// The tenants started stop before their pools close.
			for _, started := range s.tenants[:i] {
				_ = started.river.StopAndCancel(context.WithoutCancel(ctx))
			}
			return fmt.Errorf("%sstart river: %w", t.prefix(), err)
		}
	}
	// The keepers and the replica stop before River: a graceful stop
	// leaves no job for the others to take over.
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var background sync.WaitGroup
	background.Go(func() { rep.Run(bgCtx) })
	for _, t := range s.tenants {
		background.Go(func() { jobs.NewWindowKeeper(t.deps, t.river).Run(bgCtx) })
		t.riverRunning.Store(true)
		go func() {
			<-t.river.Stopped()
			t.riverRunning.Store(false)
		}()
	}

	go s.reloadOnHangup(ctx)

	httpErr := make(chan error, 1)
	go func() { httpErr <- s.http.Serve(s.listener) }()
	names := make([]string, 0, len(s.tenants))
	for _, t := range s.tenants {
		names = append(names, t.name)
	}
	s.logger.Info("autopatch serving", append([]any{"listen", s.listener.Addr().String(), "replica", s.id,
		"database", config.RedactURL(s.cfg.DatabaseURL.Reveal()), "tenants", names}, buildinfo.Read().Attrs()...)...)

	select {
	case <-ctx.Done():
		s.logger.Info("shutting down")
	case err = <-httpErr:
		err = fmt.Errorf("http server: %w", err)
	}

	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if herr := s.http.Shutdown(stopCtx); herr != nil {
		s.logger.Warn("http shutdown", "error", herr)
	}
	stopBackground()
	background.Wait()
	// The tenants' jobs stop side by side, within one shutdown timeout.
	var stopping sync.WaitGroup
	for _, t := range s.tenants {
		stopping.Go(func() {
			if rerr := t.river.Stop(stopCtx); rerr != nil {
				t.logger.Warn("jobs did not finish in time; cancelling them (they will be retried)", "error", rerr)
				hardCtx, hardCancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				defer hardCancel()
				_ = t.river.StopAndCancel(hardCtx)
			}
		})
	}
	stopping.Wait()
	s.logger.Info("stopped")
	return err
}

// reloadOnHangup re-reads the schedules file on SIGHUP. A file that does not
// validate is logged and ignored: the schedules in force stay.
func (s *server) reloadOnHangup(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			s.reload(ctx)
		}
	}
}

// reload re-reads every tenant's schedules and services files.
func (s *server) reload(ctx context.Context) {
	for _, t := range s.tenants {
		t.reload(ctx)
	}
}

// reload re-reads the schedules and services files. A file that does not
// validate is logged, counted in autopatch_reload_failed and reported in
// /readyz's body; what is in force stays.
func (t *tenant) reload(ctx context.Context) {
	err := t.schedules.Load(ctx, t.cfg.SchedulesFile, t.store, t.logger)
	if err != nil {
		t.logger.Error("schedules reload failed; the schedules in force are kept", "error", err)
	}
	t.reloaded("schedules", err)
	err = t.loadServices()
	if err != nil {
		t.logger.Error("services file reload failed; the service limits in force are kept", "error", err)
	}
	t.reloaded("services", err)
}

// windowComputer is the Windows Computer that carries window alerts: the
// configured one, else the SCCM site server (a missed window is a site-level
// problem, and every SCOM-monitored estate monitors its site server).
func windowComputer(cfg *config.Config) string {
	if cfg.SCOMWindowComputer != "" {
		return cfg.SCOMWindowComputer
	}
	if u, err := url.Parse(firstSite(cfg).Endpoint); err == nil {
		return u.Hostname()
	}
	return ""
}

// loadServices reads the optional services file (AUTOPATCH_SERVICES_FILE)
// and puts its limits in force. On error the limits in force are kept, as
// with the schedules file.
func (t *tenant) loadServices() error {
	path := t.cfg.ServicesFile
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("services file: %w", err)
	}
	rules, err := safety.ParseServices(b)
	if err != nil {
		return fmt.Errorf("services file %s: %w", path, err)
	}
	t.services.Set(rules)
	t.logger.Info("services file loaded", "file", path, "services", len(rules.Rules()))
	return nil
}

// firstSite is the SCCM site of AUTOPATCH_SCCM_*, or with several sites
// the first listed: the console's maintenance windows and the default
// Windows Computer of window alerts are read there (docs/architecture.md
// §10.1).
func firstSite(cfg *config.Config) config.WinRM {
	if len(cfg.Sites) > 0 {
		return cfg.Sites[0].WinRM
	}
	return cfg.SCCM
}

func winrmConfig(w config.WinRM) winrm.Config {
	return winrm.Config{
		Endpoint: w.Endpoint, User: w.User, Password: w.Password.Reveal(), Auth: w.Auth,
		CAFile: w.CAFile, InsecureSkipVerify: w.InsecureSkipVerify, Timeout: w.Timeout,
	}
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// errorBudget is AUTOPATCH_ERROR_BUDGET, checked when the configuration was
// loaded.
func errorBudget(cfg *config.Config) *rollout.Budget {
	b, err := rollout.ParseBudget(cfg.ErrorBudget)
	if err != nil {
		return nil
	}
	return &b
}

// forceOptions reads AUTOPATCH_FORCE_* (validated at load).
func forceOptions(cfg *config.Config) jobs.ForceOptions {
	at, _ := forcing.ParseClock(cfg.Force.At)
	loc, err := time.LoadLocation(cfg.Force.Timezone)
	if err != nil {
		loc = time.UTC
	}
	return jobs.ForceOptions{Collection: cfg.Force.Collection, At: at, Location: loc, WaveLength: cfg.Force.WaveLength}
}
