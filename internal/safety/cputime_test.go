//go:build unix

package safety

import (
	"syscall"
	"testing"
	"time"
)

// processCPU is the CPU time the process has used, user and system. On a
// shared machine the wall-clock ns/op of a benchmark depends on what else
// runs; CPU time per operation much less so.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per operation since start (from
// processCPU), in milliseconds.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(processCPU()-start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}
