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
	for _, q := range []string{QueueDefault, QueueSCCM, QueueSCOM, QueueServiceNow, QueueWindows} {
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
