package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"go.yaml.in/yaml/v3"

	"github.com/autopatch/autopatch/internal/estate"
)

const simUsage = `Usage: autopatch sim [flags]

Runs the simulated estate on loopback: a WinRM (WS-Management) endpoint that
plays the SCCM site server and the SCOM management server, a ServiceNow
instance (Table API, plain HTTP), and a control server whose GET /state shows
what the simulators hold. Point autopatch serve at it with --env-file. Runs
until interrupted.

Seed (--seed FILE, YAML):
  update_groups: ["2026-12 Servers"]        software update groups
  collections: ["Patch - Extra"]            device collections (schedules' come from --schedules)
  latency: 500ms                            delay of every WinRM call
  devices:                                  each device and what it does when a deployment reaches it:
    - {name: SQL01}                         success (also: outcome: success, compliant)
    - {name: SQL02, outcome: "error 0x80240022"}              fails with that HRESULT
    - {name: APP01, outcome: "error 0x8024402C then success"} fails once, then succeeds
    - {name: WEB01, outcome: silent}        never reports (status unknown)
    - {name: APP02, outcome: "in progress"} installs forever
    - {name: APP03, outcome: "success after close"}  still installing when the window closes, then
                                            succeeds (SCCM's StatusTime after the close); "success
                                            after close 3": at the third status read after it
    - {name: APP04, outcome: "pending restart"}  installed, waits for a restart
                                            (LastEnforcementMessageID 9)
    - {name: OLD01, outcome: inactive}      SCCM client inactive (ClientActiveStatus 0); never reports
    - {name: NEW01, outcome: "no client"}   no SCCM client (IsClient false); never reports
    - {name: MAN01, outcome: compliant}     a manual_patch device its owner patched
    - {name: MAN02, outcome: noncompliant}  a manual_patch device still requiring the updates
  In a compliance read (the device state template) every update group has one
  update: success outcomes require none, pending restart has its restart
  pending, every other outcome still requires each group's update.

Flags:
`

// runSim is `autopatch sim`. It returns the process exit code: 0 after ctx is
// done, 1 when the estate cannot start, 2 for bad usage.
func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, simUsage)
		fs.PrintDefaults()
	}
	seedFile := fs.String("seed", "", "seed `FILE` (YAML): update groups, collections, devices and their outcomes, latency")
	schedulesFile := fs.String("schedules", "", "schedules `FILE` (YAML): every schedule's collection exists in the site")
	envFile := fs.String("env-file", "", "write the AUTOPATCH_* settings that point serve at the estate to `FILE`")
	host := fs.String("listen-host", estate.DefaultHost, "`address` to listen on")
	winrmPort := fs.Int("winrm-port", 0, "WinRM `port` (0: any free port)")
	snowPort := fs.Int("servicenow-port", 0, "ServiceNow (Table API) `port` (0: any free port)")
	controlPort := fs.Int("control-port", 0, "control server `port` (0: any free port)")
	plainHTTP := fs.Bool("http", false, "serve WinRM over plain HTTP instead of HTTPS with a generated CA")
	latency := fs.Duration("latency", -1, "simulated `delay` of every WinRM call (overrides the seed's latency)")
	verbose := fs.Bool("verbose", false, "log every call")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "autopatch sim: unexpected arguments: %v\n", fs.Args())
		fs.Usage()
		return 2
	}
	latencySet := false
	fs.Visit(func(f *flag.Flag) { latencySet = latencySet || f.Name == "latency" })
	if latencySet && *latency < 0 {
		fmt.Fprintf(stderr, "autopatch sim: --latency %s is negative\n", *latency)
		return 2
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	opts := estate.Options{
		Host: *host, WinRMPort: *winrmPort, ServiceNowPort: *snowPort, ControlPort: *controlPort,
		PlainHTTP: *plainHTTP, Logger: logger,
	}
	if *seedFile != "" {
		seed, err := estate.LoadSeed(*seedFile)
		if err != nil {
			fmt.Fprintf(stderr, "autopatch sim: %v\n", err)
			return 1
		}
		opts.Seed = seed
	}
	if latencySet {
		opts.Seed.Latency = *latency
	}
	if *schedulesFile != "" {
		collections, err := scheduleCollections(*schedulesFile)
		if err != nil {
			fmt.Fprintf(stderr, "autopatch sim: %v\n", err)
			return 1
		}
		opts.ScheduleCollections = collections
	}

	e, err := estate.Start(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "autopatch sim: %v\n", err)
		return 1
	}
	defer func() {
		if err := e.Close(); err != nil {
			logger.Error("autopatch sim: close", "error", err)
		}
	}()
	if *envFile != "" {
		if err := e.WriteEnvFile(*envFile); err != nil {
			fmt.Fprintf(stderr, "autopatch sim: %v\n", err)
			return 1
		}
	}

	fmt.Fprintf(stdout, "autopatch sim: SCCM site %s (WinRM) at %s\n", e.SCCM().SiteCode(), e.SCCMEndpoint())
	fmt.Fprintf(stdout, "autopatch sim: SCOM management server %s (WinRM) at %s, %d computers\n",
		e.SCOM().ManagementServer(), e.SCOMEndpoint(), len(e.SCOM().State().Computers))
	fmt.Fprintf(stdout, "autopatch sim: ServiceNow (Table API) at %s\n", e.ServiceNowURL())
	fmt.Fprintf(stdout, "autopatch sim: control at %s (GET /state)\n", e.ControlURL())
	if e.CAFile() != "" {
		fmt.Fprintf(stdout, "autopatch sim: CA certificate in %s\n", e.CAFile())
	}
	fmt.Fprintf(stdout, "autopatch sim: WinRM user %s, latency %s per call\n", e.User(), opts.Seed.Latency)
	if *envFile != "" {
		fmt.Fprintf(stdout, "autopatch sim: settings for serve written to %s\n", *envFile)
	}

	<-ctx.Done()
	fmt.Fprintln(stdout, "autopatch sim: stopping")
	return 0
}

// scheduleCollections reads the collection of every schedule in a schedules
// file. Only that field is read here; serve validates the whole file.
func scheduleCollections(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("schedules: %w", err)
	}
	var file struct {
		Schedules []struct {
			Name       string `yaml:"name"`
			Collection string `yaml:"collection"`
		} `yaml:"schedules"`
	}
	if err := yaml.Unmarshal(b, &file); err != nil {
		return nil, fmt.Errorf("schedules %s: %w", path, err)
	}
	var out []string
	for i, s := range file.Schedules {
		if s.Collection == "" {
			return nil, fmt.Errorf("schedules %s: schedule %d (%q) has no collection", path, i, s.Name)
		}
		out = append(out, s.Collection)
	}
	return out, nil
}
