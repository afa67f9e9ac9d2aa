package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"

	"github.com/autopatch/autopatch/internal/schedules"
	"github.com/autopatch/autopatch/internal/store"
)

// deviceWindowsAhead is how many upcoming windows a device shows.
const deviceWindowsAhead = 3

type deviceResponse struct {
	Device      store.Device         `json:"device"`
	NextWindows []WindowJSON         `json:"next_windows"`
	History     []store.Assignment   `json:"history"`
	Results     []store.LatestResult `json:"results"`
}

// getDevice is GET /api/v1/devices/{name}: the device's schedule, service
// and tier, its next windows, what schedule requests did to it, and its last
// patch results.
func getDevice(pool *pgxpool.Pool, current *schedules.Current, now func() time.Time) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		name := PathParam(c, "name")
		d, err := store.GetDevice(ctx, pool, name)
		if errors.Is(err, store.ErrNotFound) {
			return NewError(http.StatusNotFound, "not_found", fmt.Sprintf("autopatch manages no device %q", name))
		}
		if err != nil {
			return err
		}
		resp := deviceResponse{Device: d, NextWindows: []WindowJSON{}}
		if d.Schedule != nil {
			if sc, ok := current.Get().Get(*d.Schedule); ok {
				from := now()
				ws := sc.Windows(from, from.Add(MaxWindowRange))
				for _, w := range ws[:min(len(ws), deviceWindowsAhead)] {
					resp.NextWindows = append(resp.NextWindows, NewWindowJSON(w))
				}
			}
		}
		if resp.History, err = store.DeviceHistory(ctx, pool, d.ID); err != nil {
			return err
		}
		if resp.Results, err = store.DeviceLatestResults(ctx, pool, d.Name); err != nil {
			return err
		}
		if resp.History == nil {
			resp.History = []store.Assignment{}
		}
		if resp.Results == nil {
			resp.Results = []store.LatestResult{}
		}
		return c.JSON(http.StatusOK, resp)
	}
}
