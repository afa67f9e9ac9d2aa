package sccm_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/connectors/sccm/sccmsim"
	"github.com/autopatch/autopatch/connectors/winrm"
	"github.com/autopatch/autopatch/connectors/winrm/wsmansim"
)

// Every test here goes over the real wire: sccm.Client → winrm.Client
// (masterzen/winrm) → HTTP → wsmansim → sccmsim.

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type testBundle struct {
	url    string // the WinRM endpoint
	site   *sccmsim.Site
	wsman  *wsmansim.Server
	winrm  *winrm.Client
	client *sccm.Client
	clock  *clock
}

type setupOpts struct {
	latency  time.Duration
	siteCode string // the client's; the site is always PS1
	faults   sccmsim.Faults
}

func setup(t testing.TB, opts setupOpts) *testBundle {
	t.Helper()
	clk := &clock{t: time.Date(2026, 12, 12, 20, 0, 0, 0, time.UTC)}
	site := sccmsim.New(sccmsim.Options{Now: clk.Now, Faults: opts.faults})
	wsman := wsmansim.New(wsmansim.Options{
		User: "sim", Password: "s3cret", Latency: opts.latency,
		Exec: wsmansim.PowerShell(site.Run),
	})
	mux := http.NewServeMux()
	mux.Handle("/wsman", wsman)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(wsman.Close)

	wc := newWinRM(t, srv.URL+"/wsman", time.Minute)
	return &testBundle{url: srv.URL + "/wsman", site: site, wsman: wsman, winrm: wc, client: sccm.New(wc, opts.siteCode, nil), clock: clk}
}

func newWinRM(t testing.TB, endpoint string, timeout time.Duration) *winrm.Client {
	t.Helper()
	wc, err := winrm.New(winrm.Config{
		Endpoint: endpoint, User: "sim", Password: "s3cret", Auth: winrm.AuthBasic, Timeout: timeout,
	}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = wc.Close() })
	return wc
}

// seed adds collections, update groups and devices (name -> outcome).
func (b *testBundle) seed(t testing.TB, collections, groups []string, devices map[string]string) {
	t.Helper()
	for _, c := range collections {
		require.NoError(t, b.site.AddCollection(c, 0))
	}
	for _, g := range groups {
		require.NoError(t, b.site.AddUpdateGroup(g))
	}
	names := make([]string, 0, len(devices))
	for n := range devices {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		o, err := sccmsim.ParseOutcome(devices[n])
		require.NoError(t, err)
		_, err = b.site.AddDevice(n, o)
		require.NoError(t, err)
	}
}

func (b *testBundle) collection(t testing.TB, name string) sccmsim.CollectionState {
	t.Helper()
	for _, c := range b.site.State().Collections {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no collection %q", name)
	return sccmsim.CollectionState{}
}

func (b *testBundle) deployment(t testing.TB, name string) sccmsim.DeploymentState {
	t.Helper()
	var found []sccmsim.DeploymentState
	for _, d := range b.site.State().Deployments {
		if d.Name == name && !d.Deleted {
			found = append(found, d)
		}
	}
	require.Lenf(t, found, 1, "live deployments named %q", name)
	return found[0]
}

// requireRefusal checks err is the script failing with SCCM's text.
func requireRefusal(t testing.TB, err error, template, text string) {
	t.Helper()
	require.Error(t, err)
	var se *winrm.ScriptError
	require.Truef(t, errors.As(err, &se), "want a *winrm.ScriptError, got %T: %v", err, err)
	require.Equal(t, template, se.Template)
	require.Equal(t, 1, se.ExitCode)
	require.Contains(t, se.Stderr, text)
	require.True(t, sccm.IsRefusal(err))
	require.True(t, strings.HasPrefix(err.Error(), "sccm: "), err.Error())
}

func spec(name, collection, group string, start time.Time) sccm.DeploymentSpec {
	return sccm.DeploymentSpec{Name: name, Collection: collection, UpdateGroup: group,
		Available: start, Deadline: start}
}

func TestResolveDevices(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.seed(t, nil, nil, map[string]string{"SQL01": "", "SQL02": ""})

	res, err := b.client.ResolveDevices(t.Context(), []string{"SQL02", "NOPE", "SQL01", "sql01"})
	require.NoError(t, err)
	require.Len(t, res.ResourceIDs, 2)
	require.NotEqual(t, res.ResourceIDs["SQL01"], res.ResourceIDs["SQL02"])
	require.Positive(t, res.ResourceIDs["SQL01"])
	require.Equal(t, []string{"NOPE", "sql01"}, res.Unknown, "exact names, request order")

	calls := b.site.Calls()
	res, err = b.client.ResolveDevices(t.Context(), nil)
	require.NoError(t, err)
	require.Empty(t, res.ResourceIDs)
	require.Equal(t, calls, b.site.Calls(), "nothing to do is no call")
}

func TestSetMembership(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	managed := []string{"Patch A", "Patch B", "Patch C"}
	b.seed(t, append(slices.Clone(managed), "Unmanaged"), nil,
		map[string]string{"D1": "", "D2": "", "D3": "", "D4": ""})
	require.NoError(t, b.site.AddMember("Patch A", "D1"))
	require.NoError(t, b.site.AddMember("Patch C", "D1"))
	require.NoError(t, b.site.AddMember("Unmanaged", "D1"))
	require.NoError(t, b.site.AddMember("Patch B", "D2"))
	res, err := b.client.ResolveDevices(t.Context(), []string{"D3"})
	require.NoError(t, err)

	results, err := b.client.SetMembership(t.Context(), []sccm.Move{
		{Device: "D1", Collection: "Patch B"},
		{Device: "D2", Collection: "Patch B"},
		{Device: "D3", ResourceID: res.ResourceIDs["D3"], Collection: "Patch C"},
		{Device: "GHOST", Collection: "Patch A"},
		{Device: "D4", Collection: "Unmanaged"},
	}, managed)
	require.NoError(t, err)
	require.Len(t, results, 5)

	require.Equal(t, sccm.Moved, results[0].Outcome)
	require.ElementsMatch(t, []string{"Patch A", "Patch C"}, results[0].RemovedFrom)
	require.Equal(t, sccm.AlreadyThere, results[1].Outcome)
	require.Empty(t, results[1].RemovedFrom)
	require.Equal(t, sccm.Moved, results[2].Outcome)
	require.Equal(t, res.ResourceIDs["D3"], results[2].ResourceID)
	require.Equal(t, sccm.UnknownDevice, results[3].Outcome)
	require.Equal(t, sccm.Moved, results[4].Outcome, "a target need not be managed")

	require.Empty(t, b.collection(t, "Patch A").Members)
	require.Equal(t, []string{"D2", "D1"}, b.collection(t, "Patch B").Members)
	require.Equal(t, []string{"D3"}, b.collection(t, "Patch C").Members)
	require.Equal(t, []string{"D1", "D4"}, b.collection(t, "Unmanaged").Members, "unmanaged collections are left alone")

	t.Run("UnknownTargetChangesNothing", func(t *testing.T) {
		before := b.site.State()
		_, err := b.client.SetMembership(t.Context(), []sccm.Move{
			{Device: "D2", Collection: "Patch A"},
			{Device: "D3", Collection: "Patch Z"},
		}, managed)
		requireRefusal(t, err, sccm.SetMembershipTemplate, "No device collection named 'Patch Z' exists on site PS1.")
		require.Equal(t, before, b.site.State())
	})
}

func TestCreateDeployments(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.seed(t, []string{"Patch A", "Patch B"}, []string{"2026-12 Servers", "2026-12 Office"}, map[string]string{"D1": ""})
	start := time.Date(2026, 12, 13, 2, 0, 0, 0, time.FixedZone("CET", 3600))
	specs := []sccm.DeploymentSpec{
		spec("AP-CHG1-A-Servers", "Patch A", "2026-12 Servers", start),
		spec("AP-CHG1-A-Office", "Patch A", "2026-12 Office", start),
		{Name: "AP-CHG1-B-Servers", Collection: "Patch B", UpdateGroup: "2026-12 Servers",
			Available: start.Add(24 * time.Hour), Deadline: start.Add(25 * time.Hour), SuppressRestart: true},
	}

	got, err := b.client.CreateDeployments(t.Context(), specs)
	require.NoError(t, err)
	require.Len(t, got, 3)
	ids := map[int]bool{}
	for i, d := range got {
		require.Equal(t, specs[i].Name, d.Name)
		require.False(t, d.Existed)
		require.Positive(t, d.ID)
		require.Regexp(t, `^\{[0-9A-F-]{36}\}$`, d.UniqueID)
		ids[d.ID] = true

		st := b.deployment(t, d.Name)
		require.Equal(t, d.ID, st.ID)
		require.Equal(t, specs[i].Collection, st.Collection)
		require.Equal(t, specs[i].UpdateGroup, st.UpdateGroup)
		require.True(t, specs[i].Available.Equal(st.Available))
		require.True(t, specs[i].Deadline.Equal(st.Deadline))
		require.Equal(t, specs[i].SuppressRestart, st.SuppressRestart)
		wantBits := 0
		if specs[i].SuppressRestart {
			wantBits = 3 // SMS_UpdatesAssignment.SuppressReboot: workstations (1) | servers (2)
		}
		require.Equal(t, wantBits, st.SuppressReboot)
		require.False(t, st.Enabled, "created disabled")
		require.Empty(t, st.Events)
		require.Equal(t, b.clock.Now(), st.CreatedAt)
	}
	require.Len(t, ids, 3)

	t.Run("RetryFindsWhatItMade", func(t *testing.T) {
		again, err := b.client.CreateDeployments(t.Context(), specs)
		require.NoError(t, err)
		for i := range again {
			require.True(t, again[i].Existed)
			require.Equal(t, got[i].ID, again[i].ID)
			require.Equal(t, got[i].UniqueID, again[i].UniqueID)
		}
		require.Len(t, b.site.State().Deployments, 3, "nothing created twice")
	})

	t.Run("RetryDisablesAndMovesTimes", func(t *testing.T) {
		_, err := b.client.SetEnabled(t.Context(), []string{specs[0].Name}, true)
		require.NoError(t, err)
		b.clock.Advance(time.Minute)
		moved := specs[0]
		moved.Available = start.Add(7 * 24 * time.Hour)
		moved.Deadline = moved.Available.Add(time.Hour)
		moved.SuppressRestart = true
		again, err := b.client.CreateDeployments(t.Context(), []sccm.DeploymentSpec{moved})
		require.NoError(t, err)
		require.True(t, again[0].Existed)
		st := b.deployment(t, moved.Name)
		require.False(t, st.Enabled)
		require.Equal(t, []sccmsim.Event{
			{At: b.clock.Now().Add(-time.Minute), Enabled: true},
			{At: b.clock.Now(), Enabled: false},
		}, st.Events)
		require.True(t, moved.Available.Equal(st.Available))
		require.True(t, moved.Deadline.Equal(st.Deadline))
		require.True(t, st.SuppressRestart)
	})
}

// TestCreateDeploymentsTimeoutThenRetry: a call that times out leaves its
// effect unknown; running the same batch again converges, creating nothing twice.
func TestCreateDeploymentsTimeoutThenRetry(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{latency: 1500 * time.Millisecond})
	b.seed(t, []string{"Patch A"}, []string{"G1", "G2"}, nil)
	specs := []sccm.DeploymentSpec{
		spec("one", "Patch A", "G1", b.clock.Now()), spec("two", "Patch A", "G2", b.clock.Now()),
	}

	impatient := sccm.New(newWinRM(t, b.url, 200*time.Millisecond), "", nil)
	_, err := impatient.CreateDeployments(t.Context(), specs)
	require.ErrorIs(t, err, winrm.ErrTimeout)
	require.False(t, sccm.IsRefusal(err))
	require.True(t, strings.HasPrefix(err.Error(), "sccm: create deployments: "), err.Error())

	got, err := b.client.CreateDeployments(t.Context(), specs)
	require.NoError(t, err)
	require.Len(t, got, 2)
	st := b.site.State().Deployments
	require.Len(t, st, 2, "each deployment exactly once, whatever the first call did")
	for i, d := range st {
		require.Equal(t, specs[i].Name, d.Name)
		require.False(t, d.Enabled)
	}
}

func TestCreateDeploymentsRefusals(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 13, 2, 0, 0, 0, time.UTC)
	longName := strings.Repeat("n", sccm.MaxNameLength+1)
	wide := strings.Repeat("😀", sccm.MaxNameLength/2) + "x" // 257 UTF-16 units, 129 runes

	tests := []struct {
		name  string
		specs []sccm.DeploymentSpec
		text  string
	}{
		{"UnknownCollection", []sccm.DeploymentSpec{
			spec("ok", "Patch A", "G1", start), spec("bad", "Patch Nope", "G1", start),
		}, "No device collection named 'Patch Nope' exists on site PS1."},
		{"UnknownUpdateGroup", []sccm.DeploymentSpec{
			spec("ok", "Patch A", "G1", start), spec("bad", "Patch A", "G-nope", start),
		}, "No software update group named 'G-nope' exists on site PS1."},
		{"NameTooLong", []sccm.DeploymentSpec{spec(longName, "Patch A", "G1", start)},
			"is 257 characters long; SCCM allows 1 to 256."},
		{"NameTooLongInUTF16", []sccm.DeploymentSpec{spec(wide, "Patch A", "G1", start)},
			"is 257 characters long; SCCM allows 1 to 256."},
		{"SameNameTwiceInABatch", []sccm.DeploymentSpec{
			spec("twice", "Patch A", "G1", start), spec("twice", "Patch A", "G1", start),
		}, "The deployment name 'twice' appears more than once in this request."},
		{"NameTakenByAnotherCollection", []sccm.DeploymentSpec{spec("taken", "Patch B", "G1", start)},
			"A deployment named 'taken' already exists on site PS1 for another collection or update group."},
		{"NameTakenByAnotherGroup", []sccm.DeploymentSpec{spec("taken", "Patch A", "G2", start)},
			"A deployment named 'taken' already exists on site PS1 for another collection or update group."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOpts{})
			b.seed(t, []string{"Patch A", "Patch B"}, []string{"G1", "G2"}, nil)
			_, err := b.client.CreateDeployments(t.Context(), []sccm.DeploymentSpec{spec("taken", "Patch A", "G1", start)})
			require.NoError(t, err)
			before := b.site.State()

			_, err = b.client.CreateDeployments(t.Context(), tt.specs)
			requireRefusal(t, err, sccm.CreateDeploymentsTemplate, tt.text)
			require.Equal(t, before, b.site.State(), "a refused batch creates nothing")
		})
	}
}

func TestSetEnabled(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.seed(t, []string{"Patch A"}, []string{"G1"}, nil)
	start := b.clock.Now().Add(time.Hour)
	_, err := b.client.CreateDeployments(t.Context(), []sccm.DeploymentSpec{
		spec("one", "Patch A", "G1", start), spec("two", "Patch A", "G1", start),
	})
	require.NoError(t, err)

	b.clock.Advance(time.Hour)
	opened := b.clock.Now()
	res, err := b.client.SetEnabled(t.Context(), []string{"one", "two"}, true)
	require.NoError(t, err)
	require.Len(t, res, 2)
	require.Equal(t, "one", res[0].Name)
	require.False(t, res[0].WasEnabled)
	require.Equal(t, b.deployment(t, "two").ID, res[1].ID)

	b.clock.Advance(4 * time.Hour)
	closed := b.clock.Now()
	res, err = b.client.SetEnabled(t.Context(), []string{"one"}, false)
	require.NoError(t, err)
	require.True(t, res[0].WasEnabled)

	require.Equal(t, []sccmsim.Event{{At: opened, Enabled: true}, {At: closed, Enabled: false}}, b.deployment(t, "one").Events)
	require.Equal(t, []sccmsim.Event{{At: opened, Enabled: true}}, b.deployment(t, "two").Events)
	require.True(t, b.deployment(t, "two").Enabled)

	t.Run("UnknownDeploymentChangesNothing", func(t *testing.T) {
		before := b.site.State()
		_, err := b.client.SetEnabled(t.Context(), []string{"two", "three"}, false)
		requireRefusal(t, err, sccm.SetEnabledTemplate, "No software update deployment named 'three' exists on site PS1.")
		require.Equal(t, before, b.site.State())
	})
}

func TestOpenDeployments(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.seed(t, []string{"Patch A", "Patch B"}, []string{"G1"}, map[string]string{"D1": "success"})
	require.NoError(t, b.site.AddMember("Patch A", "D1"))
	_, err := b.client.CreateDeployments(t.Context(), []sccm.DeploymentSpec{
		spec("a", "Patch A", "G1", b.clock.Now()), spec("b", "Patch B", "G1", b.clock.Now()),
	})
	require.NoError(t, err)
	calls := b.site.Calls()

	t.Run("UnknownCollectionChangesNothing", func(t *testing.T) {
		before := b.site.State()
		_, err := b.client.OpenDeployments(t.Context(), []string{"a"}, []string{"Patch A", "Patch Q"})
		requireRefusal(t, err, sccm.SetEnabledTemplate, "No device collection named 'Patch Q' exists on site PS1.")
		require.Equal(t, before, b.site.State())
	})

	b.clock.Advance(time.Hour)
	res, err := b.client.OpenDeployments(t.Context(), []string{"a", "b"}, []string{"Patch A", "Patch B"})
	require.NoError(t, err)
	require.Len(t, res, 2)
	require.Equal(t, calls+2, b.site.Calls(), "the refusal and one call to open")
	for _, name := range []string{"a", "b"} {
		require.Equal(t, []sccmsim.Event{{At: b.clock.Now(), Enabled: true}}, b.deployment(t, name).Events)
	}
	for _, c := range []string{"Patch A", "Patch B"} {
		require.Equal(t, []time.Time{b.clock.Now()}, b.collection(t, c).PolicyRefreshes)
	}
	require.Len(t, b.deployment(t, "a").Devices, 1, "enabling reached the member")
}

func TestRefreshPolicy(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.seed(t, []string{"Patch A", "Patch B"}, nil, nil)

	require.NoError(t, b.client.RefreshPolicy(t.Context(), []string{"Patch A"}))
	require.Equal(t, []time.Time{b.clock.Now()}, b.collection(t, "Patch A").PolicyRefreshes)
	require.Empty(t, b.collection(t, "Patch B").PolicyRefreshes)

	err := b.client.RefreshPolicy(t.Context(), []string{"Patch B", "Patch Q"})
	requireRefusal(t, err, sccm.RefreshPolicyTemplate, "No device collection named 'Patch Q' exists on site PS1.")
	require.Empty(t, b.collection(t, "Patch B").PolicyRefreshes, "refused before any notification")
}

func TestDeleteDeployments(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.seed(t, []string{"Patch A"}, []string{"G1"}, nil)
	_, err := b.client.CreateDeployments(t.Context(), []sccm.DeploymentSpec{spec("one", "Patch A", "G1", b.clock.Now())})
	require.NoError(t, err)

	res, err := b.client.DeleteDeployments(t.Context(), []string{"one", "never"})
	require.NoError(t, err)
	require.Equal(t, []sccm.DeleteResult{{Name: "one", Deleted: true}, {Name: "never", Deleted: false}}, res)

	res, err = b.client.DeleteDeployments(t.Context(), []string{"one"})
	require.NoError(t, err)
	require.Equal(t, []sccm.DeleteResult{{Name: "one", Deleted: false}}, res, "a retry is safe")

	st := b.site.State().Deployments
	require.Len(t, st, 1)
	require.True(t, st[0].Deleted)
	require.Equal(t, b.clock.Now(), *st[0].DeletedAt)

	rep, err := b.client.DeploymentStatus(t.Context(), []string{"one"})
	require.NoError(t, err)
	require.Equal(t, []string{"one"}, rep.Missing)

	// The name is free again.
	again, err := b.client.CreateDeployments(t.Context(), []sccm.DeploymentSpec{spec("one", "Patch A", "G1", b.clock.Now())})
	require.NoError(t, err)
	require.False(t, again[0].Existed)
	require.NotEqual(t, st[0].ID, again[0].ID)
}

func TestDeploymentStatus(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	devices := map[string]string{
		"OK":      "success",
		"FAIL":    "error 0x80240022",
		"SILENT":  "silent",
		"FLAKY":   "error 0x8024402C then success",
		"STUCK":   "in progress",
		"LATE":    "success",
		"OUTSIDE": "error 0x80070005",
	}
	b.seed(t, []string{"Patch A", "Patch B"}, []string{"G1"}, devices)
	for _, d := range []string{"OK", "FAIL", "SILENT", "FLAKY", "STUCK"} {
		require.NoError(t, b.site.AddMember("Patch A", d))
	}
	require.NoError(t, b.site.AddMember("Patch B", "OUTSIDE"))
	_, err := b.client.CreateDeployments(t.Context(), []sccm.DeploymentSpec{
		spec("dep-a", "Patch A", "G1", b.clock.Now()), spec("dep-b", "Patch B", "G1", b.clock.Now()),
	})
	require.NoError(t, err)
	depA := b.deployment(t, "dep-a")

	type row struct {
		device string
		typ    sccm.StatusType
		code   string
	}
	read := func(t *testing.T, names ...string) ([]row, sccm.StatusReport) {
		t.Helper()
		rep, err := b.client.DeploymentStatus(t.Context(), names)
		require.NoError(t, err)
		var rows []row
		for _, d := range rep.Devices {
			require.Equal(t, "dep-a", d.Deployment)
			require.Equal(t, depA.ID, d.DeploymentID)
			require.Positive(t, d.ResourceID)
			rows = append(rows, row{d.Device, d.Type, d.ErrorHex()})
			if d.Type == sccm.StatusUnknown {
				require.True(t, d.Time.IsZero(), "%s never reported", d.Device)
			} else {
				require.Equal(t, b.clock.Now(), d.Time)
			}
		}
		return rows, rep
	}

	t.Run("BeforeEnableAllUnknown", func(t *testing.T) {
		rows, rep := read(t, "dep-a", "no-such")
		require.Equal(t, []string{"no-such"}, rep.Missing)
		require.ElementsMatch(t, []row{
			{"OK", sccm.StatusUnknown, "0x00000000"}, {"FAIL", sccm.StatusUnknown, "0x00000000"},
			{"SILENT", sccm.StatusUnknown, "0x00000000"}, {"FLAKY", sccm.StatusUnknown, "0x00000000"},
			{"STUCK", sccm.StatusUnknown, "0x00000000"},
		}, rows)
	})

	_, err = b.client.SetEnabled(t.Context(), []string{"dep-a"}, true)
	require.NoError(t, err)
	require.NoError(t, b.site.AddMember("Patch A", "LATE")) // joins while enabled: gets the policy

	t.Run("FirstReadAfterEnable", func(t *testing.T) {
		rows, _ := read(t, "dep-a", "dep-a")
		require.ElementsMatch(t, []row{
			{"OK", sccm.StatusSuccess, "0x00000000"},
			{"FAIL", sccm.StatusError, "0x80240022"},
			{"SILENT", sccm.StatusUnknown, "0x00000000"},
			{"FLAKY", sccm.StatusError, "0x8024402C"},
			{"STUCK", sccm.StatusInProgress, "0x00000000"},
			{"LATE", sccm.StatusSuccess, "0x00000000"},
		}, rows, "each device once, a repeated name is read once")
	})

	b.clock.Advance(5 * time.Minute)
	t.Run("SecondRead", func(t *testing.T) {
		rep, err := b.client.DeploymentStatus(t.Context(), []string{"dep-a"})
		require.NoError(t, err)
		byDevice := map[string]sccm.DeviceStatus{}
		for _, d := range rep.Devices {
			byDevice[d.Device] = d
		}
		require.Equal(t, sccm.StatusSuccess, byDevice["FLAKY"].Type, "then success")
		require.Equal(t, b.clock.Now(), byDevice["FLAKY"].Time, "changed now")
		require.Equal(t, b.clock.Now().Add(-5*time.Minute), byDevice["OK"].Time, "unchanged since the first report")
		require.Equal(t, sccm.StatusError, byDevice["FAIL"].Type)
		require.Equal(t, uint32(0x80240022), byDevice["FAIL"].ErrorCode)
		require.Equal(t, "Failed to install update(s)", byDevice["FAIL"].Message)
		require.Equal(t, sccm.StatusUnknown, byDevice["SILENT"].Type)
	})

	t.Run("StateShowsOutcomes", func(t *testing.T) {
		st := b.deployment(t, "dep-a")
		got := map[string]sccmsim.DeviceOutcome{}
		for _, d := range st.Devices {
			got[d.Device] = d
		}
		require.Len(t, got, 6)
		require.Equal(t, "error 0x80240022", got["FAIL"].Outcome)
		require.Equal(t, "0x80240022", got["FAIL"].ErrorCode)
		require.Equal(t, 2, got["FLAKY"].Reads)
		require.Equal(t, 1, got["FLAKY"].StatusType)
		require.Equal(t, 4, got["SILENT"].StatusType)
		require.Nil(t, got["SILENT"].ReportedAt)
		require.Empty(t, b.deployment(t, "dep-b").Devices, "never enabled, reached nobody")
	})
}

func TestCollectionsWithMaintenanceWindows(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	require.NoError(t, b.site.AddCollection("Plain", 0))
	require.NoError(t, b.site.AddCollection("With MW", 2))
	require.NoError(t, b.site.AddCollection("Also MW", 1))

	got, err := b.client.CollectionsWithMaintenanceWindows(t.Context())
	require.NoError(t, err)
	require.Equal(t, []string{"With MW", "Also MW"}, got)
}

func TestSiteCode(t *testing.T) {
	t.Parallel()

	t.Run("Matching", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{siteCode: sccmsim.DefaultSiteCode})
		_, err := b.client.CollectionsWithMaintenanceWindows(t.Context())
		require.NoError(t, err)
	})
	t.Run("Other", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{siteCode: "XYZ"})
		_, err := b.client.CollectionsWithMaintenanceWindows(t.Context())
		requireRefusal(t, err, sccm.MaintenanceWindowsTemplate, "serves site PS1, not XYZ")
	})
}

func TestNonTemplateScriptIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.seed(t, []string{"Patch A"}, nil, nil)
	create := sccm.Templates()[2]

	// The site answers like a constrained endpoint whose visible commands are
	// the documented cmdlets of cmdlets.yaml and which runs only the
	// templates: a command outside the table is not recognized (as in JEA),
	// a documented script that is not a template is refused as a whole.
	const notRecognized = "is not recognized as the name of a cmdlet, function, script file, or operable program."
	const notATemplate = "this endpoint runs only autopatch's approved script templates"
	tests := []struct {
		name   string
		script string
		want   string
	}{
		{"Arbitrary", "param($Data)\nRemove-Item -Path C:\\ -Recurse -Force\n", "The term 'Remove-Item' " + notRecognized},
		{"TemplateWithInjectedLine", strings.Replace(create.Script, "\n", "\nRemove-CMDeviceCollection -Name 'Patch A' -Force\n", 2),
			"The term 'Remove-CMDeviceCollection' " + notRecognized},
		{"TemplateWithInjectedDocumentedLine", strings.Replace(create.Script, "\n",
			"\nRemove-CMSoftwareUpdateDeployment -Name 'AP-x' -Force\n", 2), notATemplate},
		{"TemplateWithTrailingSpace", create.Script + " ", notATemplate},
		{"TemplateWithCRLF", strings.ReplaceAll(create.Script, "\n", "\r\n"), notATemplate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := b.site.State()
			var out map[string]any
			err := b.winrm.Run(t.Context(), winrm.Template{Name: "evil", Script: tt.script}, map[string]any{}, &out)
			var se *winrm.ScriptError
			require.True(t, errors.As(err, &se), "%v", err)
			require.Equal(t, 1, se.ExitCode)
			require.Contains(t, se.Stderr, tt.want)
			require.Equal(t, before, b.site.State())
		})
	}
	require.Equal(t, len(tests), b.site.CallsByTemplate()["(refused)"])
}

// TestLongDataInChunks moves thousands of devices in one call: the data is far
// beyond the command-line limit, so it is written to the invocation file by many
// echo commands of the call's shell (never over WinRS stdin; see winrm.Commands).
func TestLongDataInChunks(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.seed(t, []string{"Patch A", "Patch B"}, nil, nil)
	const n = 5000
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("SRV-%s-%05d", strings.Repeat("L", 40), i)
		_, err := b.site.AddDevice(names[i], sccmsim.Outcome{})
		require.NoError(t, err)
	}
	commandsBefore := b.wsman.Stats().Requests["Command"]

	res, err := b.client.ResolveDevices(t.Context(), names)
	require.NoError(t, err)
	require.Len(t, res.ResourceIDs, n)

	moves := make([]sccm.Move, n)
	for i, name := range names {
		moves[i] = sccm.Move{Device: name, ResourceID: res.ResourceIDs[name], Collection: "Patch A"}
	}
	results, err := b.client.SetMembership(t.Context(), moves, []string{"Patch A", "Patch B"})
	require.NoError(t, err)
	require.Len(t, results, n)
	require.Equal(t, names, b.collection(t, "Patch A").Members)
	st := b.wsman.Stats()
	require.Greater(t, st.Requests["Command"]-commandsBefore, 2*(2+2), "the data went in several chunks")
	require.Zero(t, st.Requests["Send"], "nothing travels over WinRS stdin")
	require.Zero(t, st.TempFiles, "every invocation file is removed")
	require.Equal(t, 2, b.site.Calls(), "one call each")
}

func TestEmptyBatchesMakeNoCall(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	ctx := context.Background()
	_, err := b.client.SetMembership(ctx, nil, []string{"x"})
	require.NoError(t, err)
	_, err = b.client.CreateDeployments(ctx, nil)
	require.NoError(t, err)
	_, err = b.client.SetEnabled(ctx, nil, true)
	require.NoError(t, err)
	require.NoError(t, b.client.RefreshPolicy(ctx, nil))
	_, err = b.client.DeleteDeployments(ctx, nil)
	require.NoError(t, err)
	_, err = b.client.DeploymentStatus(ctx, nil)
	require.NoError(t, err)
	require.Zero(t, b.site.Calls())
}

// TestLedgerOutcomes covers the statuses the compliance ledger needs: an
// install that runs past the window's close, a pending restart, and
// clients that never report because they are inactive or missing.
func TestLedgerOutcomes(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	devices := map[string]string{
		"LATE": "success after close", "REBOOT": "pending restart",
		"SLEEPY": "inactive", "BARE": "no client", "OK": "success",
	}
	b.seed(t, []string{"Patch A"}, []string{"G1", "G2"}, devices)
	for d := range devices {
		require.NoError(t, b.site.AddMember("Patch A", d))
	}
	_, err := b.client.CreateDeployments(t.Context(), []sccm.DeploymentSpec{spec("dep-a", "Patch A", "G1", b.clock.Now())})
	require.NoError(t, err)
	_, err = b.client.SetEnabled(t.Context(), []string{"dep-a"}, true)
	require.NoError(t, err)

	read := func() map[string]sccm.DeviceStatus {
		rep, err := b.client.DeploymentStatus(t.Context(), []string{"dep-a"})
		require.NoError(t, err)
		out := map[string]sccm.DeviceStatus{}
		for _, d := range rep.Devices {
			out[d.Device] = d
		}
		return out
	}
	open := read()
	require.Equal(t, sccm.StatusInProgress, open["LATE"].Type, "still installing while the window is open")
	require.Equal(t, sccm.StatusInProgress, open["REBOOT"].Type)
	require.Equal(t, 9, open["REBOOT"].EnforcementMessage, "LastEnforcementMessageID 9: pending system restart")
	require.Zero(t, open["OK"].EnforcementMessage)
	require.Equal(t, sccm.StatusUnknown, open["SLEEPY"].Type)
	require.Equal(t, sccm.StatusUnknown, open["BARE"].Type)

	b.clock.Advance(time.Hour)
	_, err = b.client.SetEnabled(t.Context(), []string{"dep-a"}, false)
	require.NoError(t, err)
	b.clock.Advance(time.Minute)
	closed := read()
	require.Equal(t, sccm.StatusSuccess, closed["LATE"].Type, "disabling does not stop a started install")
	require.Equal(t, b.clock.Now(), closed["LATE"].Time, "its status time is after the close")

	t.Run("DeviceStates", func(t *testing.T) {
		before := b.site.Calls()
		states, err := b.client.DeviceStates(t.Context(), []sccm.StateRead{
			{Collection: "Patch A", UpdateGroups: []string{"G1", "G2"}},
			{Collection: "Patch A"}, // the pre-flight of another change: client state only
		})
		require.NoError(t, err)
		require.Equal(t, before+1, b.site.Calls(), "every read in one call")
		got := map[int]map[string]sccm.DeviceState{0: {}, 1: {}}
		for _, s := range states {
			require.Equal(t, "Patch A", s.Collection)
			got[s.Read][s.Device] = s
		}
		require.Len(t, got[0], len(devices))
		require.Len(t, got[1], len(devices))
		require.True(t, got[0]["OK"].IsClient && got[0]["OK"].Active)
		require.Zero(t, got[0]["OK"].Required)
		require.True(t, got[0]["SLEEPY"].IsClient)
		require.False(t, got[0]["SLEEPY"].Active)
		require.Equal(t, 2, got[0]["SLEEPY"].Required, "one update per group, none installed")
		require.Zero(t, got[1]["SLEEPY"].Required, "no groups asked, none counted")
		require.False(t, got[0]["BARE"].IsClient)
		require.True(t, got[0]["BARE"].LastPolicyRequest.IsZero())
		require.True(t, got[0]["REBOOT"].RebootPending)
		require.Zero(t, got[0]["REBOOT"].Required)
	})
	t.Run("UnknownUpdateGroupRefused", func(t *testing.T) {
		_, err := b.client.DeviceStates(t.Context(), []sccm.StateRead{{Collection: "Patch A", UpdateGroups: []string{"nope"}}})
		require.ErrorContains(t, err, "No software update group named 'nope'")
	})
	t.Run("UnknownCollectionRefused", func(t *testing.T) {
		_, err := b.client.DeviceStates(t.Context(), []sccm.StateRead{{Collection: "Patch A"}, {Collection: "nope"}})
		require.ErrorContains(t, err, "No device collection named 'nope'")
	})
	t.Run("NoReadsNoCall", func(t *testing.T) {
		before := b.site.Calls()
		states, err := b.client.DeviceStates(t.Context(), nil)
		require.NoError(t, err)
		require.Empty(t, states)
		require.Equal(t, before, b.site.Calls())
	})
}
