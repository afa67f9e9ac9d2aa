package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// ReadyFunc reports why autopatch cannot do its work, or nil when it can.
type ReadyFunc func(ctx context.Context) error

type healthResponse struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// healthz answers while the process serves HTTP at all; orchestrators use it
// to restart a wedged process, so it checks nothing else.
func healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, healthResponse{Status: "ok"})
}

// readyz answers 200 only when the database answers and the job client runs,
// so a load balancer stops sending webhooks to a replica that cannot record
// them. It recovers by itself: every call checks again.
func readyz(ready ReadyFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			return c.JSON(http.StatusServiceUnavailable, healthResponse{Status: "unavailable", Error: err.Error()})
		}
		return c.JSON(http.StatusOK, healthResponse{Status: "ok"})
	}
}
