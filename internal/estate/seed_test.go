package estate_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/estate"
)

func TestParseSeed(t *testing.T) {
	t.Parallel()

	s, err := estate.ParseSeed([]byte(exampleSeed))
	require.NoError(t, err)
	require.Equal(t, estate.Seed{
		UpdateGroups: []string{"2026-12 Servers"},
		Collections:  []estate.SeedCollection{{Name: "Patch - Extra"}, {Name: "Has MW", MaintenanceWindows: 1}},
		Devices: []estate.SeedDevice{
			{Name: "SQL01"},
			{Name: "SQL02", Outcome: "error 0x80240022"},
			{Name: "WEB01", Outcome: "silent"},
			{Name: "APP01", Outcome: "error 0x8024402C then success"},
			{Name: "OLD01", Collections: []string{"Patch - Old"}},
		},
	}, s)

	s, err = estate.ParseSeed([]byte("latency: 500ms\nsite_code: ABC\n"))
	require.NoError(t, err)
	require.Equal(t, 500*time.Millisecond, s.Latency)
	require.Equal(t, "ABC", s.SiteCode)

	s, err = estate.ParseSeed(nil)
	require.NoError(t, err, "an empty seed is an empty estate")
	require.Equal(t, estate.Seed{}, s)
}

func TestParseSeedRejects(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name, yaml, want string
	}{
		{"UnknownKey", "update_group: [x]\n", "field update_group not found"},
		{"UnknownDeviceKey", "devices: [{name: A, outcom: silent}]\n", "field outcom not found"},
		{"BadOutcome", "devices: [{name: A, outcome: explode}]\n", `device "A"`},
		{"BadErrorCode", "devices: [{name: A, outcome: error 80240022}]\n", "not hexadecimal"},
		{"DuplicateDevice", "devices: [{name: A}, {name: A}]\n", `device "A" appears twice`},
		{"NamelessDevice", "devices: [{outcome: silent}]\n", "devices[0] has no name"},
		{"NamelessCollection", "collections: [{maintenance_windows: 1}]\n", "collections[0] has no name"},
		{"NegativeLatency", "latency: -1s\n", "negative"},
		{"BadLatency", "latency: soon\n", "into time.Duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := estate.ParseSeed([]byte(tt.yaml))
			require.ErrorContains(t, err, tt.want)
			require.ErrorContains(t, err, "estate: seed")
		})
	}
}

func TestLoadSeed(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "seed.yaml")
	require.NoError(t, os.WriteFile(path, []byte("devices: [{name: A, outcome: nope}]\n"), 0o600))
	_, err := estate.LoadSeed(path)
	require.ErrorContains(t, err, path)

	_, err = estate.LoadSeed(filepath.Join(t.TempDir(), "missing.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestParseSeedSCOM(t *testing.T) {
	t.Parallel()
	s, err := estate.ParseSeed([]byte("scom_domain: lab.example\ndevices: [{name: A}, {name: B, scom: false}, {name: C, scom: true}]\n"))
	require.NoError(t, err)
	require.Equal(t, "lab.example", s.SCOMDomain)
	require.True(t, s.Devices[0].InSCOM(), "in SCOM unless it says otherwise")
	require.False(t, s.Devices[1].InSCOM())
	require.True(t, s.Devices[2].InSCOM())

	p, n := s.Devices[0].SCOMNames(s.SCOMDomain)
	require.Equal(t, [2]string{"A.lab.example", "A"}, [2]string{p, n})
	p, n = estate.SeedDevice{Name: "web01.dmz.example"}.SCOMNames("")
	require.Equal(t, [2]string{"web01.dmz.example", "web01"}, [2]string{p, n})
	p, _ = estate.SeedDevice{Name: "A"}.SCOMNames("")
	require.Equal(t, "A."+estate.DefaultSCOMDomain, p)

	_, err = estate.ParseSeed([]byte("scom_domain: \"bad domain\"\n"))
	require.ErrorContains(t, err, "is not a DNS domain")
	_, err = estate.ParseSeed([]byte("devices: [{name: A, scom: maybe}]\n"))
	require.ErrorContains(t, err, "estate: seed")
}

// TestShippedSeed starts the estate of make run from its seed: the change
// requests and request items a tester's webhooks name exist in the simulated
// ServiceNow, under the sys_id autopatch send derives from the number.
func TestShippedSeed(t *testing.T) {
	t.Parallel()

	seed, err := estate.LoadSeed("../../integrations/sim/estate.yaml")
	require.NoError(t, err)
	require.Contains(t, seed.UpdateGroups, "2026-12 Servers", "the README's change names it")
	mw := 0
	for _, c := range seed.Collections {
		if c.MaintenanceWindows > 0 {
			mw++
		}
	}
	require.Equal(t, 1, mw, "one collection with its own maintenance window")

	e, err := estate.Start(t.Context(), estate.Options{Seed: seed, PlainHTTP: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() })
	for _, r := range []struct{ table, sysID string }{
		{"change_request", estate.SysIDOf("CHG0030001")},
		{"sc_req_item", "0badf00d0badf00d0badf00d0badf00d"},
		{"sc_req_item", estate.SysIDOf("RITM0010002")},
	} {
		require.Error(t, e.ServiceNow().AddRecord(r.table, r.sysID, ""), "%s %s is seeded already", r.table, r.sysID)
	}
}

func TestSeedRecordsRejected(t *testing.T) {
	t.Parallel()

	for _, y := range []string{
		"change_requests: [{sys_id: 0badf00d0badf00d0badf00d0badf00d}]\n",
		"request_items: [{number: RITM1, sys_id: XYZ}]\n",
		"request_items: [{number: RITM1}, {number: RITM1}]\n",
	} {
		_, err := estate.ParseSeed([]byte(y))
		require.Error(t, err, y)
	}
}
