package handlers

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/store"
	"github.com/autopatch/autopatch/internal/testdb"
)

// benchClients is how many clients post at once: a burst of approvals
// sent by the outbound REST workers of every node of a ServiceNow
// instance. 128 is where ingest peaks on the 2-core development VM (16:
// ~500/s, 64: ~850/s, 128: ~1,100/s, 256: ~900/s);
// AUTOPATCH_BENCH_CLIENTS changes it.
var benchClients = envInt("AUTOPATCH_BENCH_CLIENTS", 128)

// BenchmarkWebhookIngest posts signed change webhooks, each a new approved
// change, through the real HTTP stack into a real PostgreSQL: verify,
// validate, record, enqueue plan_change, answer 202. It reports accepted
// requests per second, the latency percentiles seen by the clients and the
// mean deliveries per transaction (package ingest's group commit).
func BenchmarkWebhookIngest(b *testing.B) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(testdb.URL(b))
	require.NoError(b, err)
	cfg.MaxConns = store.DefaultMaxConns // as serve runs it
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(b, err)
	b.Cleanup(pool.Close)
	bundle := setupPool(b, pool, &WebhookAuth{Secret: testSecret})

	warmed := postAll(b, bundle.server.URL, bundle.now, http.StatusAccepted)

	b.ReportMetric(bundle.meanBatch(b), "per_tx")
	// Every request was recorded once, with its job.
	require.Equal(b, b.N+warmed, bundle.events(b))
	require.Equal(b, b.N+warmed, bundle.jobs(b, "plan_change"))
}

// BenchmarkMachineFloor is the control of BenchmarkWebhookIngest: the same
// clients, requests and signatures against a bare net/http handler that
// reads the body and answers 202 — no echo, no autopatch, no database. Its
// latency tail is what the machine alone does to that load; on the
// development VM (whose vCPUs are descheduled for hundreds of
// milliseconds at a time) it is as long as ingest's.
func BenchmarkMachineFloor(b *testing.B) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"id":"00000000-0000-0000-0000-000000000000","status":"accepted"}` + "\n"))
	}))
	b.Cleanup(server.Close)
	postAll(b, server.URL, time.Now(), http.StatusAccepted)
}

// postAll warms up, then posts b.N signed change webhooks (each a new
// change) from benchClients clients, checks every answer is want, and
// reports accepted/s and the clients' latency percentiles. It returns how
// many requests the warm-up sent.
func postAll(b *testing.B, url string, now time.Time, want int) int {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchClients, MaxConnsPerHost: benchClients}}
	b.Cleanup(client.CloseIdleConnections)
	var (
		seq       atomic.Int64
		mu        sync.Mutex
		latencies []time.Duration
	)
	post := func(n int64) (time.Duration, error) {
		body := fmt.Appendf(nil, `{"event_id":"change_request:%032x:1","change":{"number":"CHG%07d","sys_id":"%032x","type":"normal","state":"scheduled","approval":"approved","start_date":"2026-12-12 20:00:00","end_date":"2026-12-14 06:00:00","short_description":"December patching","sys_updated_on":"2026-12-01 10:02:03"},"patching":{"software_update_groups":["2026-12 Servers","2026-12 Office"]}}`, n, n, n)
		ts := now.Unix()
		req, err := http.NewRequest(http.MethodPost, url+PathChangeWebhook, bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
		req.Header.Set(HeaderSignature, sign(testSecret, ts, body))
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		respBody, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		elapsed := time.Since(start)
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != want {
			return 0, fmt.Errorf("status %d: %s", resp.StatusCode, respBody)
		}
		return elapsed, nil
	}

	// Warm up: open the pool's and the client's connections and fill the
	// statement caches, so the figures are the steady state a running
	// autopatch shows, not its first second.
	var warm sync.WaitGroup
	for range benchClients {
		warm.Go(func() {
			for range 5 {
				if _, err := post(seq.Add(1)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	warm.Wait()
	warmed := int(seq.Load())

	b.SetParallelism(max(1, benchClients/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			d, err := post(seq.Add(1))
			if err != nil {
				b.Error(err)
				return
			}
			local = append(local, d)
		}
		mu.Lock()
		latencies = append(latencies, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()

	require.Len(b, latencies, b.N)
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[min(len(latencies)-1, int(p*float64(len(latencies))))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "accepted/s")
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.90), "p90_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
	b.ReportMetric(0, "ns/op")
	return warmed
}

// meanBatch is the mean of autopatch_webhook_batch_deliveries.
func (b *testBundle) meanBatch(t testing.TB) float64 {
	t.Helper()
	families, err := b.registry.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == "autopatch_webhook_batch_deliveries" {
			h := f.GetMetric()[0].GetHistogram()
			return h.GetSampleSum() / float64(h.GetSampleCount())
		}
	}
	t.Fatal("no autopatch_webhook_batch_deliveries")
	return 0
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
