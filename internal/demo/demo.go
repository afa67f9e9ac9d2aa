// Package demo plays the whole autopatch mission in about a minute and a
// half: a throwaway PostgreSQL, the simulated estate (SCCM and SCOM over
// WinRM, ServiceNow's Table API), `autopatch serve` as a child process, and
// ServiceNow's side played by signed webhooks. It prints a timeline of what
// autopatch does and why, checks that everything expected happened, and
// exits non-zero naming what did not.
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/autopatch/autopatch/internal/estate"
	"github.com/autopatch/autopatch/internal/ledger"
	"github.com/autopatch/autopatch/internal/pgtemp"
	"github.com/autopatch/autopatch/internal/serveproc"
	"github.com/autopatch/autopatch/internal/stallwatch"
)

// Options configure Run.
type Options struct {
	// Binary is the autopatch executable started as `serve`.
	Binary string
	// DatabaseURL is an existing database; empty starts a throwaway one.
	DatabaseURL string
	// SummaryJSON, when set, receives the simulator's final /state.
	SummaryJSON string
	Out         io.Writer
	// TTY draws a progress line while waiting.
	TTY bool
	// LogDir receives serve's log (serve.log), kept after the demo; empty
	// means the demo's temporary directory, which is kept when the demo
	// fails and removed when it succeeds.
	LogDir string
}

// Run plays the scenario. The error names every expectation that failed.
func Run(ctx context.Context, opts Options) error {
	d := &run{opts: opts, tl: newTimeline(opts.Out, opts.TTY), stalls: stallwatch.Start()}
	defer d.stalls.Stop()
	var err error
	defer func() { d.cleanup(err != nil) }()
	err = d.run(ctx)
	return err
}

// run plays the demo; Run cleans up after it.
func (d *run) run(ctx context.Context) error {
	opts := d.opts
	if err := d.setUp(ctx); err != nil {
		return d.withCause(err)
	}
	scenarioErr := d.play(ctx)
	d.printSummary()
	if opts.SummaryJSON != "" {
		b, err := json.MarshalIndent(d.est.State(), "", "  ")
		if err == nil {
			err = os.WriteFile(opts.SummaryJSON, append(b, '\n'), 0o644)
		}
		if err != nil {
			return fmt.Errorf("demo: --summary-json: %w", err)
		}
		fmt.Fprintf(opts.Out, "\nThe simulator's final state is in %s.\n", opts.SummaryJSON)
	}
	if scenarioErr != nil {
		return d.withCause(scenarioErr)
	}
	return d.check()
}

// withCause adds to err what serve said last about a failure: its error and
// warning lines (or, when it logged none, its last lines), so the reason is
// on the screen and not only in a file.
func (d *run) withCause(err error) error {
	if errors.Is(err, context.Canceled) || d.logPath == "" {
		return err
	}
	b, rerr := os.ReadFile(d.logPath)
	if rerr != nil || len(b) == 0 {
		return err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var bad []string
	for _, l := range lines {
		if strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN") || strings.HasPrefix(l, "autopatch serve:") {
			bad = append(bad, l)
		}
	}
	if len(bad) == 0 {
		bad = lines
	}
	if len(bad) > 10 {
		bad = bad[len(bad)-10:]
	}
	return fmt.Errorf("%w\nserve's log (%s) ends:\n  %s", err, d.logPath, strings.Join(bad, "\n  "))
}

type run struct {
	opts    Options
	tl      *timeline
	dir     string
	pg      *pgtemp.Cluster
	dbURL   string
	est     *estate.Estate
	serve   *exec.Cmd
	served  chan error
	apiURL  string
	logPath string
	env     []string
	t0      time.Time // the scenario's time origin
	plan    scenario
	closers []func()
	records int // simulated ServiceNow records created
	ritms   int // request items created
	// stalls measures how long the machine stopped running the demo: the
	// on-time checks allow for it (package stallwatch).
	stalls *stallwatch.Watch
	// ledger is what the compliance step saw (compliance.go).
	ledger ledgerSeen
	// forced is the ledger of the critical change after its deadline.
	forced ledger.Ledger
}

// cleanup stops everything the demo started. The logs stay: in LogDir,
// or, after a failure, in the temporary directory, whose path the error
// names.
func (d *run) cleanup(failed bool) {
	d.stopServe()
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
	if d.dir == "" {
		return
	}
	if failed && d.opts.LogDir == "" {
		fmt.Fprintf(d.opts.Out, "\nThe demo's files (serve.log, schedules.yaml) are kept in %s.\n", d.dir)
		return
	}
	_ = os.RemoveAll(d.dir)
}

func (d *run) setUp(ctx context.Context) error {
	if err := d.prepare(ctx); err != nil {
		return err
	}
	d.plan = newScenario()
	seed, err := estate.ParseSeed([]byte(d.plan.seed))
	if err != nil {
		return fmt.Errorf("demo: seed: %w", err)
	}
	d.est, err = estate.Start(ctx, estate.Options{Seed: seed, ScheduleCollections: append(d.plan.collections(), forcedCollection)})
	if err != nil {
		return fmt.Errorf("demo: simulated estate: %w", err)
	}
	d.closers = append(d.closers, func() { d.est.Close() })
	d.tl.line("DEMO", "simulated estate up: SCCM site and SCOM management group over WinRM/HTTPS at %s, ServiceNow at %s",
		d.est.SCCMEndpoint(), d.est.ServiceNowURL())

	// serve starts with every window parked far ahead; the real windows,
	// seconds apart, are written once it is ready (see play).
	schedules := filepath.Join(d.dir, "schedules.yaml")
	if err := os.WriteFile(schedules, []byte(d.plan.schedules(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC))), 0o644); err != nil {
		return err
	}
	port, err := serveproc.FreePort()
	if err != nil {
		return err
	}
	d.apiURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	d.env = append(d.est.Env(),
		"AUTOPATCH_DATABASE_URL="+d.dbURL,
		"AUTOPATCH_LISTEN="+fmt.Sprintf("127.0.0.1:%d", port),
		"AUTOPATCH_SCHEDULES_FILE="+schedules,
		"AUTOPATCH_STATUS_POLL_INTERVAL=2s",
		"AUTOPATCH_COMPLIANCE_INTERVAL=2s",
		"AUTOPATCH_LOG_FORMAT=text",
		"AUTOPATCH_SHUTDOWN_TIMEOUT=10s",
		"AUTOPATCH_INCIDENT_ASSIGNMENT_GROUP=Server Operations",
		"AUTOPATCH_SCOM_WINDOW_COMPUTER=SCCM01",
		"AUTOPATCH_FORCE_COLLECTION="+forcedCollection,
		"AUTOPATCH_FORCE_WAVE_LENGTH=6s",
	)
	return d.startServe(ctx)
}

// prepare makes the demo's directory and log path and starts the
// throwaway PostgreSQL (unless Options.DatabaseURL names one).
func (d *run) prepare(ctx context.Context) error {
	var err error
	if d.dir, err = os.MkdirTemp("", "autopatch-demo-"); err != nil {
		return err
	}
	d.logPath = filepath.Join(d.dir, "serve.log")
	if d.opts.LogDir != "" {
		if err := os.MkdirAll(d.opts.LogDir, 0o755); err != nil {
			return fmt.Errorf("demo: log directory: %w", err)
		}
		d.logPath = filepath.Join(d.opts.LogDir, "serve.log")
		// One run's log at a time: a stale one would mislead.
		if err := os.Remove(d.logPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("demo: %w", err)
		}
	}

	d.dbURL = d.opts.DatabaseURL
	if d.dbURL == "" {
		d.tl.line("DEMO", "starting a throwaway PostgreSQL (initdb, pg_ctl)")
		if d.pg, err = pgtemp.Start(ctx); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		d.closers = append(d.closers, func() { d.pg.Close() })
		d.dbURL = d.pg.URL("postgres")
	} else {
		d.tl.line("DEMO", "using the database of AUTOPATCH_DATABASE_URL")
	}
	return nil
}

// startServe runs `autopatch serve` and waits until it is ready.
func (d *run) startServe(ctx context.Context) error {
	log, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(d.opts.Binary, "serve")
	cmd.Env = append(serveproc.WithoutAutopatch(os.Environ()), d.env...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("demo: start serve: %w", err)
	}
	d.serve = cmd
	d.served = make(chan error, 1)
	go func() { d.served <- cmd.Wait(); log.Close() }()
	d.tl.line("DEMO", "started `autopatch serve` (pid %d, log %s)", cmd.Process.Pid, d.logPath)
	if err := serveproc.WaitReady(ctx, d.apiURL, d.served, 60*time.Second); err != nil {
		var exited *serveproc.ExitedError
		if errors.As(err, &exited) {
			d.serve = nil
		}
		return fmt.Errorf("demo: %w; see %s", err, d.logPath)
	}
	d.tl.line("DEMO", "autopatch is ready (%s/readyz answers 200)", d.apiURL)
	return nil
}

// stopServe stops serve gracefully (SIGTERM), as an operator would.
func (d *run) stopServe() {
	if d.serve == nil {
		return
	}
	serveproc.Stop(d.serve, d.served, 20*time.Second)
	d.serve = nil
}

// send posts a webhook signed as ServiceNow's Script Include signs it.
func (d *run) send(path string, body any) (int, string, error) {
	return serveproc.PostSigned(http.DefaultClient, d.apiURL+path, d.est.WebhookSecret(), body)
}

// api reads autopatch's read API.
func (d *run) api(path string, out any) error {
	req, err := http.NewRequest(http.MethodGet, d.apiURL+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+d.est.APIToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// resume plays an operator resuming a held change through the API (what
// the ServiceNow UI action "Resume autopatch rollout" sends).
func (d *run) resume(number, reason string) error {
	body, err := json.Marshal(map[string]string{"reason": reason})
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPost, d.apiURL+"/api/v1/changes/"+number+"/resume", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+d.est.APIToken())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("resume %s: %d %s", number, resp.StatusCode, b)
	}
	return nil
}

// waitUntil waits for t, showing what it waits for and printing what the
// estate does meanwhile.
func (d *run) waitUntil(ctx context.Context, t time.Time, what string) error {
	for {
		d.tl.observe(d.est.State())
		left := time.Until(t)
		if left <= 0 {
			d.tl.setProgress("")
			return nil
		}
		d.tl.setProgress(fmt.Sprintf("%s in %.0fs", what, left.Seconds()))
		select {
		case <-ctx.Done():
			d.tl.setProgress("")
			return ctx.Err()
		case <-time.After(min(left, 200*time.Millisecond)):
		}
	}
}

// waitFor waits until cond holds or the deadline passes.
func (d *run) waitFor(ctx context.Context, deadline time.Time, what string, cond func(estate.State) bool) error {
	for {
		s := d.est.State()
		d.tl.observe(s)
		if cond(s) {
			d.tl.setProgress("")
			return nil
		}
		if time.Now().After(deadline) {
			d.tl.setProgress("")
			return fmt.Errorf("%s: did not happen by %s", what, deadline.Format("15:04:05"))
		}
		d.tl.setProgress("waiting: " + what)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

var errExpectations = errors.New("demo: expectations not met")

// checklist prints each expectation as it is checked, ok or FAIL, and
// keeps the failed ones for the demo's error.
type checklist struct {
	out    io.Writer
	failed []string
}

func newChecklist(out io.Writer) *checklist {
	fmt.Fprintln(out, "\nChecks:")
	return &checklist{out: out}
}

// expect records one expectation.
func (c *checklist) expect(ok bool, format string, args ...any) {
	mark := "ok  "
	if !ok {
		mark = "FAIL"
		c.failed = append(c.failed, fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(c.out, "  [%s] %s\n", mark, fmt.Sprintf(format, args...))
}

// err names every failed expectation, or says all went as expected.
func (c *checklist) err() error {
	if len(c.failed) > 0 {
		return fmt.Errorf("%w:\n  - %s", errExpectations, strings.Join(c.failed, "\n  - "))
	}
	fmt.Fprintln(c.out, "\nEverything expected happened.")
	return nil
}
