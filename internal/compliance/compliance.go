// Package compliance decides each device's outcome in a change (docs/architecture.md
// §9.1) from the evidence SCCM gave: its per-deployment status
// (SMS_SUMDeploymentAssetDetails), its client state and pending restart
// (SMS_CombinedDeviceResources) and, for manual_patch devices, the compliance
// of the change's update groups (SMS_UpdateComplianceStatus). It does no I/O:
// jobs and handlers fetch the evidence, call Classify, and act or answer.
//
// The rule of the ledger is that an outcome is never guessed: a device without
// evidence is pending while its window (or its deadline, for manual devices)
// has not come, and not_reported after it.
package compliance

import (
	"fmt"
	"strings"
	"time"
)

// Outcome is a device's standing in a change.
type Outcome string

// The outcomes of §9.1. Deferred and Forced belong to §9.2: Classify never
// returns them; internal/ledger marks a device Deferred when an approved
// deferral covers it, and Forced is reserved for forced remediation.
const (
	Pending              Outcome = "pending"
	PatchedInWindow      Outcome = "patched_in_window"
	PatchedOutsideWindow Outcome = "patched_outside_window"
	PendingReboot        Outcome = "pending_reboot"
	Failed               Outcome = "failed"
	NotReported          Outcome = "not_reported"
	ClientInactive       Outcome = "client_inactive"
	ManualCompliant      Outcome = "manual_compliant"
	ManualNoncompliant   Outcome = "manual_noncompliant"
	Deferred             Outcome = "deferred"
	Forced               Outcome = "forced"
)

// Outcomes lists every outcome in the order reports show them.
var Outcomes = []Outcome{Pending, PatchedInWindow, PatchedOutsideWindow, PendingReboot, Failed,
	NotReported, ClientInactive, ManualCompliant, ManualNoncompliant, Deferred, Forced}

// Valid reports whether o is one of Outcomes.
func (o Outcome) Valid() bool {
	for _, x := range Outcomes {
		if o == x {
			return true
		}
	}
	return false
}

// Patched reports whether the outcome counts as patched (compliant).
func (o Outcome) Patched() bool {
	return o == PatchedInWindow || o == PatchedOutsideWindow || o == ManualCompliant
}

// Schedule kinds, as in the schedules file (calendar.Kind).
const (
	KindAutomatic    = "automatic"
	KindManualPatch  = "manual_patch"
	KindManualReboot = "manual_reboot"
)

// SMS_SUMDeploymentAssetDetails.StatusType values.
const (
	StatusSuccess    = 1
	StatusInProgress = 2
	StatusUnknown    = 4
	StatusError      = 5
)

// EnforcementPendingRestart is the LastEnforcementMessageID (state message
// topic type 402, "software update enforcement") that SCCM reports for an
// installed update waiting for a restart: "Pending system restart".
const EnforcementPendingRestart = 9

// Status is one deployment's latest status for the device: one row of
// SMS_SUMDeploymentAssetDetails as the status poll stored it.
type Status struct {
	Deployment string
	// Type is StatusType; 0 or StatusUnknown when the device never reported.
	Type int
	// ErrorCode is StatusErrorCode (an HRESULT), 0 unless an error.
	ErrorCode int64
	// EnforcementMessage is LastEnforcementMessageID.
	EnforcementMessage int
	// At is SCCM's StatusTime; zero when the device never reported.
	At time.Time
	// ObservedAt is when autopatch read it.
	ObservedAt time.Time
}

// Client is the device's SCCM client state as the pre-flight read it
// (SMS_CombinedDeviceResources: IsClient, ClientActiveStatus, LastPolicyRequest).
type Client struct {
	Installed         bool
	Active            bool
	LastPolicyRequest time.Time // zero: never
	ObservedAt        time.Time
}

// Healthy reports whether the client can be expected to patch.
func (c Client) Healthy() bool { return c.Installed && c.Active }

// Manual is the compliance read of a manual device: whether it still needs
// any update of the change's update groups (SMS_UpdateComplianceStatus
// Status 2, "required"), and whether a restart is pending
// (SMS_CombinedDeviceResources.ClientState ≠ 0).
type Manual struct {
	Required      int  // updates of the groups still required
	RebootPending bool // ClientState ≠ 0
	ObservedAt    time.Time
}

// Device is everything known about one device in one change.
type Device struct {
	Name string
	Kind string // schedule kind; "" is automatic
	// WindowStart/WindowEnd is the schedule's window in the change; both
	// zero when no window was placed.
	WindowStart, WindowEnd time.Time
	// Deadline is when the device must be patched by.
	Deadline time.Time
	// FinalRead is true once the closing status read of every one of the
	// device's deployments happened (poll_status's final poll): from then
	// on, silence is not_reported.
	FinalRead bool
	Statuses  []Status
	Client    *Client // nil: no pre-flight read
	Manual    *Manual // nil: no compliance read
}

// Result is a device's outcome with the evidence it rests on.
type Result struct {
	Outcome Outcome
	// StatusAt is SCCM's time of the deciding status (StatusTime), zero
	// when the outcome does not rest on a status.
	StatusAt time.Time
	// StatusType and ErrorCode are the deciding status's, 0 when none.
	StatusType int
	ErrorCode  int64
	// Source names the SCCM class the evidence was read from.
	Source string
	// Evidence says, in one line, why.
	Evidence string
	// EvidenceAt is when autopatch read that evidence; zero when there was
	// none (pending, or not_reported without any read).
	EvidenceAt time.Time
}

// ByDeadline reports whether the device was patched by its deadline.
func (r Result) ByDeadline(deadline time.Time) bool {
	if !r.Outcome.Patched() {
		return false
	}
	at := r.StatusAt
	if at.IsZero() {
		at = r.EvidenceAt
	}
	return !at.IsZero() && !at.After(deadline)
}

// Sources of evidence: the SCCM class, and the read of it (the template
// that queries it, in connectors/sccm).
const (
	SourceStatus     = "SMS_SUMDeploymentAssetDetails via Get-CMSoftwareUpdateDeploymentStatus | Get-CMDeploymentStatusDetails (sccm.deployment_status)"
	SourceClient     = "SMS_CombinedDeviceResources via Get-CMDevice -CollectionId (sccm.device_state)"
	SourceCompliance = "SMS_UpdateComplianceStatus via Get-CimInstance -Filter CI_ID (sccm.device_state)"
)

// Classify decides d's outcome at now. The order of the rules is the order
// of strength of the evidence: an error SCCM reports beats everything, a
// success in every deployment comes next, then a pending restart, then what
// the pre-flight found, and only then the passage of time.
func Classify(d Device, now time.Time) Result {
	if d.Kind == KindManualPatch {
		return classifyManual(d, now)
	}
	var (
		success     = 0
		latest      Status
		restart     *Status
		lastObserve time.Time
	)
	for i := range d.Statuses {
		s := &d.Statuses[i]
		if s.ObservedAt.After(lastObserve) {
			lastObserve = s.ObservedAt
		}
		switch {
		case s.Type == StatusError:
			return Result{Outcome: Failed, StatusAt: s.At, StatusType: s.Type, ErrorCode: s.ErrorCode,
				Source: SourceStatus, EvidenceAt: s.ObservedAt,
				Evidence: fmt.Sprintf("SCCM StatusType 5 (error 0x%08X) at %s in %s", uint32(s.ErrorCode), stamp(s.At), s.Deployment)}
		case s.Type == StatusSuccess:
			success++
			if s.At.After(latest.At) || latest.Type == 0 {
				latest = *s
			}
		case s.Type == StatusInProgress && s.EnforcementMessage == EnforcementPendingRestart:
			restart = s
		}
	}
	if success > 0 && success == len(d.Statuses) {
		if d.Manual != nil && d.Manual.RebootPending && d.Kind == KindManualReboot {
			return pendingReboot(d, latest)
		}
		out := PatchedInWindow
		where := "inside"
		if !inside(latest.At, d.WindowStart, d.WindowEnd) {
			out, where = PatchedOutsideWindow, "outside"
		}
		return Result{Outcome: out, StatusAt: latest.At, StatusType: StatusSuccess, Source: SourceStatus,
			EvidenceAt: lastObserve,
			Evidence: fmt.Sprintf("SCCM StatusType 1 (success) in all %d deployment(s), last at %s, %s the window %s",
				success, stamp(latest.At), where, windowText(d.WindowStart, d.WindowEnd))}
	}
	// A manual_reboot device whose owner restarted it: the deployment's
	// last status (read until its window's final poll) still says pending
	// restart, but a later compliance read finds nothing required and no
	// restart pending. The read's time is the evidence of when it was
	// compliant at the latest.
	if m := d.Manual; d.Kind == KindManualReboot && m != nil && m.Required == 0 && !m.RebootPending &&
		(restart != nil || success > 0) && m.ObservedAt.After(lastObserve) {
		out, where := PatchedInWindow, "inside"
		if !inside(m.ObservedAt, d.WindowStart, d.WindowEnd) {
			out, where = PatchedOutsideWindow, "outside"
		}
		return Result{Outcome: out, StatusAt: m.ObservedAt, StatusType: StatusSuccess, Source: SourceCompliance, EvidenceAt: m.ObservedAt,
			Evidence: fmt.Sprintf("restarted by its owner: no update required and no restart pending at %s, %s the window %s",
				stamp(m.ObservedAt), where, windowText(d.WindowStart, d.WindowEnd))}
	}
	if restart != nil {
		return pendingReboot(d, *restart)
	}
	if d.Manual != nil && d.Manual.RebootPending && success > 0 {
		return pendingReboot(d, latest)
	}
	if d.Client != nil && !d.Client.Healthy() {
		return Result{Outcome: ClientInactive, Source: SourceClient, EvidenceAt: d.Client.ObservedAt,
			Evidence: clientText(*d.Client)}
	}
	closed := !d.WindowEnd.IsZero() && !now.Before(d.WindowEnd)
	if !d.FinalRead || !closed {
		return Result{Outcome: Pending, EvidenceAt: lastObserve, Source: sourceIf(lastObserve, SourceStatus),
			Evidence: pendingText(d, now)}
	}
	types := make([]string, 0, len(d.Statuses))
	for _, s := range d.Statuses {
		types = append(types, statusName(s.Type))
	}
	if len(types) == 0 {
		types = append(types, "no row")
	}
	return Result{Outcome: NotReported, Source: sourceIf(lastObserve, SourceStatus), EvidenceAt: lastObserve,
		Evidence: fmt.Sprintf("no success or error by the window's end (%s): SCCM status %s",
			stamp(d.WindowEnd), strings.Join(types, ", "))}
}

func pendingReboot(d Device, s Status) Result {
	r := Result{Outcome: PendingReboot, StatusAt: s.At, StatusType: s.Type, Source: SourceStatus, EvidenceAt: s.ObservedAt}
	if s.EnforcementMessage == EnforcementPendingRestart {
		r.Evidence = fmt.Sprintf("SCCM StatusType 2, LastEnforcementMessageID 9 (pending system restart) at %s in %s", stamp(s.At), s.Deployment)
		return r
	}
	r.Source, r.EvidenceAt = SourceClient, d.Manual.ObservedAt
	r.Evidence = fmt.Sprintf("installed (StatusType 1 at %s); ClientState reports a pending restart", stamp(s.At))
	return r
}

// classifyManual judges a manual_patch device by the compliance of the
// change's update groups: it gets no deployment, so its status rows (if any
// other deployment reaches it) do not count.
func classifyManual(d Device, now time.Time) Result {
	if d.Manual != nil {
		m := *d.Manual
		switch {
		case m.Required == 0 && !m.RebootPending:
			return Result{Outcome: ManualCompliant, StatusAt: m.ObservedAt, Source: SourceCompliance, EvidenceAt: m.ObservedAt,
				Evidence: "no update of the change's update groups required (SMS_UpdateComplianceStatus)"}
		case m.Required == 0:
			return Result{Outcome: PendingReboot, StatusAt: m.ObservedAt, Source: SourceClient, EvidenceAt: m.ObservedAt,
				Evidence: "updates installed; ClientState reports a pending restart"}
		}
	}
	if d.Client != nil && !d.Client.Healthy() {
		return Result{Outcome: ClientInactive, Source: SourceClient, EvidenceAt: d.Client.ObservedAt, Evidence: clientText(*d.Client)}
	}
	// Not compliant, or not read: pending until the owner's window has
	// passed, then non-compliant (with evidence) or not reported (without).
	due := d.WindowEnd
	if due.IsZero() {
		due = d.Deadline
	}
	if due.IsZero() || now.Before(due) {
		r := Result{Outcome: Pending, Evidence: pendingText(d, now)}
		if d.Manual != nil {
			r.Source, r.EvidenceAt = SourceCompliance, d.Manual.ObservedAt
			r.Evidence = fmt.Sprintf("%d update(s) of the change's update groups still required; %s", d.Manual.Required, r.Evidence)
		}
		return r
	}
	if d.Manual == nil {
		return Result{Outcome: NotReported, Evidence: "no compliance read of the device since its window ended at " + stamp(due)}
	}
	return Result{Outcome: ManualNoncompliant, Source: SourceCompliance, EvidenceAt: d.Manual.ObservedAt,
		Evidence: fmt.Sprintf("%d update(s) of the change's update groups still required (SMS_UpdateComplianceStatus Status 2)", d.Manual.Required)}
}

// inside reports whether t is in [start, end). Without a window, nothing is.
func inside(t, start, end time.Time) bool {
	if start.IsZero() || end.IsZero() {
		return false
	}
	return !t.Before(start) && t.Before(end)
}

func sourceIf(t time.Time, s string) string {
	if t.IsZero() {
		return ""
	}
	return s
}

func pendingText(d Device, now time.Time) string {
	switch {
	case d.WindowStart.IsZero():
		return "no window placed in the change"
	case now.Before(d.WindowStart):
		return "window opens at " + stamp(d.WindowStart)
	case now.Before(d.WindowEnd):
		return "window open until " + stamp(d.WindowEnd)
	}
	return "window closed at " + stamp(d.WindowEnd) + "; its final status read is due"
}

func clientText(c Client) string {
	switch {
	case !c.Installed:
		return "no SCCM client (IsClient false) before the window"
	case c.LastPolicyRequest.IsZero():
		return "SCCM client inactive (ClientActiveStatus 0), no policy request ever"
	}
	return "SCCM client inactive (ClientActiveStatus 0), last policy request " + stamp(c.LastPolicyRequest)
}

func windowText(start, end time.Time) string {
	if start.IsZero() {
		return "(none placed)"
	}
	return "[" + stamp(start) + ", " + stamp(end) + ")"
}

func statusName(t int) string {
	switch t {
	case StatusSuccess:
		return "1 success"
	case StatusInProgress:
		return "2 in progress"
	case StatusError:
		return "5 error"
	}
	return "4 unknown"
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}
