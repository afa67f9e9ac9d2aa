package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/connectors/scom"
	"github.com/autopatch/autopatch/connectors/servicenow"
	"github.com/autopatch/autopatch/connectors/servicenow/servicenowsim"
	"github.com/autopatch/autopatch/connectors/winrm"
	"github.com/autopatch/autopatch/internal/config"
	"github.com/autopatch/autopatch/internal/estate"
	"github.com/autopatch/autopatch/internal/schedules"
	"github.com/autopatch/autopatch/internal/stallwatch"
	"github.com/autopatch/autopatch/internal/store"
	"github.com/autopatch/autopatch/internal/testdb"
)

// The scale benchmarks of issue #19 run autopatch against the generated
// estate of Microsoft IT (internal/estate/scale.yaml: 8,000 servers, 24
// windows Thursday to Sunday, 3 update groups, 2 s per WinRM call). Each
// plays its scenario once per b.N iteration; one iteration takes longer
// than the default -benchtime, so `make bench` runs each once.

// scaleHarness is a harness on a generated estate whose pool counts the
// database round trips.
type scaleHarness struct {
	*harness
	gen     estate.ScaleEstate
	runner  *winrm.Client
	queries *queryCounter
}

type scaleOptions struct {
	stormThreshold int
	pollInterval   time.Duration
}

// newScaleHarness starts the estate that spec (estate.ParseScale) generates,
// plus the window computer that carries storm alerts, and the clients.
func newScaleHarness(tb testing.TB, spec string, o scaleOptions) *scaleHarness {
	tb.Helper()
	ctx := context.Background()
	var logOut io.Writer = io.Discard
	if os.Getenv("AUTOPATCH_TEST_LOG") != "" {
		logOut = os.Stderr
	}
	logger := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelDebug}))

	scale, err := estate.ParseScale(spec)
	require.NoError(tb, err)
	gen := scale.Generate(time.Now().UTC().Format("2006-01"))
	seed := gen.Seed()
	seed.Devices = append(seed.Devices, estate.SeedDevice{Name: windowComputer})

	// The pool counts every query, batch and COPY: one round trip each.
	counter := &queryCounter{}
	cfg, err := pgxpool.ParseConfig(testdb.URL(tb))
	require.NoError(tb, err)
	cfg.ConnConfig.Tracer = counter
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(tb, err)
	tb.Cleanup(pool.Close)

	h := &harness{t: tb, pool: pool, stalls: stallwatch.Start()}
	tb.Cleanup(h.stalls.Stop)
	h.est, err = estate.Start(ctx, estate.Options{Seed: seed})
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = h.est.Close() })

	wcfg := h.est.WinRMConfig()
	wcfg.Timeout = time.Minute
	runner, err := winrm.New(wcfg, logger)
	require.NoError(tb, err)
	h.sn = h.est.ServiceNow()
	snClient, err := servicenow.New(h.est.ServiceNowConfig(), nil, logger)
	require.NoError(tb, err)
	h.deps = &Deps{
		Pool: pool, Logger: logger, Schedules: &schedules.Current{},
		SCCM:           sccm.New(runner, "", logger),
		SCOM:           scom.New(runner, scom.Options{}, logger),
		ServiceNow:     snClient,
		MinRemaining:   30 * time.Minute,
		PollInterval:   o.pollInterval,
		StormThreshold: o.stormThreshold,
		WindowComputer: windowComputer,
		Incidents:      IncidentSettings{AssignmentGroup: "Server Patching", Urgency: 2, Impact: 3},
	}
	return &scaleHarness{harness: h, gen: gen, runner: runner, queries: counter}
}

// loadYAML puts a schedules file in force; the collections are the seed's.
func (h *scaleHarness) loadYAML(text []byte) {
	h.t.Helper()
	path := h.t.TempDir() + "/schedules.yaml"
	require.NoError(h.t, os.WriteFile(path, text, 0o600))
	require.NoError(h.t, h.deps.Schedules.Load(context.Background(), path, &store.Store{Pool: h.pool}, h.deps.Logger))
}

// loadOneOff puts in force the generated schedules with one one-off window
// each, w.
func (h *scaleHarness) loadOneOff(w window) {
	h.t.Helper()
	text := "schedules:\n"
	for _, s := range h.gen.Schedules {
		text += schedule(s.Name, "automatic", w)
	}
	h.loadYAML([]byte(text))
}

// insertDevices records every generated device's schedule, service and
// tier, as the schedule requests would have.
func (h *scaleHarness) insertDevices() {
	h.t.Helper()
	var names, scheds, services, tiers []string
	for _, d := range h.gen.Devices {
		names, scheds = append(names, d.Name), append(scheds, d.Schedule)
		services, tiers = append(services, d.Service), append(tiers, d.Tier)
	}
	_, err := h.pool.Exec(context.Background(), `INSERT INTO devices (name, schedule_name, service, tier)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])`, names, scheds, services, tiers)
	require.NoError(h.t, err)
}

// approveScale is approve with the generated update groups.
func (h *scaleHarness) approveScale(start, end time.Time) string {
	h.t.Helper()
	n := h.changes.Add(1)
	number := fmt.Sprintf("CHG%07d", 31900+n)
	sysID := fmt.Sprintf("%032x", 0x5ca1e00+n)
	require.NoError(h.t, h.sn.AddRecord("change_request", sysID, number))
	_, err := h.pool.Exec(context.Background(), `INSERT INTO changes (number, sys_id, state, approval, start_at, end_at, update_groups, schedules, revision)
		VALUES ($1, $2, 'scheduled', 'approved', $3, $4, $5, NULL, 1)`, number, sysID, start, end, h.gen.UpdateGroups)
	require.NoError(h.t, err)
	h.insert(PlanChangeArgs{ChangeNumber: number, Revision: 1})
	return number
}

// waitLong is waitFor with a bound of its own.
func (h *scaleHarness) waitLong(what string, bound time.Duration, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %s waiting for %s", bound, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// queryCounter is a pgx tracer that counts round trips: each query, each
// batch, each COPY.
type queryCounter struct{ n atomic.Int64 }

func (q *queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	q.n.Add(1)
	return ctx
}
func (q *queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (q *queryCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	q.n.Add(1)
	return ctx
}
func (q *queryCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (q *queryCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}
func (q *queryCounter) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	q.n.Add(1)
	return ctx
}
func (q *queryCounter) TraceCopyFromEnd(context.Context, *pgx.Conn, pgx.TraceCopyFromEndData) {}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	require.NoError(tb, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkScaleCreateMonth: approval of the month's change → every
// deployment of the generated estate (24 schedules × 3 update groups)
// created in SCCM, with 2 s per WinRM call. Reports the WinRM calls
// (goal: one per site) and the wall time from approval to the last
// deployment recorded as created.
func BenchmarkScaleCreateMonth(b *testing.B) {
	var wall time.Duration
	var calls, creates, deployments int
	for range b.N {
		b.StopTimer()
		h := newScaleHarness(b, "", scaleOptions{})
		h.loadYAML(h.gen.SchedulesYAML())
		h.insertDevices()
		h.startClient()
		want := len(h.gen.Schedules) * len(h.gen.UpdateGroups)
		before, beforeCreate := h.est.SCCM().Calls(), h.est.SCCM().CallsByTemplate()[sccm.CreateDeploymentsTemplate]
		b.StartTimer()

		start := time.Now()
		// The month ahead: every schedule's next window Thursday to Sunday.
		number := h.approveScale(start, start.AddDate(0, 0, 40))
		h.waitLong("every deployment created", 2*time.Minute, func() bool { return h.states(number)["created"] == want })
		wall += time.Since(start)

		b.StopTimer()
		calls += h.est.SCCM().Calls() - before
		created := h.est.SCCM().CallsByTemplate()[sccm.CreateDeploymentsTemplate] - beforeCreate
		require.Equal(b, 1, created, "one creation call for the month")
		creates += created
		deployments += len(h.deployments(number))
		require.Equal(b, want, len(h.deployments(number)))
	}
	n := float64(b.N)
	b.ReportMetric(float64(calls)/n, "winrm-calls")
	b.ReportMetric(float64(creates)/n, "create-calls")
	b.ReportMetric(float64(deployments)/n, "deployments")
	b.ReportMetric(wall.Seconds()/n, "wall-s")
}

// replayRunner records the site's answer to each template once and then
// answers from the recording, so the status poll's CPU is autopatch's own
// (decoding the answer, deciding, writing) and not the in-process
// simulator's. The WinRM transport (SOAP, base64) is left out with it.
type replayRunner struct {
	real   sccm.Runner
	mu     sync.Mutex
	answer map[string]json.RawMessage
	calls  int
}

func (r *replayRunner) Run(ctx context.Context, t winrm.Template, data, out any) error {
	r.mu.Lock()
	r.calls++
	raw, ok := r.answer[t.Name]
	r.mu.Unlock()
	if !ok {
		if err := r.real.Run(ctx, t, data, &raw); err != nil {
			return err
		}
		r.mu.Lock()
		r.answer[t.Name] = raw
		r.mu.Unlock()
	}
	return json.Unmarshal(raw, out)
}

// pollFigures are one poll's costs.
type pollFigures struct {
	cpu, wall        time.Duration
	wireCPU          time.Duration // with the simulator and WinRM, see measurePolls
	queries, calls   int
	results, failing int
}

// BenchmarkScaleStatusPoll: one status poll of an open window of 2,000
// devices × 3 update groups. The first poll of the window stores 6,000
// results (and their history) and decides the failures; a steady poll
// finds nothing changed. Reports autopatch's CPU (getrusage, the
// simulator's answer replayed: see replayRunner), the database round trips
// and the WinRM calls (asserted: one per poll).
func BenchmarkScaleStatusPoll(b *testing.B) {
	var first, steady pollFigures
	for range b.N {
		h := newScaleHarness(b, "servers=2000,schedules=1", scaleOptions{})
		now := time.Now().Truncate(time.Second)
		h.loadOneOff(window{now.Add(8 * time.Second), now.Add(time.Hour)})
		h.insertDevices()
		stop := h.startClient()
		number := h.approveScale(now, now.Add(2*time.Hour))
		want := len(h.gen.UpdateGroups)
		h.waitLong("the window open", 2*time.Minute, func() bool { return h.states(number)["open"] == want })
		stop(false)

		f1, f2 := h.measurePolls(b)
		first.add(f1)
		steady.add(f2)
	}
	n := float64(b.N)
	b.ReportMetric(first.cpu.Seconds()*1000/n, "first-cpu-ms")
	b.ReportMetric(float64(first.queries)/n, "first-db-queries")
	b.ReportMetric(first.wall.Seconds()*1000/n, "first-wall-ms")
	b.ReportMetric(steady.cpu.Seconds()*1000/n, "steady-cpu-ms")
	b.ReportMetric(float64(steady.queries)/n, "steady-db-queries")
	b.ReportMetric(steady.wireCPU.Seconds()*1000/n, "wire-sim-cpu-ms")
	b.ReportMetric(float64(first.calls+steady.calls)/(2*n), "winrm-calls/poll")
	b.ReportMetric(float64(first.results)/n, "results")
	b.ReportMetric(float64(first.failing)/n, "failures")
}

func (f *pollFigures) add(g pollFigures) {
	f.cpu += g.cpu
	f.wireCPU += g.wireCPU
	f.wall += g.wall
	f.queries += g.queries
	f.calls += g.calls
	f.results += g.results
	f.failing += g.failing
}

// measurePolls runs two polls of what is open, the first and a steady one,
// with the River client stopped, and returns their figures.
func (h *scaleHarness) measurePolls(b *testing.B) (first, steady pollFigures) {
	ctx := context.Background()
	deps := *h.deps
	runner := &replayRunner{real: h.runner, answer: map[string]json.RawMessage{}}
	deps.SCCM = sccm.New(runner, "", deps.Logger)
	// A client that is never started: the poll inserts its follow-up jobs
	// with it.
	client, err := NewClient(&deps, config.Queues{Default: 1, SCCM: 1, SCOM: 1, ServiceNow: 1})
	require.NoError(b, err)
	ctx = withClient(ctx, client)

	targets, err := store.PollTargets(ctx, h.pool)
	require.NoError(b, err)
	var names []string
	for _, d := range targets {
		names = append(names, d.Name)
	}
	rep, err := deps.SCCM.DeploymentStatus(ctx, names) // records the answer
	require.NoError(b, err)

	worker := &PollStatusWorker{deps: &deps}
	poll := func() pollFigures {
		runner.mu.Lock()
		runner.calls = 0
		runner.mu.Unlock()
		job := &river.Job[PollStatusArgs]{JobRow: &rivertype.JobRow{Attempt: 1}, Args: PollStatusArgs{At: time.Now()}}
		q0, cpu0, t0 := h.queries.n.Load(), cpuTime(b), time.Now()
		require.NoError(b, worker.Work(ctx, job))
		return pollFigures{
			cpu: cpuTime(b) - cpu0, wall: time.Since(t0), queries: int(h.queries.n.Load() - q0),
			calls: runner.calls, results: len(rep.Devices),
		}
	}
	first = poll()
	require.Equal(b, 1, first.calls, "one SCCM call per poll")
	var failing int
	require.NoError(b, h.pool.QueryRow(ctx, `SELECT count(*) FROM failures WHERE kind IN ('error', 'no_status')`).Scan(&failing))
	first.failing = failing
	steady = poll()
	require.Equal(b, 1, steady.calls, "one SCCM call per poll")

	// The same poll over the real wire: an upper bound that adds the WinRM
	// transport on both sides and the in-process simulator's own work.
	deps.SCCM = sccm.New(h.runner, "", deps.Logger)
	job := &river.Job[PollStatusArgs]{JobRow: &rivertype.JobRow{Attempt: 1}, Args: PollStatusArgs{At: time.Now()}}
	cpu0 := cpuTime(b)
	require.NoError(b, worker.Work(ctx, job))
	steady.wireCPU = cpuTime(b) - cpu0
	return first, steady
}

// BenchmarkScaleFailureStorm: 1,000 devices fail in one window, against a
// ServiceNow instance that rate-limits (50 requests a second, then 429 with
// Retry-After) and a SCOM that takes 2 s a call. Storm: the default
// threshold reports them as one storm (one alert, one incident listing
// them). OneEach: a threshold above 1,000 makes each its own alert and
// incident. Asserted: one alert and one incident per reported failure,
// none lost. Reports the time from the first failure seen to the last
// incident opened, the ServiceNow requests (and how many were refused 429),
// the SCOM calls and the database round trips (River's included).
func BenchmarkScaleFailureStorm(b *testing.B) {
	const rate = 50
	for _, tt := range []struct {
		name      string
		threshold int
	}{{"Storm", 0}, {"OneEach", 100_000}} {
		b.Run(tt.name, func(b *testing.B) {
			var toLast, settle time.Duration
			var requests, refused, scomCalls, queries, incidents, alerts int
			for range b.N {
				b.StopTimer()
				h := newScaleHarness(b, "servers=1000,schedules=1,failing=1,transient=0,silent=0,slow=0",
					scaleOptions{stormThreshold: tt.threshold, pollInterval: 5 * time.Second})
				h.sn.SetRateLimit(rate, time.Second)
				now := time.Now().Truncate(time.Second)
				h.loadOneOff(window{now.Add(8 * time.Second), now.Add(time.Hour)})
				h.insertDevices()
				h.startClient()
				number := h.approveScale(now, now.Add(2*time.Hour))
				want := len(h.gen.UpdateGroups)
				h.waitLong("the window open", 2*time.Minute, func() bool { return h.states(number)["open"] == want })
				req0, scom0, q0 := len(h.sn.Requests()), h.est.SCOM().Calls(), h.queries.n.Load()
				start := time.Now()
				b.StartTimer()

				var fs []store.Failure
				h.waitLong("every failure reported", 8*time.Minute, func() bool {
					fs = h.failures(number)
					return len(fs) >= 1000 && settled(fs)
				})
				settle += time.Since(start)
				b.StopTimer()

				var first, last time.Time
				reported := 0
				s := h.est.State()
				for _, f := range fs {
					if first.IsZero() || f.FirstSeenAt.Before(first) {
						first = f.FirstSeenAt
					}
					if !f.Reported() {
						continue
					}
					reported++
					if f.IncidentCreatedAt.After(last) {
						last = *f.IncidentCreatedAt
					}
					require.Len(b, incidentByCorrelation(s, f.CorrelationID), 1, "one incident for %s", f.Subject)
					require.Len(b, alertByKey(s, f.CorrelationID), 1, "one alert for %s", f.Subject)
				}
				devices := 0
				for _, f := range fs {
					if f.Kind == store.FailureError {
						devices++
					}
				}
				require.Equal(b, 1000, devices, "every failing device recorded once")
				require.Len(b, s.Incidents, reported, "no incident but the failures'")
				if tt.threshold == 0 {
					require.Equal(b, 1, reported, "one storm")
					require.Contains(b, s.Incidents[0].Description, "Devices (1000)")
				}
				toLast += last.Sub(first)
				requests += len(h.sn.Requests()) - req0
				refused += countStatus(h.sn.Requests()[req0:], http.StatusTooManyRequests)
				scomCalls += h.est.SCOM().Calls() - scom0
				queries += int(h.queries.n.Load() - q0)
				incidents += len(s.Incidents)
				alerts += len(s.Alerts)
			}
			n := float64(b.N)
			b.ReportMetric(toLast.Seconds()/n, "to-last-incident-s")
			b.ReportMetric(settle.Seconds()/n, "settled-s")
			b.ReportMetric(float64(incidents)/n, "incidents")
			b.ReportMetric(float64(alerts)/n, "alerts")
			b.ReportMetric(float64(requests)/n, "servicenow-requests")
			b.ReportMetric(float64(refused)/n, "servicenow-429")
			b.ReportMetric(float64(scomCalls)/n, "scom-calls")
			b.ReportMetric(float64(queries)/n, "db-queries")
		})
	}
}

func countStatus(rs []servicenowsim.Request, status int) int {
	n := 0
	for _, r := range rs {
		if r.Status == status {
			n++
		}
	}
	return n
}
