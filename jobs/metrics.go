package jobs

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
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
	for _, kind := range []string{"error", "no_status", "missed_window", "storm", "halt"} {
		m.Failures.WithLabelValues(kind)
	}
	for _, kind := range []string{"budget", "tier", "pause"} {
		m.Halts.WithLabelValues(kind)
	}
	if reg != nil {
		reg.MustRegister(m.OpenLag, m.CloseLag, m.Missed, m.JobsRescued)
		reg.MustRegister(m.Polls, m.PollDuration, m.Failures, m.AlertsRaised, m.AlertsClosed, m.IncidentsCreated, m.IncidentsResolved)
		reg.MustRegister(m.Halts, m.Held)
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
