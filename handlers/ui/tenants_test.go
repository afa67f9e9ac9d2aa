package ui

import (
	"html"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/handlers"
	"github.com/autopatch/autopatch/internal/config"
	"github.com/autopatch/autopatch/internal/store"
)

const (
	acmeToken    = "acme-console-token"
	contosoToken = "contoso-console-token"
)

// newTenantsServer serves the scenario as serve does with a tenants file:
// the default tenant's console at /ui/, tenants acme and contoso (each
// with its own token) under /t/{name}/ by handlers.Tenants, and the
// stranger on the root for every other name. The tenants read the same
// database here: what each one shows is cmd/autopatch's
// TestServeTenantsConsole.
func newTenantsServer(t testing.TB, sc *scenario, tokens map[string]config.Secret) *httptest.Server {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	now := func() time.Time { return sc.now }
	mounted := map[string]http.Handler{}
	for name, token := range tokens {
		e := handlers.New(handlers.Options{
			Logger: logger, Registry: prometheus.NewRegistry(), Tenant: name,
			APIToken: token, Store: &store.Store{Pool: sc.pool}, Schedules: sc.current, Pool: sc.pool, Now: now,
		})
		require.NoError(t, Register(e, Options{
			Logger: logger, Base: "/t/" + name, Token: token, DB: sc.pool, Schedules: sc.current,
			ServiceNowURL: "https://example.service-now.com", Now: now,
		}))
		mounted[name] = e
	}
	root := newServer(t, sc, nil)
	require.NoError(t, RegisterStranger(root, logger))
	srv := httptest.NewServer(handlers.Tenants(root, mounted))
	t.Cleanup(srv.Close)
	return srv
}

// urlAttr finds the URLs a page holds: html/template quotes every
// attribute it writes.
var urlAttr = regexp.MustCompile(`\s(href|src|action)="([^"]*)"`)

func pageURLs(body string) []string {
	var out []string
	for _, m := range urlAttr.FindAllStringSubmatch(body, -1) {
		out = append(out, html.UnescapeString(m[2]))
	}
	return out
}

func sessionOf(t testing.TB, resp *http.Response) *http.Cookie {
	t.Helper()
	for _, ck := range resp.Cookies() {
		if ck.Name == SessionCookie {
			return ck
		}
	}
	t.Fatal("no session cookie")
	return nil
}

// TestTenantConsole: tenant acme's console under /t/acme/ui/: signing in
// and out, where next leads, the cookie's path, and every link, form and
// static file of every page it reaches under the prefix and answering.
func TestTenantConsole(t *testing.T) {
	t.Parallel()
	sc := seedScenario(t, scenarioOpts{Devices: 40, Months: 2, Now: scenarioNow})
	srv := newTenantsServer(t, sc, map[string]config.Secret{"acme": acmeToken, "contoso": contosoToken})
	const base = "/t/acme/ui"
	c := newClient(t, srv.URL)

	resp, body := c.get(base + "/changes?status=planned")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, base+"/login?next="+url.QueryEscape(base+"/changes?status=planned"), resp.Header.Get("Location"))
	resp, body = c.get(resp.Header.Get("Location"))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, `name="next" value="`+base+`/changes?status=planned"`)
	require.Contains(t, body, "this tenant's API token")
	for _, u := range pageURLs(body) {
		require.True(t, strings.HasPrefix(u, base+"/"), "login page: %s", u)
	}

	for _, tok := range []string{"wrong", testToken, contosoToken} {
		resp, err := c.http.PostForm(srv.URL+base+"/login", url.Values{"token": {tok}, "next": {base + "/changes"}})
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s: another console's token is not acme's", tok)
		require.Contains(t, string(b), "That is not this tenant&#39;s API token.")
		require.Empty(t, resp.Cookies())
	}
	resp, err := c.http.PostForm(srv.URL+base+"/login", url.Values{"token": {acmeToken}, "next": {base + "/changes"}})
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, base+"/changes", resp.Header.Get("Location"))
	session := sessionOf(t, resp)
	require.Equal(t, base, session.Path, "the cookie goes to acme's console only")
	require.True(t, session.HttpOnly)

	t.Run("NextStaysInTheConsole", func(t *testing.T) {
		t.Parallel()
		for _, next := range []string{"/ui/calendar", "/t/contoso/ui/calendar", "/t/acme/uix", "//evil.example/t/acme/ui/",
			base + "/../../contoso/ui/calendar", base + "/%2e%2e/%2e%2e/contoso/ui/calendar", base + `/\evil.example`, "https://evil.example" + base + "/"} {
			resp, err := newClient(t, srv.URL).http.PostForm(srv.URL+base+"/login", url.Values{"token": {acmeToken}, "next": {next}})
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			require.Equal(t, base+"/calendar", resp.Header.Get("Location"), next)
		}
	})

	t.Run("EveryLinkUnderThePrefix", func(t *testing.T) {
		// Walk the console from its pages by the URLs they hold: every one
		// is acme's console (or the ServiceNow instance's incidents), and
		// every page reached answers.
		queue := []string{base + "/", base + "/calendar?month=2026-12", base + "/calendar/week?week=2026-12-13", base + "/changes",
			base + "/changes/" + sc.currentChange, base + "/failures", base + "/devices", base + "/devices/" + url.PathEscape(hostileScript),
			base + "/services", base + "/services/payroll", base + "/collections", base + "/compliance", base + "/nowhere",
			base + "/calendar?month=13"}
		seen := map[string]bool{}
		checked := 0
		for len(queue) > 0 && len(seen) < 70 {
			p := queue[0]
			queue = queue[1:]
			if seen[p] {
				continue
			}
			seen[p] = true
			resp, body := c.get(p)
			switch resp.StatusCode {
			case http.StatusSeeOther:
				require.True(t, strings.HasPrefix(resp.Header.Get("Location"), base+"/"), "%s → %s", p, resp.Header.Get("Location"))
				queue = append(queue, resp.Header.Get("Location"))
				continue
			case http.StatusOK:
			default:
				require.Contains(t, []string{base + "/nowhere", base + "/calendar?month=13"}, p, "%s: %d", p, resp.StatusCode)
			}
			if strings.Contains(p, "/static/") {
				continue
			}
			require.Contains(t, body, `<link rel="stylesheet" href="`+base+`/static/style.css">`, p)
			require.NotContains(t, body, "ZgotmplZ", "%s: a URL html/template refused", p)
			urls := pageURLs(body)
			require.NotEmpty(t, urls, p)
			for _, u := range urls {
				checked++
				if strings.HasPrefix(u, "https://example.service-now.com/") {
					continue
				}
				require.True(t, strings.HasPrefix(u, base+"/"), "%s links to %s", p, u)
				if u != base+"/logout" && u != base+"/login" {
					queue = append(queue, u)
				}
			}
		}
		require.Greater(t, checked, 200, "the walk saw the pages' links")
		require.True(t, seen[base+"/static/style.css"] || slices.ContainsFunc(queue, func(s string) bool { return s == base+"/static/style.css" }))
	})

	t.Run("ProblemPages", func(t *testing.T) {
		resp, body := c.get(base + "/nowhere")
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		require.Contains(t, body, "There is no console page at "+base+"/nowhere.")
		require.Contains(t, body, `<a href="`+base+`/calendar">Back to the calendar</a>`)
		resp, body = c.get(base + "/devices/NOPE01")
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
		require.Contains(t, body, `<a href="`+base+`/devices">Back to the devices</a>`)
	})

	t.Run("StaticFiles", func(t *testing.T) {
		resp, body := c.get(base + "/static/style.css")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, resp.Header.Get("Content-Type"), "text/css")
		require.Empty(t, resp.Header.Get("Cache-Control"), "static files may be cached")
		require.Contains(t, body, ".state-open")
		resp, _ = c.get(base + "/static/favicon.svg")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		resp, _ = c.get(base + "/static/")
		require.Equal(t, http.StatusNotFound, resp.StatusCode, "no listing")
		resp, _ = c.get(base + "/calendar")
		require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	})

	t.Run("SignOut", func(t *testing.T) {
		c := newClient(t, srv.URL)
		require.Equal(t, http.StatusSeeOther, c.signInAt(base, acmeToken).StatusCode)
		resp, _ := c.get(base + "/calendar")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		resp, err := c.http.PostForm(srv.URL+base+"/logout", nil)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		require.Equal(t, base+"/login?signed_out=1", resp.Header.Get("Location"))
		gone := sessionOf(t, resp)
		require.Equal(t, base, gone.Path, "the cookie deleted is acme's")
		require.Negative(t, gone.MaxAge)
		resp, _ = c.get(base + "/calendar")
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, "signed out")
	})
}

func (c *client) signInAt(base, token string) *http.Response {
	c.t.Helper()
	resp, err := c.http.PostForm(c.base+base+"/login", url.Values{"token": {token}, "next": {base + "/changes"}})
	require.NoError(c.t, err)
	require.NoError(c.t, resp.Body.Close())
	return resp
}

// TestTenantConsoleSessions: a session of one console is no session of
// another's, the default tenant's included, even with the same token.
func TestTenantConsoleSessions(t *testing.T) {
	t.Parallel()
	sc := seedScenario(t, scenarioOpts{Devices: 10, Months: 1, Now: scenarioNow})
	srv := newTenantsServer(t, sc, map[string]config.Secret{"acme": acmeToken, "contoso": contosoToken})
	cookie := func(base, token string) string {
		resp := newClient(t, srv.URL).signInAt(base, token)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, base)
		return sessionOf(t, resp).Value
	}
	sessions := map[string]string{
		"/ui":           cookie("/ui", testToken),
		"/t/acme/ui":    cookie("/t/acme/ui", acmeToken),
		"/t/contoso/ui": cookie("/t/contoso/ui", contosoToken),
	}
	for owner, value := range sessions {
		for base := range sessions {
			// By hand: a browser would not send the cookie off its path.
			req, err := http.NewRequest(http.MethodGet, srv.URL+base+"/calendar", nil)
			require.NoError(t, err)
			req.AddCookie(&http.Cookie{Name: SessionCookie, Value: value})
			resp, err := newClient(t, srv.URL).http.Do(req)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			if base == owner {
				require.Equal(t, http.StatusOK, resp.StatusCode, "%s's session on its own console", owner)
			} else {
				require.Equal(t, http.StatusSeeOther, resp.StatusCode, "%s's session on %s", owner, base)
				require.Equal(t, base+"/login?next="+url.QueryEscape(base+"/calendar"), resp.Header.Get("Location"))
			}
		}
	}

	// Two tenants with one token (tenants.Load refuses it; the key does
	// not rest on that): still two consoles.
	same := newTenantsServer(t, sc, map[string]config.Secret{"acme": acmeToken, "globex": acmeToken})
	resp := newClient(t, same.URL).signInAt("/t/acme/ui", acmeToken)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	req, err := http.NewRequest(http.MethodGet, same.URL+"/t/globex/ui/calendar", nil)
	require.NoError(t, err)
	req.AddCookie(&http.Cookie{Name: SessionCookie, Value: sessionOf(t, resp).Value})
	resp, err = newClient(t, same.URL).http.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "acme's session is not globex's")
	k := newSessionKeys(acmeToken, "/t/acme")
	require.False(t, newSessionKeys(acmeToken, "/t/globex").valid(k.sign(time.Now().Add(time.Hour).Unix()), time.Now()))
	require.False(t, newSessionKeys(acmeToken, "").valid(k.sign(time.Now().Add(time.Hour).Unix()), time.Now()))
}

// answer is a response with what differs between two identical ones
// taken out: the request id, the date, and the tenant's name.
type answer struct {
	Code   int
	Header http.Header
	Body   string
}

func answerOf(t testing.TB, resp *http.Response, name string) answer {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	body := string(b)
	if id := resp.Header.Get(echo.HeaderXRequestID); id != "" {
		body = strings.ReplaceAll(body, id, "REQUEST-ID")
	}
	h := http.Header{}
	for k, vs := range resp.Header {
		switch k {
		case echo.HeaderXRequestID, "Date", "Content-Length":
			continue
		}
		for _, v := range vs {
			h.Add(k, strings.ReplaceAll(v, name, "NAME"))
		}
	}
	return answer{Code: resp.StatusCode, Header: h, Body: strings.ReplaceAll(body, name, "NAME")}
}

// TestStrangerConsole: to a visitor without acme's session, the console of
// tenant globex, which does not exist, answers exactly as acme's, with
// globex for acme: nothing tells which tenants exist. A name no tenant
// could have is the unknown tenant's 404, and so is acme's spelt another
// way.
func TestStrangerConsole(t *testing.T) {
	t.Parallel()
	sc := seedScenario(t, scenarioOpts{Devices: 10, Months: 1, Now: scenarioNow})
	srv := newTenantsServer(t, sc, map[string]config.Secret{"acme": acmeToken, "contoso": contosoToken})
	contosoSession := sessionOf(t, newClient(t, srv.URL).signInAt("/t/contoso/ui", contosoToken)).Value

	do := func(name, method, path string, form url.Values, cookie string) answer {
		t.Helper()
		path = strings.ReplaceAll(path, "NAME", name)
		var body io.Reader
		if form != nil {
			named := url.Values{}
			for k := range form {
				named.Set(k, strings.ReplaceAll(form.Get(k), "NAME", name))
			}
			body = strings.NewReader(named.Encode())
		}
		req, err := http.NewRequest(method, srv.URL+path, body)
		require.NoError(t, err)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: SessionCookie, Value: cookie})
		}
		resp, err := newClient(t, srv.URL).http.Do(req)
		require.NoError(t, err)
		return answerOf(t, resp, name)
	}
	wrong := url.Values{"token": {"not a token"}, "next": {"/t/NAME/ui/devices"}}
	for _, tt := range []struct {
		method, path string
		form         url.Values
		cookie       string
		code         int
	}{
		{"GET", "/t/NAME/ui", nil, "", http.StatusSeeOther},
		{"GET", "/t/NAME/ui/", nil, "", http.StatusSeeOther},
		{"GET", "/t/NAME/ui/calendar?month=2026-10&tz=UTC", nil, "", http.StatusSeeOther},
		{"GET", "/t/NAME/ui/changes/CHG0000001", nil, "", http.StatusSeeOther},
		{"GET", "/t/NAME/ui/devices/" + url.PathEscape(hostileScript), nil, "", http.StatusSeeOther},
		{"GET", "/t/NAME/ui/nowhere", nil, "", http.StatusSeeOther},
		{"GET", "/t/NAME/ui/calendar", nil, contosoSession, http.StatusSeeOther},
		{"GET", "/t/NAME/ui/calendar", nil, "4102444800.forged", http.StatusSeeOther},
		{"GET", "/t/NAME/ui/login", nil, "", http.StatusOK},
		{"GET", "/t/NAME/ui/login?next=%2Ft%2FNAME%2Fui%2Fdevices%3Fq%3D%253Cb%253E", nil, "", http.StatusOK},
		{"GET", "/t/NAME/ui/login?next=" + url.QueryEscape(`/t/NAME/ui/"><script>alert(1)</script>`), nil, "", http.StatusOK},
		{"GET", "/t/NAME/ui/login?next=https://evil.example/", nil, "", http.StatusOK},
		{"GET", "/t/NAME/ui/login?signed_out=1", nil, "", http.StatusOK},
		{"POST", "/t/NAME/ui/login", wrong, "", http.StatusUnauthorized},
		{"POST", "/t/NAME/ui/login", url.Values{"token": {acmeToken}}, "", http.StatusUnauthorized},
		{"POST", "/t/NAME/ui/login", url.Values{}, "", http.StatusUnauthorized},
		{"POST", "/t/NAME/ui/logout", url.Values{}, "", http.StatusSeeOther},
		{"GET", "/t/NAME/ui/static/style.css", nil, "", http.StatusOK},
		{"GET", "/t/NAME/ui/static/favicon.svg", nil, "", http.StatusOK},
		{"GET", "/t/NAME/ui/static/", nil, "", http.StatusNotFound},
		{"GET", "/t/NAME/ui/static/nothing.css", nil, "", http.StatusNotFound},
		{"POST", "/t/NAME/ui/calendar", url.Values{}, "", http.StatusSeeOther},
		{"PUT", "/t/NAME/ui/login", url.Values{}, "", http.StatusSeeOther},
		{"GET", "/t/NAME/uix", nil, "", http.StatusNotFound},
		{"GET", "/t/NAME/api/v1/schedules", nil, "", http.StatusNotFound},
	} {
		// acme's own token signs in to acme: the stranger is compared with
		// a token acme refuses (contoso's).
		real := tt.form
		if tt.form.Get("token") == acmeToken {
			real = url.Values{"token": {contosoToken}}
		}
		want := do("acme", tt.method, tt.path, real, tt.cookie)
		got := do("globex", tt.method, tt.path, tt.form, tt.cookie)
		require.Equal(t, tt.code, want.Code, "%s %s", tt.method, tt.path)
		require.Equal(t, want, got, "%s %s: the stranger answers as acme", tt.method, tt.path)
	}

	// What a stranger's sign-in page holds: its own links, the name
	// escaped wherever the visitor wrote it.
	got := do("globex", "GET", "/t/NAME/ui/login?next="+url.QueryEscape(`/t/NAME/ui/"><script>alert(1)</script>`), nil, "")
	require.NotContains(t, got.Body, "<script>")
	for _, u := range pageURLs(got.Body) {
		require.True(t, strings.HasPrefix(u, "/t/NAME/ui/"), u)
	}

	// Names no tenant could have, and acme spelt otherwise, are the
	// unknown tenant's 404, as every other path of theirs.
	unknown := do("globex", "GET", "/t/NAME/api/v1/schedules", nil, "")
	for _, path := range []string{"/t/Globex/ui/login", "/t/%67lobex/ui/login", "/t/-globex/ui/login", "/t/globex%3Cb%3E/ui/login",
		"/t/" + strings.Repeat("a", 40) + "/ui/login", "/t/%61cme/ui/login", "/t/acme%2Fui/login", "/t//ui/login", "/t/globex_x/ui/calendar"} {
		got := do("globex", "GET", path, nil, "")
		require.Equal(t, unknown, got, path)
	}
}

// TestTemplatesWriteURLsThroughUI: no template writes a console URL but
// through page.UI, so that a tenant's console never links out of its base.
func TestTemplatesWriteURLsThroughUI(t *testing.T) {
	t.Parallel()
	require.NoError(t, fs.WalkDir(templateFS, "templates", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(templateFS, p)
		if err != nil {
			return err
		}
		for _, m := range urlAttr.FindAllStringSubmatch(string(b), -1) {
			require.True(t, strings.HasPrefix(m[2], "{{"), "%s: %s", p, m[0])
		}
		require.NotContains(t, string(b), `"/ui`, p)
		return nil
	}))
	require.Error(t, Register(echo.New(), Options{Base: "/t/acme/"}), "a base ends without /")
	require.Error(t, Register(echo.New(), Options{Base: "t/acme"}))
	require.Error(t, Register(echo.New(), Options{Base: `/t/"><x`}))
}

// TestTenantConsoleInBrowser: in Chromium, tenant acme's console under
// /t/acme/ui/: sent to its sign-in page, signed in with acme's token, its
// menu leads to its pages, its stylesheet loads (a failed load or a CSP
// violation is a problem the browser reports), and signing out closes it.
func TestTenantConsoleInBrowser(t *testing.T) {
	t.Parallel()
	sc := seedScenario(t, scenarioOpts{Devices: 10, Months: 1, Now: scenarioNow})
	srv := newTenantsServer(t, sc, map[string]config.Secret{"acme": acmeToken, "contoso": contosoToken})
	b := newBrowser(t)
	u := func(path string) string { return srv.URL + path }

	b.run(chromedp.Navigate(u("/t/acme/ui/calendar")), chromedp.WaitVisible("#token", chromedp.ByID))
	require.Equal(t, u("/t/acme/ui/login?next="+url.QueryEscape("/t/acme/ui/calendar")), b.location())
	b.allow(u("/t/acme/ui/login")) // the refused sign-in answers 401
	b.run(chromedp.SendKeys("#token", contosoToken, chromedp.ByID), chromedp.Click("#sign-in", chromedp.ByID),
		chromedp.WaitVisible("#login-message", chromedp.ByID))
	b.run(chromedp.SendKeys("#token", acmeToken, chromedp.ByID), chromedp.Click("#sign-in", chromedp.ByID),
		chromedp.WaitVisible("#month-title", chromedp.ByID))
	require.Equal(t, u("/t/acme/ui/calendar"), b.location())
	var display string
	b.run(chromedp.EvaluateAsDevTools(`getComputedStyle(document.querySelector("header.top")).display`, &display))
	require.Equal(t, "flex", display, "the stylesheet under /t/acme/ui/static/ applies")

	b.run(chromedp.Click(`header nav a[href="/t/acme/ui/changes"]`, chromedp.ByQuery), chromedp.WaitVisible("#changes", chromedp.ByID))
	require.Equal(t, u("/t/acme/ui/changes"), b.location())
	b.run(chromedp.Click(`#changes tbody a`, chromedp.ByQuery), chromedp.WaitVisible("#change-number", chromedp.ByID))
	require.True(t, strings.HasPrefix(b.location(), u("/t/acme/ui/changes/")), b.location())

	b.run(chromedp.Click(`form.signout button`, chromedp.ByQuery), chromedp.WaitVisible("#token", chromedp.ByID))
	require.Equal(t, u("/t/acme/ui/login?signed_out=1"), b.location())
	b.run(chromedp.Navigate(u("/t/acme/ui/changes")), chromedp.WaitVisible("#token", chromedp.ByID))
	b.requireNoProblems()
}

// TestURLsHoldingColons: a name or a query holding ':' stays a link, under
// every base (html/template checks each action in a URL as a URL of its
// own; page.UI writes each URL in one).
func TestURLsHoldingColons(t *testing.T) {
	t.Parallel()
	pages, err := parsedPages()
	require.NoError(t, err)
	for _, base := range []string{"", "/t/acme"} {
		var b strings.Builder
		require.NoError(t, pages["services"].Execute(&b, page{Title: "Services", SignedIn: true, Base: base,
			Data: []serviceRow{{Service: "Pay:roll"}, {Service: "javascript:alert(1)"}}}))
		require.Contains(t, b.String(), `href="`+base+`/ui/services/Pay:roll"`)
		require.Contains(t, b.String(), `href="`+base+`/ui/services/javascript:alert%281%29"`)
		b.Reset()
		require.NoError(t, pages["devices"].Execute(&b, page{Title: "Devices", SignedIn: true, Base: base,
			Data: deviceListData{Q: "db:1", Next: queryString("q", "db:1", "cursor", "abc"), First: false}}))
		require.Contains(t, b.String(), `id="next-page" href="`+base+`/ui/devices?cursor=abc&amp;q=db%3A1"`)
		require.Contains(t, b.String(), `href="`+base+`/ui/devices?q=db%3A1">first page`)
		require.NotContains(t, b.String(), "ZgotmplZ")
	}
}
