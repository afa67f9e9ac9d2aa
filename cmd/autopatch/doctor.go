package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/connectors/scom"
	"github.com/autopatch/autopatch/connectors/servicenow"
	"github.com/autopatch/autopatch/connectors/winrm"
	"github.com/autopatch/autopatch/internal/config"
	"github.com/autopatch/autopatch/internal/schedules"
)

const doctorUsage = `Usage: autopatch doctor [flags]

Runs read-only checks against the configured SCCM site, SCOM management group
and ServiceNow instance, with serve's configuration, and prints one line per
check: ok, warn or FAIL, the check's name, what was found and, when not ok,
what to do. Exits 1 when any check FAILs, 0 otherwise (warnings included).
Nothing is created, changed or deleted anywhere.

Update groups: the groups a change may name are not in any file; give them with
--update-group (repeatable) and/or AUTOPATCH_DOCTOR_UPDATE_GROUPS
(comma-separated). Both lists are checked.

Flags:
`

// Statuses of a check, as printed.
const (
	statusOK   = "ok"
	statusWarn = "warn"
	statusFail = "FAIL"
)

// check is one line of the doctor's report.
type check struct {
	Status string `json:"status"`
	Name   string `json:"name"`
	Detail string `json:"detail"`
	// Fix says what to do; empty when the check is ok.
	Fix string `json:"fix,omitempty"`
}

// doctorReport is the --format json document.
type doctorReport struct {
	OK     bool    `json:"ok"`
	Checks []check `json:"checks"`
}

// runDoctor is `autopatch doctor`: 0 when no check fails, 1 when one does,
// 2 for bad usage.
func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return doctorMain(ctx, args, os.Getenv, stdout, stderr)
}

// doctorMain is runDoctor with the environment as a function, for tests.
func doctorMain(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, doctorUsage)
		fs.PrintDefaults()
	}
	configFile := fs.String("config", "", "optional YAML configuration `FILE` (as serve's)")
	format := fs.String("format", "text", "output `format`: text or json")
	timeout := fs.Duration("timeout", 3*time.Minute, "give up on the remote checks after this `duration`")
	var groups []string
	fs.Func("update-group", "software update group `NAME` a change may name (repeatable)", func(v string) error {
		if strings.TrimSpace(v) == "" {
			return errors.New("empty name")
		}
		groups = append(groups, v)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "autopatch doctor: unexpected arguments: %v\n", fs.Args())
		fs.Usage()
		return 2
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintf(stderr, "autopatch doctor: --format %q: want text or json\n", *format)
		return 2
	}

	var checks []check
	cfg, err := config.Load(getenv, *configFile)
	if err != nil {
		// Nothing can be reached with an invalid configuration.
		checks = append(checks, configChecks(err)...)
	} else {
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		checks = (&doctor{cfg: cfg, updateGroups: mergeGroups(groups, cfg.DoctorUpdateGroups)}).run(ctx)
	}

	failed := slices.ContainsFunc(checks, func(c check) bool { return c.Status == statusFail })
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(doctorReport{OK: !failed, Checks: checks}); err != nil {
			fmt.Fprintf(stderr, "autopatch doctor: %v\n", err)
			return 1
		}
	} else {
		printChecks(stdout, checks)
	}
	if failed {
		return 1
	}
	return 0
}

// printChecks writes one line per check and a count.
func printChecks(w io.Writer, checks []check) {
	counts := map[string]int{}
	for _, c := range checks {
		counts[c.Status]++
		line := c.Name + ": " + c.Detail
		if c.Fix != "" {
			line += " — fix: " + c.Fix
		}
		fmt.Fprintf(w, "%-4s  %s\n", c.Status, oneLine(line))
	}
	fmt.Fprintf(w, "autopatch doctor: %d ok, %d warn, %d FAIL\n", counts[statusOK], counts[statusWarn], counts[statusFail])
}

// oneLine folds remote error texts (PowerShell's are multi-line) into one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// mergeGroups joins the flag's groups and the setting's, each name once, in order.
func mergeGroups(flagGroups []string, setting string) []string {
	var out []string
	for _, g := range append(slices.Clone(flagGroups), strings.Split(setting, ",")...) {
		if g = strings.TrimSpace(g); g != "" && !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out
}

// configChecks turns a configuration error (errors.Join of one error per
// setting) into one FAIL line per setting.
func configChecks(err error) []check {
	var out []check
	for _, msg := range strings.Split(err.Error(), "\n") {
		if msg = strings.TrimSpace(msg); msg != "" {
			out = append(out, check{Status: statusFail, Name: "config", Detail: msg,
				Fix: "set it in the environment (AUTOPATCH_*, secrets also as AUTOPATCH_*_FILE) or in the --config file; see README, Configuration"})
		}
	}
	return out
}

// doctor runs the checks with one configuration.
type doctor struct {
	cfg          *config.Config
	updateGroups []string
}

// run checks the configuration, then the three systems at once (they are
// independent, and each WinRM call takes seconds), and returns the checks in a
// fixed order: configuration, SCCM, SCOM, ServiceNow.
func (d *doctor) run(ctx context.Context) []check {
	var checks []check
	if err := d.cfg.ValidateServe(); err != nil {
		checks = append(checks, configChecks(err)...)
	} else {
		checks = append(checks, check{Status: statusOK, Name: "config", Detail: "every setting serve requires is set and valid"})
	}
	collections, scheduleChecks := d.scheduleCollections()
	checks = append(checks, scheduleChecks...)
	if d.cfg.Force.Collection != "" {
		// Forced remediation needs its collection too (README, Forced remediation).
		collections = append(collections, scheduleCollection{name: d.cfg.Force.Collection, forced: true})
	}

	parts := make([][]check, 3)
	var wg sync.WaitGroup
	for i, f := range []func(context.Context) []check{
		func(ctx context.Context) []check { return d.sccm(ctx, collections) },
		d.scom,
		d.serviceNow,
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			parts[i] = f(ctx)
		}()
	}
	wg.Wait()
	for _, p := range parts {
		checks = append(checks, p...)
	}
	return checks
}

// scheduleCollection is one collection of the schedules file with the
// schedules bound to it.
type scheduleCollection struct {
	name      string
	site      string
	schedules []string
	forced    bool // AUTOPATCH_FORCE_COLLECTION
}

// scheduleCollections reads the schedules file as serve does.
func (d *doctor) scheduleCollections() ([]scheduleCollection, []check) {
	if d.cfg.SchedulesFile == "" {
		return nil, nil // reported by the configuration check
	}
	list, err := schedules.ReadFile(d.cfg.SchedulesFile)
	if err == nil {
		err = schedules.ResolveSites(list, d.cfg.SiteCodes())
	}
	if err != nil {
		return nil, []check{{Status: statusFail, Name: "schedules", Detail: err.Error(),
			Fix: "correct the schedules file (README, Schedules file); `autopatch plan --schedules FILE` shows what it means"}}
	}
	var out []scheduleCollection
	index := map[string]int{}
	for _, s := range list {
		i, ok := index[s.Collection]
		if !ok {
			i = len(out)
			index[s.Collection] = i
			out = append(out, scheduleCollection{name: s.Collection, site: s.Site})
		}
		out[i].schedules = append(out[i].schedules, s.Name)
	}
	return out, []check{{Status: statusOK, Name: "schedules",
		Detail: fmt.Sprintf("%s: %d schedules, %d collections", d.cfg.SchedulesFile, len(list), len(out))}}
}

// ---- SCCM ------------------------------------------------------------------

// sccm checks the site of AUTOPATCH_SCCM_*, or each site of
// AUTOPATCH_SCCM_SITES with its own schedules' collections, one after the
// other (docs/architecture.md §10.1). A site's checks are named sccm[CODE].
func (d *doctor) sccm(ctx context.Context, collections []scheduleCollection) []check {
	if len(d.cfg.Sites) == 0 {
		return d.sccmSite(ctx, "sccm", "AUTOPATCH_SCCM", "", d.cfg.SCCM, collections)
	}
	var checks []check
	for _, site := range d.cfg.Sites {
		var own []scheduleCollection
		for _, c := range collections {
			// The forced collection is needed at every site: each forces
			// its own devices (docs/architecture.md §9.2, §10.1).
			if c.site == site.Code || c.forced {
				own = append(own, c)
			}
		}
		checks = append(checks, d.sccmSite(ctx, "sccm["+site.Code+"]", "AUTOPATCH_SCCM_"+site.Code, site.Code, site.WinRM, own)...)
	}
	return checks
}

func (d *doctor) sccmSite(ctx context.Context, system, prefix, code string, w config.WinRM, collections []scheduleCollection) []check {
	if w.Endpoint == "" || w.User == "" || !w.Password.IsSet() {
		return []check{skipped(system, prefix+"_ENDPOINT, _USER or _PASSWORD is not set")}
	}
	runner, err := winrm.New(winrmConfig(w), nil)
	if err != nil {
		return []check{{Status: statusFail, Name: system + ".winrm", Detail: err.Error(),
			Fix: "correct the " + prefix + "_* settings (README, Configuration)"}}
	}
	defer runner.Close()
	names := make([]string, len(collections))
	for i, c := range collections {
		names[i] = c.name
	}
	rep, err := sccm.New(runner, code, nil).Doctor(ctx, names, d.updateGroups)
	if err != nil {
		return []check{winrmFailure(system, prefix, err)}
	}
	checks := []check{winrmOK(system, w)}
	if rep.ModuleError != "" {
		return append(checks, check{Status: statusFail, Name: system + ".module", Detail: rep.ModuleError,
			Fix: "install the Configuration Manager console on the host AUTOPATCH_SCCM_ENDPOINT names (the site server), so that SMS_ADMIN_UI_PATH is set and the ConfigurationManager module loads for the service account"})
	}
	checks = append(checks, check{Status: statusOK, Name: system + ".module", Detail: "ConfigurationManager module loaded"})
	if rep.SiteError != "" {
		return append(checks, check{Status: statusFail, Name: system + ".site_drive", Detail: rep.SiteError,
			Fix: "give the service account a Configuration Manager security role (Administration > Security > Administrative Users) so that the module creates the CMSite drive, and connect to the site server"})
	}
	checks = append(checks, check{Status: statusOK, Name: system + ".site_drive", Detail: "CMSite drive " + rep.SiteCode + ":"})

	windows := 0
	for i, c := range rep.Collections {
		name := fmt.Sprintf("%s.collection %q", system, c.Name)
		var used string
		if i < len(collections) {
			used = "schedule " + strings.Join(collections[i].schedules, ", ")
			if collections[i].forced {
				used = "AUTOPATCH_FORCE_COLLECTION"
			}
		}
		switch {
		case !c.Found:
			checks = append(checks, check{Status: statusFail, Name: name, Detail: "not found (" + used + ")",
				Fix: "create the device collection in the console (Assets and Compliance > Device Collections), or correct the schedule's collection in the schedules file; names are compared exactly, case included"})
		case c.UserCollection:
			checks = append(checks, check{Status: statusFail, Name: name, Detail: "is a user collection (" + used + ")",
				Fix: "bind the schedule to a device collection: autopatch adds devices by ResourceId and deploys to devices"})
		default:
			checks = append(checks, check{Status: statusOK, Name: name, Detail: "device collection (" + used + ")"})
			if c.MaintenanceWindows > 0 {
				windows++
				checks = append(checks, check{Status: statusWarn, Name: fmt.Sprintf("%s.maintenance_windows %q", system, c.Name),
					Detail: fmt.Sprintf("has %d maintenance window(s) of its own", c.MaintenanceWindows),
					Fix:    "delete them (collection Properties > Maintenance Windows): autopatch opens the window by enabling the deployment, and a member installs only inside its collections' own maintenance windows, so the two fight"})
			}
		}
	}
	if windows == 0 && len(rep.Collections) > 0 {
		checks = append(checks, check{Status: statusOK, Name: system + ".maintenance_windows",
			Detail: "no schedule collection has maintenance windows of its own"})
	}

	if len(d.updateGroups) == 0 {
		checks = append(checks, check{Status: statusWarn, Name: system + ".update_group", Detail: "no update group given, none checked",
			Fix: "pass --update-group NAME (repeatable) or set AUTOPATCH_DOCTOR_UPDATE_GROUPS to the groups your changes will name"})
	}
	for _, g := range rep.UpdateGroups {
		name := fmt.Sprintf("%s.update_group %q", system, g.Name)
		if g.Found {
			checks = append(checks, check{Status: statusOK, Name: name, Detail: "software update group exists"})
			continue
		}
		checks = append(checks, check{Status: statusFail, Name: name, Detail: "not found",
			Fix: "create the group (Software Library > Software Updates > Software Update Groups) or correct the name the change carries; names are compared exactly, case included"})
	}
	return checks
}

// ---- SCOM ------------------------------------------------------------------

func (d *doctor) scom(ctx context.Context) []check {
	if d.cfg.SCOM.Endpoint == "" || d.cfg.SCOM.User == "" || !d.cfg.SCOM.Password.IsSet() {
		return []check{skipped("scom", "AUTOPATCH_SCOM_ENDPOINT, _USER or _PASSWORD is not set")}
	}
	runner, err := winrm.New(winrmConfig(d.cfg.SCOM), nil)
	if err != nil {
		return []check{{Status: statusFail, Name: "scom.winrm", Detail: err.Error(),
			Fix: "correct the AUTOPATCH_SCOM_* settings (README, Configuration)"}}
	}
	defer runner.Close()
	rep, err := scom.New(runner, scom.Options{}, nil).Doctor(ctx)
	if err != nil {
		return []check{winrmFailure("scom", "AUTOPATCH_SCOM", err)}
	}
	checks := []check{winrmOK("scom", d.cfg.SCOM), scomEventSource(rep)}
	if rep.ModuleError != "" {
		return append(checks, check{Status: statusFail, Name: "scom.module", Detail: rep.ModuleError,
			Fix: "point AUTOPATCH_SCOM_ENDPOINT at a management server (the OperationsManager module is installed with it and with the Operations console)"})
	}
	checks = append(checks, check{Status: statusOK, Name: "scom.module", Detail: "OperationsManager module loaded"})
	if rep.ConnectionError != "" {
		return append(checks, check{Status: statusFail, Name: "scom.connection", Detail: rep.ConnectionError,
			Fix: "make sure the System Center Data Access service runs, and give the service account an Operations Manager user role (Operator or Advanced Operator)"})
	}
	checks = append(checks, check{Status: statusOK, Name: "scom.connection", Detail: "connected to the management group"})

	const importFix = "import integrations/scom/Autopatch.Alerts.xml (Administration > Management Packs > Import Management Packs, or Import-SCOMManagementPack)"
	switch {
	case !rep.ManagementPackFound:
		checks = append(checks, check{Status: statusFail, Name: "scom.management_pack", Detail: scom.ManagementPackName + " is not imported", Fix: importFix})
	case scom.CompareVersions(rep.ManagementPackVersion, scom.ManagementPackVersion) < 0:
		// Before 1.1.0.0 the rules listened to the SDK event provider, which
		// the event-log route no longer feeds: no alert would be raised.
		checks = append(checks, check{Status: statusFail, Name: "scom.management_pack",
			Detail: fmt.Sprintf("%s %s is imported; this autopatch needs %s, whose rules read the %s events in the %s log (older packs listen to the SDK event provider, which autopatch no longer writes to)",
				scom.ManagementPackName, rep.ManagementPackVersion, scom.ManagementPackVersion, scom.EventSource, scom.EventLog),
			Fix: importFix + " over the older version"})
	case rep.ManagementPackVersion != scom.ManagementPackVersion:
		checks = append(checks, check{Status: statusWarn, Name: "scom.management_pack",
			Detail: fmt.Sprintf("%s %s is imported; this autopatch ships %s", scom.ManagementPackName, rep.ManagementPackVersion, scom.ManagementPackVersion),
			Fix:    importFix + " to get the version this autopatch was built with"})
	default:
		checks = append(checks, check{Status: statusOK, Name: "scom.management_pack",
			Detail: scom.ManagementPackName + " " + rep.ManagementPackVersion + " imported (the version shipped)"})
	}
	if rep.ManagementPackFound {
		for _, id := range scom.AlertRules() {
			name := "scom.rule " + id
			enabled, ok := rep.Rules[id]
			switch {
			case !ok:
				checks = append(checks, check{Status: statusFail, Name: name, Detail: "not in the imported management pack", Fix: importFix})
			case scom.RuleDisabled(enabled):
				checks = append(checks, check{Status: statusFail, Name: name, Detail: "disabled in the imported management pack (Enabled=false)",
					Fix: importFix + " unchanged, or add an override that enables the rule for the All Management Servers Resource Pool"})
			default:
				checks = append(checks, check{Status: statusOK, Name: name,
					Detail: "present, Enabled=" + enabled + " in the pack (an override can still disable it: check Authoring > Overrides)"})
			}
		}
	}
	if rep.ClassFound {
		checks = append(checks, check{Status: statusOK, Name: "scom.class", Detail: scom.WindowsComputerClass + " class found"})
	} else {
		checks = append(checks, check{Status: statusFail, Name: "scom.class", Detail: scom.WindowsComputerClass + " class not found",
			Fix: "the class comes with Microsoft.Windows.Library in every management group: AUTOPATCH_SCOM_ENDPOINT does not reach an Operations Manager management server"})
	}
	return checks
}

// scomEventSource checks that the event source raise_alerts writes under is
// registered in the Application log of the management server: the management
// pack's rules read events of that source only, and raise_alerts refuses to
// write until it is registered.
func scomEventSource(rep scom.DoctorReport) check {
	const name = "scom.event_source"
	register := "run once as an administrator on the management server: New-EventLog -LogName " + scom.EventLog + " -Source " + scom.EventSource
	switch {
	case rep.EventSourceError != "":
		return check{Status: statusFail, Name: name, Detail: "could not look up the event source " + scom.EventSource + ": " + rep.EventSourceError,
			Fix: "make sure the account can read HKLM\\SYSTEM\\CurrentControlSet\\Services\\EventLog, or " + register}
	case rep.EventSourceLog == "":
		return check{Status: statusFail, Name: name, Detail: "the event source " + scom.EventSource + " is not registered on the management server (alerts cannot be raised)",
			Fix: register}
	case !strings.EqualFold(rep.EventSourceLog, scom.EventLog):
		return check{Status: statusFail, Name: name,
			Detail: "the event source " + scom.EventSource + " is registered in the " + rep.EventSourceLog + " log, not " + scom.EventLog + " (the rules read " + scom.EventLog + ")",
			Fix:    "run as an administrator on the management server: Remove-EventLog -Source " + scom.EventSource + "; New-EventLog -LogName " + scom.EventLog + " -Source " + scom.EventSource}
	}
	return check{Status: statusOK, Name: name, Detail: "event source " + scom.EventSource + " registered in the " + scom.EventLog + " log"}
}

// ---- WinRM -----------------------------------------------------------------

func winrmOK(system string, w config.WinRM) check {
	return check{Status: statusOK, Name: system + ".winrm",
		Detail: fmt.Sprintf("%s answered, %s authenticated (%s)", config.RedactURL(w.Endpoint), w.User, w.Auth)}
}

// winrmFailure names what stopped the one WinRM call of a system, and its fix.
// The connector's error never holds the password; the settings are named by
// prefix (AUTOPATCH_SCCM, AUTOPATCH_SCOM).
func winrmFailure(system, prefix string, err error) check {
	c := check{Status: statusFail, Name: system + ".winrm", Detail: err.Error()}
	var (
		unknownCA   x509.UnknownAuthorityError
		hostname    x509.HostnameError
		invalid     x509.CertificateInvalidError
		verify      *tls.CertificateVerificationError
		record      tls.RecordHeaderError
		dns         *net.DNSError
		scriptError *winrm.ScriptError
	)
	msg := err.Error()
	switch {
	case errors.Is(err, winrm.ErrUnauthorized):
		c.Detail = "credentials refused (HTTP 401 or access denied): " + msg
		c.Fix = prefix + "_USER / _PASSWORD are wrong, or " + prefix + "_AUTH does not match what the listener accepts " +
			"(ntlm or kerberos with a domain account; basic only with a local account and Auth/Basic enabled on the listener); " +
			"the account must also be allowed to use WinRM on the host (local Administrators or Remote Management Users)"
	case errors.As(err, &hostname):
		c.Detail = "TLS: the certificate does not name the host: " + msg
		c.Fix = "use in " + prefix + "_ENDPOINT the host name the WinRM HTTPS listener's certificate was issued to (its subject or a SAN)"
	case errors.As(err, &unknownCA), errors.As(err, &invalid), errors.As(err, &verify),
		strings.Contains(msg, "x509:"), strings.Contains(msg, "certificate"):
		c.Detail = "TLS certificate not trusted: " + msg
		c.Fix = "set " + prefix + "_CA_FILE to the PEM of the CA that issued the WinRM HTTPS listener's certificate " +
			"(or add it to the system roots); " + prefix + "_INSECURE_SKIP_VERIFY is for labs only"
	case errors.As(err, &record):
		c.Detail = "TLS handshake got plain HTTP: " + msg
		c.Fix = prefix + "_ENDPOINT uses https:// on a plain-HTTP port: use the HTTPS listener's port (5986)"
	case errors.Is(err, syscall.ECONNREFUSED), strings.Contains(msg, "connection refused"):
		c.Detail = "connection refused: " + msg
		c.Fix = "no WinRM listener on that host and port: on the host, create the HTTPS listener " +
			"(winrm quickconfig -transport:https, with a certificate for the host's name) and allow TCP 5986 in Windows Firewall; check the port in " + prefix + "_ENDPOINT"
	case errors.As(err, &dns):
		c.Detail = "host name does not resolve: " + msg
		c.Fix = "correct the host in " + prefix + "_ENDPOINT (a name DNS resolves, the one on the listener's certificate)"
	case errors.Is(err, winrm.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		c.Detail = "no answer in time: " + msg
		c.Fix = "a firewall may be dropping TCP 5986 to the host, or the host is overloaded; raise " + prefix + "_TIMEOUT or doctor's --timeout if it is only slow"
	case errors.As(err, &scriptError):
		c.Name = system + ".script"
		c.Detail = "the doctor's script failed on the host: " + msg
		c.Fix = "read PowerShell's error above; a constrained (JEA) endpoint must allow autopatch's templates, the doctor's included"
	default:
		c.Fix = "check that " + prefix + "_ENDPOINT is the host's WinRM URL (https://host:5986/wsman) and that WinRM runs there (Test-WSMan from another host)"
	}
	return c
}

func skipped(system, why string) check {
	return check{Status: statusFail, Name: system, Detail: "not checked: " + why, Fix: "set the settings named (README, Configuration)"}
}

// ---- ServiceNow --------------------------------------------------------------

// doctorTables are the tables autopatch reads and writes.
var doctorTables = []string{servicenow.TableChangeRequest, servicenow.TableRequestItem, servicenow.TableIncident}

// doctorReadTables are read too; sys_journal_field because a retried work
// note looks itself up there before it is written again
// (servicenow.HasWorkNote).
var doctorReadTables = append(slices.Clone(doctorTables), "sys_journal_field")

func (d *doctor) serviceNow(ctx context.Context) []check {
	sn := d.cfg.ServiceNow
	if sn.URL == "" || sn.User == "" || !sn.Password.IsSet() {
		return []check{skipped("servicenow", "AUTOPATCH_SERVICENOW_URL, _USER or _PASSWORD is not set")}
	}
	client, err := servicenow.New(servicenow.Config{
		URL: sn.URL, User: sn.User, Password: sn.Password.Reveal(),
		OAuthClientID: sn.OAuthClientID, OAuthClientSecret: sn.OAuthClientSecret.Reveal(),
		Timeout: sn.Timeout, MaxRetries: -1, // the doctor reports the first answer
	}, nil, nil)
	if err != nil {
		return []check{{Status: statusFail, Name: "servicenow", Detail: err.Error(), Fix: "correct the AUTOPATCH_SERVICENOW_* settings"}}
	}
	var checks []check
	for _, table := range doctorReadTables {
		name := "servicenow.read " + table
		rows, err := client.CheckRead(ctx, table)
		if err == nil {
			detail := "Table API read answered"
			if rows >= 0 {
				detail += fmt.Sprintf(", %d records visible to the user", rows)
			}
			checks = append(checks, check{Status: statusOK, Name: name, Detail: detail})
			continue
		}
		c := serviceNowFailure(name, err)
		checks = append(checks, c)
		if !errors.Is(err, servicenow.ErrUnauthorized) || apiStatus(err) == 401 {
			// The instance is not reached or refuses the user: every other
			// check would fail the same way.
			return append(checks, check{Status: statusFail, Name: "servicenow", Detail: "other ServiceNow checks skipped after the failure above", Fix: c.Fix})
		}
	}
	return append(checks, d.writeChecks(ctx, client)...)
}

// writeChecks tests write access without writing: by the integration user's
// roles (servicenow.UserRoles explains why a role check and its sources).
func (d *doctor) writeChecks(ctx context.Context, client *servicenow.Client) []check {
	const limits = "role check only: an ACL, data policy or business rule of the instance can still refuse the write"
	roles, err := client.UserRoles(ctx)
	if err != nil {
		return []check{{Status: statusWarn, Name: "servicenow.write",
			Detail: "could not read the integration user's roles from sys_user_has_role, write access unknown: " + err.Error(),
			Fix: "have a ServiceNow admin confirm that " + d.cfg.ServiceNow.User + " has itil (or sn_change_write, sn_request_write and sn_incident_write), " +
				"or allow it to read its own sys_user_has_role rows so that doctor can check"}}
	}
	var checks []check
	for _, table := range doctorTables {
		want := servicenow.WriteRoles(table)
		name := "servicenow.write " + table
		i := slices.IndexFunc(want, func(r string) bool { return slices.Contains(roles, r) })
		if i >= 0 {
			checks = append(checks, check{Status: statusOK, Name: name, Detail: "user has role " + want[i] + " (" + limits + ")"})
			continue
		}
		checks = append(checks, check{Status: statusFail, Name: name,
			Detail: fmt.Sprintf("user has none of %s (has: %s; %s)", strings.Join(want, ", "), orNone(roles), limits),
			Fix:    fmt.Sprintf("grant %s one of %s (User Administration > Users > Roles)", d.cfg.ServiceNow.User, strings.Join(want[1:], " or "))})
	}
	return checks
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "no roles"
	}
	return strings.Join(s, ", ")
}

// apiStatus is the HTTP status of a ServiceNow API error, or 0.
func apiStatus(err error) int {
	var api *servicenow.APIError
	if errors.As(err, &api) {
		return api.Status
	}
	return 0
}

// serviceNowFailure names what stopped one ServiceNow request, and its fix.
func serviceNowFailure(name string, err error) check {
	c := check{Status: statusFail, Name: name, Detail: err.Error()}
	msg := err.Error()
	switch {
	case apiStatus(err) == 401:
		c.Detail = "credentials refused (HTTP 401): " + msg
		c.Fix = "check AUTOPATCH_SERVICENOW_USER / _PASSWORD (and _OAUTH_CLIENT_ID / _SECRET when set); the user must be active and not locked out"
	case apiStatus(err) == 403:
		c.Detail = "read denied (HTTP 403): " + msg
		c.Fix = "grant the integration user a role that reads the table: itil, or sn_change_read / sn_request_read / sn_incident_read"
	case strings.Contains(msg, "x509:") || strings.Contains(msg, "certificate"):
		c.Detail = "TLS certificate not trusted: " + msg
		c.Fix = "the instance's certificate must chain to a system root; a TLS-inspecting proxy's CA must be in the system roots"
	case strings.Contains(msg, "connection refused"):
		c.Detail = "connection refused: " + msg
		c.Fix = "check AUTOPATCH_SERVICENOW_URL (https://<instance>.service-now.com) and any proxy or firewall between autopatch and the instance"
	case errors.Is(err, servicenow.ErrTransport):
		c.Detail = "no answer: " + msg
		c.Fix = "check AUTOPATCH_SERVICENOW_URL, DNS and any proxy or firewall between autopatch and the instance"
	default:
		c.Fix = "check AUTOPATCH_SERVICENOW_URL and the integration user's access; the error above is the instance's answer"
	}
	return c
}
