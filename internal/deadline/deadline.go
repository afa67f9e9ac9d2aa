// Package deadline decides when a change's devices must be patched by
// (docs/architecture.md §9.2): from the change's classification and dates, or
// the deadline the change itself gives, and how far an approved deferral
// may move it. It does no I/O: the webhooks, the ledger and the plan note
// all ask it, so they agree.
//
// The numbers are Microsoft IT's ("Server Patching"): a server is patched
// within 24 hours of an emergency patch and 14 days of a critical one; the
// others by the cycle's normal deadline; a deferral on a business case is
// at most 7 days.
package deadline

import (
	"fmt"
	"time"

	"github.com/autopatch/autopatch/internal/calendar"
)

// Classification is how urgent a change's updates are.
type Classification string

// The classifications of a change (patching.classification).
const (
	Normal    Classification = "normal"
	Critical  Classification = "critical"
	Emergency Classification = "emergency"
)

// Classifications lists them, least urgent first.
var Classifications = []Classification{Normal, Critical, Emergency}

// Valid reports whether c is one of Classifications.
func (c Classification) Valid() bool {
	for _, x := range Classifications {
		if c == x {
			return true
		}
	}
	return false
}

// Defaults of Policy (AUTOPATCH_DEADLINE_NORMAL, _CRITICAL, _EMERGENCY).
const (
	DefaultNormal    = 30 * 24 * time.Hour
	DefaultCritical  = 14 * 24 * time.Hour
	DefaultEmergency = 24 * time.Hour
	// MaxDeferral is how far past a device's deadline a deferral may go.
	MaxDeferral = 7 * 24 * time.Hour
)

// Policy gives the deadline of each classification when a change names
// none. The zero value is the defaults.
type Policy struct {
	// Normal is after the cycle's Patch Tuesday (00:00 UTC).
	Normal time.Duration
	// Critical is after the cycle's Patch Tuesday (00:00 UTC).
	Critical time.Duration
	// Emergency is after the change's start.
	Emergency time.Duration
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// PatchTuesday is the Patch Tuesday (00:00 UTC) of the cycle of a change
// starting at start: the UTC month of its start.
func PatchTuesday(start time.Time) time.Time {
	m := calendar.MonthOf(start.UTC())
	return time.Date(m.Year, m.Month, calendar.PatchTuesday(m.Year, m.Month), 0, 0, 0, 0, time.UTC)
}

// Of is the deadline of a change of classification class starting at start;
// explicit, when not nil, is the deadline the change gives and wins. An
// unknown or empty classification is normal.
func (p Policy) Of(class Classification, start time.Time, explicit *time.Time) time.Time {
	if explicit != nil {
		return explicit.UTC()
	}
	switch class {
	case Emergency:
		return start.UTC().Add(or(p.Emergency, DefaultEmergency))
	case Critical:
		return PatchTuesday(start).Add(or(p.Critical, DefaultCritical))
	}
	return PatchTuesday(start).Add(or(p.Normal, DefaultNormal))
}

// DeferralAllowed reports whether a deferral to until is within MaxDeferral
// of deadline.
func DeferralAllowed(deadline, until time.Time) bool {
	return !until.After(deadline.Add(MaxDeferral))
}

// Effective is a device's deadline once its deferral (nil: none) is taken
// into account: the later of the two.
func Effective(deadline time.Time, deferredUntil *time.Time) time.Time {
	if deferredUntil != nil && deferredUntil.After(deadline) {
		return deferredUntil.UTC()
	}
	return deadline
}

// Why says in words where Of's deadline comes from, for the plan note.
func (p Policy) Why(class Classification, start time.Time, explicit *time.Time) string {
	if !class.Valid() {
		class = Normal
	}
	switch {
	case explicit != nil:
		return fmt.Sprintf("%s change, deadline given by the change", class)
	case class == Emergency:
		return fmt.Sprintf("emergency change: its start + %s", human(or(p.Emergency, DefaultEmergency)))
	case class == Critical:
		return fmt.Sprintf("critical change: Patch Tuesday %s + %s", PatchTuesday(start).Format("2006-01-02"), human(or(p.Critical, DefaultCritical)))
	}
	return fmt.Sprintf("normal change: Patch Tuesday %s + %s", PatchTuesday(start).Format("2006-01-02"), human(or(p.Normal, DefaultNormal)))
}

// human writes whole days as days and anything else as a duration.
func human(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d%day == 0 && d/day == 1:
		return "1 day"
	case d%day == 0:
		return fmt.Sprintf("%d days", d/day)
	}
	return d.String()
}
