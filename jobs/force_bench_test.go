package jobs

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/internal/estate"
	"github.com/autopatch/autopatch/internal/ledger"
	"github.com/autopatch/autopatch/internal/store"
)

// BenchmarkForceWave2000: 2,000 devices of 200 services (backend, middle,
// frontend), none patched, past their deadline: the forcing decision (the
// ledger, the wave plan, the rows) and the first wave's opening, one
// WinRM call for its 400 devices whatever their number (issue #15's
// figure). Reported: the decision's time, the wave's devices, and the
// WinRM calls of the opening.
func BenchmarkForceWave2000(b *testing.B) {
	const services = 200 // 200 × (3 backend + 3 middle + 4 frontend) = 2,000
	var devices []estate.SeedDevice
	for s := range services {
		for i := range 10 {
			devices = append(devices, estate.SeedDevice{Name: fmt.Sprintf("S%03d-%02d", s, i)})
		}
	}
	h := newHarness(b, func(o *estate.Options) { o.Seed.Devices = devices })
	h.deps.Metrics = NewMetrics(nil)
	deadline := time.Now().Add(-time.Minute)
	h.deps.Compliance = ComplianceOptions{Ledger: ledger.Options{DeadlineFor: func(store.ChangeRow) time.Time { return deadline }}}
	h.deps.Force = ForceOptions{Collection: forcedCollection, At: -1, WaveLength: time.Hour}
	h.est.SCCM().AddCollection(forcedCollection, 0)
	h.load(schedule("FRC", "automatic", window{deadline.Add(-3 * time.Hour), deadline.Add(-2 * time.Hour)}))
	ctx := context.Background()
	names, svcs, tiers := make([]string, len(devices)), make([]string, len(devices)), make([]string, len(devices))
	for i, d := range devices {
		names[i], svcs[i] = d.Name, fmt.Sprintf("Service %03d", i/10)
		switch i % 10 {
		case 0, 1, 2:
			tiers[i] = "backend"
		case 3, 4, 5:
			tiers[i] = "middle"
		default:
			tiers[i] = "frontend"
		}
	}
	_, err := h.pool.Exec(ctx, `INSERT INTO devices (name, schedule_name, service, tier)
		SELECT n, 'FRC', s, t FROM unnest($1::text[], $2::text[], $3::text[]) AS x(n, s, t)`, names, svcs, tiers)
	require.NoError(b, err)
	// An insert-only River client: the decision and the opening enqueue
	// their notes; nothing works them here.
	client, err2 := river.NewClient[pgx.Tx](riverDriver(h.pool), &river.Config{SkipUnknownJobCheck: true})
	require.NoError(b, err2)
	ctx = withClient(ctx, client)
	keeper := NewWindowKeeper(h.deps, client)
	worker := &ForceChangeWorker{deps: h.deps}

	var decide time.Duration
	var waveDevices, calls, waves int
	b.ResetTimer()
	for n := range b.N {
		b.StopTimer()
		number, sysID := fmt.Sprintf("CHG%07d", 50000+n), fmt.Sprintf("%032x", 0xf0000+n)
		_, err := h.pool.Exec(ctx, `INSERT INTO changes (number, sys_id, state, approval, start_at, end_at, update_groups, status, revision, classification)
			VALUES ($1, $2, 'scheduled', 'approved', $3, $4, '{"2026-12 Servers"}', 'planned', 1, 'critical')`,
			number, sysID, deadline.Add(-4*time.Hour), deadline.Add(time.Hour))
		require.NoError(b, err)
		_, err = h.pool.Exec(ctx, `WITH p AS (INSERT INTO plans (change_number, version, change_start, change_end)
				VALUES ($1, 1, $2, $3) RETURNING id)
			INSERT INTO plan_entries (plan_id, schedule_name, window_start, window_end)
			SELECT id, 'FRC', $4, $5 FROM p`, number, deadline.Add(-4*time.Hour), deadline.Add(time.Hour),
			deadline.Add(-3*time.Hour), deadline.Add(-2*time.Hour))
		require.NoError(b, err)
		// The previous iteration's wave is closed: one wave at a time.
		_, err = h.pool.Exec(ctx, `UPDATE forced_waves SET state = 'canceled', opened_at = NULL, close_at = NULL WHERE state IN ('planned', 'open')`)
		require.NoError(b, err)
		before := h.est.SCCM().CallsByTemplate()[sccm.ForceWaveTemplate]
		b.StartTimer()

		t0 := time.Now()
		require.NoError(b, worker.Work(ctx, &river.Job[ForceChangeArgs]{JobRow: &rivertype.JobRow{},
			Args: ForceChangeArgs{ChangeNumber: number, At: deadline}}))
		decide += time.Since(t0)
		opened, err := keeper.openNextWave(ctx, "", h.deps.SCCM, 1)
		require.NoError(b, err)
		require.Equal(b, 1, opened)

		b.StopTimer()
		calls += h.est.SCCM().CallsByTemplate()[sccm.ForceWaveTemplate] - before
		ws := h.waves(number)
		waves = len(ws)
		devs, err := store.WaveDevices(ctx, h.pool, ws[0].ID)
		require.NoError(b, err)
		waveDevices = len(devs)
		b.StartTimer()
	}
	b.ReportMetric(float64(decide.Milliseconds())/float64(b.N), "decide-ms/op")
	b.ReportMetric(float64(calls)/float64(b.N), "winrm-calls/wave")
	b.ReportMetric(float64(waveDevices), "devices/wave")
	b.ReportMetric(float64(waves), "waves")
}
