package ui

import (
	"encoding/base64"
	"encoding/json"
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
)

// pageSize is the rows of one page of a console list.
const pageSize = 50

func encodeCursor(key any) string {
	b, _ := json.Marshal(key)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(v string, dst any) bool {
	b, err := base64.RawURLEncoding.DecodeString(v)
	return err == nil && len(b) <= 1024 && json.Unmarshal(b, dst) == nil
}

// localRange formats [start, end) in the schedule's own zone and in UTC;
// only UTC when the schedule is no longer in force.
func (c *console) localRange(schedule string, start, end time.Time) string {
	w := calendar.Window{Start: start, End: end}
	if s, ok := c.opts.Schedules.Get().Get(schedule); ok {
		w.Start, w.End = start.In(s.Location), end.In(s.Location)
		return w.LocalString() + " (" + w.UTCString() + ")"
	}
	return w.UTCString()
}

type changeRowView struct {
	store.ChangeSummary
	Href string
}

type changeListData struct {
	Status   string
	Statuses []string
	Rows     []changeRowView
	Next     string
	First    bool
}

func (c *console) changeList(ctx echo.Context) error {
	status := ctx.QueryParam("status")
	statuses := []string{store.ChangeReceived, store.ChangePlanned, store.ChangeCanceled}
	if status != "" && !slices.Contains(statuses, status) {
		return c.problem(ctx, http.StatusBadRequest, "Unknown status",
			fmt.Sprintf("%q is not a status; a change is received, planned or canceled.", status), c.href("/changes"), "all changes")
	}
	f := store.ChangeFilter{Status: status, Limit: pageSize + 1}
	if v := ctx.QueryParam("cursor"); v != "" {
		var key store.ChangeKey
		if !decodeCursor(v, &key) || key.Number == "" {
			return c.problem(ctx, http.StatusBadRequest, "Page not found",
				"The page link is not one the console made (the cursor parameter is wrong). Start again from the first page.", c.href("/changes"), "the first page")
		}
		f.After = &key
	}
	rows, err := store.ListChanges(ctx.Request().Context(), c.opts.DB, f)
	if err != nil {
		return c.fail(ctx, err)
	}
	d := changeListData{Status: status, Statuses: statuses, First: f.After == nil}
	if len(rows) > pageSize {
		rows = rows[:pageSize]
		d.Next = queryString("status", status, "cursor", encodeCursor(rows[len(rows)-1].Key()))
	}
	for _, r := range rows {
		d.Rows = append(d.Rows, changeRowView{ChangeSummary: r, Href: c.href("/changes/" + url.PathEscape(r.Number))})
	}
	return c.render(ctx, http.StatusOK, "changes", page{Title: "Changes", Nav: "changes", SignedIn: true, Data: d})
}

type planEntryView struct {
	Schedule    string
	Window      string
	Unplaceable string
	Held        string
}

type deploymentView struct {
	store.Deployment
	Window  string
	Results string
}

type timelineEntry struct {
	At     time.Time
	What   string
	Detail string
}

type failureView struct {
	store.Failure
	IncidentHref string
	Device       bool
}

type changeData struct {
	Change      store.ChangeRow
	Window      string
	Plan        *store.Plan
	Entries     []planEntryView
	Deployments []deploymentView
	Timeline    []timelineEntry
	Failures    []failureView
	Notes       []store.SentNote
	Schedules   string
	Gantt       *gantt
	Forced      []forcedWaveView
}

// forcedWaveView is one wave of the change's forced remediation.
type forcedWaveView struct {
	store.WaveWithDevices
	Number  int    // 1-based within its run
	Results string // "PAY01 patched · PAY02 failed"
}

// incidentHref links to the incident in ServiceNow, when its URL is known.
func (c *console) incidentHref(sysID string) string {
	base := strings.TrimRight(c.opts.ServiceNowURL, "/")
	if base == "" || sysID == "" || !(strings.HasPrefix(base, "https://") || strings.HasPrefix(base, "http://")) {
		return ""
	}
	return base + "/nav_to.do?uri=" + url.QueryEscape("incident.do?sys_id="+sysID)
}

func (c *console) failureViews(fs []store.Failure) []failureView {
	var out []failureView
	for _, f := range fs {
		out = append(out, failureView{Failure: f, IncidentHref: c.incidentHref(f.IncidentSysID),
			Device: f.Kind == store.FailureError || f.Kind == store.FailureNoStatus})
	}
	return out
}

func (c *console) changePage(ctx echo.Context) error {
	rctx := ctx.Request().Context()
	number := handlers.PathParam(ctx, "number")
	ch, err := store.GetChange(rctx, c.opts.DB, number)
	if errors.Is(err, store.ErrNotFound) {
		return c.problem(ctx, http.StatusNotFound, "No such change",
			fmt.Sprintf("autopatch has received no change %q.", number), c.href("/changes"), "the changes")
	}
	if err != nil {
		return c.fail(ctx, err)
	}
	d := changeData{Change: ch, Window: calendar.Window{Start: ch.Start.UTC(), End: ch.End.UTC()}.UTCString(),
		Schedules: "every automatic and manual_reboot schedule"}
	if ch.Schedules != nil {
		d.Schedules = strings.Join(ch.Schedules, ", ")
	}
	plan, err := store.LatestPlan(rctx, c.opts.DB, number)
	switch {
	case err == nil:
		d.Plan = &plan
		for _, e := range plan.Entries {
			v := planEntryView{Schedule: e.Schedule, Unplaceable: e.Unplaceable, Held: e.Held}
			if e.WindowStart != nil && e.WindowEnd != nil {
				v.Window = c.localRange(e.Schedule, *e.WindowStart, *e.WindowEnd)
			}
			d.Entries = append(d.Entries, v)
		}
		d.Timeline = append(d.Timeline, timelineEntry{At: plan.ComputedAt, What: fmt.Sprintf("plan version %d", plan.Version),
			Detail: fmt.Sprintf("%d schedules", len(plan.Entries))})
	case !errors.Is(err, store.ErrNotFound):
		return c.fail(ctx, err)
	}
	deps, err := store.ChangeDeployments(rctx, c.opts.DB, number)
	if err != nil {
		return c.fail(ctx, err)
	}
	counts, err := store.ChangeResultCounts(rctx, c.opts.DB, number)
	if err != nil {
		return c.fail(ctx, err)
	}
	byDep := map[int64][]string{}
	for _, rc := range counts {
		byDep[rc.DeploymentID] = append(byDep[rc.DeploymentID], fmt.Sprintf("%d %s", rc.Devices, statusName(rc.StatusType)))
	}
	names := map[int64]string{}
	for _, dp := range deps {
		names[dp.ID] = dp.Name
		d.Deployments = append(d.Deployments, deploymentView{Deployment: dp,
			Window: c.localRange(dp.Schedule, dp.WindowStart, dp.WindowEnd), Results: strings.Join(byDep[dp.ID], " · ")})
	}
	transitions, err := store.ChangeTransitions(rctx, c.opts.DB, number)
	if err != nil {
		return c.fail(ctx, err)
	}
	byDeployment := map[int64][]timelineEntry{}
	for _, t := range transitions {
		what := names[t.DeploymentID] + ": " + t.From + " → " + t.To
		if t.From == "" {
			what = names[t.DeploymentID] + ": " + t.To
		}
		d.Timeline = append(d.Timeline, timelineEntry{At: t.At, What: what, Detail: t.Reason})
		byDeployment[t.DeploymentID] = append(byDeployment[t.DeploymentID], timelineEntry{At: t.At, What: t.From + " → " + t.To, Detail: t.Reason})
	}
	d.Gantt = newGantt(d.Deployments, byDeployment, c.opts.Now())
	waves, err := store.ChangeForcing(rctx, c.opts.DB, number)
	if err != nil {
		return c.fail(ctx, err)
	}
	for _, w := range waves {
		var rs []string
		for _, dv := range w.Devices {
			r := dv.Result
			if r == "" {
				r = "…"
			}
			rs = append(rs, dv.Device+" "+r)
		}
		d.Forced = append(d.Forced, forcedWaveView{WaveWithDevices: w, Number: w.Wave + 1, Results: strings.Join(rs, " · ")})
		if w.OpenedAt != nil {
			d.Timeline = append(d.Timeline, timelineEntry{At: *w.OpenedAt, What: fmt.Sprintf("forced wave %d opened", w.Wave+1),
				Detail: fmt.Sprintf("%d device(s) into %s", len(w.Devices), w.Collection)})
		}
		if w.ClosedAt != nil {
			d.Timeline = append(d.Timeline, timelineEntry{At: *w.ClosedAt, What: fmt.Sprintf("forced wave %d closed", w.Wave+1)})
		}
	}
	fs, err := store.ChangeFailures(rctx, c.opts.DB, []string{number})
	if err != nil {
		return c.fail(ctx, err)
	}
	d.Failures = c.failureViews(fs)
	for _, f := range fs {
		if f.StormID != nil {
			continue
		}
		d.Timeline = append(d.Timeline, timelineEntry{At: f.FirstSeenAt, What: "failure: " + f.Kind + " " + f.Subject, Detail: f.Message})
		if f.IncidentCreatedAt != nil {
			d.Timeline = append(d.Timeline, timelineEntry{At: *f.IncidentCreatedAt, What: "incident " + f.IncidentNumber + " opened", Detail: f.Subject})
		}
		if f.ResolvedAt != nil {
			d.Timeline = append(d.Timeline, timelineEntry{At: *f.ResolvedAt, What: "failure resolved: " + f.Subject})
		}
	}
	slices.SortStableFunc(d.Timeline, func(a, b timelineEntry) int { return a.At.Compare(b.At) })
	if d.Notes, err = store.ChangeWorkNotes(rctx, c.opts.DB, ch.SysID); err != nil {
		return c.fail(ctx, err)
	}
	return c.render(ctx, http.StatusOK, "change", page{Title: ch.Number, Nav: "changes", SignedIn: true, Data: d})
}
