package demo

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/autopatch/autopatch/connectors/sccm/sccmsim"
	"github.com/autopatch/autopatch/internal/estate"
)

// onTime is the promise checked for every window: enabled within this of
// its start, disabled within this of its end, never before.
const onTime = 2 * time.Second

// scenario is the demo's estate and story. Times are offsets from t0, the
// moment serve is ready.
type scenario struct {
	seed    string
	windows map[string][2]time.Duration // schedule → [start, end) offsets
	kinds   map[string]string
	order   []string
}

// Devices: three services across the tiers. Outcomes come from the
// simulator's seed: success, a failure, a device that never reports, one
// that fails and then recovers, and the ones the compliance ledger tells
// apart: an install still running when its window closes, an install
// waiting for its restart (manual_reboot), an inactive SCCM client, and the
// two manual_patch devices, one patched by its owner and one not.
const demoSeed = `
update_groups: ["2026-12 Servers", "2026-12 Office"]
devices:
  - {name: PAY-SQL01}
  - {name: PAY-APP01, outcome: "pending restart"}
  - {name: PAY-WEB01}
  - {name: PAY-WEB02, outcome: compliant}
  - {name: INT-SQL01, outcome: "error 0x80240022"}
  - {name: INT-WEB01, outcome: silent}
  - {name: BIL-SQL01, outcome: "success after close"}
  - {name: BIL-APP01, outcome: "error 0x8024402C then success"}
  - {name: BIL-WEB01, outcome: inactive}
  - {name: BIL-WEB02, outcome: noncompliant}
  - {name: SCCM01}   # the site server: SCOM raises window alerts (missed, storm) on it
`

func newScenario() scenario {
	s := scenario{
		seed: demoSeed,
		windows: map[string][2]time.Duration{
			"DB":     {14 * time.Second, 22 * time.Second},
			"APP":    {24 * time.Second, 32 * time.Second},
			"WEB":    {34 * time.Second, 42 * time.Second},
			"MANUAL": {44 * time.Second, 52 * time.Second},
			"EXTRA":  {60 * time.Second, 68 * time.Second},
		},
		kinds: map[string]string{"DB": "automatic", "APP": "manual_reboot", "WEB": "automatic", "MANUAL": "manual_patch", "EXTRA": "automatic"},
		order: []string{"DB", "APP", "WEB", "MANUAL", "EXTRA"},
	}
	return s
}

func collection(schedule string) string { return "Patch - Demo - " + schedule }

func (s scenario) collections() []string {
	var out []string
	for _, name := range s.order {
		out = append(out, collection(name))
	}
	return out
}

// schedules is the schedules file with one-off windows relative to t0.
func (s scenario) schedules(t0 time.Time) string {
	var b strings.Builder
	b.WriteString("schedules:\n")
	for _, name := range s.order {
		w := s.windows[name]
		fmt.Fprintf(&b, "  - name: %s\n    collection: %q\n    kind: %s\n    windows: [{start: %q, end: %q}]\n",
			name, collection(name), s.kinds[name],
			t0.Add(w[0]).UTC().Format(time.RFC3339), t0.Add(w[1]).UTC().Format(time.RFC3339))
	}
	return b.String()
}

func (d *run) window(schedule string) (time.Time, time.Time) {
	w := d.plan.windows[schedule]
	return d.t0.Add(w[0]), d.t0.Add(w[1])
}

type device struct {
	Name    string `json:"name"`
	Service string `json:"service"`
	Tier    string `json:"tier"`
}

// newSysID returns a record id for the simulated ServiceNow, unique in
// this run.
func (d *run) newSysID(prefix byte) string {
	d.records++
	return fmt.Sprintf("%c%031x", prefix, d.records)
}

// request plays a device owner ordering "Automated Patching".
func (d *run) request(schedule string, devices ...device) (number, sysID string, err error) {
	d.ritms++
	number, sysID = fmt.Sprintf("RITM%07d", 10000+d.ritms), d.newSysID('a')
	if err := d.est.ServiceNow().AddRecord("sc_req_item", sysID, number); err != nil {
		return "", "", err
	}
	d.tl.record(sysID, number)
	var names []string
	for _, dv := range devices {
		names = append(names, fmt.Sprintf("%s (%s %s)", dv.Name, dv.Service, dv.Tier))
	}
	d.tl.line("DEMO", "ServiceNow: %s asks for schedule %s for %s", number, schedule, strings.Join(names, ", "))
	code, body, err := d.send("/webhooks/servicenow/schedule-request", map[string]any{
		"event_id":      "sc_req_item:" + sysID + ":1",
		"request_item":  map[string]any{"number": number, "sys_id": sysID},
		"requested_for": "jane.doe",
		"schedule":      schedule,
		"devices":       devices,
	})
	if err == nil && code != http.StatusAccepted {
		err = fmt.Errorf("schedule request %s: %d %s", number, code, body)
	}
	return number, sysID, err
}

type change struct {
	number, sysID string
	start, end    time.Time
	groups        []string
	schedules     []string
	version       int
	budget        any // patching.error_budget; nil: AUTOPATCH_ERROR_BUDGET
	// classification and deadline: patching.classification and
	// patching.deadline; empty and zero: normal, the classification's.
	classification string
	deadline       time.Time
}

// changeWebhook plays ServiceNow's business rule on change_request.
func (d *run) changeWebhook(c *change, state, approval string) error {
	c.version++
	body := map[string]any{
		"event_id": fmt.Sprintf("change_request:%s:%d", c.sysID, c.version),
		"change": map[string]any{
			"number": c.number, "sys_id": c.sysID, "type": "normal", "state": state, "approval": approval,
			"start_date": c.start.UTC().Format("2006-01-02 15:04:05"), "end_date": c.end.UTC().Format("2006-01-02 15:04:05"),
			"short_description": "Demo patching", "sys_updated_on": time.Now().UTC().Add(time.Duration(c.version) * time.Second).Format("2006-01-02 15:04:05"),
		},
		"patching": map[string]any{"software_update_groups": c.groups, "schedules": c.schedules},
	}
	if c.budget != nil {
		body["patching"].(map[string]any)["error_budget"] = c.budget
	}
	if c.classification != "" {
		body["patching"].(map[string]any)["classification"] = c.classification
	}
	if !c.deadline.IsZero() {
		body["patching"].(map[string]any)["deadline"] = c.deadline.UTC().Format("2006-01-02 15:04:05")
	}
	code, resp, err := d.send("/webhooks/servicenow/change", body)
	if err == nil && code != http.StatusAccepted {
		err = fmt.Errorf("change %s: %d %s", c.number, code, resp)
	}
	return err
}

func (d *run) newChange(number string, groups, schedules []string) (*change, error) {
	c := &change{number: number, sysID: d.newSysID('c'), start: time.Now().Add(-time.Minute), end: time.Now().Add(2 * time.Hour),
		groups: groups, schedules: schedules}
	d.tl.record(c.sysID, number)
	return c, d.est.ServiceNow().AddRecord("change_request", c.sysID, number)
}

// play runs the story.
func (d *run) play(ctx context.Context) error {
	// The real windows, seconds apart, go in force now, through the same
	// SIGHUP reload an administrator uses after editing the file.
	d.t0 = time.Now().Truncate(time.Second).Add(time.Second)
	if err := writeFile(d.schedulesPath(), d.plan.schedules(d.t0)); err != nil {
		return err
	}
	if err := d.serve.Process.Signal(syscall.SIGHUP); err != nil {
		return err
	}
	dbStart, _ := d.window("DB")
	if err := d.waitForAPI(ctx, "/api/v1/schedules/DB/windows?from="+d.t0.UTC().Format(time.RFC3339), func(body map[string]any) bool {
		ws, _ := body["windows"].([]any)
		return len(ws) == 1 && ws[0].(map[string]any)["start_utc"] == dbStart.UTC().Format(time.RFC3339)
	}); err != nil {
		return fmt.Errorf("schedules reload: %w", err)
	}
	d.tl.line("DEMO", "schedules reloaded on SIGHUP; windows today (UTC):")
	for _, name := range d.plan.order {
		s, e := d.window(name)
		d.tl.line("DEMO", "  %-6s %-13s %s – %s", name, d.plan.kinds[name], s.UTC().Format("15:04:05"), e.UTC().Format("15:04:05"))
	}

	// 1. A request that would take both Payroll web servers down together
	//    is refused as a whole; nothing moves.
	refused, _, err := d.request("WEB", device{"PAY-WEB01", "Payroll", "frontend"}, device{"PAY-WEB02", "Payroll", "frontend"})
	if err != nil {
		return err
	}
	if err := d.waitFor(ctx, time.Now().Add(20*time.Second), "the refusal note on "+refused, func(s estate.State) bool {
		return len(notesOn(s, d.tl, refused)) > 0
	}); err != nil {
		return err
	}

	// 2. Good requests: every device to a schedule that keeps the rules.
	for _, r := range []struct {
		schedule string
		devices  []device
	}{
		{"DB", []device{{"PAY-SQL01", "Payroll", "backend"}, {"INT-SQL01", "Intranet", "backend"}, {"BIL-SQL01", "Billing", "backend"}}},
		{"APP", []device{{"PAY-APP01", "Payroll", "middle"}, {"BIL-APP01", "Billing", "middle"}}},
		{"WEB", []device{{"PAY-WEB01", "Payroll", "frontend"}, {"INT-WEB01", "Intranet", "frontend"}, {"BIL-WEB01", "Billing", "frontend"}}},
		{"MANUAL", []device{{"PAY-WEB02", "Payroll", "frontend"}, {"BIL-WEB02", "Billing", "frontend"}}},
	} {
		if _, _, err := d.request(r.schedule, r.devices...); err != nil {
			return err
		}
	}
	if err := d.waitFor(ctx, time.Now().Add(20*time.Second), "all ten devices in their collections", func(s estate.State) bool {
		n := 0
		for _, c := range s.Collections {
			n += len(c.Members)
		}
		return n == 10
	}); err != nil {
		return err
	}

	// 3. The CAB approves December's patching; a second change is approved
	//    and then canceled before its window.
	chgA, err := d.newChange("CHG0030001", []string{"2026-12 Servers", "2026-12 Office"}, []string{"DB", "APP", "WEB", "MANUAL", "EXTRA"})
	if err != nil {
		return err
	}
	// Its own error budget: 5 failures (the default, 10%, would halt it at
	// the DB window's first failure among three devices).
	chgA.budget = 5
	d.tl.line("DEMO", "ServiceNow: the CAB approves %s (update groups %s, error budget %v)", chgA.number, strings.Join(chgA.groups, ", "), chgA.budget)
	if err := d.changeWebhook(chgA, "scheduled", "approved"); err != nil {
		return err
	}
	chgB, err := d.newChange("CHG0030002", []string{"2026-12 Servers"}, []string{"WEB"})
	if err != nil {
		return err
	}
	d.tl.line("DEMO", "ServiceNow: %s approved too", chgB.number)
	if err := d.changeWebhook(chgB, "scheduled", "approved"); err != nil {
		return err
	}
	// The cancellation waits for the note that says the deployment was
	// created: the notes are separate jobs, so a cancellation sent right
	// after the creation could be noted first, and the timeline would show
	// a creation after its deletion.
	if err := d.waitFor(ctx, time.Now().Add(20*time.Second), chgB.number+"'s deployment created and noted", func(s estate.State) bool {
		if len(deploymentsOf(s, chgB.number)) != 1 {
			return false
		}
		for _, n := range notesTexts(s, chgB.sysID) {
			if strings.HasPrefix(n, "autopatch created ") {
				return true
			}
		}
		return false
	}); err != nil {
		return err
	}
	d.tl.line("DEMO", "ServiceNow: %s is canceled before its window", chgB.number)
	if err := d.changeWebhook(chgB, "canceled", "approved"); err != nil {
		return err
	}
	if err := d.ledgerBefore(ctx, chgA.number, chgA.sysID); err != nil {
		return err
	}

	// A third change, with an error budget of 0, is halted when its first
	// window fails: its WEB window is held, never enabled; the halt is
	// noted, alerted and ticketed once.
	chgC, err := d.newChange("CHG0030003", []string{"2026-12 Servers"}, []string{"DB", "WEB"})
	if err != nil {
		return err
	}
	chgC.budget = 0
	d.tl.line("DEMO", "ServiceNow: %s approved too, with an error budget of 0 (halt at the first failure)", chgC.number)
	if err := d.changeWebhook(chgC, "scheduled", "approved"); err != nil {
		return err
	}

	// A critical change of the DB schedule whose deadline comes 6 s after
	// the DB window: INT-SQL01 fails in the window, so at the deadline it
	// is forced (put into the forced collection with a required
	// deployment), fails again, and gets its incident.
	chgD, err := d.newChange(forcedChange, []string{"2026-12 Servers"}, []string{"DB"})
	if err != nil {
		return err
	}
	_, dbEnd := d.window("DB")
	chgD.budget, chgD.classification, chgD.deadline = 5, "critical", dbEnd.Add(6*time.Second).Truncate(time.Second)
	d.tl.line("DEMO", "ServiceNow: %s approved too: critical, deadline %s UTC (6 s after the DB window)", chgD.number, chgD.deadline.UTC().Format("15:04:05"))
	if err := d.changeWebhook(chgD, "scheduled", "approved"); err != nil {
		return err
	}

	// Tier gating: INT-SQL01 (Intranet's backend) fails in DB, so
	// CHG0030001's WEB window, which holds Intranet's frontend, is held.
	// The operator looks, accepts, and resumes it through the API before
	// the window's start: it opens on time.
	webStart, _ := d.window("WEB")
	if err := d.waitForHold(ctx, chgA.number, "tier", webStart.Add(-2*time.Second)); err != nil {
		return err
	}
	d.tl.line("DEMO", "operator: %s's WEB window is held by tier gating (INT-SQL01 failed); resuming it: the Intranet frontend can patch", chgA.number)
	if err := d.resume(chgA.number, "INT-SQL01 failure understood (WSUS proxy), frontends may patch; demo.operator"); err != nil {
		return err
	}

	// 4. The windows open and close; failures come out as alerts and
	//    incidents while they are open and after they close.
	manualEnd := d.t0.Add(d.plan.windows["MANUAL"][1])
	if err := d.waitUntil(ctx, manualEnd.Add(time.Second), "windows DB, APP, WEB, MANUAL"); err != nil {
		return err
	}

	// 5. autopatch is stopped just before EXTRA's window and comes back
	//    too late to open it: the window is missed, never enabled, and
	//    reported.
	d.tl.line("DEMO", "operator: stopping autopatch (SIGTERM) for maintenance")
	d.stopServe()
	extraStart, extraEnd := d.window("EXTRA")
	back := extraStart.Add(extraEnd.Sub(extraStart)/2 + time.Second)
	if err := d.waitUntil(ctx, back, "autopatch stopped; EXTRA's window opens meanwhile; restart"); err != nil {
		return err
	}
	d.tl.line("DEMO", "operator: starting autopatch again, %s into EXTRA's window", back.Sub(extraStart).Round(time.Second))
	if err := d.startServe(ctx); err != nil {
		return err
	}
	if err := d.waitFor(ctx, extraEnd.Add(20*time.Second), "the missed window reported", func(s estate.State) bool {
		return strings.Contains(strings.Join(notesTexts(s, chgA.sysID), "\n"), "MISSED")
	}); err != nil {
		return err
	}
	// Let the last reports (incidents, links, notes) land.
	if err := d.waitFor(ctx, time.Now().Add(30*time.Second), "every alert linked to its incident", func(s estate.State) bool {
		// The missed window's alert is the last to come; the halt of
		// CHG0030003 makes the count of alerts alone no sign of the end.
		missed := false
		for _, a := range s.Alerts {
			missed = missed || strings.Contains(a.Key, ":missed:")
		}
		if len(s.Alerts) < 4 || !missed {
			return false
		}
		for _, a := range s.Alerts {
			if a.TicketID == "" {
				return false
			}
		}
		return true
	}); err != nil {
		return err
	}

	// 6. The compliance ledger of the change, as the monthly report reads it.
	if err := d.ledgerAfter(ctx, chgA.number, chgA.sysID); err != nil {
		return err
	}
	// 7. The critical change's device forced at its deadline.
	return d.forcedAfter(ctx, chgD.number)
}

// waitForHold waits until GET /api/v1/changes/{number} shows a hold of
// kind in force, or until deadline.
func (d *run) waitForHold(ctx context.Context, number, kind string, deadline time.Time) error {
	for {
		var c changeHolds
		if err := d.api("/api/v1/changes/"+number, &c); err == nil && c.active(kind) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s hold on %s by %s", kind, number, deadline.UTC().Format("15:04:05"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// changeHolds is the rollout history of GET /api/v1/changes/{number}.
type changeHolds struct {
	Holds []struct {
		Kind       string  `json:"kind"`
		Reason     string  `json:"reason"`
		ReleasedAt *string `json:"released_at"`
		ReleasedBy string  `json:"released_by"`
	} `json:"holds"`
	Deployments []struct {
		Schedule string `json:"schedule"`
		State    string `json:"state"`
	} `json:"deployments"`
}

func (c changeHolds) active(kind string) bool {
	for _, h := range c.Holds {
		if h.Kind == kind && h.ReleasedAt == nil {
			return true
		}
	}
	return false
}

func (d *run) schedulesPath() string { return envValue(d.env, "AUTOPATCH_SCHEDULES_FILE") }

func envValue(env []string, key string) string {
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, key+"="); ok {
			return v
		}
	}
	return ""
}

func (d *run) waitForAPI(ctx context.Context, path string, cond func(map[string]any) bool) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		var body map[string]any
		if err := d.api(path, &body); err == nil && cond(body) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("GET %s did not show the change in time", path)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func deploymentsOf(s estate.State, change string) []sccmsim.DeploymentState {
	var out []sccmsim.DeploymentState
	for _, dp := range s.Deployments {
		if strings.HasPrefix(dp.Name, "AP-"+change+"-") {
			out = append(out, dp)
		}
	}
	return out
}

func notesTexts(s estate.State, sysID string) []string {
	var out []string
	for _, n := range s.WorkNotes {
		if n.SysID == sysID {
			out = append(out, n.Text)
		}
	}
	return out
}

func notesOn(s estate.State, tl *timeline, number string) []string {
	tl.mu.Lock()
	var sysID string
	for id, n := range tl.records {
		if n == number {
			sysID = id
		}
	}
	tl.mu.Unlock()
	return notesTexts(s, sysID)
}

func members(s estate.State, schedule string) []string {
	for _, c := range s.Collections {
		if c.Name == collection(schedule) {
			return c.Members
		}
	}
	return nil
}

// check compares what happened with what must have happened.
func (d *run) check() error {
	s := d.est.State()
	checks := newChecklist(d.opts.Out)
	expect := checks.expect

	web := members(s, "WEB")
	expect(!slices.Contains(web, "PAY-WEB02"), "the request putting both Payroll web servers in one window was refused (PAY-WEB02 never joined WEB)")
	for sched, want := range map[string][]string{
		"DB": {"PAY-SQL01", "INT-SQL01", "BIL-SQL01"}, "APP": {"PAY-APP01", "BIL-APP01"},
		"WEB": {"PAY-WEB01", "INT-WEB01", "BIL-WEB01"}, "MANUAL": {"PAY-WEB02", "BIL-WEB02"},
	} {
		got := slices.Clone(members(s, sched))
		slices.Sort(got)
		slices.Sort(want)
		expect(slices.Equal(got, want), "collection %q holds %s", collection(sched), strings.Join(want, ", "))
	}

	deps := deploymentsOf(s, "CHG0030001")
	expect(len(deps) == 8, "CHG0030001 has 8 deployments: DB, APP, WEB, EXTRA × 2 update groups; none for manual_patch MANUAL (got %d)", len(deps))
	// Never enabled before the window or disabled before its end, on any
	// machine; within onTime of both, plus the longest stall the machine
	// imposed on this process (a host descheduling the VM stops serve as
	// well): that time is not autopatch's lateness.
	stall := d.stalls.Longest()
	var openLag, closeLag time.Duration
	for _, dp := range deps {
		sched := strings.TrimPrefix(dp.Collection, collection(""))
		start, end := d.window(sched)
		if sched == "EXTRA" {
			// A missed window is disabled once more (a process killed
			// between its enable and its commit may have enabled it), so
			// it may have disable events; never an enable.
			expect(!slices.ContainsFunc(dp.Events, func(e sccmsim.Event) bool { return e.Enabled }),
				"%s: missed while autopatch was stopped, never enabled", dp.Name)
			continue
		}
		ok := len(dp.Events) == 2 && dp.Events[0].Enabled && !dp.Events[1].Enabled &&
			!dp.Events[0].At.Before(start) && dp.Events[0].At.Sub(start) < onTime+stall &&
			!dp.Events[1].At.Before(end) && dp.Events[1].At.Sub(end) < onTime+stall
		expect(ok, "%s: enabled once within %s of %s, disabled once within %s of %s", dp.Name, onTime, start.Format("15:04:05"), onTime, end.Format("15:04:05"))
		if len(dp.Events) == 2 {
			openLag = max(openLag, dp.Events[0].At.Sub(start))
			closeLag = max(closeLag, dp.Events[1].At.Sub(end))
		}
		if sched == "APP" {
			expect(dp.SuppressRestart, "%s: manual_reboot, restart suppressed", dp.Name)
		}
	}
	fmt.Fprintf(d.opts.Out, "  [info] latest enable %s after its window's start, latest disable %s after its end; "+
		"the machine stalled this process for up to %s, which the checks above allow for\n",
		openLag.Round(time.Millisecond), closeLag.Round(time.Millisecond), stall.Round(time.Millisecond))
	depsB := deploymentsOf(s, "CHG0030002")
	expect(len(depsB) == 1 && depsB[0].Deleted && len(depsB[0].Events) == 0, "CHG0030002 (canceled): its deployment was deleted, never enabled")

	alertFor := map[string]int{}
	for _, a := range s.Alerts {
		if a.Change == "CHG0030001" {
			alertFor[a.Device]++
		}
		expect(a.TicketID != "", "alert on %s is linked to an incident (%s)", a.Device, a.TicketID)
		if a.Device == "BIL-APP01" {
			expect(a.ResolutionState == 255, "BIL-APP01 recovered: its alert is closed")
		}
	}
	for _, dev := range []string{"INT-SQL01", "INT-WEB01", "BIL-APP01"} {
		expect(alertFor[dev] == 1, "exactly one alert for %s (got %d)", dev, alertFor[dev])
	}
	incidents := map[string]string{}
	for _, in := range s.Incidents {
		incidents[in.CorrelationID] = in.State
	}
	for _, dev := range []string{"INT-SQL01", "INT-WEB01", "BIL-APP01"} {
		_, ok := incidents["autopatch:CHG0030001:"+dev]
		expect(ok, "an incident for %s", dev)
	}
	expect(incidents["autopatch:CHG0030001:BIL-APP01"] == "6", "BIL-APP01's incident is resolved")
	missed := false
	for _, in := range s.Incidents {
		missed = missed || strings.Contains(strings.ToLower(in.ShortDescription), "missed")
	}
	expect(missed, "an incident for the missed window")

	// Rollout control: CHG0030001's WEB window was held by tier gating and
	// resumed; CHG0030003 was halted by its budget and its WEB window never
	// enabled.
	var holdsA, holdsC changeHolds
	errA := d.api("/api/v1/changes/CHG0030001", &holdsA)
	tierResumed := false
	for _, h := range holdsA.Holds {
		tierResumed = tierResumed || (h.Kind == "tier" && h.ReleasedAt != nil && h.ReleasedBy == "api" && strings.Contains(h.Reason, "INT-SQL01"))
	}
	expect(errA == nil && tierResumed, "CHG0030001: WEB held by tier gating (INT-SQL01, Intranet's backend, failed), released by the operator's resume")
	errC := d.api("/api/v1/changes/CHG0030003", &holdsC)
	heldWeb := 0
	for _, dp := range holdsC.Deployments {
		if dp.Schedule == "WEB" && dp.State == "held" {
			heldWeb++
		}
	}
	expect(errC == nil && holdsC.active("budget") && heldWeb == 1, "CHG0030003: halted by its error budget of 0, its WEB deployment held (%d held)", heldWeb)
	for _, dp := range deploymentsOf(s, "CHG0030003") {
		if strings.HasSuffix(dp.Collection, "WEB") {
			expect(!slices.ContainsFunc(dp.Events, func(e sccmsim.Event) bool { return e.Enabled }), "%s: held, never enabled", dp.Name)
		}
	}
	halts := 0
	for _, in := range s.Incidents {
		if strings.HasPrefix(in.CorrelationID, "autopatch:CHG0030003:halt:") {
			halts++
		}
	}
	expect(halts == 1, "one incident says CHG0030003's rollout is halted (got %d)", halts)
	haltNotes := 0
	for _, n := range notesOn(s, d.tl, "CHG0030003") {
		if strings.Contains(n, "HALTED") {
			haltNotes++
		}
	}
	expect(haltNotes == 1, "one work note on CHG0030003 names the failures that halted it (got %d)", haltNotes)

	// The read API tells the same story.
	var chg struct {
		Plan *struct {
			Entries []struct {
				Schedule    string `json:"schedule"`
				Unplaceable string `json:"unplaceable"`
			} `json:"entries"`
		} `json:"plan"`
		Deployments []struct {
			State string `json:"state"`
		} `json:"deployments"`
	}
	err := d.api("/api/v1/changes/CHG0030001", &chg)
	states := map[string]int{}
	for _, dp := range chg.Deployments {
		states[dp.State]++
	}
	expect(err == nil && chg.Plan != nil && len(chg.Plan.Entries) == 5 && states["closed"] == 6 && states["missed"] == 2,
		"GET /api/v1/changes/CHG0030001: a plan of 5 schedules, 6 deployments closed, 2 missed (%v)", states)
	var dev struct {
		Device struct {
			Schedule string `json:"schedule"`
			Service  string `json:"service"`
		} `json:"device"`
		Results []struct {
			StatusType int `json:"status_type"`
		} `json:"results"`
	}
	err = d.api("/api/v1/devices/INT-SQL01", &dev)
	failedResult := false
	for _, r := range dev.Results {
		failedResult = failedResult || r.StatusType == 5
	}
	expect(err == nil && dev.Device.Schedule == "DB" && dev.Device.Service == "Intranet" && failedResult,
		"GET /api/v1/devices/INT-SQL01: schedule DB, service Intranet, its failed result")

	d.checkLedger(expect)
	d.checkForced(s, expect)

	return checks.err()
}

func (d *run) printSummary() {
	s := d.est.State()
	d.tl.observe(s)
	out := d.opts.Out
	fmt.Fprintln(out, "\nDeployments:")
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tWINDOW (UTC)\tENABLED\tDISABLED\tSTATE")
	for _, dp := range s.Deployments {
		sched := strings.TrimPrefix(dp.Collection, collection(""))
		start, end := d.window(sched)
		var on, off []string
		for _, e := range dp.Events {
			if e.Enabled {
				on = append(on, e.At.UTC().Format("15:04:05.000"))
			} else {
				off = append(off, e.At.UTC().Format("15:04:05.000"))
			}
		}
		// A missed window is disabled in SCCM too (it was created
		// disabled; the disable makes sure): without an enable it is
		// missed, not closed.
		state := "created, disabled (waiting for its window)"
		switch {
		case dp.Deleted:
			state = "deleted"
		case dp.Enabled:
			state = "ENABLED"
		case len(on) > 0:
			state = "closed"
		case time.Now().After(end) || len(off) > 0:
			state = "missed, never enabled"
		}
		window := start.UTC().Format("15:04:05") + "–" + end.UTC().Format("15:04:05")
		if dp.Collection == forcedCollection {
			window = "forced wave" // no window: enabled for a wave after the deadline
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", dp.Name, window,
			orDash(strings.Join(on, " ")), orDash(strings.Join(off, " ")), state)
	}
	tw.Flush()
	fmt.Fprintln(out, "\nSCOM alerts:")
	tw = tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  DEVICE\tTICKET\tRESOLUTION\tSUMMARY")
	for _, a := range s.Alerts {
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\n", a.Device, orDash(a.TicketID), a.ResolutionState, firstLine(a.Description))
	}
	tw.Flush()
	fmt.Fprintln(out, "\nServiceNow incidents:")
	tw = tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NUMBER\tSTATE\tCORRELATION\tSHORT DESCRIPTION")
	for _, in := range s.Incidents {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", in.Number, incidentState(in.State), in.CorrelationID, in.ShortDescription)
	}
	tw.Flush()
	count := map[string]int{}
	d.tl.mu.Lock()
	for _, n := range s.WorkNotes {
		count[d.tl.records[n.SysID]]++
	}
	d.tl.mu.Unlock()
	var recs []string
	for r, n := range count {
		recs = append(recs, fmt.Sprintf("%s: %d", r, n))
	}
	slices.Sort(recs)
	fmt.Fprintf(out, "\nWork notes: %s\n", strings.Join(recs, ", "))
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func writeFile(path, text string) error {
	if path == "" {
		return errors.New("demo: no schedules file")
	}
	// Renamed into place so serve never reads half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
