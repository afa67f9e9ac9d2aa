package ui

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/connectors/winrm"
	"github.com/autopatch/autopatch/internal/calendar"
	"github.com/autopatch/autopatch/internal/estate"
)

// chromiumPath finds the browser. `make test` installs Chromium when it is
// missing (handlers/ui/chromium.sh); without it this test fails rather than skips,
// so a machine that cannot run it does not pass silently.
func chromiumPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("AUTOPATCH_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("Chromium is not installed: run `make test` (it installs it with apt-get) or `apt-get install chromium`, or set AUTOPATCH_CHROMIUM")
	return ""
}

// browser is a headless Chromium tab that records every console error,
// uncaught exception, log entry of level error (CSP violations, failed
// loads) and dialog (an alert from an injected script).
type browser struct {
	t   testing.TB
	ctx context.Context

	mu       sync.Mutex
	problems []string
	// allowed are URLs whose error status is the point (404 pages).
	allowed []string
}

func newBrowser(t testing.TB) *browser {
	t.Helper()
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // root in CI containers
		chromedp.WindowSize(1440, 1000),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx}
	chromedp.ListenTarget(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.APITypeError || ev.Type == runtime.APITypeWarning {
				b.problems = append(b.problems, fmt.Sprintf("console.%s %v", ev.Type, ev.Args))
			}
		case *runtime.EventExceptionThrown:
			b.problems = append(b.problems, "exception: "+ev.ExceptionDetails.Text)
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.LevelError || ev.Entry.Level == log.LevelWarning {
				for _, u := range b.allowed {
					if ev.Entry.URL == u {
						return
					}
				}
				b.problems = append(b.problems, fmt.Sprintf("log %s (%s): %s %s", ev.Entry.Level, ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		case *cdppage.EventJavascriptDialogOpening:
			b.problems = append(b.problems, "dialog: "+ev.Message)
			go func() { _ = chromedp.Run(ctx, cdppage.HandleJavaScriptDialog(false)) }()
		}
	})
	require.NoError(t, chromedp.Run(ctx, log.Enable(), runtime.Enable()))
	return b
}

func (b *browser) run(actions ...chromedp.Action) {
	b.t.Helper()
	require.NoError(b.t, chromedp.Run(b.ctx, actions...))
}

func (b *browser) allow(url string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.allowed = append(b.allowed, url)
}

func (b *browser) requireNoProblems() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	require.Empty(b.t, b.problems, "the browser reported errors")
}

func (b *browser) location() string {
	b.t.Helper()
	var loc string
	b.run(chromedp.Location(&loc))
	return loc
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	var s string
	b.run(chromedp.Text(sel, &s, chromedp.ByQuery))
	return s
}

// windows returns the calendar's windows on the page as "date schedule".
func (b *browser) windows(scope string) []string {
	b.t.Helper()
	var attrs []map[string]string
	var nodes []*cdp.Node
	b.run(chromedp.Nodes(scope+" .win[data-schedule]", &nodes, chromedp.ByQueryAll, chromedp.AtLeast(0)))
	if len(nodes) > 0 {
		b.run(chromedp.AttributesAll(scope+" .win[data-schedule]", &attrs, chromedp.ByQueryAll))
	}
	var out []string
	for _, a := range attrs {
		out = append(out, a["data-date"]+" "+a["data-schedule"])
	}
	slices.Sort(out)
	return out
}

// shoot saves a full-page PNG into SCREENSHOTS_DIR (make screenshots).
func (b *browser) shoot(name string) {
	b.t.Helper()
	dir := os.Getenv("SCREENSHOTS_DIR")
	if dir == "" {
		return
	}
	var png []byte
	b.run(chromedp.FullScreenshot(&png, 100))
	require.NoError(b.t, os.MkdirAll(dir, 0o755))
	require.NoError(b.t, os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644))
}

// computed returns the windows internal/calendar computes for the local
// dates [first, last], each on the date of its start in loc (nil: its own
// zone), as "date schedule".
func computed(sc *scenario, first, last time.Time, loc *time.Location) []string {
	var out []string
	for _, s := range sc.current.Get().All() {
		for _, w := range s.Windows(first.AddDate(0, 0, -2), last.AddDate(0, 0, 3)) {
			start := w.Start
			if loc != nil {
				start = start.In(loc)
			}
			d := start.Format(time.DateOnly)
			if d >= first.Format(time.DateOnly) && d <= last.Format(time.DateOnly) {
				out = append(out, d+" "+w.Schedule)
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestConsoleInBrowser drives headless Chromium through every page of the
// console: a scenario on a real PostgreSQL, the collections read from the
// simulated SCCM site over WinRM, signing in and out, the calendar showing
// exactly the windows internal/calendar computes (in a DST month and week,
// in the schedules' zones and in UTC), navigation by the links and forms a
// person uses, hostile device names shown as text, and no console errors.
// With SCREENSHOTS_DIR set it saves a PNG of each page (make screenshots).
func TestConsoleInBrowser(t *testing.T) {
	t.Parallel()
	sc := seedScenario(t, scenarioOpts{Devices: 120, Months: 12, Now: scenarioNow})

	var collections []string
	for _, s := range sc.current.Get().All() {
		collections = append(collections, s.Collection)
	}
	est, err := estate.Start(t.Context(), estate.Options{
		Seed: estate.Seed{Collections: []estate.SeedCollection{
			{Name: "Patch - DB - Sat 02:00", MaintenanceWindows: 1},
			{Name: "Finance - month end freeze", MaintenanceWindows: 2},
			{Name: "All Workstations"},
		}},
		ScheduleCollections: collections,
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, est.Close()) })
	runner, err := winrm.New(est.WinRMConfig(), nil)
	require.NoError(t, err)
	site := sccm.New(runner, "", nil)

	srv := httptest.NewServer(newServer(t, sc, site.CollectionsWithMaintenanceWindows))
	t.Cleanup(srv.Close)
	b := newBrowser(t)
	u := func(path string) string { return srv.URL + path }

	// Sign-in: the console sends a visitor to the login page first.
	b.run(chromedp.Navigate(u("/ui/calendar?month=2026-12")), chromedp.WaitVisible("#token", chromedp.ByID))
	require.True(t, strings.HasPrefix(b.location(), u("/ui/login?next=")), b.location())
	b.shoot("login")
	b.allow(u("/ui/login")) // the refused sign-in answers 401
	b.run(chromedp.SendKeys("#token", "not the token", chromedp.ByID), chromedp.Click("#sign-in", chromedp.ByID),
		chromedp.WaitVisible("#login-message", chromedp.ByID))
	b.run(chromedp.SendKeys("#token", testToken, chromedp.ByID), chromedp.Click("#sign-in", chromedp.ByID),
		chromedp.WaitVisible("#month-title", chromedp.ByID))
	require.Equal(t, u("/ui/calendar?month=2026-12"), b.location())

	// The month: every window internal/calendar computes, on its day in
	// its schedule's zone, coloured by state, linking to its change.
	dec1 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	require.Equal(t, "December 2026", b.text("#month-title"))
	require.Equal(t, computed(sc, dec1, dec1.AddDate(0, 1, -1), nil), b.windows("table.month"))
	var states []map[string]string
	b.run(chromedp.AttributesAll("table.month .win[data-schedule]", &states, chromedp.ByQueryAll))
	seen := map[string]bool{}
	for _, a := range states {
		seen[a["data-state"]] = true
	}
	for _, s := range []string{"closed", "open", "held", "scheduled"} {
		require.True(t, seen[s], "December shows a %s window: %v", s, states)
	}
	b.shoot("calendar")

	// A DST month: October 2026, when Sydney springs forward (4th) and
	// London falls back (25th).
	b.run(chromedp.Navigate(u("/ui/calendar?month=2026-10")), chromedp.WaitVisible("#month-title", chromedp.ByID))
	oct1 := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	require.Equal(t, computed(sc, oct1, oct1.AddDate(0, 1, -1), nil), b.windows("table.month"))
	require.Contains(t, b.text(`td[data-date="2026-10-25"]`), "DST Europe/London: BST → GMT, clocks go back 1 h at 02:00")
	require.Contains(t, b.text(`td[data-date="2026-10-04"]`), "DST Australia/Sydney: AEST → AEDT, clocks go forward 1 h at 02:00")

	// A DST week, reached from its month by the week link of its row:
	// 8–14 March 2027, New York springs forward on the Sunday, the day of
	// APP-SUN-0200's window.
	b.run(chromedp.Navigate(u("/ui/calendar?month=2027-03")), chromedp.WaitVisible("#month-title", chromedp.ByID))
	mar1 := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	require.Equal(t, computed(sc, mar1, mar1.AddDate(0, 1, -1), nil), b.windows("table.month"))
	require.Contains(t, b.text(`td[data-date="2027-03-28"]`), "DST Europe/London: GMT → BST, clocks go forward 1 h at 01:00")
	b.run(chromedp.Click(`//td[@data-date="2027-03-14"]/following-sibling::td[@class="wk"]/a`, chromedp.BySearch),
		chromedp.WaitVisible("#week-title", chromedp.ByID))
	require.Equal(t, "Week of Mon 8 Mar 2027", b.text("#week-title"))
	mon := time.Date(2027, 3, 8, 0, 0, 0, 0, time.UTC)
	week := computed(sc, mon, mon.AddDate(0, 0, 6), nil)
	require.GreaterOrEqual(t, len(week), 3, "a busy week")
	require.Equal(t, week, b.windows(".week"))
	require.Contains(t, b.text(`section[data-date="2027-03-14"]`), "DST America/New_York: EST → EDT, clocks go forward 1 h at 02:00")
	b.shoot("week-dst")

	// The viewer's zone: the same week in UTC.
	b.run(chromedp.SetValue("#tz", "UTC", chromedp.ByID), chromedp.Submit("#tz", chromedp.ByID),
		chromedp.WaitVisible("#week-title", chromedp.ByID))
	require.Contains(t, b.location(), "tz=UTC")
	require.Equal(t, computed(sc, mon, mon.AddDate(0, 0, 6), time.UTC), b.windows(".week"))

	// The busy weekend of December, then a window's change.
	b.run(chromedp.Navigate(u("/ui/calendar/week?week=2026-12-12")), chromedp.WaitVisible("#week-title", chromedp.ByID))
	dec7 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	require.Equal(t, computed(sc, dec7, dec7.AddDate(0, 0, 6), nil), b.windows(".week"))
	b.shoot("week")
	b.run(chromedp.Click(`.week a.win[data-state="open"]`, chromedp.ByQuery), chromedp.WaitVisible("#change-number", chromedp.ByID))
	require.Equal(t, u("/ui/changes/"+sc.currentChange), b.location())
	require.Contains(t, b.text("#plan"), "not placed:")
	require.Contains(t, b.text("#plan"), "held:")
	require.Contains(t, b.text("#deployments"), "open")
	require.Contains(t, b.text("#timeline"), "created → open")
	var bars, deployments []*cdp.Node
	b.run(chromedp.Nodes("#gantt rect.bar", &bars, chromedp.ByQueryAll), chromedp.Nodes("#deployments tbody tr", &deployments, chromedp.ByQueryAll))
	require.Len(t, bars, len(deployments), "a bar per deployment on the time line")
	require.Contains(t, b.text("#notes"), "planned "+sc.currentChange)
	var incident string
	var ok bool
	b.run(chromedp.AttributeValue(".failures a.incident", "href", &incident, &ok, chromedp.ByQuery))
	require.True(t, strings.HasPrefix(incident, "https://example.service-now.com/nav_to.do?uri=incident.do"), incident)
	// A hostile device name in the failures: text, not markup.
	failures := b.text(".failures")
	require.True(t, strings.Contains(failures, hostileScript) || strings.Contains(failures, hostileImg), failures)
	b.shoot("change")

	// The changes list, by the menu.
	b.run(chromedp.Click(`header nav a[href="/ui/changes"]`, chromedp.ByQuery), chromedp.WaitVisible("#changes", chromedp.ByID))
	var rows []*cdp.Node
	b.run(chromedp.Nodes("#changes tbody tr", &rows, chromedp.ByQueryAll))
	require.Len(t, rows, len(sc.changes))
	b.shoot("changes")

	// What failed: the open failures, by the menu and the filter form.
	b.run(chromedp.Click(`header nav a[href="/ui/failures"]`, chromedp.ByQuery), chromedp.WaitVisible("#failures", chromedp.ByID))
	b.run(chromedp.SetValue("#state", "open", chromedp.ByID), chromedp.Click("#filter", chromedp.ByID))
	// The unfiltered page has incidents too: wait for the filtered one.
	require.Eventually(t, func() bool { return strings.Contains(b.location(), "state=open") }, 10*time.Second, 20*time.Millisecond,
		"the filter form leads to the open failures")
	b.run(chromedp.WaitVisible(`#failures a.incident`, chromedp.ByQuery))
	require.NotContains(t, b.text("#failures"), "resolved")
	b.shoot("failures")

	// Devices: search, then a device.
	b.run(chromedp.Click(`header nav a[href="/ui/devices"]`, chromedp.ByQuery), chromedp.WaitVisible("#devices", chromedp.ByID))
	b.run(chromedp.SendKeys("#q", "srvdb", chromedp.ByID), chromedp.Click("#search", chromedp.ByID))
	require.Eventually(t, func() bool { return strings.Contains(b.location(), "q=srvdb") }, 10*time.Second, 20*time.Millisecond,
		"the search form leads to the results")
	b.run(chromedp.WaitVisible(`#devices tbody tr:first-child a[href^="/ui/devices/SRVDB"]`, chromedp.ByQuery))
	b.shoot("devices")
	b.run(chromedp.Click(`#devices tbody a`, chromedp.ByQuery), chromedp.WaitVisible("#device-name", chromedp.ByID))
	require.True(t, strings.HasPrefix(b.text("#device-name"), "SRVDB"))
	require.NotContains(t, b.text("#next-windows"), "No upcoming window")
	require.Contains(t, b.text("#results"), sc.currentChange)
	b.shoot("device")

	// The hostile device's page: its name is the heading's text.
	b.run(chromedp.Navigate(u("/ui/devices?q="+strings.ReplaceAll(hostileScript[:7], "<", "%3C"))),
		chromedp.WaitVisible(`#devices tbody a`, chromedp.ByQuery),
		chromedp.Click(`#devices tbody a`, chromedp.ByQuery), chromedp.WaitVisible("#device-name", chromedp.ByID))
	require.Equal(t, hostileScript, b.text("#device-name"))

	// Services, by the device's service link.
	b.run(chromedp.Click(`header nav a[href="/ui/services"]`, chromedp.ByQuery), chromedp.WaitVisible("#services", chromedp.ByID))
	b.run(chromedp.Click(`#services a[href="/ui/services/Payroll"]`, chromedp.ByQuery), chromedp.WaitVisible("#service-name", chromedp.ByID))
	require.Equal(t, "Payroll", b.text("#service-name"))
	b.shoot("service")

	// Collections: read from the simulated SCCM site.
	b.run(chromedp.Click(`header nav a[href="/ui/collections"]`, chromedp.ByQuery), chromedp.WaitVisible("#collections", chromedp.ByID))
	text := b.text("#collections")
	require.Contains(t, text, "Finance - month end freeze")
	require.Contains(t, text, "Patch - DB - Sat 02:00")
	require.NotContains(t, text, "All Workstations")
	b.shoot("collections")

	b.run(chromedp.Click(`header nav a[href="/ui/compliance"]`, chromedp.ByQuery), chromedp.WaitVisible("#compliance-outcomes", chromedp.ByID))
	b.shoot("compliance")

	// Not found: a page, not an error.
	b.allow(u("/ui/changes/CHG9999999"))
	b.run(chromedp.Navigate(u("/ui/changes/CHG9999999")), chromedp.WaitVisible("#problem-message", chromedp.ByID))
	require.Contains(t, b.text("#problem-message"), "no change")

	// Sign out: the console is closed again.
	b.run(chromedp.Click(`form.signout button`, chromedp.ByQuery), chromedp.WaitVisible("#token", chromedp.ByID))
	b.run(chromedp.Navigate(u("/ui/changes")), chromedp.WaitVisible("#token", chromedp.ByID))
	require.True(t, strings.HasPrefix(b.location(), u("/ui/login")))

	b.requireNoProblems()
	_ = calendar.KindAutomatic
}
