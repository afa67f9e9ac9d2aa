package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/autopatch/autopatch/connectors/sccm/sccmsim"
	"github.com/autopatch/autopatch/internal/estate"
	"github.com/autopatch/autopatch/internal/serveproc"
	"github.com/autopatch/autopatch/internal/stallwatch"
)

// customer is one tenant of the two-customer demo (issue #20): its own
// estate (an SCCM site with a code of its own, SCOM, a ServiceNow
// instance), its devices, one schedule, one request and one change.
type customer struct {
	name    string
	site    string
	devices []device
	ritm    string
	change  string
	// window is the schedule's window, as offsets from t0.
	window [2]time.Duration

	est       *estate.Estate
	tl        *timeline
	schedules string // the schedules file's path
	ritmID    string
	changeID  string
}

// tenantSchedule is the name of each customer's one schedule: the same
// name at both, as two customers' schedules may well be called.
const tenantSchedule = "PATCH"

func (c *customer) collection() string {
	return "Patch - " + strings.ToUpper(c.name[:1]) + c.name[1:] + " - Servers"
}

func (c *customer) schedulesYAML(t0 time.Time) string {
	return fmt.Sprintf("schedules:\n  - name: %s\n    collection: %q\n    kind: automatic\n    windows: [{start: %q, end: %q}]\n",
		tenantSchedule, c.collection(), t0.Add(c.window[0]).UTC().Format(time.RFC3339), t0.Add(c.window[1]).UTC().Format(time.RFC3339))
}

func (c *customer) seed() string {
	var b strings.Builder
	fmt.Fprintf(&b, "site_code: %s\nupdate_groups: [\"2026-12 Servers\"]\ndevices:\n", c.site)
	for _, d := range c.devices {
		fmt.Fprintf(&b, "  - {name: %s}\n", d.Name)
	}
	return b.String()
}

// tenantRun is the two-customer demo: run's machinery (the throwaway
// PostgreSQL, serve as a child process, the timeline) with a customer
// each side.
type tenantRun struct {
	*run
	est       *estate.Tenants
	customers []*customer
	// seen is what the demo saw of the security checks, for check.
	wrongSignature, wrongToken, ownToken int
	metrics                              string
	// The metrics as each party sees them: the process's without the
	// operator's token, and contoso's own with contoso's and acme's token.
	metricsOpen, contosoMetrics, contosoMetricsAsAcme int
	contosoSeries                                     string
}

func newCustomers() []*customer {
	return []*customer{
		{name: "acme", site: "AC1", ritm: "RITM0051001", change: "CHG0051001",
			devices: []device{{"ACME-SQL01", "Ledger", "backend"}, {"ACME-WEB01", "Shop", "frontend"}},
			window:  [2]time.Duration{15 * time.Second, 23 * time.Second}},
		{name: "contoso", site: "CT1", ritm: "RITM0062001", change: "CHG0062001",
			devices: []device{{"CON-SQL01", "Claims", "backend"}, {"CON-APP01", "Portal", "middle"}},
			window:  [2]time.Duration{17 * time.Second, 25 * time.Second}},
	}
}

// RunTenants plays the two-customer demo (`autopatch demo --tenants`, issue
// #20): one autopatch process serving acme and contoso from a tenants file,
// each customer with its own simulated SCCM site, SCOM and ServiceNow. Each
// orders patching for two servers and approves a change whose window opens
// about 15 s after the start; autopatch opens and closes each window at the
// customer's own site and writes to the customer's own ServiceNow; a
// webhook signed by acme on contoso's path is refused, acme's token reads
// nothing of contoso's. The error names every expectation that failed.
func RunTenants(ctx context.Context, opts Options) error {
	d := &tenantRun{run: &run{opts: opts, tl: newTimeline(opts.Out, opts.TTY), stalls: stallwatch.Start()}}
	defer d.stalls.Stop()
	var err error
	defer func() { d.cleanup(err != nil) }()
	err = d.play(ctx)
	return err
}

func (d *tenantRun) play(ctx context.Context) error {
	if err := d.setUp(ctx); err != nil {
		return d.withCause(err)
	}
	scenarioErr := d.story(ctx)
	d.observe()
	d.printSummary()
	if d.opts.SummaryJSON != "" {
		states := map[string]estate.State{}
		for _, c := range d.customers {
			states[c.name] = c.est.State()
		}
		b, err := json.MarshalIndent(states, "", "  ")
		if err == nil {
			err = os.WriteFile(d.opts.SummaryJSON, append(b, '\n'), 0o644)
		}
		if err != nil {
			return fmt.Errorf("demo: --summary-json: %w", err)
		}
		fmt.Fprintf(d.opts.Out, "\nThe simulators' final states, by customer, are in %s.\n", d.opts.SummaryJSON)
	}
	if scenarioErr != nil {
		return d.withCause(scenarioErr)
	}
	return d.check()
}

func (d *tenantRun) setUp(ctx context.Context) error {
	if err := d.prepare(ctx); err != nil {
		return err
	}
	d.customers = newCustomers()
	var list []estate.Tenant
	for _, c := range d.customers {
		seed, err := estate.ParseSeed([]byte(c.seed()))
		if err != nil {
			return fmt.Errorf("demo: seed of %s: %w", c.name, err)
		}
		list = append(list, estate.Tenant{Name: c.name, Options: estate.Options{Seed: seed, ScheduleCollections: []string{c.collection()}}})
	}
	var err error
	if d.est, err = estate.StartTenants(ctx, list); err != nil {
		return fmt.Errorf("demo: simulated estates: %w", err)
	}
	d.closers = append(d.closers, func() { d.est.Close() })
	files := map[string]string{}
	for _, c := range d.customers {
		c.est = d.est.Estate(c.name)
		c.tl = newTimeline(d.opts.Out, false)
		c.tl.start, c.tl.tag = d.tl.start, c.name
		d.tl.line("DEMO", "customer %s: SCCM site %s at %s, ServiceNow at %s", c.name, c.site, c.est.SCCMEndpoint(), c.est.ServiceNowURL())
		// serve starts with the window parked far ahead; the real one is
		// written once it is ready (story).
		c.schedules = filepath.Join(d.dir, c.name+"-schedules.yaml")
		if err := os.WriteFile(c.schedules, []byte(c.schedulesYAML(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC))), 0o644); err != nil {
			return err
		}
		files[c.name] = c.schedules
	}
	tenantsPath, envPath := filepath.Join(d.dir, "tenants.yaml"), filepath.Join(d.dir, "sim.env")
	if err := d.est.WriteFiles(tenantsPath, envPath, files); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	d.tl.line("DEMO", "tenants file %s written: each customer's site, SCOM, ServiceNow and schedules; its secrets are in the environment only", tenantsPath)
	port, err := serveproc.FreePort()
	if err != nil {
		return err
	}
	d.apiURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	d.env = append(d.est.Env(tenantsPath),
		"AUTOPATCH_DATABASE_URL="+d.dbURL,
		"AUTOPATCH_LISTEN="+fmt.Sprintf("127.0.0.1:%d", port),
		"AUTOPATCH_STATUS_POLL_INTERVAL=2s",
		"AUTOPATCH_COMPLIANCE_INTERVAL=2s",
		"AUTOPATCH_LOG_FORMAT=text",
		"AUTOPATCH_SHUTDOWN_TIMEOUT=10s",
	)
	return d.startServe(ctx)
}

// observe prints what changed in each customer's estate.
func (d *tenantRun) observe() {
	for _, c := range d.customers {
		c.tl.observe(c.est.State())
	}
}

// waitFor waits until cond holds or the deadline passes, printing what the
// estates do meanwhile.
func (d *tenantRun) waitFor(ctx context.Context, deadline time.Time, what string, cond func() bool) error {
	for {
		d.observe()
		if cond() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: did not happen by %s", what, deadline.UTC().Format("15:04:05"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// get reads path with token and returns the status and body.
func (d *tenantRun) get(path, token string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, d.apiURL+path, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func (d *tenantRun) story(ctx context.Context) error {
	// The real windows go in force now, through the SIGHUP reload that
	// rereads every tenant's schedules.
	d.t0 = time.Now().Truncate(time.Second).Add(time.Second)
	for _, c := range d.customers {
		if err := writeFile(c.schedules, c.schedulesYAML(d.t0)); err != nil {
			return err
		}
	}
	if err := d.serve.Process.Signal(syscall.SIGHUP); err != nil {
		return err
	}
	for _, c := range d.customers {
		start := d.t0.Add(c.window[0]).UTC().Format(time.RFC3339)
		path := "/t/" + c.name + "/api/v1/schedules/" + tenantSchedule + "/windows?from=" + d.t0.UTC().Format(time.RFC3339)
		if err := d.waitFor(ctx, time.Now().Add(15*time.Second), c.name+"'s schedules reloaded", func() bool {
			code, body, err := d.get(path, c.est.APIToken())
			return err == nil && code == http.StatusOK && strings.Contains(body, start)
		}); err != nil {
			return err
		}
		d.tl.line("DEMO", "customer %s: schedule %s's window is %s – %s UTC (GET /t/%s/api/v1/schedules/%s/windows)", c.name, tenantSchedule,
			d.t0.Add(c.window[0]).UTC().Format("15:04:05"), d.t0.Add(c.window[1]).UTC().Format("15:04:05"), c.name, tenantSchedule)
	}

	// 1. Each customer's device owner orders patching, at the customer's
	//    own path, signed with the customer's own secret.
	for i, c := range d.customers {
		c.ritmID = fmt.Sprintf("a%031x", 0x51000+i)
		if err := c.est.ServiceNow().AddRecord("sc_req_item", c.ritmID, c.ritm); err != nil {
			return err
		}
		c.tl.record(c.ritmID, c.ritm)
		var names []string
		for _, dv := range c.devices {
			names = append(names, dv.Name)
		}
		c.tl.line("DEMO", "ServiceNow: %s asks for schedule %s for %s", c.ritm, tenantSchedule, strings.Join(names, ", "))
		code, body, err := serveproc.PostSigned(http.DefaultClient, d.apiURL+"/t/"+c.name+"/webhooks/servicenow/schedule-request", c.est.WebhookSecret(), map[string]any{
			"event_id": "sc_req_item:" + c.ritmID + ":1", "request_item": map[string]any{"number": c.ritm, "sys_id": c.ritmID},
			"requested_for": "jane.doe", "schedule": tenantSchedule, "devices": c.devices,
		})
		if err == nil && code != http.StatusAccepted {
			err = fmt.Errorf("%s: schedule request %s: %d %s", c.name, c.ritm, code, body)
		}
		if err != nil {
			return err
		}
	}
	for _, c := range d.customers {
		if err := d.waitFor(ctx, time.Now().Add(15*time.Second), c.name+"'s devices in their collection", func() bool {
			return len(membersOf(c.est.State(), c.collection())) == len(c.devices)
		}); err != nil {
			return err
		}
	}

	// 2. Each customer's CAB approves a change for the schedule.
	for i, c := range d.customers {
		c.changeID = fmt.Sprintf("c%031x", 0x62000+i)
		if err := c.est.ServiceNow().AddRecord("change_request", c.changeID, c.change); err != nil {
			return err
		}
		c.tl.record(c.changeID, c.change)
		c.tl.line("DEMO", "ServiceNow: the CAB approves %s (update group 2026-12 Servers, schedule %s)", c.change, tenantSchedule)
		code, body, err := serveproc.PostSigned(http.DefaultClient, d.apiURL+"/t/"+c.name+"/webhooks/servicenow/change", c.est.WebhookSecret(), d.changeBody(c, c.change, c.changeID))
		if err == nil && code != http.StatusAccepted {
			err = fmt.Errorf("%s: change %s: %d %s", c.name, c.change, code, body)
		}
		if err != nil {
			return err
		}
	}

	// 3. What one customer's credentials get at the other's routes.
	acme, contoso := d.customers[0], d.customers[1]
	var err error
	d.wrongSignature, _, err = serveproc.PostSigned(http.DefaultClient, d.apiURL+"/t/contoso/webhooks/servicenow/change", acme.est.WebhookSecret(),
		d.changeBody(contoso, "CHG0069999", fmt.Sprintf("c%031x", 0x69999)))
	if err != nil {
		return err
	}
	d.tl.line("DEMO", "attacker: a change webhook signed with acme's secret, posted to /t/contoso/...: HTTP %d", d.wrongSignature)
	for _, c := range d.customers {
		if err := d.waitFor(ctx, time.Now().Add(15*time.Second), c.name+"'s deployment created", func() bool {
			return len(deploymentsOf(c.est.State(), c.change)) == 1
		}); err != nil {
			return err
		}
	}
	if d.ownToken, _, err = d.get("/t/contoso/api/v1/changes/"+contoso.change, contoso.est.APIToken()); err != nil {
		return err
	}
	if d.wrongToken, _, err = d.get("/t/contoso/api/v1/changes/"+contoso.change, acme.est.APIToken()); err != nil {
		return err
	}
	d.tl.line("DEMO", "GET /t/contoso/api/v1/changes/%s: HTTP %d with contoso's token, HTTP %d with acme's", contoso.change, d.ownToken, d.wrongToken)

	// 4. The windows open and close, each at its customer's site.
	last := d.t0
	for _, c := range d.customers {
		if end := d.t0.Add(c.window[1]); end.After(last) {
			last = end
		}
	}
	d.tl.line("DEMO", "waiting for the windows to open and close")
	if err := d.waitFor(ctx, last.Add(10*time.Second), "both windows enabled and disabled", func() bool {
		for _, c := range d.customers {
			deps := deploymentsOf(c.est.State(), c.change)
			if len(deps) != 1 || len(deps[0].Events) < 2 {
				return false
			}
		}
		return true
	}); err != nil {
		return err
	}
	// The window's notes come after the close.
	if err := d.waitFor(ctx, time.Now().Add(10*time.Second), "the windows' notes", func() bool {
		for _, c := range d.customers {
			if len(notesTexts(c.est.State(), c.changeID)) < 3 {
				return false
			}
		}
		return true
	}); err != nil {
		return err
	}
	code, metrics, err := d.get("/metrics", d.est.MetricsToken())
	if err != nil || code != http.StatusOK {
		return fmt.Errorf("GET /metrics: %d %v", code, err)
	}
	d.metrics = metrics
	if d.metricsOpen, _, err = d.get("/metrics", ""); err != nil {
		return err
	}
	if d.contosoMetrics, d.contosoSeries, err = d.get("/t/contoso/metrics", contoso.est.APIToken()); err != nil {
		return err
	}
	if d.contosoMetricsAsAcme, _, err = d.get("/t/contoso/metrics", acme.est.APIToken()); err != nil {
		return err
	}
	d.tl.line("DEMO", "GET /metrics: HTTP %d without the operator's token; GET /t/contoso/metrics: HTTP %d with contoso's token, HTTP %d with acme's",
		d.metricsOpen, d.contosoMetrics, d.contosoMetricsAsAcme)
	return nil
}

// changeBody is ServiceNow's change webhook: approved and scheduled, for
// c's schedule and the update group 2026-12 Servers.
func (d *tenantRun) changeBody(c *customer, number, sysID string) map[string]any {
	return map[string]any{
		"event_id": "change_request:" + sysID + ":1",
		"change": map[string]any{
			"number": number, "sys_id": sysID, "type": "normal", "state": "scheduled", "approval": "approved",
			"start_date": time.Now().UTC().Add(-time.Minute).Format("2006-01-02 15:04:05"), "end_date": time.Now().UTC().Add(2 * time.Hour).Format("2006-01-02 15:04:05"),
			"short_description": c.name + " December patching", "sys_updated_on": time.Now().UTC().Format("2006-01-02 15:04:05"),
		},
		"patching": map[string]any{"software_update_groups": []string{"2026-12 Servers"}, "schedules": []string{tenantSchedule}},
	}
}

func membersOf(s estate.State, collection string) []string {
	for _, c := range s.Collections {
		if c.Name == collection {
			return c.Members
		}
	}
	return nil
}

// check compares what happened with what must have happened.
func (d *tenantRun) check() error {
	checks := newChecklist(d.opts.Out)
	expect := checks.expect
	stall := d.stalls.Longest()
	for _, c := range d.customers {
		s := c.est.State()
		var others []*customer
		for _, o := range d.customers {
			if o != c {
				others = append(others, o)
			}
		}
		got := slices.Clone(membersOf(s, c.collection()))
		slices.Sort(got)
		var want []string
		for _, dv := range c.devices {
			want = append(want, dv.Name)
		}
		slices.Sort(want)
		expect(slices.Equal(got, want), "%s: collection %q at site %s holds %s", c.name, c.collection(), c.site, strings.Join(want, ", "))

		start, end := d.t0.Add(c.window[0]), d.t0.Add(c.window[1])
		deps := deploymentsOf(s, c.change)
		ok := len(deps) == 1 && c.est.SCCM().SiteCode() == c.site
		if ok {
			ev := deps[0].Events
			ok = len(ev) == 2 && ev[0].Enabled && !ev[1].Enabled &&
				!ev[0].At.Before(start) && ev[0].At.Sub(start) < onTime+stall &&
				!ev[1].At.Before(end) && ev[1].At.Sub(end) < onTime+stall
		}
		expect(ok, "%s: %s's deployment at site %s enabled once within %s of %s, disabled once within %s of %s",
			c.name, c.change, c.site, onTime, start.UTC().Format("15:04:05"), onTime, end.UTC().Format("15:04:05"))
		foreign := 0
		for _, dp := range s.Deployments {
			if !strings.HasPrefix(dp.Name, "AP-"+c.change+"-") {
				foreign++
			}
		}
		expect(foreign == 0, "%s: site %s holds no other customer's deployment (%d)", c.name, c.site, foreign)

		ownNotes := map[string]int{}
		var strays []string
		for _, n := range s.WorkNotes {
			switch n.SysID {
			case c.ritmID, c.changeID:
				ownNotes[n.SysID]++
			default:
				strays = append(strays, n.Table+"/"+n.SysID)
			}
			for _, o := range others {
				if strings.Contains(n.Text, o.change) || strings.Contains(n.Text, o.ritm) || strings.Contains(n.Text, o.devices[0].Name) {
					strays = append(strays, "a note naming "+o.name+"'s records")
				}
			}
		}
		expect(ownNotes[c.ritmID] > 0 && ownNotes[c.changeID] > 0 && len(strays) == 0,
			"%s: its notes (%d on %s, %d on %s) landed in its own ServiceNow, nothing else there %v",
			c.name, ownNotes[c.ritmID], c.ritm, ownNotes[c.changeID], c.change, strays)
		expect(strings.Contains(d.metrics, `tenant="`+c.name+`"`), "GET /metrics: series labelled tenant=%q", c.name)
	}
	expect(d.wrongSignature == http.StatusUnauthorized, "a webhook signed with acme's secret on /t/contoso/webhooks/servicenow/change: 401 (got %d)", d.wrongSignature)
	expect(len(deploymentsOf(d.customers[1].est.State(), "CHG0069999")) == 0 &&
		strings.Contains(d.metrics, `autopatch_webhook_deliveries_total{kind="change",outcome="unauthorized",tenant="contoso"} 1`),
		"the refused webhook created nothing at contoso's site and is counted unauthorized for contoso in /metrics")
	expect(d.metricsOpen == http.StatusUnauthorized, "GET /metrics without AUTOPATCH_METRICS_TOKEN: 401 (got %d)", d.metricsOpen)
	expect(d.contosoMetrics == http.StatusOK && strings.Contains(d.contosoSeries, `tenant="contoso"`) && !strings.Contains(d.contosoSeries, "acme"),
		"GET /t/contoso/metrics with contoso's token: contoso's series only (HTTP %d)", d.contosoMetrics)
	expect(d.contosoMetricsAsAcme == http.StatusNotFound, "acme's token on /t/contoso/metrics: 404 (got %d)", d.contosoMetricsAsAcme)
	expect(d.wrongToken == http.StatusNotFound && d.ownToken == http.StatusOK,
		"acme's API token on /t/contoso/api/v1/changes/%s: 404 (got %d; contoso's own token: %d)", d.customers[1].change, d.wrongToken, d.ownToken)

	return checks.err()
}

func (d *tenantRun) printSummary() {
	out := d.opts.Out
	fmt.Fprintln(out, "\nDeployments, by customer:")
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  CUSTOMER\tSITE\tNAME\tWINDOW (UTC)\tENABLED\tDISABLED")
	for _, c := range d.customers {
		start, end := d.t0.Add(c.window[0]), d.t0.Add(c.window[1])
		for _, dp := range c.est.State().Deployments {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s–%s\t%s\t%s\n", c.name, c.est.SCCM().SiteCode(), dp.Name,
				start.UTC().Format("15:04:05"), end.UTC().Format("15:04:05"), eventTimes(dp.Events, true), eventTimes(dp.Events, false))
		}
	}
	tw.Flush()
	fmt.Fprintln(out, "\nWork notes, by customer's ServiceNow:")
	for _, c := range d.customers {
		count := map[string]int{}
		for _, n := range c.est.State().WorkNotes {
			rec := map[string]string{c.ritmID: c.ritm, c.changeID: c.change}[n.SysID]
			if rec == "" {
				rec = n.Table + "/" + n.SysID
			}
			count[rec]++
		}
		var recs []string
		for r, n := range count {
			recs = append(recs, fmt.Sprintf("%s: %d", r, n))
		}
		slices.Sort(recs)
		fmt.Fprintf(out, "  %s (%s): %s\n", c.name, c.est.ServiceNowURL(), strings.Join(recs, ", "))
	}
	fmt.Fprintln(out, "\nGET /metrics (webhook deliveries, one series per customer):")
	for _, l := range strings.Split(d.metrics, "\n") {
		if strings.HasPrefix(l, "autopatch_webhook_deliveries_total{") {
			fmt.Fprintf(out, "  %s\n", l)
		}
	}
}

func eventTimes(events []sccmsim.Event, enabled bool) string {
	var out []string
	for _, e := range events {
		if e.Enabled == enabled {
			out = append(out, e.At.UTC().Format("15:04:05.000"))
		}
	}
	return orDash(strings.Join(out, " "))
}
