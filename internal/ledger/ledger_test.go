package ledger

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/calendar"
	"github.com/autopatch/autopatch/internal/compliance"
	"github.com/autopatch/autopatch/internal/store"
)

func ptr[T any](v T) *T { return &v }

// TestDevicesFromEvidence builds a change's ledger from stored evidence:
// only the current plan's deployments count, members SCCM listed in a
// compliance read are in scope, and each line says how old its evidence is.
func TestDevicesFromEvidence(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 12, 2, 0, 0, 0, time.UTC)
	end := start.Add(4 * time.Hour)
	read := end.Add(time.Minute)
	stale := start.Add(-48 * time.Hour)
	ev := store.LedgerEvidence{
		Change: store.ChangeRow{Change: store.Change{Number: "CHG0031234", Start: start.Add(-2 * time.Hour)}},
		Plan: &store.Plan{Entries: []store.PlanEntry{
			{Schedule: "DB", WindowStart: &start, WindowEnd: &end},
			{Schedule: "HAND", WindowStart: &start, WindowEnd: &end},
		}},
		Kinds:   map[string]string{"DB": "automatic", "HAND": "manual_patch"},
		Devices: []store.ScopeDevice{{Name: "SQL01", Schedule: "DB", Service: "Payroll", Tier: "backend"}},
		Deployments: []store.LedgerDeployment{
			{Deployment: store.Deployment{ID: 1, Name: "AP-DB-Servers", Schedule: "DB", WindowStart: start, State: store.DeploymentClosed}, FinalPolledAt: &read},
			// A deployment of a window the plan moved away from: not evidence.
			{Deployment: store.Deployment{ID: 2, Name: "AP-DB-old", Schedule: "DB", WindowStart: start.Add(-24 * time.Hour), State: store.DeploymentClosed}, FinalPolledAt: &read},
		},
		Results: []store.DeviceResult{
			{DeploymentID: 1, Device: "sql01", StatusType: 1, StatusTime: ptr(start.Add(time.Hour)), ObservedAt: read},
			{DeploymentID: 2, Device: "SQL01", StatusType: 5, ErrorCode: ptr(int64(0x80240022)), ObservedAt: read},
			{DeploymentID: 1, Device: "SQL09", StatusType: 4, ObservedAt: read},
		},
		Manual: []store.ManualCompliance{{Device: "HAND01", Schedule: "HAND", Required: 2, ObservedAt: stale}},
	}
	devs := Devices(ev, read, Options{})
	got := map[string]Device{}
	for _, d := range devs {
		got[d.Device] = d
	}
	require.Len(t, got, 3)
	require.Equal(t, compliance.PatchedInWindow, got["SQL01"].Outcome, "the moved window's error is not evidence")
	require.Equal(t, "Payroll", got["SQL01"].Service)
	require.Equal(t, compliance.NotReported, got["SQL09"].Outcome, "a member SCCM listed, silent at the final read")
	require.Equal(t, compliance.ManualNoncompliant, got["HAND01"].Outcome)
	require.Equal(t, stale, *got["HAND01"].EvidenceAt, "the last evidence, with its age")
	require.Equal(t, DeadlineOf(calendar.Month{Year: 2026, Month: time.December}, DefaultDeadlineAfter), got["SQL01"].Deadline)
	require.Equal(t, time.Date(2027, 1, 7, 0, 0, 0, 0, time.UTC), got["SQL01"].Deadline, "Patch Tuesday 2026-12-08 + 30 days")
	require.True(t, got["SQL01"].ByDeadline)

	l := assemble(Scope{Change: "CHG0031234"}, devs, read)
	require.Equal(t, stale, *l.OldestEvidence)
	require.Equal(t, read, *l.EvidenceAt)
	require.Equal(t, 1, l.Summary.ByOutcome[compliance.PatchedInWindow])

	// Not planned yet: nothing in scope.
	require.Empty(t, Devices(store.LedgerEvidence{Change: ev.Change}, read, Options{}))
}

// TestDeferredDevices: a deferral moves the device's deadline and shows it
// deferred until then, unless it is patched; after its until, the device is
// judged by what SCCM says, against the moved deadline.
func TestDeferredDevices(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 12, 2, 0, 0, 0, time.UTC)
	end := start.Add(4 * time.Hour)
	read := end.Add(time.Minute)
	dl := start.Add(24 * time.Hour)
	until := dl.Add(5 * 24 * time.Hour)
	ev := store.LedgerEvidence{
		Change:  store.ChangeRow{Change: store.Change{Number: "CHG0031234", Start: start, Classification: "emergency"}},
		Plan:    &store.Plan{Entries: []store.PlanEntry{{Schedule: "DB", WindowStart: &start, WindowEnd: &end}}},
		Kinds:   map[string]string{"DB": "automatic"},
		Devices: []store.ScopeDevice{{Name: "SQL01", Schedule: "DB"}, {Name: "SQL02", Schedule: "DB"}, {Name: "SQL03", Schedule: "DB"}},
		Deployments: []store.LedgerDeployment{
			{Deployment: store.Deployment{ID: 1, Name: "AP-DB", Schedule: "DB", WindowStart: start, State: store.DeploymentClosed}, FinalPolledAt: &read},
		},
		Results: []store.DeviceResult{
			{DeploymentID: 1, Device: "SQL01", StatusType: 1, StatusTime: ptr(start.Add(time.Hour)), ObservedAt: read},
			{DeploymentID: 1, Device: "SQL02", StatusType: 5, ErrorCode: ptr(int64(0x80240022)), StatusTime: ptr(start.Add(time.Hour)), ObservedAt: read},
		},
		Deferrals: map[string]time.Time{"sql01": until, "sql02": until},
	}
	at := func(now time.Time) map[string]Device {
		got := map[string]Device{}
		for _, d := range Devices(ev, now, Options{}) {
			got[d.Device] = d
		}
		return got
	}
	got := at(read)
	require.Equal(t, compliance.PatchedInWindow, got["SQL01"].Outcome, "patched: the deferral changes nothing")
	require.Equal(t, compliance.Deferred, got["SQL02"].Outcome)
	require.Equal(t, until, *got["SQL02"].DeferredUntil)
	require.Equal(t, until, got["SQL02"].Deadline, "the deadline moved")
	require.Contains(t, got["SQL02"].Evidence, "deferred until")
	require.Nil(t, got["SQL03"].DeferredUntil)
	require.Equal(t, dl, got["SQL03"].Deadline, "emergency: start + 24 h")

	got = at(until)
	require.Equal(t, compliance.Failed, got["SQL02"].Outcome, "past its deferral, SCCM's word again")
	require.Equal(t, until, got["SQL02"].Deadline)

	l := assemble(Scope{Change: "CHG0031234"}, []Device{at(read)["SQL02"]}, read)
	require.Equal(t, 1, l.Summary.ByOutcome[compliance.Deferred])
}

// TestDeadlineOfChange: each change's deadline follows its classification,
// or the deadline it gives (docs/architecture.md §9.2).
func TestDeadlineOfChange(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 12, 20, 0, 0, 0, time.UTC)
	given := time.Date(2026, 12, 15, 6, 0, 0, 0, time.UTC)
	opts := Options{DeadlineAfter: 720 * time.Hour}
	for _, tt := range []struct {
		name   string
		class  string
		given  *time.Time
		expect time.Time
	}{
		{"Unclassified", "", nil, time.Date(2027, 1, 7, 0, 0, 0, 0, time.UTC)},
		{"Normal", "normal", nil, time.Date(2027, 1, 7, 0, 0, 0, 0, time.UTC)},
		{"Critical", "critical", nil, time.Date(2026, 12, 22, 0, 0, 0, 0, time.UTC)},
		{"Emergency", "emergency", nil, time.Date(2026, 12, 13, 20, 0, 0, 0, time.UTC)},
		{"Given", "critical", &given, given},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := store.ChangeRow{Change: store.Change{Number: "CHG0031234", Start: start, Classification: tt.class, Deadline: tt.given}}
			require.Equal(t, tt.expect, opts.Deadline(c))
		})
	}
}
