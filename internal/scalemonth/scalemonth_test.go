package scalemonth_test

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/scalemonth"
	"github.com/autopatch/autopatch/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Run(m) }

// BenchmarkScaleMonth plays Microsoft IT's month (8,000 servers, 24
// windows, 3 update groups, 2 s per WinRM call) against `autopatch serve`
// built from this tree, compressed: windows 4 s apart, 12 s long. It fails
// unless every failure was reported once, and reports serve's resident
// memory high-water mark (goal: under 256 MiB), its CPU time, the WinRM
// calls and ServiceNow requests of the month.
func BenchmarkScaleMonth(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "autopatch")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/autopatch/autopatch/cmd/autopatch").CombinedOutput()
	require.NoError(b, err, "%s", out)
	var f scalemonth.Figures
	var progress io.Writer = io.Discard
	if testing.Verbose() {
		progress = os.Stdout
	}
	for range b.N {
		f, err = scalemonth.Run(b.Context(), scalemonth.Options{
			Binary: bin, DatabaseURL: testdb.URL(b),
			Step: 4 * time.Second, Window: 12 * time.Second, PollInterval: 3 * time.Second, Lead: 20 * time.Second, Out: progress,
		})
		require.NoError(b, err)
	}
	b.ReportMetric(float64(f.ServeRSSMax)/(1<<20), "serve-rss-max-MiB")
	b.ReportMetric(f.ServeCPU.Seconds(), "serve-cpu-s")
	b.ReportMetric(f.CreateWall.Seconds(), "create-s")
	b.ReportMetric(f.OpenLagMax.Seconds(), "open-lag-max-s")
	b.ReportMetric(float64(f.TotalCalls), "winrm-calls")
	b.ReportMetric(float64(f.ServiceNowRequests), "servicenow-requests")
	b.ReportMetric(float64(f.Incidents), "incidents")
}
