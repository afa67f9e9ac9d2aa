package handlers

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/autopatch/autopatch/internal/config"
)

// ReadyFunc reports why autopatch cannot do its work, or nil when it can.
type ReadyFunc func(ctx context.Context) error

type healthResponse struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// Warnings are what an operator should fix although autopatch works,
	// such as a schedules file that failed to reload (the old one stays).
	Warnings []string `json:"warnings,omitempty"`
}

// Warnings is what a ReadyFunc returns when autopatch can do its work but
// something needs an operator: /readyz still answers 200 (a load balancer
// must not take the replica out), with the warnings in its body.
type Warnings []string

func (w Warnings) Error() string { return strings.Join(w, "; ") }

// healthz answers while the process serves HTTP at all; orchestrators use it
// to restart a wedged process, so it checks nothing else.
func healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, healthResponse{Status: "ok"})
}

// readyz answers 200 only when the database answers and the job client runs,
// so a load balancer stops sending webhooks to a replica that cannot record
// them. It recovers by itself: every call checks again. With a metrics token
// (a tenants file), the error and warnings, which name tenants and their
// files, are shown only to its bearer: the status code is the probe's
// answer and stays open.
func readyz(ready ReadyFunc, token config.Secret) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		err := ready(ctx)
		details := !token.IsSet() || bearerMatches(c, token)
		var warnings Warnings
		if errors.As(err, &warnings) {
			if !details {
				warnings = nil
			}
			return c.JSON(http.StatusOK, healthResponse{Status: "ok", Warnings: warnings})
		}
		if err != nil {
			msg := err.Error()
			if !details {
				msg = "details with AUTOPATCH_METRICS_TOKEN"
			}
			return c.JSON(http.StatusServiceUnavailable, healthResponse{Status: "unavailable", Error: msg})
		}
		return c.JSON(http.StatusOK, healthResponse{Status: "ok"})
	}
}
