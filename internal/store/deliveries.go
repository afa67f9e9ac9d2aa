package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Deliveries are judged and recorded in batches (package ingest): two
// round trips for the whole batch, ReadDeliveries then WriteDeliveries,
// whatever its size.

// RecordKey is the lock key of ev's record (see ReadDeliveries).
func RecordKey(ev Event) string { return ev.Kind + ":" + ev.RecordSysID }

// Prior is what was recorded before about a delivery's record.
type Prior struct {
	// Duplicate is the first delivery with the same event id, or the same
	// record and sys_updated_on; uuid.Nil when there is none.
	Duplicate uuid.UUID
	// Newest is the newest sys_updated_on of an accepted delivery of the
	// record; zero when there is none.
	Newest time.Time
}

// Stale reports whether a delivery of version updated is older than one
// already accepted. A delivery without a version is never stale.
func (p Prior) Stale(updated time.Time) bool {
	return !updated.IsZero() && updated.Before(p.Newest)
}

// ReadDeliveries locks the records of evs and the stored changes with any
// of numbers or sys_ids for the rest of tx, and returns what was recorded
// before about each of evs (in order) and those changes (in number order),
// in one round trip.
//
// The record lock serialises the deliveries about one record: duplicates,
// staleness and the change decision are judged against every delivery
// committed before, even when ServiceNow sends several at once or two
// replicas receive them. Both kinds of lock are taken in one order by
// every caller, so two batches never deadlock. The reads are statements of
// their own after the lock, so their snapshots see every delivery of the
// records committed before it was granted.
func ReadDeliveries(ctx context.Context, tx pgx.Tx, evs []Event, numbers, sysIDs []string) ([]Prior, []ChangeRow, error) {
	keys := make([]string, len(evs))
	kinds, eventIDs, recordIDs, updated := make([]string, len(evs)), make([]*string, len(evs)), make([]string, len(evs)), make([]*time.Time, len(evs))
	for i, ev := range evs {
		keys[i] = RecordKey(ev)
		kinds[i], eventIDs[i], recordIDs[i], updated[i] = ev.Kind, nullString(ev.EventID), ev.RecordSysID, nullTime(ev.SysUpdatedOn)
	}
	batch := &pgx.Batch{}
	// Volatile functions in the select list run after ORDER BY.
	batch.Queue(`SELECT pg_advisory_xact_lock(h)
		FROM (SELECT DISTINCT hashtextextended(k, 0) AS h FROM unnest($1::text[]) AS k) AS keys
		ORDER BY h`, keys)
	batch.Queue(`SELECT
			(SELECT id FROM (
				SELECT id, received_at FROM webhook_events e WHERE e.kind = d.kind AND e.event_id = d.event_id
				UNION ALL
				SELECT id, received_at FROM webhook_events e
					WHERE e.kind = d.kind AND e.record_sys_id = d.sys_id AND e.sys_updated_on = d.updated
			) AS dup ORDER BY received_at, id LIMIT 1),
			(SELECT max(sys_updated_on) FROM webhook_events e
				WHERE e.kind = d.kind AND e.record_sys_id = d.sys_id AND e.outcome = 'accepted' AND e.sys_updated_on IS NOT NULL)
		FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) WITH ORDINALITY AS d(kind, event_id, sys_id, updated, n)
		ORDER BY n`, kinds, eventIDs, recordIDs, updated)
	if len(numbers) > 0 {
		batch.Queue(`SELECT `+changeColumns+` FROM changes
			WHERE number = ANY($1) OR sys_id = ANY($2) ORDER BY number FOR UPDATE`, numbers, sysIDs)
	}
	results := tx.SendBatch(ctx, batch)
	defer results.Close()

	if _, err := results.Exec(); err != nil {
		return nil, nil, fmt.Errorf("store: lock %d record(s): %w", len(keys), err)
	}
	rows, err := results.Query()
	if err != nil {
		return nil, nil, fmt.Errorf("store: earlier deliveries: %w", err)
	}
	prior, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Prior, error) {
		var (
			p      Prior
			dup    *uuid.UUID
			newest *time.Time
		)
		err := row.Scan(&dup, &newest)
		if dup != nil {
			p.Duplicate = *dup
		}
		if newest != nil {
			p.Newest = *newest
		}
		return p, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("store: earlier deliveries: %w", err)
	}
	var stored []ChangeRow
	if len(numbers) > 0 {
		rows, err := results.Query()
		if err != nil {
			return nil, nil, fmt.Errorf("store: read %d change(s): %w", len(numbers), err)
		}
		if stored, err = pgx.CollectRows(rows, scanChange); err != nil {
			return nil, nil, fmt.Errorf("store: read %d change(s): %w", len(numbers), err)
		}
	}
	return prior, stored, results.Close()
}

// WriteDeliveries records deliveries with their outcomes (OutcomeAccepted
// or OutcomeStale) and stores versions of changes with the status and
// revision DecideChange gave them, in one round trip. Call it after
// ReadDeliveries: a delivery that repeats a recorded one violates a unique
// index.
func WriteDeliveries(ctx context.Context, tx pgx.Tx, evs []Event, outcomes []string, changes []ChangeRow) error {
	batch := &pgx.Batch{}
	if len(evs) > 0 {
		n := len(evs)
		ids, kinds, eventIDs, numbers, sysIDs := make([]uuid.UUID, n), make([]string, n), make([]*string, n), make([]string, n), make([]string, n)
		updated, payloads := make([]*time.Time, n), make([]string, n)
		for i, ev := range evs {
			ids[i], kinds[i], eventIDs[i], numbers[i], sysIDs[i] = ev.ID, ev.Kind, nullString(ev.EventID), ev.RecordNumber, ev.RecordSysID
			updated[i], payloads[i] = nullTime(ev.SysUpdatedOn), string(ev.Payload)
		}
		batch.Queue(`INSERT INTO webhook_events
				(id, kind, event_id, record_number, record_sys_id, sys_updated_on, payload, outcome)
			SELECT id, kind, event_id, record_number, record_sys_id, sys_updated_on, payload::jsonb, outcome
			FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[], $8::text[])
				AS r(id, kind, event_id, record_number, record_sys_id, sys_updated_on, payload, outcome)`,
			ids, kinds, eventIDs, numbers, sysIDs, updated, payloads, outcomes)
	}
	if len(changes) > 0 {
		data, err := changesJSON(changes)
		if err != nil {
			return err
		}
		// update_groups is never null (a nil list is stored as {});
		// schedules null means every schedule.
		batch.Queue(`INSERT INTO changes
			(number, sys_id, state, approval, start_at, end_at, update_groups, schedules,
			 short_description, sys_updated_on, status, revision, on_hold, error_budget, classification, deadline)
			SELECT number, sys_id, state, approval, start_at, end_at, coalesce(update_groups, '{}'), schedules,
				short_description, sys_updated_on, status, revision, on_hold, nullif(error_budget, ''),
				coalesce(classification, 'normal'), deadline
			FROM jsonb_to_recordset($1::jsonb) AS r(number text, sys_id text, state text, approval text,
				start_at timestamptz, end_at timestamptz, update_groups text[], schedules text[],
				short_description text, sys_updated_on timestamptz, status text, revision bigint,
				on_hold boolean, error_budget text, classification text, deadline timestamptz)
			ON CONFLICT (number) DO UPDATE SET
				state = EXCLUDED.state, approval = EXCLUDED.approval,
				start_at = EXCLUDED.start_at, end_at = EXCLUDED.end_at,
				update_groups = EXCLUDED.update_groups, schedules = EXCLUDED.schedules,
				short_description = EXCLUDED.short_description, sys_updated_on = EXCLUDED.sys_updated_on,
				status = EXCLUDED.status, revision = EXCLUDED.revision,
				on_hold = EXCLUDED.on_hold, error_budget = EXCLUDED.error_budget,
				classification = EXCLUDED.classification, deadline = EXCLUDED.deadline, updated_at = now()`, data)
	}
	if batch.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("store: record %d deliveries and %d change(s): %w", len(evs), len(changes), mapErr(err))
	}
	return nil
}

// changesJSON is changes as the rows of jsonb_to_recordset: one parameter
// for the lot, lists included.
func changesJSON(changes []ChangeRow) ([]byte, error) {
	type row struct {
		Number           string     `json:"number"`
		SysID            string     `json:"sys_id"`
		State            string     `json:"state"`
		Approval         string     `json:"approval"`
		Start            time.Time  `json:"start_at"`
		End              time.Time  `json:"end_at"`
		UpdateGroups     []string   `json:"update_groups"`
		Schedules        []string   `json:"schedules"`
		ShortDescription string     `json:"short_description"`
		SysUpdatedOn     time.Time  `json:"sys_updated_on"`
		Status           string     `json:"status"`
		Revision         int64      `json:"revision"`
		OnHold           bool       `json:"on_hold"`
		ErrorBudget      string     `json:"error_budget"`
		Classification   *string    `json:"classification"`
		Deadline         *time.Time `json:"deadline"`
	}
	rows := make([]row, len(changes))
	for i, c := range changes {
		rows[i] = row{c.Number, c.SysID, c.State, c.Approval, c.Start, c.End, c.UpdateGroups, c.Schedules,
			c.ShortDescription, c.SysUpdatedOn, c.Status, c.Revision, c.OnHold, c.ErrorBudget, nullString(c.Classification), c.Deadline}
	}
	data, err := json.Marshal(rows)
	if err != nil {
		return nil, fmt.Errorf("store: save %d change(s): %w", len(changes), err)
	}
	return data, nil
}
