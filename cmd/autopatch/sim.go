package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

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
	generate := fs.String("generate", "", "generate the scale estate (issue #19) instead of reading a seed: `key=value,…` over the defaults of internal/estate/scale.yaml (\"\" or \"default\": 8,000 servers, 24 windows Thu–Sun, 3 update groups)")
	generateDir := fs.String("generate-dir", "", "with --generate: write the estate's schedules.yaml and assignments.yaml to `DIR` (for serve and plan --check)")
	generateMonth := fs.String("generate-month", "2026-12", "with --generate: the `month` that names the update groups")
	schedulesFile := fs.String("schedules", "", "schedules `FILE` (YAML): every schedule's collection exists in its site")
	sites := fs.String("sites", "", "further SCCM site `codes` (PS2,PS3), each a site server on a WinRM listener of its own; the env file then lists every site in AUTOPATCH_SCCM_SITES (docs/architecture.md §10.1)")
	trySchedules := fs.String("try-schedules", "", "write to `FILE` the --schedules file plus a one-off schedule "+trySchedule+
		" whose window opens two minutes from now for three hours, so that a change sent now (autopatch send) sees a deployment enabled (make run)")
	envFile := fs.String("env-file", "", "write the AUTOPATCH_* settings that point serve at the estate to `FILE`")
	tenantNames := fs.String("tenants", "", "serve several customers (issue #20): `names` (acme,contoso), each an estate of its own (SCCM site(s), SCOM, ServiceNow) on ports of its own; "+
		"needs --schedules and --env-file, and writes the tenants file (--tenants-file) and, in the env file, AUTOPATCH_TENANTS_FILE and each customer's secrets (docs/tenants.md)")
	tenantsPath := fs.String("tenants-file", "", "with --tenants: write the tenants file to `FILE` (default: tenants.yaml beside the env file)")
	host := fs.String("listen-host", estate.DefaultHost, "`address` to listen on")
	winrmPort := fs.Int("winrm-port", 0, "WinRM `port` (0: any free port)")
	snowPort := fs.Int("servicenow-port", 0, "ServiceNow (Table API) `port` (0: any free port)")
	controlPort := fs.Int("control-port", 0, "control server `port` (0: any free port)")
	plainHTTP := fs.Bool("http", false, "serve WinRM over plain HTTP instead of HTTPS with a generated CA")
	latency := fs.Duration("latency", -1, "simulated `delay` of every WinRM call (overrides the seed's latency)")
	verbose := fs.Bool("verbose", false, "log every call")
	winrmUser := fs.String("winrm-user", "", "the simulated WinRM account's `name` (default: random); for a fixed setup such as docker compose")
	winrmPassword := fs.String("winrm-password", "", "its `password` (default: random); a simulator's, never a real one")
	snowUser := fs.String("servicenow-user", "", "the simulated ServiceNow integration user's `name` (default: random)")
	snowPassword := fs.String("servicenow-password", "", "its `password` (default: random)")
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
		User: *winrmUser, Password: *winrmPassword, ServiceNowUser: *snowUser, ServiceNowPassword: *snowPassword,
	}
	generateSet := false
	fs.Visit(func(f *flag.Flag) { generateSet = generateSet || f.Name == "generate" })
	if generateSet && *seedFile != "" {
		fmt.Fprintln(stderr, "autopatch sim: --generate and --seed exclude each other")
		return 2
	}
	if generateSet {
		spec := *generate
		if spec == "default" {
			spec = ""
		}
		scale, err := estate.ParseScale(spec)
		if err != nil {
			fmt.Fprintf(stderr, "autopatch sim: %v\n", err)
			return 2
		}
		gen := scale.Generate(*generateMonth)
		opts.Seed = gen.Seed()
		if *generateDir != "" {
			if err := writeGenerated(*generateDir, gen); err != nil {
				fmt.Fprintf(stderr, "autopatch sim: %v\n", err)
				return 1
			}
		}
		fmt.Fprintf(stdout, "autopatch sim: generated %d devices in %d schedules, %d update groups (seed %d)\n",
			len(gen.Devices), len(gen.Schedules), len(gen.UpdateGroups), scale.Seed)
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
	if *sites != "" {
		opts.Sites = strings.Split(*sites, ",")
	}
	if *schedulesFile != "" {
		collections, err := scheduleCollections(*schedulesFile)
		if err != nil {
			fmt.Fprintf(stderr, "autopatch sim: %v\n", err)
			return 1
		}
		// A schedule at one of --sites has its collection there; the
		// others, at the seed's site.
		opts.SiteCollections = map[string][]string{}
		for site, cs := range collections {
			if slices.Contains(opts.Sites, site) {
				opts.SiteCollections[site] = cs
			} else {
				opts.ScheduleCollections = append(opts.ScheduleCollections, cs...)
			}
		}
	}
	var tryStart, tryEnd time.Time
	if *trySchedules != "" {
		if *schedulesFile == "" {
			fmt.Fprintln(stderr, "autopatch sim: --try-schedules needs --schedules")
			return 2
		}
		tryStart = time.Now().UTC().Truncate(time.Minute).Add(2 * time.Minute)
		tryEnd = tryStart.Add(3 * time.Hour)
		if err := writeTrySchedules(*schedulesFile, *trySchedules, tryStart, tryEnd); err != nil {
			fmt.Fprintf(stderr, "autopatch sim: %v\n", err)
			return 1
		}
		opts.ScheduleCollections = append(opts.ScheduleCollections, tryCollection)
	}

	if *tenantNames != "" {
		if *envFile == "" || *schedulesFile == "" {
			fmt.Fprintln(stderr, "autopatch sim: --tenants needs --env-file and --schedules")
			return 2
		}
		if *winrmPort != 0 || *snowPort != 0 || *controlPort != 0 {
			fmt.Fprintln(stderr, "autopatch sim: --tenants listens on ports of each customer's own: no --winrm-port, --servicenow-port or --control-port")
			return 2
		}
		schedules := *schedulesFile
		if *trySchedules != "" {
			schedules = *trySchedules
		}
		path := *tenantsPath
		if path == "" {
			path = filepath.Join(filepath.Dir(*envFile), "tenants.yaml")
		}
		if *trySchedules != "" {
			fmt.Fprintf(stdout, "autopatch sim: schedule %s (collection %q) has its window %s–%s UTC at every tenant; schedules written to %s\n",
				trySchedule, tryCollection, tryStart.Format("15:04"), tryEnd.Format("15:04"), *trySchedules)
		}
		return runSimTenants(ctx, opts, strings.Split(*tenantNames, ","), path, *envFile, schedules, stdout, stderr)
	}
	if *tenantsPath != "" {
		fmt.Fprintln(stderr, "autopatch sim: --tenants-file needs --tenants")
		return 2
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
	for _, code := range opts.Sites {
		fmt.Fprintf(stdout, "autopatch sim: SCCM site %s (WinRM) at %s\n", code, e.SiteEndpoint(code))
	}
	fmt.Fprintf(stdout, "autopatch sim: SCOM management server %s (WinRM) at %s, %d computers\n",
		e.SCOM().ManagementServer(), e.SCOMEndpoint(), len(e.SCOM().State().Computers))
	fmt.Fprintf(stdout, "autopatch sim: ServiceNow (Table API) at %s\n", e.ServiceNowURL())
	fmt.Fprintf(stdout, "autopatch sim: control at %s (GET /state)\n", e.ControlURL())
	if e.CAFile() != "" {
		fmt.Fprintf(stdout, "autopatch sim: CA certificate in %s\n", e.CAFile())
	}
	fmt.Fprintf(stdout, "autopatch sim: WinRM user %s, latency %s per call\n", e.User(), opts.Seed.Latency)
	if *trySchedules != "" {
		fmt.Fprintf(stdout, "autopatch sim: schedule %s (collection %q) has its window %s–%s UTC; schedules written to %s\n",
			trySchedule, tryCollection, tryStart.Format("15:04"), tryEnd.Format("15:04"), *trySchedules)
	}
	if *envFile != "" {
		fmt.Fprintf(stdout, "autopatch sim: settings for serve written to %s\n", *envFile)
	}

	<-ctx.Done()
	fmt.Fprintln(stdout, "autopatch sim: stopping")
	return 0
}

// writeGenerated writes a generated estate's schedules and assignments
// files to dir.
func writeGenerated(dir string, gen estate.ScaleEstate) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	for name, data := range map[string][]byte{"schedules.yaml": gen.SchedulesYAML(), "assignments.yaml": gen.AssignmentsYAML()} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("generate: %w", err)
		}
	}
	return nil
}

// The one-off schedule of --try-schedules.
const (
	trySchedule   = "TRY-IT"
	tryCollection = "Patch - Try it"
)

// writeTrySchedules copies the schedules file from to the file to, adding
// the one-off schedule TRY-IT with the window [start, end). The copy keeps
// the original's schedules and comments; it is written before the env file,
// so whoever waits for the env file finds it.
func writeTrySchedules(from, to string, start, end time.Time) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return fmt.Errorf("schedules: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("schedules %s: %w", from, err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return fmt.Errorf("schedules %s: not a mapping with a schedules list", from)
	}
	var list *yaml.Node
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "schedules" && root.Content[i+1].Kind == yaml.SequenceNode {
			list = root.Content[i+1]
		}
	}
	if list == nil {
		return fmt.Errorf("schedules %s: no schedules list", from)
	}
	var entry yaml.Node
	if err := entry.Encode(map[string]any{
		"name": trySchedule, "collection": tryCollection, "kind": "automatic",
		"windows": []map[string]string{{"start": start.Format(time.RFC3339), "end": end.Format(time.RFC3339)}},
	}); err != nil {
		return fmt.Errorf("schedules: %w", err)
	}
	entry.HeadComment = "Added by autopatch sim --try-schedules: a window that opens two minutes after the estate started."
	list.Content = append(list.Content, &entry)
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return fmt.Errorf("schedules: %w", err)
	}
	if err := os.WriteFile(to, out, 0o644); err != nil {
		return fmt.Errorf("schedules: %w", err)
	}
	return nil
}

// scheduleCollections reads the collection of every schedule in a schedules
// file, by site ("" for a schedule that names none). Only those fields are
// read here; serve validates the whole file.
func scheduleCollections(path string) (map[string][]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("schedules: %w", err)
	}
	var file struct {
		Schedules []struct {
			Name       string `yaml:"name"`
			Collection string `yaml:"collection"`
			Site       string `yaml:"site"`
		} `yaml:"schedules"`
	}
	if err := yaml.Unmarshal(b, &file); err != nil {
		return nil, fmt.Errorf("schedules %s: %w", path, err)
	}
	out := map[string][]string{}
	for i, s := range file.Schedules {
		if s.Collection == "" {
			return nil, fmt.Errorf("schedules %s: schedule %d (%q) has no collection", path, i, s.Name)
		}
		out[s.Site] = append(out[s.Site], s.Collection)
	}
	return out, nil
}

// runSimTenants is `autopatch sim --tenants`: one estate per customer, each
// with the options of a single estate (the seed, --sites, the schedules'
// collections), its own ports and credentials; every customer's schedules
// file is schedules. It writes the tenants file, then the env file.
func runSimTenants(ctx context.Context, opts estate.Options, names []string, tenantsPath, envPath, schedules string, stdout, stderr io.Writer) int {
	abs, err := filepath.Abs(schedules)
	if err != nil {
		fmt.Fprintf(stderr, "autopatch sim: %v\n", err)
		return 1
	}
	var list []estate.Tenant
	files := map[string]string{}
	for _, name := range names {
		list = append(list, estate.Tenant{Name: name, Options: opts})
		files[name] = abs
	}
	ts, err := estate.StartTenants(ctx, list)
	if err != nil {
		fmt.Fprintf(stderr, "autopatch sim: %v\n", err)
		return 1
	}
	defer func() {
		if err := ts.Close(); err != nil {
			opts.Logger.Error("autopatch sim: close", "error", err)
		}
	}()
	if err := ts.WriteFiles(tenantsPath, envPath, files); err != nil {
		fmt.Fprintf(stderr, "autopatch sim: %v\n", err)
		return 1
	}
	for _, name := range ts.Names() {
		e := ts.Estate(name)
		for _, code := range e.SiteCodes() {
			fmt.Fprintf(stdout, "autopatch sim: tenant %s: SCCM site %s (WinRM) at %s\n", name, code, e.SiteEndpoint(code))
		}
		fmt.Fprintf(stdout, "autopatch sim: tenant %s: SCOM (WinRM) at %s, ServiceNow at %s, control at %s (GET /state)\n",
			name, e.SCOMEndpoint(), e.ServiceNowURL(), e.ControlURL())
		fmt.Fprintf(stdout, "autopatch sim: tenant %s: webhooks at /t/%s/webhooks/servicenow/..., secret in $%s; API at /t/%s/api/v1/..., token in $%s\n",
			name, name, estate.SecretEnv(name, "WEBHOOK_SECRET"), name, estate.SecretEnv(name, "API_TOKEN"))
	}
	fmt.Fprintf(stdout, "autopatch sim: tenants file written to %s; settings and secrets for serve written to %s\n", tenantsPath, envPath)
	<-ctx.Done()
	fmt.Fprintln(stdout, "autopatch sim: stopping")
	return 0
}
