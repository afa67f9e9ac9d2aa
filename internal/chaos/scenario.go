package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
)

// The timeline of one iteration, from t0 (a whole second shortly after it
// starts): the change is approved just before t0, S1's window is
// [t0+3s, t0+7s) and S2's [t0+7s, t0+11s), so S1's close and S2's open are
// one instant; the next iteration starts at t0+12s. Short windows keep 50
// iterations near ten minutes; 4 s still leaves a late open 2 s (serve's
// minimum for windows this short is half of them).
const (
	s1Start  = 3 * time.Second
	windowLn = 4 * time.Second
	iterLen  = s1Start + 2*windowLn + time.Second
)

// plan is one iteration's timeline.
type plan struct {
	approve time.Time // when the approval is sent
	s1, s2  window
	c       *change
}

// Scenario is one kind of disturbance, played along an iteration's plan.
type Scenario struct {
	Name string
	// Crash is true for SIGKILLs of serve and dead replicas, the kind the
	// issue asks at least 50 of.
	Crash bool
	// replicas picks how many replicas run during the iteration.
	replicas func(rng *rand.Rand, slots int) int
	// play runs the disturbance once the change is approved; it returns a
	// short description of what it did, with its timings.
	play func(ctx context.Context, h *Harness, p plan, rng *rand.Rand) (string, error)
}

func one(*rand.Rand, int) int { return 1 }

func oneOrMore(rng *rand.Rand, slots int) int { return 1 + rng.IntN(slots) }

func twoOrMore(rng *rand.Rand, slots int) int { return 2 + rng.IntN(max(1, slots-1)) }

// between is a random duration in [lo, hi).
func between(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int64N(int64(hi-lo)))
}

// sleepUntil waits for t or ctx.
func sleepUntil(ctx context.Context, t time.Time) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(t)):
		return nil
	}
}

// instant picks a moment of the lifecycle: just after the approval (plan
// and creation), around S1's open, or around S1's close (S2's open).
func instant(rng *rand.Rand, p plan) (time.Time, string) {
	switch rng.IntN(3) {
	case 0:
		d := between(rng, 0, 500*time.Millisecond)
		return time.Now().Add(d), fmt.Sprintf("%s after approval", d.Round(time.Millisecond))
	case 1:
		d := between(rng, -2*time.Second, time.Second)
		return p.s1.start.Add(d), "open" + signed(d)
	default:
		d := between(rng, -2*time.Second, time.Second)
		return p.s1.end.Add(d), "close" + signed(d)
	}
}

func signed(d time.Duration) string {
	if d < 0 {
		return d.Round(time.Millisecond).String()
	}
	return "+" + d.Round(time.Millisecond).String()
}

// killRestart SIGKILLs the only replica at a moment from at and starts it
// again after a random short delay.
func killRestart(at func(*rand.Rand, plan) (time.Time, string)) func(context.Context, *Harness, plan, *rand.Rand) (string, error) {
	return func(ctx context.Context, h *Harness, p plan, rng *rand.Rand) (string, error) {
		t, where := at(rng, p)
		if err := sleepUntil(ctx, t); err != nil {
			return "", err
		}
		n := h.Alive()[0]
		h.Kill(n)
		delay := between(rng, 300*time.Millisecond, 2500*time.Millisecond)
		time.Sleep(delay)
		if err := h.Start(ctx, n); err != nil {
			return "", err
		}
		return fmt.Sprintf("SIGKILL at %s, restart after %s", where, delay.Round(time.Millisecond)), nil
	}
}

// Scenarios are the disturbances an iteration picks from.
var Scenarios = []Scenario{
	{Name: "kill-after-approval", Crash: true, replicas: one, play: killRestart(func(rng *rand.Rand, p plan) (time.Time, string) {
		d := between(rng, 0, 300*time.Millisecond)
		return time.Now().Add(d), fmt.Sprintf("%s after approval", d.Round(time.Millisecond))
	})},
	{Name: "kill-around-open", Crash: true, replicas: one, play: killRestart(func(rng *rand.Rand, p plan) (time.Time, string) {
		d := between(rng, -2*time.Second, time.Second)
		return p.s1.start.Add(d), "open" + signed(d)
	})},
	{Name: "kill-around-close", Crash: true, replicas: one, play: killRestart(func(rng *rand.Rand, p plan) (time.Time, string) {
		d := between(rng, -2*time.Second, time.Second)
		return p.s1.end.Add(d), "close" + signed(d)
	})},
	{Name: "replica-killed", Crash: true, replicas: twoOrMore, play: func(ctx context.Context, h *Harness, p plan, rng *rand.Rand) (string, error) {
		t, where := instant(rng, p)
		if err := sleepUntil(ctx, t); err != nil {
			return "", err
		}
		n, why := h.holder(ctx)
		if n < 0 {
			alive := h.Alive()
			n, why = alive[rng.IntN(len(alive))], "picked at random"
		}
		h.Kill(n)
		what := fmt.Sprintf("replica %d of %d (%s) SIGKILLed at %s", n, len(h.Alive())+1, why, where)
		if rng.IntN(2) == 0 {
			return what + ", not restarted", nil
		}
		delay := between(rng, 300*time.Millisecond, 2500*time.Millisecond)
		time.Sleep(delay)
		return what + fmt.Sprintf(", restarted after %s", delay.Round(time.Millisecond)), h.Start(ctx, n)
	}},
	{Name: "postgres-restart", replicas: oneOrMore, play: func(ctx context.Context, h *Harness, p plan, rng *rand.Rand) (string, error) {
		t, where := instant(rng, p)
		if err := sleepUntil(ctx, t); err != nil {
			return "", err
		}
		return "pg_ctl restart at " + where, h.RestartPostgres(ctx)
	}},
	{Name: "winrm-down", replicas: oneOrMore, play: func(ctx context.Context, h *Harness, p plan, rng *rand.Rand) (string, error) {
		t, where := instant(rng, p)
		if err := sleepUntil(ctx, t); err != nil {
			return "", err
		}
		d := between(rng, time.Second, 4*time.Second)
		return fmt.Sprintf("WinRM down %s from %s", d.Round(time.Millisecond), where), h.Fault("winrm", d)
	}},
	{Name: "servicenow-down", replicas: oneOrMore, play: func(ctx context.Context, h *Harness, p plan, rng *rand.Rand) (string, error) {
		t, where := instant(rng, p)
		if err := sleepUntil(ctx, t); err != nil {
			return "", err
		}
		d := between(rng, 2*time.Second, 6*time.Second)
		return fmt.Sprintf("ServiceNow down %s from %s", d.Round(time.Millisecond), where), h.Fault("servicenow", d)
	}},
}

// weights: crashes and dead replicas are what the issue counts; the outages
// come up about one iteration in four.
var weights = []int{3, 3, 3, 4, 1, 1, 1}

func pick(rng *rand.Rand) Scenario {
	total := 0
	for _, w := range weights {
		total += w
	}
	r := rng.IntN(total)
	for i, w := range weights {
		if r < w {
			return Scenarios[i]
		}
		r -= w
	}
	return Scenarios[0]
}

// ScenarioByName returns the scenario called name.
func ScenarioByName(name string) (Scenario, bool) {
	for _, s := range Scenarios {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

// Iteration is one played scenario and what it did.
type Iteration struct {
	N        int
	Scenario Scenario
	Did      string
	Err      error
	change   *change
}

// Play runs one iteration: the replicas the scenario wants, fresh windows a
// few seconds ahead, a fresh change approved, the disturbance, and the wait
// until its windows have passed. It does not judge.
func (h *Harness) Play(ctx context.Context, n int, sc Scenario, rng *rand.Rand) *Iteration {
	it := &Iteration{N: n, Scenario: sc}
	it.Err = h.play(ctx, it, rng)
	return it
}

func (h *Harness) play(ctx context.Context, it *Iteration, rng *rand.Rand) error {
	want := it.Scenario.replicas(rng, len(h.replicas))
	for i := range h.replicas {
		if i < want {
			if err := h.Start(ctx, i); err != nil {
				return err
			}
		} else {
			h.Stop(i)
		}
	}
	// Whole seconds: the schedules file has no fractions.
	t0 := time.Now().Truncate(time.Second).Add(2 * time.Second)
	p := plan{
		s1: window{schedule: "S1", start: t0.Add(s1Start), end: t0.Add(s1Start + windowLn)},
		s2: window{schedule: "S2", start: t0.Add(s1Start + windowLn), end: t0.Add(s1Start + 2*windowLn)},
	}
	if err := h.AddWindows(ctx, p.s1, p.s2); err != nil {
		return err
	}
	p.c = &change{number: fmt.Sprintf("CHG%07d", 1000000+it.N), sysID: fmt.Sprintf("c%031x", it.N), windows: []window{p.s1, p.s2}}
	it.change = p.c
	if err := sleepUntil(ctx, t0.Add(-time.Second)); err != nil {
		return err
	}
	if err := h.Approve(p.c); err != nil {
		return err
	}
	did, err := it.Scenario.play(ctx, h, p, rng)
	it.Did = did
	if err != nil {
		return err
	}
	return sleepUntil(ctx, t0.Add(iterLen))
}

// holder finds the replica whose window keeper is inside an open or close
// now: its session (application_name "autopatch <replica id>") sits in the
// transaction that locked the due rows (FOR NO KEY UPDATE … SKIP LOCKED)
// while SCCM answers, and serve registers its replica id with its pid in the
// replicas table. The lock is found in pg_locks (the row locks' RowShareLock
// on deployments), not in the session's last statement: the keeper reads
// the change's rollout state after locking, so the statement shown while
// SCCM answers is seldom the lock (which made this probe miss 1 run in 4). -1 when no live replica holds one (a random replica is
// killed then).
func (h *Harness) holder(ctx context.Context) (int, string) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if h.watch == nil || h.watch.IsClosed() {
		conn, err := pgx.Connect(ctx, h.dbURL)
		if err != nil {
			return -1, ""
		}
		h.watch = conn
	}
	rows, err := h.watch.Query(ctx, `SELECT r.pid, r.client_id FROM pg_stat_activity a
		JOIN replicas r ON a.application_name = 'autopatch ' || r.client_id
		WHERE a.state = 'idle in transaction' AND EXISTS (SELECT 1 FROM pg_locks l
			WHERE l.pid = a.pid AND l.relation = 'deployments'::regclass AND l.mode = 'RowShareLock' AND l.granted)`)
	if err != nil {
		return -1, ""
	}
	type holding struct {
		pid int
		id  string
	}
	held, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (holding, error) {
		var x holding
		return x, row.Scan(&x.pid, &x.id)
	})
	if err != nil {
		return -1, ""
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, x := range held {
		for _, r := range h.replicas {
			if r.alive() && r.cmd.Process != nil && r.cmd.Process.Pid == x.pid {
				return r.n, "it is opening or closing a window, " + x.id
			}
		}
	}
	return -1, ""
}
