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
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
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
	cfg          *config.Config
	logger       *slog.Logger
	store        *store.Store
	river        *river.Client[pgx.Tx]
	riverRunning atomic.Bool
	id           string     // this replica's ID, River's client ID too
	deps         *jobs.Deps // for the window keeper
	schedules    schedules.Current
	services     safety.CurrentServices // the services file in force
	http         *http.Server
	listener     net.Listener

	// reloadFailed is 1 per file (schedules, services) while its last
	// reload on SIGHUP failed; reloadErrs holds why, for /readyz.
	reloadFailed *prometheus.GaugeVec
	reloadMu     sync.Mutex
	reloadErrs   map[string]string
}

// initServer builds the server: config → database (migrated) → River →
// HTTP. Tests call it with their own config.
func initServer(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*server, error) {
	id := replica.NewID()
	st, err := store.OpenAs(ctx, cfg.DatabaseURL.Reveal(), "autopatch "+id)
	if err != nil {
		return nil, err
	}
	if cfg.MigrateOnStart {
		if err := migrations.Apply(ctx, st.Pool, logger); err != nil {
			st.Close()
			return nil, err
		}
	}
	s := &server{cfg: cfg, logger: logger, store: st}
	s.schedules.Sites = cfg.SiteCodes()
	if len(cfg.Sites) > 0 {
		n, err := store.AdoptSitelessDeployments(ctx, st.Pool, cfg.Sites[0].Code)
		if err != nil {
			st.Close()
			return nil, err
		}
		if n > 0 {
			logger.InfoContext(ctx, "deployments of the single site taken as the first site's", "site", cfg.Sites[0].Code, "deployments", n)
		}
	}
	if err := s.schedules.Load(ctx, cfg.SchedulesFile, st, logger); err != nil {
		st.Close()
		return nil, fmt.Errorf("AUTOPATCH_SCHEDULES_FILE: %w", err)
	}
	if err := s.loadServices(); err != nil {
		st.Close()
		return nil, fmt.Errorf("AUTOPATCH_SERVICES_FILE: %w", err)
	}
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		jobs.NewDeploymentStates(st.Pool), jobs.NewQueueDepth(st.Pool), jobs.NewOverdueWindows(st.Pool),
		jobs.NewComplianceGauges(st.Pool))
	buildinfo.Read().Register(registry)
	calls := remotemetrics.New(registry)
	s.reloadFailed = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "autopatch_reload_failed",
		Help: "1 while the last reload (SIGHUP) of the file failed and the previous content stays in force, else 0.",
	}, []string{"file"})
	s.reloadFailed.WithLabelValues("schedules").Set(0)
	s.reloadFailed.WithLabelValues("services").Set(0)
	registry.MustRegister(s.reloadFailed)

	sccmRunner, err := winrm.New(winrmConfig(firstSite(cfg)), logger.With("system", "sccm"))
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("AUTOPATCH_SCCM_*: %w", err)
	}
	var sites []jobs.Site
	for _, site := range cfg.Sites {
		r, err := winrm.New(winrmConfig(site.WinRM), logger.With("system", "sccm", "site", site.Code))
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("AUTOPATCH_SCCM_%s_*: %w", site.Code, err)
		}
		sites = append(sites, jobs.NewSite(site.Code,
			sccm.New(calls.Runner("sccm", r), site.Code, logger.With("system", "sccm", "site", site.Code)), site.Workers))
	}
	scomRunner, err := winrm.New(winrmConfig(cfg.SCOM), logger.With("system", "scom"))
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("AUTOPATCH_SCOM_*: %w", err)
	}
	snow, err := servicenow.New(servicenow.Config{
		URL: cfg.ServiceNow.URL, User: cfg.ServiceNow.User, Password: cfg.ServiceNow.Password.Reveal(),
		OAuthClientID: cfg.ServiceNow.OAuthClientID, OAuthClientSecret: cfg.ServiceNow.OAuthClientSecret.Reveal(),
		Timeout: cfg.ServiceNow.Timeout,
	}, &http.Client{Transport: calls.Transport("servicenow", nil)}, logger.With("system", "servicenow"))
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("AUTOPATCH_SERVICENOW_*: %w", err)
	}
	s.id = id
	s.deps = &jobs.Deps{
		Pool: st.Pool, Logger: logger, Schedules: &s.schedules, ClientID: s.id, Sites: sites,
		SCCM:         sccm.New(calls.Runner("sccm", sccmRunner), "", logger.With("system", "sccm")),
		ServiceNow:   snow,
		Metrics:      jobs.NewMetrics(registry),
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
			Services: &s.services, RequestPolicy: cfg.Safety.RequestPolicy, PlanPolicy: cfg.Safety.PlanPolicy,
		},
		Force: forceOptions(cfg),
	}
	s.river, err = jobs.NewClient(s.deps, cfg.Queues)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("river client: %w", err)
	}
	e := handlers.New(handlers.Options{
		Logger: logger, Ready: s.ready, Registry: registry,
		APIToken: cfg.APIToken, Store: st, Schedules: &s.schedules, Pool: st.Pool,
		ServiceRules: &s.services,
		Compliance:   ledgerOptions(cfg),
		Webhooks: &handlers.WebhookOptions{Store: st, Jobs: s.river, Auth: handlers.WebhookAuth{
			Secret: cfg.WebhookSecret, User: cfg.WebhookUser, Password: cfg.WebhookPassword,
		}},
	})
	// The administrator's console (handlers/ui, docs/architecture.md §9.5).
	consoleSite := ""
	if len(cfg.Sites) > 0 {
		consoleSite = cfg.Sites[0].Code
	}
	consoleSCCM := sccm.New(sccmRunner, consoleSite, logger.With("system", "sccm"))
	if err := ui.Register(e, ui.Options{
		Logger: logger, Token: cfg.APIToken, DB: st.Pool, Schedules: &s.schedules, ServiceRules: &s.services,
		Collections: consoleSCCM.CollectionsWithMaintenanceWindows, ServiceNowURL: cfg.ServiceNow.URL,
		Ledger: ledgerOptions(cfg),
	}); err != nil {
		st.Close()
		return nil, err
	}
	s.http = handlers.Server(cfg.Listen, e)
	if s.listener, err = net.Listen("tcp", cfg.Listen); err != nil {
		st.Close()
		return nil, fmt.Errorf("listen on %s (AUTOPATCH_LISTEN): %w", cfg.Listen, err)
	}
	return s, nil
}

// ready is /readyz: the database answers and the job client runs.
func (s *server) ready(ctx context.Context) error {
	if !s.riverRunning.Load() {
		return errors.New("job client is not running")
	}
	if err := s.store.Ping(ctx); err != nil {
		return errors.New("database unreachable")
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	var warnings handlers.Warnings
	for _, file := range []string{"schedules", "services"} {
		if msg, ok := s.reloadErrs[file]; ok {
			warnings = append(warnings, msg)
		}
	}
	if len(warnings) > 0 {
		return warnings
	}
	return nil
}

// reloaded records the outcome of a file's reload for the metric and
// /readyz.
func (s *server) reloaded(file string, err error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.reloadErrs == nil {
		s.reloadErrs = map[string]string{}
	}
	if err == nil {
		delete(s.reloadErrs, file)
		s.reloadFailed.WithLabelValues(file).Set(0)
		return
	}
	s.reloadErrs[file] = fmt.Sprintf("%s file reload failed at %s; the %s in force are kept: %v",
		file, time.Now().UTC().Format(time.RFC3339), file, err)
	s.reloadFailed.WithLabelValues(file).Set(1)
}

// run starts River and HTTP, waits for ctx, then stops in order: HTTP first
// (no new webhooks), then River (running jobs finish or are cancelled at the
// deadline and retried later), then the pool.
func (s *server) run(ctx context.Context) error {
	defer s.store.Close()
	// Registered before River starts: the other replicas must never see
	// this one's jobs running without its lock held.
	rep, err := replica.Register(ctx, s.store.Pool, s.id, s.logger, replica.Options{OnRescue: func(n int) {
		s.deps.Metrics.JobsRescued.Add(float64(n))
	}})
	if err != nil {
		return err
	}
	if err := s.river.Start(ctx); err != nil {
		return fmt.Errorf("start river: %w", err)
	}
	// The keeper and the replica stop before River: a graceful stop leaves
	// no job for the others to take over.
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var background sync.WaitGroup
	background.Go(func() { rep.Run(bgCtx) })
	background.Go(func() { jobs.NewWindowKeeper(s.deps, s.river).Run(bgCtx) })
	s.riverRunning.Store(true)
	go func() {
		<-s.river.Stopped()
		s.riverRunning.Store(false)
	}()

	go s.reloadOnHangup(ctx)

	httpErr := make(chan error, 1)
	go func() { httpErr <- s.http.Serve(s.listener) }()
	s.logger.Info("autopatch serving", append([]any{"listen", s.listener.Addr().String(), "replica", s.id,
		"database", config.RedactURL(s.cfg.DatabaseURL.Reveal())}, buildinfo.Read().Attrs()...)...)

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
	if rerr := s.river.Stop(stopCtx); rerr != nil {
		s.logger.Warn("jobs did not finish in time; cancelling them (they will be retried)", "error", rerr)
		hardCtx, hardCancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer hardCancel()
		_ = s.river.StopAndCancel(hardCtx)
	}
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

// reload re-reads the schedules and services files. A file that does not
// validate is logged, counted in autopatch_reload_failed and reported in
// /readyz's body; what is in force stays.
func (s *server) reload(ctx context.Context) {
	err := s.schedules.Load(ctx, s.cfg.SchedulesFile, s.store, s.logger)
	if err != nil {
		s.logger.Error("schedules reload failed; the schedules in force are kept", "error", err)
	}
	s.reloaded("schedules", err)
	err = s.loadServices()
	if err != nil {
		s.logger.Error("services file reload failed; the service limits in force are kept", "error", err)
	}
	s.reloaded("services", err)
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
func (s *server) loadServices() error {
	path := s.cfg.ServicesFile
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
	s.services.Set(rules)
	s.logger.Info("services file loaded", "file", path, "services", len(rules.Rules()))
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
