package jobs

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/autopatch/autopatch/connectors/scom"
	"github.com/autopatch/autopatch/connectors/servicenow"
	"github.com/autopatch/autopatch/internal/store"
)

// Reporting a failure (issue #7) is three steps on two systems, each a job
// of its own on its system's queue:
//
//	poll_status / open_window   decide: write the failure row and, in the
//	                            same transaction, the two jobs below
//	failure_alerts    (scom)    raise the alert; link it to the incident;
//	                            close it when the device recovered
//	failure_incidents (servicenow) open the incident; note and resolve it
//	                            when the device recovered
//
// Each job takes its system's lock on each failure it handles, re-reads the
// row, does only what is not recorded as done and records each result
// right after its call. A crash between a call and its record is covered by
// the remote look-ups: SCOM finds the open alert by its key, ServiceNow the
// open incident by its correlation id. So one failure has one alert and one
// incident whatever the number of polls, retries or crashes.

// tableIncident is the ServiceNow table of incidents (work notes on them).
const tableIncident = "incident"

// DefaultStormThreshold is the number of failures in one window above which
// they are reported as one storm.
const DefaultStormThreshold = 50

// IncidentSettings are the fields autopatch's incidents get from configuration.
type IncidentSettings struct {
	// AssignmentGroup is the sys_id (or name) of the group; empty leaves
	// the instance's assignment rules to decide.
	AssignmentGroup string
	// Urgency and Impact are 1 (high) to 3 (low); 0 means 2.
	Urgency, Impact int
}

func (s IncidentSettings) urgency() int { return cmpOr(s.Urgency, 2) }
func (s IncidentSettings) impact() int  { return cmpOr(s.Impact, 2) }

func cmpOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// The two systems' locks on a failure (pg_advisory_lock(system, id)): a
// SCOM job and a ServiceNow job work on one failure side by side, two jobs
// of one system never do.
const (
	lockAlerts    int32 = 0x61700101
	lockIncidents int32 = 0x61700102
)

// withFailureLocks takes system's lock on every failure of ids (in id
// order, so two jobs never deadlock) on a connection of its own, runs fn
// with that connection, and releases them. The connection is closed if
// releasing fails, which releases them too.
func withFailureLocks(ctx context.Context, pool *pgxpool.Pool, system int32, ids []int64, fn func(conn *pgxpool.Conn) error) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("failure locks: %w", err)
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock_all()"); err != nil {
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
		conn.Release()
	}()
	// The id is folded into the lock's int4: two failures sharing a lock
	// only wait for each other.
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, (id % 2147483647)::int4)
		FROM unnest($2::bigint[]) WITH ORDINALITY AS t(id, n) ORDER BY n`, system, ids); err != nil {
		return fmt.Errorf("failure locks: %w", err)
	}
	return fn(conn)
}

// sortedIDs returns ids sorted, each once.
func sortedIDs(ids []int64) []int64 {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

// inFlight are the job states in which a sweep's job counts as already
// asked for (completed ones do not: the sweep may need the step again).
var inFlight = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
	rivertype.JobStateRunning, rivertype.JobStateScheduled,
}

// enqueueReports asks both systems to bring the failures ids up to date,
// in tx: the transaction that decided what changed.
func enqueueReports(ctx context.Context, tx pgx.Tx, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	ids = sortedIDs(ids)
	if err := insertTx(ctx, tx, FailureAlertsArgs{IDs: ids}, nil); err != nil {
		return fmt.Errorf("enqueue failure alerts: %w", err)
	}
	if err := insertTx(ctx, tx, FailureIncidentsArgs{IDs: ids}, nil); err != nil {
		return fmt.Errorf("enqueue failure incidents: %w", err)
	}
	return nil
}

// windowSubject names a window of a change: its schedule and start.
func windowSubject(d store.Deployment) string {
	return d.Schedule + "@" + d.WindowStart.UTC().Format("2006-01-02T15:04Z")
}

// failureKey is the correlation id of a failure (and its SCOM alert key).
func failureKey(change, kind, subject string) string {
	switch kind {
	case store.FailureMissedWindow:
		return servicenow.CorrelationID(change, "missed:"+subject)
	case store.FailureStorm:
		return servicenow.CorrelationID(change, "storm:"+subject)
	case store.FailureHalt:
		return servicenow.CorrelationID(change, "halt:"+subject)
	case store.FailureNoncompliant:
		return servicenow.CorrelationID(change, "noncompliant:"+subject)
	case store.FailureForced:
		return servicenow.CorrelationID(change, "forced:"+subject)
	}
	return servicenow.CorrelationID(change, subject)
}

// reportMissed records one failure per missed window (its deployments, one
// per update group, share it) and asks for its alert and incident, in the
// transaction that marked them missed.
func reportMissed(ctx context.Context, tx pgx.Tx, deps *Deps, missed []store.Deployment, at time.Time) error {
	var ids []int64
	for _, group := range byWindow(missed) {
		d := group[0]
		subject := windowSubject(d)
		id, created, err := store.InsertFailure(ctx, tx, store.Failure{
			ChangeNumber: d.ChangeNumber, Subject: subject, Kind: store.FailureMissedWindow,
			DeploymentID: &d.ID, CorrelationID: failureKey(d.ChangeNumber, store.FailureMissedWindow, subject),
			AlertComputer: deps.WindowComputer, FirstSeenAt: at,
		})
		if err != nil {
			return err
		}
		if created {
			deps.Metrics.Failures.WithLabelValues(store.FailureMissedWindow).Inc()
			ids = append(ids, id)
		}
	}
	return enqueueReports(ctx, tx, ids)
}

// byWindow groups deployments by change and window (schedule and start),
// in change, start and schedule order.
func byWindow(rows []store.Deployment) [][]store.Deployment {
	groups := map[string][]store.Deployment{}
	var keys []string
	for _, d := range rows {
		k := d.ChangeNumber + "\x00" + d.WindowStart.UTC().Format(time.RFC3339Nano) + "\x00" + d.Schedule
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], d)
	}
	sort.Strings(keys)
	out := make([][]store.Deployment, len(keys))
	for i, k := range keys {
		out[i] = groups[k]
	}
	return out
}

// ---- what a person reads -------------------------------------------------------

// wuErrors are the Windows Update and installer codes patch failures report
// most, with their symbolic names and what they mean.
var wuErrors = map[uint32][2]string{
	0x80240022: {"WU_E_ALL_UPDATES_FAILED", "the operation failed for all the updates (see the device's WindowsUpdate.log for the first error)"},
	0x8024402C: {"WU_E_PT_WINHTTP_NAME_NOT_RESOLVED", "the proxy or server name could not be resolved: check DNS and the proxy settings"},
	0x80244022: {"WU_E_PT_HTTP_STATUS_SERVICE_UNAVAIL", "the update server answered HTTP 503: it is overloaded or its application pool stopped"},
	0x80070005: {"E_ACCESSDENIED", "access denied: the agent or a service lacks a permission"},
	0x80240017: {"WU_E_NOT_APPLICABLE", "the update is not applicable to this device"},
	0x8024001E: {"WU_E_SERVICE_STOP", "the operation did not complete because the service or the system was being shut down"},
	0x80070643: {"ERROR_INSTALL_FAILURE", "fatal error during installation (often a .NET Framework or MSI update)"},
	0x800F0922: {"CBS_E_INSTALLERS_FAILED", "processing advanced installers failed: often a full System Reserved partition or a VPN blocking the install"},
	0x80070002: {"ERROR_FILE_NOT_FOUND", "a file the update needs was not found: the download may be corrupt"},
	0x80070070: {"ERROR_DISK_FULL", "not enough disk space"},
	0x800705B4: {"ERROR_TIMEOUT", "the operation timed out"},
	0x80070BC2: {"ERROR_SUCCESS_REBOOT_REQUIRED", "installed, but the device must restart to finish"},
	0x8024200D: {"WU_E_UH_NEEDANOTHERDOWNLOAD", "the update must be downloaded again"},
	0x80246007: {"WU_E_DM_NOTDOWNLOADED", "the update has not been downloaded"},
	0x8024000B: {"WU_E_CALL_CANCELLED", "the operation was cancelled"},
	0x87D00324: {"CCM_E_NOT_DETECTED_AFTER_INSTALL", "the update was not detected after installation completed"},
	0x87D00667: {"CCM_E_NO_SERVICE_WINDOW", "no current or future maintenance window allows the installation"},
}

// errorText formats an HRESULT with its name and meaning when known.
func errorText(code int64) string {
	c := uint32(code)
	hex := fmt.Sprintf("0x%08X", c)
	if e, ok := wuErrors[c]; ok {
		return hex + " " + e[0] + ": " + e[1]
	}
	return hex + " (not a common Windows Update code: search for it in the device's WindowsUpdate.log and WUAHandler.log)"
}

// errorName is the code and its symbolic name, for one-line texts.
func errorName(code int64) string {
	c := uint32(code)
	hex := fmt.Sprintf("0x%08X", c)
	if e, ok := wuErrors[c]; ok {
		return hex + " " + e[0]
	}
	return hex
}

// statusName names an SMS_SUMDeploymentAssetDetails.StatusType.
func statusName(t int) string {
	switch t {
	case 1:
		return "success"
	case 2:
		return "in progress"
	case 4:
		return "unknown (no status)"
	case 5:
		return "error"
	}
	return fmt.Sprintf("status %d", t)
}

// report is what the alert and the incident of a failure say.
type report struct {
	summary     string // the alert's summary and the incident's short description
	description string
	severity    scom.Severity
	errorCode   string
	members     int // a storm's devices listed in description
}

const timeFormat = "2006-01-02 15:04 UTC"

func windowText(d store.Deployment) string {
	return d.WindowStart.UTC().Format(timeFormat) + " – " + d.WindowEnd.UTC().Format(timeFormat)
}

// describe builds a failure's report from what the database holds now.
func describe(ctx context.Context, db store.DBTX, deps *Deps, f store.Failure) (report, error) {
	deployments, err := store.ChangeDeployments(ctx, db, f.ChangeNumber)
	if err != nil {
		return report{}, err
	}
	byID := map[int64]store.Deployment{}
	for _, d := range deployments {
		byID[d.ID] = d
	}
	var window store.Deployment
	if f.DeploymentID != nil {
		window = byID[*f.DeploymentID]
	}
	var windowDeps []store.Deployment
	for _, d := range deployments {
		if d.Schedule == window.Schedule && d.WindowStart.Equal(window.WindowStart) {
			windowDeps = append(windowDeps, d)
		}
	}
	var b strings.Builder
	line := func(label, value string) { fmt.Fprintf(&b, "%-15s %s\n", label+":", value) }
	var r report
	switch f.Kind {
	case store.FailureError, store.FailureNoStatus:
		results, err := store.ChangeResults(ctx, db, f.ChangeNumber, f.Subject)
		if err != nil {
			return report{}, err
		}
		if f.Kind == store.FailureError {
			r.severity = scom.SeverityCritical
			code := int64(0)
			if f.ErrorCode != nil {
				code = *f.ErrorCode
			}
			r.errorCode = fmt.Sprintf("0x%08X", uint32(code))
			r.summary = fmt.Sprintf("Patching failed on %s in %s: %s", f.Subject, f.ChangeNumber, errorName(code))
			fmt.Fprintf(&b, "autopatch: the updates of %s failed to install on %s.\n\n", f.ChangeNumber, f.Subject)
			line("Device", f.Subject)
			line("Change", f.ChangeNumber)
			line("Error", errorText(code))
			if f.Message != "" {
				line("SCCM message", f.Message)
			}
		} else {
			r.severity = scom.SeverityWarning
			r.summary = fmt.Sprintf("No patch status from %s by the end of its window in %s", f.Subject, f.ChangeNumber)
			fmt.Fprintf(&b, "autopatch: %s had not reported success or failure for the updates of %s when its window closed.\n"+
				"It may be off, unreachable, without a working SCCM client, or still installing.\n\n", f.Subject, f.ChangeNumber)
			line("Device", f.Subject)
			line("Change", f.ChangeNumber)
		}
		var groups, lines []string
		for _, res := range results {
			d, ok := byID[res.DeploymentID]
			if !ok {
				continue
			}
			groups = append(groups, d.UpdateGroup)
			s := statusName(res.StatusType)
			if res.ErrorCode != nil && res.StatusType == 5 {
				s += " " + errorName(*res.ErrorCode)
			}
			lines = append(lines, fmt.Sprintf("%s: %s", d.Name, s))
		}
		slices.Sort(groups)
		line("Update groups", strings.Join(slices.Compact(groups), ", "))
		for i, l := range lines {
			label := ""
			if i == 0 {
				label = "Deployments"
			}
			if label == "" {
				fmt.Fprintf(&b, "%-15s %s\n", "", l)
			} else {
				line(label, l)
			}
		}
		writeWindow(line, window)
		b.WriteString("\nThe SCOM alert closes and this incident resolves by themselves when the device reports success in this change.")
	case store.FailureMissedWindow:
		r.severity = scom.SeverityWarning
		r.summary = fmt.Sprintf("Patch window missed in %s: %s, %s", f.ChangeNumber, window.Schedule, window.WindowStart.UTC().Format(timeFormat))
		fmt.Fprintf(&b, "autopatch: the window of schedule %s in %s was MISSED. Its deployments were never enabled,\n"+
			"so nothing was installed or restarted on the devices of %q.\n\n", window.Schedule, f.ChangeNumber, window.Collection)
		line("Change", f.ChangeNumber)
		if window.Detail != "" {
			line("Why", window.Detail)
		}
		var groups, names []string
		for _, d := range windowDeps {
			if d.State == store.DeploymentMissed {
				groups, names = append(groups, d.UpdateGroup), append(names, d.Name)
			}
		}
		line("Update groups", strings.Join(groups, ", "))
		line("Deployments", strings.Join(names, ", "))
		writeWindow(line, window)
		b.WriteString("\nPatch these devices in a later change.")
	case store.FailureNoncompliant:
		r.severity = scom.SeverityWarning
		r.summary = fmt.Sprintf("%s not compliant with %s at its deadline", f.Subject, f.ChangeNumber)
		fmt.Fprintf(&b, "autopatch: %s is in a manual schedule, patched or restarted by its owner, and SCCM still\n"+
			"reports it not compliant with the update groups of %s at its deadline.\n\n", f.Subject, f.ChangeNumber)
		line("Device", f.Subject)
		line("Change", f.ChangeNumber)
		line("Evidence", f.Message)
		b.WriteString("\nPatch (or restart) the device, or ask for a deferral.")
	case store.FailureForced:
		r.severity = scom.SeverityCritical
		if f.ErrorCode != nil {
			r.errorCode = fmt.Sprintf("0x%08X", uint32(*f.ErrorCode))
		}
		if strings.HasPrefix(f.Subject, "forced wave ") {
			r.summary = fmt.Sprintf("Forced remediation of %s could not run", f.ChangeNumber)
			fmt.Fprintf(&b, "autopatch could not run forced remediation for %s: SCCM would not run a wave.\n"+
				"Its devices and those of the waves after it were NOT forced and are past their deadline.\n\n", f.ChangeNumber)
			line("Change", f.ChangeNumber)
			line("Why", f.Message)
			b.WriteString("\nFix the cause (AUTOPATCH_FORCE_COLLECTION must name a collection autopatch manages, whose ID starts with the site code;\n" +
				"the change's update groups must exist), then patch these devices in a new change.")
			break
		}
		r.summary = fmt.Sprintf("Forced patching of %s did not succeed in %s", f.Subject, f.ChangeNumber)
		fmt.Fprintf(&b, "autopatch: %s missed its deadline in %s and was FORCED (put into the forced collection with a\n"+
			"required deployment); the forced installation did not succeed.\n\n", f.Subject, f.ChangeNumber)
		line("Device", f.Subject)
		line("Change", f.ChangeNumber)
		line("Result", f.Message)
		b.WriteString("\nThe device is past its deadline and unpatched: patch it by hand, or find why its SCCM client does not install.")
	case store.FailureStorm:
		members, err := store.StormMembers(ctx, db, f.ID)
		if err != nil {
			return report{}, err
		}
		r.severity = scom.SeverityCritical
		r.summary = fmt.Sprintf("Patching failed on %d devices in one window of %s: %s, %s",
			len(members), f.ChangeNumber, window.Schedule, window.WindowStart.UTC().Format(timeFormat))
		fmt.Fprintf(&b, "autopatch: more devices failed in this window than the storm threshold, so they are reported\n"+
			"here together instead of one incident each. Look for a common cause (update server, proxy, DNS,\n"+
			"a bad update in the group) first.\n\n")
		line("Change", f.ChangeNumber)
		var groups []string
		for _, d := range windowDeps {
			groups = append(groups, d.UpdateGroup)
		}
		slices.Sort(groups)
		line("Update groups", strings.Join(slices.Compact(groups), ", "))
		writeWindow(line, window)
		fmt.Fprintf(&b, "\nDevices (%d):\n%s", len(members), memberLines(members))
		r.members = len(members)
	case store.FailureHalt:
		r.severity = scom.SeverityCritical
		r.summary = fmt.Sprintf("Patching rollout of %s halted: error budget exceeded", f.ChangeNumber)
		fmt.Fprintf(&b, "autopatch HALTED the rollout of %s: %s.\n"+
			"Every window of the change that had not opened is held (never enabled); a window that was open\n"+
			"stays open to its end. The change's work notes list the failures and the held windows.\n\n", f.ChangeNumber, f.Message)
		line("Change", f.ChangeNumber)
		var held []string
		for _, d := range deployments {
			if d.State == store.DeploymentHeld {
				held = append(held, d.Name)
			}
		}
		line("Held", strings.Join(held, ", "))
		fmt.Fprintf(&b, "\nFind the common cause of the failures, then resume the rollout from the change (UI action \"Resume autopatch rollout\",\n"+
			"or POST %s with a reason). This alert and incident close when it is resumed.", deps.apiPath("/api/v1/changes/"+f.ChangeNumber+"/resume"))
	default:
		return report{}, fmt.Errorf("failure %d: unknown kind %q", f.ID, f.Kind)
	}
	r.description = strings.TrimRight(b.String(), "\n")
	return r, nil
}

func writeWindow(line func(label, value string), d store.Deployment) {
	if d.ID == 0 {
		return
	}
	line("Collection", d.Collection)
	line("Schedule", d.Schedule)
	line("Window", windowText(d))
}

// memberLines lists storm members, one a line.
func memberLines(members []store.Failure) string {
	var b strings.Builder
	for _, m := range members {
		switch {
		case m.Kind == store.FailureError && m.ErrorCode != nil:
			fmt.Fprintf(&b, "- %s: %s\n", m.Subject, errorName(*m.ErrorCode))
		case m.Kind == store.FailureNoStatus:
			fmt.Fprintf(&b, "- %s: no status by the end of the window\n", m.Subject)
		default:
			fmt.Fprintf(&b, "- %s\n", m.Subject)
		}
	}
	return b.String()
}

// recoveryText is the work note and the close notes of a recovered failure.
func recoveryText(f store.Failure) string {
	at := ""
	if f.RecoveredAt != nil {
		at = " at " + f.RecoveredAt.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	if f.Kind == store.FailureHalt {
		return fmt.Sprintf("autopatch: the rollout of %s was resumed%s. Resolved by autopatch.", f.ChangeNumber, at)
	}
	if f.Kind == store.FailureStorm {
		return fmt.Sprintf("autopatch: every device of this storm reported success in %s%s. Resolved by autopatch.", f.ChangeNumber, at)
	}
	return fmt.Sprintf("autopatch: %s reported success for the updates of %s%s. Resolved by autopatch.", f.Subject, f.ChangeNumber, at)
}

// ---- the sweep -------------------------------------------------------------------

// failureSweepInterval is how often the leader looks for stalled failure
// steps and for open windows nobody polls.
const failureSweepInterval = time.Minute

// stalledAfter is how long a failure's row may stay unchanged, with a step
// to do, before the sweep asks for that step again.
const stalledAfter = 2 * time.Minute

// SweepFailuresArgs is the safety net of status polling and failure
// reporting: it asks for a poll when a window is open (or owes its final
// poll) and for the steps of failures whose jobs were lost. The poll grid
// and the jobs' uniqueness make asking twice harmless.
type SweepFailuresArgs struct{}

// Kind implements river.JobArgs.
func (SweepFailuresArgs) Kind() string { return "sweep_failures" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (SweepFailuresArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueDefault, UniqueOpts: river.UniqueOpts{ByPeriod: failureSweepInterval}}
}

// SweepFailuresWorker works SweepFailuresArgs.
type SweepFailuresWorker struct {
	river.WorkerDefaults[SweepFailuresArgs]
	deps *Deps
}

// Work implements river.Worker.
func (w *SweepFailuresWorker) Work(ctx context.Context, job *river.Job[SweepFailuresArgs]) error {
	now := w.deps.now()
	targets, err := store.PollTargets(ctx, w.deps.Pool)
	if err != nil {
		return fmt.Errorf("sweep failures: %w", err)
	}
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return err
	}
	if len(targets) > 0 {
		at := nextPoll(now, w.deps.pollInterval())
		if _, err := client.Insert(ctx, PollStatusArgs{At: at}, pollInsertOpts(at, now)); err != nil {
			return fmt.Errorf("sweep failures: poll: %w", err)
		}
	}
	ids, err := store.StalledFailures(ctx, w.deps.Pool, now.Add(-stalledAfter))
	if err != nil {
		return fmt.Errorf("sweep failures: %w", err)
	}
	if len(ids) > 0 {
		w.deps.Logger.WarnContext(ctx, "sweep found failures whose alert or incident steps stalled; asking again", "failures", len(ids))
	}
	for _, id := range ids {
		if _, err := client.Insert(ctx, FailureAlertsArgs{IDs: []int64{id}, Sweep: true}, nil); err != nil {
			return fmt.Errorf("sweep failures: %w", err)
		}
		if _, err := client.Insert(ctx, FailureIncidentsArgs{IDs: []int64{id}, Sweep: true}, nil); err != nil {
			return fmt.Errorf("sweep failures: %w", err)
		}
	}
	return nil
}
