// Command autopatch drives monthly SCCM patching from ServiceNow changes.
// main only parses the subcommand and wires; the work lives in the packages.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

type command struct {
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
	summary string
}

var commands = map[string]command{
	"serve":       {runServe, "run the HTTP server and the job workers"},
	"migrate":     {runMigrate, "apply autopatch's and River's database migrations (idempotent)"},
	"plan":        {runPlan, "show a schedules file's windows, or the plan of a change window, offline"},
	"sim":         {runSim, "run the simulated estate (SCCM/SCOM over WinRM, ServiceNow) on loopback"},
	"demo":        {runDemo, "run the whole flow against the simulated estate"},
	"doctor":      {runDoctor, "check, read-only, that the configured SCCM, SCOM and ServiceNow are ready for autopatch"},
	"chaos":       {runChaos, "the crash suite: SIGKILLs, dead replicas and outages, judged by invariants"},
	"send":        {runSend, "post a signed change or schedule request as ServiceNow would (to try autopatch or test the path)"},
	"healthcheck": {runHealthcheck, "exit 0 when autopatch's /readyz (or --url) answers 200: for container healthchecks"},
	"version":     {runVersion, "print the version, VCS revision and Go version of this binary"},
	"report":      {runReport, "print the compliance ledger of a change or a patch cycle (table, JSON, CSV)"},
}

const usage = `autopatch: SCCM patching under change control, driven by ServiceNow.

Usage: autopatch <command> [flags]   (autopatch <command> --help for its flags)

Commands:
  serve     run the HTTP server and the job workers
  migrate   apply autopatch's and River's database migrations (idempotent)
  plan      show a schedules file's windows, or the plan of a change window, offline
  sim       run the simulated estate (SCCM/SCOM over WinRM, ServiceNow) on loopback
  demo      run the whole flow against the simulated estate
  doctor    check, read-only, that the configured SCCM, SCOM and ServiceNow are ready for autopatch
  chaos     the crash suite: SIGKILLs, dead replicas and outages, judged by invariants
  send      post a signed change or schedule request as ServiceNow would (to try autopatch or test the path)
  version   print the version, VCS revision and Go version of this binary
  healthcheck  exit 0 when autopatch's /readyz (or --url) answers 200: for container healthchecks
  report    print the compliance ledger of a change or a patch cycle (table, JSON, CSV)

Configuration comes from AUTOPATCH_* environment variables (secrets also as
AUTOPATCH_*_FILE) and an optional YAML file given with --config; see README.md.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "autopatch: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	return cmd.run(ctx, args[1:], stdout, stderr)
}
