package sccmsim

import (
	"fmt"
	"strconv"
	"strings"
)

// OutcomeKind is what a device does when a deployment reaches it.
type OutcomeKind int

// The outcomes a seed can give a device.
const (
	// OutcomeSuccess installs and reports success.
	OutcomeSuccess OutcomeKind = iota
	// OutcomeError reports an error with Outcome.Code.
	OutcomeError
	// OutcomeSilent never reports: its status stays unknown.
	OutcomeSilent
	// OutcomeErrorThenSuccess reports an error with Outcome.Code on the first
	// status read of a deployment and success from the second on (a transient
	// failure such as 0x8024402C, "proxy/name resolution", fixed by a retry).
	OutcomeErrorThenSuccess
	// OutcomeInProgress reports "in progress" forever (an installation that
	// hangs).
	OutcomeInProgress
	// OutcomeLateSuccess is an install still running when the window
	// closed: "in progress" while the deployment is enabled and for the
	// first Outcome.After-1 reads after it is disabled, success (with the
	// status time of the read that first sees it) from then on. Disabling a
	// deployment does not stop an install that has started.
	OutcomeLateSuccess
	// OutcomePendingRestart installs and waits for a restart: "in progress"
	// with LastEnforcementMessageID 9 ("pending system restart"), and its
	// updates show as required-pending-restart in a compliance read.
	OutcomePendingRestart
	// OutcomeInactive is a device whose SCCM client is installed but
	// inactive (ClientActiveStatus 0, no policy request for 30 days): it
	// never reports.
	OutcomeInactive
	// OutcomeNoClient is a device without an SCCM client (IsClient false):
	// it never reports.
	OutcomeNoClient
	// OutcomeNoncompliant is a device that still requires the updates of
	// every group in a compliance read (a manual_patch device its owner
	// has not patched); under a deployment it behaves as silent.
	OutcomeNoncompliant
)

// Outcome is a device's scripted behaviour. Parse one with ParseOutcome.
type Outcome struct {
	Kind OutcomeKind
	// Code is the HRESULT reported for OutcomeError and OutcomeErrorThenSuccess.
	Code uint32
	// After is, for OutcomeLateSuccess, the status read after the close
	// that first reports success (1: the first; "success after close 2":
	// the second, so the window's final read still sees it installing).
	After int
}

// ParseOutcome reads the seed's outcome strings: "" or "success",
// "error 0x80240022", "silent", "error 0x8024402C then success", "in progress",
// "success after close", "pending restart", "inactive", "no client",
// "noncompliant". A device that is "success" is also compliant in a
// compliance read (a manual_patch device its owner patched).
func ParseOutcome(s string) (Outcome, error) {
	f := strings.Fields(strings.ToLower(s))
	switch {
	case len(f) == 0, len(f) == 1 && f[0] == "success":
		return Outcome{Kind: OutcomeSuccess}, nil
	case len(f) == 1 && f[0] == "silent":
		return Outcome{Kind: OutcomeSilent}, nil
	case len(f) == 2 && f[0] == "in" && f[1] == "progress", len(f) == 1 && f[0] == "in_progress":
		return Outcome{Kind: OutcomeInProgress}, nil
	case strings.Join(f, " ") == "success after close":
		return Outcome{Kind: OutcomeLateSuccess, After: 1}, nil
	case len(f) == 4 && strings.Join(f[:3], " ") == "success after close":
		n, err := strconv.Atoi(f[3])
		if err != nil || n < 1 {
			return Outcome{}, fmt.Errorf("sccmsim: outcome %q: the read after the close must be a number ≥ 1", s)
		}
		return Outcome{Kind: OutcomeLateSuccess, After: n}, nil
	case strings.Join(f, " ") == "pending restart":
		return Outcome{Kind: OutcomePendingRestart}, nil
	case len(f) == 1 && f[0] == "inactive":
		return Outcome{Kind: OutcomeInactive}, nil
	case strings.Join(f, " ") == "no client":
		return Outcome{Kind: OutcomeNoClient}, nil
	case len(f) == 1 && (f[0] == "noncompliant" || f[0] == "non-compliant"):
		return Outcome{Kind: OutcomeNoncompliant}, nil
	case len(f) == 1 && f[0] == "compliant":
		return Outcome{Kind: OutcomeSuccess}, nil
	case len(f) == 2 && f[0] == "error":
		code, err := parseCode(f[1])
		if err != nil {
			return Outcome{}, fmt.Errorf("sccmsim: outcome %q: %w", s, err)
		}
		return Outcome{Kind: OutcomeError, Code: code}, nil
	case len(f) == 4 && f[0] == "error" && f[2] == "then" && f[3] == "success":
		code, err := parseCode(f[1])
		if err != nil {
			return Outcome{}, fmt.Errorf("sccmsim: outcome %q: %w", s, err)
		}
		return Outcome{Kind: OutcomeErrorThenSuccess, Code: code}, nil
	}
	return Outcome{}, fmt.Errorf("sccmsim: outcome %q: want success, silent, in progress, \"error 0x…\", \"error 0x… then success\", "+
		"\"success after close\", \"pending restart\", inactive, \"no client\", compliant or noncompliant", s)
}

func parseCode(s string) (uint32, error) {
	if !strings.HasPrefix(s, "0x") {
		return 0, fmt.Errorf("error code %q is not hexadecimal (0x…)", s)
	}
	v, err := strconv.ParseUint(s[2:], 16, 32)
	if err != nil {
		return 0, fmt.Errorf("error code %q: %w", s, err)
	}
	if v == 0 {
		return 0, fmt.Errorf("error code %q is zero", s)
	}
	return uint32(v), nil
}

// String formats the outcome as a seed writes it.
func (o Outcome) String() string {
	switch o.Kind {
	case OutcomeError:
		return fmt.Sprintf("error 0x%08X", o.Code)
	case OutcomeSilent:
		return "silent"
	case OutcomeErrorThenSuccess:
		return fmt.Sprintf("error 0x%08X then success", o.Code)
	case OutcomeInProgress:
		return "in progress"
	case OutcomeLateSuccess:
		if o.After > 1 {
			return fmt.Sprintf("success after close %d", o.After)
		}
		return "success after close"
	case OutcomePendingRestart:
		return "pending restart"
	case OutcomeInactive:
		return "inactive"
	case OutcomeNoClient:
		return "no client"
	case OutcomeNoncompliant:
		return "noncompliant"
	}
	return "success"
}

// status is what a device reports on its n-th status read (n ≥ 1) of a
// deployment it was exposed to, enabled telling whether the deployment is
// enabled now and closedReads how many reads (this one included) came
// since it was disabled; ok is false when it reports nothing.
func (o Outcome) status(n int, enabled bool, closedReads int) (statusType int, code uint32, ok bool) {
	switch o.Kind {
	case OutcomeError:
		return statusError, o.Code, true
	case OutcomeSilent, OutcomeInactive, OutcomeNoClient, OutcomeNoncompliant:
		return 0, 0, false
	case OutcomeLateSuccess:
		if enabled || closedReads < max(o.After, 1) {
			return statusInProgress, 0, true
		}
		return statusSuccess, 0, true
	case OutcomePendingRestart:
		return statusInProgress, 0, true
	case OutcomeErrorThenSuccess:
		if n <= 1 {
			return statusError, o.Code, true
		}
		return statusSuccess, 0, true
	case OutcomeInProgress:
		return statusInProgress, 0, true
	}
	return statusSuccess, 0, true
}

// SMS_SUMDeploymentAssetDetails.StatusType values.
const (
	statusSuccess    = 1
	statusInProgress = 2
	statusUnknown    = 4
	statusError      = 5
)

// enforcementPendingRestart is LastEnforcementMessageID "pending system
// restart" (state message topic type 402).
const enforcementPendingRestart = 9

// enforcementMessage is the LastEnforcementMessageID the device reports
// with a status.
func (o Outcome) enforcementMessage(statusType int) int {
	if o.Kind == OutcomePendingRestart && statusType == statusInProgress {
		return enforcementPendingRestart
	}
	return 0
}

// client is the device's SCCM client state: IsClient and ClientActiveStatus.
func (o Outcome) client() (isClient bool, active int) {
	switch o.Kind {
	case OutcomeNoClient:
		return false, 0
	case OutcomeInactive:
		return true, 0
	}
	return true, 1
}

// compliance is the device's standing for groups update groups of one
// update each: updates still required, and whether a restart is pending.
func (o Outcome) compliance(groups int) (required int, restart bool) {
	switch o.Kind {
	case OutcomeSuccess, OutcomeLateSuccess, OutcomeErrorThenSuccess:
		return 0, false
	case OutcomePendingRestart:
		return 0, groups > 0
	}
	return groups, false
}

// statusTexts are the StatusDescription and LastEnforcementMessageDesc the
// console shows for each status type.
func statusTexts(statusType int) (description, message string) {
	switch statusType {
	case statusSuccess:
		return "Compliant", "Successfully installed update(s)"
	case statusInProgress:
		return "Installing update(s)", "Installing update(s)"
	case statusError:
		return "Failed to install update(s)", "Failed to install update(s)"
	}
	return "", ""
}
