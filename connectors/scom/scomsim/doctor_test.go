package scomsim

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/scom"
)

// TestDoctorRulesAreTheSimulatedRules keeps the rules the doctor expects
// equal to the rules the simulator raises alerts with.
func TestDoctorRulesAreTheSimulatedRules(t *testing.T) {
	t.Parallel()
	var ids []string
	for _, r := range rules {
		ids = append(ids, r.id)
	}
	require.ElementsMatch(t, scom.AlertRules(), ids)

	g := New(Options{})
	require.Error(t, g.SetRuleEnabled("Autopatch.Alerts.Rule.Nope", false))
}

// TestDoctorSeesTheEventSource answers the doctor's event source look-up from
// the state raise_alerts checks: registered in the Application log unless
// NoEventSource or SetEventSource(false).
func TestDoctorSeesTheEventSource(t *testing.T) {
	t.Parallel()
	logOf := func(g *Group, source string) string {
		ans, perr := g.doctor(doctorRequest{ManagementPack: scom.ManagementPackName, Class: scom.WindowsComputerClass, EventSource: source})
		require.Nil(t, perr)
		return ans.(map[string]any)["event_source"].(map[string]any)["log"].(string)
	}
	g := New(Options{})
	require.Equal(t, scom.EventLog, logOf(g, scom.EventSource))
	require.Empty(t, logOf(g, "someone-else"))
	g.SetEventSource(false)
	require.Empty(t, logOf(g, scom.EventSource))
	require.Empty(t, logOf(New(Options{NoEventSource: true}), scom.EventSource))
}
