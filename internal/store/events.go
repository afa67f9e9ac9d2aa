package store

import (
	"context"
	"encoding/json"
	"errors"
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
}

// FindDuplicate returns the first delivery with ev's event id, or with its
// record and sys_updated_on; uuid.Nil when there is none.
func FindDuplicate(ctx context.Context, db DBTX, ev Event) (uuid.UUID, error) {
	var id uuid.UUID
	err := db.QueryRow(ctx, `SELECT id FROM (
			SELECT id, received_at FROM webhook_events WHERE kind = $1 AND event_id = $2
			UNION ALL
			SELECT id, received_at FROM webhook_events WHERE kind = $1 AND record_sys_id = $3 AND sys_updated_on = $4
		) d ORDER BY received_at, id LIMIT 1`,
		ev.Kind, nullString(ev.EventID), ev.RecordSysID, nullTime(ev.SysUpdatedOn)).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return uuid.Nil, nil
	}
	if err != nil {
		return uuid.Nil, fmt.Errorf("store: find earlier deliveries of %s %s: %w", ev.Kind, ev.RecordNumber, err)
	}
	return id, nil
}

// RecordDelivery locks the record for the rest of tx and records ev, in one
// round trip. The lock serialises the deliveries about one record, so that
// duplicates, staleness and the change decision are judged against every
// delivery committed before, even when ServiceNow sends several at once. The outcome is stale when ev's sys_updated_on is older
// than an accepted delivery of the same record, accepted otherwise. It
// reports ok false, and records nothing, when ev repeats an earlier
// delivery (same event id, or same record and sys_updated_on):
// FindDuplicate names it. Call it first in the delivery's transaction.
func RecordDelivery(ctx context.Context, tx pgx.Tx, ev Event) (outcome string, ok bool, err error) {
	batch := &pgx.Batch{}
	batch.Queue("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", ev.Kind+":"+ev.RecordSysID)
	// A statement of its own, so that its snapshot is taken after the lock
	// is held and sees every delivery of the record committed before.
	batch.Queue(`INSERT INTO webhook_events
		(id, kind, event_id, record_number, record_sys_id, sys_updated_on, payload, outcome)
		SELECT $1, $2, $3, $4, $5, $6, $7,
			CASE WHEN $6::timestamptz < (SELECT max(sys_updated_on) FROM webhook_events
				WHERE kind = $2 AND record_sys_id = $5 AND outcome = 'accepted' AND sys_updated_on IS NOT NULL)
			THEN 'stale' ELSE 'accepted' END
		ON CONFLICT DO NOTHING
		RETURNING outcome`,
		ev.ID, ev.Kind, nullString(ev.EventID), ev.RecordNumber, ev.RecordSysID, nullTime(ev.SysUpdatedOn),
		json.RawMessage(ev.Payload))
	results := tx.SendBatch(ctx, batch)
	defer results.Close()
	if _, err := results.Exec(); err != nil {
		return "", false, fmt.Errorf("store: lock %s %s: %w", ev.Kind, ev.RecordNumber, err)
	}
	err = results.QueryRow().Scan(&outcome)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", false, results.Close()
	case err != nil:
		return "", false, fmt.Errorf("store: record %s delivery for %s: %w", ev.Kind, ev.RecordNumber, mapErr(err))
	}
	return outcome, true, results.Close()
}

// MarkStale sets the outcome of a recorded delivery to stale: the record
// itself knew a newer version (store.ApplyChange said so).
func MarkStale(ctx context.Context, db DBTX, id uuid.UUID) error {
	if _, err := db.Exec(ctx, "UPDATE webhook_events SET outcome = 'stale' WHERE id = $1", id); err != nil {
		return fmt.Errorf("store: mark delivery %s stale: %w", id, err)
	}
	return nil
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
