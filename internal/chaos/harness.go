// Package chaos is the crash suite of issue #13 (`make chaos`): it runs
// the real `autopatch serve` binary as one to three child processes against
// one throwaway PostgreSQL and one simulated estate, crashes and disturbs
// them at random points of a change's lifecycle (SIGKILL, a dead replica,
// PostgreSQL restarted, WinRM or ServiceNow unavailable), and judges the
// outcome only from the simulator's state and the database, so that it holds
// whatever the implementation of windows and failover is.
package chaos

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/autopatch/autopatch/internal/estate"
	"github.com/autopatch/autopatch/internal/pgtemp"
	"github.com/autopatch/autopatch/internal/serveproc"
	"github.com/autopatch/autopatch/internal/stallwatch"
)

// Schedules: two, so a change has two windows a few seconds apart.
var scheduleNames = []string{"S1", "S2"}

func collection(schedule string) string { return "Patch - Chaos - " + schedule }

// updateGroup is the one software update group every change deploys.
const updateGroup = "2026-12 Servers"

// seed: per schedule a device that succeeds, one that fails and one that
// never reports (S2: one that fails then recovers), and the site server SCOM
// raises window alerts on.
const seed = `
update_groups: ["2026-12 Servers"]
latency: 30ms
devices:
  - {name: S1-OK}
  - {name: S1-FAIL, outcome: "error 0x80240022"}
  - {name: S1-SILENT, outcome: silent}
  - {name: S2-OK}
  - {name: S2-FLAKY, outcome: "error 0x8024402C then success"}
  - {name: S2-SILENT, outcome: silent}
  - {name: SCCM01}
`

// window is one one-off window of a schedule.
type window struct {
	schedule   string
	start, end time.Time
}

// interval is a time span [from, to); a zero to means "still".
type interval struct{ from, to time.Time }

func (iv interval) holds(t time.Time) bool {
	return !t.Before(iv.from) && (iv.to.IsZero() || t.Before(iv.to))
}

// replica is one slot for an `autopatch serve` child process.
type replica struct {
	n      int
	apiURL string
	cmd    *exec.Cmd
	done   chan error
	// started is when the process was started.
	started time.Time
	// up are the spans from /readyz answering 200 to the process's end.
	up []interval
}

func (r *replica) alive() bool { return r.cmd != nil }

// Harness owns the database, the estate and the replicas, and records
// everything it did with its time, for the invariants.
type Harness struct {
	out    io.Writer
	binary string
	dir    string
	pg     *pgtemp.Cluster
	dbURL  string
	est    *estate.Estate
	env    []string
	stalls *stallwatch.Watch

	replicas []*replica
	// watch is the connection holder polls on, kept open so that it can
	// look every few milliseconds (an open takes tens of them).
	watch *pgx.Conn

	mu      sync.Mutex
	windows []window
	// pgDown, winrmDown and snowDown are the spans the harness made
	// PostgreSQL, WinRM or ServiceNow unavailable.
	pgDown, winrmDown, snowDown []interval
	kills                       []kill
}

// kill is one SIGKILL (or PostgreSQL restart) the harness did.
type kill struct {
	at      time.Time
	replica int // -1: PostgreSQL
}

// HarnessOptions configure NewHarness.
type HarnessOptions struct {
	// Binary is the autopatch executable run as `serve`.
	Binary string
	// Replicas is how many replica slots exist (1–3).
	Replicas int
	// Out receives progress lines; nil discards.
	Out io.Writer
}

// NewHarness starts PostgreSQL and the estate and assigns the seed's
// devices to the schedules through one replica; the caller closes it.
func NewHarness(ctx context.Context, opts HarnessOptions) (*Harness, error) {
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	h := &Harness{out: opts.Out, binary: opts.Binary, stalls: stallwatch.Start()}
	ok := false
	defer func() {
		if !ok {
			h.Close()
		}
	}()
	var err error
	if h.dir, err = os.MkdirTemp("", "autopatch-chaos-"); err != nil {
		return nil, err
	}
	if h.pg, err = pgtemp.Start(ctx); err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	h.dbURL = h.pg.URL("postgres")
	sd, err := estate.ParseSeed([]byte(seed))
	if err != nil {
		return nil, fmt.Errorf("chaos: seed: %w", err)
	}
	var cols []string
	for _, s := range scheduleNames {
		cols = append(cols, collection(s))
	}
	if h.est, err = estate.Start(ctx, estate.Options{Seed: sd, ScheduleCollections: cols}); err != nil {
		return nil, fmt.Errorf("chaos: estate: %w", err)
	}
	h.env = append(h.est.Env(),
		"AUTOPATCH_DATABASE_URL="+h.dbURL,
		"AUTOPATCH_SCHEDULES_FILE="+h.schedulesPath(),
		"AUTOPATCH_STATUS_POLL_INTERVAL=2s",
		"AUTOPATCH_LOG_FORMAT=text",
		"AUTOPATCH_SHUTDOWN_TIMEOUT=5s",
		"AUTOPATCH_INCIDENT_ASSIGNMENT_GROUP=Server Operations",
		"AUTOPATCH_SCOM_WINDOW_COMPUTER=SCCM01",
		// The crash suite judges window keeping: every window that starts
		// while autopatch is up must open. Its seed fails most of S1, which
		// rollout control (issue #16) would rightly take as a bad month
		// and hold S2; a budget no failure count can exceed keeps S2 open.
		"AUTOPATCH_ERROR_BUDGET=100%",
	)
	if err := h.writeSchedules(); err != nil {
		return nil, err
	}
	for i := range max(1, min(opts.Replicas, 3)) {
		port, err := serveproc.FreePort()
		if err != nil {
			return nil, err
		}
		h.replicas = append(h.replicas, &replica{n: i, apiURL: fmt.Sprintf("http://127.0.0.1:%d", port)})
	}
	if err := h.Start(ctx, 0); err != nil {
		return nil, err
	}
	if err := h.assignDevices(ctx); err != nil {
		return nil, err
	}
	ok = true
	return h, nil
}

// Close stops every replica, the estate and PostgreSQL.
func (h *Harness) Close() {
	for _, r := range h.replicas {
		if r.alive() {
			_ = r.cmd.Process.Kill()
			<-r.done
		}
	}
	if h.est != nil {
		_ = h.est.Close()
	}
	if h.watch != nil {
		_ = h.watch.Close(context.Background())
	}
	if h.pg != nil {
		_ = h.pg.Close()
	}
	if h.dir != "" {
		_ = os.RemoveAll(h.dir)
	}
	h.stalls.Stop()
}

func (h *Harness) logf(format string, args ...any) {
	fmt.Fprintf(h.out, "    %s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05.000")}, args...)...)
}

func (h *Harness) schedulesPath() string { return filepath.Join(h.dir, "schedules.yaml") }

// writeSchedules writes every window so far as one-off windows; windows
// only ever get added, so a replica started at any time sees them all.
func (h *Harness) writeSchedules() error {
	h.mu.Lock()
	var b strings.Builder
	b.WriteString("schedules:\n")
	for _, s := range scheduleNames {
		fmt.Fprintf(&b, "  - name: %s\n    collection: %q\n    kind: automatic\n    windows:\n", s, collection(s))
		n := 0
		for _, w := range h.windows {
			if w.schedule == s {
				fmt.Fprintf(&b, "      - {start: %q, end: %q}\n", w.start.UTC().Format(time.RFC3339), w.end.UTC().Format(time.RFC3339))
				n++
			}
		}
		if n == 0 { // a schedule needs a window: one parked far ahead
			b.WriteString("      - {start: \"2099-01-01T00:00:00Z\", end: \"2099-01-01T01:00:00Z\"}\n")
		}
	}
	h.mu.Unlock()
	// Renamed into place so serve never reads half a file.
	tmp := h.schedulesPath() + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, h.schedulesPath())
}

// AddWindows puts windows in force: the file, then SIGHUP to every live
// replica, then waits until each one's read API shows the last of them.
func (h *Harness) AddWindows(ctx context.Context, ws ...window) error {
	h.mu.Lock()
	h.windows = append(h.windows, ws...)
	h.mu.Unlock()
	if err := h.writeSchedules(); err != nil {
		return err
	}
	last := ws[len(ws)-1]
	for _, r := range h.replicas {
		if !r.alive() {
			continue
		}
		if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			return err
		}
		path := fmt.Sprintf("/api/v1/schedules/%s/windows?from=%s", last.schedule, last.start.Add(-time.Second).UTC().Format(time.RFC3339))
		want := `"start_utc":"` + last.start.UTC().Format(time.RFC3339) + `"`
		if err := h.waitFor(ctx, 10*time.Second, "replica reloaded its schedules", func() bool {
			body, err := h.get(r.apiURL + path)
			return err == nil && strings.Contains(body, want)
		}); err != nil {
			return fmt.Errorf("chaos: replica %d: %w", r.n, err)
		}
	}
	return nil
}

func (h *Harness) get(url string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+h.est.APIToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %d", url, resp.StatusCode)
	}
	return string(b), nil
}

func (h *Harness) waitFor(ctx context.Context, limit time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s", what, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// Start runs replica n and waits until its /readyz answers 200: from then
// on it counts as up.
func (h *Harness) Start(ctx context.Context, n int) error {
	r := h.replicas[n]
	if r.alive() {
		return nil
	}
	log, err := os.OpenFile(filepath.Join(h.dir, fmt.Sprintf("serve-%d.log", n)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(h.binary, "serve")
	cmd.Env = append(serveproc.WithoutAutopatch(os.Environ()), h.env...)
	cmd.Env = append(cmd.Env, "AUTOPATCH_LISTEN="+strings.TrimPrefix(r.apiURL, "http://"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("chaos: start replica %d: %w", n, err)
	}
	h.mu.Lock()
	r.cmd, r.done, r.started = cmd, make(chan error, 1), time.Now()
	h.mu.Unlock()
	go func() { r.done <- cmd.Wait(); log.Close() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := h.get(r.apiURL + "/readyz"); err == nil {
			h.mu.Lock()
			r.up = append(r.up, interval{from: time.Now()})
			h.mu.Unlock()
			h.logf("replica %d up (pid %d)", n, cmd.Process.Pid)
			return nil
		}
		select {
		case err := <-r.done:
			r.cmd = nil
			return fmt.Errorf("chaos: replica %d exited during start-up (%v); see %s", n, err, log.Name())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chaos: replica %d not ready after 60s", n)
		}
	}
}

// Kill SIGKILLs replica n: no shutdown, as a crashed host.
func (h *Harness) Kill(n int) {
	r := h.replicas[n]
	if !r.alive() {
		return
	}
	_ = r.cmd.Process.Kill()
	at := time.Now()
	<-r.done
	h.down(r, at)
	h.mu.Lock()
	h.kills = append(h.kills, kill{at: at, replica: n})
	h.mu.Unlock()
	h.logf("replica %d SIGKILLed", n)
}

// Stop stops replica n as an operator does (SIGTERM): not a crash.
func (h *Harness) Stop(n int) {
	r := h.replicas[n]
	if !r.alive() {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	at := time.Now()
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	h.down(r, at)
	h.logf("replica %d stopped (SIGTERM)", n)
}

func (h *Harness) down(r *replica, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r.cmd = nil
	if k := len(r.up) - 1; k >= 0 && r.up[k].to.IsZero() {
		r.up[k].to = at
	}
}

// Alive lists the replicas running now.
func (h *Harness) Alive() []int {
	var out []int
	for _, r := range h.replicas {
		if r.alive() {
			out = append(out, r.n)
		}
	}
	return out
}

// RestartPostgres stops PostgreSQL (fast shutdown: sessions cut) and starts
// it again, as `pg_ctl restart` does.
func (h *Harness) RestartPostgres(ctx context.Context) error {
	from := time.Now()
	err := h.pg.StopServer(ctx)
	if err == nil {
		err = h.pg.StartServer(ctx)
	}
	h.mu.Lock()
	h.pgDown = append(h.pgDown, interval{from: from, to: time.Now()})
	h.kills = append(h.kills, kill{at: from, replica: -1})
	h.mu.Unlock()
	h.logf("PostgreSQL restarted (down %s)", time.Since(from).Round(time.Millisecond))
	if err != nil {
		return fmt.Errorf("chaos: restart PostgreSQL: %w", err)
	}
	return nil
}

// Fault makes WinRM or ServiceNow ("winrm", "servicenow") unavailable for
// d through the estate's control API, as an outside tool would.
func (h *Harness) Fault(system string, d time.Duration) error {
	body := fmt.Sprintf(`{%q:"down","for":%q}`, system, d.String())
	resp, err := http.Post(h.est.ControlURL()+"/fault", "application/json", strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("chaos: fault: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("chaos: fault: %s", resp.Status)
	}
	now := time.Now()
	h.mu.Lock()
	iv := interval{from: now, to: now.Add(d)}
	if system == "winrm" {
		h.winrmDown = append(h.winrmDown, iv)
	} else {
		h.snowDown = append(h.snowDown, iv)
	}
	h.mu.Unlock()
	h.logf("%s unavailable for %s", system, d)
	return nil
}

// send delivers a signed webhook to a live replica (the first that
// answers), as ServiceNow retries against a load balancer.
func (h *Harness) send(path string, body any) (int, string, error) {
	var lastErr error
	for _, n := range h.Alive() {
		code, resp, err := serveproc.PostSigned(http.DefaultClient, h.replicas[n].apiURL+path, h.est.WebhookSecret(), body)
		if err == nil {
			return code, resp, nil
		}
		lastErr = err
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("no replica is running")
	}
	return 0, "", lastErr
}

// assignDevices plays the owners' "Automated Patching" requests: every
// device to its schedule, one service each so service safety never holds
// any of them back.
func (h *Harness) assignDevices(ctx context.Context) error {
	for i, s := range scheduleNames {
		var devices []map[string]string
		for _, d := range []string{"OK", "FAIL", "FLAKY", "SILENT"} {
			name := s + "-" + d
			if !h.hasDevice(name) {
				continue
			}
			devices = append(devices, map[string]string{"name": name, "service": "Svc " + name, "tier": "backend"})
		}
		number, sysID := fmt.Sprintf("RITM%07d", 1+i), fmt.Sprintf("a%031x", 1+i)
		if err := h.est.ServiceNow().AddRecord("sc_req_item", sysID, number); err != nil {
			return err
		}
		code, body, err := h.send("/webhooks/servicenow/schedule-request", map[string]any{
			"event_id": "sc_req_item:" + sysID + ":1", "request_item": map[string]any{"number": number, "sys_id": sysID},
			"requested_for": "jane.doe", "schedule": s, "devices": devices,
		})
		if err == nil && code != http.StatusAccepted {
			err = fmt.Errorf("%d %s", code, body)
		}
		if err != nil {
			return fmt.Errorf("chaos: schedule request %s: %w", number, err)
		}
	}
	return h.waitFor(ctx, 30*time.Second, "devices in their collections", func() bool {
		n := 0
		for _, c := range h.est.State().Collections {
			n += len(c.Members)
		}
		return n == 6
	})
}

func (h *Harness) hasDevice(name string) bool { return strings.Contains(seed, "{name: "+name) }

// change is one change request the harness approved.
type change struct {
	number, sysID string
	windows       []window
	accepted      time.Time // when serve answered 202; zero if it did not
	status        int
}

// Approve creates the change in the simulated ServiceNow and delivers its
// approval; the change spans exactly its windows.
func (h *Harness) Approve(c *change) error {
	if err := h.est.ServiceNow().AddRecord("change_request", c.sysID, c.number); err != nil {
		return err
	}
	start, end := c.windows[0].start.Add(-time.Second), c.windows[len(c.windows)-1].end.Add(time.Second)
	var scheds []string
	for _, w := range c.windows {
		scheds = append(scheds, w.schedule)
	}
	code, body, err := h.send("/webhooks/servicenow/change", map[string]any{
		"event_id": "change_request:" + c.sysID + ":1",
		"change": map[string]any{
			"number": c.number, "sys_id": c.sysID, "type": "normal", "state": "scheduled", "approval": "approved",
			"start_date": start.UTC().Format("2006-01-02 15:04:05"), "end_date": end.UTC().Format("2006-01-02 15:04:05"),
			"short_description": "Chaos patching", "sys_updated_on": time.Now().UTC().Format("2006-01-02 15:04:05"),
		},
		"patching": map[string]any{"software_update_groups": []string{updateGroup}, "schedules": scheds},
	})
	c.status = code
	if err != nil {
		return fmt.Errorf("chaos: approve %s: %w", c.number, err)
	}
	if code != http.StatusAccepted {
		return fmt.Errorf("chaos: approve %s: %d %s", c.number, code, body)
	}
	c.accepted = time.Now()
	h.logf("%s approved (202)", c.number)
	return nil
}

// changeStatus reads a change's status from the database ("" if absent).
func (h *Harness) changeStatus(ctx context.Context, number string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, h.dbURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var status string
	err = conn.QueryRow(ctx, `SELECT status FROM changes WHERE number = $1`, number).Scan(&status)
	if err == pgx.ErrNoRows {
		return "", nil
	}
	return status, err
}
