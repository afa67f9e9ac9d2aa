package ui

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/calendar"
	"github.com/autopatch/autopatch/internal/schedules"
	"github.com/autopatch/autopatch/internal/store"
	"github.com/autopatch/autopatch/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Run(m) }

// Hostile device names: device names come from outside (SCCM, ServiceNow
// requests), so every page must show them as text.
const (
	hostileScript = `<script>alert("x")</script>`
	hostileImg    = `"><img src=x onerror=alert(1)>`
)

// scenarioOpts shape a scenario.
type scenarioOpts struct {
	// SchedulesYAML is the schedules file; default the example schedules.
	SchedulesYAML []byte
	// Sites are AUTOPATCH_SCCM_SITES, which the schedules' sites name.
	Sites []string
	// Devices spread over the automatic and manual_reboot schedules.
	Devices int
	// Months of monthly changes, ending with Now's cycle.
	Months int
	Now    time.Time
}

// scenario is a patching history as autopatch's jobs leave it, written
// through internal/store where it has the writes (plans, deployments and
// their transitions, device results, failures with their alert and
// incident): one approved change per monthly cycle planned with
// internal/calendar's Plan, its windows opened and closed on time (one
// missed), device results mostly successes, failures with incidents, a
// window held back for service safety, devices with hostile names.
type scenario struct {
	pool    *pgxpool.Pool
	current *schedules.Current
	now     time.Time
	// Changes by cycle, oldest first; Current is Now's.
	changes       []string
	currentChange string
	devices       []string
}

func exampleSchedules(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "integrations", "sccm", "schedules.example.yaml"))
	require.NoError(t, err)
	return b
}

func seedScenario(t testing.TB, o scenarioOpts) *scenario {
	t.Helper()
	ctx := context.Background()
	if o.SchedulesYAML == nil {
		o.SchedulesYAML = exampleSchedules(t)
	}
	pool := testdb.Pool(t)
	file := filepath.Join(t.TempDir(), "schedules.yaml")
	require.NoError(t, os.WriteFile(file, o.SchedulesYAML, 0o600))
	current := schedules.Current{Sites: o.Sites}
	require.NoError(t, current.Load(ctx, file, &store.Store{Pool: pool}, slog.New(slog.NewTextHandler(io.Discard, nil))))
	sc := &scenario{pool: pool, current: &current, now: o.Now}

	var planned []calendar.Schedule // what a change without a schedules list plans
	for _, s := range current.Get().All() {
		if s.Kind != calendar.KindManualPatch {
			planned = append(planned, s)
		}
	}
	sc.seedDevices(t, planned, o.Devices)

	nowCycle := calendar.MonthOf(o.Now.UTC())
	for i := o.Months - 1; i >= 0; i-- {
		sc.seedChange(t, planned, nowCycle.AddMonths(-i), i == 0, i == 2)
	}
	return sc
}

var services = []string{"Payroll", "Web Shop", "Intranet", "Mail", "Billing", "CRM"}

func (sc *scenario) seedDevices(t testing.TB, planned []calendar.Schedule, n int) {
	t.Helper()
	ctx := context.Background()
	// Tiers follow the order of the schedules' windows in Now's cycle, as
	// an estate that respects tier order has them: the earliest third
	// backend, then middle, then frontend.
	tiers := []string{"backend", "middle", "frontend"}
	cycle := calendar.MonthOf(sc.now.UTC())
	var starts []time.Time
	for _, s := range planned {
		t := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
		if ws := s.CycleWindows(cycle); len(ws) > 0 {
			t = ws[0].Start
		}
		starts = append(starts, t)
	}
	tierOf := func(k int) string {
		rank := 0
		for _, t := range starts {
			if t.Before(starts[k]) {
				rank++
			}
		}
		return tiers[min(2, rank*3/len(planned))]
	}
	var names, scheds, svcs, trs []string
	var ids []int64
	for i := range n {
		s := planned[i%len(planned)]
		name := fmt.Sprintf("SRV%s%05d", strings.ToUpper(strings.SplitN(s.Name, "-", 2)[0]), i)
		switch i {
		case 0:
			name = hostileScript
		case 1:
			name = hostileImg
		}
		names = append(names, name)
		scheds = append(scheds, s.Name)
		svcs = append(svcs, services[(i/len(planned))%len(services)])
		trs = append(trs, tierOf(i%len(planned)))
		ids = append(ids, int64(16777216+i))
	}
	_, err := sc.pool.Exec(ctx, `INSERT INTO devices (name, resource_id, schedule_name, service, tier)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[])`, names, ids, scheds, svcs, trs)
	require.NoError(t, err)
	// What schedule requests did to the first devices.
	_, err = sc.pool.Exec(ctx, `INSERT INTO device_assignments (device_id, schedule_name, service, tier, request_item, outcome, detail, created_at)
		SELECT id, schedule_name, service, tier, 'RITM00' || (1000 + id), 'moved', '', $1::timestamptz - interval '40 days'
		FROM devices ORDER BY id LIMIT 20`, sc.now)
	require.NoError(t, err)
	sc.devices = names
}

// seedChange stores cycle m's change: planned over [Patch Tuesday, +6 days
// 12:00 UTC], so the schedules whose windows fall later are unplaceable.
// The current cycle holds one window back for service safety; the cycle
// with missed set has its first window missed.
func (sc *scenario) seedChange(t testing.TB, planned []calendar.Schedule, m calendar.Month, current, missed bool) {
	t.Helper()
	ctx := context.Background()
	pt := calendar.PatchTuesday(m.Year, m.Month)
	start := time.Date(m.Year, m.Month, pt, 0, 0, 0, 0, time.UTC)
	end := start.AddDate(0, 0, 6).Add(12 * time.Hour)
	number := fmt.Sprintf("CHG003%04d", m.Year%100*100+int(m.Month))
	sysID := fmt.Sprintf("%032x", m.Year*100+int(m.Month))
	group := m.String() + " Servers"
	_, err := sc.pool.Exec(ctx, `INSERT INTO changes (number, sys_id, state, approval, start_at, end_at, update_groups,
			short_description, sys_updated_on, status, revision, created_at, updated_at)
		VALUES ($1, $2, $3, 'approved', $4, $5, $6, $7, $8, 'planned', 1, $8, $8)`,
		number, sysID, map[bool]string{true: "scheduled", false: "closed"}[current], start, end, []string{group},
		"Monthly server patching "+m.String(), start.AddDate(0, 0, -3))
	require.NoError(t, err)
	sc.changes = append(sc.changes, number)
	if current {
		sc.currentChange = number
	}
	ch, err := store.GetChange(ctx, sc.pool, number)
	require.NoError(t, err)

	res := calendar.Plan(planned, start, end)
	var entries []store.PlanEntry
	held := map[string]bool{}
	for i, w := range res.Windows {
		ws, we := w.Start.UTC(), w.End.UTC()
		e := store.PlanEntry{Schedule: w.Schedule, WindowStart: &ws, WindowEnd: &we}
		if current && i == 0 && len(res.Windows) > 1 {
			e.Held = "service Web Shop: tier frontend would have 2 of 2 devices down at once (limit 1)"
			held[w.Schedule] = true
		}
		entries = append(entries, e)
	}
	for _, u := range res.Unplaceable {
		entries = append(entries, store.PlanEntry{Schedule: u.Schedule, Unplaceable: u.Reason})
	}
	tx, err := sc.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit, a no-op
	_, err = store.InsertPlan(ctx, tx, ch, entries)
	require.NoError(t, err)

	var results []store.DeviceResult
	type failed struct {
		device string
		depID  int64
		code   int64
		window time.Time
	}
	var failures []failed
	for i, w := range res.Windows {
		if held[w.Schedule] {
			continue
		}
		s, _ := sc.current.Get().Get(w.Schedule)
		name := "AP-" + number + "-" + w.Schedule + "-" + group
		id, err := store.InsertDeployment(ctx, tx, store.Deployment{ChangeNumber: number, Schedule: w.Schedule, UpdateGroup: group,
			Name: name, Collection: s.Collection, WindowStart: w.Start, WindowEnd: w.End})
		require.NoError(t, err)
		move := func(from, to, reason string, at time.Time) {
			require.NoError(t, store.Move(ctx, tx, store.Transition{ID: id, From: from, To: to, Reason: reason, At: at,
				SCCMID: map[bool]string{true: fmt.Sprintf("%d", 16777216+id)}[to == store.DeploymentCreated]}))
		}
		created := w.Start.Add(-72 * time.Hour)
		if created.Before(start) {
			created = start.Add(time.Hour)
		}
		if created.After(sc.now) {
			continue // still planned
		}
		move(store.DeploymentPlanned, store.DeploymentCreated, "deployment created in SCCM, disabled", created)
		switch {
		case missed && i == 0 && w.End.Before(sc.now):
			move(store.DeploymentCreated, store.DeploymentMissed, "autopatch could not enable it before too little of the window was left", w.End.Add(-30*time.Minute))
			_, _, err := store.InsertFailure(ctx, tx, store.Failure{ChangeNumber: number, Subject: name, Kind: store.FailureMissedWindow,
				DeploymentID: &id, Message: "the window was missed", CorrelationID: "missed-" + name, FirstSeenAt: w.End})
			require.NoError(t, err)
			continue
		case w.Start.After(sc.now):
			continue
		}
		move(store.DeploymentCreated, store.DeploymentOpen, "window opened: deployment enabled", w.Start.Add(time.Second))
		closed := !w.End.After(sc.now)
		if closed {
			move(store.DeploymentOpen, store.DeploymentClosed, "window closed: deployment disabled", w.End)
		}
		// The devices on the schedule report.
		for j, dev := range sc.devices {
			if j%len(planned) != indexOf(planned, w.Schedule) {
				continue
			}
			r := store.DeviceResult{DeploymentID: id, Device: dev, StatusType: 1, Message: "installed", ObservedAt: w.End.Add(-10 * time.Minute)}
			if !closed {
				r.StatusType, r.Message, r.ObservedAt = 2, "installing", sc.now
			}
			if closed && (j%97 == 5 || (current && j < 2)) {
				code := int64(0x80240022)
				r.StatusType, r.ErrorCode, r.Message = 5, &code, "WU_E_ALL_UPDATES_FAILED"
				failures = append(failures, failed{device: dev, depID: id, code: code, window: w.End})
			}
			results = append(results, r)
		}
	}
	for i := 0; i < len(results); i += 5000 {
		_, err := store.RecordResults(ctx, tx, results[i:min(i+5000, len(results))])
		require.NoError(t, err)
	}
	for k, f := range failures {
		code := f.code
		fid, _, err := store.InsertFailure(ctx, tx, store.Failure{ChangeNumber: number, Subject: f.device, Kind: store.FailureError,
			DeploymentID: &f.depID, ErrorCode: &code, Message: "WU_E_ALL_UPDATES_FAILED", CorrelationID: fmt.Sprintf("%s-%s", number, f.device),
			AlertComputer: f.device, FirstSeenAt: f.window.Add(5 * time.Minute)})
		require.NoError(t, err)
		require.NoError(t, store.RecordAlert(ctx, tx, fid, store.AlertResult{Outcome: "raised", AlertID: fmt.Sprintf("a1b2c3d4-0000-4000-8000-%012d", fid)}))
		require.NoError(t, store.RecordIncident(ctx, tx, fid, fmt.Sprintf("INC%07d", 10000+fid), fmt.Sprintf("%032x", 1<<40+fid), f.window.Add(6*time.Minute)))
		if !current && k%2 == 0 {
			_, err = tx.Exec(ctx, `UPDATE failures SET state = 'resolved', recovered_at = $2, resolved_at = $2 WHERE id = $1`, fid, f.window.AddDate(0, 0, 2))
			require.NoError(t, err)
		}
	}
	if current {
		// The work notes the jobs queued for the change, as River keeps them.
		for _, text := range []string{
			"autopatch: planned " + number + " (plan version 1).",
			"autopatch: window opened for " + group + ".",
		} {
			_, err := tx.Exec(ctx, `INSERT INTO river_job (args, kind, max_attempts, queue, state, finalized_at, attempt, attempted_at)
				VALUES (jsonb_build_object('table', 'change_request', 'sys_id', $1::text, 'text', $2::text), 'work_note', 25, 'servicenow', 'completed', $3, 1, $3)`,
				sysID, text, sc.now.Add(-time.Hour))
			require.NoError(t, err)
		}
	}
	// The plan and the deployments were made when the change was approved,
	// not when the test ran.
	_, err = tx.Exec(ctx, `UPDATE plans SET computed_at = $2 WHERE change_number = $1`, number, start.Add(-time.Hour))
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `UPDATE deployment_transitions SET at = $2
		WHERE to_state = 'planned' AND deployment_id IN (SELECT id FROM deployments WHERE change_number = $1)`, number, start.Add(-time.Hour))
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
}

func indexOf(ss []calendar.Schedule, name string) int {
	for i, s := range ss {
		if s.Name == name {
			return i
		}
	}
	return -1
}
