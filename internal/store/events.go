package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Webhook kinds, as stored in webhook_events.kind.
const (
	EventChange          = "change"
	EventScheduleRequest = "schedule_request"
)

// Outcomes of a delivery. Duplicates are not stored: they are answered with
// the id of the delivery they repeat.
const (
	OutcomeAccepted  = "accepted"
	OutcomeStale     = "stale"
	OutcomeDuplicate = "duplicate"
)

// Event is one webhook delivery that passed authentication and validation.
type Event struct {
	ID   uuid.UUID
	Kind string // EventChange or EventScheduleRequest
	// EventID is the delivery's deduplication key: the sender's event_id,
	// or one derived from the body when the sender gave none; "" for none.
	EventID      string
	RecordNumber string    // CHG… or RITM…
	RecordSysID  string    // the record's ServiceNow sys_id
	SysUpdatedOn time.Time // the record's version; zero when unknown
	Payload      []byte    // the request as validated, JSON
	Outcome      string    // OutcomeAccepted or OutcomeStale
}

// LockRecord serialises, until tx ends, the deliveries about one ServiceNow
// record, so that duplicate detection, the staleness check and the change
// decision see every delivery that came before, even when ServiceNow sends
// several at once.
func LockRecord(ctx context.Context, tx pgx.Tx, kind, sysID string) error {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", kind+":"+sysID); err != nil {
		return fmt.Errorf("store: lock %s %s: %w", kind, sysID, err)
	}
	return nil
}

// Prior is what earlier deliveries say about a new one.
type Prior struct {
	// DuplicateOf is the first delivery with the same event id or the same
	// record version, or uuid.Nil.
	DuplicateOf uuid.UUID
	// LatestApplied is the newest sys_updated_on among the accepted
	// deliveries of the record; zero when there is none.
	LatestApplied time.Time
}

// FindPrior looks up the deliveries that came before ev. Call it after
// LockRecord, in the same transaction.
func FindPrior(ctx context.Context, db DBTX, ev Event) (Prior, error) {
	var (
		dup    *uuid.UUID
		latest *time.Time
	)
	err := db.QueryRow(ctx, `SELECT
		(SELECT id FROM (
			SELECT id, received_at FROM webhook_events WHERE kind = $1 AND event_id = $2
			UNION ALL
			SELECT id, received_at FROM webhook_events WHERE kind = $1 AND record_sys_id = $3 AND sys_updated_on = $4
		) d ORDER BY received_at, id LIMIT 1),
		(SELECT max(sys_updated_on) FROM webhook_events
			WHERE kind = $1 AND record_sys_id = $3 AND outcome = 'accepted' AND sys_updated_on IS NOT NULL)`,
		ev.Kind, nullString(ev.EventID), ev.RecordSysID, nullTime(ev.SysUpdatedOn)).Scan(&dup, &latest)
	if err != nil {
		return Prior{}, fmt.Errorf("store: find earlier deliveries of %s %s: %w", ev.Kind, ev.RecordNumber, err)
	}
	var p Prior
	if dup != nil {
		p.DuplicateOf = *dup
	}
	if latest != nil {
		p.LatestApplied = *latest
	}
	return p, nil
}

// InsertEvent records ev. It reports false, and records nothing, when a
// delivery with the same event id or version was committed meanwhile; that
// can only be one about another record (same event id), since LockRecord
// serialises deliveries about one record.
func InsertEvent(ctx context.Context, db DBTX, ev Event) (bool, error) {
	tag, err := db.Exec(ctx, `INSERT INTO webhook_events
		(id, kind, event_id, record_number, record_sys_id, sys_updated_on, payload, outcome)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT DO NOTHING`,
		ev.ID, ev.Kind, nullString(ev.EventID), ev.RecordNumber, ev.RecordSysID, nullTime(ev.SysUpdatedOn),
		json.RawMessage(ev.Payload), ev.Outcome)
	if err != nil {
		return false, fmt.Errorf("store: record %s delivery for %s: %w", ev.Kind, ev.RecordNumber, mapErr(err))
	}
	return tag.RowsAffected() == 1, nil
}

// ScheduleRequest is an accepted schedule request, as stored in
// webhook_events.payload (ARCHITECTURE §4.3, validated).
type ScheduleRequest struct {
	EventID      string            `json:"event_id,omitempty"`
	RequestItem  RequestItem       `json:"request_item"`
	RequestedFor string            `json:"requested_for"`
	Schedule     string            `json:"schedule"`
	Devices      []RequestedDevice `json:"devices"`
}

// RequestItem identifies the RITM a schedule request came from.
type RequestItem struct {
	Number       string     `json:"number"`
	SysID        string     `json:"sys_id"`
	SysUpdatedOn *time.Time `json:"sys_updated_on,omitempty"`
}

// RequestedDevice is one device of a schedule request.
type RequestedDevice struct {
	Name    string `json:"name"`
	Service string `json:"service"`
	Tier    string `json:"tier"` // backend, middle or frontend
}

// GetScheduleRequest reads the schedule request recorded as event id.
func GetScheduleRequest(ctx context.Context, db DBTX, id uuid.UUID) (ScheduleRequest, error) {
	var payload []byte
	err := db.QueryRow(ctx, "SELECT payload FROM webhook_events WHERE id = $1 AND kind = $2", id, EventScheduleRequest).Scan(&payload)
	if err != nil {
		return ScheduleRequest{}, fmt.Errorf("store: schedule request %s: %w", id, mapErr(err))
	}
	var r ScheduleRequest
	if err := json.Unmarshal(payload, &r); err != nil {
		return ScheduleRequest{}, fmt.Errorf("store: schedule request %s: decode payload: %w", id, err)
	}
	return r, nil
}

// UnknownSchedules returns those of names that are not active schedules,
// in the order given.
func UnknownSchedules(ctx context.Context, db DBTX, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	rows, err := db.Query(ctx, "SELECT name FROM schedules WHERE retired_at IS NULL AND name = ANY($1)", names)
	if err != nil {
		return nil, fmt.Errorf("store: look up schedules: %w", err)
	}
	known, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: look up schedules: %w", err)
	}
	set := make(map[string]bool, len(known))
	for _, n := range known {
		set[n] = true
	}
	var unknown []string
	for _, n := range names {
		if !set[n] {
			unknown = append(unknown, n)
		}
	}
	return unknown, nil
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
