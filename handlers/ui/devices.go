package ui

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/autopatch/autopatch/handlers"
	"github.com/autopatch/autopatch/internal/calendar"
	"github.com/autopatch/autopatch/internal/store"
	"github.com/autopatch/autopatch/internal/windowview"
)

// deviceWindowsAhead is how many upcoming windows a device page shows.
const deviceWindowsAhead = 3

var tiers = []string{"backend", "middle", "frontend"}

type deviceListData struct {
	Q, Schedule, Service, Tier string
	Schedules                  []string
	Tiers                      []string
	Rows                       []store.Device
	Next                       string
	First                      bool
	Filtered                   bool
}

type deviceCursor struct {
	Name string `json:"n"`
}

func (c *console) deviceList(ctx echo.Context) error {
	d := deviceListData{
		Q: strings.TrimSpace(ctx.QueryParam("q")), Schedule: ctx.QueryParam("schedule"),
		Service: ctx.QueryParam("service"), Tier: ctx.QueryParam("tier"), Tiers: tiers,
	}
	for _, s := range c.opts.Schedules.Get().All() {
		d.Schedules = append(d.Schedules, s.Name)
	}
	for field, v := range map[string]string{"search": d.Q, "schedule": d.Schedule, "service": d.Service} {
		if len(v) > 200 {
			return c.problem(ctx, http.StatusBadRequest, "Search too long", "The "+field+" may be at most 200 characters.", c.href("/devices"), "all devices")
		}
	}
	if d.Tier != "" && !slices.Contains(tiers, d.Tier) {
		return c.problem(ctx, http.StatusBadRequest, "Unknown tier",
			fmt.Sprintf("%q is not a tier; a tier is backend, middle or frontend.", d.Tier), c.href("/devices"), "all devices")
	}
	f := store.DeviceFilter{Query: d.Q, Schedule: d.Schedule, Service: d.Service, Tier: d.Tier, Limit: pageSize + 1}
	if v := ctx.QueryParam("cursor"); v != "" {
		var key deviceCursor
		if !decodeCursor(v, &key) {
			return c.problem(ctx, http.StatusBadRequest, "Page not found",
				"The page link is not one the console made (the cursor parameter is wrong). Start again from the first page.", c.href("/devices"), "the first page")
		}
		f.After = key.Name
	}
	rows, err := store.ListDevices(ctx.Request().Context(), c.opts.DB, f)
	if err != nil {
		return c.fail(ctx, err)
	}
	d.First = f.After == ""
	d.Filtered = d.Q != "" || d.Schedule != "" || d.Service != "" || d.Tier != ""
	if len(rows) > pageSize {
		rows = rows[:pageSize]
		d.Next = queryString("q", d.Q, "schedule", d.Schedule, "service", d.Service, "tier", d.Tier,
			"cursor", encodeCursor(deviceCursor{Name: strings.ToLower(rows[len(rows)-1].Name)}))
	}
	d.Rows = rows
	return c.render(ctx, http.StatusOK, "devices", page{Title: "Devices", Nav: "devices", SignedIn: true, Data: d})
}

type nextWindowView struct {
	Window string
	State  string
	Href   string
	Change string
}

type deviceData struct {
	Device       store.Device
	InForce      bool
	Kind         string
	TimeZone     string
	Next         []nextWindowView
	History      []store.Assignment
	Results      []store.LatestResult
	Failures     []failureView
	CalendarHref string
}

func (c *console) devicePage(ctx echo.Context) error {
	rctx := ctx.Request().Context()
	name := handlers.PathParam(ctx, "name")
	dev, err := store.GetDevice(rctx, c.opts.DB, name)
	if errors.Is(err, store.ErrNotFound) {
		return c.problem(ctx, http.StatusNotFound, "No such device",
			fmt.Sprintf("autopatch manages no device %q.", name), c.href("/devices"), "the devices")
	}
	if err != nil {
		return c.fail(ctx, err)
	}
	d := deviceData{Device: dev}
	if dev.Schedule != nil {
		if s, ok := c.opts.Schedules.Get().Get(*dev.Schedule); ok {
			d.InForce, d.Kind, d.TimeZone = true, string(s.Kind), s.TimeZone
			now := c.opts.Now()
			// The next windows: from now on, a window at a time, so the
			// deployments read cover only what is shown.
			ws := s.Windows(now, now.Add(400*24*time.Hour))
			ws = ws[:min(len(ws), deviceWindowsAhead)]
			if len(ws) > 0 {
				views, err := windowview.Load(rctx, c.opts.DB, []calendar.Schedule{s}, false, ws[0].Start, ws[len(ws)-1].Start.Add(time.Second))
				if err != nil {
					return c.fail(ctx, err)
				}
				for _, v := range views {
					nv := nextWindowView{Window: v.LocalString() + " (" + v.UTCString() + ")", State: v.State}
					if len(v.Changes) > 0 {
						nv.Change, nv.Href = v.Changes[0], c.href("/changes/"+url.PathEscape(v.Changes[0]))
					}
					d.Next = append(d.Next, nv)
				}
				d.CalendarHref = c.href("/calendar") + queryString("month", calendar.MonthOf(ws[0].Start).String())
			}
		}
	}
	if d.History, err = store.DeviceHistory(rctx, c.opts.DB, dev.ID); err != nil {
		return c.fail(ctx, err)
	}
	if d.Results, err = store.DeviceLatestResults(rctx, c.opts.DB, dev.Name); err != nil {
		return c.fail(ctx, err)
	}
	fs, err := store.DeviceOpenFailures(rctx, c.opts.DB, dev.Name)
	if err != nil {
		return c.fail(ctx, err)
	}
	d.Failures = c.failureViews(fs)
	return c.render(ctx, http.StatusOK, "device", page{Title: dev.Name, Nav: "devices", SignedIn: true, Data: d})
}
