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
}

// ScheduleRequest is an accepted schedule request, as stored in
// webhook_events.payload (docs/architecture.md §4.3, validated).
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
