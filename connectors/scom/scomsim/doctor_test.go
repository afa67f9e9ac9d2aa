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
