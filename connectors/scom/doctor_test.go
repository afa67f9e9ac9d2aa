package scom_test

import (
	"encoding/xml"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/scom"
)

// TestDoctorKnowsTheShippedManagementPack keeps the doctor's expectations
// (ID, version, rules) equal to the management pack in integrations/scom, so a
// new pack cannot ship without the doctor checking for it.
func TestDoctorKnowsTheShippedManagementPack(t *testing.T) {
	t.Parallel()

	b, err := os.ReadFile("../../integrations/scom/Autopatch.Alerts.xml")
	require.NoError(t, err)
	var mp struct {
		ID      string `xml:"Manifest>Identity>ID"`
		Version string `xml:"Manifest>Identity>Version"`
		Rules   []struct {
			ID      string `xml:"ID,attr"`
			Enabled string `xml:"Enabled,attr"`
		} `xml:"Monitoring>Rules>Rule"`
	}
	require.NoError(t, xml.Unmarshal(b, &mp))
	require.Equal(t, scom.ManagementPackName, mp.ID)
	require.Equal(t, scom.ManagementPackVersion, mp.Version)
	var ids []string
	for _, r := range mp.Rules {
		ids = append(ids, r.ID)
		require.Equalf(t, "true", r.Enabled, "rule %s ships disabled", r.ID)
	}
	require.ElementsMatch(t, scom.AlertRules(), ids)
}

func TestCompareVersions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.1.0.0", "1.1.0.0", 0},
		{"1.0.0.0", "1.1.0.0", -1},
		{"1.10.0.0", "1.1.0.0", 1},
		{"1.1", "1.1.0.0", 0},
		{"2.0.0.0", "1.9.9.9", 1},
	} {
		require.Equalf(t, tc.want, scom.CompareVersions(tc.a, tc.b), "%s vs %s", tc.a, tc.b)
	}
}
