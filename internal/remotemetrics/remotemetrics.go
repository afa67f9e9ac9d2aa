// Package remotemetrics counts autopatch's calls to SCCM, SCOM and
// ServiceNow by outcome, in autopatch_remote_calls_total{system,site,outcome}, so
// that an alert can tell "the system is unreachable" from "the system said
// no", and, with several SCCM sites, which site (a site label: one site
// down while the others answer must still page someone). It wraps what the connectors already take (a WinRM runner, an HTTP
// client's transport); the connectors do not know about it.
//
// Outcomes:
//
//	ok           the call succeeded (an HTTP answer below 500 other than 401/403)
//	error        the system answered with a failure: a script that failed,
//	             credentials refused, an HTTP 500
//	unreachable  no answer: DNS, connection, TLS, a timeout, or a load
//	             balancer's 502/503/504
//
// A call cancelled by autopatch itself (shutdown) is not counted.
package remotemetrics

import (
	"context"
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/autopatch/autopatch/connectors/winrm"
)

// The systems and outcomes, all exported at 0 from the start so that rate()
// and absent-series alerts work before the first failure.
var (
	Systems  = []string{"sccm", "scom", "servicenow"}
	Outcomes = []string{"ok", "error", "unreachable"}
)

// Calls is the counter; its zero value is not usable, use New.
type Calls struct {
	vec *prometheus.CounterVec
}

// New registers autopatch_remote_calls_total with reg.
func New(reg prometheus.Registerer) *Calls {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "autopatch_remote_calls_total",
		Help: "Calls to SCCM and SCOM (WinRM) and ServiceNow (HTTP requests), by outcome: ok, error (the system answered with a failure), unreachable (no answer, timeout, 502/503/504).",
	}, []string{"system", "site", "outcome"})
	for _, s := range Systems {
		for _, o := range Outcomes {
			vec.WithLabelValues(s, "", o)
		}
	}
	reg.MustRegister(vec)
	return &Calls{vec: vec}
}

func (c *Calls) count(ctx context.Context, system, site, outcome string) {
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled) {
		return
	}
	c.vec.WithLabelValues(system, site, outcome).Inc()
}

// Runner is what the SCCM and SCOM connectors call (sccm.Runner, scom.Runner).
type Runner interface {
	Run(ctx context.Context, t winrm.Template, data any, out any) error
}

// Runner returns r counting its calls as system, with site="" (SCOM, and
// SCCM when it is one site).
func (c *Calls) Runner(system string, r Runner) Runner { return c.SiteRunner(system, "", r) }

// SiteRunner returns r counting its calls as system at the SCCM site code
// (AUTOPATCH_SCCM_SITES); its series exist at 0 from the start, as the
// others do.
func (c *Calls) SiteRunner(system, site string, r Runner) Runner {
	for _, o := range Outcomes {
		c.vec.WithLabelValues(system, site, o)
	}
	return runner{c, system, site, r}
}

type runner struct {
	calls        *Calls
	system, site string
	next         Runner
}

func (r runner) Run(ctx context.Context, t winrm.Template, data any, out any) error {
	err := r.next.Run(ctx, t, data, out)
	r.calls.count(ctx, r.system, r.site, WinRMOutcome(err))
	return err
}

// WinRMOutcome classifies a WinRM call's error.
func WinRMOutcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, winrm.ErrUnreachable), errors.Is(err, winrm.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return "unreachable"
	}
	return "error"
}

// Transport returns base (nil: http.DefaultTransport) counting its requests
// as system.
func (c *Calls) Transport(system string, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return transport{c, system, base}
}

type transport struct {
	calls  *Calls
	system string
	next   http.RoundTripper
}

func (t transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	t.calls.count(req.Context(), t.system, "", HTTPOutcome(resp, err))
	return resp, err
}

// HTTPOutcome classifies an HTTP exchange.
func HTTPOutcome(resp *http.Response, err error) string {
	switch {
	case err != nil:
		return "unreachable"
	case resp.StatusCode == http.StatusBadGateway, resp.StatusCode == http.StatusServiceUnavailable, resp.StatusCode == http.StatusGatewayTimeout:
		return "unreachable"
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusForbidden:
		return "error"
	}
	return "ok"
}
