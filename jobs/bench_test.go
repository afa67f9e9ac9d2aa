package jobs

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/autopatch/autopatch/internal/estate"
)

// BenchmarkOpen200Windows measures how late 200 windows that open within the
// same second are enabled in SCCM, with 200 ms of WinRM latency per call
// (issue #6: p99 ≤ 2 s). Lag is read from the simulator's enable events, so
// it covers River, the database and the WinRM round trip.
func BenchmarkOpen200Windows(b *testing.B) {
	for _, spread := range []time.Duration{0, time.Second} {
		b.Run(fmt.Sprintf("Spread%s", spread), func(b *testing.B) {
			var lags []time.Duration
			for range b.N {
				lags = append(lags, open200(b, spread)...)
			}
			b.ReportMetric(percentileMs(lags, 0.50), "p50-ms")
			b.ReportMetric(percentileMs(lags, 0.99), "p99-ms")
			b.ReportMetric(percentileMs(lags, 1), "max-ms")
		})
	}
}

func open200(b *testing.B, spread time.Duration) []time.Duration {
	h := newHarness(b, withLatency(200*time.Millisecond))
	h.startClient()
	start := time.Now().Truncate(time.Second).Add(30 * time.Second)
	number, starts := h.plan200(start, spread)
	b.ResetTimer()
	lags := h.openLags(b, number, starts)
	b.StopTimer()
	return lags
}

// withLatency delays every WinRM call of the estate by d.
func withLatency(d time.Duration) func(*estate.Options) {
	return func(o *estate.Options) { o.Seed.Latency = d }
}

// plan200 plans one change of 200 schedules whose windows start from start
// on, spread over spread, and returns it with each collection's start.
func (h *harness) plan200(start time.Time, spread time.Duration) (number string, starts map[string]time.Time) {
	var entries []string
	starts = map[string]time.Time{}
	for i := range 200 {
		s := start.Add(spread * time.Duration(i) / 200)
		name := fmt.Sprintf("S%03d", i)
		starts["Patch - "+name] = s
		entries = append(entries, schedule(name, "automatic", window{s, s.Add(time.Hour)}))
	}
	h.load(entries...)
	number, _ = h.approve(time.Now(), start.Add(2*time.Hour))
	return number, starts
}

// openLags waits for plan200's 400 deployments to open and returns how
// long after its window's start each was enabled in SCCM.
func (h *harness) openLags(b *testing.B, number string, starts map[string]time.Time) []time.Duration {
	h.waitFor("400 deployments open", func() bool { return h.states(number)["open"] == 400 })
	var lags []time.Duration
	for _, d := range h.deployments(number) {
		if len(d.Events) == 0 || !strings.HasPrefix(d.Collection, "Patch - S") {
			b.Fatalf("%s was not enabled", d.Name)
		}
		lag := d.Events[0].At.Sub(starts[d.Collection])
		if lag < 0 {
			b.Fatalf("%s enabled %s before its window", d.Name, -lag)
		}
		lags = append(lags, lag)
	}
	return lags
}

// percentileMs is the p-th percentile of lags (0 < p ≤ 1), in milliseconds.
func percentileMs(lags []time.Duration, p float64) float64 {
	sorted := slices.Sorted(slices.Values(lags))
	return sorted[int(p*float64(len(sorted)-1))].Seconds() * 1000
}
