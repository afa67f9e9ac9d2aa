// Package ui is autopatch's administrator's console (docs/architecture.md §9.5): a
// read-only web UI under /ui/, rendered on the server with html/template
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
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/autopatch/autopatch/internal/config"
	"github.com/autopatch/autopatch/internal/ledger"
	"github.com/autopatch/autopatch/internal/safety"
	"github.com/autopatch/autopatch/internal/schedules"
	"github.com/autopatch/autopatch/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// CollectionsFunc lists the SCCM collections that have maintenance windows
// of their own (sccm.Client.CollectionsWithMaintenanceWindows).
type CollectionsFunc func(ctx context.Context) ([]string, error)

// Options are the console's dependencies.
type Options struct {
	Logger *slog.Logger
	// Token is AUTOPATCH_API_TOKEN: signing in takes it, and sessions are
	// signed with a key derived from it (changing it signs everyone out).
	Token     config.Secret
	DB        store.DBTX
	Schedules *schedules.Current
	// ServiceRules are the service-safety limits; nil means defaults.
	ServiceRules *safety.CurrentServices
	// Collections reads SCCM; nil leaves the collections page saying SCCM
	// is not configured.
	Collections CollectionsFunc
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
	collections collectionsCache
}

// Register adds the console's routes to e: /ui/static/* and /ui/login are
// open, everything else under /ui/ needs a session.
func Register(e *echo.Echo, opts Options) error {
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
	pages, err := parsePages()
	if err != nil {
		return err
	}
	c := &console{opts: opts, pages: pages, sessions: newSessionKeys(opts.Token)}
	c.collections.ttl = opts.CollectionsTTL

	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return fmt.Errorf("ui: static files: %w", err)
	}
	g := e.Group("/ui", securityHeaders)
	files := http.StripPrefix("/ui/static/", http.FileServer(http.FS(static)))
	g.GET("/static/*", func(ctx echo.Context) error {
		if strings.HasSuffix(ctx.Request().URL.Path, "/") {
			return c.notFound(ctx) // no directory listings
		}
		files.ServeHTTP(ctx.Response(), ctx.Request())
		return nil
	})
	g.GET("/login", c.loginForm)
	g.POST("/login", c.login)
	g.POST("/logout", c.logout)

	in := g.Group("", c.requireSession)
	in.GET("", c.home)
	in.GET("/", c.home)
	in.GET("/calendar", c.calendarMonth)
	in.GET("/calendar/week", c.calendarWeek)
	in.GET("/changes", c.changeList)
	in.GET("/changes/:number", c.changePage)
	in.GET("/failures", c.failureList)
	in.GET("/devices", c.deviceList)
	in.GET("/devices/:name", c.devicePage)
	in.GET("/services", c.serviceList)
	in.GET("/services/:name", c.servicePage)
	in.GET("/collections", c.collectionsPage)
	in.GET("/compliance", c.compliancePage)
	in.GET("/*", c.notFound)
	return nil
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
	"query":      func(kv ...string) template.URL { return template.URL(queryString(kv...)) },
	"pathEscape": url.PathEscape,
	"statusName": statusName,
	"add":        func(a, b int) int { return a + b },
	"errorCode": func(c *int64) string {
		if c == nil {
			return ""
		}
		return fmt.Sprintf("0x%08X", uint32(*c))
	},
	"zoneForm": func(action, keepName, keepValue string, zones []zoneOption) zoneFormData {
		d := zoneFormData{Action: action, Zones: zones}
		if keepValue != "" {
			d.Keep = &hiddenField{Name: keepName, Value: keepValue}
		}
		return d
	},
}

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

// page is what every template gets: the page's own data under Data.
type page struct {
	Title    string
	Nav      string // the menu entry to highlight
	SignedIn bool
	Data     any
}

// render writes a page with status. It renders into a buffer first so a
// template error becomes an error page, not half a page.
func (c *console) render(ctx echo.Context, status int, name string, p page) error {
	var buf bytes.Buffer
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
	if terr := c.pages["error"].Execute(&buf, page{Title: "Error", SignedIn: true, Data: errorData{Status: status, Heading: "Error", Message: msg}}); terr != nil {
		return ctx.String(status, msg)
	}
	return ctx.HTMLBlob(status, buf.Bytes())
}

func (c *console) notFound(ctx echo.Context) error {
	return c.problem(ctx, http.StatusNotFound, "Page not found", "There is no console page at "+ctx.Request().URL.Path+".", "/ui/calendar", "the calendar")
}

func (c *console) home(ctx echo.Context) error {
	return ctx.Redirect(http.StatusSeeOther, "/ui/calendar")
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
		if !strings.HasPrefix(c.Request().URL.Path, "/ui/static/") {
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
