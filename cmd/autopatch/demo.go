package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/autopatch/autopatch/internal/demo"
	"github.com/autopatch/autopatch/internal/pgtemp"
	"github.com/autopatch/autopatch/internal/scalemonth"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	summary := fs.String("summary-json", "", "write the simulator's final /state to `FILE`")
	scale := fs.Bool("scale", false, "play Microsoft IT's month instead (issue #19): the generated estate of 8,000 servers, 24 windows seconds apart, then the month's figures (about 5 minutes)")
	scaleSpec := fs.String("scale-estate", "", "with --scale: the estate, `key=value,…` over internal/estate/scale.yaml (as sim --generate)")
	tenants := fs.Bool("tenants", false, "play two customers instead (issue #20): one serve, a tenants file, acme and contoso each with its own simulated SCCM site, SCOM and ServiceNow (about 30 seconds)")
	logDir := fs.String("log-dir", "", "keep serve's log in `DIR`/serve.log (default: a temporary directory, kept only when the demo fails)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: autopatch demo [--summary-json FILE] [--log-dir DIR] [--scale [--scale-estate k=v,…] | --tenants]

Plays the whole mission in about a minute and a half: a throwaway PostgreSQL
(unless AUTOPATCH_DATABASE_URL is set), the simulated SCCM, SCOM and ServiceNow,
autopatch serve, and ServiceNow's side played by signed webhooks. Prints a
timeline of what autopatch does and why, then a summary. Exits 0 only when
everything expected happened, otherwise non-zero naming what did not.

Flags:
`)
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	if *tenants && *scale {
		fmt.Fprintln(stderr, "autopatch demo: --tenants and --scale exclude each other")
		return 2
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "autopatch demo: %v\n", err)
		return 1
	}
	if os.Getenv("AUTOPATCH_DATABASE_URL") == "" {
		if _, err := pgtemp.FindBin(); err != nil {
			fmt.Fprintf(stderr, "autopatch demo: the PostgreSQL server binaries (initdb, pg_ctl) are missing.\nInstall them (Debian/Ubuntu: sudo apt-get install postgresql) or set AUTOPATCH_DATABASE_URL.\n")
			return 1
		}
	}
	if *scale {
		_, err := scalemonth.Run(ctx, scalemonth.Options{
			Binary: self, DatabaseURL: os.Getenv("AUTOPATCH_DATABASE_URL"), Scale: *scaleSpec, Out: stdout,
		})
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				fmt.Fprintf(stderr, "\nautopatch demo --scale FAILED: %v\n", err)
			}
			return 1
		}
		return 0
	}
	run := demo.Run
	if *tenants {
		run = demo.RunTenants
	}
	err = run(ctx, demo.Options{
		Binary: self, DatabaseURL: os.Getenv("AUTOPATCH_DATABASE_URL"),
		SummaryJSON: *summary, Out: stdout, TTY: isTerminal(stdout), LogDir: *logDir,
	})
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			fmt.Fprintf(stderr, "\nautopatch demo FAILED: %v\n", err)
		}
		return 1
	}
	return 0
}

// isTerminal reports whether w is a character device (a terminal), where
// the demo redraws its progress line in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
