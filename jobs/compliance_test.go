package jobs

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/internal/compliance"
	"github.com/autopatch/autopatch/internal/estate"
	"github.com/autopatch/autopatch/internal/ledger"
	"github.com/autopatch/autopatch/internal/store"
)

// TestComplianceLedgerEveryOutcome runs one change over a simulated estate
// whose devices do everything the ledger tells apart, and checks that
// every outcome of §9.1 but deferred and forced is reached by a device, the
// pre-flight and the summary are noted on the change, the JSON and the CSV
// agree, and the metrics are there.
func TestComplianceLedgerEveryOutcome(t *testing.T) {
	t.Parallel()
	auto := []estate.SeedDevice{
		{Name: "OK01"},
		{Name: "LATE01", Outcome: "success after close"},
		// Still installing at the window's final read: a grid poll may read
		// between the disable and the final read, so success comes at the
		// fourth read after the close, which only the late reads make.
		{Name: "LATER01", Outcome: "success after close 4"},
		{Name: "FAIL01", Outcome: "error 0x80240022"},
		{Name: "QUIET01", Outcome: "silent"},
		{Name: "SLEEPY01", Outcome: "inactive"},
		{Name: "REBOOT01", Outcome: "pending restart"},
	}
	manual := []estate.SeedDevice{{Name: "HAND01", Outcome: "compliant"}, {Name: "HAND02", Outcome: "noncompliant"}}
	h := newFailureHarness(t, failureOptions{devices: append(append([]estate.SeedDevice{}, auto...), manual...)})
	h.deps.Compliance = ComplianceOptions{
		PreflightLead: time.Hour, Interval: time.Second,
		Ledger: ledger.Options{DeadlineFor: func(c store.ChangeRow) time.Time { return c.End }},
	}
	h.deps.Metrics = NewMetrics(nil) // shared by the client's copy of deps
	h.startClient()
	now := time.Now().Truncate(time.Second)
	w := window{now.Add(10 * time.Second), now.Add(16 * time.Second)}
	h.load(schedule("AUTO", "automatic", w), schedule("HAND", "manual_patch", w))
	for _, d := range auto {
		require.NoError(t, h.est.SCCM().AddMember("Patch - AUTO", d.Name))
	}
	for _, d := range manual {
		require.NoError(t, h.est.SCCM().AddMember("Patch - HAND", d.Name))
	}
	number, sysID := h.approve(now, now.Add(time.Hour), "AUTO", "HAND")

	ctx := context.Background()
	seen := map[compliance.Outcome][]string{}
	read := func() ledger.Ledger {
		l, err := ledger.ForChange(ctx, h.pool, number, time.Now(), h.deps.Compliance.Ledger)
		require.NoError(t, err)
		for _, d := range l.Devices {
			seen[d.Outcome] = append(seen[d.Outcome], d.Device)
		}
		return l
	}

	h.waitFor("the pre-flight on the change", func() bool { return strings.Contains(h.notes(sysID), "client pre-flight") })
	before := read()
	require.True(t, time.Now().Before(w.start), "the pre-flight ran ahead of the window")
	outcomes := map[string]compliance.Outcome{}
	for _, d := range before.Devices {
		outcomes[d.Device] = d.Outcome
	}
	require.Equal(t, compliance.Pending, outcomes["OK01"])
	require.Equal(t, compliance.ClientInactive, outcomes["SLEEPY01"], "found inactive before its window")
	require.Contains(t, h.notes(sysID), "SLEEPY01: client inactive")

	h.waitFor("the summary after the last window", func() bool { return strings.Contains(h.notes(sysID), "compliance of "+number) })
	h.waitFor("the manual devices judged after their window", func() bool {
		for _, d := range read().Devices {
			if d.Device == "HAND02" {
				return d.Outcome == compliance.ManualNoncompliant
			}
		}
		return false
	})
	h.waitFor("the late read of the install that outlived its window", func() bool {
		for _, d := range read().Devices {
			if d.Device == "LATER01" {
				return d.Outcome == compliance.PatchedOutsideWindow
			}
		}
		return false
	})
	h.waitFor("LATER01's no-status failure (still installing at the final read) resolved by its late success", func() bool {
		for _, f := range h.failures(number) {
			if f.Subject == "LATER01" {
				return f.Kind == store.FailureNoStatus && f.RecoveredAt != nil
			}
		}
		return false
	})
	l := read()
	want := map[string]compliance.Outcome{
		"OK01": compliance.PatchedInWindow, "LATE01": compliance.PatchedOutsideWindow, "FAIL01": compliance.Failed,
		"LATER01": compliance.PatchedOutsideWindow,
		"QUIET01": compliance.NotReported, "SLEEPY01": compliance.ClientInactive, "REBOOT01": compliance.PendingReboot,
		"HAND01": compliance.ManualCompliant, "HAND02": compliance.ManualNoncompliant,
	}
	got := map[string]compliance.Outcome{}
	for _, d := range l.Devices {
		got[d.Device] = d.Outcome
		require.NotEmpty(t, d.Evidence, d.Device)
		require.NotNil(t, d.EvidenceAt, "%s: every outcome after the window rests on a read", d.Device)
	}
	require.Equal(t, want, got)
	for _, o := range compliance.Outcomes {
		if o == compliance.Deferred || o == compliance.Forced {
			continue
		}
		require.NotEmpty(t, seen[o], "no device reached %s", o)
	}
	late := l.Devices[indexOf(l.Devices, "LATE01")]
	require.True(t, late.StatusAt.After(w.end) || late.StatusAt.Equal(w.end), "LATE01's success is SCCM's time after the close")
	require.Equal(t, 2, l.Summary.PatchedOutsideWindow)
	require.Equal(t, 4, l.Summary.PatchedByDeadline, "OK01, LATE01, LATER01, HAND01")

	summary := h.notes(sysID)
	require.Contains(t, summary, "Patched outside their window: 1")
	require.Contains(t, summary, "- failed: 1")
	require.Contains(t, summary, "FAIL01 (failed)")

	// The CSV says what the JSON says.
	var b bytes.Buffer
	require.NoError(t, ledger.WriteCSV(&b, l))
	rows, err := csv.NewReader(&b).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, len(l.Devices)+1)
	for i, d := range l.Devices {
		require.Equal(t, []string{d.Device, string(d.Outcome)}, []string{rows[i+1][1], rows[i+1][6]})
	}

	// The metrics.
	var m dto.Metric
	require.NoError(t, h.deps.Metrics.OutsideWindow.Write(&m))
	require.Equal(t, 2.0, m.GetCounter().GetValue(), "two devices newly patched outside their window")
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewComplianceGauges(h.pool))
	cycle := ledger.CycleOf(store.ChangeRow{Change: store.Change{Start: now}}).String()
	families, err := reg.Gather()
	require.NoError(t, err)
	gauges := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			gauges[key] = m.GetGauge().GetValue()
		}
	}
	require.InDelta(t, 4.0/9, gauges["autopatch_patched_by_deadline_ratio cycle="+cycle], 1e-9)
	past, ok := gauges["autopatch_devices_past_deadline cycle="+cycle]
	require.True(t, ok, "devices past deadline exported")
	require.Zero(t, past, "the cycle's deadline (Patch Tuesday + 30 days) is still ahead")
	for _, o := range compliance.Outcomes {
		v, ok := gauges["autopatch_compliance_devices cycle="+cycle+" outcome="+string(o)]
		require.True(t, ok, "%s exported", o)
		want := 0.0
		if o != compliance.Deferred && o != compliance.Forced && o != compliance.Pending {
			want = float64(l.Summary.ByOutcome[o])
		}
		require.Equal(t, want, v, o)
	}

	// One SCCM call per read: the status poll reads every deployment at
	// once, the sweep every collection of the change at once.
	var sweeps int
	require.NoError(t, h.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'compliance_sweep' AND state = 'completed'`).Scan(&sweeps))
	require.LessOrEqual(t, h.est.SCCM().CallsByTemplate()[sccm.DeviceStateTemplate], sweeps+1)
}

func indexOf(ds []ledger.Device, name string) int {
	for i, d := range ds {
		if d.Device == name {
			return i
		}
	}
	return -1
}

// TestManualScheduleFollowUp: a manual_patch device its owner has not
// patched gets a reminder on the owner's request item before the deadline,
// and exactly one incident at it; its compliant neighbour gets neither.
func TestManualScheduleFollowUp(t *testing.T) {
	t.Parallel()
	manual := []estate.SeedDevice{{Name: "HAND01", Outcome: "compliant"}, {Name: "HAND02", Outcome: "noncompliant"}}
	h := newFailureHarness(t, failureOptions{devices: manual})
	h.deps.Metrics = NewMetrics(nil)
	now := time.Now().Truncate(time.Second)
	w := window{now.Add(6 * time.Second), now.Add(10 * time.Second)}
	deadline := w.end.Add(6 * time.Second)
	h.deps.Compliance = ComplianceOptions{
		PreflightLead: time.Hour, Interval: time.Second, ReminderLead: time.Hour,
		Ledger: ledger.Options{DeadlineFor: func(store.ChangeRow) time.Time { return deadline }},
	}
	h.startClient()
	h.load(schedule("HAND", "manual_patch", w))
	ctx := context.Background()
	const ritmSysID = "aaaabbbbccccddddeeeeffff00001111"
	require.NoError(t, h.sn.AddRecord("sc_req_item", ritmSysID, "RITM0010001"))
	for _, d := range manual {
		require.NoError(t, h.est.SCCM().AddMember("Patch - HAND", d.Name))
		_, err := h.pool.Exec(ctx, `WITH ev AS (
				INSERT INTO webhook_events (id, kind, record_number, record_sys_id, payload, outcome)
				VALUES (gen_random_uuid(), 'schedule_request', 'RITM0010001', $2, '{}', 'accepted') RETURNING id
			), dev AS (
				INSERT INTO devices (name, schedule_name) VALUES ($1, 'HAND') RETURNING id
			)
			INSERT INTO device_assignments (device_id, schedule_name, request_item, webhook_event, outcome)
			SELECT dev.id, 'HAND', 'RITM0010001', ev.id, 'moved' FROM dev, ev`, d.Name, ritmSysID)
		require.NoError(t, err)
	}
	number, sysID := h.approve(now, now.Add(time.Hour), "HAND")

	h.waitFor("the reminder on the request item", func() bool { return strings.Contains(h.notes(ritmSysID), "reminder") })
	reminder := h.notes(ritmSysID)
	require.True(t, time.Now().Before(deadline), "reminded before the deadline")
	require.Contains(t, reminder, "HAND02")
	require.NotContains(t, reminder, "HAND01", "a compliant device needs no reminder")
	require.Equal(t, 1, strings.Count(reminder, "reminder"), "one reminder")

	h.waitFor("the incident at the deadline", func() bool {
		fs := h.failures(number)
		return len(fs) == 1 && fs[0].IncidentSysID != ""
	})
	f := h.failures(number)[0]
	require.Equal(t, store.FailureNoncompliant, f.Kind)
	require.Equal(t, "HAND02", f.Subject)
	// More sweeps: nothing new.
	time.Sleep(3 * time.Second)
	require.Len(t, h.failures(number), 1)
	incs := incidentByCorrelation(h.wireState(), f.CorrelationID)
	require.Len(t, incs, 1)
	require.Contains(t, incs[0].ShortDescription, "HAND02")
	require.Equal(t, 1, strings.Count(h.notes(ritmSysID), "reminder"))
	h.waitFor("the summary at the deadline", func() bool { return strings.Contains(h.notes(sysID), "at its deadline") })
	require.Equal(t, 1, strings.Count(h.notes(sysID), "at its deadline"))
	require.Equal(t, 1, strings.Count(h.notes(sysID), "after its last window"), "the manual-only change's summary after its window")
}

// unreachableSCCM fails the first device state reads, as an SCCM site
// that cannot be reached would.
type unreachableSCCM struct {
	SCCM
	mu    sync.Mutex
	fails int
	calls int
}

func (u *unreachableSCCM) DeviceStates(ctx context.Context, reads []sccm.StateRead) ([]sccm.DeviceState, error) {
	u.mu.Lock()
	u.calls++
	fail := u.calls <= u.fails
	u.mu.Unlock()
	if fail {
		return nil, errors.New("sccm: device state: dial tcp: connection refused")
	}
	return u.SCCM.DeviceStates(ctx, reads)
}

// TestComplianceReadRetried: while SCCM is unreachable the sweep is
// retried with backoff and nothing is guessed; the first read that gets
// through reads both changes' collections in one call and is noted on each.
func TestComplianceReadRetried(t *testing.T) {
	t.Parallel()
	devices := []estate.SeedDevice{{Name: "SLEEPY01", Outcome: "inactive"}, {Name: "OK01"}, {Name: "WEB01"}}
	h := newFailureHarness(t, failureOptions{devices: devices})
	flaky := &unreachableSCCM{SCCM: h.deps.SCCM, fails: 2}
	h.deps.SCCM = flaky
	h.deps.Compliance = ComplianceOptions{PreflightLead: time.Hour, Interval: time.Hour}
	h.startClient()
	now := time.Now().Truncate(time.Second)
	w := window{now.Add(time.Hour), now.Add(2 * time.Hour)}
	h.load(schedule("AUTO", "automatic", w), schedule("WEB", "automatic", w))
	for _, d := range []string{"SLEEPY01", "OK01"} {
		require.NoError(t, h.est.SCCM().AddMember("Patch - AUTO", d))
	}
	require.NoError(t, h.est.SCCM().AddMember("Patch - WEB", "WEB01"))
	number, sysID := h.approve(now, now.Add(3*time.Hour), "AUTO")
	number2, sysID2 := h.approve(now, now.Add(3*time.Hour), "WEB")
	h.waitFor("the plans", func() bool { return len(h.deployments(number)) == 2 && len(h.deployments(number2)) == 2 })

	l, err := ledger.ForChange(context.Background(), h.pool, number, time.Now(), h.deps.Compliance.Ledger)
	require.NoError(t, err)
	require.Empty(t, l.Devices, "nothing read yet, nothing guessed")
	h.insert(ComplianceSweepArgs{})
	h.waitFor("the pre-flights after the outage", func() bool {
		return strings.Contains(h.notes(sysID), "client pre-flight") && strings.Contains(h.notes(sysID2), "client pre-flight")
	})
	flaky.mu.Lock()
	require.Equal(t, 3, flaky.calls, "two failed reads, then one that got through, for both changes")
	flaky.mu.Unlock()
	var errs int
	require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT coalesce(max(cardinality(errors)), 0) FROM river_job WHERE kind = 'compliance_sweep'`).Scan(&errs))
	require.GreaterOrEqual(t, errs, 2, "the failed reads are the job's errors, retried")
	l, err = ledger.ForChange(context.Background(), h.pool, number, time.Now(), h.deps.Compliance.Ledger)
	require.NoError(t, err)
	got := map[string]compliance.Outcome{}
	for _, d := range l.Devices {
		got[d.Device] = d.Outcome
	}
	require.Equal(t, map[string]compliance.Outcome{"SLEEPY01": compliance.ClientInactive, "OK01": compliance.Pending}, got)
	require.Contains(t, h.notes(sysID), "SLEEPY01: client inactive")
	require.Contains(t, h.notes(sysID2), "Every member's SCCM client is installed and active.")
}

// TestDeferredManualDevice: a manual device deferred past the change's
// deadline gets no incident at the change's deadline, shows deferred in
// the ledger, and gets its incident at its own deadline if it is still not
// compliant then (docs/architecture.md §9.2).
func TestDeferredManualDevice(t *testing.T) {
	t.Parallel()
	manual := []estate.SeedDevice{{Name: "HAND02", Outcome: "noncompliant"}, {Name: "HAND03", Outcome: "noncompliant"}}
	h := newFailureHarness(t, failureOptions{devices: manual})
	h.deps.Metrics = NewMetrics(nil)
	now := time.Now().Truncate(time.Second)
	w := window{now.Add(6 * time.Second), now.Add(10 * time.Second)}
	deadline := w.end.Add(4 * time.Second)
	until := deadline.Add(8 * time.Second)
	h.deps.Compliance = ComplianceOptions{
		PreflightLead: time.Hour, Interval: time.Second, ReminderLead: time.Hour,
		Ledger: ledger.Options{DeadlineFor: func(store.ChangeRow) time.Time { return deadline }},
	}
	h.startClient()
	h.load(schedule("HAND", "manual_patch", w))
	ctx := context.Background()
	for _, d := range manual {
		require.NoError(t, h.est.SCCM().AddMember("Patch - HAND", d.Name))
		_, err := h.pool.Exec(ctx, `INSERT INTO devices (name, schedule_name) VALUES ($1, 'HAND')`, d.Name)
		require.NoError(t, err)
	}
	number, _ := h.approve(now, now.Add(time.Hour), "HAND")
	_, err := h.pool.Exec(ctx, `WITH ev AS (
			INSERT INTO webhook_events (id, kind, record_number, record_sys_id, payload, outcome)
			VALUES (gen_random_uuid(), 'deferral', 'RITM0010002', 'aaaabbbbccccddddeeeeffff00002222', '{}', 'accepted') RETURNING id)
		INSERT INTO deferrals (event, change_number, device_name, until, reason, approved_by, ritm_number, ritm_sys_id)
		SELECT id, $1, 'HAND03', $2, 'month-end', 'approver', 'RITM0010002', 'aaaabbbbccccddddeeeeffff00002222' FROM ev`, number, until)
	require.NoError(t, err)

	h.waitFor("HAND02's incident at the change's deadline", func() bool {
		fs := h.failures(number)
		return len(fs) >= 1 && fs[0].IncidentSysID != ""
	})
	require.True(t, time.Now().Before(until), "the test machine was too slow to see the deferral in force")
	fs := h.failures(number)
	require.Len(t, fs, 1, "HAND03 is deferred: no incident yet")
	require.Equal(t, "HAND02", fs[0].Subject)
	l, err := ledger.ForChange(ctx, h.pool, number, time.Now(), h.deps.Compliance.Ledger)
	require.NoError(t, err)
	got := map[string]compliance.Outcome{}
	for _, d := range l.Devices {
		got[d.Device] = d.Outcome
	}
	require.Equal(t, compliance.Deferred, got["HAND03"])
	require.Equal(t, compliance.ManualNoncompliant, got["HAND02"])

	h.waitFor("HAND03's incident at its own deadline", func() bool { return len(h.failures(number)) == 2 })
	for _, f := range h.failures(number) {
		require.Equal(t, store.FailureNoncompliant, f.Kind)
		if f.Subject == "HAND03" {
			require.False(t, f.FirstSeenAt.Before(until), "raised at %s, before its deferral ended at %s", f.FirstSeenAt, until)
		}
	}
}

// TestRefreshLedgerAfterDeferral: the refresh a deferral enqueues stores
// the deferred outcome and the moved deadline at once, without an SCCM read.
func TestRefreshLedgerAfterDeferral(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startClient()
	ctx := context.Background()
	now := time.Now().Truncate(time.Second)
	w := window{now.Add(time.Hour), now.Add(2 * time.Hour)}
	h.load(schedule("AUTO", "automatic", w))
	_, err := h.pool.Exec(ctx, `INSERT INTO devices (name, schedule_name, service, tier) VALUES ('SQL01', 'AUTO', 'Payroll', 'backend')`)
	require.NoError(t, err)
	number, _ := h.approve(now, now.Add(3*time.Hour), "AUTO")
	h.waitFor("the plan", func() bool { return h.states(number)["created"] == 2 })
	until := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err = h.pool.Exec(ctx, `WITH ev AS (
			INSERT INTO webhook_events (id, kind, record_number, record_sys_id, payload, outcome)
			VALUES (gen_random_uuid(), 'deferral', 'RITM0010002', 'aaaabbbbccccddddeeeeffff00003333', '{}', 'accepted') RETURNING id)
		INSERT INTO deferrals (event, change_number, device_name, until, reason, approved_by, ritm_number, ritm_sys_id)
		SELECT id, $1, 'SQL01', $2, 'month-end', 'approver', 'RITM0010002', 'aaaabbbbccccddddeeeeffff00003333' FROM ev`, number, until)
	require.NoError(t, err)
	h.insert(RefreshLedgerArgs{ChangeNumber: number})
	h.waitFor("SQL01 stored deferred", func() bool {
		var outcome string
		var dl *time.Time
		err := h.pool.QueryRow(ctx, `SELECT outcome, deadline FROM compliance_outcomes WHERE change_number = $1 AND device_name = 'SQL01'`, number).Scan(&outcome, &dl)
		return err == nil && outcome == "deferred" && dl != nil && dl.Equal(until)
	})
}
