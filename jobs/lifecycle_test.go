package jobs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/connectors/sccm/sccmsim"
	"github.com/autopatch/autopatch/connectors/servicenow"
	"github.com/autopatch/autopatch/connectors/servicenow/servicenowsim"
	"github.com/autopatch/autopatch/connectors/winrm"
	"github.com/autopatch/autopatch/internal/config"
	"github.com/autopatch/autopatch/internal/estate"
	"github.com/autopatch/autopatch/internal/replica"
	"github.com/autopatch/autopatch/internal/schedules"
	"github.com/autopatch/autopatch/internal/stallwatch"
	"github.com/autopatch/autopatch/internal/store"
	"github.com/autopatch/autopatch/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Run(m) }

// onTime is how close to its instant a window must open or close: the
// promise of issue #6 (River alone would be up to 5 s late). The check
// adds the longest stall the machine itself imposed during the test
// (package stallwatch): time the process was not run is not autopatch's
// lateness.
const onTime = 2 * time.Second

type harness struct {
	t       testing.TB
	pool    *pgxpool.Pool
	est     *estate.Estate
	sn      *servicenowsim.Server
	deps    *Deps
	changes atomic.Int64
	clients atomic.Int64
	stalls  *stallwatch.Watch
	// forceDeadline is the deadline approveCritical gives its changes.
	forceDeadline time.Time
}

type window struct{ start, end time.Time }

// schedule builds a one-off schedule entry of the schedules file, to the
// nanosecond: BenchmarkOpen200Windows spreads starts 5 ms apart, and when
// this wrote whole seconds the file truncated every start to the second
// while the benchmark compared enables with the untruncated instants — the
// "enabled 1.7 ms before its window" of issue #13 was that, not an early
// enable (SCCM was enabled after the start the file really held).
func schedule(name, kind string, ws ...window) string {
	var parts []string
	for _, w := range ws {
		parts = append(parts, fmt.Sprintf("{start: %q, end: %q}", w.start.UTC().Format(time.RFC3339Nano), w.end.UTC().Format(time.RFC3339Nano)))
	}
	return fmt.Sprintf("  - {name: %s, collection: \"Patch - %s\", kind: %s, windows: [%s]}\n", name, name, kind, strings.Join(parts, ", "))
}

// newHarness starts the estate and the clients; load adds schedules. Tests
// take "now" after both, so windows seconds ahead are still ahead when the
// plan runs on a loaded machine.
func newHarness(t testing.TB, opts ...func(*estate.Options)) *harness {
	t.Helper()
	return newHarnessIn(t, testdb.Pool(t), "", opts...)
}

// newHarnessIn is newHarness on a given pool, whose River tables are in
// schema: a tenant's (store.OpenSchema's pool and schema, tenants_test.go),
// or the pool's search_path when empty, as newHarness has it.
func newHarnessIn(t testing.TB, pool *pgxpool.Pool, schema string, opts ...func(*estate.Options)) *harness {
	t.Helper()
	ctx := context.Background()
	var logOut io.Writer = io.Discard
	if os.Getenv("AUTOPATCH_TEST_LOG") != "" {
		logOut = os.Stderr
	}
	logger := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := &harness{t: t, pool: pool, stalls: stallwatch.Start()}
	t.Cleanup(h.stalls.Stop)

	estateOpts := estate.Options{
		Seed: estate.Seed{UpdateGroups: []string{"2026-12 Servers", "2026-12 Office"}},
	}
	for _, o := range opts {
		o(&estateOpts)
	}
	var err error
	h.est, err = estate.Start(ctx, estateOpts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.est.Close() })

	cfg := h.est.WinRMConfig()
	cfg.Timeout = 10 * time.Second
	runner, err := winrm.New(cfg, logger)
	require.NoError(t, err)

	h.sn = servicenowsim.New(servicenowsim.Options{User: "autopatch", Password: "pw"})
	srv := httptest.NewServer(h.sn)
	t.Cleanup(srv.Close)
	snClient, err := servicenow.New(servicenow.Config{URL: srv.URL, User: "autopatch", Password: "pw"}, nil, logger)
	require.NoError(t, err)

	h.deps = &Deps{
		Pool: h.pool, Logger: logger, Schedules: &schedules.Current{},
		SCCM:         sccm.New(runner, "", logger),
		ServiceNow:   snClient,
		MinRemaining: 30 * time.Minute,
		Schema:       schema,
	}
	return h
}

// load puts schedules in force (database and set) and creates their
// collections in the simulated site.
func (h *harness) load(scheduleEntries ...string) {
	h.t.Helper()
	ctx := context.Background()
	text := "schedules:\n" + strings.Join(scheduleEntries, "")
	path := h.t.TempDir() + "/schedules.yaml"
	require.NoError(h.t, writeFile(path, text))
	require.NoError(h.t, h.deps.Schedules.Load(ctx, path, &store.Store{Pool: h.pool}, h.deps.Logger))
	for _, s := range h.deps.Schedules.Get().All() {
		h.est.SCCM().AddCollection(s.Collection, 0)
	}
}

// startClient starts a River client working every queue; stop it with the
// returned function (also called at cleanup).
func (h *harness) startClient() (stop func(abrupt bool)) {
	h.t.Helper()
	// Each client is a replica of its own, with the window keeper serve
	// runs beside it.
	deps := *h.deps
	deps.ClientID = fmt.Sprintf("%s-%d", replica.NewID(), h.clients.Add(1))
	client, err := NewClient(&deps, config.Queues{Default: 4, SCCM: 2, SCOM: 1, ServiceNow: 2})
	require.NoError(h.t, err)
	require.NoError(h.t, client.Start(context.Background()))
	keeperCtx, stopKeeper := context.WithCancel(context.Background())
	keeperDone := make(chan struct{})
	go func() { defer close(keeperDone); NewWindowKeeper(&deps, client).Run(keeperCtx) }()
	var stopped atomic.Bool
	stop = func(abrupt bool) {
		if !stopped.CompareAndSwap(false, true) {
			return
		}
		stopKeeper()
		<-keeperDone
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if abrupt {
			_ = client.StopAndCancel(ctx)
			return
		}
		_ = client.Stop(ctx)
	}
	h.t.Cleanup(func() { stop(false) })
	return stop
}

// approve stores an approved change and asks for its plan, as the webhook
// does.
func (h *harness) approve(start, end time.Time, scheduleNames ...string) (number, sysID string) {
	h.t.Helper()
	return h.approveAs("normal", nil, start, end, scheduleNames...)
}

// approveAs is approve with the change's classification and its own
// deadline (nil: the classification's).
func (h *harness) approveAs(classification string, deadline *time.Time, start, end time.Time, scheduleNames ...string) (number, sysID string) {
	h.t.Helper()
	n := h.changes.Add(1)
	number = fmt.Sprintf("CHG%07d", 31000+n)
	sysID = fmt.Sprintf("%032x", 0xc0ffee00+n)
	require.NoError(h.t, h.sn.AddRecord("change_request", sysID, number))
	var names []string
	if len(scheduleNames) > 0 {
		names = scheduleNames
	}
	_, err := h.pool.Exec(context.Background(), `INSERT INTO changes (number, sys_id, state, approval, start_at, end_at, update_groups, schedules, revision,
			classification, deadline)
		VALUES ($1, $2, 'scheduled', 'approved', $3, $4, $5, $6, 1, $7, $8)`,
		number, sysID, start, end, []string{"2026-12 Servers", "2026-12 Office"}, names, classification, deadline)
	require.NoError(h.t, err)
	h.insert(PlanChangeArgs{ChangeNumber: number, Revision: 1})
	return number, sysID
}

// update changes a stored change as a new webhook version would and asks
// for the job the webhook would ask for.
func (h *harness) update(number string, set string, args func(rev int64) river.JobArgs) {
	h.t.Helper()
	var rev int64
	require.NoError(h.t, h.pool.QueryRow(context.Background(),
		`UPDATE changes SET `+set+`, revision = revision + 1 WHERE number = $1 RETURNING revision`, number).Scan(&rev))
	h.insert(args(rev))
}

func (h *harness) insert(args river.JobArgs) {
	h.t.Helper()
	// A tenant's schema, as its client has it: the search_path alone
	// would find the table, but River would notify the wrong topic and
	// the tenant's client would see the job only at its next poll.
	client, err := river.NewClient[pgx.Tx](riverDriver(h.pool), &river.Config{SkipUnknownJobCheck: true, Schema: h.deps.Schema})
	require.NoError(h.t, err)
	_, err = client.Insert(context.Background(), args, nil)
	require.NoError(h.t, err)
}

// deployments returns the simulator's deployments of a change.
func (h *harness) deployments(number string) []sccmsim.DeploymentState {
	var out []sccmsim.DeploymentState
	for _, d := range h.est.State().Deployments {
		if strings.HasPrefix(d.Name, "AP-"+number+"-") {
			out = append(out, d)
		}
	}
	return out
}

func (h *harness) states(number string) map[string]int {
	h.t.Helper()
	rows, err := h.pool.Query(context.Background(), `SELECT state, count(*) FROM deployments WHERE change_number = $1 GROUP BY state`, number)
	require.NoError(h.t, err)
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		require.NoError(h.t, rows.Scan(&s, &n))
		out[s] = n
	}
	return out
}

// waitFor polls cond until it holds; the bound only stops a broken test.
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (h *harness) notes(sysID string) string {
	var b strings.Builder
	for _, n := range h.sn.WorkNotes() {
		if n.SysID == sysID {
			b.WriteString(n.Text + "\n---\n")
		}
	}
	return b.String()
}

// requireOnTime checks a deployment was enabled exactly once and disabled
// exactly once, never before its window's start and end, and within
// onTime of them (plus the machine's own longest stall).
func (h *harness) requireOnTime(t *testing.T, d sccmsim.DeploymentState, w window) {
	t.Helper()
	require.Len(t, d.Events, 2, "%s: one enable and one disable: %+v", d.Name, d.Events)
	on, off := d.Events[0], d.Events[1]
	require.True(t, on.Enabled, d.Name)
	require.False(t, off.Enabled, d.Name)
	require.False(t, on.At.Before(w.start), "%s enabled at %s, before its window starts at %s", d.Name, on.At, w.start)
	require.False(t, off.At.Before(w.end), "%s disabled at %s, before its window ends at %s", d.Name, off.At, w.end)
	stall := h.stalls.Longest()
	require.Less(t, on.At.Sub(w.start), onTime+stall, "%s enabled %s after its start (the machine stalled up to %s)", d.Name, on.At.Sub(w.start), stall)
	require.Less(t, off.At.Sub(w.end), onTime+stall, "%s disabled %s after its end (the machine stalled up to %s)", d.Name, off.At.Sub(w.end), stall)
	t.Logf("%s: enabled %s after its start, disabled %s after its end; longest machine stall %s",
		d.Name, on.At.Sub(w.start).Round(time.Millisecond), off.At.Sub(w.end).Round(time.Millisecond), stall.Round(time.Millisecond))
}

func TestWindowsOpenAndCloseOnTime(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startClient()
	now := time.Now().Truncate(time.Second)
	auto := window{now.Add(8 * time.Second), now.Add(14 * time.Second)}
	reboot := window{now.Add(10 * time.Second), now.Add(16 * time.Second)}
	h.load(schedule("AUTO", "automatic", auto),
		schedule("REBOOT", "manual_reboot", reboot),
		schedule("BYHAND", "manual_patch", auto))
	number, sysID := h.approve(now, now.Add(time.Hour), "AUTO", "REBOOT", "BYHAND")

	h.waitFor("every deployment closed", func() bool { return h.states(number)["closed"] == 4 })
	deps := h.deployments(number)
	require.Len(t, deps, 4, "2 schedules × 2 update groups; none for manual_patch")
	for _, d := range deps {
		require.False(t, d.Deleted)
		w := auto
		if d.Collection == "Patch - REBOOT" {
			w = reboot
			require.True(t, d.SuppressRestart, "manual_reboot suppresses the restart")
		} else {
			require.Equal(t, "Patch - AUTO", d.Collection)
			require.False(t, d.SuppressRestart)
		}
		require.True(t, d.Deadline.Equal(w.start), "due at the window's start")
		h.requireOnTime(t, d, w)
	}

	// Notes are jobs of their own and may land in any order: wait for all.
	want := []string{"autopatch plan v1 for " + number, "Deadline: ", "(normal change: Patch Tuesday ", "BYHAND", "manual_patch: tracked only", "restart suppressed", "DISABLED until their window opens"}
	h.waitFor("the notes on the change", func() bool {
		notes := h.notes(sysID)
		for _, w := range want {
			if !strings.Contains(notes, w) {
				return false
			}
		}
		return strings.Count(notes, "window CLOSED") == 2 && strings.Count(notes, "window OPENED") == 2
	})
}

func TestCancelBeforeWindow(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startClient()
	now := time.Now().Truncate(time.Second)
	w := window{now.Add(25 * time.Second), now.Add(35 * time.Second)}
	h.load(schedule("AUTO", "automatic", w))
	number, sysID := h.approve(now, now.Add(time.Hour))
	h.waitFor("deployments created", func() bool { return h.states(number)["created"] == 2 })

	h.update(number, "state = 'canceled', status = 'canceled'", func(rev int64) river.JobArgs {
		return UnwindChangeArgs{ChangeNumber: number, Revision: rev}
	})
	h.waitFor("deployments deleted", func() bool { return h.states(number)["deleted"] == 2 })
	for _, d := range h.deployments(number) {
		require.True(t, d.Deleted, d.Name)
		require.Empty(t, d.Events, "%s was never enabled", d.Name)
	}
	// Notes are jobs of their own: wait for it rather than assume it.
	h.waitFor("the unwind note", func() bool {
		return strings.Contains(h.notes(sysID), "Unwound: 2 deployment(s) not yet open will be deleted")
	})
}

func TestCancelInsideWindowClosesNow(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startClient()
	now := time.Now().Truncate(time.Second)
	w := window{now.Add(8 * time.Second), now.Add(10 * time.Minute)}
	h.load(schedule("AUTO", "automatic", w))
	number, _ := h.approve(now, now.Add(time.Hour))
	h.waitFor("window open", func() bool { return h.states(number)["open"] == 2 })

	canceled := time.Now()
	h.update(number, "state = 'canceled', status = 'canceled'", func(rev int64) river.JobArgs {
		return UnwindChangeArgs{ChangeNumber: number, Revision: rev}
	})
	h.waitFor("deployments closed", func() bool { return h.states(number)["closed"] == 2 })
	for _, d := range h.deployments(number) {
		require.Len(t, d.Events, 2, d.Name)
		require.False(t, d.Events[1].Enabled)
		require.Less(t, d.Events[1].At.Sub(canceled), 10*time.Second, "closed promptly after the cancellation")
		require.False(t, d.Deleted, "open deployments are disabled, not deleted")
	}
}

func TestReplanMovesWindow(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startClient()
	now := time.Now().Truncate(time.Second)
	first := window{now.Add(30 * time.Second), now.Add(36 * time.Second)}
	second := window{now.Add(40 * time.Second), now.Add(46 * time.Second)}
	h.load(schedule("AUTO", "automatic", first, second))
	number, sysID := h.approve(now, now.Add(time.Hour))
	h.waitFor("deployments created", func() bool { return h.states(number)["created"] == 2 })

	// New dates that exclude the first window: re-plan to the second.
	h.update(number, fmt.Sprintf("start_at = '%s'", now.Add(37*time.Second).Format(time.RFC3339)), func(rev int64) river.JobArgs {
		return PlanChangeArgs{ChangeNumber: number, Revision: rev}
	})
	h.waitFor("deployments closed", func() bool { return h.states(number)["closed"] == 2 })
	deps := h.deployments(number)
	require.Len(t, deps, 2, "moved, not duplicated")
	for _, d := range deps {
		require.True(t, d.Available.Equal(second.start), "%s re-created with the new times", d.Name)
		h.requireOnTime(t, d, second)
	}
	h.waitFor("the second plan's note", func() bool { return strings.Contains(h.notes(sysID), "autopatch plan v2") })
}

// TestClientStoppedInsideWindow stops the only River client abruptly while a
// window is open and starts a new one: the window still closes on time and
// nothing happens twice.
func TestClientStoppedInsideWindow(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	stop := h.startClient()
	now := time.Now().Truncate(time.Second)
	w := window{now.Add(8 * time.Second), now.Add(18 * time.Second)}
	h.load(schedule("AUTO", "automatic", w))
	number, _ := h.approve(now, now.Add(time.Hour))
	h.waitFor("window open", func() bool { return h.states(number)["open"] == 2 })
	stop(true)
	h.startClient()

	h.waitFor("deployments closed", func() bool { return h.states(number)["closed"] == 2 })
	for _, d := range h.deployments(number) {
		h.requireOnTime(t, d, w)
	}
}

// TestTwoClients runs two replicas on one database: each deployment is
// created once, enabled once and disabled once.
func TestTwoClients(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startClient()
	h.startClient()
	now := time.Now().Truncate(time.Second)
	w := window{now.Add(8 * time.Second), now.Add(14 * time.Second)}
	h.load(schedule("AUTO", "automatic", w), schedule("MORE", "automatic", w))
	number, _ := h.approve(now, now.Add(time.Hour))

	h.waitFor("deployments closed", func() bool { return h.states(number)["closed"] == 4 })
	deps := h.deployments(number)
	require.Len(t, deps, 4)
	for _, d := range deps {
		h.requireOnTime(t, d, w)
	}
	calls := h.est.SCCM().CallsByTemplate()
	require.Equal(t, 1, calls[sccm.CreateDeploymentsTemplate], "one creation batch for the change")
}

// TestSCCMUnreachableAtStart: the site server is down when the window
// starts. Back soon enough: the window opens late. Back too late: the window
// is missed, never enabled, and noted on the change.
func TestSCCMUnreachableAtStart(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		length   time.Duration // the window; half of it must be left to open
		downFor  time.Duration // after the start
		wantOpen bool
	}{
		{"OpensLate", 24 * time.Second, 3 * time.Second, true},
		{"Missed", 8 * time.Second, 6 * time.Second, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.startClient()
			now := time.Now().Truncate(time.Second)
			w := window{now.Add(10 * time.Second), now.Add(10*time.Second + tt.length)}
			h.load(schedule("AUTO", "automatic", w))
			number, sysID := h.approve(now, now.Add(time.Hour))
			h.waitFor("deployments created", func() bool { return h.states(number)["created"] == 2 })

			h.est.SetWinRMDown(true)
			time.Sleep(time.Until(w.start.Add(tt.downFor)))
			h.est.SetWinRMDown(false)

			if tt.wantOpen {
				h.waitFor("deployments closed", func() bool { return h.states(number)["closed"] == 2 })
				for _, d := range h.deployments(number) {
					require.Len(t, d.Events, 2, d.Name)
					require.False(t, d.Events[0].At.Before(w.start.Add(tt.downFor)), "opened once SCCM was back")
					require.False(t, d.Events[1].At.Before(w.end))
				}
				return
			}
			h.waitFor("window missed", func() bool { return h.states(number)["missed"] == 2 })
			time.Sleep(time.Until(w.end.Add(time.Second)))
			for _, d := range h.deployments(number) {
				requireNeverEnabled(t, d)
			}
			h.waitFor("the missed note", func() bool { return strings.Contains(h.notes(sysID), "window MISSED") })
		})
	}
}

func riverDriver(pool *pgxpool.Pool) *riverpgxv5.Driver { return riverpgxv5.New(pool) }

func writeFile(path, text string) error { return os.WriteFile(path, []byte(text), 0o600) }

// requireNeverEnabled: a missed window's deployment is never enabled. It may
// be disabled once more: the keeper disables a missed window in case a
// process killed between its enable and its commit had enabled it.
func requireNeverEnabled(t *testing.T, d sccmsim.DeploymentState) {
	t.Helper()
	for _, e := range d.Events {
		require.False(t, e.Enabled, "%s was enabled at %s; a missed window never is", d.Name, e.At)
	}
}

// TestEmergencyPlacedBeforeDeadline: an emergency change whose schedules
// have no window before its deadline gets the first slot before it for each
// schedule that fits (inside the change, one after another), and the plan
// note says which windows were added and why, and which devices cannot be
// patched before the deadline — never placed early or outside the change.
func TestEmergencyPlacedBeforeDeadline(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startClient()
	ctx := context.Background()
	recurring := func(name, duration string) string {
		return fmt.Sprintf("  - {name: %s, collection: \"Patch - %s\", timezone: UTC, recurrence: {anchor: patch_tuesday, offset_days: 20}, start: \"03:00\", duration: %s}\n", name, name, duration)
	}
	h.load(recurring("QUICK", "15m"), recurring("SLOW", "4h"))
	_, err := h.pool.Exec(ctx, `INSERT INTO devices (name, schedule_name, service, tier) VALUES
		('SLOW01', 'SLOW', 'Ledger', 'backend'), ('SLOW02', 'SLOW', 'Ledger', 'backend')`)
	require.NoError(t, err)

	// An hour from now, for a day; its deadline an hour after its start:
	// QUICK's 15 min slot fits before it, SLOW's 4 h one cannot.
	start := time.Now().Add(time.Hour).Truncate(time.Second).UTC()
	deadline := start.Add(time.Hour)
	number, sysID := "CHG0039001", fmt.Sprintf("%032x", 0xe3e3)
	require.NoError(t, h.sn.AddRecord("change_request", sysID, number))
	_, err = h.pool.Exec(ctx, `INSERT INTO changes (number, sys_id, state, approval, start_at, end_at, update_groups, schedules, revision, classification, deadline)
		VALUES ($1, $2, 'scheduled', 'approved', $3, $4, $5, $6, 1, 'emergency', $7)`,
		number, sysID, start, start.Add(24*time.Hour), []string{"2026-12 Servers"}, []string{"QUICK", "SLOW"}, deadline)
	require.NoError(t, err)
	h.insert(PlanChangeArgs{ChangeNumber: number, Revision: 1})

	h.waitFor("the plan note", func() bool { return strings.Contains(h.notes(sysID), "autopatch plan v1") })
	note := h.notes(sysID)
	t.Log(note)
	require.Contains(t, note, "Deadline: "+deadline.Format("2006-01-02 15:04")+" UTC (emergency change, deadline given by the change)")
	require.Contains(t, note, "Emergency windows added")
	require.Contains(t, note, "- QUICK: emergency: its schedule has no window in the change before the deadline")
	require.Contains(t, note, "- SLOW: emergency: no slot of 4h0m0s before the deadline")
	require.Contains(t, note, "devices not patched before the deadline (2): SLOW01, SLOW02")

	var ws, we time.Time
	require.NoError(t, h.pool.QueryRow(ctx, `SELECT window_start, window_end FROM deployments WHERE change_number = $1 AND schedule_name = 'QUICK'`,
		number).Scan(&ws, &we))
	require.True(t, ws.Equal(start), "the first slot: at the change's start, %s", ws)
	require.True(t, we.Equal(start.Add(15*time.Minute)))
	require.False(t, we.After(deadline), "ends by the deadline")
	var slow int
	require.NoError(t, h.pool.QueryRow(ctx, `SELECT count(*) FROM deployments WHERE change_number = $1 AND schedule_name = 'SLOW'`, number).Scan(&slow))
	require.Zero(t, slow, "no window after the deadline, none early")
}
