package sccm_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/sccm"
)

// BenchmarkCreateDeployments96 creates the 96 deployments of one change (24
// schedules × 4 update groups) with 1 s of simulated WinRM latency per call
// (powershell.exe plus Import-Module ConfigurationManager), over the real wire.
// It reports the WinRM calls per change (target: at most 2); ns/op is the wall
// time of one change.
func BenchmarkCreateDeployments96(b *testing.B) {
	const schedules, groups = 24, 4
	tb := setup(b, setupOpts{latency: time.Second})
	var collections, updateGroups []string
	for i := range schedules {
		collections = append(collections, fmt.Sprintf("Patch - Schedule %02d", i))
	}
	for i := range groups {
		updateGroups = append(updateGroups, fmt.Sprintf("2026-12 Group %d", i))
	}
	tb.seed(b, collections, updateGroups, nil)
	start := time.Date(2026, 12, 13, 2, 0, 0, 0, time.UTC)

	calls := tb.site.Calls()
	change := 0
	for b.Loop() {
		change++
		specs := make([]sccm.DeploymentSpec, 0, schedules*groups)
		for s, c := range collections {
			for _, g := range updateGroups {
				specs = append(specs, sccm.DeploymentSpec{
					Name:       sccm.DeploymentName(fmt.Sprintf("CHG%07d", change), fmt.Sprintf("SCHED-%02d", s), g),
					Collection: c, UpdateGroup: g,
					Available: start, Deadline: start,
				})
			}
		}
		got, err := tb.client.CreateDeployments(b.Context(), specs)
		require.NoError(b, err)
		require.Len(b, got, schedules*groups)
	}
	b.ReportMetric(float64(tb.site.Calls()-calls)/float64(change), "calls/op")
	b.ReportMetric(float64(len(tb.site.State().Deployments))/float64(change), "deployments/op")
}
