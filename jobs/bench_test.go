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
			slices.Sort(lags)
			pct := func(p float64) float64 { return lags[int(p*float64(len(lags)-1))].Seconds() * 1000 }
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(pct(1), "max-ms")
		})
	}
}

func open200(b *testing.B, spread time.Duration) []time.Duration {
	h := newHarness(b, func(o *estate.Options) { o.Seed.Latency = 200 * time.Millisecond })
	h.startClient()
	start := time.Now().Truncate(time.Second).Add(30 * time.Second)
	var entries []string
	starts := map[string]time.Time{}
	for i := range 200 {
		s := start.Add(spread * time.Duration(i) / 200)
		name := fmt.Sprintf("S%03d", i)
		starts["Patch - "+name] = s
		entries = append(entries, schedule(name, "automatic", window{s, s.Add(time.Hour)}))
	}
	h.load(entries...)
	number, _ := h.approve(time.Now(), start.Add(2*time.Hour))
	b.ResetTimer()
	h.waitFor("400 deployments open", func() bool { return h.states(number)["open"] == 400 })
	b.StopTimer()

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
