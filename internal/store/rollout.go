package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Hold kinds (rollout_holds.kind).
const (
	HoldBudget = "budget"
	HoldTier   = "tier"
	HoldPause  = "pause"
)

// Hold is one hold of a change's rollout, and its release.
type Hold struct {
	ID            int64      `json:"id"`
	ChangeNumber  string     `json:"-"`
	Kind          string     `json:"kind"`
	Scope         string     `json:"scope,omitempty"` // empty: the whole change; else the window, schedule@start
	Reason        string     `json:"reason"`
	FailureID     *int64     `json:"-"`
	HeldAt        time.Time  `json:"held_at"`
	ReleasedAt    *time.Time `json:"released_at,omitempty"`
	ReleaseReason string     `json:"release_reason,omitempty"`
	ReleasedBy    string     `json:"released_by,omitempty"`
}

// Active reports whether the hold is in force.
func (h Hold) Active() bool { return h.ReleasedAt == nil }

func queryHolds(ctx context.Context, db DBTX, where string, args ...any) ([]Hold, error) {
	rows, err := db.Query(ctx, `SELECT id, change_number, kind, scope, reason, failure_id, held_at, released_at,
			coalesce(release_reason, ''), coalesce(released_by, '')
		FROM rollout_holds `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("store: holds: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Hold])
	if err != nil {
		return nil, fmt.Errorf("store: holds: %w", err)
	}
	return out, nil
}

// ChangeHolds returns every hold of a change, released ones included,
// oldest first: the change's rollout history.
func ChangeHolds(ctx context.Context, db DBTX, number string) ([]Hold, error) {
	return queryHolds(ctx, db, `WHERE change_number = $1 ORDER BY held_at, id`, number)
}

// ActiveHolds returns the holds in force on a change, oldest first.
func ActiveHolds(ctx context.Context, db DBTX, number string) ([]Hold, error) {
	return queryHolds(ctx, db, `WHERE change_number = $1 AND released_at IS NULL ORDER BY held_at, id`, number)
}

// InsertHold records a hold unless one of its kind and scope is in force;
// it reports whether it is new. Call it under the change's lock.
func InsertHold(ctx context.Context, tx pgx.Tx, h Hold) (int64, bool, error) {
	var id int64
	err := tx.QueryRow(ctx, `INSERT INTO rollout_holds (change_number, kind, scope, reason, failure_id, held_at)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (change_number, kind, scope) WHERE released_at IS NULL DO NOTHING RETURNING id`,
		h.ChangeNumber, h.Kind, h.Scope, h.Reason, h.FailureID, h.HeldAt).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("store: hold %s %s: %w", h.ChangeNumber, h.Kind, err)
	}
	return id, true, nil
}

// SetHoldFailure links a budget hold to the failure that reports it.
func SetHoldFailure(ctx context.Context, tx pgx.Tx, holdID, failureID int64) error {
	if _, err := tx.Exec(ctx, `UPDATE rollout_holds SET failure_id = $2 WHERE id = $1`, holdID, failureID); err != nil {
		return fmt.Errorf("store: hold %d: %w", holdID, err)
	}
	return nil
}

// ReleaseHolds releases the holds in force on a change of the given kinds
// (none: every kind) and returns them.
func ReleaseHolds(ctx context.Context, tx pgx.Tx, number string, kinds []string, reason, by string, at time.Time) ([]Hold, error) {
	rows, err := tx.Query(ctx, `UPDATE rollout_holds SET released_at = $3, release_reason = $4, released_by = $5
		WHERE change_number = $1 AND released_at IS NULL AND (coalesce(cardinality($2::text[]), 0) = 0 OR kind = ANY($2))
		RETURNING id, change_number, kind, scope, reason, failure_id, held_at, released_at,
			coalesce(release_reason, ''), coalesce(released_by, '')`, number, kinds, at, reason, by)
	if err != nil {
		return nil, fmt.Errorf("store: release holds of %s: %w", number, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Hold])
	if err != nil {
		return nil, fmt.Errorf("store: release holds of %s: %w", number, err)
	}
	return out, nil
}

// BudgetFailure is a device whose failure counts against the error budget.
type BudgetFailure struct {
	Device      string
	Kind        string // FailureError or FailureNoStatus
	ErrorCode   *int64
	Schedule    string
	WindowStart time.Time
	Service     string
	Tier        string
}

// BudgetCounts returns what the error budget of a change is judged on: the
// failures of its closed windows and the number of devices in them.
//
// A closed window is a deployment that closed at its window's end (one
// closed early by a cancellation or re-plan says nothing about the patch). Its devices are those SCCM reported for
// it; its failures are the change's device failures (an error, or no
// status by the end: the ledger's failed, pending_reboot and not_reported)
// first seen in it that have not recovered since. Devices whose client was
// inactive before the window would not count either; autopatch does not
// read client health yet, so none is known here.
//
// This is the one place the budget's inputs are read: when the compliance
// ledger lands, it reads the ledger's outcomes instead (rollout.Counts).
func BudgetCounts(ctx context.Context, db DBTX, number string) (failures []BudgetFailure, devices int, err error) {
	if failures, err = deviceFailures(ctx, db, number, closedWindow); err != nil {
		return nil, 0, err
	}
	err = db.QueryRow(ctx, `SELECT count(DISTINCT lower(r.device_name))
		FROM device_results r JOIN deployments d ON d.id = r.deployment_id
		WHERE d.change_number = $1 AND `+closedWindow, number).Scan(&devices)
	if err != nil {
		return nil, 0, fmt.Errorf("store: budget of %s: %w", number, err)
	}
	return failures, devices, nil
}

// closedWindow selects the deployments d whose window closed at its end.
// Their final status read is not waited for: the failures seen while the
// window was open count as soon as it closes, so the window keeper's own
// check holds the next window even when that read cannot reach SCCM; the
// devices silent at the end count once it has run.
const closedWindow = `d.state = 'closed' AND d.close_at >= d.window_end`

// FailedDevices returns the change's device failures that have not
// recovered, in any window, open or closed: tier gating acts on a backend
// failure as soon as it is known.
func FailedDevices(ctx context.Context, db DBTX, number string) ([]BudgetFailure, error) {
	return deviceFailures(ctx, db, number, "true")
}

func deviceFailures(ctx context.Context, db DBTX, number, where string) ([]BudgetFailure, error) {
	rows, err := db.Query(ctx, `SELECT f.subject, f.kind, f.error_code, d.schedule_name, d.window_start,
			coalesce(dev.service, ''), coalesce(dev.tier, '')
		FROM failures f JOIN deployments d ON d.id = f.deployment_id
		LEFT JOIN devices dev ON lower(dev.name) = lower(f.subject)
		WHERE f.change_number = $1 AND f.kind IN ('error', 'no_status') AND f.recovered_at IS NULL AND `+where+`
		ORDER BY d.window_start, lower(f.subject)`, number)
	if err != nil {
		return nil, fmt.Errorf("store: failures of %s: %w", number, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[BudgetFailure])
	if err != nil {
		return nil, fmt.Errorf("store: failures of %s: %w", number, err)
	}
	return out, nil
}

// AckBudget records the failures and devices counted so far as accepted
// (a resume): the budget applies to what comes after.
func AckBudget(ctx context.Context, tx pgx.Tx, number string, failures, devices int) error {
	if _, err := tx.Exec(ctx, `UPDATE changes SET budget_failures_acked = $2, budget_devices_acked = $3, updated_at = now()
		WHERE number = $1`, number, failures, devices); err != nil {
		return fmt.Errorf("store: change %s: %w", number, err)
	}
	return nil
}

// WindowMember is a managed device of a schedule that has a window of the
// change not yet open (held or waiting), with its service and tier.
type WindowMember struct {
	Device      string
	Service     string
	Tier        string
	Schedule    string
	WindowStart time.Time
}

// WaitingMembers returns the members (by autopatch's device records) of
// the change's windows that have not opened, for tier gating.
func WaitingMembers(ctx context.Context, db DBTX, number string) ([]WindowMember, error) {
	rows, err := db.Query(ctx, `SELECT DISTINCT dev.name, coalesce(dev.service, ''), coalesce(dev.tier, ''), d.schedule_name, d.window_start
		FROM deployments d JOIN devices dev ON dev.schedule_name = d.schedule_name
		WHERE d.change_number = $1 AND d.state IN ('planned', 'created', 'held')
		ORDER BY d.window_start, d.schedule_name, dev.name`, number)
	if err != nil {
		return nil, fmt.Errorf("store: members of %s: %w", number, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[WindowMember])
	if err != nil {
		return nil, fmt.Errorf("store: members of %s: %w", number, err)
	}
	return out, nil
}

// ErrNotHeld: a resume of a change that has no hold in force.
var ErrNotHeld = errors.New("store: the change is not held")

// Resume releases every hold in force on a change, under its lock, and
// accepts the failures counted so far against its budget. It returns the
// released holds, ErrNotFound for an unknown change and ErrNotHeld when
// nothing holds it.
func Resume(ctx context.Context, tx pgx.Tx, number, reason, by string, at time.Time) ([]Hold, error) {
	if _, err := LockChange(ctx, tx, number); err != nil {
		return nil, err
	}
	active, err := ActiveHolds(ctx, tx, number)
	if err != nil {
		return nil, err
	}
	if len(active) == 0 {
		return nil, fmt.Errorf("store: resume %s: %w", number, ErrNotHeld)
	}
	failures, devices, err := BudgetCounts(ctx, tx, number)
	if err != nil {
		return nil, err
	}
	if err := AckBudget(ctx, tx, number, len(failures), devices); err != nil {
		return nil, err
	}
	return ReleaseHolds(ctx, tx, number, nil, reason, by, at)
}

// ResumedScopes returns the windows whose tier hold a person released: the
// failures that gated them were accepted, so they do not gate again.
func ResumedScopes(ctx context.Context, db DBTX, number string) (map[string]bool, error) {
	rows, err := db.Query(ctx, `SELECT DISTINCT scope FROM rollout_holds
		WHERE change_number = $1 AND kind = 'tier' AND released_at IS NOT NULL AND released_by <> 'autopatch'`, number)
	if err != nil {
		return nil, fmt.Errorf("store: resumed windows of %s: %w", number, err)
	}
	scopes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: resumed windows of %s: %w", number, err)
	}
	out := map[string]bool{}
	for _, s := range scopes {
		out[s] = true
	}
	return out, nil
}

// UnresolvedHalts returns the failures of released budget holds (halts)
// not yet marked recovered: their alert and incident close on resume.
func UnresolvedHalts(ctx context.Context, db DBTX, number string) ([]int64, error) {
	rows, err := db.Query(ctx, `SELECT f.id FROM rollout_holds h JOIN failures f ON f.id = h.failure_id
		WHERE h.change_number = $1 AND h.released_at IS NOT NULL AND f.recovered_at IS NULL ORDER BY f.id`, number)
	if err != nil {
		return nil, fmt.Errorf("store: halts of %s: %w", number, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("store: halts of %s: %w", number, err)
	}
	return ids, nil
}
