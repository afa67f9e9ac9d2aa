package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/sccm/sccmsim"
	"github.com/autopatch/autopatch/connectors/servicenow"
	"github.com/autopatch/autopatch/internal/estate"
	"github.com/autopatch/autopatch/internal/rollout"
	"github.com/autopatch/autopatch/internal/stallwatch"
	"github.com/autopatch/autopatch/internal/store"
)

// member is a device of one schedule's collection, with its service and
// tier as a schedule request would have recorded them.
type member struct {
	name, service, tier string
}

// newRolloutHarness is the failure harness with an error budget.
func newRolloutHarness(t *testing.T, budget string, devices []estate.SeedDevice) *harness {
	t.Helper()
	h := newFailureHarness(t, failureOptions{devices: devices})
	b, err := rollout.ParseBudget(budget)
	require.NoError(t, err)
	h.deps.ErrorBudget = &b
	// These tests check windows open on time: allow for the machine's
	// own stalls, as the lifecycle tests do.
	h.stalls = stallwatch.Start()
	t.Cleanup(h.stalls.Stop)
	return h
}

// members puts devices into one schedule's collection and autopatch's
// device records.
func (h *harness) members(schedule string, ms ...member) {
	h.t.Helper()
	for _, m := range ms {
		require.NoError(h.t, h.est.SCCM().AddMember("Patch - "+schedule, m.name))
		var service, tier *string
		if m.service != "" {
			service, tier = &m.service, &m.tier
		}
		_, err := h.pool.Exec(context.Background(), `INSERT INTO devices (name, schedule_name, service, tier) VALUES ($1, $2, $3, $4)`,
			m.name, schedule, service, tier)
		require.NoError(h.t, err)
	}
}

// of returns the simulator's deployments of a change in schedule's collection.
func (h *harness) of(number, schedule string) []sccmsim.DeploymentState {
	var out []sccmsim.DeploymentState
	for _, d := range h.deployments(number) {
		if d.Collection == "Patch - "+schedule {
			out = append(out, d)
		}
	}
	return out
}

// scheduleStates counts a schedule's deployments of a change by state.
func (h *harness) scheduleStates(number, schedule string) map[string]int {
	h.t.Helper()
	rows, err := h.pool.Query(context.Background(), `SELECT state, count(*) FROM deployments
		WHERE change_number = $1 AND schedule_name = $2 GROUP BY state`, number, schedule)
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

func (h *harness) holds(number string) []store.Hold {
	h.t.Helper()
	hs, err := store.ChangeHolds(context.Background(), h.pool, number)
	require.NoError(h.t, err)
	return hs
}

// resume does what POST /api/v1/changes/{number}/resume does.
func (h *harness) resume(number, reason string) {
	h.t.Helper()
	ctx := context.Background()
	client, err := river.NewClient[pgx.Tx](riverDriver(h.pool), &river.Config{SkipUnknownJobCheck: true})
	require.NoError(h.t, err)
	at := time.Now()
	require.NoError(h.t, pgx.BeginFunc(ctx, h.pool, func(tx pgx.Tx) error {
		if _, err := store.Resume(ctx, tx, number, reason, "api", at); err != nil {
			return err
		}
		_, err := client.InsertTx(ctx, tx, HoldChangeArgs{ChangeNumber: number, Resume: reason, Key: at.Format(time.RFC3339Nano)}, nil)
		return err
	}))
}

// setOnHold does what a change webhook whose On hold changed does.
func (h *harness) setOnHold(number string, onHold bool) {
	h.t.Helper()
	_, err := h.pool.Exec(context.Background(), `UPDATE changes SET on_hold = $2 WHERE number = $1`, number, onHold)
	require.NoError(h.t, err)
	h.insert(HoldChangeArgs{ChangeNumber: number, Pause: true, Key: fmt.Sprint(time.Now().UnixNano())})
}

// requireHaltReported: the halt has one SCOM alert and one incident, linked.
func (h *harness) requireHaltReported(t *testing.T, number string) store.Failure {
	t.Helper()
	var halt store.Failure
	h.waitFor("the halt's alert and incident", func() bool {
		for _, f := range h.failures(number) {
			if f.Kind == store.FailureHalt {
				halt = f
				return f.AlertID != "" && f.IncidentSysID != "" && f.AlertTicket == f.IncidentNumber
			}
		}
		return false
	})
	s := h.wireState()
	key := servicenow.CorrelationID(number, "halt:"+halt.Subject)
	require.Equal(t, key, halt.CorrelationID)
	incs := incidentByCorrelation(s, key)
	require.Len(t, incs, 1, "one incident for the halt")
	require.Contains(t, incs[0].ShortDescription, "halted")
	alerts := alertByKey(s, key)
	require.Len(t, alerts, 1, "one SCOM alert for the halt")
	require.True(t, strings.HasPrefix(strings.ToUpper(alerts[0].Computer), windowComputer), "on the window computer: %s", alerts[0].Computer)
	return halt
}

// TestErrorBudget runs a change of three windows whose first has three
// failing devices among five. A budget of 3 is not exceeded (it holds at
// the 4th failure): every window opens. A budget of 2 is: the second and
// third windows are held and never enabled — not even once their time has
// passed — with one work note naming the failures, one SCOM alert and one
// incident.
func TestErrorBudget(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		budget string
		halt   bool
	}{
		{"AtN", "3", false},
		{"AtNPlusOne", "2", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			first := []estate.SeedDevice{
				{Name: "SQL01", Outcome: "error 0x80240022"},
				{Name: "SQL02", Outcome: "error 0x80070643"},
				{Name: "SQL03", Outcome: "silent"},
				{Name: "SQL04"}, {Name: "SQL05"},
			}
			later := []estate.SeedDevice{{Name: "APP01"}, {Name: "WEB01"}}
			h := newRolloutHarness(t, tt.budget, append(append([]estate.SeedDevice{}, first...), later...))
			h.startClient()
			now := time.Now().Truncate(time.Second)
			w1 := window{now.Add(8 * time.Second), now.Add(14 * time.Second)}
			w2 := window{now.Add(24 * time.Second), now.Add(30 * time.Second)}
			w3 := window{now.Add(32 * time.Second), now.Add(38 * time.Second)}
			h.load(schedule("FIRST", "automatic", w1), schedule("SECOND", "automatic", w2), schedule("THIRD", "automatic", w3))
			for _, d := range first {
				h.members("FIRST", member{name: d.Name})
			}
			h.members("SECOND", member{name: "APP01"})
			h.members("THIRD", member{name: "WEB01"})
			number, sysID := h.approve(now, now.Add(time.Hour), "FIRST", "SECOND", "THIRD")

			if !tt.halt {
				h.waitFor("every window closed", func() bool { return h.states(number)["closed"] == 6 })
				for _, d := range h.of(number, "SECOND") {
					h.requireOnTime(t, d, w2)
				}
				for _, d := range h.of(number, "THIRD") {
					h.requireOnTime(t, d, w3)
				}
				require.Empty(t, h.holds(number))
				for _, f := range h.failures(number) {
					require.NotEqual(t, store.FailureHalt, f.Kind)
				}
				return
			}

			h.waitFor("the later windows held", func() bool {
				s := h.states(number)
				return s["held"] == 4 && s["closed"] == 2
			})
			// Past the third window's end: nothing was ever enabled.
			time.Sleep(time.Until(w3.end.Add(2 * time.Second)))
			require.Equal(t, 4, h.states(number)["held"])
			for _, schedule := range []string{"SECOND", "THIRD"} {
				ds := h.of(number, schedule)
				require.Len(t, ds, 2)
				for _, d := range ds {
					requireNeverEnabled(t, d)
				}
			}
			holds := h.holds(number)
			require.Len(t, holds, 1)
			require.Equal(t, store.HoldBudget, holds[0].Kind)
			require.True(t, holds[0].Active())
			require.Contains(t, holds[0].Reason, "3 failure(s)")

			halt := h.requireHaltReported(t, number)
			require.Contains(t, halt.Message, "more than the budget of 2 failures")
			notes := h.notes(sysID)
			require.Equal(t, 1, strings.Count(notes, "HALTED"), "one halt note: %s", notes)
			for _, want := range []string{"SQL01", "0x80240022", "SQL02", "SQL03", "no status", "AP-" + number + "-SECOND", "AP-" + number + "-THIRD"} {
				require.Contains(t, notes, want)
			}
			require.NotContains(t, notes, "SQL04")
		})
	}
}

// TestOpenWindowStaysOpenWhenHalted: the budget is exceeded by a window
// that closes while another, longer window of the change is open: the open
// one stays open to its end (the note says so), the later one is held.
func TestOpenWindowStaysOpenWhenHalted(t *testing.T) {
	t.Parallel()
	h := newRolloutHarness(t, "0", []estate.SeedDevice{{Name: "SQL01", Outcome: "error 0x80240022"}, {Name: "APP01"}, {Name: "WEB01"}})
	h.startClient()
	now := time.Now().Truncate(time.Second)
	short := window{now.Add(8 * time.Second), now.Add(12 * time.Second)}
	long := window{now.Add(9 * time.Second), now.Add(24 * time.Second)}
	later := window{now.Add(28 * time.Second), now.Add(32 * time.Second)}
	h.load(schedule("SHORT", "automatic", short), schedule("LONG", "automatic", long), schedule("LATER", "automatic", later))
	h.members("SHORT", member{name: "SQL01"})
	h.members("LONG", member{name: "APP01"})
	h.members("LATER", member{name: "WEB01"})
	number, sysID := h.approve(now, now.Add(time.Hour), "SHORT", "LONG", "LATER")

	h.waitFor("the long window closed", func() bool { return h.scheduleStates(number, "LONG")["closed"] == 2 })
	require.Equal(t, 2, h.scheduleStates(number, "LATER")["held"])
	for _, d := range h.of(number, "LONG") {
		h.requireOnTime(t, d, long)
	}
	h.waitFor("the halt note", func() bool { return strings.Contains(h.notes(sysID), "HALTED") })
	require.Contains(t, h.notes(sysID), "left open to the end of their window")
	time.Sleep(time.Until(later.end.Add(time.Second)))
	for _, d := range h.of(number, "LATER") {
		requireNeverEnabled(t, d)
	}
}

// TestResumeAfterHalt: a halted change is resumed; its next window opens
// on time, the halt's alert and incident close, the budget applies afresh
// (the next windows succeed, so the last one opens too), and the history
// shows the hold and its release with their reasons.
func TestResumeAfterHalt(t *testing.T) {
	t.Parallel()
	h := newRolloutHarness(t, "0", []estate.SeedDevice{{Name: "SQL01", Outcome: "error 0x80240022"}, {Name: "APP01"}, {Name: "WEB01"}})
	h.startClient()
	now := time.Now().Truncate(time.Second)
	w1 := window{now.Add(8 * time.Second), now.Add(12 * time.Second)}
	w2 := window{now.Add(24 * time.Second), now.Add(28 * time.Second)}
	w3 := window{now.Add(34 * time.Second), now.Add(38 * time.Second)}
	h.load(schedule("FIRST", "automatic", w1), schedule("SECOND", "automatic", w2), schedule("THIRD", "automatic", w3))
	h.members("FIRST", member{name: "SQL01"})
	h.members("SECOND", member{name: "APP01"})
	h.members("THIRD", member{name: "WEB01"})
	number, sysID := h.approve(now, now.Add(time.Hour), "FIRST", "SECOND", "THIRD")

	h.waitFor("halted", func() bool { return h.states(number)["held"] == 4 })
	halt := h.requireHaltReported(t, number)
	require.Less(t, time.Now(), w2.start, "the test needs the resume before the second window")
	h.resume(number, "bad KB pulled from the group; jane.doe")

	h.waitFor("every window closed", func() bool { return h.states(number)["closed"] == 6 })
	for _, d := range h.of(number, "SECOND") {
		h.requireOnTime(t, d, w2)
	}
	for _, d := range h.of(number, "THIRD") {
		h.requireOnTime(t, d, w3)
	}
	holds := h.holds(number)
	require.Len(t, holds, 1)
	require.False(t, holds[0].Active())
	require.Equal(t, "bad KB pulled from the group; jane.doe", holds[0].ReleaseReason)
	require.Equal(t, "api", holds[0].ReleasedBy)
	h.waitFor("the halt's alert and incident closed", func() bool {
		for _, f := range h.failures(number) {
			if f.ID == halt.ID {
				return f.State == store.FailureResolved
			}
		}
		return false
	})
	notes := h.notes(sysID)
	require.Contains(t, notes, "RELEASED: resumed: bad KB pulled from the group; jane.doe")
	transitions, err := store.ChangeTransitions(context.Background(), h.pool, number)
	require.NoError(t, err)
	var held, released int
	for _, tr := range transitions {
		if tr.To == store.DeploymentHeld {
			held++
			require.Contains(t, tr.Reason, "error budget exceeded")
		}
		if tr.From == store.DeploymentHeld {
			released++
			require.Contains(t, tr.Reason, "jane.doe")
		}
	}
	require.Equal(t, 4, held)
	require.Equal(t, 4, released)
}

// TestPauseAndRelease: On hold true holds the unopened windows; false
// releases them. A window whose time passed while held is missed (never
// enabled, reported as missed); the other opens on time.
func TestPauseAndRelease(t *testing.T) {
	t.Parallel()
	h := newRolloutHarness(t, "10%", []estate.SeedDevice{{Name: "APP01"}, {Name: "WEB01"}})
	h.startClient()
	now := time.Now().Truncate(time.Second)
	passes := window{now.Add(12 * time.Second), now.Add(16 * time.Second)}
	opens := window{now.Add(26 * time.Second), now.Add(32 * time.Second)}
	h.load(schedule("PASSES", "automatic", passes), schedule("OPENS", "automatic", opens))
	h.members("PASSES", member{name: "APP01"})
	h.members("OPENS", member{name: "WEB01"})
	number, sysID := h.approve(now, now.Add(time.Hour), "PASSES", "OPENS")
	h.waitFor("deployments created", func() bool { return h.states(number)["created"] == 4 })

	h.setOnHold(number, true)
	h.waitFor("held", func() bool { return h.states(number)["held"] == 4 })
	h.waitFor("the pause note", func() bool { return strings.Contains(h.notes(sysID), "On hold in ServiceNow") })
	time.Sleep(time.Until(passes.end.Add(time.Second)))
	require.Equal(t, 4, h.states(number)["held"], "still held after the first window's time")
	require.Less(t, time.Now(), opens.start, "the test needs the release before the second window")

	h.setOnHold(number, false)
	h.waitFor("the passed window missed", func() bool { return h.scheduleStates(number, "PASSES")["missed"] == 2 })
	h.waitFor("the other window closed", func() bool { return h.scheduleStates(number, "OPENS")["closed"] == 2 })
	for _, d := range h.of(number, "PASSES") {
		requireNeverEnabled(t, d)
	}
	for _, d := range h.of(number, "OPENS") {
		h.requireOnTime(t, d, opens)
	}
	holds := h.holds(number)
	require.Len(t, holds, 1)
	require.Equal(t, store.HoldPause, holds[0].Kind)
	require.Equal(t, "servicenow", holds[0].ReleasedBy)
	h.waitFor("the missed window reported", func() bool {
		for _, f := range h.failures(number) {
			if f.Kind == store.FailureMissedWindow && f.IncidentSysID != "" {
				return true
			}
		}
		return false
	})
	require.Contains(t, h.notes(sysID), "RELEASED: taken off hold in ServiceNow")
}

// TestTierGating: a backend member of a service fails in the first window;
// the later window with that service's frontend members is held with the
// reason, another service's frontend window opens on time. A third
// service's backend fails and then recovers within the first window: its
// frontend window is held, then released by autopatch, and opens on time.
func TestTierGating(t *testing.T) {
	t.Parallel()
	h := newRolloutHarness(t, "100", []estate.SeedDevice{
		{Name: "SQL01", Outcome: "error 0x80240022"}, {Name: "WEB01"}, {Name: "SHOP01"},
		{Name: "BIL-SQL01", Outcome: "error 0x8024402C then success"}, {Name: "BIL-WEB01"},
	})
	h.startClient()
	now := time.Now().Truncate(time.Second)
	back := window{now.Add(8 * time.Second), now.Add(14 * time.Second)}
	front := window{now.Add(22 * time.Second), now.Add(26 * time.Second)}
	h.load(schedule("BACK", "automatic", back), schedule("FRONT", "automatic", front), schedule("SHOP", "automatic", front),
		schedule("BILLING", "automatic", front))
	h.members("BACK", member{"SQL01", "Payroll", "backend"}, member{"BIL-SQL01", "Billing", "backend"})
	h.members("FRONT", member{"WEB01", "Payroll", "frontend"})
	h.members("SHOP", member{"SHOP01", "Shop", "frontend"})
	h.members("BILLING", member{"BIL-WEB01", "Billing", "frontend"})
	number, sysID := h.approve(now, now.Add(time.Hour), "BACK", "FRONT", "SHOP", "BILLING")

	h.waitFor("the shop and billing windows closed", func() bool {
		return h.scheduleStates(number, "SHOP")["closed"] == 2 && h.scheduleStates(number, "BILLING")["closed"] == 2
	})
	require.Equal(t, 2, h.scheduleStates(number, "FRONT")["held"])
	for _, d := range h.of(number, "FRONT") {
		requireNeverEnabled(t, d)
	}
	for _, schedule := range []string{"SHOP", "BILLING"} {
		for _, d := range h.of(number, schedule) {
			h.requireOnTime(t, d, front)
		}
	}
	var holds []store.Hold
	billing := false
	for _, hd := range h.holds(number) {
		if strings.Contains(hd.Reason, "service Billing") {
			billing = true
			require.Equal(t, "autopatch", hd.ReleasedBy, "lifted when BIL-SQL01 recovered")
			require.False(t, hd.Active())
			continue
		}
		holds = append(holds, hd)
	}
	require.True(t, billing, "BIL-SQL01's first failure held the billing window")
	require.Len(t, holds, 1)
	require.Equal(t, store.HoldTier, holds[0].Kind)
	require.True(t, holds[0].Active())
	require.Contains(t, holds[0].Reason, "service Payroll: SQL01 (backend) failed in an earlier window")
	h.waitFor("the tier note", func() bool { return strings.Contains(h.notes(sysID), "window HELD") })
	for _, f := range h.failures(number) {
		require.NotEqual(t, store.FailureHalt, f.Kind, "tier gating is not a halt")
	}
}

// TestTwoReplicasCrashDuringHoldDecision: two replicas; the first decision
// to halt is killed before it commits (its transaction rolls back, the
// replica dies) while SCCM is unreachable, and the second window's start
// passes meanwhile. The surviving replica never enables the second window:
// the code that opens windows checks the budget itself, and records the
// hold.
func TestTwoReplicasCrashDuringHoldDecision(t *testing.T) {
	t.Parallel()
	h := newRolloutHarness(t, "0", []estate.SeedDevice{{Name: "SQL01", Outcome: "error 0x80240022"}, {Name: "APP01"}})
	now := time.Now().Truncate(time.Second)
	w1 := window{now.Add(10 * time.Second), now.Add(14 * time.Second)}
	w2 := window{now.Add(20 * time.Second), now.Add(26 * time.Second)}

	killed := make(chan string, 1)
	var calls atomic.Int64
	h.deps.beforeHoldCommit = func(d *Deps) error {
		if calls.Add(1) > 1 {
			return nil
		}
		h.est.SetWinRMDown(true)
		killed <- d.ClientID
		// The decision hangs until the second window has started, then its
		// process dies: the transaction never commits.
		time.Sleep(time.Until(w2.start.Add(2 * time.Second)))
		return errors.New("killed in the middle of the hold decision")
	}
	stops := map[string]func(bool){}
	var mu sync.Mutex
	for range 2 {
		stop := h.startClient()
		mu.Lock()
		stops[fmt.Sprintf("-%d", h.clients.Load())] = stop
		mu.Unlock()
	}
	h.load(schedule("FIRST", "automatic", w1), schedule("SECOND", "automatic", w2))
	h.members("FIRST", member{name: "SQL01"})
	h.members("SECOND", member{name: "APP01"})
	number, _ := h.approve(now, now.Add(time.Hour), "FIRST", "SECOND")

	var victim string
	select {
	case victim = <-killed:
	case <-time.After(60 * time.Second):
		t.Fatal("no hold decision")
	}
	time.Sleep(time.Until(w2.start.Add(2 * time.Second)))
	for suffix, stop := range stops {
		if strings.HasSuffix(victim, suffix) {
			stop(true)
		}
	}
	h.orphan("poll_status", "open_window", "close_window")
	h.est.SetWinRMDown(false)

	h.waitFor("the second window held", func() bool { return h.scheduleStates(number, "SECOND")["held"] == 2 })
	time.Sleep(time.Until(w2.end.Add(time.Second)))
	require.Equal(t, 2, h.scheduleStates(number, "SECOND")["held"])
	for _, d := range h.of(number, "SECOND") {
		requireNeverEnabled(t, d)
	}
	require.GreaterOrEqual(t, calls.Load(), int64(2), "the survivor decided the hold again")
	holds := h.holds(number)
	require.Len(t, holds, 1, "one hold")
	h.requireHaltReported(t, number)
}
