package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Statuses of a change in autopatch (changes.status).
const (
	// ChangeReceived: known, not (yet) approved; nothing planned.
	ChangeReceived = "received"
	// ChangePlanned: a plan was asked for the stored dates, update groups
	// and schedules (the plans table says whether it was computed).
	ChangePlanned = "planned"
	// ChangeCanceled: canceled, or its approval withdrawn; unwound if it
	// had been planned.
	ChangeCanceled = "canceled"
)

// ChangeAction is what a new version of a change asks autopatch to do.
type ChangeAction string

// Actions decided by DecideChange.
const (
	ActionNone   ChangeAction = ""
	ActionPlan   ChangeAction = "plan"
	ActionUnwind ChangeAction = "unwind"
)

// Change is a change request as ServiceNow describes it in a webhook.
type Change struct {
	Number           string
	SysID            string
	State            string // ServiceNow's state as a word: new, assess, …, canceled
	Approval         string // approved, requested, rejected, not requested, …
	Start, End       time.Time
	UpdateGroups     []string
	Schedules        []string // nil: every automatic and manual_reboot schedule
	ShortDescription string
	SysUpdatedOn     time.Time
	// Classification is normal, critical or emergency (docs/architecture.md §9.2);
	// "" is normal.
	Classification string
	// Deadline is the deadline the change gives; nil: its classification's
	// default (internal/deadline).
	Deadline *time.Time
	// OnHold is ServiceNow's "On hold": the change's windows not yet open
	// are held (docs/architecture.md §9.3).
	OnHold bool
	// ErrorBudget is the change's own budget (rollout.ParseBudget); empty
	// means AUTOPATCH_ERROR_BUDGET.
	ErrorBudget string
}

// ChangeRow is a stored change.
type ChangeRow struct {
	Change
	Status   string
	Revision int64 // bumped for every plan or unwind asked for
	// FailuresAcked and DevicesAcked are the failures and devices counted
	// against the budget when the change was last resumed: the budget
	// applies to what came after.
	FailuresAcked, DevicesAcked int
	CreatedAt                   time.Time
	UpdatedAt                   time.Time
}

// Approved reports whether c may be patched: approved, and neither canceled
// nor closed.
func (c Change) Approved() bool {
	return strings.EqualFold(c.Approval, "approved") && !c.canceled() && !strings.EqualFold(c.State, "closed")
}

func (c Change) canceled() bool {
	return strings.EqualFold(c.State, "canceled") || strings.EqualFold(c.State, "cancelled")
}

// Decision is what a version of a change asks for (DecideChange).
type Decision struct {
	Action ChangeAction
	// Stale is true when a newer version of the change was applied
	// before: nothing was changed.
	Stale    bool
	Status   string // the change's status afterwards
	Revision int64  // the change's revision afterwards
}

// DecideChange decides what the version next of a change asks for, given
// the stored change (nil when it is new):
//
//   - approved (and not canceled or closed): plan, unless it is already
//     planned with the same dates, update groups and schedules;
//   - planned, then canceled or its approval withdrawn: unwind;
//   - anything else (not approved yet, closed, edits that do not matter):
//     nothing.
func DecideChange(prev *ChangeRow, next Change) Decision {
	if prev != nil && next.SysUpdatedOn.Before(prev.SysUpdatedOn) {
		return Decision{Stale: true, Status: prev.Status, Revision: prev.Revision}
	}
	status, rev := ChangeReceived, int64(0)
	if prev != nil {
		status, rev = prev.Status, prev.Revision
	}
	d := Decision{Status: status, Revision: rev}
	switch {
	case next.Approved():
		if prev == nil || prev.Status != ChangePlanned || planInputsDiffer(prev.Change, next) {
			d.Action, d.Status = ActionPlan, ChangePlanned
		}
	case status == ChangePlanned:
		// Not approved any more: canceled, approval withdrawn or rejected.
		// A planned change that is closed keeps its plan: closing is how a
		// change ends after its windows, not a withdrawal.
		if next.canceled() || !strings.EqualFold(next.Approval, "approved") {
			d.Action, d.Status = ActionUnwind, ChangeCanceled
		}
	case next.canceled():
		d.Status = ChangeCanceled
	}
	if d.Action != ActionNone {
		d.Revision++
	}
	return d
}

// planInputsDiffer reports whether the inputs of a plan changed: the dates,
// the update groups, the schedules in scope, or the classification and
// deadline (the plan note shows the deadline; an emergency's windows depend
// on it) (as sets; SCCM names are not
// case-sensitive, but a change of case is a change of what SCCM is asked).
func planInputsDiffer(a, b Change) bool {
	return !a.Start.Equal(b.Start) || !a.End.Equal(b.End) ||
		!sameSet(a.UpdateGroups, b.UpdateGroups) ||
		(a.Schedules == nil) != (b.Schedules == nil) || !sameSet(a.Schedules, b.Schedules) ||
		classOf(a) != classOf(b) || !sameTime(a.Deadline, b.Deadline)
}

// classOf is c's classification, "" read as normal: a change stored before
// classifications existed is normal.
func classOf(c Change) string {
	if c.Classification == "" {
		return "normal"
	}
	return c.Classification
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}

// MismatchError says a change's number and sys_id disagree with a stored
// change: ServiceNow never renumbers a record, so the delivery is wrong.
type MismatchError struct {
	Field string // "number" or "sys_id": the field that disagrees
	Known string // the stored value
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("store: change %s does not match the stored change (%s)", e.Field, e.Known)
}

// MatchChange finds c among stored changes: the one with its number and
// sys_id, nil when it is new, or a *MismatchError when a stored change has
// its number with another sys_id, or its sys_id with another number.
func MatchChange(stored []ChangeRow, c Change) (*ChangeRow, error) {
	var prev *ChangeRow
	for i := range stored {
		switch s := &stored[i]; {
		case s.Number == c.Number && s.SysID == c.SysID:
			prev = s
		case s.Number == c.Number:
			return nil, &MismatchError{Field: "sys_id", Known: s.SysID}
		case s.SysID == c.SysID:
			return nil, &MismatchError{Field: "number", Known: s.Number}
		}
	}
	return prev, nil
}

// GetChange reads a stored change.
func GetChange(ctx context.Context, db DBTX, number string) (ChangeRow, error) {
	rows, err := db.Query(ctx, `SELECT `+changeColumns+` FROM changes WHERE number = $1`, number)
	if err != nil {
		return ChangeRow{}, fmt.Errorf("store: change %s: %w", number, err)
	}
	c, err := pgx.CollectExactlyOneRow(rows, scanChange)
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return ChangeRow{}, fmt.Errorf("store: change %s: %w", number, ErrNotFound)
		}
		return ChangeRow{}, fmt.Errorf("store: change %s: %w", number, err)
	}
	return c, nil
}

const changeColumns = `number, sys_id, state, approval, start_at, end_at, update_groups, schedules,
	short_description, sys_updated_on, status, revision, created_at, updated_at,
	on_hold, coalesce(error_budget, ''), budget_failures_acked, budget_devices_acked, classification, deadline`

func scanChange(row pgx.CollectableRow) (ChangeRow, error) {
	var c ChangeRow
	var updated *time.Time
	err := row.Scan(&c.Number, &c.SysID, &c.State, &c.Approval, &c.Start, &c.End, &c.UpdateGroups, &c.Schedules,
		&c.ShortDescription, &updated, &c.Status, &c.Revision, &c.CreatedAt, &c.UpdatedAt,
		&c.OnHold, &c.ErrorBudget, &c.FailuresAcked, &c.DevicesAcked, &c.Classification, &c.Deadline)
	if updated != nil {
		c.SysUpdatedOn = *updated
	}
	return c, err
}
