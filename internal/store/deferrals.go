package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// EventDeferral is the webhook kind of a deferral (docs/architecture.md §9.2).
const EventDeferral = "deferral"

// Deferral is an approved deferral of devices of a change, as ServiceNow
// sends it.
type Deferral struct {
	Change      string
	ChangeSysID string // the change's sys_id, for its work note
	Devices     []string
	Until       time.Time
	Reason      string
	ApprovedBy  string
	RequestItem RequestItem
	// ForcedAt is, for each device (lower-case name) that was already
	// forced when the deferral arrived, when: recorded, moving nothing.
	ForcedAt map[string]time.Time
}

// WriteDeferral records deferral d, delivered as webhook event event, in tx:
// one row per device.
func WriteDeferral(ctx context.Context, tx pgx.Tx, event uuid.UUID, d Deferral) error {
	forced := make([]*time.Time, len(d.Devices))
	for i, name := range d.Devices {
		if t, ok := d.ForcedAt[strings.ToLower(name)]; ok {
			forced[i] = &t
		}
	}
	_, err := tx.Exec(ctx, `INSERT INTO deferrals
			(event, change_number, device_name, until, reason, approved_by, ritm_number, ritm_sys_id, forced_at)
		SELECT $1, $2, dev, $3, $4, $5, $6, $7, forced
		FROM unnest($8::text[], $9::timestamptz[]) AS d(dev, forced)`,
		event, d.Change, d.Until, d.Reason, d.ApprovedBy, d.RequestItem.Number, d.RequestItem.SysID, d.Devices, forced)
	if err != nil {
		return fmt.Errorf("store: record deferral of %d device(s) of %s: %w", len(d.Devices), d.Change, mapErr(err))
	}
	return nil
}

// DeferralsOf returns the deferral in force of each deferred device of a
// change (lower-case name → until): its latest one that was not refused
// for arriving after the device was forced.
func DeferralsOf(ctx context.Context, db DBTX, change string) (map[string]time.Time, error) {
	rows, err := db.Query(ctx, `SELECT DISTINCT ON (lower(device_name)) lower(device_name), until
		FROM deferrals WHERE change_number = $1 AND forced_at IS NULL
		ORDER BY lower(device_name), recorded_at DESC, until DESC`, change)
	if err != nil {
		return nil, fmt.Errorf("store: deferrals of %s: %w", change, err)
	}
	out := map[string]time.Time{}
	var name string
	var until time.Time
	if _, err := pgx.ForEachRow(rows, []any{&name, &until}, func() error { out[name] = until; return nil }); err != nil {
		return nil, fmt.Errorf("store: deferrals of %s: %w", change, err)
	}
	return out, nil
}

// ForcedAt returns when each forced device of a change (lower-case name)
// was forced: the time its ledger outcome became forced.
func ForcedAt(ctx context.Context, db DBTX, change string) (map[string]time.Time, error) {
	// A device is forced from the moment it is put in a wave: the decision
	// is taken at its deadline, and a deferral after it moves nothing.
	rows, err := db.Query(ctx, `SELECT lower(device_name), planned_at FROM forced_devices WHERE change_number = $1`, change)
	if err != nil {
		return nil, fmt.Errorf("store: forced devices of %s: %w", change, err)
	}
	out := map[string]time.Time{}
	var name string
	var at time.Time
	if _, err := pgx.ForEachRow(rows, []any{&name, &at}, func() error { out[name] = at; return nil }); err != nil {
		return nil, fmt.Errorf("store: forced devices of %s: %w", change, err)
	}
	return out, nil
}
