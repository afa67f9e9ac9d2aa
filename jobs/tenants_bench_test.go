package jobs

import (
	"testing"
	"time"

	"github.com/autopatch/autopatch/internal/testdb"
)

// BenchmarkTenants2x200Windows is BenchmarkOpen200Windows (Spread1s) for
// two tenants in one process and one database (issue #20): each tenant
// has its own schema, pool, estate, River client and window keeper, and
// 200 windows of each open within the same second as the other's 200,
// with 200 ms of WinRM latency per call. Lag is read from each tenant's
// simulator, so it covers River, the database and the WinRM round trip.
// One spread only, to stay well under a minute in `make bench`: spreading
// the starts over the second makes the most keeper calls (a batch per tick
// rather than one for all).
func BenchmarkTenants2x200Windows(b *testing.B) {
	const spread = time.Second
	labels := []string{"a", "b"}
	lags := make([][]time.Duration, len(labels))
	for range b.N {
		url := testdb.URL(b)
		hs := make([]*tenantHarness, len(labels))
		for i, label := range labels {
			hs[i] = newTenantHarness(b, url, label, withLatency(200*time.Millisecond))
			hs[i].startClient()
		}
		start := time.Now().Truncate(time.Second).Add(30 * time.Second)
		numbers := make([]string, len(hs))
		starts := make([]map[string]time.Time, len(hs))
		for i, h := range hs {
			numbers[i], starts[i] = h.plan200(start, spread)
		}
		b.ResetTimer()
		for i, h := range hs {
			lags[i] = append(lags[i], h.openLags(b, numbers[i], starts[i])...)
		}
		b.StopTimer()
	}
	var all []time.Duration
	for i, label := range labels {
		all = append(all, lags[i]...)
		b.ReportMetric(percentileMs(lags[i], 0.50), label+"-p50-ms")
		b.ReportMetric(percentileMs(lags[i], 0.99), label+"-p99-ms")
	}
	b.ReportMetric(percentileMs(all, 0.50), "p50-ms")
	b.ReportMetric(percentileMs(all, 0.99), "p99-ms")
	b.ReportMetric(percentileMs(all, 1), "max-ms")
}
