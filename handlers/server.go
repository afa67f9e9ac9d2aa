// Package handlers is autopatch's HTTP surface: ServiceNow's webhooks, the
// read API, health and metrics. Handlers are thin: authenticate, bind,
// validate, call the store or enqueue, answer.
package handlers

import (
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/autopatch/autopatch/internal/config"
	"github.com/autopatch/autopatch/internal/ledger"
	"github.com/autopatch/autopatch/internal/safety"
	"github.com/autopatch/autopatch/internal/schedules"
)

// MaxBody is the largest request body accepted (docs/architecture.md §4.3).
const MaxBody = 1 << 20

// Options are the dependencies of the HTTP server.
type Options struct {
	Logger *slog.Logger
	Ready  ReadyFunc
	// Registry is where this server's metrics go when Registerer is nil,
	// and what /metrics serves when Metrics is nil. A tenant's is its own:
	// /t/{tenant}/metrics serves it, the tenant's series alone.
	Registry *prometheus.Registry
	// Metrics, when set, is what the process's /metrics serves: with
	// tenants, the process's registry and every tenant's.
	Metrics prometheus.Gatherer
	// Registerer is where this server's own metrics (requests, webhooks)
	// go; nil means Registry. A tenant's is Registry wrapped with its
	// tenant label.
	Registerer prometheus.Registerer

	// Tenant, when set, makes this the server of one tenant of a tenants
	// file, mounted under /t/{Tenant}/ by Tenants: it serves only its
	// webhooks and read API, and the console that serve registers on it
	// (health, metrics and the OpenAPI document are the process's), and
	// answers a refused API token as Tenants answers
	// an unknown tenant, so a token of another tenant learns nothing.
	Tenant string

	APIToken config.Secret // bearer token of /api/v1
	// MetricsToken, when set, is the bearer token of the process's
	// /metrics and of /readyz's details (metrics.go).
	MetricsToken config.Secret
	Store        ScheduleLister     // stored schedules
	Schedules    *schedules.Current // schedules in force
	Now          func() time.Time   // clock; nil means time.Now
	// Pool holds changes, deployments, devices; nil leaves the read API
	// out (a tenants file without the default tenant: only the process's
	// routes are unprefixed).
	Pool *pgxpool.Pool

	// Webhooks configures POST /webhooks/servicenow/*; nil leaves them out.
	Webhooks *WebhookOptions

	// Compliance decides the compliance ledger's deadlines.
	Compliance ledger.Options

	// ServiceRules are the service-safety limits in force (services
	// file); nil leaves GET /api/v1/services/{name} out.
	ServiceRules *safety.CurrentServices
}

// New builds the Echo server with its middleware and route table.
func New(opts Options) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = ErrorHandler(opts.Logger)

	requests := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "autopatch_http_request_duration_seconds",
		Help:    "HTTP requests by route, method and status code.",
		Buckets: prometheus.DefBuckets,
	}, []string{"route", "method", "code"})
	reg := opts.Registerer
	if reg == nil {
		reg = opts.Registry
	}
	reg.MustRegister(requests)

	e.Use(middleware.RequestID())
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true}))
	e.Use(accessLog(opts.Logger, requests))
	e.Use(middleware.BodyLimit(strconv.Itoa(MaxBody) + "B"))

	// Route table.
	if opts.Tenant == "" {
		e.GET("/healthz", healthz)
		e.GET("/readyz", readyz(opts.Ready, opts.MetricsToken))
		var metrics prometheus.Gatherer = opts.Registry
		if opts.Metrics != nil {
			metrics = opts.Metrics
		}
		e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(metrics, promhttp.HandlerOpts{Registry: opts.Registry})),
			metricsAuth(opts.MetricsToken))
		e.GET("/openapi.yaml", openAPIDocument)
	} else {
		// The tenant's own registry: scraping it runs the tenant's
		// collectors (queries of its schema) and no other tenant's.
		e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{})), bearerAuth(opts.APIToken, true))
	}
	if opts.Webhooks != nil {
		wo := *opts.Webhooks
		wo.ledger = opts.Compliance // the deferral webhook checks deadlines as the ledger does
		registerWebhooks(e, wo, opts.Logger, reg)
	}
	if opts.Pool == nil {
		return e
	}

	now := opts.Now
	if now == nil {
		now = time.Now
	}
	api := e.Group("/api/v1", bearerAuth(opts.APIToken, opts.Tenant != ""))
	api.GET("/schedules", listSchedules(opts.Store))
	api.GET("/schedules/:name/windows", scheduleWindows(opts.Schedules, now))
	api.GET("/changes/:number", getChange(opts.Pool, opts.Compliance))
	if opts.Webhooks != nil {
		// Resuming a change enqueues a job: it needs the job client that
		// the webhooks use.
		api.POST("/changes/:number/resume", resumeChange(opts.Pool, opts.Webhooks.Jobs, now))
	}
	api.GET("/devices/:name", getDevice(opts.Pool, opts.Schedules, now))
	rules := opts.ServiceRules
	if rules == nil {
		rules = &safety.CurrentServices{} // no services file: default limits
	}
	api.GET("/services/:name", getService(opts.Pool, opts.Schedules, rules, now))
	// The list APIs (docs/architecture.md §9.5, handlers/lists.go).
	api.GET("/changes", listChanges(opts.Pool))
	api.GET("/devices", listDevices(opts.Pool))
	api.GET("/windows", listWindows(opts.Pool, opts.Schedules, now))
	api.GET("/failures", listFailures(opts.Pool))
	api.GET("/compliance", getCompliance(opts.Pool, opts.Compliance, now))
	return e
}

// Tenants serves each tenant's server (Options.Tenant) under /t/{name}/,
// and everything else with root. The tenant is resolved from the path
// before anything else: an unknown tenant falls to root, which has no /t/
// route and answers Echo's 404, the answer a tenant gives to a token it
// refuses. The name is matched in the path as sent, so an escaped spelling
// of a tenant's name (/t/%61cme/) is an unknown tenant too, answered
// alike, rather than some other 404 that would tell the tenant exists.
//
// A tenant's console (/t/{name}/ui/, handlers/ui with Options.Base) does
// not answer a visitor without a session with a 404 but with its sign-in
// page, so for the console the unknown tenant's answer is not a 404
// either: serve registers ui.RegisterStranger on root, which answers
// /t/{name}/ui/... for any name a tenant could have exactly as a tenant's
// console answers such a visitor, with that name in its links. (handlers
// cannot call it here: handlers/ui imports handlers.)
func Tenants(root http.Handler, tenants map[string]http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/t/")
		if !ok {
			root.ServeHTTP(w, r)
			return
		}
		name, _, _ := strings.Cut(rest, "/")
		h, ok := tenants[name]
		if !ok {
			root.ServeHTTP(w, r)
			return
		}
		// The name has no escapes, so the decoded path starts with it too.
		prefix := "/t/" + name
		r2 := new(http.Request)
		*r2 = *r
		r2.URL = new(url.URL)
		*r2.URL = *r.URL
		r2.URL.Path = strings.TrimPrefix(r.URL.Path, prefix)
		r2.URL.RawPath = strings.TrimPrefix(r.URL.RawPath, prefix)
		h.ServeHTTP(w, r2)
	})
}

// Server wraps h in an http.Server with timeouts, so a slow or stuck client
// cannot hold connections forever.
func Server(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// accessLog logs one structured line per request, carrying its request id,
// and observes its duration.
func accessLog(logger *slog.Logger, hist *prometheus.HistogramVec) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				// Let the error handler write the response now so the
				// logged status is the one the client got.
				c.Error(err)
			}
			status := c.Response().Status
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			elapsed := time.Since(start)
			hist.WithLabelValues(route, c.Request().Method, strconv.Itoa(status)).Observe(elapsed.Seconds())
			level := slog.LevelInfo
			if route == "/healthz" || route == "/readyz" || route == "/metrics" {
				level = slog.LevelDebug
			}
			logger.Log(c.Request().Context(), level, "http request",
				"request_id", requestID(c),
				"method", c.Request().Method,
				"route", route,
				"status", status,
				"duration_ms", elapsed.Milliseconds(),
				"remote", c.RealIP(),
				"bytes_in", c.Request().ContentLength,
			)
			return nil
		}
	}
}
