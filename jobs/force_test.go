package jobs

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/connectors/sccm/sccmsim"
	"github.com/autopatch/autopatch/internal/compliance"
	"github.com/autopatch/autopatch/internal/estate"
	"github.com/autopatch/autopatch/internal/ledger"
	"github.com/autopatch/autopatch/internal/store"
)

// forcedCollection is the collection the forcing tests let autopatch
// manage.
const forcedCollection = "autopatch - Forced"

// forceHarness is a failure harness whose change has one automatic
// schedule FRC with window w, the given members in its collection, the
// other devices only known to autopatch (so they report nothing in the
// window: off, or moved too late), and forcing on with waves of waveLen.
func forceHarness(t *testing.T, devices []estate.SeedDevice, members []string, services map[string][2]string,
	w window, deadline time.Time, waveLen time.Duration) *harness {
	t.Helper()
	return forceHarnessWith(t, failureOptions{devices: devices}, members, services, w, deadline, waveLen)
}

// forceHarnessWith is forceHarness with the failure harness's options (its
// devices are o.devices): a tenant's pool and schema, for one.
func forceHarnessWith(t *testing.T, o failureOptions, members []string, services map[string][2]string,
	w window, deadline time.Time, waveLen time.Duration) *harness {
	t.Helper()
	devices := o.devices
	h := newFailureHarness(t, o)
	h.deps.Metrics = NewMetrics(nil)
	h.deps.Compliance = ComplianceOptions{PreflightLead: time.Hour, Interval: time.Second, ReminderLead: time.Hour}
	h.forceDeadline = deadline
	h.deps.Force = ForceOptions{Collection: forcedCollection, At: -1, WaveLength: waveLen}
	h.load(schedule("FRC", "automatic", w))
	h.est.SCCM().AddCollection(forcedCollection, 0)
	ctx := context.Background()
	for _, m := range members {
		require.NoError(t, h.est.SCCM().AddMember("Patch - FRC", m))
	}
	for _, d := range devices {
		svc := services[d.Name]
		_, err := h.pool.Exec(ctx, `INSERT INTO devices (name, schedule_name, service, tier) VALUES ($1, 'FRC', nullif($2, ''), nullif($3, ''))`,
			d.Name, svc[0], svc[1])
		require.NoError(t, err)
	}
	return h
}

// approveCritical is approve for a critical change whose deadline
// (patching.deadline) is the harness's forceDeadline: seconds after its
// window instead of Patch Tuesday + 14 days.
func (h *harness) approveCritical(start, end time.Time, scheduleNames ...string) (number, sysID string) {
	h.t.Helper()
	return h.approveAs("critical", &h.forceDeadline, start, end, scheduleNames...)
}

// waves returns a change's forced waves, in order.
func (h *harness) waves(number string) []store.ForcedWave {
	h.t.Helper()
	ws, err := store.ChangeWaves(context.Background(), h.pool, number)
	require.NoError(h.t, err)
	return ws
}

// waveOf returns each forced device's wave (lower-case name → wave id).
func (h *harness) waveOf(number string) map[string]int64 {
	h.t.Helper()
	f, err := store.ForcedOf(context.Background(), h.pool, number)
	require.NoError(h.t, err)
	out := map[string]int64{}
	for n, e := range f {
		out[n] = e.Wave
	}
	return out
}

// allResultsRead: every wave of the change is closed and its results read.
func allResultsRead(h *harness, number string, want int) bool {
	var n int
	err := h.pool.QueryRow(context.Background(), `SELECT count(*) FROM forced_waves
		WHERE change_number = $1 AND state = 'closed' AND results_at IS NOT NULL`, number).Scan(&n)
	return err == nil && n == want
}

// forcedDeployments returns the simulator's forced deployments of a change.
func (h *harness) forcedDeployments(number string) []sccmsim.DeploymentState {
	var out []sccmsim.DeploymentState
	for _, d := range h.deployments(number) {
		if strings.Contains(d.Name, forcedSlot) {
			out = append(out, d)
		}
	}
	return out
}

// requireWavesRanOnce checks that each forced deployment was enabled once
// per wave and disabled after each, never left enabled, and that the waves
// ran one after another.
func requireWavesRanOnce(t *testing.T, h *harness, number string, waves int) {
	t.Helper()
	deps := h.forcedDeployments(number)
	require.Len(t, deps, 2, "one forced deployment per update group")
	for _, d := range deps {
		require.False(t, d.Enabled, "%s left enabled", d.Name)
		require.Len(t, d.Events, 2*waves, "%s: one enable and one disable per wave: %+v", d.Name, d.Events)
		for i, e := range d.Events {
			require.Equal(t, i%2 == 0, e.Enabled, "%s: event %d out of order: %+v", d.Name, i, d.Events)
		}
	}
	ws := h.waves(number)
	for i := 1; i < len(ws); i++ {
		require.NotNil(t, ws[i].OpenedAt)
		require.False(t, ws[i].OpenedAt.Before(*ws[i-1].ClosedAt), "wave %d opened before wave %d closed", i+1, i)
	}
}

// TestForcedRemediationInSafeWaves: at the deadline, the devices of a
// change that were neither patched nor deferred are forced in waves that
// keep service safety (redundant backends apart, the frontend after them),
// one wave at a time; the forced devices get their notes and their ledger
// outcome with the forced result, a failed forced device gets an incident,
// and a deferred device is forced only after its own deadline
// (docs/architecture.md §9.2).
func TestForcedRemediationInSafeWaves(t *testing.T) {
	t.Parallel()
	devices := []estate.SeedDevice{
		{Name: "PAYDB01"}, {Name: "PAYDB02"}, {Name: "PAYWEB01"},
		{Name: "LONE01", Outcome: "error 0x80240022"}, {Name: "GOOD01"}, {Name: "LATER01"},
	}
	services := map[string][2]string{
		"PAYDB01": {"Payroll", "backend"}, "PAYDB02": {"Payroll", "backend"}, "PAYWEB01": {"Payroll", "frontend"},
	}
	now := time.Now().Truncate(time.Second)
	w := window{now.Add(5 * time.Second), now.Add(8 * time.Second)}
	deadline := w.end.Add(3 * time.Second)
	until := deadline.Add(4 * time.Second)
	const waveLen = 3 * time.Second
	// GOOD01 and LONE01 are in the window; the others report nothing in it.
	h := forceHarness(t, devices, []string{"GOOD01", "LONE01"}, services, w, deadline, waveLen)
	ctx := context.Background()
	// PAYDB01's owner asked for its schedule with a request item.
	const ritmSysID = "aaaabbbbccccddddeeeeffff00004444"
	require.NoError(t, h.sn.AddRecord("sc_req_item", ritmSysID, "RITM0010044"))
	_, err := h.pool.Exec(ctx, `WITH ev AS (
			INSERT INTO webhook_events (id, kind, record_number, record_sys_id, payload, outcome)
			VALUES (gen_random_uuid(), 'schedule_request', 'RITM0010044', $1, '{}', 'accepted') RETURNING id)
		INSERT INTO device_assignments (device_id, schedule_name, request_item, webhook_event, outcome)
		SELECT d.id, 'FRC', 'RITM0010044', ev.id, 'moved' FROM devices d, ev WHERE d.name = 'PAYDB01'`, ritmSysID)
	require.NoError(t, err)
	h.startClient()
	number, sysID := h.approveCritical(now, now.Add(time.Hour), "FRC")
	_, err = h.pool.Exec(ctx, `WITH ev AS (
			INSERT INTO webhook_events (id, kind, record_number, record_sys_id, payload, outcome)
			VALUES (gen_random_uuid(), 'deferral', 'RITM0010045', 'aaaabbbbccccddddeeeeffff00005555', '{}', 'accepted') RETURNING id)
		INSERT INTO deferrals (event, change_number, device_name, until, reason, approved_by, ritm_number, ritm_sys_id)
		SELECT id, $1, 'LATER01', $2, 'month-end close', 'approver', 'RITM0010045', 'aaaabbbbccccddddeeeeffff00005555' FROM ev`, number, until)
	require.NoError(t, err)

	// Three waves at the deadline (LONE01 and PAYDB01; PAYDB02; PAYWEB01),
	// then LATER01's own run after its deferral.
	h.waitFor("every forced wave closed and read", func() bool { return allResultsRead(h, number, 4) })

	ws := h.waves(number)
	require.Len(t, ws, 4)
	require.False(t, ws[0].OpenedAt.Before(deadline), "wave 1 opened at %s, before the deadline %s", ws[0].OpenedAt, deadline)
	require.False(t, ws[3].OpenedAt.Before(until), "LATER01 forced at %s, before its deferral ended at %s", ws[3].OpenedAt, until)
	require.True(t, ws[3].RunAt.After(ws[0].RunAt), "LATER01 is a run of its own")
	in := h.waveOf(number)
	require.Equal(t, map[string]int64{"lone01": ws[0].ID, "paydb01": ws[0].ID, "paydb02": ws[1].ID, "payweb01": ws[2].ID, "later01": ws[3].ID}, in,
		"backends apart, the frontend after them, the unserviced device in the first wave")
	requireWavesRanOnce(t, h, number, 4)

	l, err := ledger.ForChange(ctx, h.pool, number, time.Now(), h.deps.Compliance.Ledger)
	require.NoError(t, err)
	got := map[string]string{}
	for _, d := range l.Devices {
		got[d.Device] = string(d.Outcome) + "/" + d.ForcedResult
		if d.Outcome == compliance.Forced {
			require.NotNil(t, d.ForcedAt)
			require.False(t, d.ByDeadline, "%s: forced is never by the deadline", d.Device)
		}
	}
	require.Equal(t, map[string]string{
		"GOOD01": "patched_in_window/", "LONE01": "forced/failed", "PAYDB01": "forced/patched", "PAYDB02": "forced/patched",
		"PAYWEB01": "forced/patched", "LATER01": "forced/patched",
	}, got)

	h.waitFor("LONE01's forced incident", func() bool {
		for _, f := range h.failures(number) {
			if f.Kind == store.FailureForced && f.Subject == "LONE01" && f.IncidentSysID != "" {
				return true
			}
		}
		return false
	})
	for _, f := range h.failures(number) {
		if f.Kind == store.FailureForced {
			require.Equal(t, "LONE01", f.Subject, "only LONE01 failed when forced")
		}
	}
	notes := h.notes(sysID)
	require.Contains(t, notes, "FORCED REMEDIATION of "+number+": 4 device(s)")
	require.Contains(t, notes, "FORCED REMEDIATION of "+number+": 1 device(s)")
	require.Contains(t, notes, "in 3 wave(s) of 3s each, one after the other")
	require.Contains(t, notes, "- wave 2: PAYDB02")
	require.Contains(t, notes, "forced wave 1 of "+number+" OPENED")
	require.Contains(t, notes, "results of forced wave 1 of "+number+": 1 patched, 1 failed, 0 without status.")
	require.Contains(t, h.notes(ritmSysID), "your device(s) PAYDB01 were not patched by their deadline in "+number+" and are being FORCED now")
}

// TestForcedWavesSurviveCrash: a replica killed while a wave is open, and
// another taking over, neither skip nor repeat a wave: every wave opens
// once, in order, and every device gets its result.
func TestForcedWavesSurviveCrash(t *testing.T) {
	t.Parallel()
	devices := []estate.SeedDevice{{Name: "WEB01"}, {Name: "WEB02"}, {Name: "WEB03"}}
	services := map[string][2]string{
		"WEB01": {"Shop", "frontend"}, "WEB02": {"Shop", "frontend"}, "WEB03": {"Shop", "frontend"},
	}
	now := time.Now().Truncate(time.Second)
	w := window{now.Add(4 * time.Second), now.Add(6 * time.Second)}
	deadline := w.end.Add(2 * time.Second)
	h := forceHarness(t, devices, nil, services, w, deadline, 3*time.Second)
	// Shop's three frontends: at most two down at once (n−1), so two waves.
	stopA := h.startClient()
	number, _ := h.approveCritical(now, now.Add(time.Hour), "FRC")
	h.waitFor("wave 1 open", func() bool {
		ws := h.waves(number)
		return len(ws) == 2 && ws[0].State == store.WaveOpen
	})
	stopA(true) // killed while wave 1 is open
	h.startClient()
	h.waitFor("every forced wave closed and read", func() bool { return allResultsRead(h, number, 2) })
	requireWavesRanOnce(t, h, number, 2)
	in := h.waveOf(number)
	require.Len(t, in, 3)
	size := map[int64]int{}
	for _, id := range in {
		size[id]++
	}
	require.Len(t, size, 2)
	for id, n := range size {
		require.LessOrEqual(t, n, 2, "wave %d takes all of Shop's frontends down", id)
	}
	var results int
	require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT count(*) FROM forced_devices WHERE change_number = $1 AND result = 'patched'`, number).Scan(&results))
	require.Equal(t, 3, results)
}

// TestCancelStopsForcing: canceling the change cancels the waves not yet
// run and disables the running one at once.
func TestCancelStopsForcing(t *testing.T) {
	t.Parallel()
	devices := []estate.SeedDevice{{Name: "APP01"}, {Name: "APP02"}}
	services := map[string][2]string{"APP01": {"Crm", "middle"}, "APP02": {"Crm", "middle"}}
	now := time.Now().Truncate(time.Second)
	w := window{now.Add(4 * time.Second), now.Add(6 * time.Second)}
	deadline := w.end.Add(2 * time.Second)
	h := forceHarness(t, devices, nil, services, w, deadline, time.Hour)
	h.startClient()
	number, sysID := h.approveCritical(now, now.Add(time.Hour), "FRC")
	h.waitFor("wave 1 open", func() bool {
		ws := h.waves(number)
		return len(ws) == 2 && ws[0].State == store.WaveOpen
	})
	h.update(number, "approval = 'rejected', state = 'canceled'", func(rev int64) river.JobArgs {
		return UnwindChangeArgs{ChangeNumber: number, Revision: rev}
	})
	h.waitFor("the open wave closed and the next canceled", func() bool {
		ws := h.waves(number)
		return ws[0].State == store.WaveClosed && ws[1].State == store.WaveCanceled
	})
	for _, d := range h.forcedDeployments(number) {
		require.False(t, d.Enabled, "%s left enabled", d.Name)
	}
	require.Contains(t, h.notes(sysID), "Forced remediation stopped: 1 wave(s) not yet run are canceled; 1 running wave(s) are being disabled now.")
}

// TestEmergencyPatchedBeforeDeadline: an emergency change whose schedule
// has no window before its deadline (the default: 24 hours after its
// start) gets a slot at the change's start, the window opens on time, and
// its device is patched inside it, long before the deadline
// (docs/architecture.md §9.2).
func TestEmergencyPatchedBeforeDeadline(t *testing.T) {
	t.Parallel()
	h := newFailureHarness(t, failureOptions{devices: []estate.SeedDevice{{Name: "EMERG01"}}})
	h.deps.Metrics = NewMetrics(nil)
	h.deps.Compliance = ComplianceOptions{PreflightLead: time.Hour, Interval: time.Second, ReminderLead: time.Hour}
	h.load(`  - {name: URGENT, collection: "Patch - URGENT", timezone: UTC, recurrence: {anchor: patch_tuesday, offset_days: 20}, start: "03:00", duration: 15m}` + "\n")
	ctx := context.Background()
	require.NoError(t, h.est.SCCM().AddMember("Patch - URGENT", "EMERG01"))
	_, err := h.pool.Exec(ctx, `INSERT INTO devices (name, schedule_name) VALUES ('EMERG01', 'URGENT')`)
	require.NoError(t, err)
	h.startClient()

	start := time.Now().Add(4 * time.Second).Truncate(time.Second).UTC()
	deadline := start.Add(24 * time.Hour) // Microsoft IT's emergency rule, the default
	number, sysID := "CHG0039101", fmt.Sprintf("%032x", 0xe4e4)
	require.NoError(t, h.sn.AddRecord("change_request", sysID, number))
	// The change lasts an hour: its schedule's own windows are weeks away.
	_, err = h.pool.Exec(ctx, `INSERT INTO changes (number, sys_id, state, approval, start_at, end_at, update_groups, schedules, revision, classification)
		VALUES ($1, $2, 'scheduled', 'approved', $3, $4, $5, $6, 1, 'emergency')`,
		number, sysID, start, start.Add(time.Hour), []string{"2026-12 Servers"}, []string{"URGENT"})
	require.NoError(t, err)
	h.insert(PlanChangeArgs{ChangeNumber: number, Revision: 1})

	h.waitFor("EMERG01 patched", func() bool {
		l, err := ledger.ForChange(ctx, h.pool, number, time.Now(), h.deps.Compliance.Ledger)
		return err == nil && len(l.Devices) == 1 && l.Devices[0].Outcome == compliance.PatchedInWindow
	})
	l, err := ledger.ForChange(ctx, h.pool, number, time.Now(), h.deps.Compliance.Ledger)
	require.NoError(t, err)
	d := l.Devices[0]
	require.True(t, d.Deadline.Equal(deadline), "the change's deadline: %s", d.Deadline)
	require.True(t, d.ByDeadline, "patched by the deadline")
	require.NotNil(t, d.StatusAt)
	require.True(t, d.StatusAt.Before(start.Add(15*time.Minute)), "inside the emergency window")
	require.True(t, d.WindowStart.Equal(start), "the emergency slot starts with the change: %s", d.WindowStart)
	require.Contains(t, h.notes(sysID), "- URGENT: emergency: its schedule has no window in the change before the deadline")
}

// TestRefusedWaveReachesAPerson: a wave SCCM refuses (here the forced
// collection is one of SCCM's default collections, which take no direct
// rules) is retried, then the run is given up with one incident, one alert
// and a note on the change — never silence — and nothing is enabled.
func TestRefusedWaveReachesAPerson(t *testing.T) {
	t.Parallel()
	devices := []estate.SeedDevice{{Name: "SRV01"}, {Name: "SRV02"}}
	now := time.Now().Truncate(time.Second)
	w := window{now.Add(4 * time.Second), now.Add(6 * time.Second)}
	deadline := w.end.Add(2 * time.Second)
	h := forceHarness(t, devices, nil, nil, w, deadline, time.Minute)
	require.NoError(t, h.est.SCCM().AddDefaultCollection("All Systems"))
	h.deps.Force.Collection = "All Systems"
	h.startClient()
	number, sysID := h.approveCritical(now, now.Add(time.Hour), "FRC")
	h.waitFor("the run given up and its incident", func() bool {
		for _, f := range h.failures(number) {
			if f.Kind == store.FailureForced && f.IncidentSysID != "" {
				return true
			}
		}
		return false
	})
	ws := h.waves(number)
	require.Len(t, ws, 1)
	require.Equal(t, store.WaveFailed, ws[0].State)
	require.Equal(t, waveRefusals, ws[0].Attempts)
	require.Empty(t, h.forcedDeployments(number), "nothing was created or enabled")
	fs := h.failures(number)
	var forced []store.Failure
	for _, f := range fs {
		if f.Kind == store.FailureForced {
			forced = append(forced, f)
		}
	}
	require.Len(t, forced, 1, "one failure for the run, not one per device")
	require.Contains(t, forced[0].Message, "SMS")
	h.waitFor("its SCOM alert", func() bool {
		for _, f := range h.failures(number) {
			if f.Kind == store.FailureForced && f.AlertID != "" {
				return true
			}
		}
		return false
	})
	require.Contains(t, h.notes(sysID), "FORCED REMEDIATION FAILED for "+number)
}

// TestForcingWaitsForResume: a change On hold at its deadline is not
// forced — the change's note says forcing is postponed — and is forced
// once it is taken off hold.
func TestForcingWaitsForResume(t *testing.T) {
	t.Parallel()
	devices := []estate.SeedDevice{{Name: "HOLD01"}}
	now := time.Now().Truncate(time.Second)
	w := window{now.Add(4 * time.Second), now.Add(6 * time.Second)}
	deadline := w.end.Add(6 * time.Second)
	h := forceHarness(t, devices, nil, nil, w, deadline, 2*time.Second)
	h.startClient()
	number, sysID := h.approveCritical(now, now.Add(time.Hour), "FRC")
	h.waitFor("the window open", func() bool { return h.states(number)["open"] == 2 })
	pause := func(on bool) {
		h.update(number, fmt.Sprintf("on_hold = %t", on), func(rev int64) river.JobArgs {
			return HoldChangeArgs{ChangeNumber: number, Pause: true, Key: fmt.Sprint(rev)}
		})
	}
	pause(true)
	h.waitFor("the pause in force", func() bool {
		holds, err := store.ActiveHolds(context.Background(), h.pool, number)
		return err == nil && len(holds) == 1
	})
	require.True(t, time.Now().Before(deadline), "the test machine was too slow to pause before the deadline")
	h.waitFor("forcing postponed", func() bool { return strings.Contains(h.notes(sysID), "forced remediation of "+number+" is POSTPONED") })
	require.True(t, time.Now().After(deadline))
	require.Empty(t, h.waves(number), "nothing forced while the change is on hold")
	pause(false)
	h.waitFor("HOLD01 forced after the release", func() bool { return allResultsRead(h, number, 1) })
	requireWavesRanOnce(t, h, number, 1)
}

// TestNotForcedBeforeItsWindow: a device whose window comes after the
// change's deadline (a change approved late) is not forced at the
// deadline: forcing waits for its window to end and be read.
func TestNotForcedBeforeItsWindow(t *testing.T) {
	t.Parallel()
	devices := []estate.SeedDevice{{Name: "LATE01"}}
	now := time.Now().Truncate(time.Second)
	w := window{now.Add(8 * time.Second), now.Add(11 * time.Second)}
	deadline := now.Add(3 * time.Second)
	h := forceHarness(t, devices, []string{"LATE01"}, nil, w, deadline, 2*time.Second)
	h.startClient()
	number, _ := h.approveCritical(now, now.Add(time.Hour), "FRC")
	h.waitFor("LATE01 patched in its window", func() bool {
		l, err := ledger.ForChange(context.Background(), h.pool, number, time.Now(), h.deps.Compliance.Ledger)
		return err == nil && len(l.Devices) == 1 && l.Devices[0].Outcome.Patched()
	})
	require.Empty(t, h.waves(number), "LATE01 was patched in its window, after the deadline: nothing forced before it")
	require.Empty(t, h.forcedDeployments(number))
}

// TestForcedAtEachSite: with several SCCM sites, each site forces its own
// devices in its own forced collection, one call per wave at that site,
// and the sites' waves run side by side (docs/architecture.md §10.1).
func TestForcedAtEachSite(t *testing.T) {
	t.Parallel()
	h := newSitesHarness(t, []string{"PS2"}, nil)
	now := time.Now().Truncate(time.Second)
	w := window{now.Add(5 * time.Second), now.Add(7 * time.Second)}
	h.forceDeadline = w.end.Add(2 * time.Second)
	h.deps.Metrics = NewMetrics(nil)
	h.deps.Compliance = ComplianceOptions{PreflightLead: time.Hour, Interval: time.Second, ReminderLead: time.Hour}
	h.deps.Force = ForceOptions{Collection: forcedCollection, At: -1, WaveLength: 2 * time.Second}
	h.load(siteSchedule("AT-PS1", "PS1", w), siteSchedule("AT-PS2", "PS2", w))
	ctx := context.Background()
	for _, c := range h.codes {
		h.est.Site(c).AddCollection(forcedCollection, 0)
		// Known to SCCM, but not in its schedule's collection: nothing
		// reported in the window.
		_, err := h.est.Site(c).AddDevice("OFF-"+c, sccmsim.Outcome{})
		require.NoError(t, err)
		_, err = h.pool.Exec(ctx, `INSERT INTO devices (name, schedule_name) VALUES ($1, $2)`, "OFF-"+c, "AT-"+c)
		require.NoError(t, err)
	}
	h.startClient()
	number, _ := h.approveCritical(now, now.Add(time.Hour))
	h.waitFor("each site's wave closed and read", func() bool { return allResultsRead(h.harness, number, 2) })
	sites := map[string]string{}
	for _, wv := range h.waves(number) {
		f, err := store.WaveDevices(ctx, h.pool, wv.ID)
		require.NoError(t, err)
		require.Len(t, f, 1)
		sites[wv.Site] = f[0].Device
		require.Equal(t, store.ForcedPatched, f[0].Result)
	}
	require.Equal(t, map[string]string{"PS1": "OFF-PS1", "PS2": "OFF-PS2"}, sites, "each site forces its own device")
	for _, c := range h.codes {
		require.Equal(t, 1, h.est.Site(c).CallsByTemplate()[sccm.ForceWaveTemplate], "site %s: one call for its wave", c)
		var forced []sccmsim.DeploymentState
		for _, d := range h.deploymentsAt(c, number) {
			if strings.Contains(d.Name, forcedSlot) {
				forced = append(forced, d)
			}
		}
		require.Len(t, forced, 2, "site %s: its forced deployments, one per update group", c)
		for _, d := range forced {
			require.False(t, d.Enabled, "site %s: %s left enabled: %+v (waves %+v)", c, d.Name, d.Events, h.waves(number))
			require.Len(t, d.Events, 2, "site %s: enabled once, disabled once", c)
		}
	}
}
