package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The list reads behind GET /api/v1/{changes,devices,windows,failures} and
// the console (docs/architecture.md §9.5). Every list is keyset-paginated: the
// caller passes the sort key of the last row it has (After) and gets at most
// Limit rows after it, so a page costs the same on page 1 and page 500 and
// rows inserted meanwhile neither repeat nor vanish.

// ChangeFilter selects changes for ListChanges.
type ChangeFilter struct {
	// Status is received, planned or canceled; empty for any.
	Status string
	// From and To bound the change's start: From ≤ start < To (zero: open).
	From, To time.Time
	// Limit is the page size (≥ 1).
	Limit int
	// After is the last change of the previous page; nil for the first.
	After *ChangeKey
}

// ChangeKey is a change's position in the list: newest start first, then
// number descending.
type ChangeKey struct {
	Start  time.Time `json:"s"`
	Number string    `json:"n"`
}

// ChangeSummary is one row of the changes list, with its progress.
type ChangeSummary struct {
	ChangeRow
	// Windows counts the change's live deployments (not obsolete or
	// deleted) by state.
	WindowsTotal  int
	WindowsOpen   int
	WindowsClosed int
	WindowsMissed int
	// Failures counts the change's failures; FailuresOpen those still open.
	Failures     int
	FailuresOpen int
}

// Key returns the row's position for ChangeFilter.After.
func (c ChangeSummary) Key() ChangeKey { return ChangeKey{Start: c.Start, Number: c.Number} }

// ListChanges returns up to f.Limit changes, newest start first, with their
// window and failure counts.
func ListChanges(ctx context.Context, db DBTX, f ChangeFilter) ([]ChangeSummary, error) {
	var from, to, afterStart *time.Time
	var afterNumber *string
	if !f.From.IsZero() {
		from = &f.From
	}
	if !f.To.IsZero() {
		to = &f.To
	}
	if f.After != nil {
		afterStart, afterNumber = &f.After.Start, &f.After.Number
	}
	var status *string
	if f.Status != "" {
		status = &f.Status
	}
	rows, err := db.Query(ctx, `WITH page AS (
			SELECT `+changeColumns+` FROM changes
			WHERE ($1::text IS NULL OR status = $1)
			  AND ($2::timestamptz IS NULL OR start_at >= $2)
			  AND ($3::timestamptz IS NULL OR start_at < $3)
			  AND ($4::timestamptz IS NULL OR (start_at, number) < ($4, $5::text))
			ORDER BY start_at DESC, number DESC
			LIMIT $6)
		SELECT p.*,
			coalesce(d.total, 0), coalesce(d.open, 0), coalesce(d.closed, 0), coalesce(d.missed, 0),
			coalesce(fl.total, 0), coalesce(fl.open, 0)
		FROM page p
		LEFT JOIN LATERAL (
			SELECT count(*) AS total,
				count(*) FILTER (WHERE state = 'open') AS open,
				count(*) FILTER (WHERE state = 'closed') AS closed,
				count(*) FILTER (WHERE state = 'missed') AS missed
			FROM deployments WHERE change_number = p.number AND state NOT IN ('obsolete', 'deleted')) d ON true
		LEFT JOIN LATERAL (
			SELECT count(*) AS total, count(*) FILTER (WHERE state = 'open') AS open
			FROM failures WHERE change_number = p.number AND kind <> 'storm') fl ON true
		ORDER BY p.start_at DESC, p.number DESC`,
		status, from, to, afterStart, afterNumber, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("store: list changes: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ChangeSummary, error) {
		var c ChangeSummary
		var updated *time.Time
		err := row.Scan(&c.Number, &c.SysID, &c.State, &c.Approval, &c.Start, &c.End, &c.UpdateGroups, &c.Schedules,
			&c.ShortDescription, &updated, &c.Status, &c.Revision, &c.CreatedAt, &c.UpdatedAt,
			&c.OnHold, &c.ErrorBudget, &c.FailuresAcked, &c.DevicesAcked, &c.Classification, &c.Deadline,
			&c.WindowsTotal, &c.WindowsOpen, &c.WindowsClosed, &c.WindowsMissed, &c.Failures, &c.FailuresOpen)
		if updated != nil {
			c.SysUpdatedOn = *updated
		}
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: list changes: %w", err)
	}
	return out, nil
}

// DeviceFilter selects devices for ListDevices.
type DeviceFilter struct {
	// Query matches a part of the name, case-insensitively; empty for any.
	Query string
	// Schedule, Service and Tier match exactly (service case-insensitively,
	// trimmed); empty for any.
	Schedule, Service, Tier string
	Limit                   int
	// After is the lower-cased name of the last device of the previous page.
	After string
}

// ListDevices returns up to f.Limit devices ordered by name.
func ListDevices(ctx context.Context, db DBTX, f DeviceFilter) ([]Device, error) {
	rows, err := db.Query(ctx, `SELECT id, name, resource_id, schedule_name, service, tier, updated_at
		FROM devices
		WHERE ($1 = '' OR strpos(lower(name), lower($1)) > 0)
		  AND ($2 = '' OR schedule_name = $2)
		  AND ($3 = '' OR lower(btrim(service)) = lower(btrim($3)))
		  AND ($4 = '' OR tier = $4)
		  AND lower(name) > $5
		ORDER BY lower(name)
		LIMIT $6`, f.Query, f.Schedule, f.Service, f.Tier, f.After, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("store: list devices: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Device, error) {
		var d Device
		err := row.Scan(&d.ID, &d.Name, &d.ResourceID, &d.Schedule, &d.Service, &d.Tier, &d.UpdatedAt)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: list devices: %w", err)
	}
	return out, nil
}

// FailureFilter selects failures for ListFailures.
type FailureFilter struct {
	// State is open or resolved; Kind one of the failure kinds; Change a
	// change number; Subject a device (case-insensitive). Empty for any.
	State, Kind, Change, Subject string
	Limit                        int
	// After is the id of the last failure of the previous page (newest
	// first); 0 for the first page.
	After int64
}

// ListFailures returns up to f.Limit failures, newest first.
func ListFailures(ctx context.Context, db DBTX, f FailureFilter) ([]Failure, error) {
	return queryFailures(ctx, db, `WHERE ($1 = '' OR f.state = $1)
		  AND ($2 = '' OR f.kind = $2)
		  AND ($3 = '' OR f.change_number = $3)
		  AND ($4 = '' OR lower(f.subject) = lower($4))
		  AND ($5 = 0 OR f.id < $5)
		ORDER BY f.id DESC LIMIT $6`, f.State, f.Kind, f.Change, f.Subject, f.After, f.Limit)
}

// WindowDeployment is a deployment as the calendar shows it: which change,
// which window, in which state.
type WindowDeployment struct {
	ID           int64     `json:"id"`
	ChangeNumber string    `json:"change"`
	Schedule     string    `json:"-"`
	UpdateGroup  string    `json:"update_group"`
	Name         string    `json:"name"`
	WindowStart  time.Time `json:"-"`
	WindowEnd    time.Time `json:"-"`
	State        string    `json:"state"`
}

// DeploymentsBetween returns the live deployments (not obsolete or deleted)
// whose window starts in [from, to), by start.
func DeploymentsBetween(ctx context.Context, db DBTX, from, to time.Time) ([]WindowDeployment, error) {
	rows, err := db.Query(ctx, `SELECT id, change_number, schedule_name, update_group, name, window_start, window_end, state
		FROM deployments
		WHERE window_start >= $1 AND window_start < $2 AND state NOT IN ('obsolete', 'deleted')
		ORDER BY window_start, schedule_name, id`, from, to)
	if err != nil {
		return nil, fmt.Errorf("store: deployments between: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[WindowDeployment])
	if err != nil {
		return nil, fmt.Errorf("store: deployments between: %w", err)
	}
	return out, nil
}

// HeldWindow is a window that the newest plan of a change left out for
// service safety.
type HeldWindow struct {
	ChangeNumber string
	Schedule     string
	WindowStart  time.Time
	Reason       string
}

// HeldBetween returns the held entries of every change's newest plan whose
// window starts in [from, to).
func HeldBetween(ctx context.Context, db DBTX, from, to time.Time) ([]HeldWindow, error) {
	rows, err := db.Query(ctx, `SELECT p.change_number, e.schedule_name, e.window_start, e.held
		FROM plan_entries e
		JOIN plans p ON p.id = e.plan_id
		JOIN changes c ON c.number = p.change_number AND c.status = 'planned'
		WHERE e.held IS NOT NULL AND e.window_start >= $1 AND e.window_start < $2
		  AND p.version = (SELECT max(version) FROM plans WHERE change_number = p.change_number)
		ORDER BY e.window_start, e.schedule_name`, from, to)
	if err != nil {
		return nil, fmt.Errorf("store: held windows: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[HeldWindow])
	if err != nil {
		return nil, fmt.Errorf("store: held windows: %w", err)
	}
	return out, nil
}
