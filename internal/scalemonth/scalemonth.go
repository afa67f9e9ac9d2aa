// Package scalemonth plays Microsoft IT's patch month (issue #19) in a few
// minutes, in the style of the demo: the generated scale estate
// (internal/estate/scale.yaml: 8,000 servers, 24 windows Thursday to
// Sunday, 3 update groups, seconds per WinRM call), `autopatch serve` as a
// child process, the change approved by a signed webhook, and the 24
// windows played in order, seconds apart. It checks that every failure was
// reported once and prints what the month cost: WinRM calls by template,
// ServiceNow requests, incidents, alerts, the open lag of the windows, and
// serve's CPU time and resident memory high-water mark.
package scalemonth

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/connectors/sccm/sccmsim"
	"github.com/autopatch/autopatch/internal/estate"
	"github.com/autopatch/autopatch/internal/pgtemp"
	"github.com/autopatch/autopatch/internal/serveproc"
)

// Options configure Run. Zero values are the defaults.
type Options struct {
	// Binary is the autopatch executable started as `serve`.
	Binary string
	// DatabaseURL is an existing, empty database; empty starts a throwaway one.
	DatabaseURL string
	// Scale is the estate (estate.ParseScale); empty means the defaults.
	Scale string
	// Step is the time between two windows' starts (default 8 s) and
	// Window their length (default 24 s): the month's 24 windows, in their
	// Thursday-to-Sunday order, played in Step × 23 + Window.
	Step, Window time.Duration
	// PollInterval is serve's status poll interval (default 5 s).
	PollInterval time.Duration
	// Lead is from serve's start to the first window's (default 30 s):
	// time to approve the change and create the month's deployments.
	Lead time.Duration
	// Out receives the progress and the figures; nil discards.
	Out io.Writer
}

// Figures are what the month cost.
type Figures struct {
	Devices, Windows, Deployments int
	// CreateWall is from the approval webhook to the last deployment in SCCM.
	CreateWall time.Duration
	// OpenLagMax is the latest enable after a window's start.
	OpenLagMax time.Duration
	// WinRM calls by template name (SCCM and SCOM), and in all.
	Calls      map[string]int
	TotalCalls int
	// ServiceNow requests, incidents opened, SCOM alerts raised.
	ServiceNowRequests, Incidents, Alerts int
	// Failures recorded: device errors and devices without status at the
	// end of their window.
	ErrorFailures, NoStatusFailures int
	// Held counts the deployments rollout control held: a frontend window
	// of a service whose backend or middle member failed earlier in the
	// month (tier gating) is never enabled.
	Held int
	// ServeCPU is serve's user+system CPU time; ServeRSSMax its resident
	// memory high-water mark (VmHWM).
	ServeCPU    time.Duration
	ServeRSSMax int64
	Wall        time.Duration
}

// Run plays the month and returns its figures. The error names what did not
// happen as it should.
func Run(ctx context.Context, opts Options) (Figures, error) {
	if opts.Step == 0 {
		opts.Step = 8 * time.Second
	}
	if opts.Window == 0 {
		opts.Window = 24 * time.Second
	}
	if opts.Lead == 0 {
		opts.Lead = 30 * time.Second
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 5 * time.Second
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	m := &month{opts: opts, start: time.Now()}
	defer m.cleanup()
	if err := m.setUp(ctx); err != nil {
		return Figures{}, err
	}
	err := m.play(ctx)
	m.figures(ctx)
	m.fig.Wall = time.Since(m.start)
	if err == nil {
		err = m.check(ctx)
	}
	m.print()
	return m.fig, err
}

type month struct {
	opts  Options
	start time.Time
	dir   string
	dbURL string
	// heldSchedules are the schedules whose window rollout control held.
	heldSchedules map[string]bool
	gen           estate.ScaleEstate
	est           *estate.Estate
	serve         *exec.Cmd
	served        chan error
	apiURL        string
	logPath       string
	t0            time.Time
	number        string
	fig           Figures
	closers       []func()
}

func (m *month) logf(format string, args ...any) {
	fmt.Fprintf(m.opts.Out, "%6.1fs  %s\n", time.Since(m.start).Seconds(), fmt.Sprintf(format, args...))
}

func (m *month) cleanup() {
	m.stopServe()
	for i := len(m.closers) - 1; i >= 0; i-- {
		m.closers[i]()
	}
}

func (m *month) setUp(ctx context.Context) error {
	scale, err := estate.ParseScale(m.opts.Scale)
	if err != nil {
		return err
	}
	m.gen = scale.Generate(time.Now().UTC().Format("2006-01"))
	m.fig.Devices, m.fig.Windows = len(m.gen.Devices), len(m.gen.Schedules)
	if m.dir, err = os.MkdirTemp("", "autopatch-scale-"); err != nil {
		return err
	}
	m.closers = append(m.closers, func() { os.RemoveAll(m.dir) })
	m.logPath = filepath.Join(m.dir, "serve.log")

	m.dbURL = m.opts.DatabaseURL
	if m.dbURL == "" {
		pg, err := pgtemp.Start(ctx)
		if err != nil {
			return fmt.Errorf("scale month: %w", err)
		}
		m.closers = append(m.closers, func() { pg.Close() })
		m.dbURL = pg.URL("postgres")
	}

	seed := m.gen.Seed()
	seed.Devices = append(seed.Devices, estate.SeedDevice{Name: windowComputer})
	if m.est, err = estate.Start(ctx, estate.Options{Seed: seed}); err != nil {
		return fmt.Errorf("scale month: simulated estate: %w", err)
	}
	m.closers = append(m.closers, func() { m.est.Close() })
	m.logf("estate generated: %d servers in %d services' tiers, %d windows Thu–Sun, %d update groups, %s per WinRM call",
		len(m.gen.Devices), countServices(m.gen), len(m.gen.Schedules), len(m.gen.UpdateGroups), scale.Latency)

	// The windows, compressed: the month's order, Step apart, from t0.
	m.t0 = time.Now().Truncate(time.Second).Add(m.opts.Lead)
	var b strings.Builder
	b.WriteString("schedules:\n")
	for i, s := range m.gen.Schedules {
		start := m.t0.Add(time.Duration(i) * m.opts.Step)
		fmt.Fprintf(&b, "  - {name: %s, collection: %q, kind: automatic, windows: [{start: %q, end: %q}]}\n", s.Name, s.Collection,
			start.UTC().Format(time.RFC3339), start.Add(m.opts.Window).UTC().Format(time.RFC3339))
	}
	schedules := filepath.Join(m.dir, "schedules.yaml")
	if err := os.WriteFile(schedules, []byte(b.String()), 0o644); err != nil {
		return err
	}
	port, err := serveproc.FreePort()
	if err != nil {
		return err
	}
	m.apiURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	env := append(m.est.Env(),
		"AUTOPATCH_DATABASE_URL="+m.dbURL,
		"AUTOPATCH_LISTEN="+fmt.Sprintf("127.0.0.1:%d", port),
		"AUTOPATCH_SCHEDULES_FILE="+schedules,
		"AUTOPATCH_STATUS_POLL_INTERVAL="+m.opts.PollInterval.String(),
		"AUTOPATCH_LOG_FORMAT=text",
		"AUTOPATCH_SHUTDOWN_TIMEOUT=10s",
		"AUTOPATCH_SCOM_WINDOW_COMPUTER="+windowComputer,
		// The month measures what every window costs: a few percent of the
		// estate fails by design, which the default budget (10% of the
		// closed windows' devices) may judge a bad month and halt.
		"AUTOPATCH_ERROR_BUDGET=100%",
	)
	return m.startServe(ctx, env)
}

// windowComputer carries the alerts of whole windows (storms, missed).
const windowComputer = "SCCM01"

func countServices(g estate.ScaleEstate) int {
	seen := map[string]bool{}
	for _, d := range g.Devices {
		seen[d.Service] = true
	}
	return len(seen)
}

func (m *month) startServe(ctx context.Context, env []string) error {
	log, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(m.opts.Binary, "serve")
	cmd.Env = append(serveproc.WithoutAutopatch(os.Environ()), env...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("scale month: start serve: %w", err)
	}
	m.serve = cmd
	m.served = make(chan error, 1)
	go func() { m.served <- cmd.Wait(); log.Close() }()
	if err := serveproc.WaitReady(ctx, m.apiURL, m.served, 60*time.Second); err != nil {
		var exited *serveproc.ExitedError
		if errors.As(err, &exited) {
			m.serve = nil
		}
		return fmt.Errorf("scale month: %w; see %s", err, m.logPath)
	}
	m.logf("autopatch serve ready (pid %d, log %s)", m.serve.Process.Pid, m.logPath)
	return nil
}

func (m *month) stopServe() {
	if m.serve == nil {
		return
	}
	serveproc.Stop(m.serve, m.served, 20*time.Second)
	m.serve = nil
}

// play records the devices' assignments, approves the month's change and
// waits for every window to close, its final poll and every failure's
// alert and incident.
func (m *month) play(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, m.dbURL)
	if err != nil {
		return fmt.Errorf("scale month: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var names, scheds, services, tiers []string
	for _, d := range m.gen.Devices {
		names, scheds = append(names, d.Name), append(scheds, d.Schedule)
		services, tiers = append(services, d.Service), append(tiers, d.Tier)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO devices (name, schedule_name, service, tier)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])`, names, scheds, services, tiers); err != nil {
		return fmt.Errorf("scale month: devices: %w", err)
	}

	m.number = "CHG0190001"
	sysID := "5ca1e000000000000000000000000001"
	if err := m.est.ServiceNow().AddRecord("change_request", sysID, m.number); err != nil {
		return err
	}
	var schedules []string
	for _, s := range m.gen.Schedules {
		schedules = append(schedules, s.Name)
	}
	now := time.Now()
	body := map[string]any{
		"event_id": "change_request:" + sysID + ":1",
		"change": map[string]any{
			"number": m.number, "sys_id": sysID, "type": "normal", "state": "scheduled", "approval": "approved",
			"start_date":        now.Add(-time.Minute).UTC().Format("2006-01-02 15:04:05"),
			"end_date":          m.t0.Add(2 * time.Hour).UTC().Format("2006-01-02 15:04:05"),
			"short_description": "Microsoft IT monthly server patching", "sys_updated_on": now.UTC().Format("2006-01-02 15:04:05"),
		},
		"patching": map[string]any{"software_update_groups": m.gen.UpdateGroups, "schedules": schedules},
	}
	approved := time.Now()
	code, resp, err := serveproc.PostSigned(http.DefaultClient, m.apiURL+"/webhooks/servicenow/change", m.est.WebhookSecret(), body)
	if err == nil && code != http.StatusAccepted {
		err = fmt.Errorf("%d %s", code, resp)
	}
	if err != nil {
		return fmt.Errorf("scale month: approval webhook: %w", err)
	}
	m.logf("change %s approved (signed webhook): %d schedules × %d update groups", m.number, len(schedules), len(m.gen.UpdateGroups))

	want := len(m.gen.Schedules) * len(m.gen.UpdateGroups)
	var rss int64
	sample := func() {
		if v := procStatus(m.serve, "VmRSS"); v > rss {
			rss = v
		}
	}
	wait := func(what string, bound time.Duration, cond func() (bool, error)) error {
		deadline := time.Now().Add(bound)
		for {
			sample()
			ok, err := cond()
			if err != nil {
				return err
			}
			if ok {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("scale month: %s not done after %s; see %s", what, bound, m.logPath)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case err := <-m.served:
				m.serve = nil
				return fmt.Errorf("scale month: serve exited (%v); see %s", err, m.logPath)
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
	count := func(q string) func() (bool, error) {
		return func() (bool, error) {
			var n int
			err := conn.QueryRow(ctx, q).Scan(&n)
			return n == 0, err
		}
	}
	if err := wait("creation", 3*time.Minute, func() (bool, error) {
		return len(m.deployments()) == want, nil
	}); err != nil {
		return err
	}
	m.fig.CreateWall = time.Since(approved)
	m.fig.Deployments = want
	m.logf("%d deployments created in SCCM, disabled, %.1fs after the approval", want, m.fig.CreateWall.Seconds())

	last := m.t0.Add(time.Duration(len(m.gen.Schedules)-1)*m.opts.Step + m.opts.Window)
	m.logf("the 24 windows run from %s to %s (UTC), %s apart, %s each", m.t0.UTC().Format("15:04:05"), last.UTC().Format("15:04:05"), m.opts.Step, m.opts.Window)
	opened := 0
	if err := wait("the month's windows", time.Until(last)+3*time.Minute, func() (bool, error) {
		n := 0
		for _, d := range m.deployments() {
			if len(d.Events) > 0 {
				n++
			}
		}
		if n/len(m.gen.UpdateGroups) > opened/len(m.gen.UpdateGroups) {
			m.logf("windows opened: %d of %d", n/len(m.gen.UpdateGroups), len(m.gen.Schedules))
		}
		opened = n
		// A held deployment (tier gating) never opens: done, and counted.
		return count(`SELECT count(*) FROM deployments WHERE state NOT IN ('closed', 'held')
			OR (state = 'closed' AND final_polled_at IS NULL)`)()
	}); err != nil {
		return err
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM deployments WHERE state = 'held'`).Scan(&m.fig.Held); err != nil {
		return err
	}
	m.logf("every window closed and had its final poll, but %d deployment(s) held by rollout control (tier gating)", m.fig.Held)
	if err := wait("failure reporting", 5*time.Minute, count(`SELECT count(*) FROM failures
		WHERE storm_id IS NULL AND (incident_sys_id IS NULL OR (alert_id IS NULL AND alert_outcome IS NULL)
			OR (alert_id IS NOT NULL AND incident_number IS NOT NULL AND alert_ticket IS DISTINCT FROM incident_number)
			OR (recovered_at IS NOT NULL AND state <> 'resolved'))`)); err != nil {
		return err
	}
	m.logf("every failure has its alert and incident (and both closed where the device recovered)")
	sample()
	m.fig.ServeRSSMax = max(rss, procStatus(m.serve, "VmHWM"))
	m.fig.ServeCPU = procCPU(m.serve)
	return nil
}

func (m *month) deployments() []sccmsim.DeploymentState {
	var out []sccmsim.DeploymentState
	for _, d := range m.est.SCCM().State().Deployments {
		if strings.HasPrefix(d.Name, "AP-"+m.number+"-") && !d.Deleted {
			out = append(out, d)
		}
	}
	return out
}

// figures reads what the month cost from the simulators and the database.
func (m *month) figures(ctx context.Context) {
	m.fig.Calls = map[string]int{}
	for t, n := range m.est.SCCM().CallsByTemplate() {
		m.fig.Calls[t] += n
		m.fig.TotalCalls += n
	}
	for t, n := range m.est.SCOM().CallsByTemplate() {
		m.fig.Calls[t] += n
		m.fig.TotalCalls += n
	}
	s := m.est.State()
	m.fig.Incidents, m.fig.Alerts = len(s.Incidents), len(s.Alerts)
	m.fig.ServiceNowRequests = len(m.est.ServiceNow().Requests())
	starts := map[string]time.Time{}
	for i, sc := range m.gen.Schedules {
		starts[sc.Collection] = m.t0.Add(time.Duration(i) * m.opts.Step)
	}
	for _, d := range m.deployments() {
		for _, e := range d.Events {
			if e.Enabled {
				m.fig.OpenLagMax = max(m.fig.OpenLagMax, e.At.Sub(starts[d.Collection]))
				break
			}
		}
	}
	conn, err := pgx.Connect(ctx, m.dbURL)
	if err != nil {
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_ = conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE kind = 'error'), count(*) FILTER (WHERE kind = 'no_status') FROM failures`).
		Scan(&m.fig.ErrorFailures, &m.fig.NoStatusFailures)
	if rows, err := conn.Query(ctx, `SELECT DISTINCT schedule_name FROM deployments WHERE state = 'held'`); err == nil {
		names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		m.heldSchedules = map[string]bool{}
		for _, n := range names {
			m.heldSchedules[n] = true
		}
	}
}

// check compares the failures with the estate's scripted outcomes: one per
// failing device, one incident per reported failure.
func (m *month) check(ctx context.Context) error {
	var errs []error
	wantErrors, wantSilent := 0, 0
	for _, d := range m.gen.Devices {
		if m.heldSchedules[d.Schedule] {
			continue // its window never opened: nothing installed, nothing failed
		}
		switch {
		case strings.HasPrefix(d.Outcome, "error"):
			wantErrors++
		case d.Outcome == "silent", d.Outcome == "in progress":
			wantSilent++
		}
	}
	if m.fig.ErrorFailures != wantErrors {
		errs = append(errs, fmt.Errorf("%d error failures recorded, want %d (one per failing device)", m.fig.ErrorFailures, wantErrors))
	}
	if m.fig.NoStatusFailures != wantSilent {
		errs = append(errs, fmt.Errorf("%d no-status failures recorded, want %d", m.fig.NoStatusFailures, wantSilent))
	}
	s := m.est.State()
	seen := map[string]int{}
	for _, inc := range s.Incidents {
		seen[inc.CorrelationID]++
	}
	for id, n := range seen {
		if n > 1 {
			errs = append(errs, fmt.Errorf("%d incidents for %s", n, id))
		}
	}
	conn, err := pgx.Connect(ctx, m.dbURL)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var reported int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM failures WHERE storm_id IS NULL`).Scan(&reported); err != nil {
		errs = append(errs, err)
	}
	if reported != len(s.Incidents) {
		errs = append(errs, fmt.Errorf("%d incidents for %d reported failures", len(s.Incidents), reported))
	}
	return errors.Join(errs...)
}

func (m *month) print() {
	f := m.fig
	w := m.opts.Out
	fmt.Fprintf(w, "\nThe month of %d servers, %d windows, %d deployments, in %.0fs:\n", f.Devices, f.Windows, f.Deployments, f.Wall.Seconds())
	fmt.Fprintf(w, "  approval → every deployment created   %.1fs, %d creation call(s)\n", f.CreateWall.Seconds(), f.Calls[sccm.CreateDeploymentsTemplate])
	fmt.Fprintf(w, "  latest window opening                 %.2fs after its start\n", f.OpenLagMax.Seconds())
	fmt.Fprintf(w, "  failures                              %d errors, %d without status\n", f.ErrorFailures, f.NoStatusFailures)
	fmt.Fprintf(w, "  incidents, alerts                     %d, %d (one each per reported failure)\n", f.Incidents, f.Alerts)
	fmt.Fprintf(w, "  deployments held (tier gating)        %d (frontend windows after a failed backend or middle member)\n", f.Held)
	fmt.Fprintf(w, "  ServiceNow requests                   %d\n", f.ServiceNowRequests)
	fmt.Fprintf(w, "  WinRM calls                           %d:", f.TotalCalls)
	var names []string
	for t := range f.Calls {
		names = append(names, t)
	}
	slices.Sort(names)
	for _, t := range names {
		fmt.Fprintf(w, " %s %d", t, f.Calls[t])
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  serve CPU time                        %.1fs\n", f.ServeCPU.Seconds())
	fmt.Fprintf(w, "  serve RSS high-water mark             %.1f MiB\n", float64(f.ServeRSSMax)/(1<<20))
}

// procStatus reads a "kB" line of /proc/<pid>/status, in bytes.
func procStatus(cmd *exec.Cmd, key string) int64 {
	if cmd == nil || cmd.Process == nil {
		return 0
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != key {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}

// procCPU reads utime + stime of /proc/<pid>/stat (USER_HZ is 100 on Linux).
func procCPU(cmd *exec.Cmd) time.Duration {
	if cmd == nil || cmd.Process == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces: fields count from after its ')'.
	i := strings.LastIndexByte(string(b), ')')
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}
