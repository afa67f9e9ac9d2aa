package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Assignment is what one schedule request did to one device.
type Assignment struct {
	Device      string    `json:"device"`
	ResourceID  int       `json:"resource_id,omitempty"`
	Schedule    string    `json:"schedule"`
	Service     string    `json:"service"`
	Tier        string    `json:"tier"`
	RequestItem string    `json:"request_item"`
	EventID     uuid.UUID `json:"-"`
	Outcome     string    `json:"outcome"` // moved, already_there, unknown_device, refused
	Detail      string    `json:"detail,omitempty"`
	At          time.Time `json:"at"`
}

// RecordAssignment records a. A device that SCCM knows (moved or already
// there) is upserted with its schedule, service and tier; an unknown one is
// recorded in the history only, so a typo never becomes a managed device.
func RecordAssignment(ctx context.Context, tx pgx.Tx, a Assignment) error {
	var id int64
	managed := a.Outcome == "moved" || a.Outcome == "already_there"
	var resourceID *int
	if a.ResourceID != 0 {
		resourceID = &a.ResourceID
	}
	err := tx.QueryRow(ctx, `INSERT INTO devices (name, resource_id, schedule_name, service, tier)
		VALUES ($1, $2, CASE WHEN $6 THEN $3 END, CASE WHEN $6 THEN $4 END, CASE WHEN $6 THEN $5 END)
		ON CONFLICT ((lower(name))) DO UPDATE SET
			resource_id = coalesce(EXCLUDED.resource_id, devices.resource_id),
			schedule_name = CASE WHEN $6 THEN EXCLUDED.schedule_name ELSE devices.schedule_name END,
			service = CASE WHEN $6 THEN EXCLUDED.service ELSE devices.service END,
			tier = CASE WHEN $6 THEN EXCLUDED.tier ELSE devices.tier END,
			updated_at = now()
		RETURNING id`, a.Device, resourceID, a.Schedule, a.Service, a.Tier, managed).Scan(&id)
	if err != nil {
		return fmt.Errorf("store: device %s: %w", a.Device, err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO device_assignments (device_id, schedule_name, service, tier, request_item, webhook_event, outcome, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, id, a.Schedule, a.Service, a.Tier, a.RequestItem, a.EventID, a.Outcome, a.Detail)
	if err != nil {
		return fmt.Errorf("store: assignment of %s: %w", a.Device, err)
	}
	return nil
}

// AssignmentsRecorded reports whether the schedule request event has been
// carried out already.
func AssignmentsRecorded(ctx context.Context, db DBTX, event uuid.UUID) (bool, error) {
	var done bool
	err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM device_assignments WHERE webhook_event = $1)`, event).Scan(&done)
	if err != nil {
		return false, fmt.Errorf("store: assignments of %s: %w", event, err)
	}
	return done, nil
}

// ManagedCollections returns the collections of every schedule autopatch has
// known, retired ones included: a device leaves them all when it moves.
func ManagedCollections(ctx context.Context, db DBTX) ([]string, error) {
	rows, err := db.Query(ctx, `SELECT DISTINCT collection FROM schedules ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("store: managed collections: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: managed collections: %w", err)
	}
	return out, nil
}

// Device is a managed device as autopatch knows it.
type Device struct {
	ID         int64     `json:"-"`
	Name       string    `json:"name"`
	ResourceID *int64    `json:"resource_id,omitempty"`
	Schedule   *string   `json:"schedule"`
	Service    *string   `json:"service"`
	Tier       *string   `json:"tier"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// GetDevice reads a device by name (case-insensitive, as SCCM compares).
func GetDevice(ctx context.Context, db DBTX, name string) (Device, error) {
	var d Device
	err := db.QueryRow(ctx, `SELECT id, name, resource_id, schedule_name, service, tier, updated_at
		FROM devices WHERE lower(name) = lower($1)`, name).
		Scan(&d.ID, &d.Name, &d.ResourceID, &d.Schedule, &d.Service, &d.Tier, &d.UpdatedAt)
	if err != nil {
		return Device{}, fmt.Errorf("store: device %s: %w", name, mapErr(err))
	}
	return d, nil
}

// DeviceHistory returns what schedule requests did to a device, newest first.
func DeviceHistory(ctx context.Context, db DBTX, deviceID int64) ([]Assignment, error) {
	rows, err := db.Query(ctx, `SELECT d.name, coalesce(d.resource_id, 0), a.schedule_name, coalesce(a.service, ''), coalesce(a.tier, ''),
			a.request_item, coalesce(a.webhook_event, '00000000-0000-0000-0000-000000000000'), a.outcome, a.detail, a.created_at
		FROM device_assignments a JOIN devices d ON d.id = a.device_id
		WHERE a.device_id = $1 ORDER BY a.created_at DESC, a.id DESC LIMIT 100`, deviceID)
	if err != nil {
		return nil, fmt.Errorf("store: device history: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Assignment])
	if err != nil {
		return nil, fmt.Errorf("store: device history: %w", err)
	}
	return out, nil
}

// LatestResult is a device's latest status in one deployment.
type LatestResult struct {
	Deployment string    `json:"deployment"`
	Change     string    `json:"change"`
	StatusType int       `json:"status_type"`
	ErrorCode  *int64    `json:"error_code,omitempty"`
	Message    string    `json:"message,omitempty"`
	ObservedAt time.Time `json:"observed_at"`
}

// DeviceLatestResults returns a device's latest status per deployment,
// newest first.
func DeviceLatestResults(ctx context.Context, db DBTX, name string) ([]LatestResult, error) {
	rows, err := db.Query(ctx, `SELECT dp.name, dp.change_number, r.status_type, r.error_code, r.message, r.observed_at
		FROM device_results r JOIN deployments dp ON dp.id = r.deployment_id
		WHERE lower(r.device_name) = lower($1) ORDER BY r.observed_at DESC LIMIT 50`, name)
	if err != nil {
		return nil, fmt.Errorf("store: device results: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[LatestResult])
	if err != nil {
		return nil, fmt.Errorf("store: device results: %w", err)
	}
	return out, nil
}

// DeviceNamesBySchedule returns the names of the managed devices of each of
// schedules, in name order.
func DeviceNamesBySchedule(ctx context.Context, db DBTX, schedules []string) (map[string][]string, error) {
	rows, err := db.Query(ctx, `SELECT schedule_name, name FROM devices WHERE schedule_name = ANY($1) ORDER BY lower(name)`, schedules)
	if err != nil {
		return nil, fmt.Errorf("store: devices of %d schedule(s): %w", len(schedules), err)
	}
	out := map[string][]string{}
	var schedule, name string
	if _, err := pgx.ForEachRow(rows, []any{&schedule, &name}, func() error {
		out[schedule] = append(out[schedule], name)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("store: devices of %d schedule(s): %w", len(schedules), err)
	}
	return out, nil
}
