package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/config"
	"github.com/autopatch/autopatch/internal/testdb"

	"github.com/autopatch/autopatch/connectors/winrm/wsmansim"
)

// testCA is a PEM certificate for a tenant's winrm.ca_file (a CA made
// for the test run, as the simulators make theirs; nothing connects with it
// here).
var testCA = func() string {
	_, _, ca, err := wsmansim.NewTLSCert("localhost")
	if err != nil {
		panic(err)
	}
	return string(ca)
}()

// snowRecorder is a ServiceNow instance that grants any OAuth token and
// records what it was asked.
type snowRecorder struct {
	mu       sync.Mutex
	clientID []string // of each token request
	auth     []string // the Authorization header of each Table API request
}

func (r *snowRecorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if req.URL.Path == "/oauth_token.do" {
		_ = req.ParseForm()
		r.clientID = append(r.clientID, req.PostForm.Get("client_id")+"/"+req.PostForm.Get("client_secret"))
		fmt.Fprint(w, `{"access_token":"globex-access-token","refresh_token":"r","token_type":"Bearer","expires_in":1800}`)
		return
	}
	r.auth = append(r.auth, req.Header.Get("Authorization"))
	fmt.Fprint(w, `{"result":{"sys_id":"x"}}`)
}

// TestServeTenantSettings: a file tenant's own settings (issue #20) reach
// what serve builds for it — its forced collection in its jobs' Deps, its
// WinRM CA, authentication and timeout in the WinRM configuration of each of
// its servers, its SCOM window computer, its ServiceNow OAuth client in the
// requests its ServiceNow connector makes, its pool size in its pool — and
// a tenant without them keeps the process's, and forces nothing. public's
// pool, without a default tenant, is small.
func TestServeTenantSettings(t *testing.T) {
	t.Parallel()
	snow := &snowRecorder{}
	srv := httptest.NewServer(snow)
	t.Cleanup(srv.Close)

	path := tenantsFile(t, `  - name: globex
    sccm:
      - {site: GX1, endpoint: "https://127.0.0.1:1/wsman", user: g, password_file: acme-sccm}
      - {site: GX2, endpoint: "https://127.0.0.1:2/wsman", user: g, password_file: acme-sccm}
    scom: {endpoint: "https://127.0.0.1:1/wsman", user: g, password_file: acme-scom, window_computer: scomgw.globex.example}
    servicenow: {url: "`+srv.URL+`", user: g, password_file: acme-snow, oauth_client_id: globex-client, oauth_client_secret_file: globex-oauth}
    schedules_file: globex-schedules.yaml
    webhook_secret_file: globex-webhook
    api_token_file: globex-token
    force_collection: autopatch - Forced
    max_connections: 9
    winrm: {auth: basic, ca_file: globex-ca.pem, timeout: 90s}
`)
	dir := filepath.Dir(path)
	for name, content := range map[string]string{
		"globex-webhook": "globex-webhook-value\n", "globex-token": "globex-token-value\n",
		"globex-oauth": "globex-oauth-secret\n", "globex-ca.pem": testCA,
		"globex-schedules.yaml": "schedules:\n  - {name: GX, collection: \"Patch - GX\", site: GX1, windows: [{start: \"2026-12-20T22:00:00Z\", end: \"2026-12-21T02:00:00Z\"}]}\n",
	} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600))
	}
	cfg := tenantsOnlyConfig(t, testdb.URL(t), path)
	cfg.Force.Collection = "the default tenant's - Forced" // never carried to a tenant
	cfg.ServiceNow.OAuthClientID, cfg.ServiceNow.OAuthClientSecret = "default-client", "default-secret"
	cfg.SCOMWindowComputer = "scomgw.default.example"
	cfg.SCCM.Timeout, cfg.SCOM.Timeout = 7*time.Minute, 3*time.Minute
	// The URL sizes every pool but globex's, which says so in the log.
	u, err := neturl.Parse(cfg.DatabaseURL.Reveal())
	require.NoError(t, err)
	q := u.Query()
	q.Set("pool_max_conns", "5")
	u.RawQuery = q.Encode()
	cfg.DatabaseURL = config.Secret(u.String())
	var logs syncBuffer
	s, err := initServer(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	t.Cleanup(s.close)
	byName := map[string]*tenant{}
	for _, tn := range s.tenants {
		byName[tn.name] = tn
	}
	globex, acme := byName["globex"], byName["acme"]
	require.NotNil(t, globex)
	require.NotNil(t, acme)

	t.Run("ForceCollection", func(t *testing.T) {
		require.Equal(t, "autopatch - Forced", globex.deps.Force.Collection)
		require.Equal(t, cfg.Force.WaveLength, globex.deps.Force.WaveLength, "the process's wave length")
		require.Empty(t, acme.deps.Force.Collection, "without the key nothing is forced, whatever the default tenant's")
	})

	t.Run("WinRM", func(t *testing.T) {
		ca := filepath.Join(dir, "globex-ca.pem")
		for _, site := range globex.cfg.Sites {
			w := winrmConfig(site.WinRM)
			require.Equal(t, ca, w.CAFile, site.Code)
			require.Equal(t, "basic", w.Auth, site.Code)
			require.Equal(t, 90*time.Second, w.Timeout, site.Code)
			require.Equal(t, "g", w.User, site.Code)
		}
		require.Equal(t, "https://127.0.0.1:2/wsman", winrmConfig(globex.cfg.Sites[1].WinRM).Endpoint)
		w := winrmConfig(globex.cfg.SCOM)
		require.Equal(t, ca, w.CAFile)
		require.Equal(t, 90*time.Second, w.Timeout)
		require.Equal(t, "basic", w.Auth)

		// acme sets none: the process's, SCCM's for sites and SCOM's for SCOM.
		require.Equal(t, 7*time.Minute, winrmConfig(acme.cfg.Sites[0].WinRM).Timeout)
		require.Equal(t, 3*time.Minute, winrmConfig(acme.cfg.SCOM).Timeout)
		require.Equal(t, cfg.SCCM.Auth, winrmConfig(acme.cfg.Sites[0].WinRM).Auth)
		require.Empty(t, winrmConfig(acme.cfg.SCOM).CAFile)
	})

	t.Run("WindowComputer", func(t *testing.T) {
		require.Equal(t, "scomgw.globex.example", globex.deps.WindowComputer)
		require.Equal(t, "127.0.0.1", acme.deps.WindowComputer, "without the key: its first site server's host, never the default tenant's")
	})

	t.Run("ServiceNowOAuth", func(t *testing.T) {
		require.NoError(t, globex.deps.ServiceNow.AddWorkNote(context.Background(), "change_request", "0123456789abcdef0123456789abcdef", "note"))
		snow.mu.Lock()
		defer snow.mu.Unlock()
		require.Equal(t, []string{"globex-client/globex-oauth-secret"}, snow.clientID)
		require.NotEmpty(t, snow.auth)
		require.Equal(t, "Bearer globex-access-token", snow.auth[0])
		require.Empty(t, acme.cfg.ServiceNow.OAuthClientID, "the default tenant's client is not carried over")
		require.False(t, acme.cfg.ServiceNow.OAuthClientSecret.IsSet())
	})

	t.Run("PoolSize", func(t *testing.T) {
		require.EqualValues(t, 9, globex.store.Pool.Config().MaxConns, "max_connections, above the URL's")
		require.EqualValues(t, 5, acme.store.Pool.Config().MaxConns, "the URL's pool_max_conns")
		require.Contains(t, logs.String(), `msg="the tenant's max_connections is its pool size, not the database URL's pool_max_conns" tenant=globex max_connections=9`)
		require.NotContains(t, logs.String(), "tenant=acme max_connections")
		require.EqualValues(t, publicOnlyMaxConns, s.store.Pool.Config().MaxConns, "public without a default tenant: the registry's few")
	})
}

// syncBuffer is a log buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
