package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Failure kinds (failures.kind).
const (
	// FailureError: a device reported an installation error.
	FailureError = "error"
	// FailureNoStatus: a device had not reported success or failure when its
	// window closed (unknown or still in progress at the final poll).
	FailureNoStatus = "no_status"
	// FailureMissedWindow: a window was never opened (too little of it was left).
	FailureMissedWindow = "missed_window"
	// FailureStorm: more devices failed in one window than the storm
	// threshold; the devices beyond it are reported together.
	FailureStorm = "storm"
	// FailureHalt: a change's rollout was halted because the failures of
	// its closed windows exceeded its error budget (subject halt#<hold id>).
	FailureHalt = "halt"
	// FailureNoncompliant: a device of a manual schedule was still not
	// compliant (updates required, or a restart pending) at its deadline.
	FailureNoncompliant = "noncompliant"
)

// Failure states (failures.state).
const (
	FailureOpen     = "open"
	FailureResolved = "resolved"
)

// Alert outcomes that end the SCOM side of a failure without an alert.
const (
	AlertUnknownDevice   = "unknown_device"
	AlertAmbiguousDevice = "ambiguous_device"
	AlertRefused         = "refused"
)

// Failure is a problem that must reach a person: one per device per change
// (or per missed window, or per storm), with the progress of its alert and
// its incident.
type Failure struct {
	ID            int64
	ChangeNumber  string
	ChangeSysID   string
	Subject       string // the device, or the window of a missed window or storm
	Kind          string
	DeploymentID  *int64
	ErrorCode     *int64
	Message       string
	CorrelationID string
	// StormID is the storm failure this device is reported through, if any.
	StormID     *int64
	State       string
	FirstSeenAt time.Time
	RecoveredAt *time.Time
	ResolvedAt  *time.Time

	// AlertComputer is the Windows Computer the alert is raised on.
	AlertComputer string
	// AlertOutcome is the last scom.RaiseOutcome, or AlertRefused; empty
	// before the first raise.
	AlertOutcome  string
	AlertID       string
	AlertDetail   string
	AlertTicket   string
	AlertClosedAt *time.Time

	IncidentNumber     string
	IncidentSysID      string
	IncidentCreatedAt  *time.Time
	IncidentNotedAt    *time.Time
	IncidentResolvedAt *time.Time
	// MembersNoted is how many storm members the storm's incident lists.
	MembersNoted int

	// Schedule and WindowStart are the window of DeploymentID.
	Schedule    string
	WindowStart *time.Time
}

// Reported reports whether the failure has an alert and incident of its own
// (storm members do not).
func (f Failure) Reported() bool { return f.StormID == nil }

// AlertDone reports whether the SCOM side needs nothing more before the
// device recovers: an alert exists, or none can be raised.
func (f Failure) AlertDone() bool {
	switch f.AlertOutcome {
	case AlertUnknownDevice, AlertAmbiguousDevice, AlertRefused:
		return true
	}
	return f.AlertID != ""
}

const failureColumns = `f.id, f.change_number, c.sys_id, f.subject, f.kind, f.deployment_id, f.error_code, f.message,
	f.correlation_id, f.storm_id, f.state, f.first_seen_at, f.recovered_at, f.resolved_at,
	f.alert_computer, coalesce(f.alert_outcome, ''), coalesce(f.alert_id, ''), f.alert_detail, coalesce(f.alert_ticket, ''),
	f.alert_closed_at, coalesce(f.incident_number, ''), coalesce(f.incident_sys_id, ''), f.incident_created_at,
	f.incident_noted_at, f.incident_resolved_at, f.members_noted, coalesce(d.schedule_name, ''), d.window_start`

func scanFailure(row pgx.CollectableRow) (Failure, error) {
	var f Failure
	err := row.Scan(&f.ID, &f.ChangeNumber, &f.ChangeSysID, &f.Subject, &f.Kind, &f.DeploymentID, &f.ErrorCode, &f.Message,
		&f.CorrelationID, &f.StormID, &f.State, &f.FirstSeenAt, &f.RecoveredAt, &f.ResolvedAt,
		&f.AlertComputer, &f.AlertOutcome, &f.AlertID, &f.AlertDetail, &f.AlertTicket,
		&f.AlertClosedAt, &f.IncidentNumber, &f.IncidentSysID, &f.IncidentCreatedAt,
		&f.IncidentNotedAt, &f.IncidentResolvedAt, &f.MembersNoted, &f.Schedule, &f.WindowStart)
	return f, err
}

func queryFailures(ctx context.Context, db DBTX, where string, args ...any) ([]Failure, error) {
	rows, err := db.Query(ctx, `SELECT `+failureColumns+`
		FROM failures f JOIN changes c ON c.number = f.change_number
		LEFT JOIN deployments d ON d.id = f.deployment_id `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("store: failures: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanFailure)
	if err != nil {
		return nil, fmt.Errorf("store: failures: %w", err)
	}
	return out, nil
}

// InsertFailure records a failure unless one with its correlation id, or
// its change, kind and subject, exists. It returns the id of the new or the
// existing row, and whether it is new.
func InsertFailure(ctx context.Context, db DBTX, f Failure) (int64, bool, error) {
	var id int64
	err := db.QueryRow(ctx, `INSERT INTO failures (change_number, subject, kind, deployment_id, error_code, message,
			correlation_id, storm_id, alert_computer, first_seen_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT DO NOTHING RETURNING id`,
		f.ChangeNumber, f.Subject, f.Kind, f.DeploymentID, f.ErrorCode, f.Message,
		f.CorrelationID, f.StormID, f.AlertComputer, f.FirstSeenAt).Scan(&id)
	if err == nil {
		return id, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return 0, false, fmt.Errorf("store: insert failure %s: %w", f.CorrelationID, err)
	}
	err = db.QueryRow(ctx, `SELECT id FROM failures WHERE correlation_id = $1
		OR (change_number = $2 AND kind = $3 AND subject = $4) ORDER BY id LIMIT 1`,
		f.CorrelationID, f.ChangeNumber, f.Kind, f.Subject).Scan(&id)
	if err != nil {
		return 0, false, fmt.Errorf("store: insert failure %s: %w", f.CorrelationID, mapErr(err))
	}
	return id, false, nil
}

// InsertFailures is InsertFailure for many failures in one statement (a
// status poll may find hundreds): ids[i] is the id of the row fs[i]
// created, 0 when one with its correlation id, or its change, kind and
// subject, existed already (or fs repeats it).
func InsertFailures(ctx context.Context, db DBTX, fs []Failure) ([]int64, error) {
	if len(fs) == 0 {
		return nil, nil
	}
	n := len(fs)
	changes, subjects, kinds, messages := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	correlations, computers := make([]string, n), make([]string, n)
	deployments, codes, storms := make([]*int64, n), make([]*int64, n), make([]*int64, n)
	seen := make([]time.Time, n)
	for i, f := range fs {
		changes[i], subjects[i], kinds[i], messages[i] = f.ChangeNumber, f.Subject, f.Kind, f.Message
		correlations[i], computers[i] = f.CorrelationID, f.AlertComputer
		deployments[i], codes[i], storms[i], seen[i] = f.DeploymentID, f.ErrorCode, f.StormID, f.FirstSeenAt
	}
	rows, err := db.Query(ctx, `INSERT INTO failures (change_number, subject, kind, deployment_id, error_code, message,
			correlation_id, storm_id, alert_computer, first_seen_at)
		SELECT change_number, subject, kind, deployment_id, error_code, message, correlation_id, storm_id, alert_computer, first_seen_at
		FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::bigint[], $9::text[], $10::timestamptz[])
			WITH ORDINALITY AS t(change_number, subject, kind, deployment_id, error_code, message, correlation_id, storm_id, alert_computer, first_seen_at, n)
		ORDER BY n
		ON CONFLICT DO NOTHING RETURNING id, correlation_id`,
		changes, subjects, kinds, deployments, codes, messages, correlations, storms, computers, seen)
	if err != nil {
		return nil, fmt.Errorf("store: insert %d failure(s): %w", n, err)
	}
	created := map[string]int64{}
	var id int64
	var correlation string
	_, err = pgx.ForEachRow(rows, []any{&id, &correlation}, func() error {
		created[correlation] = id
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: insert %d failure(s): %w", n, err)
	}
	ids := make([]int64, n)
	for i, f := range fs {
		ids[i] = created[f.CorrelationID]
		delete(created, f.CorrelationID) // a repeat did not create a row
	}
	return ids, nil
}

// MarkRecoveredAll is MarkRecovered for many failures in one statement.
func MarkRecoveredAll(ctx context.Context, db DBTX, ids []int64, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := db.Exec(ctx, `UPDATE failures SET recovered_at = $2, updated_at = now(),
			state = CASE WHEN storm_id IS NOT NULL THEN 'resolved' ELSE state END,
			resolved_at = CASE WHEN storm_id IS NOT NULL THEN $2 ELSE resolved_at END
		WHERE id = ANY($1) AND state = 'open' AND recovered_at IS NULL`, ids, at)
	if err != nil {
		return fmt.Errorf("store: %d failure(s) recovered: %w", len(ids), err)
	}
	return nil
}

// PendingAlerts returns the ids of up to limit open, reported failures
// with a SCOM step to do: an alert to raise, an incident number to set on
// it, or a recovered device's alert to close. An alerts job takes them
// along with its own, so a backlog behind a slow SCOM drains in a few
// calls rather than three per job.
func PendingAlerts(ctx context.Context, db DBTX, limit int) ([]int64, error) {
	rows, err := db.Query(ctx, `SELECT id FROM failures
		WHERE state = 'open' AND storm_id IS NULL AND alert_computer <> '' AND (
			(alert_id IS NULL AND coalesce(alert_outcome, '') NOT IN ('unknown_device', 'ambiguous_device', 'refused'))
			OR (alert_id IS NOT NULL AND incident_number IS NOT NULL AND alert_ticket IS DISTINCT FROM incident_number)
			OR (alert_id IS NOT NULL AND recovered_at IS NOT NULL AND alert_closed_at IS NULL AND alert_ticket = incident_number))
		ORDER BY id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("store: pending alerts: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("store: pending alerts: %w", err)
	}
	return ids, nil
}

// FailuresByID returns the failures ids, in id order.
func FailuresByID(ctx context.Context, db DBTX, ids []int64) ([]Failure, error) {
	return queryFailures(ctx, db, `WHERE f.id = ANY($1) ORDER BY f.id`, ids)
}

// ChangeFailures returns every failure of the changes, in id order.
func ChangeFailures(ctx context.Context, db DBTX, changes []string) ([]Failure, error) {
	return queryFailures(ctx, db, `WHERE f.change_number = ANY($1) ORDER BY f.id`, changes)
}

// StormMembers returns the devices reported through a storm failure, in id order.
func StormMembers(ctx context.Context, db DBTX, stormID int64) ([]Failure, error) {
	return queryFailures(ctx, db, `WHERE f.storm_id = $1 ORDER BY f.id`, stormID)
}

// MarkRecovered records that a failure's device succeeded at. A storm
// member has nothing of its own to close, so it is resolved at once;
// anything else is resolved once its alert and incident are closed.
func MarkRecovered(ctx context.Context, db DBTX, id int64, at time.Time) error {
	_, err := db.Exec(ctx, `UPDATE failures SET recovered_at = $2, updated_at = now(),
			state = CASE WHEN storm_id IS NOT NULL THEN 'resolved' ELSE state END,
			resolved_at = CASE WHEN storm_id IS NOT NULL THEN $2 ELSE resolved_at END
		WHERE id = $1 AND state = 'open' AND recovered_at IS NULL`, id, at)
	if err != nil {
		return fmt.Errorf("store: failure %d recovered: %w", id, err)
	}
	return nil
}

// OpenMembers counts the storm's members that have not recovered.
func OpenMembers(ctx context.Context, db DBTX, stormID int64) (int, error) {
	var n int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM failures WHERE storm_id = $1 AND recovered_at IS NULL`, stormID).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: storm %d members: %w", stormID, err)
	}
	return n, nil
}

// AlertResult is what a raise did.
type AlertResult struct {
	Outcome string
	AlertID string
	Detail  string
}

// RecordAlert stores the result of raising a failure's alert.
func RecordAlert(ctx context.Context, db DBTX, id int64, r AlertResult) error {
	var alertID *string
	if r.AlertID != "" {
		alertID = &r.AlertID
	}
	return updateFailure(ctx, db, id, `alert_outcome = $2, alert_id = coalesce($3, alert_id), alert_detail = $4`,
		r.Outcome, alertID, r.Detail)
}

// RecordAlertTicket stores the TicketId set on a failure's alert.
func RecordAlertTicket(ctx context.Context, db DBTX, id int64, ticket string) error {
	return updateFailure(ctx, db, id, `alert_ticket = $2`, ticket)
}

// RecordAlertClosed stores that a failure's alert was closed.
func RecordAlertClosed(ctx context.Context, db DBTX, id int64, at time.Time) error {
	return updateFailure(ctx, db, id, `alert_closed_at = $2`, at)
}

// RecordIncident stores the incident raised for a failure.
func RecordIncident(ctx context.Context, db DBTX, id int64, number, sysID string, at time.Time) error {
	return updateFailure(ctx, db, id, `incident_number = $2, incident_sys_id = $3, incident_created_at = $4`, number, sysID, at)
}

// RecordIncidentNoted stores that the recovery was noted on the incident.
func RecordIncidentNoted(ctx context.Context, db DBTX, id int64, at time.Time) error {
	return updateFailure(ctx, db, id, `incident_noted_at = $2`, at)
}

// RecordIncidentResolved stores that a failure's incident was resolved.
func RecordIncidentResolved(ctx context.Context, db DBTX, id int64, at time.Time) error {
	return updateFailure(ctx, db, id, `incident_resolved_at = $2`, at)
}

// RecordMembersNoted stores how many members a storm's incident lists.
func RecordMembersNoted(ctx context.Context, db DBTX, id int64, n int) error {
	return updateFailure(ctx, db, id, `members_noted = greatest(members_noted, $2)`, n)
}

// updateFailure applies set ($1 is the id) and resolves the failure when
// its device recovered and both its alert and its incident are closed.
func updateFailure(ctx context.Context, db DBTX, id int64, set string, args ...any) error {
	if _, err := db.Exec(ctx, `UPDATE failures SET `+set+`, updated_at = now() WHERE id = $1`, append([]any{id}, args...)...); err != nil {
		return fmt.Errorf("store: failure %d: %w", id, err)
	}
	if _, err := db.Exec(ctx, `UPDATE failures SET state = 'resolved', resolved_at = now(), updated_at = now()
		WHERE id = $1 AND state = 'open' AND recovered_at IS NOT NULL AND incident_resolved_at IS NOT NULL
		  AND (alert_closed_at IS NOT NULL OR (alert_id IS NULL AND alert_outcome IN ('unknown_device', 'ambiguous_device', 'refused')))`,
		id); err != nil {
		return fmt.Errorf("store: failure %d: %w", id, err)
	}
	return nil
}

// StalledFailures returns the failures of the last week with a remote step
// still to do whose row has not moved since before: their job was lost or
// gave up.
func StalledFailures(ctx context.Context, db DBTX, before time.Time) ([]int64, error) {
	rows, err := db.Query(ctx, `SELECT f.id FROM failures f
		WHERE f.state = 'open' AND f.storm_id IS NULL AND f.updated_at < $1
		  AND f.first_seen_at > $1 - interval '7 days' AND (
			f.alert_outcome IS NULL OR f.alert_outcome = 'pending'
			OR f.incident_sys_id IS NULL
			OR (f.alert_id IS NOT NULL AND f.incident_number IS NOT NULL AND f.alert_ticket IS DISTINCT FROM f.incident_number)
			OR (f.recovered_at IS NOT NULL AND (f.incident_resolved_at IS NULL OR (f.alert_id IS NOT NULL AND f.alert_closed_at IS NULL)))
			OR (f.kind = 'storm' AND f.members_noted < (SELECT count(*) FROM failures m WHERE m.storm_id = f.id)))
		ORDER BY f.id LIMIT 500`, before)
	if err != nil {
		return nil, fmt.Errorf("store: stalled failures: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("store: stalled failures: %w", err)
	}
	return ids, nil
}
