package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"text/tabwriter"
	"time"
)

// Options configure Run.
type Options struct {
	// Binary is the autopatch executable run as `serve`.
	Binary string
	// Seed makes the run replayable: the same seed picks the same
	// scenarios and timings.
	Seed uint64
	// Iterations is how many scenarios to play.
	Iterations int
	// Replicas is how many replica slots exist (1–3); scenarios with
	// replicas use two or more of them.
	Replicas int
	// Only, when set, plays only the scenario of that name.
	Only string
	Out  io.Writer
}

// ErrInvariants is returned when an invariant failed.
var ErrInvariants = errors.New("chaos: invariants failed")

// Run plays the iterations, judges them, prints a line per iteration and a
// summary, and returns ErrInvariants when any invariant failed.
func Run(ctx context.Context, opts Options) error {
	out := opts.Out
	rng := rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15))
	fmt.Fprintf(out, "chaos: seed %d, %d iterations, %d replica slots (replay: autopatch chaos --seed %d --iterations %d --replicas %d)\n",
		opts.Seed, opts.Iterations, opts.Replicas, opts.Seed, opts.Iterations, opts.Replicas)
	began := time.Now()
	h, err := NewHarness(ctx, HarnessOptions{Binary: opts.Binary, Replicas: opts.Replicas, Out: out})
	if err != nil {
		return err
	}
	defer h.Close()

	var its []*Iteration
	for i := 1; i <= opts.Iterations; i++ {
		sc := pick(rng)
		if opts.Only != "" {
			var ok bool
			if sc, ok = ScenarioByName(opts.Only); !ok {
				return fmt.Errorf("chaos: no scenario %q", opts.Only)
			}
		}
		fmt.Fprintf(out, "  #%d %s\n", i, sc.Name)
		it := h.Play(ctx, i, sc, rng)
		if it.Err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		if it.Err != nil {
			fmt.Fprintf(out, "    harness error: %v\n", it.Err)
		}
		its = append(its, it)
	}
	// Let the last closes and reports land: every replica up again, then
	// the close allowance.
	for i := range h.replicas {
		if !h.replicas[i].alive() && len(h.Alive()) == 0 {
			_ = h.Start(ctx, i)
		}
	}
	_ = sleepUntil(ctx, time.Now().Add(onTime+h.stalls.Longest()+2*time.Second))
	played := time.Since(began)

	res := Judge(ctx, h, its)
	res.Print(out, opts.Seed)
	fmt.Fprintf(out, "\n%d iterations (%d crash/replica) took %s\n", len(its), res.Crashes, played.Round(time.Second))
	if res.Failed > 0 {
		return fmt.Errorf("%w: %d of %d iterations (seed %d)", ErrInvariants, res.Failed, len(its), opts.Seed)
	}
	return nil
}

// Result is the judgement of a run.
type Result struct {
	Iterations []*Iteration
	Violations [][]Violation // per iteration
	RunWide    []Violation   // incidents, alerts, notes doubled
	Figures    Figures
	Failed     int
	Crashes    int
}

// Judge checks every iteration and the run as a whole against the
// simulator's state and the database now.
func Judge(ctx context.Context, h *Harness, its []*Iteration) *Result {
	s := h.est.State()
	now := time.Now()
	res := &Result{Iterations: its}
	res.Figures.Stall = h.stalls.Longest()
	for _, it := range its {
		var vs []Violation
		if it.change != nil {
			vs = h.judge(ctx, s, now, []*change{it.change}, &res.Figures)
		}
		if it.Err != nil {
			vs = append(vs, Violation{Invariant: "harness", Detail: it.Err.Error()})
		}
		res.Violations = append(res.Violations, vs)
		if len(vs) > 0 {
			res.Failed++
		}
		if it.Scenario.Crash {
			res.Crashes++
		}
	}
	res.RunWide = h.judgeRun(s, &res.Figures)
	if len(res.RunWide) > 0 {
		res.Failed++
	}
	return res
}

// Print writes a line per iteration and the summary table.
func (r *Result) Print(out io.Writer, seed uint64) {
	fmt.Fprintf(out, "\nIterations (seed %d):\n", seed)
	failing := map[string]int{}
	for i, it := range r.Iterations {
		vs := r.Violations[i]
		verdict := "pass"
		if len(vs) > 0 {
			verdict = "FAIL"
		}
		fmt.Fprintf(out, "  #%-3d %-20s %s  %s\n", it.N, it.Scenario.Name, verdict, it.Did)
		seen := map[string]bool{}
		for _, v := range vs {
			fmt.Fprintf(out, "         ✗ %s: %s\n", v.Invariant, v.Detail)
			if !seen[v.Invariant] {
				failing[v.Invariant]++
				seen[v.Invariant] = true
			}
		}
	}
	if len(r.RunWide) > 0 {
		fmt.Fprintln(out, "  run-wide:")
		for _, v := range r.RunWide {
			fmt.Fprintf(out, "         ✗ %s: %s\n", v.Invariant, v.Detail)
		}
		failing[invDoubled]++
	}
	f := r.Figures
	fmt.Fprintln(out, "\nInvariants:")
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  INVARIANT\tITERATIONS FAILING\tFIGURE")
	figure := map[string]string{
		invOutside: fmt.Sprintf("%d of %d enables outside their window", f.EnablesOutside, f.Enables),
		invOpen:    "open lag " + dist(f.OpenLags),
		invClose:   "close lag " + dist(f.CloseLags),
		invDoubled: fmt.Sprintf("%d incidents/alerts/notes doubled", f.DoubledAny),
		invActed:   "approval→deployments " + dist(f.ActLags),
	}
	for _, inv := range Invariants {
		mark := "ok"
		if failing[inv] > 0 {
			mark = fmt.Sprintf("FAIL %d", failing[inv])
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", inv, mark, figure[inv])
	}
	tw.Flush()
	fmt.Fprintf(out, "\nRecovery, SIGKILL → first action the estate saw after it: %s; %d kills with no action after them\n",
		dist(f.Recoveries), f.NoRecovery)
	fmt.Fprintf(out, "Windows judged: %d. The 5 s checks allow for the longest stall the machine imposed on the harness: %s\n",
		f.Windows, f.Stall.Round(time.Millisecond))
	var bad []string
	for _, inv := range Invariants {
		if failing[inv] > 0 {
			bad = append(bad, inv)
		}
	}
	if len(bad) > 0 {
		fmt.Fprintf(out, "FAILED: %s\n", strings.Join(bad, "; "))
	} else {
		fmt.Fprintln(out, "Every invariant held.")
	}
}

// dist prints p50/p99/max of ds.
func dist(ds []time.Duration) string {
	if len(ds) == 0 {
		return "n=0"
	}
	r := func(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }
	return fmt.Sprintf("p50 %s p99 %s max %s (n=%d)", r(percentile(ds, 50)), r(percentile(ds, 99)), r(percentile(ds, 100)), len(ds))
}
