package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/autopatch/autopatch/internal/config"
)

// metricsAuth guards the process's /metrics with the metrics token, when
// one is set (docs/architecture.md §10.2): with a tenants file its series
// name every customer, and the address that takes the customers' webhooks
// is reachable by all of them. Without one, /metrics is open, as before.
func metricsAuth(token config.Secret) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if !token.IsSet() {
			return next
		}
		return func(c echo.Context) error {
			if !bearerMatches(c, token) {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="autopatch metrics"`)
				return NewError(http.StatusUnauthorized, "unauthorized", "a valid bearer token (AUTOPATCH_METRICS_TOKEN) is required")
			}
			return next(c)
		}
	}
}

// tenantMetrics serves a tenant's own series, those labelled
// tenant="<name>", at /t/{name}/metrics with the tenant's API token: a
// customer can scrape its patching without seeing, or learning of, another
// customer. Process-wide series (Go runtime, build info) are left out: they
// are the operator's.
func tenantMetrics(reg prometheus.Gatherer, name string) echo.HandlerFunc {
	own := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mfs, err := reg.Gather()
		var out []*dto.MetricFamily
		for _, mf := range mfs {
			var ms []*dto.Metric
			for _, m := range mf.GetMetric() {
				if labelValue(m, "tenant") == name {
					ms = append(ms, m)
				}
			}
			if len(ms) > 0 {
				mf.Metric = ms
				out = append(out, mf)
			}
		}
		return out, err
	})
	return echo.WrapHandler(promhttp.HandlerFor(own, promhttp.HandlerOpts{}))
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
