package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/handlers/ui"
	"github.com/autopatch/autopatch/internal/testdb"
)

// consoleClient is a browser without a browser: no redirect followed, the
// session cookie passed by hand, so that a test can send it where a
// browser would not.
type consoleClient struct {
	t    *testing.T
	base string
}

func (c consoleClient) do(method, path string, form url.Values, session string) (*http.Response, string) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.base+path, body)
	require.NoError(c.t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if session != "" {
		req.AddCookie(&http.Cookie{Name: ui.SessionCookie, Value: session})
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	return resp, string(b)
}

// signIn signs in to the console at base ("/t/acme/ui") and returns the
// session.
func (c consoleClient) signIn(base, token string) string {
	c.t.Helper()
	resp, _ := c.do(http.MethodPost, base+"/login", url.Values{"token": {token}, "next": {base + "/changes"}}, "")
	require.Equal(c.t, http.StatusSeeOther, resp.StatusCode, base)
	require.Equal(c.t, base+"/changes", resp.Header.Get("Location"))
	for _, ck := range resp.Cookies() {
		if ck.Name == ui.SessionCookie {
			require.Equal(c.t, base, ck.Path, "the session goes to its console only")
			return ck.Value
		}
	}
	c.t.Fatal("no session cookie")
	return ""
}

// insertChange writes an approved change in a schema, as the change job
// leaves one.
func insertChange(t *testing.T, conn *pgx.Conn, schema, number string) {
	t.Helper()
	start := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Hour)
	_, err := conn.Exec(context.Background(), `INSERT INTO `+pgx.Identifier{schema, "changes"}.Sanitize()+`
		(number, sys_id, state, approval, start_at, end_at, update_groups, schedules, revision)
		VALUES ($1, $2, 'scheduled', 'approved', $3, $4, $5, '{}', 1)`,
		number, strings.ToLower(number)+"-sys-id", start, start.Add(7*24*time.Hour), []string{"2026-12 Servers"})
	require.NoError(t, err)
}

// TestServeTenantsConsole: each tenant of a tenants file has its console
// under /t/{tenant}/ui/, signed in to with its API token, showing its own
// schema only; another tenant's session or token opens nothing there; an
// unknown tenant's console answers as a tenant's.
func TestServeTenantsConsole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testdb.URL(t)
	c := consoleClient{t: t, base: startServer(t, tenantsOnlyConfig(t, dbURL, tenantsFile(t, "")))}
	waitStatus(t, c.base+"/readyz", http.StatusOK)

	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	insertChange(t, conn, "tenant_acme", "CHG0051111")
	insertChange(t, conn, "tenant_contoso", "CHG0052222")

	resp, _ := c.do(http.MethodGet, "/t/acme/ui/changes", nil, "")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/t/acme/ui/login?next="+url.QueryEscape("/t/acme/ui/changes"), resp.Header.Get("Location"))
	acmeLogin, loginPage := c.do(http.MethodGet, "/t/acme/ui/login", nil, "")
	require.Equal(t, http.StatusOK, acmeLogin.StatusCode)
	require.Contains(t, loginPage, `action="/t/acme/ui/login"`)
	resp, _ = c.do(http.MethodGet, "/t/acme/ui/static/style.css", nil, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)

	acme := c.signIn("/t/acme/ui", "acme-token-value")
	contoso := c.signIn("/t/contoso/ui", "contoso-token-value")

	t.Run("EachConsoleShowsItsOwnSchema", func(t *testing.T) {
		resp, body := c.do(http.MethodGet, "/t/acme/ui/changes", nil, acme)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Contains(t, body, `href="/t/acme/ui/changes/CHG0051111"`)
		require.NotContains(t, body, "CHG0052222")
		resp, body = c.do(http.MethodGet, "/t/acme/ui/changes/CHG0051111", nil, acme)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		resp, _ = c.do(http.MethodGet, "/t/acme/ui/changes/CHG0052222", nil, acme)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, "contoso's change is not acme's")

		resp, body = c.do(http.MethodGet, "/t/contoso/ui/changes", nil, contoso)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.Contains(t, body, `href="/t/contoso/ui/changes/CHG0052222"`)
		require.NotContains(t, body, "CHG0051111")
		require.NotContains(t, body, "/t/acme")
	})

	t.Run("AnotherTenantsSessionOrTokenOpensNothing", func(t *testing.T) {
		for _, path := range []string{"/t/acme/ui/changes", "/t/acme/ui/changes/CHG0051111", "/t/acme/ui/calendar"} {
			resp, body := c.do(http.MethodGet, path, nil, contoso)
			require.Equal(t, http.StatusSeeOther, resp.StatusCode, path)
			require.Equal(t, "/t/acme/ui/login?next="+url.QueryEscape(path), resp.Header.Get("Location"))
			require.NotContains(t, body, "CHG0051111")
		}
		resp, body := c.do(http.MethodPost, "/t/acme/ui/login", url.Values{"token": {"contoso-token-value"}}, "")
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		require.Empty(t, resp.Cookies())
		require.Contains(t, body, "That is not this tenant&#39;s API token.")
		resp, _ = c.do(http.MethodPost, "/t/acme/ui/login", url.Values{"token": {"acme-webhook-value"}}, "")
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the webhook secret is not the token")
	})

	t.Run("UnknownTenantsConsoleAnswersAsATenants", func(t *testing.T) {
		resp, _ := c.do(http.MethodGet, "/t/globex/ui/changes", nil, acme)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		require.Equal(t, "/t/globex/ui/login?next="+url.QueryEscape("/t/globex/ui/changes"), resp.Header.Get("Location"))
		resp, body := c.do(http.MethodGet, "/t/globex/ui/login", nil, "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, loginPage, strings.ReplaceAll(body, "globex", "acme"))
		for _, tok := range []string{"acme-token-value", "contoso-token-value", ""} {
			resp, _ = c.do(http.MethodPost, "/t/globex/ui/login", url.Values{"token": {tok}}, "")
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode, tok)
			require.Empty(t, resp.Cookies())
		}
		resp, _ = c.do(http.MethodGet, "/t/globex/ui/static/style.css", nil, "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
	})

	t.Run("NoDefaultConsole", func(t *testing.T) {
		resp, _ := c.do(http.MethodGet, "/ui/login", nil, "")
		require.Equal(t, http.StatusNotFound, resp.StatusCode, "no default tenant, no console at /ui/")
	})
}

// TestServeTenantsConsoleWithDefault: beside a default tenant, its console
// stays at /ui/ with AUTOPATCH_API_TOKEN, and its session opens no
// tenant's console, nor a tenant's its.
func TestServeTenantsConsoleWithDefault(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, testdb.URL(t))
	cfg.TenantsFile = tenantsFile(t, "")
	c := consoleClient{t: t, base: startServer(t, cfg)}
	waitStatus(t, c.base+"/readyz", http.StatusOK)

	def := c.signIn("/ui", "test-token")
	acme := c.signIn("/t/acme/ui", "acme-token-value")
	resp, _ := c.do(http.MethodGet, "/ui/calendar", nil, def)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = c.do(http.MethodGet, "/ui/calendar", nil, acme)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "acme's session is not the default tenant's")
	resp, _ = c.do(http.MethodGet, "/t/acme/ui/calendar", nil, def)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "the default tenant's session is not acme's")
	resp, _ = c.do(http.MethodPost, "/t/acme/ui/login", url.Values{"token": {"test-token"}}, "")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, _ = c.do(http.MethodPost, "/ui/login", url.Values{"token": {"acme-token-value"}}, "")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, _ = c.do(http.MethodGet, "/t/globex/ui/login", nil, "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "the unknown tenant's console, beside the default's")
	resp, _ = c.do(http.MethodGet, "/t/default/ui/calendar", nil, def)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "the default tenant's console is not under /t/")
}
