package forcing

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/safety"
)

// names is each wave's device names.
func names(ws []Wave) [][]string {
	out := make([][]string, len(ws))
	for i, w := range ws {
		require.Equal(nil, i, w.Index)
		for _, d := range w.Devices {
			out[i] = append(out[i], d.Name)
		}
	}
	return out
}

func TestPlan(t *testing.T) {
	t.Parallel()

	rules, err := safety.ParseServices([]byte("services:\n  - {name: Payroll, max_unavailable: 2}\n"))
	require.NoError(t, err)
	sizes := map[string]int{"hr/backend": 2, "hr/frontend": 3}
	size := func(service, tier string) int { return sizes[service+"/"+tier] }

	for _, tt := range []struct {
		name    string
		devices []Device
		rules   Rules
		want    [][]string
	}{
		{"Nothing", nil, Rules{}, [][]string{}},
		{"NoServiceAllTogether", []Device{{Name: "B"}, {Name: "A"}, {Name: "C"}}, Rules{}, [][]string{{"A", "B", "C"}}},
		{"PairNeverTogether", []Device{{Name: "SQL01", Service: "HR", Tier: "backend"}, {Name: "SQL02", Service: "HR", Tier: "backend"}},
			Rules{}, [][]string{{"SQL01"}, {"SQL02"}}},
		// SQL01 is already compliant (up): the group has 2, so SQL02 alone
		// may go (n−1 = 1).
		{"CompliantMemberCounts", []Device{{Name: "SQL02", Service: "HR", Tier: "backend"}},
			Rules{GroupSize: size}, [][]string{{"SQL02"}}},
		{"TiersInOrder", []Device{
			{Name: "WEB01", Service: "HR", Tier: "frontend"}, {Name: "WEB02", Service: "HR", Tier: "frontend"},
			{Name: "APP01", Service: "HR", Tier: "middle"},
			{Name: "SQL01", Service: "HR", Tier: "backend"}, {Name: "SQL02", Service: "HR", Tier: "backend"},
		}, Rules{}, [][]string{{"SQL01"}, {"SQL02"}, {"APP01"}, {"WEB01"}, {"WEB02"}}},
		// WEB03 is compliant: 3 in the group, 2 may go together.
		{"GroupSizeFromEstate", []Device{{Name: "WEB01", Service: "hr", Tier: "frontend"}, {Name: "WEB02", Service: "HR ", Tier: "frontend"}},
			Rules{GroupSize: size}, [][]string{{"WEB01", "WEB02"}}},
		{"ServiceLimit", []Device{
			{Name: "P1", Service: "Payroll", Tier: "middle"}, {Name: "P2", Service: "Payroll", Tier: "middle"},
			{Name: "P3", Service: "Payroll", Tier: "middle"}, {Name: "P4", Service: "Payroll", Tier: "middle"},
			{Name: "P5", Service: "Payroll", Tier: "middle"},
		}, Rules{Services: rules}, [][]string{{"P1", "P2"}, {"P3", "P4"}, {"P5"}}},
		{"ServicesSideBySide", []Device{
			{Name: "A1", Service: "A", Tier: "backend"}, {Name: "A2", Service: "A", Tier: "backend"},
			{Name: "B1", Service: "B", Tier: "backend"}, {Name: "B2", Service: "B", Tier: "backend"},
			{Name: "LONE", Service: "C", Tier: "frontend"},
		}, Rules{}, [][]string{{"A1", "B1", "LONE"}, {"A2", "B2"}}},
		{"NoTierBesideTiers", []Device{{Name: "X1", Service: "HR"}, {Name: "X2", Service: "HR"}, {Name: "W1", Service: "HR", Tier: "frontend"}},
			Rules{}, [][]string{{"W1", "X1"}, {"X2"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, names(Plan(tt.devices, tt.rules)))
		})
	}
}

// TestPlanLarge: 2,000 devices of 200 services, 10 per service over the
// three tiers (groups of 4 and 3): every wave obeys n−1 and tier order.
func TestPlanLarge(t *testing.T) {
	t.Parallel()
	var devices []Device
	tiers := []string{"backend", "middle", "frontend"}
	for i := range 2000 {
		devices = append(devices, Device{Name: fmt.Sprintf("SRV%04d", i), Service: fmt.Sprintf("S%03d", i%200), Tier: tiers[(i/200)%3]})
	}
	waves := Plan(devices, Rules{})
	groupSize := map[string]int{}
	for _, d := range devices {
		groupSize[d.Service+"/"+d.Tier]++
	}
	total := 0
	seenTier := map[string]int{} // service → highest tier rank forced so far
	for _, w := range waves {
		inWave := map[string]int{}
		for _, d := range w.Devices {
			inWave[d.Service+"/"+d.Tier]++
			r := rank(d.Tier)
			require.GreaterOrEqual(t, r, seenTier[d.Service], "tier order of %s", d.Service)
		}
		for _, d := range w.Devices {
			seenTier[d.Service] = max(seenTier[d.Service], rank(d.Tier))
		}
		for g, n := range inWave {
			require.Less(t, n, groupSize[g], "group %s: never all together", g)
		}
		total += len(w.Devices)
	}
	require.Equal(t, 2000, total)
	t.Logf("2,000 devices, 200 services: %d waves (WinRM calls)", len(waves))
}

func TestAt(t *testing.T) {
	t.Parallel()
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	dl := time.Date(2026, 12, 22, 0, 0, 0, 0, time.UTC) // a Tuesday
	ten, err := ParseClock("10:00")
	require.NoError(t, err)
	unset, err := ParseClock("")
	require.NoError(t, err)
	_, err = ParseClock("25:00")
	require.Error(t, err)

	require.Equal(t, dl, At(dl, unset, nil), "unset: at the deadline")
	require.Equal(t, time.Date(2026, 12, 22, 10, 0, 0, 0, time.UTC), At(dl, ten, time.UTC))
	require.Equal(t, time.Date(2026, 12, 22, 15, 0, 0, 0, time.UTC), At(dl, ten, ny), "10:00 in New York, after 19:00 the 21st there")
	require.Equal(t, time.Date(2026, 12, 23, 10, 0, 0, 0, time.UTC), At(dl.Add(10*time.Hour+time.Second), ten, time.UTC), "just past 10:00: the next day")
	require.Equal(t, dl.Add(10*time.Hour), At(dl.Add(10*time.Hour), ten, time.UTC), "exactly at 10:00")
}

// BenchmarkPlan2000 plans the waves of 2,000 devices of 200 services.
func BenchmarkPlan2000(b *testing.B) {
	tiers := []string{"backend", "middle", "frontend"}
	devices := make([]Device, 2000)
	for i := range devices {
		devices[i] = Device{Name: fmt.Sprintf("SRV%04d", i), Service: fmt.Sprintf("S%03d", i%200), Tier: tiers[(i/200)%3]}
	}
	for b.Loop() {
		Plan(devices, Rules{})
	}
}
