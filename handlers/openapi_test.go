package handlers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/stretchr/testify/require"
)

var spec struct {
	once   sync.Once
	router routers.Router
	err    error
}

// specRouter loads handlers/openapi.yaml, validates it, and returns a
// router over its operations (servers dropped, so paths match as served).
func specRouter(t testing.TB) routers.Router {
	t.Helper()
	spec.once.Do(func() {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(openAPIYAML)
		if err != nil {
			spec.err = err
			return
		}
		if spec.err = doc.Validate(loader.Context); spec.err != nil {
			return
		}
		doc.Servers = nil
		spec.router, spec.err = legacy.NewRouter(doc)
	})
	require.NoError(t, spec.err)
	return spec.router
}

// specAuth checks that the credentials the document asks for are present;
// whether they are right is the handlers' business, tested on its own.
func specAuth(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	req := in.RequestValidationInput.Request
	s := in.SecurityScheme
	switch {
	case s.Type == "apiKey" && s.In == "header":
		if req.Header.Get(s.Name) == "" {
			return errors.New("missing " + s.Name)
		}
	case s.Type == "http" && s.Scheme == "basic":
		if _, _, ok := req.BasicAuth(); !ok {
			return errors.New("missing basic credentials")
		}
	case s.Type == "http" && s.Scheme == "bearer":
		if !strings.HasPrefix(req.Header.Get("Authorization"), "Bearer ") {
			return errors.New("missing bearer token")
		}
	default:
		return errors.New("unknown security scheme " + in.SecuritySchemeName)
	}
	return nil
}

// checkSpec asserts that a request (when wantValidRequest) and its response
// are as the OpenAPI document says: documented status, headers and body.
func checkSpec(t testing.TB, req *http.Request, reqBody []byte, wantValidRequest bool, resp *http.Response, respBody []byte) {
	t.Helper()
	router := specRouter(t)
	r := req.Clone(context.Background())
	r.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, params, err := router.FindRoute(r)
	require.NoError(t, err, "%s %s is not in openapi.yaml", req.Method, req.URL.Path)
	in := &openapi3filter.RequestValidationInput{
		Request: r, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: specAuth, MultiError: true},
	}
	if wantValidRequest {
		require.NoError(t, openapi3filter.ValidateRequest(context.Background(), in), "request does not match openapi.yaml")
	}
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(respBody)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	})
	require.NoError(t, err, "response %d %s does not match openapi.yaml", resp.StatusCode, respBody)
}

// TestOpenAPIDocument validates the document with kin-openapi, checks that
// every route autopatch serves is in it, and that it is served as is.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	router := specRouter(t)

	var missing []string
	for _, r := range b.echo.Routes() {
		if strings.HasPrefix(r.Name, "github.com/labstack/echo") || r.Method == "echo_route_not_found" {
			continue
		}
		path := r.Path
		for _, seg := range strings.Split(path, "/") {
			if strings.HasPrefix(seg, ":") {
				path = strings.Replace(path, seg, "{"+seg[1:]+"}", 1)
			}
		}
		req := httptest.NewRequest(r.Method, path, nil)
		if _, _, err := router.FindRoute(req); err != nil {
			missing = append(missing, r.Method+" "+r.Path)
		}
	}
	sort.Strings(missing)
	require.Empty(t, missing, "routes served but not documented")

	req, err := http.NewRequest(http.MethodGet, b.server.URL+"/openapi.yaml", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, openAPIYAML, body)
	checkSpec(t, req, nil, true, resp, body)
}

// TestOpenAPIOperations sends the operations' requests that need no data
// and checks their answers against the document.
func TestOpenAPIOperations(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		req, err := http.NewRequest(http.MethodGet, b.server.URL+path, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		checkSpec(t, req, nil, true, resp, body)
	}
}
