package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Reads that only the console (handlers/ui) needs.

// ResultCount is how many devices of a deployment last reported a status.
type ResultCount struct {
	DeploymentID int64
	StatusType   int // SMS_SUMDeploymentAssetDetails.StatusType: 1 success, 2 in progress, 4 unknown, 5 error
	Devices      int
}

// ChangeResultCounts counts the latest device results of every deployment of
// a change by status.
func ChangeResultCounts(ctx context.Context, db DBTX, number string) ([]ResultCount, error) {
	rows, err := db.Query(ctx, `SELECT r.deployment_id, r.status_type, count(*)
		FROM device_results r JOIN deployments d ON d.id = r.deployment_id
		WHERE d.change_number = $1
		GROUP BY 1, 2 ORDER BY 1, 2`, number)
	if err != nil {
		return nil, fmt.Errorf("store: result counts of %s: %w", number, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[ResultCount])
	if err != nil {
		return nil, fmt.Errorf("store: result counts of %s: %w", number, err)
	}
	return out, nil
}

// SentNote is a work note autopatch queued for a ServiceNow record, and
// whether it was written.
type SentNote struct {
	Text  string
	State string // River's job state: completed means written
	At    time.Time
}

// ChangeWorkNotes returns the work notes queued for a change's record
// (change_request sys_id), oldest first. They are read from River's job
// table, which keeps completed jobs for River's retention period (24 h by
// default): older notes are in ServiceNow's journal only.
func ChangeWorkNotes(ctx context.Context, db DBTX, sysID string) ([]SentNote, error) {
	rows, err := db.Query(ctx, `SELECT coalesce(args->>'text', ''), state::text, coalesce(finalized_at, created_at)
		FROM river_job
		WHERE kind = 'work_note' AND args->>'table' = 'change_request' AND args->>'sys_id' = $1
		ORDER BY id`, sysID)
	if err != nil {
		return nil, fmt.Errorf("store: work notes of %s: %w", sysID, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[SentNote])
	if err != nil {
		return nil, fmt.Errorf("store: work notes of %s: %w", sysID, err)
	}
	return out, nil
}

// DeviceOpenFailures returns the open failures whose subject is the device.
func DeviceOpenFailures(ctx context.Context, db DBTX, device string) ([]Failure, error) {
	return queryFailures(ctx, db, `WHERE f.state = 'open' AND lower(f.subject) = lower($1)
		ORDER BY f.first_seen_at DESC, f.id DESC LIMIT 100`, device)
}
