package ui

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/handlers"
	"github.com/autopatch/autopatch/internal/compliance"
	"github.com/autopatch/autopatch/internal/ledger"
	"github.com/autopatch/autopatch/internal/store"
)

const testToken = "console-test-token"

// scenarioNow is the scenario's clock: Sunday 13 December 2026 03:00 UTC,
// inside APP-SUN-0200's window (02:00–06:00 GMT), the day after
// DB-SAT-0200's.
var scenarioNow = time.Date(2026, 12, 13, 3, 0, 0, 0, time.UTC)

// newServer serves autopatch's HTTP surface with the console, as serve
// does, over the scenario.
func newServer(t testing.TB, sc *scenario, collections CollectionsFunc) *echo.Echo {
	t.Helper()
	var sites []Site
	if collections != nil {
		sites = []Site{{Collections: collections}}
	}
	return newServerOfSites(t, sc, sites)
}

// newServerOfSites is newServer with the SCCM sites of
// AUTOPATCH_SCCM_SITES, each read for the collections page.
func newServerOfSites(t testing.TB, sc *scenario, sites []Site) *echo.Echo {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	now := func() time.Time { return sc.now }
	e := handlers.New(handlers.Options{
		Logger: logger, Ready: func(context.Context) error { return nil }, Registry: prometheus.NewRegistry(),
		APIToken: testToken, Store: &store.Store{Pool: sc.pool}, Schedules: sc.current, Pool: sc.pool, Now: now,
	})
	require.NoError(t, Register(e, Options{
		Logger: logger, Token: testToken, DB: sc.pool, Schedules: sc.current, Sites: sites,
		ServiceNowURL: "https://example.service-now.com", Now: now,
	}))
	return e
}

// client is a browser without a browser: it keeps cookies and does not
// follow redirects.
type client struct {
	t    *testing.T
	base string
	http *http.Client
}

func newClient(t *testing.T, base string) *client {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &client{t: t, base: base, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

func (c *client) get(path string) (*http.Response, string) {
	c.t.Helper()
	resp, err := c.http.Get(c.base + path)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	return resp, string(b)
}

func (c *client) signIn(token string) *http.Response {
	c.t.Helper()
	resp, err := c.http.PostForm(c.base+"/ui/login", url.Values{"token": {token}, "next": {"/ui/changes"}})
	require.NoError(c.t, err)
	require.NoError(c.t, resp.Body.Close())
	return resp
}

func TestConsolePages(t *testing.T) {
	t.Parallel()
	sc := seedScenario(t, scenarioOpts{Devices: 60, Months: 3, Now: scenarioNow})
	srv := httptest.NewServer(newServer(t, sc, func(context.Context) ([]string, error) {
		return []string{"Patch - DB - Sat 02:00", "Legacy " + hostileScript}, nil
	}))
	t.Cleanup(srv.Close)

	t.Run("SignInRequired", func(t *testing.T) {
		t.Parallel()
		c := newClient(t, srv.URL)
		resp, _ := c.get("/ui/changes?status=planned")
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		require.Equal(t, "/ui/login?next="+url.QueryEscape("/ui/changes?status=planned"), resp.Header.Get("Location"))

		resp = c.signIn("wrong")
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		resp, _ = c.get("/ui/calendar")
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, "a wrong token signs nobody in")

		resp = c.signIn(testToken)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		require.Equal(t, "/ui/changes", resp.Header.Get("Location"))
		var session *http.Cookie
		for _, ck := range resp.Cookies() {
			if ck.Name == SessionCookie {
				session = ck
			}
		}
		require.NotNil(t, session)
		require.True(t, session.HttpOnly)
		require.Equal(t, http.SameSiteStrictMode, session.SameSite)
		require.False(t, session.Secure, "plain HTTP: a Secure cookie would never come back")
		require.NotContains(t, session.Value, testToken)

		resp, _ = c.get("/ui/calendar")
		require.Equal(t, http.StatusOK, resp.StatusCode)

		resp, err := c.http.PostForm(srv.URL+"/ui/logout", nil)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		resp, _ = c.get("/ui/calendar")
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, "signed out")
	})

	t.Run("SecureCookieBehindTLS", func(t *testing.T) {
		t.Parallel()
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/ui/login", strings.NewReader(url.Values{"token": {testToken}}.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-Proto", "https")
		resp, err := newClient(t, srv.URL).http.Do(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.True(t, resp.Cookies()[0].Secure)
	})

	t.Run("SessionsExpireAndAreSigned", func(t *testing.T) {
		t.Parallel()
		k := newSessionKeys(testToken, "")
		now := time.Now()
		require.True(t, k.valid(k.sign(now.Add(time.Minute).Unix()), now))
		require.False(t, k.valid(k.sign(now.Add(-time.Second).Unix()), now), "expired")
		forged := k.sign(now.Add(time.Minute).Unix())
		forged = "9" + forged
		require.False(t, k.valid(forged, now), "a changed expiry breaks the signature")
		require.False(t, newSessionKeys("other", "").valid(k.sign(now.Add(time.Minute).Unix()), now), "another token's session")
		require.False(t, newSessionKeys("", "").checkToken(""), "no token configured: nobody signs in")
	})

	t.Run("ReadOnly", func(t *testing.T) {
		t.Parallel()
		// Signing in and out are the only requests that are not GETs, and
		// neither changes anything autopatch knows.
		for _, r := range newServer(t, sc, nil).Routes() {
			if !strings.HasPrefix(r.Path, "/ui") || r.Method == "echo_route_not_found" {
				continue
			}
			if r.Method != http.MethodGet {
				require.Contains(t, []string{"/ui/login", "/ui/logout"}, r.Path, "%s %s", r.Method, r.Path)
			}
		}
	})

	t.Run("NoOpenRedirect", func(t *testing.T) {
		t.Parallel()
		for _, next := range []string{"//evil.example/ui/", "https://evil.example/", "/api/v1/changes", `/ui/\evil.example`} {
			resp, err := newClient(t, srv.URL).http.PostForm(srv.URL+"/ui/login", url.Values{"token": {testToken}, "next": {next}})
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			require.Equal(t, "/ui/calendar", resp.Header.Get("Location"), next)
		}
	})

	t.Run("StaticFiles", func(t *testing.T) {
		t.Parallel()
		c := newClient(t, srv.URL)
		resp, body := c.get("/ui/static/style.css")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, resp.Header.Get("Content-Type"), "text/css")
		require.Contains(t, body, ".state-open")
		resp, _ = c.get("/ui/static/")
		require.Equal(t, http.StatusNotFound, resp.StatusCode, "no listing")
	})

	c := newClient(t, srv.URL)
	require.Equal(t, http.StatusSeeOther, c.signIn(testToken).StatusCode)

	// The compliance page shows the ledger the API and the report compute.
	t.Run("ComplianceIsTheLedger", func(t *testing.T) {
		t.Parallel()
		cur, err := store.GetChange(context.Background(), sc.pool, sc.currentChange)
		require.NoError(t, err)
		cycle := ledger.CycleOf(cur)
		l, err := ledger.ForCycle(context.Background(), sc.pool, cycle, sc.now, ledger.Options{})
		require.NoError(t, err)
		require.Positive(t, l.Summary.Devices, "the scenario has devices in the current change's cycle")
		_, body := c.get("/ui/compliance?cycle=" + cycle.String())
		require.Contains(t, body, `id="compliance-summary"`)
		require.Contains(t, body, fmt.Sprintf("%d of %d", l.Summary.PatchedByDeadline, l.Summary.Devices))
		for _, o := range compliance.Outcomes {
			require.Contains(t, body, fmt.Sprintf(`<span class="state %s">%s</span></td><td>%d</td>`, o, o, l.Summary.ByOutcome[o]), o)
		}
		for _, d := range l.Devices[:min(len(l.Devices), 5)] {
			require.Contains(t, body, ">"+template.HTMLEscapeString(d.Device)+"</a>")
		}
	})

	t.Run("ForcedRemediation", func(t *testing.T) {
		// A wave of forced remediation of the current change: one device
		// patched, the hostile one failed.
		_, err := sc.pool.Exec(context.Background(), `WITH w AS (
				INSERT INTO forced_waves (change_number, run_at, wave, not_before, duration, collection, deployments, update_groups,
					state, opened_at, close_at, closed_at, results_at, created_at)
				VALUES ($1, $2, 0, $2, '2 hours', 'Patch - Forced', ARRAY['AP-x-(forced)-g'], ARRAY['g'],
					'closed', $2, $2::timestamptz + interval '2 hours', $2::timestamptz + interval '2 hours', $2::timestamptz + interval '2 hours', $2)
				RETURNING id)
			INSERT INTO forced_devices (change_number, device_name, wave_id, schedule_name, deadline, planned_at, result)
			SELECT $1, d, id, 'DB', $2, $2, r FROM w, (VALUES ('FORCED01', 'patched'), ($3, 'failed')) AS x(d, r)`,
			sc.currentChange, sc.now.Add(-time.Hour), hostileScript)
		require.NoError(t, err)
		_, body := c.get("/ui/changes/" + sc.currentChange)
		require.Contains(t, body, `id="forced"`)
		require.Contains(t, body, template.HTMLEscapeString(hostileScript)+" failed · FORCED01 patched")
		require.NotContains(t, body, hostileScript)
		require.Contains(t, body, "forced wave 1 opened")
	})

	t.Run("EveryPage", func(t *testing.T) {
		for _, tt := range []struct{ path, want string }{
			{"/ui/", ""},
			{"/ui/calendar", "December 2026"},
			{"/ui/calendar?month=2026-10&tz=UTC", "October 2026"},
			{"/ui/calendar/week?week=2026-12-13", "Week of Mon 7 Dec 2026"},
			{"/ui/changes", sc.currentChange},
			{"/ui/changes/" + sc.currentChange, "held:"},
			{"/ui/failures?state=open", "INC00"},
			{"/ui/failures?change=" + sc.currentChange + "&kind=error", "WU_E_ALL_UPDATES_FAILED"},
			{"/ui/devices", "SRV"},
			{"/ui/devices?q=srvdb", "SRVDB"},
			{"/ui/devices/" + url.PathEscape(hostileScript), "Open failures"},
			{"/ui/services", "Payroll"},
			{"/ui/services/payroll", "Members by tier"},
			{"/ui/collections", "Patch - DB - Sat 02:00"},
			{"/ui/compliance?cycle=2026-11", "Compliance 2026-11"},
		} {
			resp, body := c.get(tt.path)
			if tt.path == "/ui/" {
				require.Equal(t, http.StatusSeeOther, resp.StatusCode)
				continue
			}
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", tt.path, body)
			require.Contains(t, body, tt.want, tt.path)
			require.Contains(t, resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'")
			require.NotContains(t, resp.Header.Get("Content-Security-Policy"), "script-src")
			require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'none'")
			require.NotContains(t, body, "<script", "%s: no script, and hostile names escaped", tt.path)
			require.NotContains(t, body, "<img src=x", tt.path)
		}
	})

	t.Run("HostileNamesEscaped", func(t *testing.T) {
		for _, path := range []string{"/ui/devices", "/ui/changes/" + sc.currentChange, "/ui/failures", "/ui/services/payroll", "/ui/collections",
			"/ui/devices/" + url.PathEscape(hostileImg)} {
			resp, body := c.get(path)
			require.Equal(t, http.StatusOK, resp.StatusCode, path)
			require.True(t, strings.Contains(body, "&lt;script&gt;") || strings.Contains(body, "&lt;img"), "%s shows the hostile name as text", path)
		}
	})

	t.Run("BadInput", func(t *testing.T) {
		for _, tt := range []struct {
			path string
			code int
			want string
		}{
			{"/ui/changes/CHG9999999", http.StatusNotFound, "autopatch has received no change"},
			{"/ui/devices/NOPE01", http.StatusNotFound, "autopatch manages no device"},
			{"/ui/devices/" + url.PathEscape("<b>x</b>"), http.StatusNotFound, "&lt;b&gt;x&lt;/b&gt;"},
			{"/ui/services/nothing", http.StatusNotFound, "no device of service"},
			{"/ui/nowhere", http.StatusNotFound, "no console page"},
			{"/ui/calendar?month=2026-13", http.StatusBadRequest, "Write it as YYYY-MM"},
			{"/ui/calendar?month=" + url.QueryEscape("<script>"), http.StatusBadRequest, "&lt;script&gt;"},
			{"/ui/calendar?tz=Mars/Olympus", http.StatusBadRequest, "not a time zone"},
			{"/ui/calendar/week?week=13/12/2026", http.StatusBadRequest, "YYYY-MM-DD"},
			{"/ui/compliance?cycle=last", http.StatusBadRequest, "not a patch cycle"},
			{"/ui/changes?status=done", http.StatusBadRequest, "received, planned or canceled"},
			{"/ui/changes?cursor=abc!", http.StatusBadRequest, "cursor"},
			{"/ui/devices?cursor=bm90LWpzb24", http.StatusBadRequest, "cursor"},
			{"/ui/devices?tier=top", http.StatusBadRequest, "backend, middle or frontend"},
			{"/ui/failures?state=burning", http.StatusBadRequest, "open or resolved"},
			{"/ui/failures?kind=oops", http.StatusBadRequest, "not a kind of failure"},
			{"/ui/failures?cursor=eyJpIjowfQ", http.StatusBadRequest, "cursor"},
		} {
			resp, body := c.get(tt.path)
			require.Equal(t, tt.code, resp.StatusCode, "%s: %s", tt.path, body)
			require.Contains(t, resp.Header.Get("Content-Type"), "text/html", tt.path)
			require.Contains(t, body, tt.want, tt.path)
		}
	})

	t.Run("Pagination", func(t *testing.T) {
		seen := map[string]bool{}
		next := "/ui/devices"
		for pages := 0; next != ""; pages++ {
			require.Less(t, pages, 5)
			resp, body := c.get(next)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			next = ""
			if i := strings.Index(body, `id="next-page" href="`); i >= 0 {
				rest := body[i+len(`id="next-page" href="`):]
				next = strings.ReplaceAll(rest[:strings.Index(rest, `"`)], "&amp;", "&")
			}
			for _, d := range sc.devices {
				if strings.Contains(body, ">"+template.HTMLEscapeString(d)+"<") {
					seen[d] = true
				}
			}
		}
		require.Len(t, seen, len(sc.devices), "every device on exactly the pages walked")
	})
}

// TestCollectionsOfSites: with several SCCM sites the collections page
// reads each site side by side and shows each under its code. A site that
// cannot be read says so without hiding the others, and a collection is a
// schedule's only at the schedule's own site: the same name at another
// site is another collection.
func TestCollectionsOfSites(t *testing.T) {
	t.Parallel()
	sc := seedScenario(t, scenarioOpts{Devices: 4, Months: 1, Now: scenarioNow, Sites: []string{"PS1", "EU1", "AP1"}, SchedulesYAML: []byte(`schedules:
  - {name: LON-SAT, site: PS1, collection: "Patch - Sat", kind: automatic, timezone: Europe/London, recurrence: {anchor: patch_tuesday, offset_days: 4}, start: "02:00", duration: 4h}
  - {name: FRA-SUN, site: EU1, collection: "Patch - Sun", kind: automatic, timezone: Europe/Berlin, recurrence: {anchor: patch_tuesday, offset_days: 5}, start: "02:00", duration: 4h}
`)})
	srv := httptest.NewServer(newServerOfSites(t, sc, []Site{
		{Code: "PS1", Collections: func(context.Context) ([]string, error) {
			return []string{"Patch - Sat", "Patch - Sun", "Finance freeze"}, nil
		}},
		{Code: "EU1", Collections: func(context.Context) ([]string, error) { return nil, errors.New("connection refused") }},
		{Code: "AP1", Collections: func(context.Context) ([]string, error) { return []string{"Patch - Sun"}, nil }},
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL)
	c.signIn(testToken)
	resp, body := c.get("/ui/collections")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)

	section := func(code string) string {
		t.Helper()
		_, after, ok := strings.Cut(body, `id="site-`+code+`"`)
		require.True(t, ok, "site %s has a section", code)
		before, _, _ := strings.Cut(after, "</section>")
		return before
	}
	ps1 := section("PS1")
	require.Contains(t, ps1, "Site PS1")
	require.Regexp(t, `<tr class="bad">\s*<td>Patch - Sat</td>\s*<td>LON-SAT</td>`, ps1, "the schedule's collection at its site")
	require.Regexp(t, `<tr>\s*<td>Patch - Sun</td>\s*<td>—</td>`, ps1, "FRA-SUN's collection is at EU1, not PS1")
	require.Contains(t, ps1, "Finance freeze")
	eu1 := section("EU1")
	require.Contains(t, eu1, "could not read the collections")
	require.NotContains(t, eu1, "<table")
	require.Regexp(t, `<tr>\s*<td>Patch - Sun</td>\s*<td>—</td>`, section("AP1"))
}
