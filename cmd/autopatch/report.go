package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/autopatch/autopatch/internal/calendar"
	"github.com/autopatch/autopatch/internal/config"
	"github.com/autopatch/autopatch/internal/ledger"
)

const reportUsage = `Usage: autopatch report (--change CHG… | --cycle YYYY-MM) [--format table|json|csv] [--config FILE] [--tenant NAME]

Prints the compliance ledger of a change, or of a patch cycle (every change
whose planned start is in that UTC month), read from AUTOPATCH_DATABASE_URL:
one outcome per device with SCCM's evidence, and the two numbers of the
monthly report: devices patched outside their window, and devices patched by
the deadline (AUTOPATCH_DEADLINE_NORMAL after the cycle's Patch Tuesday). The
same ledger as GET /api/v1/compliance; json and csv are its two forms.

With --tenant NAME (a tenant of AUTOPATCH_TENANTS_FILE), the ledger is read
from that tenant's schema (tenant_NAME) only, as its /t/NAME/api/v1/compliance
reads it; without it, or with --tenant default, from the schema public (the default tenant's).

Flags:
`

func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return report(ctx, args, stdout, stderr, os.Getenv, time.Now)
}

func report(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string, now func() time.Time) int {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	change := fs.String("change", "", "the change `number` (CHG…)")
	cycle := fs.String("cycle", "", "the patch cycle, `YYYY-MM`")
	format := fs.String("format", "table", "table, json or csv")
	configFile := fs.String("config", "", "optional YAML configuration `file`")
	tenantName := fs.String("tenant", "", tenantFlagDoc)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), reportUsage)
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "autopatch report: "+format+"\n", a...)
		return code
	}
	if (*change == "") == (*cycle == "") {
		return fail(2, "give exactly one of --change and --cycle")
	}
	var month calendar.Month
	if *cycle != "" {
		m, err := calendar.ParseMonth(*cycle)
		if err != nil || !cyclePattern(*cycle) {
			return fail(2, "--cycle: want YYYY-MM, got %q", *cycle)
		}
		month = m
	}
	if *format != "table" && *format != "json" && *format != "csv" {
		return fail(2, "--format: want table, json or csv, got %q", *format)
	}
	cfg, err := config.Load(getenv, *configFile)
	if err != nil {
		return fail(1, "%v", err)
	}
	tenant, err := chooseTenant(cfg, *tenantName, getenv)
	if isUsage(err) {
		return fail(2, "%v", err)
	}
	if err != nil {
		return fail(1, "%v", err)
	}
	cfg = tenant.cfg
	st, err := tenant.openStore(ctx, "report")
	if err != nil {
		return fail(1, "%v", err)
	}
	defer st.Close()
	opts := ledgerOptions(cfg)
	var l ledger.Ledger
	if *change != "" {
		l, err = ledger.ForChange(ctx, st.Pool, *change, now(), opts)
	} else {
		l, err = ledger.ForCycle(ctx, st.Pool, month, now(), opts)
	}
	if errors.Is(err, ledger.ErrNotFound) {
		return fail(1, "--change: autopatch has received no change %q%s", *change, tenant.at())
	}
	if err != nil {
		return fail(1, "%v", tenant.explain(err))
	}
	switch *format {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(l)
	case "csv":
		err = ledger.WriteCSV(stdout, l)
	default:
		err = ledger.WriteTable(stdout, l)
	}
	if err != nil {
		return fail(1, "%v", err)
	}
	return 0
}

// cyclePattern: four digits, a dash, two digits (ParseMonth alone would
// take other spellings).
func cyclePattern(s string) bool {
	if len(s) != 7 || s[4] != '-' {
		return false
	}
	for i, r := range s {
		if i != 4 && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// ledgerOptions are the ledger's deadline settings from cfg.
func ledgerOptions(cfg *config.Config) ledger.Options {
	return ledger.Options{
		DeadlineAfter:     cfg.DeadlineNormal,
		DeadlineCritical:  cfg.DeadlineCritical,
		DeadlineEmergency: cfg.DeadlineEmergency,
	}
}
