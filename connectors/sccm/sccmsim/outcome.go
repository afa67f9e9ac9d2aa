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
)

// Outcome is a device's scripted behaviour. Parse one with ParseOutcome.
type Outcome struct {
	Kind OutcomeKind
	// Code is the HRESULT reported for OutcomeError and OutcomeErrorThenSuccess.
	Code uint32
}

// ParseOutcome reads the seed's outcome strings: "" or "success",
// "error 0x80240022", "silent", "error 0x8024402C then success", "in progress".
func ParseOutcome(s string) (Outcome, error) {
	f := strings.Fields(strings.ToLower(s))
	switch {
	case len(f) == 0, len(f) == 1 && f[0] == "success":
		return Outcome{Kind: OutcomeSuccess}, nil
	case len(f) == 1 && f[0] == "silent":
		return Outcome{Kind: OutcomeSilent}, nil
	case len(f) == 2 && f[0] == "in" && f[1] == "progress", len(f) == 1 && f[0] == "in_progress":
		return Outcome{Kind: OutcomeInProgress}, nil
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
	return Outcome{}, fmt.Errorf("sccmsim: outcome %q: want success, silent, in progress, \"error 0x…\" or \"error 0x… then success\"", s)
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
	}
	return "success"
}

// status is what a device reports on its n-th status read (n ≥ 1) of a
// deployment it was exposed to; ok is false when it reports nothing.
func (o Outcome) status(n int) (statusType int, code uint32, ok bool) {
	switch o.Kind {
	case OutcomeError:
		return statusError, o.Code, true
	case OutcomeSilent:
		return 0, 0, false
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
