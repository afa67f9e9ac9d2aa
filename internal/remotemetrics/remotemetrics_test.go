package remotemetrics_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/winrm"
	"github.com/autopatch/autopatch/internal/remotemetrics"
)

func counts(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			key := labels["system"] + "/" + labels["outcome"]
			if labels["site"] != "" {
				key = labels["system"] + "@" + labels["site"] + "/" + labels["outcome"]
			}
			out[key] = m.GetCounter().GetValue()
		}
	}
	return out
}

type fakeRunner struct{ err error }

func (f fakeRunner) Run(context.Context, winrm.Template, any, any) error { return f.err }

func TestRunner(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	calls := remotemetrics.New(reg)
	require.Len(t, counts(t, reg), 9, "every system and outcome from the start")

	ctx := context.Background()
	for _, err := range []error{
		nil,
		fmt.Errorf("winrm: x: %w", winrm.ErrUnreachable),
		fmt.Errorf("winrm: x: %w", winrm.ErrTimeout),
		&winrm.ScriptError{Template: "x", ExitCode: 1},
		fmt.Errorf("winrm: x: %w", winrm.ErrUnauthorized),
	} {
		_ = calls.Runner("sccm", fakeRunner{err}).Run(ctx, winrm.Template{}, nil, nil)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_ = calls.Runner("scom", fakeRunner{errors.New("stopped")}).Run(cancelled, winrm.Template{}, nil, nil)

	c := counts(t, reg)
	require.Equal(t, 1.0, c["sccm/ok"])
	require.Equal(t, 2.0, c["sccm/unreachable"])
	require.Equal(t, 2.0, c["sccm/error"])
	require.Equal(t, 0.0, c["scom/error"], "a call autopatch cancelled is not the system's fault")
}

func TestTransport(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	calls := remotemetrics.New(reg)
	status := []int{200, 201, 404, 401, 500, 503}
	i := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status[i])
		i++
	}))
	hc := &http.Client{Transport: calls.Transport("servicenow", nil)}
	for range status {
		resp, err := hc.Get(srv.URL)
		require.NoError(t, err)
		resp.Body.Close()
	}
	srv.Close()
	_, err := hc.Get(srv.URL)
	require.Error(t, err)

	c := counts(t, reg)
	require.Equal(t, 3.0, c["servicenow/ok"], "200, 201 and 404 (an answer about a record)")
	require.Equal(t, 2.0, c["servicenow/error"], "401 and 500")
	require.Equal(t, 2.0, c["servicenow/unreachable"], "503 and a refused connection")
}

// TestSiteRunner: with several SCCM sites, each site's calls are counted
// under its own site label, so that one site down while another answers
// is visible (and alerts: AutopatchSCCMUnreachable sums by site).
func TestSiteRunner(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	calls := remotemetrics.New(reg)
	ps1 := calls.SiteRunner("sccm", "PS1", fakeRunner{})
	eu1 := calls.SiteRunner("sccm", "EU1", fakeRunner{fmt.Errorf("eu1: %w", winrm.ErrUnreachable)})
	require.Equal(t, 0.0, counts(t, reg)["sccm@EU1/unreachable"], "a site's series exist before its first call")
	ctx := context.Background()
	_ = ps1.Run(ctx, winrm.Template{}, nil, nil)
	_ = eu1.Run(ctx, winrm.Template{}, nil, nil)
	_ = eu1.Run(ctx, winrm.Template{}, nil, nil)

	c := counts(t, reg)
	require.Equal(t, 1.0, c["sccm@PS1/ok"])
	require.Equal(t, 0.0, c["sccm@PS1/unreachable"])
	require.Equal(t, 2.0, c["sccm@EU1/unreachable"])
	require.Equal(t, 0.0, c["sccm@EU1/ok"])
	require.Equal(t, 0.0, c["sccm/ok"], "the sites' calls are not counted as the single site's")
}
