//go:build chaos

// The three scenarios of issue #13 as tests of their own, on the crash
// suite's harness. They drive the real binary and take about 30 s each;
// the build tag keeps them out of `go test ./...` (make test) until the
// failover work lands — `make chaos` runs them:
//
//	go test -tags chaos -run TestScenario ./internal/chaos
package chaos

import (
	"context"
	"errors"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/autopatch/autopatch/internal/pgtemp"
)

// setup builds the binary and starts a harness with replicas slots.
func setup(t *testing.T, replicas int) (context.Context, *Harness) {
	t.Helper()
	if _, err := pgtemp.FindBin(); err != nil {
		t.Fatal(err) // not skipped: the suite needs PostgreSQL's binaries
	}
	bin := filepath.Join(t.TempDir(), "autopatch")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/autopatch").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	h, err := NewHarness(ctx, HarnessOptions{Binary: bin, Replicas: replicas, Out: tWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return ctx, h
}

// playAndJudge plays sc once, waits for the closes to be due, and fails
// the test with every violated invariant.
func playAndJudge(t *testing.T, ctx context.Context, h *Harness, sc Scenario) {
	t.Helper()
	it := h.Play(ctx, 1, sc, rand.New(rand.NewPCG(1, 2)))
	if it.Err != nil {
		t.Fatalf("harness: %v", it.Err)
	}
	if len(h.Alive()) == 0 {
		if err := h.Start(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(onTime + h.stalls.Longest() + 2*time.Second)
	res := Judge(ctx, h, []*Iteration{it})
	t.Logf("%s: %s; recovery %s; stall %s", sc.Name, it.Did, dist(res.Figures.Recoveries), res.Figures.Stall)
	for _, v := range append(res.Violations[0], res.RunWide...) {
		t.Errorf("%s: %s", v.Invariant, v.Detail)
	}
}

// waitDeployments waits until the change's deployments exist in SCCM, so
// the crash that follows hits the window jobs, not the creation.
func waitDeployments(ctx context.Context, h *Harness, p plan) error {
	return h.waitFor(ctx, 10*time.Second, p.c.number+"'s deployments created", func() bool {
		return len(deploymentsOf(h.est.State(), p.c.number)) == len(p.c.windows)
	})
}

// A change approved just before a crash is planned and its deployments
// created within seconds of the restart, and its windows open on time.
func TestScenarioApprovedJustBeforeCrash(t *testing.T) {
	ctx, h := setup(t, 1)
	playAndJudge(t, ctx, h, Scenario{Name: "approved-just-before-crash", replicas: one,
		play: func(ctx context.Context, h *Harness, p plan, _ *rand.Rand) (string, error) {
			time.Sleep(50 * time.Millisecond)
			h.Kill(0)
			time.Sleep(500 * time.Millisecond)
			return "SIGKILL 50 ms after the 202, restart after 500 ms", h.Start(ctx, 0)
		}})
}

// A window that starts a few seconds after the process is back is opened
// on time, not missed.
func TestScenarioWindowStartsAfterReturn(t *testing.T) {
	ctx, h := setup(t, 1)
	playAndJudge(t, ctx, h, Scenario{Name: "window-starts-after-return", replicas: one,
		play: func(ctx context.Context, h *Harness, p plan, _ *rand.Rand) (string, error) {
			if err := waitDeployments(ctx, h, p); err != nil {
				return "", err
			}
			h.Kill(0)
			if err := h.Start(ctx, 0); err != nil {
				return "", err
			}
			return "SIGKILL once the deployments exist, restart at once; S1 starts " +
				time.Until(p.s1.start).Round(time.Millisecond).String() + " after the return", nil
		}})
}

// With two replicas, killing the one that is opening a window (its keeper
// holds the due rows while SCCM answers) leaves the other to open that window
// at once, and to close it and open the next one on time.
func TestScenarioReplicaKilledOpeningWindow(t *testing.T) {
	ctx, h := setup(t, 2)
	playAndJudge(t, ctx, h, Scenario{Name: "replica-killed-opening-window", replicas: func(*rand.Rand, int) int { return 2 },
		play: func(ctx context.Context, h *Harness, p plan, _ *rand.Rand) (string, error) {
			if err := waitDeployments(ctx, h, p); err != nil {
				return "", err
			}
			if err := sleepUntil(ctx, p.s1.start.Add(-100*time.Millisecond)); err != nil {
				return "", err
			}
			n, why := -1, ""
			for give := time.Now().Add(2 * time.Second); n < 0 && time.Now().Before(give); time.Sleep(2 * time.Millisecond) {
				n, why = h.holder(ctx)
			}
			if n < 0 {
				return "", errors.New("no replica was seen opening S1 within 2 s of its start: the scenario did not happen")
			}
			h.Kill(n)
			return "at S1's start, SIGKILL of replica " + string(rune('0'+n)) + " (" + why + "), not restarted", nil
		}})
}

// tWriter sends the harness's progress lines to the test log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}
