package sccm_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/connectors/sccm/sccmsim"
)

const forceCollection = "Autopatch - Forced"

// forceDeployments are the forced deployments of change CHG1, one per group.
func forceDeployments(groups ...string) []sccm.ForceDeployment {
	out := make([]sccm.ForceDeployment, len(groups))
	for i, g := range groups {
		out[i] = sccm.ForceDeployment{Name: sccm.DeploymentName("CHG1", "(forced)", g), UpdateGroup: g}
	}
	return out
}

// statusOf returns each device's status on the named deployment.
func statusOf(t testing.TB, b *testBundle, deployment string) map[string]sccm.StatusType {
	t.Helper()
	rep, err := b.client.DeploymentStatus(t.Context(), []string{deployment})
	require.NoError(t, err)
	out := map[string]sccm.StatusType{}
	for _, d := range rep.Devices {
		out[d.Device] = d.Type
	}
	return out
}

// TestForceWave runs two waves and a retry: each wave leaves exactly its
// devices in the collection, the deployments are created once and enabled
// once, and the devices that join report their seeded outcome.
func TestForceWave(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	groups := []string{"2026-12 Servers", "2026-12 Office"}
	b.seed(t, []string{forceCollection}, groups, map[string]string{
		"D1": "success", "D2": "error 0x80240022", "D3": "success", "OLD": "success",
	})
	// An earlier wave (or an admin) left OLD in the collection.
	require.NoError(t, b.site.AddMember(forceCollection, "OLD"))
	at := time.Date(2026, 12, 14, 9, 30, 0, 0, time.FixedZone("CET", 3600))
	deps := forceDeployments(groups...)

	res, err := b.client.ForceWave(t.Context(), sccm.ForceWave{
		Collection:  forceCollection,
		Devices:     []sccm.ForceDevice{{Name: "D1"}, {Name: "GHOST"}, {Name: "D2"}, {Name: "D1"}},
		Deployments: deps, At: at,
	})
	require.NoError(t, err)
	require.Len(t, res.Members, 2, "D1 once")
	require.Equal(t, "D1", res.Members[0].Name)
	require.Equal(t, "D2", res.Members[1].Name)
	require.Positive(t, res.Members[0].ResourceID)
	require.Equal(t, []string{"GHOST"}, res.Unknown)
	require.Equal(t, 1, res.Removed, "OLD left")
	require.Equal(t, []string{"D1", "D2"}, b.collection(t, forceCollection).Members)
	require.Len(t, res.Deployments, 2)
	for i, d := range res.Deployments {
		require.Equal(t, deps[i].Name, d.Name)
		require.Positive(t, d.ID)
		require.False(t, d.Existed)
		require.False(t, d.WasEnabled)
		st := b.deployment(t, d.Name)
		require.Equal(t, d.ID, st.ID)
		require.Equal(t, forceCollection, st.Collection)
		require.Equal(t, deps[i].UpdateGroup, st.UpdateGroup)
		require.True(t, at.Equal(st.Available), "available at the wave's start")
		require.True(t, at.Equal(st.Deadline), "due at the wave's start")
		require.True(t, st.Enabled)
		require.Zero(t, st.SuppressReboot, "forcing restarts")
		require.Equal(t, []sccmsim.Event{{At: b.clock.Now(), Enabled: true}}, st.Events)
	}
	require.Equal(t, []time.Time{b.clock.Now()}, b.collection(t, forceCollection).PolicyRefreshes)
	require.Equal(t, map[string]sccm.StatusType{"D1": sccm.StatusSuccess, "D2": sccm.StatusError},
		statusOf(t, b, deps[0].Name), "the wave's devices report their seeded outcomes; OLD is not reached")

	t.Run("NextWaveMovesDevices", func(t *testing.T) {
		b.clock.Advance(time.Hour)
		d3 := b.resourceID(t, "D3")
		calls := b.site.Calls()
		res, err := b.client.ForceWave(t.Context(), sccm.ForceWave{
			Collection:  forceCollection,
			Devices:     []sccm.ForceDevice{{Name: "D2"}, {Name: "D3", ResourceID: d3}, {Name: "GONE", ResourceID: 99}},
			Deployments: deps, At: at.Add(time.Hour),
		})
		require.NoError(t, err)
		require.Equal(t, 1, b.site.Calls()-calls, "one WinRM call per wave")
		require.Equal(t, []sccm.ForceDevice{{Name: "D2", ResourceID: res.Members[0].ResourceID}, {Name: "D3", ResourceID: d3}}, res.Members)
		require.Equal(t, []string{"GONE"}, res.Unknown, "an unknown ResourceID is unknown too")
		require.Equal(t, 1, res.Removed, "D1 left")
		require.Equal(t, []string{"D2", "D3"}, b.collection(t, forceCollection).Members)
		for _, d := range res.Deployments {
			require.True(t, d.Existed)
			require.True(t, d.WasEnabled)
			st := b.deployment(t, d.Name)
			require.Len(t, st.Events, 1, "enabled once, by the first wave")
			require.True(t, at.Equal(st.Deadline), "an existing deployment keeps its times")
		}
		require.Equal(t, sccm.StatusSuccess, statusOf(t, b, deps[0].Name)["D3"], "a device that joins an enabled deployment is reached")
	})

	t.Run("RetryChangesNothing", func(t *testing.T) {
		before := b.site.State()
		res, err := b.client.ForceWave(t.Context(), sccm.ForceWave{
			Collection:  forceCollection,
			Devices:     []sccm.ForceDevice{{Name: "D2"}, {Name: "D3"}},
			Deployments: deps, At: at.Add(time.Hour),
		})
		require.NoError(t, err)
		require.Zero(t, res.Removed)
		require.Len(t, res.Members, 2)
		after := b.site.State()
		require.Equal(t, before.Collections[0].Members, after.Collections[0].Members)
		for i := range before.Deployments {
			require.Equal(t, before.Deployments[i].Events, after.Deployments[i].Events, "no second enable")
			require.Equal(t, before.Deployments[i].Enabled, after.Deployments[i].Enabled)
		}
		require.Len(t, after.Deployments, len(before.Deployments), "nothing created twice")
	})

	t.Run("EmptyWaveEmptiesTheCollection", func(t *testing.T) {
		res, err := b.client.ForceWave(t.Context(), sccm.ForceWave{
			Collection: forceCollection, Deployments: deps, At: at,
		})
		require.NoError(t, err)
		require.Equal(t, 2, res.Removed)
		require.Empty(t, res.Members)
		require.NotNil(t, res.Members)
		require.NotNil(t, res.Unknown)
		require.Empty(t, b.collection(t, forceCollection).Members)
	})
}

// resourceID looks a device up through the resolve template.
func (b *testBundle) resourceID(t testing.TB, name string) int {
	t.Helper()
	res, err := b.client.ResolveDevices(t.Context(), []string{name})
	require.NoError(t, err)
	require.Contains(t, res.ResourceIDs, name)
	return res.ResourceIDs[name]
}

// TestForceWaveReEnablesADisabledDeployment: a forced deployment that was
// disabled (by an admin) is enabled again, once.
func TestForceWaveReEnablesADisabledDeployment(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.seed(t, []string{forceCollection}, []string{"G"}, map[string]string{"D1": ""})
	w := sccm.ForceWave{Collection: forceCollection, Devices: []sccm.ForceDevice{{Name: "D1"}},
		Deployments: forceDeployments("G"), At: b.clock.Now()}
	_, err := b.client.ForceWave(t.Context(), w)
	require.NoError(t, err)
	_, err = b.client.SetEnabled(t.Context(), []string{w.Deployments[0].Name}, false)
	require.NoError(t, err)

	res, err := b.client.ForceWave(t.Context(), w)
	require.NoError(t, err)
	require.True(t, res.Deployments[0].Existed)
	require.False(t, res.Deployments[0].WasEnabled)
	st := b.deployment(t, w.Deployments[0].Name)
	require.True(t, st.Enabled)
	require.Equal(t, []bool{true, false, true}, eventStates(st.Events))
}

func eventStates(events []sccmsim.Event) []bool {
	out := make([]bool, len(events))
	for i, e := range events {
		out[i] = e.Enabled
	}
	return out
}

// TestForceWaveRefusals: every refusal comes before any change.
func TestForceWaveRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.seed(t, []string{forceCollection, "Patch A"}, []string{"G1", "G2"}, map[string]string{"D1": "", "OLD": ""})
	require.NoError(t, b.site.AddDefaultCollection("All Systems"))
	require.NoError(t, b.site.AddMember(forceCollection, "OLD"))
	at := b.clock.Now()
	// A name the schedule template already uses for Patch A.
	_, err := b.client.CreateDeployments(t.Context(), []sccm.DeploymentSpec{spec("TAKEN", "Patch A", "G1", at)})
	require.NoError(t, err)
	// A forced deployment of G1 exists; its name cannot be reused for G2.
	_, err = b.client.ForceWave(t.Context(), sccm.ForceWave{Collection: forceCollection,
		Devices: []sccm.ForceDevice{{Name: "OLD"}}, Deployments: forceDeployments("G1"), At: at})
	require.NoError(t, err)
	forcedG1 := forceDeployments("G1")[0].Name

	tests := []struct {
		name        string
		collection  string
		deployments []sccm.ForceDeployment
		text        string
	}{
		{"DefaultCollection", "All Systems", forceDeployments("G1"),
			"The device collection 'All Systems' (SMS00001) is a default collection: it takes no direct membership rules, so it cannot hold a forced wave."},
		{"UnknownCollection", "Nope", forceDeployments("G1"),
			"No device collection named 'Nope' exists on site PS1."},
		{"UnknownUpdateGroup", forceCollection, forceDeployments("G1", "G9"),
			"No software update group named 'G9' exists on site PS1."},
		{"NameOfAnotherCollection", forceCollection, []sccm.ForceDeployment{{Name: "TAKEN", UpdateGroup: "G1"}},
			"A deployment named 'TAKEN' already exists on site PS1 for another collection or update group."},
		{"NameOfAnotherGroup", forceCollection, []sccm.ForceDeployment{{Name: forcedG1, UpdateGroup: "G2"}},
			"A deployment named '" + forcedG1 + "' already exists on site PS1 for another collection or update group."},
		{"NameTooLong", forceCollection, []sccm.ForceDeployment{{Name: strings.Repeat("n", sccm.MaxNameLength+1), UpdateGroup: "G1"}},
			"characters long; SCCM allows 1 to 256."},
		{"NameTwice", forceCollection, []sccm.ForceDeployment{{Name: "X", UpdateGroup: "G1"}, {Name: "X", UpdateGroup: "G2"}},
			"The deployment name 'X' appears more than once in this request."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := b.site.State()
			_, err := b.client.ForceWave(t.Context(), sccm.ForceWave{Collection: tt.collection,
				Devices: []sccm.ForceDevice{{Name: "D1"}}, Deployments: tt.deployments, At: at})
			requireRefusal(t, err, sccm.ForceWaveTemplate, tt.text)
			require.Equal(t, before, b.site.State(), "nothing changed")
		})
	}

	t.Run("CheckedBeforeTheCall", func(t *testing.T) {
		calls := b.site.Calls()
		_, err := b.client.ForceWave(t.Context(), sccm.ForceWave{Collection: forceCollection, At: at})
		require.ErrorContains(t, err, "sccm: force wave: no deployment")
		_, err = b.client.ForceWave(t.Context(), sccm.ForceWave{Collection: forceCollection, Deployments: forceDeployments("G1")})
		require.ErrorContains(t, err, "sccm: force wave: no start time")
		require.Equal(t, calls, b.site.Calls())
	})
}

// TestForceWaveCreateLost: a created deployment that cannot be read back
// fails the wave loudly (as the create template does); the membership
// changes made before it stay, as on a real site.
func TestForceWaveCreateLost(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{faults: sccmsim.Faults{CreateLost: true}})
	b.seed(t, []string{forceCollection}, []string{"G"}, map[string]string{"D1": ""})
	w := sccm.ForceWave{Collection: forceCollection, Devices: []sccm.ForceDevice{{Name: "D1"}},
		Deployments: forceDeployments("G"), At: b.clock.Now()}
	_, err := b.client.ForceWave(t.Context(), w)
	requireRefusal(t, err, sccm.ForceWaveTemplate,
		"The deployment '"+w.Deployments[0].Name+"' was not found on site PS1 after it was created.")
	require.Equal(t, []string{"D1"}, b.collection(t, forceCollection).Members)
}

// TestForceWaveHostileNames: hostile collection, device, group and
// deployment names are just data to the force wave template.
func TestForceWaveHostileNames(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.seed(t, hostileNames, hostileNames, nil)
	for _, name := range hostileNames {
		_, err := b.site.AddDevice(name, sccmsim.Outcome{Kind: sccmsim.OutcomeSuccess})
		require.NoError(t, err)
	}
	devices := make([]sccm.ForceDevice, len(hostileNames))
	for i, name := range hostileNames {
		devices[i] = sccm.ForceDevice{Name: name}
	}
	var deps []sccm.ForceDeployment
	for i, name := range hostileNames {
		if sccm.NameLength(name) <= sccm.MaxNameLength {
			deps = append(deps, sccm.ForceDeployment{Name: name, UpdateGroup: hostileNames[(i+1)%len(hostileNames)]})
		}
	}
	target := hostileNames[2] // `'; Remove-Item -Path C:\ -Recurse -Force; '`

	res, err := b.client.ForceWave(t.Context(), sccm.ForceWave{Collection: target, Devices: devices, Deployments: deps,
		At: b.clock.Now()})
	require.NoError(t, err)
	require.Empty(t, res.Unknown)
	require.Len(t, res.Members, len(hostileNames))
	for i, m := range res.Members {
		require.Equal(t, hostileNames[i], m.Name)
	}
	require.Equal(t, hostileNames, b.collection(t, target).Members)
	for i, d := range res.Deployments {
		require.Equal(t, deps[i].Name, d.Name)
		st := b.deployment(t, d.Name)
		require.Equal(t, target, st.Collection)
		require.Equal(t, deps[i].UpdateGroup, st.UpdateGroup)
		require.True(t, st.Enabled)
	}
	seen := statusOf(t, b, deps[0].Name)
	for _, name := range hostileNames {
		require.Equal(t, sccm.StatusSuccess, seen[name], "%q reported under its exact name", name)
	}
	require.Equal(t, 2, b.site.Calls(), "one call per wave, one per status read: %v", b.site.CallsByTemplate())
}

// BenchmarkForceWave2000 runs waves of 2,000 devices (each wave replaces the
// previous wave's 2,000) with 1 s of simulated WinRM latency per call, over
// the real wire. It reports the WinRM calls per wave (target: exactly 1);
// ns/op is the wall time of one wave.
func BenchmarkForceWave2000(b *testing.B) {
	const size = 2000
	tb := setup(b, setupOpts{latency: time.Second})
	tb.seed(b, []string{forceCollection}, []string{"2026-12 Servers", "2026-12 Office"}, nil)
	var waves [2][]sccm.ForceDevice
	for w := range waves {
		for i := range size {
			name := fmt.Sprintf("W%d-DEV%04d", w, i)
			id, err := tb.site.AddDevice(name, sccmsim.Outcome{Kind: sccmsim.OutcomeSuccess})
			require.NoError(b, err)
			waves[w] = append(waves[w], sccm.ForceDevice{Name: name, ResourceID: id})
		}
	}
	deps := forceDeployments("2026-12 Servers", "2026-12 Office")
	at := time.Date(2026, 12, 14, 9, 0, 0, 0, time.UTC)

	calls := tb.site.Calls()
	n := 0
	for b.Loop() {
		res, err := tb.client.ForceWave(b.Context(), sccm.ForceWave{Collection: forceCollection,
			Devices: waves[n%2], Deployments: deps, At: at})
		require.NoError(b, err)
		require.Len(b, res.Members, size)
		if n > 0 {
			require.Equal(b, size, res.Removed)
		}
		n++
	}
	b.ReportMetric(float64(tb.site.Calls()-calls)/float64(n), "calls/op")
	b.ReportMetric(size, "devices/op")
}
