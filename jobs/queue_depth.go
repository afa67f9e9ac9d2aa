package jobs

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// QueueDepth exports the River jobs waiting or running on each queue,
// autopatch_jobs{queue,state}, read from river_job at scrape time: a queue
// whose available or retryable jobs grow is one whose remote system is slow,
// down, or refusing (every replica reports the same truth).
type QueueDepth struct {
	Pool *pgxpool.Pool
	desc *prometheus.Desc
}

// queueStates are the states that count: finished jobs (completed,
// cancelled, discarded) are history, not depth.
var queueStates = []string{"available", "running", "retryable", "scheduled", "pending"}

// NewQueueDepth returns the collector.
func NewQueueDepth(pool *pgxpool.Pool) *QueueDepth {
	return &QueueDepth{Pool: pool, desc: prometheus.NewDesc("autopatch_jobs",
		"River jobs not finished, by queue and state (available, running, retryable, scheduled, pending).", []string{"queue", "state"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *QueueDepth) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *QueueDepth) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts := map[[2]string]float64{}
	for _, q := range []string{QueueDefault, QueueSCCM, QueueSCOM, QueueServiceNow} {
		for _, s := range queueStates {
			counts[[2]string{q, s}] = 0
		}
	}
	rows, err := c.Pool.Query(ctx, `SELECT queue, state::text, count(*) FROM river_job
		WHERE state IN ('available', 'running', 'retryable', 'scheduled', 'pending') GROUP BY 1, 2`)
	if err == nil {
		for rows.Next() {
			var q, s string
			var n int64
			if rows.Scan(&q, &s, &n) == nil {
				counts[[2]string{q, s}] = float64(n)
			}
		}
		rows.Close()
	}
	if err != nil || rows.Err() != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, n, k[0], k[1])
	}
}

// OverdueWindows exports autopatch_deployments_open_past_close: deployments
// still enabled (state open) after the instant they had to close, and the
// age of the oldest, read at scrape time. Non-zero for more than a minute
// means a window that does not close: every replica down, SCCM refusing the
// disable, or a bug; the alert is the operator's cue to disable by hand.
type OverdueWindows struct {
	Pool      *pgxpool.Pool
	count     *prometheus.Desc
	oldestAge *prometheus.Desc
}

// NewOverdueWindows returns the collector.
func NewOverdueWindows(pool *pgxpool.Pool) *OverdueWindows {
	return &OverdueWindows{Pool: pool,
		count: prometheus.NewDesc("autopatch_deployments_open_past_close",
			"Deployments still enabled after the instant they had to close.", nil, nil),
		oldestAge: prometheus.NewDesc("autopatch_deployments_open_past_close_seconds",
			"How long the longest-overdue open deployment is past its close instant (0 when none).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *OverdueWindows) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.count
	ch <- c.oldestAge
}

// Collect implements prometheus.Collector.
func (c *OverdueWindows) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var n int64
	var age float64
	err := c.Pool.QueryRow(ctx, `SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(close_at)), 0)::float8
		FROM deployments WHERE state = 'open' AND close_at < now()`).Scan(&n, &age)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.count, err)
		ch <- prometheus.NewInvalidMetric(c.oldestAge, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(c.oldestAge, prometheus.GaugeValue, age)
}
