package handlers

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/autopatch/autopatch/internal/schedules"
	"github.com/autopatch/autopatch/internal/store"
	"github.com/autopatch/autopatch/internal/windowview"
)

// The list APIs of docs/architecture.md §9.5: GET /api/v1/changes, /devices,
// /windows and /failures. Each takes `limit` (1–500, default 50) and the
// opaque `cursor` of the previous page's next_cursor; each filter is
// validated, and a bad one is a 400 naming it.

const (
	defaultLimit = 50
	maxLimit     = 500
)

// listParams collects the validation failures of a list request's query.
type listParams struct {
	c       echo.Context
	details []FieldError
}

func (p *listParams) fail(field, msg string) {
	p.details = append(p.details, FieldError{Field: field, Message: msg})
}

func (p *listParams) err() error {
	if len(p.details) == 0 {
		return nil
	}
	return &APIError{Status: http.StatusBadRequest, Code: "validation_failed", Message: "invalid query parameter " + p.details[0].Field, Details: p.details}
}

func (p *listParams) limit() int {
	v := p.c.QueryParam("limit")
	if v == "" {
		return defaultLimit
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxLimit {
		p.fail("limit", "must be a whole number from 1 to 500")
		return defaultLimit
	}
	return n
}

// oneOf reads an optional parameter that must be one of allowed.
func (p *listParams) oneOf(field string, allowed ...string) string {
	v := p.c.QueryParam(field)
	if v != "" && !slices.Contains(allowed, v) {
		p.fail(field, "must be one of "+strings.Join(allowed, ", "))
		return ""
	}
	return v
}

// text reads an optional free-text parameter of at most 200 bytes.
func (p *listParams) text(field string) string {
	v := p.c.QueryParam(field)
	if len(v) > 200 {
		p.fail(field, "must be at most 200 bytes")
		return ""
	}
	return v
}

func (p *listParams) time(field string) time.Time {
	v := p.c.QueryParam(field)
	if v == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		p.fail(field, "must be an RFC 3339 time such as 2026-12-01T00:00:00Z")
	}
	return t
}

// cursor decodes the opaque cursor into dst; false when there is none.
// A cursor is base64url JSON of the last row's sort key: opaque to
// clients, who must not build one.
func (p *listParams) cursor(dst any) bool {
	v := p.c.QueryParam("cursor")
	if v == "" {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(b) > 1024 || json.Unmarshal(b, dst) != nil {
		p.fail("cursor", "is not a cursor this API returned; start again without it")
		return false
	}
	return true
}

// EncodeCursor makes the opaque cursor of a sort key.
func EncodeCursor(key any) string {
	b, _ := json.Marshal(key)
	return base64.RawURLEncoding.EncodeToString(b)
}

type changeListItem struct {
	changeJSON
	Progress changeProgressJSON `json:"progress"`
}

type changeProgressJSON struct {
	Windows       int `json:"windows"`
	WindowsOpen   int `json:"windows_open"`
	WindowsClosed int `json:"windows_closed"`
	WindowsMissed int `json:"windows_missed"`
	Failures      int `json:"failures"`
	FailuresOpen  int `json:"failures_open"`
}

type changeListResponse struct {
	Changes    []changeListItem `json:"changes"`
	NextCursor *string          `json:"next_cursor"`
}

func toChangeJSON(ch store.ChangeRow) changeJSON {
	return changeJSON{
		Number: ch.Number, SysID: ch.SysID, State: ch.State, Approval: ch.Approval,
		Start: ch.Start.UTC(), End: ch.End.UTC(), UpdateGroups: ch.UpdateGroups, Schedules: ch.Schedules,
		ShortDescription: ch.ShortDescription, Status: ch.Status, Revision: ch.Revision, UpdatedAt: ch.UpdatedAt.UTC(),
	}
}

// listChanges is GET /api/v1/changes: changes, newest start first, with
// their progress; filters status, from and to (on the change's start).
func listChanges(db store.DBTX) echo.HandlerFunc {
	return func(c echo.Context) error {
		p := &listParams{c: c}
		f := store.ChangeFilter{
			Status: p.oneOf("status", store.ChangeReceived, store.ChangePlanned, store.ChangeCanceled),
			From:   p.time("from"), To: p.time("to"), Limit: p.limit(),
		}
		var key store.ChangeKey
		if p.cursor(&key) {
			if key.Number == "" {
				p.fail("cursor", "is not a cursor this API returned; start again without it")
			}
			f.After = &key
		}
		if err := p.err(); err != nil {
			return err
		}
		f.Limit++ // one more tells whether there is a next page
		rows, err := store.ListChanges(c.Request().Context(), db, f)
		if err != nil {
			return err
		}
		resp := changeListResponse{Changes: []changeListItem{}}
		if len(rows) == f.Limit {
			rows = rows[:f.Limit-1]
			next := EncodeCursor(rows[len(rows)-1].Key())
			resp.NextCursor = &next
		}
		for _, r := range rows {
			resp.Changes = append(resp.Changes, changeListItem{changeJSON: toChangeJSON(r.ChangeRow), Progress: changeProgressJSON{
				Windows: r.WindowsTotal, WindowsOpen: r.WindowsOpen, WindowsClosed: r.WindowsClosed, WindowsMissed: r.WindowsMissed,
				Failures: r.Failures, FailuresOpen: r.FailuresOpen,
			}})
		}
		return c.JSON(http.StatusOK, resp)
	}
}

type deviceListResponse struct {
	Devices    []store.Device `json:"devices"`
	NextCursor *string        `json:"next_cursor"`
}

type deviceCursor struct {
	Name string `json:"n"`
}

// listDevices is GET /api/v1/devices: devices by name; filters q (part of
// the name), schedule, service and tier.
func listDevices(db store.DBTX) echo.HandlerFunc {
	return func(c echo.Context) error {
		p := &listParams{c: c}
		f := store.DeviceFilter{
			Query: p.text("q"), Schedule: p.text("schedule"), Service: p.text("service"),
			Tier: p.oneOf("tier", "backend", "middle", "frontend"), Limit: p.limit(),
		}
		var key deviceCursor
		if p.cursor(&key) {
			f.After = key.Name
		}
		if err := p.err(); err != nil {
			return err
		}
		f.Limit++
		rows, err := store.ListDevices(c.Request().Context(), db, f)
		if err != nil {
			return err
		}
		resp := deviceListResponse{Devices: rows}
		if len(rows) == f.Limit {
			resp.Devices = rows[:f.Limit-1]
			next := EncodeCursor(deviceCursor{Name: strings.ToLower(resp.Devices[len(resp.Devices)-1].Name)})
			resp.NextCursor = &next
		}
		if resp.Devices == nil {
			resp.Devices = []store.Device{}
		}
		return c.JSON(http.StatusOK, resp)
	}
}

type failureJSON struct {
	ID           int64      `json:"id"`
	Change       string     `json:"change"`
	Subject      string     `json:"subject"`
	Kind         string     `json:"kind"`
	State        string     `json:"state"`
	ErrorCode    *int64     `json:"error_code,omitempty"`
	Message      string     `json:"message,omitempty"`
	Schedule     string     `json:"schedule,omitempty"`
	WindowStart  *time.Time `json:"window_start,omitempty"`
	FirstSeenAt  time.Time  `json:"first_seen_at"`
	ResolvedAt   *time.Time `json:"resolved_at,omitempty"`
	StormID      *int64     `json:"storm_id,omitempty"`
	AlertID      string     `json:"alert_id,omitempty"`
	AlertOutcome string     `json:"alert_outcome,omitempty"`
	Incident     string     `json:"incident,omitempty"`
	IncidentSys  string     `json:"incident_sys_id,omitempty"`
}

type failureListResponse struct {
	Failures   []failureJSON `json:"failures"`
	NextCursor *string       `json:"next_cursor"`
}

type failureCursor struct {
	ID int64 `json:"i"`
}

// listFailures is GET /api/v1/failures: failures, newest first; filters
// state, kind, change and device.
func listFailures(db store.DBTX) echo.HandlerFunc {
	return func(c echo.Context) error {
		p := &listParams{c: c}
		f := store.FailureFilter{
			State:  p.oneOf("state", store.FailureOpen, store.FailureResolved),
			Kind:   p.oneOf("kind", store.FailureError, store.FailureNoStatus, store.FailureMissedWindow, store.FailureStorm),
			Change: p.text("change"), Subject: p.text("device"), Limit: p.limit(),
		}
		var key failureCursor
		if p.cursor(&key) {
			if key.ID <= 0 {
				p.fail("cursor", "is not a cursor this API returned; start again without it")
			}
			f.After = key.ID
		}
		if err := p.err(); err != nil {
			return err
		}
		f.Limit++
		rows, err := store.ListFailures(c.Request().Context(), db, f)
		if err != nil {
			return err
		}
		resp := failureListResponse{Failures: []failureJSON{}}
		if len(rows) == f.Limit {
			rows = rows[:f.Limit-1]
			next := EncodeCursor(failureCursor{ID: rows[len(rows)-1].ID})
			resp.NextCursor = &next
		}
		for _, r := range rows {
			fj := failureJSON{
				ID: r.ID, Change: r.ChangeNumber, Subject: r.Subject, Kind: r.Kind, State: r.State,
				ErrorCode: r.ErrorCode, Message: r.Message, Schedule: r.Schedule, FirstSeenAt: r.FirstSeenAt.UTC(),
				StormID: r.StormID, AlertID: r.AlertID, AlertOutcome: r.AlertOutcome,
				Incident: r.IncidentNumber, IncidentSys: r.IncidentSysID,
			}
			if r.WindowStart != nil {
				ws := r.WindowStart.UTC()
				fj.WindowStart = &ws
			}
			if r.ResolvedAt != nil {
				ra := r.ResolvedAt.UTC()
				fj.ResolvedAt = &ra
			}
			resp.Failures = append(resp.Failures, fj)
		}
		return c.JSON(http.StatusOK, resp)
	}
}

type windowListItem struct {
	WindowJSON
	TimeZone    string                   `json:"timezone"`
	State       string                   `json:"state"`
	Changes     []string                 `json:"changes"`
	HeldReason  string                   `json:"held_reason,omitempty"`
	Stray       bool                     `json:"stray,omitempty"`
	Deployments []store.WindowDeployment `json:"deployments"`
}

type windowListResponse struct {
	From       string           `json:"from"`
	To         string           `json:"to"`
	Windows    []windowListItem `json:"windows"`
	NextCursor *string          `json:"next_cursor"`
}

type windowCursor struct {
	Start    time.Time `json:"t"`
	Schedule string    `json:"s"`
}

// listWindows is GET /api/v1/windows?from=&to=: every window of every
// schedule in force starting in [from, to) (default: the next 31 days; at
// most 400 days), by start, each with its state and deployments; filters
// schedule and state.
func listWindows(db store.DBTX, current *schedules.Current, now func() time.Time) echo.HandlerFunc {
	return func(c echo.Context) error {
		p := &listParams{c: c}
		from, to := p.time("from"), p.time("to")
		schedule := p.text("schedule")
		state := p.oneOf("state", windowview.States...)
		limit := p.limit()
		var key windowCursor
		hasCursor := p.cursor(&key)
		if from.IsZero() {
			from = now()
		}
		if to.IsZero() {
			to = from.AddDate(0, 0, 31)
		}
		if len(p.details) == 0 {
			switch {
			case !to.After(from):
				p.fail("to", "must be after from")
			case to.Sub(from) > MaxWindowRange:
				p.fail("to", "the range may not exceed 400 days")
			}
		}
		set := current.Get()
		list := set.All()
		if schedule != "" {
			sc, ok := set.Get(schedule)
			if !ok {
				p.fail("schedule", "no schedule of that name is in force")
			}
			list = append(list[:0:0], sc)
		}
		if err := p.err(); err != nil {
			return err
		}
		views, err := windowview.Load(c.Request().Context(), db, list, schedule == "", from, to)
		if err != nil {
			return err
		}
		resp := windowListResponse{From: from.UTC().Format(time.RFC3339), To: to.UTC().Format(time.RFC3339), Windows: []windowListItem{}}
		for _, v := range views {
			if state != "" && v.State != state {
				continue
			}
			if hasCursor {
				if c := v.Start.Compare(key.Start); c < 0 || (c == 0 && v.Schedule <= key.Schedule) {
					continue
				}
			}
			if len(resp.Windows) == limit {
				last := resp.Windows[len(resp.Windows)-1]
				start, _ := time.Parse(time.RFC3339, last.StartUTC)
				next := EncodeCursor(windowCursor{Start: start, Schedule: last.Schedule})
				resp.NextCursor = &next
				break
			}
			item := windowListItem{
				WindowJSON: NewWindowJSON(v.Window), TimeZone: v.TimeZone, State: v.State,
				Changes: v.Changes, HeldReason: v.HeldReason, Stray: v.Stray, Deployments: v.Deployments,
			}
			if item.Changes == nil {
				item.Changes = []string{}
			}
			if item.Deployments == nil {
				item.Deployments = []store.WindowDeployment{}
			}
			resp.Windows = append(resp.Windows, item)
		}
		return c.JSON(http.StatusOK, resp)
	}
}
