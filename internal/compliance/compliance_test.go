package compliance

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var (
	start = time.Date(2026, 12, 12, 2, 0, 0, 0, time.UTC)
	end   = start.Add(4 * time.Hour)
	read  = end.Add(time.Minute)
)

func ok(at time.Time) Status {
	return Status{Deployment: "D1", Type: StatusSuccess, At: at, ObservedAt: read}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	healthy := &Client{Installed: true, Active: true, ObservedAt: start.Add(-24 * time.Hour)}
	inactive := &Client{Installed: true, Active: false, ObservedAt: start.Add(-24 * time.Hour)}
	missing := &Client{Installed: false, ObservedAt: start.Add(-24 * time.Hour)}
	deadline := start.Add(30 * 24 * time.Hour)
	tests := []struct {
		name string
		dev  Device
		now  time.Time
		want Outcome
	}{
		{"BeforeWindow", Device{}, start.Add(-time.Hour), Pending},
		{"OpenWindowSilent", Device{Statuses: []Status{{Type: StatusUnknown, ObservedAt: start}}}, start.Add(time.Hour), Pending},
		{"ClosedButFinalReadDue", Device{Statuses: []Status{{Type: StatusUnknown}}}, read, Pending},
		{"SuccessInWindow", Device{FinalRead: true, Statuses: []Status{ok(start.Add(time.Hour)), ok(start.Add(2 * time.Hour))}}, read, PatchedInWindow},
		{"SuccessAtStartIsInside", Device{Statuses: []Status{ok(start)}}, start, PatchedInWindow},
		{"SuccessAtEndIsOutside", Device{Statuses: []Status{ok(end)}}, read, PatchedOutsideWindow},
		{"InstallRunningPastClose", Device{FinalRead: true, Statuses: []Status{ok(start.Add(time.Hour)), ok(end.Add(20 * time.Minute))}}, read, PatchedOutsideWindow},
		{"SuccessBeforeWindow", Device{Statuses: []Status{ok(start.Add(-time.Minute))}}, read, PatchedOutsideWindow},
		{"OneGroupStillRunning", Device{Statuses: []Status{ok(start.Add(time.Hour)), {Type: StatusInProgress}}}, start.Add(2 * time.Hour), Pending},
		{"ErrorBeatsSuccess", Device{FinalRead: true, Statuses: []Status{ok(start.Add(time.Hour)), {Type: StatusError, ErrorCode: 0x80240022, At: start.Add(time.Hour)}}}, read, Failed},
		{"PendingRestart", Device{FinalRead: true, Statuses: []Status{ok(start.Add(time.Hour)), {Type: StatusInProgress, EnforcementMessage: EnforcementPendingRestart, At: start.Add(time.Hour)}}}, read, PendingReboot},
		{"ManualRebootInstalledRestartPending", Device{Kind: KindManualReboot, FinalRead: true, Statuses: []Status{ok(start.Add(time.Hour))}, Manual: &Manual{RebootPending: true, ObservedAt: read}}, read, PendingReboot},
		{"ManualRebootRestarted", Device{Kind: KindManualReboot, FinalRead: true, Statuses: []Status{ok(start.Add(time.Hour))}, Manual: &Manual{ObservedAt: read}}, read, PatchedInWindow},
		{"ManualRebootOwnerRestartedLater", Device{Kind: KindManualReboot, FinalRead: true, Statuses: []Status{{Type: StatusInProgress, EnforcementMessage: EnforcementPendingRestart, At: start.Add(time.Hour), ObservedAt: read}}, Manual: &Manual{ObservedAt: read.Add(time.Hour)}}, read.Add(time.Hour), PatchedOutsideWindow},
		{"ManualRebootStaleComplianceRead", Device{Kind: KindManualReboot, FinalRead: true, Statuses: []Status{{Type: StatusInProgress, EnforcementMessage: EnforcementPendingRestart, At: start.Add(time.Hour), ObservedAt: read}}, Manual: &Manual{ObservedAt: start}}, read, PendingReboot},
		{"SilentAtFinalRead", Device{FinalRead: true, Statuses: []Status{{Type: StatusUnknown, ObservedAt: read}}}, read, NotReported},
		{"InProgressAtFinalRead", Device{FinalRead: true, Statuses: []Status{{Type: StatusInProgress, At: start.Add(time.Hour), ObservedAt: read}}}, read, NotReported},
		{"NoRowAtAll", Device{FinalRead: true}, read, NotReported},
		{"InactiveClientBeforeWindow", Device{Client: inactive}, start.Add(-time.Hour), ClientInactive},
		{"MissingClientAfterWindow", Device{FinalRead: true, Client: missing, Statuses: []Status{{Type: StatusUnknown}}}, read, ClientInactive},
		{"InactiveClientThatPatchedAnyway", Device{Client: inactive, Statuses: []Status{ok(start.Add(time.Hour))}}, read, PatchedInWindow},
		{"HealthyClientSilent", Device{FinalRead: true, Client: healthy, Statuses: []Status{{Type: StatusUnknown}}}, read, NotReported},
		{"ManualPatchCompliant", Device{Kind: KindManualPatch, Deadline: deadline, Manual: &Manual{ObservedAt: read}}, start, ManualCompliant},
		{"ManualPatchRequiredBeforeWindowEnd", Device{Kind: KindManualPatch, Deadline: deadline, Manual: &Manual{Required: 3, ObservedAt: start}}, start.Add(time.Hour), Pending},
		{"ManualPatchRequiredAfterWindow", Device{Kind: KindManualPatch, Deadline: deadline, Manual: &Manual{Required: 3, ObservedAt: read}}, read, ManualNoncompliant},
		{"ManualPatchNeverRead", Device{Kind: KindManualPatch, Deadline: deadline}, read, NotReported},
		{"ManualPatchNoWindowBeforeDeadline", Device{Kind: KindManualPatch, Deadline: deadline, Manual: &Manual{Required: 1, ObservedAt: read}}, read, Pending},
		{"ManualPatchInstalledRestartPending", Device{Kind: KindManualPatch, Manual: &Manual{RebootPending: true, ObservedAt: read}}, read, PendingReboot},
		{"ManualPatchInactive", Device{Kind: KindManualPatch, Client: inactive}, start, ClientInactive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := tt.dev
			if d.WindowStart.IsZero() && !strings.Contains(tt.name, "NoWindow") {
				d.WindowStart, d.WindowEnd = start, end
			}
			r := Classify(d, tt.now)
			require.Equal(t, tt.want, r.Outcome, "evidence: %s", r.Evidence)
			require.NotEmpty(t, r.Evidence)
			require.True(t, r.Outcome.Valid())
		})
	}
}

func TestClassifyEvidence(t *testing.T) {
	t.Parallel()
	d := Device{WindowStart: start, WindowEnd: end, FinalRead: true,
		Statuses: []Status{{Deployment: "D1", Type: StatusError, ErrorCode: 0x80240022, At: start.Add(time.Hour), ObservedAt: read}}}
	r := Classify(d, read)
	require.Equal(t, Failed, r.Outcome)
	require.Equal(t, start.Add(time.Hour), r.StatusAt)
	require.Equal(t, read, r.EvidenceAt)
	require.Equal(t, SourceStatus, r.Source)
	require.Contains(t, r.Evidence, "0x80240022")

	late := end.Add(20 * time.Minute)
	r = Classify(Device{WindowStart: start, WindowEnd: end, Statuses: []Status{ok(start.Add(time.Hour)), ok(late)}}, read)
	require.Equal(t, late, r.StatusAt, "the last group's success decides when the device was patched")
	require.Contains(t, r.Evidence, "outside")
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	deadline := end.Add(24 * time.Hour)
	entries := []Entry{
		{Result: Result{Outcome: PatchedInWindow, StatusAt: start.Add(time.Hour)}, Deadline: deadline},
		{Result: Result{Outcome: PatchedOutsideWindow, StatusAt: end.Add(time.Hour)}, Deadline: deadline},
		{Result: Result{Outcome: PatchedOutsideWindow, StatusAt: deadline.Add(time.Hour)}, Deadline: deadline},
		{Result: Result{Outcome: Failed}, Deadline: deadline},
	}
	s := Summarize(entries, read)
	require.Equal(t, 4, s.Devices)
	require.Equal(t, 2, s.PatchedOutsideWindow)
	require.Equal(t, 2, s.PatchedByDeadline, "a success after the deadline is not by it")
	require.False(t, s.DeadlinePassed)
	require.Len(t, s.ByOutcome, len(Outcomes))
	require.InDelta(t, 0.5, s.ByDeadlineRatio(), 1e-9)
	require.True(t, Summarize(entries, deadline).DeadlinePassed)
	require.Zero(t, Summarize(nil, read).ByDeadlineRatio())
}

func TestAttach(t *testing.T) {
	t.Parallel()
	devs := []Device{{Name: "SQL01", WindowStart: start, WindowEnd: end}}
	got := Attach(devs, []Row{
		{Device: "sql01", Status: ok(start)},
		{Device: "SQL01", Status: Status{Deployment: "D2", Type: StatusSuccess}},
		{Device: "STRAY", Status: ok(start)},
	})
	require.Len(t, got, 2)
	require.Len(t, got[0].Statuses, 2)
	require.Equal(t, "STRAY", got[1].Name)
	require.Equal(t, start, got[1].WindowStart, "a stray member takes the window of the deployment it reported in")
}

// BenchmarkClassify8000x2 classifies 8,000 devices × 2 update groups from
// one status read: attaching the 16,000 rows and deciding every device.
func BenchmarkClassify8000x2(b *testing.B) { benchClassify(b, 2) }

// BenchmarkClassify8000x3 is the compliance of Microsoft IT's month (issue
// #19): 8,000 servers, 3 update groups.
func BenchmarkClassify8000x3(b *testing.B) { benchClassify(b, 3) }

func benchClassify(b *testing.B, groups int) {
	const n = 8000
	devices := make([]Device, n)
	rows := make([]Row, 0, groups*n)
	deps := []string{"CHG0031234 DB 2026-12 Servers", "CHG0031234 DB 2026-12 Office", "CHG0031234 DB 2026-12 Runtimes"}[:groups]
	for i := range devices {
		name := fmt.Sprintf("SRV%05d", i)
		devices[i] = Device{Name: name, Kind: KindAutomatic, WindowStart: start, WindowEnd: end, FinalRead: true}
		for g, dep := range deps {
			st := Status{Deployment: dep, Type: StatusSuccess, At: start.Add(time.Duration(i%300) * time.Minute), ObservedAt: read}
			switch i % 10 {
			case 1:
				st = Status{Deployment: dep, Type: StatusError, ErrorCode: 0x80240022, At: start.Add(time.Hour), ObservedAt: read}
			case 2:
				st = Status{Deployment: dep, Type: StatusUnknown, ObservedAt: read}
			case 3:
				if g == 1 {
					st.Type, st.EnforcementMessage = StatusInProgress, EnforcementPendingRestart
				}
			}
			rows = append(rows, Row{Device: name, Status: st})
		}
	}
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	for b.Loop() {
		in := make([]Device, n)
		copy(in, devices)
		in = Attach(in, rows)
		entries := make([]Entry, len(in))
		for i := range in {
			entries[i] = Entry{Result: Classify(in[i], read), Deadline: end.Add(30 * 24 * time.Hour)}
		}
		if s := Summarize(entries, read); s.Devices != n {
			b.Fatalf("classified %d devices, want %d", s.Devices, n)
		}
	}
	// The process's CPU time per classification, beside the wall time: on
	// a VM whose host deschedules it, ns/op includes the stalls.
	b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
