package jobs

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/autopatch/autopatch/internal/compliance"
	"github.com/autopatch/autopatch/internal/store"
)

// Metrics are the workers' Prometheus metrics.
type Metrics struct {
	OpenLag  prometheus.Histogram
	CloseLag prometheus.Histogram
	Missed   prometheus.Counter
	// JobsRescued counts jobs taken over from replicas that stopped.
	JobsRescued prometheus.Counter

	// Status polling and failure reporting.
	Polls             prometheus.Counter
	PollDuration      prometheus.Histogram
	Failures          *prometheus.CounterVec // by kind
	AlertsRaised      prometheus.Counter
	AlertsClosed      prometheus.Counter
	IncidentsCreated  prometheus.Counter
	IncidentsResolved prometheus.Counter

	// Rollout control.
	Halts *prometheus.CounterVec // holds decided, by kind: budget, tier, pause
	Held  prometheus.Counter     // deployments moved to held
	// OutsideWindow counts devices whose ledger outcome became
	// patched_outside_window (compliance.go).
	OutsideWindow prometheus.Counter

	// Forced remediation (force_change.go, force_wave.go).
	ForcedWaves   *prometheus.CounterVec // by event: opened, closed, failed
	ForcedDevices prometheus.Counter     // devices put into the forced collection
	ForcedResults *prometheus.CounterVec // forced devices' results
}

var lagBuckets = []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		OpenLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "autopatch_window_open_lag_seconds",
			Help:    "Time from a window's start to its deployments being enabled in SCCM.",
			Buckets: lagBuckets,
		}),
		CloseLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "autopatch_window_close_lag_seconds",
			Help:    "Time from when a deployment had to close to its being disabled in SCCM.",
			Buckets: lagBuckets,
		}),
		Missed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "autopatch_windows_missed_total",
			Help: "Deployments whose window was missed: never enabled because too little of it was left.",
		}),
		JobsRescued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "autopatch_jobs_rescued_total",
			Help: "Running jobs taken over from a replica that stopped (killed, crashed or lost).",
		}),
	}
	m.Polls = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "autopatch_status_polls_total",
		Help: "Deployment status reads (one SCCM call each, for every deployment polled).",
	})
	m.PollDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "autopatch_status_poll_duration_seconds",
		Help:    "Duration of the SCCM call of one status poll.",
		Buckets: lagBuckets,
	})
	m.Failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "autopatch_failures_total",
		Help: "Failures found, by kind: error, no_status, missed_window, storm (a storm's devices count under their own kind too).",
	}, []string{"kind"})
	m.AlertsRaised = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "autopatch_scom_alerts_raised_total",
		Help: "SCOM alerts raised for failures.",
	})
	m.AlertsClosed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "autopatch_scom_alerts_closed_total",
		Help: "SCOM alerts closed because their device recovered.",
	})
	m.IncidentsCreated = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "autopatch_incidents_created_total",
		Help: "ServiceNow incidents opened for failures.",
	})
	m.IncidentsResolved = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "autopatch_incidents_resolved_total",
		Help: "ServiceNow incidents resolved because their device recovered.",
	})
	m.Halts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "autopatch_rollout_holds_total",
		Help: "Rollout holds decided, by kind: budget (a halt: the error budget was exceeded), tier (tier gating), pause (On hold in ServiceNow).",
	}, []string{"kind"})
	m.Held = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "autopatch_deployments_held_total",
		Help: "Deployments held by rollout control (autopatch_deployments{state=\"held\"} is how many are held now).",
	})
	m.OutsideWindow = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "autopatch_patched_outside_window_total",
		Help: "Devices SCCM reports patched outside their maintenance window (after its close, or before it opened).",
	})
	m.ForcedWaves = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "autopatch_forced_waves_total",
		Help: "Waves of forced remediation, by event: opened, closed, failed (SCCM would not run it; the run was given up).",
	}, []string{"event"})
	m.ForcedDevices = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "autopatch_forced_devices_total",
		Help: "Devices put into the forced collection with a required deployment after their deadline.",
	})
	m.ForcedResults = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "autopatch_forced_results_total",
		Help: "Results of forced devices read when their wave closed: patched, failed, no_status.",
	}, []string{"result"})
	for _, e := range []string{"opened", "closed", "failed"} {
		m.ForcedWaves.WithLabelValues(e)
	}
	for _, r := range []string{"patched", "failed", "no_status"} {
		m.ForcedResults.WithLabelValues(r)
	}
	for _, kind := range []string{"error", "no_status", "missed_window", "storm", "halt", "noncompliant", "forced"} {
		m.Failures.WithLabelValues(kind)
	}
	for _, kind := range []string{"budget", "tier", "pause"} {
		m.Halts.WithLabelValues(kind)
	}
	if reg != nil {
		reg.MustRegister(m.OutsideWindow)
		reg.MustRegister(m.OpenLag, m.CloseLag, m.Missed, m.JobsRescued)
		reg.MustRegister(m.Polls, m.PollDuration, m.Failures, m.AlertsRaised, m.AlertsClosed, m.IncidentsCreated, m.IncidentsResolved)
		reg.MustRegister(m.Halts, m.Held)
		reg.MustRegister(m.ForcedWaves, m.ForcedDevices, m.ForcedResults)
	}
	return m
}

// DeploymentStates exports the number of deployments in each state, read
// from the database at scrape time (every replica reports the same truth).
type DeploymentStates struct {
	Pool *pgxpool.Pool
	desc *prometheus.Desc
}

// NewDeploymentStates returns the collector.
func NewDeploymentStates(pool *pgxpool.Pool) *DeploymentStates {
	return &DeploymentStates{Pool: pool, desc: prometheus.NewDesc("autopatch_deployments",
		"Deployments by state.", []string{"state"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *DeploymentStates) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *DeploymentStates) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts := map[string]float64{"planned": 0, "created": 0, "open": 0, "closed": 0, "missed": 0, "obsolete": 0, "deleted": 0, "failed": 0, "held": 0}
	rows, err := c.Pool.Query(ctx, "SELECT state, count(*) FROM deployments GROUP BY state")
	if err == nil {
		for rows.Next() {
			var s string
			var n int64
			if rows.Scan(&s, &n) == nil {
				counts[s] = float64(n)
			}
		}
		rows.Close()
	}
	if err != nil || rows.Err() != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, n, s)
	}
}

// ComplianceGauges exports the compliance ledger by patch cycle, read from
// the database at scrape time: autopatch_compliance_devices{cycle,outcome}
// and autopatch_patched_by_deadline_ratio{cycle}.
type ComplianceGauges struct {
	Pool    *pgxpool.Pool
	devices *prometheus.Desc
	ratio   *prometheus.Desc
	past    *prometheus.Desc
}

// NewComplianceGauges returns the collector.
func NewComplianceGauges(pool *pgxpool.Pool) *ComplianceGauges {
	return &ComplianceGauges{Pool: pool,
		devices: prometheus.NewDesc("autopatch_compliance_devices",
			"Devices in the compliance ledger by patch cycle (YYYY-MM) and outcome.", []string{"cycle", "outcome"}, nil),
		ratio: prometheus.NewDesc("autopatch_patched_by_deadline_ratio",
			"Share of a patch cycle's devices patched by their deadline.", []string{"cycle"}, nil),
		past: prometheus.NewDesc("autopatch_devices_past_deadline",
			"Devices of a patch cycle whose deadline (moved by their deferral, if any) has passed and that are neither patched nor deferred; forced ones included. Deferred and forced devices: autopatch_compliance_devices{outcome=\"deferred\"|\"forced\"}.",
			[]string{"cycle"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *ComplianceGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.devices
	ch <- c.ratio
	ch <- c.past
}

// Collect implements prometheus.Collector. Every outcome of a cycle is
// exported, zero or not.
func (c *ComplianceGauges) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := store.OutcomeCounts(ctx, c.Pool)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.devices, err)
		return
	}
	type cycle struct {
		by       map[string]int
		total    int
		deadline int
		past     int
	}
	cycles := map[string]*cycle{}
	for _, n := range counts {
		cy, ok := cycles[n.Cycle]
		if !ok {
			cy = &cycle{by: map[string]int{}}
			cycles[n.Cycle] = cy
		}
		cy.by[n.Outcome] += n.Devices
		cy.total += n.Devices
		cy.deadline += n.ByDeadline
		cy.past += n.PastDeadline
	}
	for name, cy := range cycles {
		for _, o := range compliance.Outcomes {
			ch <- prometheus.MustNewConstMetric(c.devices, prometheus.GaugeValue, float64(cy.by[string(o)]), name, string(o))
		}
		ch <- prometheus.MustNewConstMetric(c.ratio, prometheus.GaugeValue, float64(cy.deadline)/float64(cy.total), name)
		ch <- prometheus.MustNewConstMetric(c.past, prometheus.GaugeValue, float64(cy.past), name)
	}
}
