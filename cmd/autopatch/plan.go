package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/autopatch/autopatch/internal/calendar"
	"github.com/autopatch/autopatch/internal/config"
	"github.com/autopatch/autopatch/internal/safety"
)

const planUsage = `Usage: autopatch plan --schedules FILE (--month YYYY-MM | --from T --to T) [flags]
       autopatch plan --schedules FILE --change-start T --change-end T [flags]
       autopatch plan --schedules FILE --check --assignments FILE [--month YYYY-MM] [flags]
       autopatch plan --tenant NAME ... (the tenant's schedules file instead of --schedules)

Shows the windows of a schedules file, or the plan of a change window, offline:
no database, no network.

Flags:
  --schedules FILE     the schedules file (YAML, docs/architecture.md §4.2); required
                       unless --tenant
  --tenant NAME        a tenant of AUTOPATCH_TENANTS_FILE: its schedules_file, and
                       with --check its services_file, as serve reads them for it
                       (the tenants file must load as serve loads it, secrets
                       included); "default" is the tenant of the AUTOPATCH_*
                       settings: AUTOPATCH_SCHEDULES_FILE and AUTOPATCH_SERVICES_FILE.
                       Excludes --schedules and --services
  --config FILE        with --tenant: the YAML configuration file, as serve's
  --month YYYY-MM      the windows of that patch cycle: the cycle a window belongs to
                       is the month of its Patch Tuesday (patch_tuesday schedules,
                       so PT+25 of December falls in January but shows under
                       2026-12), the calendar month (nth_weekday), or the UTC month
                       of its start (one-off windows)
  --from T, --to T     the windows whose start lies in [from, to); RFC 3339,
                       e.g. 2026-12-01T00:00:00Z
  --change-start T,    a change's planned start and end: shows, for each schedule,
  --change-end T       its earliest window with start >= change start and end <=
                       change end, or why it has none. RFC 3339, or ServiceNow's
                       "YYYY-MM-DD HH:MM:SS" in UTC. --month or --from/--to may be
                       given too, to list those windows as well.
  --format table|json  table (default) is for people; json is the contract:
                       {"windows":[{"schedule","start","end","start_utc","end_utc"}]}
                       and with a change {"plan":[...],"unplaceable":[{"schedule","reason"}]}
                       (start/end carry the schedule's UTC offset, *_utc end in Z;
                       sorted by start, then schedule)
  --check              check service safety (README, "Service safety") instead of
                       listing windows: no more than max_unavailable devices of a
                       service and tier in windows at once (default: all but one),
                       tiers in order (backend, middle, frontend) in every cycle;
                       with --change-start/--change-end, the change's plan too,
                       and what the hold policy would leave out of it
  --assignments FILE   with --check: the devices, YAML:
                       devices: [{name, service, tier, schedule}]
  --services FILE      with --check: optional per-service limits, YAML:
                       services: [{name, max_unavailable}]
  --cycles N           with --check: how many cycles, from --month (default: the
                       current one, windows already over left out); default 12
  -h, --help           this text

Exit status: 0 done (with --check: no violation), 1 unreadable or invalid file,
2 bad flags, 3 (--check) violations found.
`

// planOptions are runPlan's flags, parsed and checked.
type planOptions struct {
	schedulesFile string
	format        string
	month         *calendar.Month
	hasRange      bool // --from/--to given
	from, to      time.Time
	hasChange     bool // --change-start/--change-end given
	changeStart   time.Time
	changeEnd     time.Time
	// --check and its files.
	check           bool
	assignmentsFile string
	servicesFile    string
	cycles          int
	// --tenant and the configuration it is read from.
	tenant     string
	configFile string
}

// runPlan implements `autopatch plan` (docs/architecture.md §4.1).
func runPlan(_ context.Context, args []string, stdout, stderr io.Writer) int {
	return planMain(args, os.Getenv, stdout, stderr)
}

// planMain is runPlan with the environment as a function, for tests.
func planMain(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	opts, err := parsePlanFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, planUsage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "autopatch plan: %v\nRun 'autopatch plan --help' for usage.\n", err)
		return 2
	}
	schedulesFlag := "--schedules"
	if opts.tenant != "" {
		if code := planTenantFiles(&opts, getenv, stderr); code != 0 {
			return code
		}
		schedulesFlag = "--tenant " + opts.tenant + ": schedules file"
	}
	data, err := os.ReadFile(opts.schedulesFile)
	if err != nil {
		fmt.Fprintf(stderr, "autopatch plan: %s: %v\n", schedulesFlag, err)
		return 1
	}
	schedules, err := calendar.Parse(data)
	if err != nil {
		fmt.Fprintf(stderr, "autopatch plan: %s: %v\n", opts.schedulesFile, err)
		return 1
	}

	if opts.check {
		return runPlanCheck(opts, schedules, stdout, stderr)
	}

	var out planOutput
	if opts.month != nil || opts.hasRange {
		ws := []calendar.Window{}
		for _, s := range schedules {
			if opts.month != nil {
				ws = append(ws, s.CycleWindows(*opts.month)...)
			} else {
				ws = append(ws, s.Windows(opts.from, opts.to)...)
			}
		}
		slices.SortFunc(ws, planCompareWindows)
		out.windows = ws
	}
	if opts.hasChange {
		res := calendar.Plan(schedules, opts.changeStart, opts.changeEnd)
		out.plan = &res
	}

	if opts.format == "json" {
		err = writePlanJSON(stdout, opts, out)
	} else {
		err = writePlanTable(stdout, opts, out)
	}
	if err != nil {
		fmt.Fprintf(stderr, "autopatch plan: write output: %v\n", err)
		return 1
	}
	return 0
}

func parsePlanFlags(args []string) (planOptions, error) {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	// The flag package's own messages and usage are replaced by planUsage and
	// errors that name the flag.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var (
		opts                                    planOptions
		month, from, to, changeStart, changeEnd string
	)
	fs.StringVar(&opts.schedulesFile, "schedules", "", "")
	fs.StringVar(&opts.format, "format", "table", "")
	fs.StringVar(&month, "month", "", "")
	fs.StringVar(&from, "from", "", "")
	fs.StringVar(&to, "to", "", "")
	fs.StringVar(&changeStart, "change-start", "", "")
	fs.StringVar(&changeEnd, "change-end", "", "")
	fs.BoolVar(&opts.check, "check", false, "")
	fs.StringVar(&opts.assignmentsFile, "assignments", "", "")
	fs.StringVar(&opts.servicesFile, "services", "", "")
	fs.IntVar(&opts.cycles, "cycles", safety.DefaultCycles, "")
	fs.StringVar(&opts.tenant, "tenant", "", "")
	fs.StringVar(&opts.configFile, "config", "", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return opts, err
		}
		return opts, err
	}
	if fs.NArg() > 0 {
		return opts, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	switch {
	case opts.tenant != "" && opts.schedulesFile != "":
		// Two sources of schedules: which one the windows came from would
		// be a guess. Without --tenant, --schedules tries any file.
		return opts, fmt.Errorf("--tenant and --schedules exclude each other: --tenant %s reads the tenant's own schedules file", opts.tenant)
	case opts.tenant != "" && opts.servicesFile != "":
		return opts, fmt.Errorf("--tenant and --services exclude each other: --tenant %s reads the tenant's own services file", opts.tenant)
	case opts.tenant == "" && opts.configFile != "":
		return opts, fmt.Errorf("--config goes with --tenant: plan reads no other setting")
	case opts.tenant == "" && opts.schedulesFile == "":
		return opts, fmt.Errorf("--schedules: required")
	}
	if opts.format != "table" && opts.format != "json" {
		return opts, fmt.Errorf("--format: want table or json, got %q", opts.format)
	}
	if month != "" {
		m, err := calendar.ParseMonth(month)
		if err != nil {
			return opts, fmt.Errorf("--month: want YYYY-MM, got %q", month)
		}
		opts.month = &m
	}
	if (from == "") != (to == "") {
		return opts, fmt.Errorf("--from and --to go together")
	}
	if from != "" {
		opts.hasRange = true
		if opts.month != nil {
			return opts, fmt.Errorf("--month and --from/--to exclude each other")
		}
		var err error
		if opts.from, err = planParseTime("--from", from, false); err != nil {
			return opts, err
		}
		if opts.to, err = planParseTime("--to", to, false); err != nil {
			return opts, err
		}
		if !opts.to.After(opts.from) {
			return opts, fmt.Errorf("--to: %s is not after --from %s", to, from)
		}
	}
	if (changeStart == "") != (changeEnd == "") {
		return opts, fmt.Errorf("--change-start and --change-end go together")
	}
	if changeStart != "" {
		opts.hasChange = true
		var err error
		if opts.changeStart, err = planParseTime("--change-start", changeStart, true); err != nil {
			return opts, err
		}
		if opts.changeEnd, err = planParseTime("--change-end", changeEnd, true); err != nil {
			return opts, err
		}
		if !opts.changeEnd.After(opts.changeStart) {
			return opts, fmt.Errorf("--change-end: %s is not after --change-start %s", changeEnd, changeStart)
		}
	}
	if opts.check {
		switch {
		case opts.assignmentsFile == "":
			return opts, fmt.Errorf("--check: --assignments FILE is required")
		case opts.hasRange:
			return opts, fmt.Errorf("--check covers whole cycles: give --month (the first) and --cycles, not --from/--to")
		case opts.cycles < 1 || opts.cycles > 120:
			return opts, fmt.Errorf("--cycles: want 1 to 120, got %d", opts.cycles)
		}
		return opts, nil
	}
	for _, f := range []struct {
		name string
		set  bool
	}{{"--assignments", opts.assignmentsFile != ""}, {"--services", opts.servicesFile != ""}, {"--cycles", opts.cycles != safety.DefaultCycles}} {
		if f.set {
			return opts, fmt.Errorf("%s goes with --check", f.name)
		}
	}
	if opts.month == nil && !opts.hasRange && !opts.hasChange {
		return opts, fmt.Errorf("want --month, --from/--to or --change-start/--change-end")
	}
	return opts, nil
}

// planTenantFiles points opts at the files serve reads for the tenant of
// --tenant: its schedules file and, with --check, its services file (the
// limits serve enforces for it). 0, or the exit status: 2 for a --tenant
// that names no tenant, 1 for settings or a tenants file that do not load.
func planTenantFiles(opts *planOptions, getenv func(string) string, stderr io.Writer) int {
	cfg, err := config.Load(getenv, opts.configFile)
	if err == nil {
		var tenant chosenTenant
		if tenant, err = chooseTenant(cfg, opts.tenant, getenv); err == nil {
			cfg = tenant.cfg
			if cfg.SchedulesFile == "" {
				// Only the default tenant can lack one: the tenants file
				// requires schedules_file.
				fmt.Fprintf(stderr, "autopatch plan: --tenant %s: AUTOPATCH_SCHEDULES_FILE is not set\n", opts.tenant)
				return 2
			}
			opts.schedulesFile = cfg.SchedulesFile
			if opts.check {
				opts.servicesFile = cfg.ServicesFile
			}
			return 0
		}
	}
	fmt.Fprintf(stderr, "autopatch plan: %v\n", err)
	if isUsage(err) {
		return 2
	}
	return 1
}

// planServiceNowLayout is how ServiceNow's Table API writes glide_date_time values (UTC).
const planServiceNowLayout = "2006-01-02 15:04:05"

func planParseTime(name, value string, serviceNow bool) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, value); err == nil {
		return t, nil
	}
	if serviceNow {
		if t, err := time.Parse(planServiceNowLayout, value); err == nil {
			return t, nil
		}
		return time.Time{}, fmt.Errorf("%s: want RFC 3339 (2026-12-12T00:00:00Z) or YYYY-MM-DD HH:MM:SS in UTC, got %q", name, value)
	}
	return time.Time{}, fmt.Errorf("%s: want RFC 3339 such as 2026-12-01T00:00:00Z, got %q", name, value)
}

// planOutput is what runPlan shows: the listed windows (nil unless --month or
// --from/--to) and the plan (nil unless a change window).
type planOutput struct {
	windows []calendar.Window
	plan    *calendar.PlanResult
}

func planCompareWindows(a, b calendar.Window) int {
	if c := a.Start.Compare(b.Start); c != 0 {
		return c
	}
	return strings.Compare(a.Schedule, b.Schedule)
}

type planUnplaceableJSON struct {
	Schedule string `json:"schedule"`
	Reason   string `json:"reason"`
}

// planJSON holds pointers so that a section is left out when not asked for, and
// shown as [] (never null) when asked for and empty.
type planJSON struct {
	// Tenant is --tenant's, when given: whose schedules these are.
	Tenant      string                 `json:"tenant,omitempty"`
	Windows     *[]calendar.WindowJSON `json:"windows,omitempty"`
	Plan        *[]calendar.WindowJSON `json:"plan,omitempty"`
	Unplaceable *[]planUnplaceableJSON `json:"unplaceable,omitempty"`
}

func planWindowsJSON(ws []calendar.Window) *[]calendar.WindowJSON {
	out := make([]calendar.WindowJSON, 0, len(ws))
	for _, w := range ws {
		out = append(out, w.JSON())
	}
	return &out
}

func writePlanJSON(w io.Writer, opts planOptions, out planOutput) error {
	doc := planJSON{Tenant: opts.tenant}
	if out.windows != nil {
		doc.Windows = planWindowsJSON(out.windows)
	}
	if out.plan != nil {
		doc.Plan = planWindowsJSON(out.plan.Windows)
		u := make([]planUnplaceableJSON, 0, len(out.plan.Unplaceable))
		for _, x := range out.plan.Unplaceable {
			u = append(u, planUnplaceableJSON{Schedule: x.Schedule, Reason: x.Reason})
		}
		doc.Unplaceable = &u
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

func writePlanTable(w io.Writer, opts planOptions, out planOutput) error {
	var b strings.Builder
	writePlanTenant(&b, opts)
	if out.windows != nil {
		if opts.month != nil {
			fmt.Fprintf(&b, "Windows of cycle %s\n\n", opts.month)
		} else {
			fmt.Fprintf(&b, "Windows starting in [%s, %s)\n\n", opts.from.Format(time.RFC3339), opts.to.Format(time.RFC3339))
		}
		writePlanWindows(&b, out.windows, "No windows.")
	}
	if out.plan != nil {
		if out.windows != nil {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "Plan for the change %s – %s\n\n", planFormatUTC(opts.changeStart), planFormatUTC(opts.changeEnd))
		writePlanWindows(&b, out.plan.Windows, "No schedule has a window inside the change.")
		if len(out.plan.Unplaceable) > 0 {
			b.WriteString("\nUnplaceable\n\n")
			tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "SCHEDULE\tREASON")
			for _, u := range out.plan.Unplaceable {
				fmt.Fprintf(tw, "%s\t%s\n", u.Schedule, u.Reason)
			}
			_ = tw.Flush() // writes to a strings.Builder cannot fail
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writePlanTenant heads the table with the tenant and the files read for
// it: an operator of several customers sees whose windows these are.
func writePlanTenant(b *strings.Builder, opts planOptions) {
	if opts.tenant == "" {
		return
	}
	fmt.Fprintf(b, "Tenant %s: schedules %s", opts.tenant, opts.schedulesFile)
	if opts.servicesFile != "" {
		fmt.Fprintf(b, ", services %s", opts.servicesFile)
	}
	b.WriteString("\n\n")
}

func writePlanWindows(b *strings.Builder, ws []calendar.Window, none string) {
	if len(ws) == 0 {
		b.WriteString(none + "\n")
		return
	}
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCHEDULE\tCYCLE\tLOCAL\tUTC\tWEEKDAY")
	for _, w := range ws {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", w.Schedule, w.Cycle, w.LocalString(), w.UTCString(), w.Start.Weekday())
	}
	_ = tw.Flush() // writes to a strings.Builder cannot fail
}

func planFormatUTC(t time.Time) string {
	t = t.UTC()
	if t.Second() != 0 {
		return t.Format("Mon 2006-01-02 15:04:05 MST")
	}
	return t.Format("Mon 2006-01-02 15:04 MST")
}

// planCheckExit is the exit status of --check when it finds violations.
const planCheckExit = 3

// runPlanCheck implements --check: the service-safety checker offline, on
// the schedules file and an assignments file.
func runPlanCheck(opts planOptions, schedules []calendar.Schedule, stdout, stderr io.Writer) int {
	known := map[string]bool{}
	for _, s := range schedules {
		known[s.Name] = true
	}
	data, err := os.ReadFile(opts.assignmentsFile)
	if err != nil {
		fmt.Fprintf(stderr, "autopatch plan: --assignments: %v\n", err)
		return 1
	}
	as, err := safety.ParseAssignments(data, func(s string) bool { return known[s] })
	if err != nil {
		fmt.Fprintf(stderr, "autopatch plan: %s: %v\n", opts.assignmentsFile, err)
		return 1
	}
	var rules *safety.Services
	if opts.servicesFile != "" {
		if data, err = os.ReadFile(opts.servicesFile); err != nil {
			fmt.Fprintf(stderr, "autopatch plan: --services: %v\n", err)
			return 1
		}
		if rules, err = safety.ParseServices(data); err != nil {
			fmt.Fprintf(stderr, "autopatch plan: %s: %v\n", opts.servicesFile, err)
			return 1
		}
	}
	h := safety.Horizon{Cycles: opts.cycles}
	if opts.month != nil {
		h.First = *opts.month
	} else {
		// As the service checks: the cycle in progress and the ones after
		// it, plus the previous cycle's windows still ahead.
		h = safety.NextCycles(time.Now())
		h.Cycles = opts.cycles + 1
	}
	inv, err := safety.InventoryOf(safety.NewTimeline(schedules, h), rules, as)
	if err != nil {
		fmt.Fprintf(stderr, "autopatch plan: %s: %v\n", opts.assignmentsFile, err)
		return 1
	}
	out := planCheck{horizon: h, devices: len(as), services: inv.Services(), assignments: as, violations: inv.Check()}
	if opts.hasChange {
		out.plan = planCheckOfChange(inv, schedules, opts.changeStart, opts.changeEnd)
	}
	if opts.format == "json" {
		err = writePlanCheckJSON(stdout, opts, out)
	} else {
		err = writePlanCheckTable(stdout, opts, out)
	}
	if err != nil {
		fmt.Fprintf(stderr, "autopatch plan: write output: %v\n", err)
		return 1
	}
	if len(out.violations) > 0 || (out.plan != nil && len(out.plan.Violations) > 0) {
		return planCheckExit
	}
	return 0
}

// planCheckOfChange checks the plan of a change over every automatic and
// manual_reboot schedule (a change that names none), with the manual_patch
// windows inside it, as the plan job does; under the hold policy.
func planCheckOfChange(inv *safety.Inventory, schedules []calendar.Schedule, start, end time.Time) *safety.PlanVerdict {
	var scope, byHand []calendar.Schedule
	for _, s := range schedules {
		if s.Kind == calendar.KindManualPatch {
			byHand = append(byHand, s)
		} else {
			scope = append(scope, s)
		}
	}
	res := calendar.Plan(scope, start, end)
	var entries []safety.PlanEntry
	for _, w := range res.Windows {
		entries = append(entries, safety.PlanEntry{Schedule: w.Schedule, Window: &w})
	}
	for _, u := range res.Unplaceable {
		entries = append(entries, safety.PlanEntry{Schedule: u.Schedule, Reason: u.Reason})
	}
	for _, w := range calendar.Plan(byHand, start, end).Windows {
		entries = append(entries, safety.PlanEntry{Schedule: w.Schedule, Window: &w, Fixed: true})
	}
	v := inv.CheckPlan(entries, true)
	return &v
}

// planCheck is what --check shows.
type planCheck struct {
	horizon           safety.Horizon
	devices, services int
	assignments       []safety.Assignment
	violations        []safety.Violation
	plan              *safety.PlanVerdict // with a change window
}

type planCheckJSON struct {
	Tenant string `json:"tenant,omitempty"` // as planJSON's
	Check  struct {
		FirstCycle string                 `json:"first_cycle"`
		LastCycle  string                 `json:"last_cycle"`
		Devices    int                    `json:"devices"`
		Services   int                    `json:"services"`
		Violations []safety.ViolationJSON `json:"violations"`
	} `json:"check"`
	Plan *planPlanCheckJSON `json:"plan_check,omitempty"`
}

type planPlanCheckJSON struct {
	Violations []safety.ViolationJSON `json:"violations"`
	// Held is what the hold policy would leave out of the change.
	Held []planHeldJSON `json:"held"`
}

type planHeldJSON struct {
	Schedule string `json:"schedule"`
	Reason   string `json:"reason"`
}

func planViolationsJSON(vs []safety.Violation, as []safety.Assignment) []safety.ViolationJSON {
	out := make([]safety.ViolationJSON, 0, len(vs))
	for _, v := range vs {
		out = append(out, v.JSON(as))
	}
	return out
}

func writePlanCheckJSON(w io.Writer, opts planOptions, out planCheck) error {
	doc := planCheckJSON{Tenant: opts.tenant}
	doc.Check.FirstCycle, doc.Check.LastCycle = out.horizon.First.String(), out.horizon.Last().String()
	doc.Check.Devices, doc.Check.Services = out.devices, out.services
	doc.Check.Violations = planViolationsJSON(out.violations, out.assignments)
	if out.plan != nil {
		doc.Plan = &planPlanCheckJSON{Violations: planViolationsJSON(out.plan.Violations, out.assignments), Held: []planHeldJSON{}}
		for _, h := range out.plan.Held {
			doc.Plan.Held = append(doc.Plan.Held, planHeldJSON{Schedule: h.Schedule, Reason: h.Reason})
		}
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

func writePlanCheckTable(w io.Writer, opts planOptions, out planCheck) error {
	var b strings.Builder
	writePlanTenant(&b, opts)
	fmt.Fprintf(&b, "Service safety: %d devices in %d services, cycles %s to %s\n\n",
		out.devices, out.services, out.horizon.First, out.horizon.Last())
	writePlanSummaries(&b, out.violations, out.assignments, "No violations.")
	if out.plan != nil {
		fmt.Fprintf(&b, "\nPlan for the change %s – %s\n\n", planFormatUTC(opts.changeStart), planFormatUTC(opts.changeEnd))
		writePlanSummaries(&b, out.plan.Violations, out.assignments, "No violations.")
		if len(out.plan.Held) > 0 {
			b.WriteString("\nThe hold policy would leave out of the change:\n")
			for _, h := range out.plan.Held {
				fmt.Fprintf(&b, "- %s\n", h.Schedule)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writePlanSummaries(b *strings.Builder, vs []safety.Violation, as []safety.Assignment, none string) {
	if len(vs) == 0 {
		b.WriteString(none + "\n")
		return
	}
	sums := safety.Summarize(vs)
	fmt.Fprintf(b, "%d violation(s)", len(vs))
	if len(sums) < len(vs) {
		fmt.Fprintf(b, ", %d distinct", len(sums))
	}
	b.WriteString(":\n")
	for _, s := range sums {
		fmt.Fprintf(b, "- %s", s)
		if devices := safety.Devices(s.First, as); len(devices) > 0 {
			fmt.Fprintf(b, " — devices: %s", strings.Join(devices, ", "))
		}
		b.WriteString("\n")
	}
}
