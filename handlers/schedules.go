package handlers

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/autopatch/autopatch/internal/calendar"
	"github.com/autopatch/autopatch/internal/schedules"
	"github.com/autopatch/autopatch/internal/store"
)

// MaxWindowRange caps /api/v1/schedules/{name}/windows: a little over a year
// answers every planning question and bounds the work of one request.
const MaxWindowRange = 400 * 24 * time.Hour

// defaultWindowRange is used when `to` is omitted.
const defaultWindowRange = 90 * 24 * time.Hour

// ScheduleLister reads the stored schedules.
type ScheduleLister interface {
	ListSchedules(ctx context.Context) ([]store.ScheduleRow, error)
}

// WindowJSON is one window as `autopatch plan` shows it (local times with
// the schedule's own offset, UTC with Z) plus the patch cycle it belongs to.
type WindowJSON struct {
	calendar.WindowJSON
	Cycle string `json:"cycle"`
}

// NewWindowJSON formats w.
func NewWindowJSON(w calendar.Window) WindowJSON {
	return WindowJSON{WindowJSON: w.JSON(), Cycle: w.Cycle.String()}
}

type schedulesResponse struct {
	Schedules []store.ScheduleRow `json:"schedules"`
}

func listSchedules(st ScheduleLister) echo.HandlerFunc {
	return func(c echo.Context) error {
		rows, err := st.ListSchedules(c.Request().Context())
		if err != nil {
			return err
		}
		if rows == nil {
			rows = []store.ScheduleRow{}
		}
		return c.JSON(http.StatusOK, schedulesResponse{Schedules: rows})
	}
}

type windowsResponse struct {
	Schedule string       `json:"schedule"`
	TimeZone string       `json:"timezone"`
	From     string       `json:"from"`
	To       string       `json:"to"`
	Windows  []WindowJSON `json:"windows"`
}

// scheduleWindows lists the windows of a schedule in force whose start lies
// in [from, to). Defaults: from now, to 90 days later.
func scheduleWindows(current *schedules.Current, now func() time.Time) echo.HandlerFunc {
	return func(c echo.Context) error {
		sc, ok := current.Get().Get(PathParam(c, "name"))
		if !ok {
			return NewError(http.StatusNotFound, "not_found", fmt.Sprintf("no schedule %q is in force", PathParam(c, "name")))
		}
		from, to := now(), time.Time{}
		var details []FieldError
		parse := func(field string, dst *time.Time) {
			if v := c.QueryParam(field); v != "" {
				t, err := time.Parse(time.RFC3339, v)
				if err != nil {
					details = append(details, FieldError{Field: field, Message: "must be an RFC 3339 time such as 2026-12-01T00:00:00Z"})
					return
				}
				*dst = t
			}
		}
		parse("from", &from)
		parse("to", &to)
		if to.IsZero() && len(details) == 0 {
			to = from.Add(defaultWindowRange)
		}
		if len(details) == 0 {
			switch {
			case !to.After(from):
				details = append(details, FieldError{Field: "to", Message: "must be after from"})
			case to.Sub(from) > MaxWindowRange:
				details = append(details, FieldError{Field: "to", Message: "the range may not exceed 400 days"})
			}
		}
		if len(details) > 0 {
			return &APIError{Status: http.StatusBadRequest, Code: "validation_failed", Message: "invalid range", Details: details}
		}
		resp := windowsResponse{
			Schedule: sc.Name, TimeZone: sc.TimeZone,
			From: from.UTC().Format(time.RFC3339), To: to.UTC().Format(time.RFC3339),
			Windows: []WindowJSON{},
		}
		for _, w := range sc.Windows(from, to) {
			resp.Windows = append(resp.Windows, NewWindowJSON(w))
		}
		return c.JSON(http.StatusOK, resp)
	}
}
