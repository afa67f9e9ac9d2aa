package handlers

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/config"
)

// TestTenants: /t/{name}/ reaches the tenant's server with the prefix
// taken off; anything else that names no tenant, however spelt, gets root's
// one 404.
func TestTenants(t *testing.T) {
	t.Parallel()
	root := New(Options{Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry()})
	seen := ""
	acme := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.URL.Path + " " + r.URL.RawPath
		w.WriteHeader(http.StatusTeapot)
	})
	h := Tenants(root, map[string]http.Handler{"acme": acme})
	serve := func(path string) (int, map[string]any) {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		var body map[string]any
		if b, _ := io.ReadAll(rec.Body); len(b) > 0 {
			require.NoError(t, json.Unmarshal(b, &body), "%s", b)
			delete(body, "request_id")
		}
		return rec.Code, body
	}

	code, _ := serve("/t/acme/api/v1/devices/WEB%2F01")
	require.Equal(t, http.StatusTeapot, code)
	require.Equal(t, "/api/v1/devices/WEB/01 /api/v1/devices/WEB%2F01", seen)

	code, unknown := serve("/t/globex/api/v1/schedules")
	require.Equal(t, http.StatusNotFound, code)
	require.Equal(t, map[string]any{"error": "not_found", "message": "Not Found"}, unknown)
	for _, path := range []string{"/t/acmex/api/v1/schedules", "/t/%61cme/api/v1/schedules", "/t/acme%2Fapi/v1/schedules", "/t/ACME/api/v1/schedules", "/t//api/v1/schedules"} {
		seen = ""
		code, body := serve(path)
		require.Equal(t, http.StatusNotFound, code, path)
		require.Equal(t, unknown, body, path)
		require.Empty(t, seen, path)
	}
	code, _ = serve("/healthz")
	require.Equal(t, http.StatusOK, code, "the process's routes stay at the root")
}

// TestTenantMetrics: a tenant's /t/{name}/metrics, with its API token,
// shows its own series and nothing of another tenant or of the process;
// another tenant's token gets the unknown tenant's 404. The process's
// /metrics and /readyz's details need the metrics token when one is set.
func TestTenantMetrics(t *testing.T) {
	t.Parallel()
	// As serve has them: the process's registry, and one per tenant whose
	// series carry its label; the process's /metrics gathers them all.
	reg := prometheus.NewRegistry()
	all := prometheus.Gatherers{reg}
	newTenant := func(name, token string) http.Handler {
		own := prometheus.NewRegistry()
		all = append(all, own)
		labelled := prometheus.WrapRegistererWith(prometheus.Labels{"tenant": name}, own)
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "autopatch_windows_missed_total", Help: "h"})
		labelled.MustRegister(c)
		c.Add(float64(len(name)))
		return New(Options{Logger: slog.New(slog.DiscardHandler), Registry: own, Tenant: name, APIToken: config.Secret(token),
			Registerer: labelled})
	}
	reg.MustRegister(prometheus.NewGoCollector())
	root := New(Options{Logger: slog.New(slog.DiscardHandler), Registry: reg, Metrics: prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return all.Gather() }), MetricsToken: config.Secret("ops-token"),
		Registerer: prometheus.WrapRegistererWith(prometheus.Labels{"tenant": ""}, reg),
		Ready:      func(context.Context) error { return Warnings{"tenant contoso: schedules file reload failed"} }})
	h := Tenants(root, map[string]http.Handler{"acme": newTenant("acme", "acme-token"), "contoso": newTenant("contoso", "contoso-token")})
	get := func(path, token string) (int, string) {
		t.Helper()
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}

	get("/t/acme/metrics", "acme-token") // a request of acme's to count
	code, body := get("/t/acme/metrics", "acme-token")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `autopatch_windows_missed_total{tenant="acme"} 4`)
	require.Contains(t, body, `autopatch_http_request_duration_seconds`, "its own requests")
	require.NotContains(t, body, "contoso")
	require.NotContains(t, body, `tenant=""`)
	require.NotContains(t, body, "go_goroutines", "the process's series are the operator's")

	_, unknown := get("/t/globex/metrics", "acme-token")
	for _, token := range []string{"contoso-token", "", "ops-token"} {
		code, body = get("/t/acme/metrics", token)
		require.Equal(t, http.StatusNotFound, code, "token %q", token)
		require.Equal(t, stripRequestID(t, unknown), stripRequestID(t, body), "token %q: as an unknown tenant", token)
	}

	code, body = get("/metrics", "")
	require.Equal(t, http.StatusUnauthorized, code)
	require.NotContains(t, body, "acme")
	code, _ = get("/metrics", "acme-token")
	require.Equal(t, http.StatusUnauthorized, code, "a tenant's token is not the operator's")
	code, body = get("/metrics", "ops-token")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `tenant="acme"`)
	require.Contains(t, body, `tenant="contoso"`)

	code, body = get("/readyz", "")
	require.Equal(t, http.StatusOK, code, "the probe's answer is open")
	require.NotContains(t, body, "contoso")
	code, body = get("/readyz", "ops-token")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "tenant contoso: schedules file reload failed")
}

func stripRequestID(t *testing.T, body string) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &m), body)
	delete(m, "request_id")
	return m
}
