// Package rollout decides when a change's rollout must stop (docs/architecture.md
// §9.3): its error budget, and tier gating between the windows of one
// change. Everything here is a pure function of what the jobs read from the
// database; the jobs record the holds and act on them.
package rollout

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// DefaultBudget is the error budget when neither AUTOPATCH_ERROR_BUDGET nor
// the change sets one: 10% of the devices of the windows closed so far.
var DefaultBudget = Budget{share: 1000, isShare: true}

// Budget is how many failures a change's closed windows may have before the
// rest of the change is held: a count, or a share of the devices of those
// windows. The zero value is a count of 0 (the first failure holds).
type Budget struct {
	count   int
	share   int // basis points (hundredths of a percent): 10% = 1000
	isShare bool
}

// maxCount bounds a count so that arithmetic on it never overflows; no
// estate has a billion devices.
const maxCount = 1_000_000_000

// ParseBudget reads a budget as AUTOPATCH_ERROR_BUDGET writes it: a count
// of failures ("5", a whole number, at least 0) or a share of the devices
// ("10%", "2.5%": from 0% to 100%, at most two decimals). Anything else —
// a negative count, a share above 100%, spaces, signs, exponents — is an
// error that says what is wanted.
func ParseBudget(s string) (Budget, error) {
	if num, ok := strings.CutSuffix(s, "%"); ok {
		bp, err := parseBasisPoints(num)
		if err != nil || bp > 10000 {
			return Budget{}, fmt.Errorf("%q is not a share of devices: want a percentage from 0%% to 100%% with at most two decimals, like 10%% or 2.5%%", s)
		}
		return Budget{share: bp, isShare: true}, nil
	}
	n, err := parseWhole(s)
	if err != nil || n > maxCount {
		return Budget{}, fmt.Errorf("%q is not a budget: want a whole number of failures (0 or more, like 5) or a share of devices (like 10%%)", s)
	}
	return Budget{count: n}, nil
}

// Count is a budget of n failures; n must be at least 0.
func Count(n int) (Budget, error) {
	if n < 0 || n > maxCount {
		return Budget{}, fmt.Errorf("%d is not a budget: want a whole number of failures from 0 to %d", n, maxCount)
	}
	return Budget{count: n}, nil
}

// parseWhole reads decimal digits only: no sign, no spaces, no exponent.
func parseWhole(s string) (int, error) {
	if s == "" || len(s) > 10 {
		return 0, errors.New("not a whole number")
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, errors.New("not a whole number")
		}
	}
	return strconv.Atoi(s)
}

// parseBasisPoints reads "10", "2.5" or "0.25" as hundredths of a percent.
func parseBasisPoints(s string) (int, error) {
	whole, frac, hasFrac := strings.Cut(s, ".")
	w, err := parseWhole(whole)
	if err != nil || len(whole) > 3 {
		return 0, errors.New("not a percentage")
	}
	bp := w * 100
	if hasFrac {
		if frac == "" || len(frac) > 2 {
			return 0, errors.New("not a percentage")
		}
		f, err := parseWhole(frac)
		if err != nil {
			return 0, errors.New("not a percentage")
		}
		if len(frac) == 1 {
			f *= 10
		}
		bp += f
	}
	return bp, nil
}

// IsShare reports whether b is a share of devices rather than a count.
func (b Budget) IsShare() bool { return b.isShare }

// String writes b as ParseBudget reads it.
func (b Budget) String() string {
	if !b.isShare {
		return strconv.Itoa(b.count)
	}
	s := strconv.Itoa(b.share / 100)
	if f := b.share % 100; f != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%02d", f), "0")
	}
	return s + "%"
}

// Exceeded reports whether failures among devices exceed b. Exact, with no
// rounding: a count of N holds at failure N+1 and not at N; a share holds
// when failures > share × devices, so 10% of 30 devices (3) holds at the
// 4th failure and 10% of 25 (2.5) at the 3rd.
func (b Budget) Exceeded(failures, devices int) bool {
	if failures <= 0 {
		return false
	}
	if !b.isShare {
		return failures > b.count
	}
	return int64(failures)*10000 > int64(b.share)*int64(max(devices, 0))
}

// Describe says in words what b allows among devices, for a work note:
// "5 failures" or "10% of 30 devices = 3 failures".
func (b Budget) Describe(devices int) string {
	if !b.isShare {
		return plural(b.count, "failure")
	}
	allowed := float64(b.share) * float64(devices) / 10000
	return fmt.Sprintf("%s of %s = %s", b, plural(devices, "device"), strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", allowed), "0"), ".")+" failures")
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// Outcomes of a device in a closed window, as the compliance ledger names
// them (docs/architecture.md §9.1).
const (
	OutcomeFailed         = "failed"
	OutcomeNotReported    = "not_reported"
	OutcomePendingReboot  = "pending_reboot"
	OutcomeClientInactive = "client_inactive"
)

// Counts reports whether a device's outcome in a closed window counts
// against the budget: failed, not reported or pending a reboot after the
// window. A client_inactive device was known not to patch before the
// window, so it says nothing about the patch and does not count; neither
// does success.
func Counts(outcome string) bool {
	switch outcome {
	case OutcomeFailed, OutcomeNotReported, OutcomePendingReboot:
		return true
	}
	return false
}

// FromJSON reads a change's patching.error_budget as the webhook carries
// it: a JSON number is a count (12), a JSON string a share ("12%"). A
// string without % ("12") is refused rather than guessed: ServiceNow sends
// most fields as strings, and a share whose % was lost on the way must not
// silently become a count.
func FromJSON(raw []byte) (Budget, error) {
	s := strings.TrimSpace(string(raw))
	if strings.HasPrefix(s, `"`) {
		var v string
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return Budget{}, errors.New("must be a whole number of failures (like 5) or a share of devices as a string (like \"10%\")")
		}
		if !strings.HasSuffix(v, "%") {
			return Budget{}, fmt.Errorf("%q is a string without %%: a count is a JSON number (like 5), a share a string with %% (like \"10%%\")", v)
		}
		return ParseBudget(v)
	}
	b, err := ParseBudget(s)
	if err != nil || b.isShare {
		return Budget{}, fmt.Errorf("%s is not a budget: want a whole number of failures (0 or more, like 5) or a share of devices as a string (like \"10%%\")", s)
	}
	return b, nil
}
