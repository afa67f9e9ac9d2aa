package handlers

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
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
