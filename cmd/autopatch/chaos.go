package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/autopatch/autopatch/internal/chaos"
	"github.com/autopatch/autopatch/internal/pgtemp"
)

func runChaos(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Uint64("seed", 0, "random `SEED` (0: from the clock); printed at start so a failure replays")
	iterations := fs.Int("iterations", 50, "how many scenarios to play (about 15 s each)")
	replicas := fs.Int("replicas", 3, "replica slots, 1–3 (scenarios with replicas use 2 or 3)")
	only := fs.String("scenario", "", "play only the scenario `NAME` (kill-after-approval, kill-around-open, kill-around-close, replica-killed, postgres-restart, winrm-down, servicenow-down)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: autopatch chaos [--seed N] [--iterations N] [--replicas N] [--scenario NAME]

The crash suite (issue #13): a throwaway PostgreSQL, the simulated estate and
1–3 replicas of this binary's serve, disturbed at random points of a change's
lifecycle (SIGKILL, a dead replica, PostgreSQL restarted, WinRM or ServiceNow
unavailable). Judges from the simulator's state and the database, prints a
line per iteration and the figures, and exits 1 when an invariant failed.

Flags:
`)
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "autopatch chaos: %v\n", err)
		return 1
	}
	if _, err := pgtemp.FindBin(); err != nil {
		fmt.Fprintf(stderr, "autopatch chaos: %v\n", err)
		return 1
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	err = chaos.Run(ctx, chaos.Options{Binary: self, Seed: *seed, Iterations: *iterations, Replicas: *replicas, Only: *only, Out: stdout})
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			fmt.Fprintf(stderr, "\nautopatch chaos FAILED: %v\n", err)
		}
		return 1
	}
	return 0
}
