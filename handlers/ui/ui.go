// Package ui is autopatch's administrator's console (docs/architecture.md §9.5): a
// read-only web UI under /ui/ (a tenant's under /t/{tenant}/ui/, §10.2),
// rendered on the server with html/template
// from templates and a stylesheet embedded in the binary. There is no
// JavaScript: every page reads fully without it, and the Content Security
// Policy allows none. Pages read through internal/store and the schedules
// in force, never through jobs; nothing in the console changes state.
package ui

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/autopatch/autopatch/internal/config"
	"github.com/autopatch/autopatch/internal/ledger"
	"github.com/autopatch/autopatch/internal/safety"
	"github.com/autopatch/autopatch/internal/schedules"
	"github.com/autopatch/autopatch/internal/store"
	"github.com/autopatch/autopatch/internal/tenants"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// CollectionsFunc lists the SCCM collections that have maintenance windows
// of their own (sccm.Client.CollectionsWithMaintenanceWindows).
type CollectionsFunc func(ctx context.Context) ([]string, error)

// Site is one SCCM site whose collections the console reads: with
// AUTOPATCH_SCCM_SITES each site has collections of its own, and one down
// site must not hide the others' (docs/architecture.md §10.1).
type Site struct {
	// Code is the site code; "" for the single site of
	// AUTOPATCH_SCCM_ENDPOINT.
	Code        string
	Collections CollectionsFunc
}

// Options are the console's dependencies.
type Options struct {
	Logger *slog.Logger
	// Base is the path of the console's tenant: "" for the default tenant
	// (the console at /ui/), "/t/acme" for tenant acme, whose requests
	// handlers.Tenants hands over with that prefix taken off, so the routes
	// stay /ui/... on the tenant's own Echo. Every URL the console writes
	// starts with Base+"/ui", the session cookie's path is Base+"/ui", and
	// sessions are signed for Base.
	Base string
	// Token is the tenant's API token (AUTOPATCH_API_TOKEN for the
	// default tenant): signing in takes it, and sessions are signed with a
	// key derived from it (changing it signs everyone out).
	Token     config.Secret
	DB        store.DBTX
	Schedules *schedules.Current
	// ServiceRules are the service-safety limits; nil means defaults.
	ServiceRules *safety.CurrentServices
	// Sites are read for the collections page, side by side; none leaves
	// the page saying SCCM is not configured.
	Sites []Site
	// Ledger sets the compliance ledger's deadlines, as the API's.
	Ledger ledger.Options
	// CollectionsTTL is how long the collections read is cached; default
	// 5 minutes.
	CollectionsTTL time.Duration
	// ServiceNowURL is the instance URL, for links to incidents; empty
	// shows incident numbers without links.
	ServiceNowURL string
	// SessionTTL is how long a sign-in lasts; default 8 hours.
	SessionTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// console holds the parsed templates and the options.
type console struct {
	opts        Options
	pages       map[string]*template.Template
	sessions    sessionKeys
	collections []*collectionsCache // one per Options.Sites
	// mount is the path before /ui that the console's Echo sees: "" when
	// handlers.Tenants took the tenant's prefix off (or for the default
	// tenant), the base itself for a stranger, which the root serves with
	// the prefix on.
	mount string
	// stranger is the console of a tenant that does not exist
	// (RegisterStranger): it accepts no token and no session.
	stranger bool
}

// consoleKey is where the console's group puts the console that answers
// the request (Register's one, or a stranger made for the request).
const consoleKey = "ui.console"

// baseRE is what Options.Base may be: path segments whose characters need
// no escaping anywhere a URL is written (a tenant's name is a DNS label).
var baseRE = regexp.MustCompile(`^(/[a-z0-9][a-z0-9-]*)*$`)

// Register adds the console's routes to e: /ui/static/* and /ui/login are
// open, everything else under /ui/ needs a session.
func Register(e *echo.Echo, opts Options) error {
	if !baseRE.MatchString(opts.Base) {
		return fmt.Errorf("ui: base %q: want \"\" or a path such as /t/acme", opts.Base)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 8 * time.Hour
	}
	if opts.CollectionsTTL <= 0 {
		opts.CollectionsTTL = 5 * time.Minute
	}
	if opts.ServiceRules == nil {
		opts.ServiceRules = &safety.CurrentServices{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	pages, err := parsedPages()
	if err != nil {
		return err
	}
	c := &console{opts: opts, pages: pages, sessions: newSessionKeys(opts.Token, opts.Base)}
	c.collections = make([]*collectionsCache, len(opts.Sites))
	for i := range opts.Sites {
		c.collections[i] = &collectionsCache{ttl: opts.CollectionsTTL}
	}
	routes(e, "", func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(ctx echo.Context) error {
			ctx.Set(consoleKey, c)
			return next(ctx)
		}
	})
	return nil
}

// RegisterStranger adds to e, the root that handlers.Tenants hands every
// request naming no tenant, the console of a tenant that does not exist:
// /t/{name}/ui/... answers a visitor as a tenant's console answers one
// without a session (the sign-in page, redirects to it, a refused
// sign-in, the static files), with {name} in the links, so that the
// console does not tell which tenants exist (issue #20). It accepts no
// token and no session, and keeps nothing per name: each request makes
// its own stranger from the path. {name} must be one a tenant could have
// (a lower-case DNS label, tenants.MaxNameLength at most), taken as sent;
// anything else is the root's 404, as for every unknown tenant.
func RegisterStranger(e *echo.Echo, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	pages, err := parsedPages()
	if err != nil {
		return err
	}
	routes(e, "/t/:tenant", func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(ctx echo.Context) error {
			base, ok := strangerBase(ctx.Request().URL.EscapedPath())
			if !ok {
				return echo.ErrNotFound
			}
			ctx.Set(consoleKey, &console{
				opts:  Options{Logger: logger, Base: base, Now: time.Now, SessionTTL: 8 * time.Hour},
				pages: pages, mount: base, stranger: true,
			})
			return next(ctx)
		}
	})
	return nil
}

// strangerBase is the base of the tenant an escaped path /t/{name}/ui...
// names, if {name} could be a tenant's.
func strangerBase(escaped string) (string, bool) {
	rest, ok := strings.CutPrefix(escaped, "/t/")
	if !ok {
		return "", false
	}
	name, rest, _ := strings.Cut(rest, "/")
	if !tenants.ValidName(name) || (rest != "ui" && !strings.HasPrefix(rest, "ui/")) {
		return "", false
	}
	return "/t/" + name, true
}

// routes adds the console's route table under prefix+"/ui", the same for
// every console and for the stranger, so that they answer alike down to
// what Echo's router answers by itself. at puts the console that answers
// the request in the context (consoleKey).
func routes(e *echo.Echo, prefix string, at echo.MiddlewareFunc) {
	g := e.Group(prefix+"/ui", at, securityHeaders)
	g.GET("/static/*", serve((*console).static))
	g.GET("/login", serve((*console).loginForm))
	g.POST("/login", serve((*console).login))
	g.POST("/logout", serve((*console).logout))

	in := g.Group("", requireSession)
	in.GET("", serve((*console).home))
	in.GET("/", serve((*console).home))
	in.GET("/calendar", serve((*console).calendarMonth))
	in.GET("/calendar/week", serve((*console).calendarWeek))
	in.GET("/changes", serve((*console).changeList))
	in.GET("/changes/:number", serve((*console).changePage))
	in.GET("/failures", serve((*console).failureList))
	in.GET("/devices", serve((*console).deviceList))
	in.GET("/devices/:name", serve((*console).devicePage))
	in.GET("/services", serve((*console).serviceList))
	in.GET("/services/:name", serve((*console).servicePage))
	in.GET("/collections", serve((*console).collectionsPage))
	in.GET("/compliance", serve((*console).compliancePage))
	in.GET("/*", serve((*console).notFound))
}

// serve hands the request to h of the console the group put in the
// context.
func serve(h func(*console, echo.Context) error) echo.HandlerFunc {
	return func(ctx echo.Context) error {
		return h(ctx.Get(consoleKey).(*console), ctx)
	}
}

// staticFiles serves static/ (fs.Sub fails only on an invalid name).
var staticFiles = func() http.Handler {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err)
	}
	return http.FileServer(http.FS(sub))
}()

func (c *console) static(ctx echo.Context) error {
	if strings.HasSuffix(ctx.Request().URL.Path, "/") {
		return c.notFound(ctx) // no directory listings
	}
	http.StripPrefix(c.mount+"/ui/static/", staticFiles).ServeHTTP(ctx.Response(), ctx.Request())
	return nil
}

// href is the URL of the console's page at p ("/calendar"): every URL the
// console writes, in Go and (through page.UI) in its templates.
func (c *console) href(p string) string { return href(c.opts.Base, p) }

func href(base, p string) string { return base + "/ui" + p }

// sent is a path (or path and query) of this console's request as the
// visitor sent it, the tenant's prefix included.
func (c *console) sent(p string) string {
	return c.opts.Base + strings.TrimPrefix(p, c.mount)
}

// pageNames are the templates in templates/, each rendered inside
// layout.html.
var pageNames = []string{
	"login", "error", "calendar", "week", "changes", "change", "devices", "device",
	"services", "service", "collections", "compliance", "failures",
}

var funcs = template.FuncMap{
	"utc": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"utcp": func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"lower": strings.ToLower,
	"deref": func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	},
	"query":      queryString,
	"pathEscape": url.PathEscape,
	"statusName": statusName,
	"add":        func(a, b int) int { return a + b },
	"errorCode": func(c *int64) string {
		if c == nil {
			return ""
		}
		return fmt.Sprintf("0x%08X", uint32(*c))
	},
	"part": func(p page, data any) partData { return partData{Page: p, Data: data} },
	"zoneForm": func(action, keepName, keepValue string, zones []zoneOption) zoneFormData {
		d := zoneFormData{Action: action, Zones: zones}
		if keepValue != "" {
			d.Keep = &hiddenField{Name: keepName, Value: keepValue}
		}
		return d
	},
}

// parsedPages parses the templates once: they are the same for every
// console, which hands its base to them in page.
var parsedPages = sync.OnceValues(parsePages)

func parsePages() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/parts.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("ui: template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

type hiddenField struct{ Name, Value string }

type zoneFormData struct {
	Action string
	Keep   *hiddenField
	Zones  []zoneOption
}

// partData is what a part (parts.html) that writes links gets: the page,
// for page.UI, and its own data.
type partData struct {
	Page page
	Data any
}

// page is what every template gets: the page's own data under Data.
type page struct {
	Title    string
	Nav      string // the menu entry to highlight
	SignedIn bool
	Data     any
	// Base is the console's Options.Base; render sets it.
	Base string
}

// UI is the URL of the console's page at path ("/calendar") followed by
// rest (an escaped name, a query), as console.href: templates write every
// link, form and static file with it, each URL in one action. (Split in
// two actions, html/template would check the second part alone as a
// whole URL, and a name or query holding ':' would read as a scheme.)
func (p page) UI(path string, rest ...string) string {
	return href(p.Base, path+strings.Join(rest, ""))
}

// render writes a page with status. It renders into a buffer first so a
// template error becomes an error page, not half a page.
func (c *console) render(ctx echo.Context, status int, name string, p page) error {
	var buf bytes.Buffer
	p.Base = c.opts.Base
	if err := c.pages[name].Execute(&buf, p); err != nil {
		c.opts.Logger.ErrorContext(ctx.Request().Context(), "ui: render", "page", name, "error", err)
		if name == "error" {
			return ctx.String(http.StatusInternalServerError, "internal error")
		}
		return c.fail(ctx, err)
	}
	return ctx.HTMLBlob(status, buf.Bytes())
}

type errorData struct {
	Status  int
	Heading string
	Message string
	Back    string // a link back, e.g. to the list
	BackTo  string
}

// problem renders a friendly error page with the status (400, 404).
func (c *console) problem(ctx echo.Context, status int, heading, message, back, backTo string) error {
	return c.render(ctx, status, "error", page{Title: heading, SignedIn: true, Data: errorData{
		Status: status, Heading: heading, Message: message, Back: back, BackTo: backTo,
	}})
}

// fail renders a 500 whose details go to the log only.
func (c *console) fail(ctx echo.Context, err error) error {
	status := http.StatusInternalServerError
	msg := "Something failed inside autopatch. The request id " + ctx.Response().Header().Get(echo.HeaderXRequestID) + " finds it in autopatch's log."
	if errors.Is(err, context.DeadlineExceeded) {
		status, msg = http.StatusServiceUnavailable, "The page took too long to read; try again."
	}
	c.opts.Logger.ErrorContext(ctx.Request().Context(), "ui: page failed", "path", ctx.Request().URL.Path,
		"request_id", ctx.Response().Header().Get(echo.HeaderXRequestID), "error", err)
	var buf bytes.Buffer
	if terr := c.pages["error"].Execute(&buf, page{Title: "Error", SignedIn: true, Base: c.opts.Base, Data: errorData{Status: status, Heading: "Error", Message: msg}}); terr != nil {
		return ctx.String(status, msg)
	}
	return ctx.HTMLBlob(status, buf.Bytes())
}

func (c *console) notFound(ctx echo.Context) error {
	return c.problem(ctx, http.StatusNotFound, "Page not found", "There is no console page at "+c.sent(ctx.Request().URL.Path)+".", c.href("/calendar"), "the calendar")
}

func (c *console) home(ctx echo.Context) error {
	return ctx.Redirect(http.StatusSeeOther, c.href("/calendar"))
}

// securityHeaders: no script at all, styles and images from the console
// only, no framing, no referrer leaving the site, nothing cached.
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		if !strings.HasSuffix(c.Path(), "/ui/static/*") { // the route, whatever the prefix
			h.Set("Cache-Control", "no-store")
		}
		return next(c)
	}
}

// queryString builds "?k=v&…" from pairs, leaving out empty values; "" when
// all are empty.
func queryString(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			v.Set(kv[i], kv[i+1])
		}
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// statusName names SCCM's StatusType values.
func statusName(t int) string {
	switch t {
	case 1:
		return "success"
	case 2:
		return "in progress"
	case 4:
		return "unknown"
	case 5:
		return "error"
	}
	return fmt.Sprintf("status %d", t)
}
