package store

import (
	"context"
	"fmt"
	"time"
)

// DeviceResult is one device's status for one deployment, as read from SCCM
// (SMS_SUMDeploymentAssetDetails).
type DeviceResult struct {
	DeploymentID int64  `json:"deployment_id"`
	Device       string `json:"device"`
	// StatusType is 1 success, 2 in progress, 4 unknown, 5 error.
	StatusType int `json:"status_type"`
	// ErrorCode is the HRESULT (as an unsigned 32-bit value), nil unless
	// StatusType is 5.
	ErrorCode *int64 `json:"error_code,omitempty"`
	Message   string `json:"message,omitempty"`
	// EnforcementMessage is LastEnforcementMessageID (9: pending system
	// restart), nil when SCCM gave none.
	EnforcementMessage *int `json:"enforcement_message,omitempty"`
	// StatusTime is SCCM's StatusTime, nil for a device that never reported.
	StatusTime *time.Time `json:"status_time,omitempty"`
	// ObservedAt is when autopatch read it.
	ObservedAt time.Time `json:"observed_at"`
}

// PollTargets returns the deployments whose status a poll reads: the open
// ones, and the closed ones whose final read is still due.
func PollTargets(ctx context.Context, db DBTX) ([]Deployment, error) {
	return queryDeployments(ctx, db, `WHERE d.state = 'open' OR (d.state = 'closed' AND d.final_polled_at IS NULL)
		ORDER BY d.id`)
}

// MarkFinalPolled records that the closed deployments ids had their final
// status read.
func MarkFinalPolled(ctx context.Context, db DBTX, ids []int64, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := db.Exec(ctx, `UPDATE deployments SET final_polled_at = $2, updated_at = now()
		WHERE id = ANY($1) AND state = 'closed' AND final_polled_at IS NULL`, ids, at); err != nil {
		return fmt.Errorf("store: mark final poll: %w", err)
	}
	return nil
}

// RecordResults stores each device's latest result and, when its status,
// error code or message differs from the stored one (or there was none),
// a history row. It returns the number of history rows written.
func RecordResults(ctx context.Context, db DBTX, rs []DeviceResult) (int64, error) {
	if len(rs) == 0 {
		return 0, nil
	}
	n := len(rs)
	deps, devices, types := make([]int64, n), make([]string, n), make([]int32, n)
	codes, messages := make([]*int64, n), make([]string, n)
	statusTimes, observed := make([]*time.Time, n), make([]time.Time, n)
	enforcement := make([]*int32, n)
	for i, r := range rs {
		deps[i], devices[i], types[i] = r.DeploymentID, r.Device, int32(r.StatusType)
		if r.EnforcementMessage != nil {
			v := int32(*r.EnforcementMessage)
			enforcement[i] = &v
		}
		codes[i], messages[i], statusTimes[i], observed[i] = r.ErrorCode, r.Message, r.StatusTime, r.ObservedAt
	}
	// One statement: every part sees the rows as they were before it, so
	// "changed" compares with the previous result (and data-modifying parts
	// run whether or not the final SELECT reads them).
	var changed int64
	err := db.QueryRow(ctx, `WITH input AS (
			SELECT DISTINCT ON (deployment_id, device_name) *
			FROM unnest($1::bigint[], $2::text[], $3::int[], $4::bigint[], $5::text[], $6::timestamptz[], $7::timestamptz[], $8::int[])
				AS t(deployment_id, device_name, status_type, error_code, message, status_time, observed_at, enforcement_message)
		), changed AS (
			SELECT i.* FROM input i
			LEFT JOIN device_results r ON r.deployment_id = i.deployment_id AND r.device_name = i.device_name
			WHERE r.deployment_id IS NULL
			   OR (r.status_type, r.error_code, r.message, r.enforcement_message)
			      IS DISTINCT FROM (i.status_type, i.error_code, i.message, i.enforcement_message)
		), history AS (
			INSERT INTO device_result_history (deployment_id, device_name, status_type, error_code, message, status_time, observed_at, enforcement_message)
			SELECT deployment_id, device_name, status_type, error_code, message, status_time, observed_at, enforcement_message FROM changed
			RETURNING 1
		), latest AS (
			INSERT INTO device_results (deployment_id, device_name, status_type, error_code, message, status_time, observed_at, enforcement_message)
			SELECT deployment_id, device_name, status_type, error_code, message, status_time, observed_at, enforcement_message FROM input
			ON CONFLICT (deployment_id, device_name) DO UPDATE SET
				status_type = EXCLUDED.status_type, error_code = EXCLUDED.error_code, message = EXCLUDED.message,
				status_time = EXCLUDED.status_time, observed_at = EXCLUDED.observed_at,
				enforcement_message = EXCLUDED.enforcement_message
		)
		SELECT count(*) FROM history`,
		deps, devices, types, codes, messages, statusTimes, observed, enforcement).Scan(&changed)
	if err != nil {
		return 0, fmt.Errorf("store: record %d device result(s): %w", n, err)
	}
	return changed, nil
}

// ChangeResults returns the latest results of a change's deployments, by
// deployment then device; device not empty keeps that device's only
// (compared without regard to case, as SCCM does).
func ChangeResults(ctx context.Context, db DBTX, change, device string) ([]DeviceResult, error) {
	rows, err := db.Query(ctx, `SELECT r.deployment_id, r.device_name, r.status_type, r.error_code, r.message, r.status_time, r.observed_at
		FROM device_results r JOIN deployments d ON d.id = r.deployment_id
		WHERE d.change_number = $1 AND ($2 = '' OR lower(r.device_name) = lower($2))
		ORDER BY r.deployment_id, r.device_name`, change, device)
	if err != nil {
		return nil, fmt.Errorf("store: results of %s: %w", change, err)
	}
	defer rows.Close()
	var out []DeviceResult
	for rows.Next() {
		var r DeviceResult
		if err := rows.Scan(&r.DeploymentID, &r.Device, &r.StatusType, &r.ErrorCode, &r.Message, &r.StatusTime, &r.ObservedAt); err != nil {
			return nil, fmt.Errorf("store: results of %s: %w", change, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: results of %s: %w", change, err)
	}
	return out, nil
}

// ResultHistory returns a device's result history in a deployment, oldest first.
func ResultHistory(ctx context.Context, db DBTX, deploymentID int64, device string) ([]DeviceResult, error) {
	rows, err := db.Query(ctx, `SELECT deployment_id, device_name, status_type, error_code, message, status_time, observed_at
		FROM device_result_history WHERE deployment_id = $1 AND device_name = $2 ORDER BY id`, deploymentID, device)
	if err != nil {
		return nil, fmt.Errorf("store: result history of %s: %w", device, err)
	}
	defer rows.Close()
	var out []DeviceResult
	for rows.Next() {
		var r DeviceResult
		if err := rows.Scan(&r.DeploymentID, &r.Device, &r.StatusType, &r.ErrorCode, &r.Message, &r.StatusTime, &r.ObservedAt); err != nil {
			return nil, fmt.Errorf("store: result history of %s: %w", device, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: result history of %s: %w", device, err)
	}
	return out, nil
}
