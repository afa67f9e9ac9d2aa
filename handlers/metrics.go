package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

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
