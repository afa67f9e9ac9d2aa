package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Forced-wave states (forced_waves.state, migration 0010).
const (
	WavePlanned  = "planned"
	WaveOpen     = "open"
	WaveClosed   = "closed"
	WaveFailed   = "failed"
	WaveCanceled = "canceled"
)

// FailureForced: a forced device failed (or could not be forced), or a
// wave of forced remediation could not run (subject "forced wave <id>").
const FailureForced = "forced"

// Forced-device results (forced_devices.result).
const (
	ForcedPatched  = "patched"
	ForcedFailed   = "failed"
	ForcedNoStatus = "no_status"
	ForcedUnknown  = "unknown"
)

// ForcedWave is a wave of forced remediation.
type ForcedWave struct {
	ID           int64         `json:"id"`
	ChangeNumber string        `json:"change_number"`
	ChangeSysID  string        `json:"-"`
	Site         string        `json:"site"` // '' : the one site of AUTOPATCH_SCCM_*
	RunAt        time.Time     `json:"run_at"`
	Wave         int           `json:"wave"` // 0-based within the run
	NotBefore    time.Time     `json:"not_before"`
	Duration     time.Duration `json:"-"`
	Collection   string        `json:"collection"`
	Deployments  []string      `json:"deployments"`
	UpdateGroups []string      `json:"update_groups"`
	State        string        `json:"state"`
	Attempts     int           `json:"attempts"`
	LastError    string        `json:"last_error,omitempty"`
	OpenedAt     *time.Time    `json:"opened_at"`
	CloseAt      *time.Time    `json:"close_at"`
	ClosedAt     *time.Time    `json:"closed_at"`
}

// ForcedDevice is a device in a wave.
type ForcedDevice struct {
	Device     string    `json:"device"`
	Schedule   string    `json:"schedule"`
	Deadline   time.Time `json:"deadline"`
	ResourceID int       `json:"-"` // 0: unknown to autopatch, SCCM looks it up by name
	// Result and its evidence, once the wave's results were read.
	Result     string     `json:"result,omitempty"`
	StatusType *int       `json:"status_type,omitempty"`
	ErrorCode  *int64     `json:"error_code,omitempty"`
	StatusTime *time.Time `json:"status_time,omitempty"`
	ObservedAt *time.Time `json:"observed_at,omitempty"`
}

// WaveWithDevices is a wave and its devices, as the API and the console
// show a change's forced remediation.
type WaveWithDevices struct {
	ForcedWave
	Devices []ForcedDevice `json:"devices"`
}

// ChangeForcing returns a change's waves in order, each with its devices.
func ChangeForcing(ctx context.Context, db DBTX, change string) ([]WaveWithDevices, error) {
	ws, err := ChangeWaves(ctx, db, change)
	if err != nil {
		return nil, err
	}
	out := make([]WaveWithDevices, 0, len(ws))
	for _, w := range ws {
		devs, err := WaveDevices(ctx, db, w.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, WaveWithDevices{ForcedWave: w, Devices: devs})
	}
	return out, nil
}

const waveColumns = `w.id, w.change_number, c.sys_id, w.site, w.run_at, w.wave, w.not_before, w.duration, w.collection,
	w.deployments, w.update_groups, w.state, w.attempts, w.last_error, w.opened_at, w.close_at, w.closed_at`

func scanWave(row pgx.CollectableRow) (ForcedWave, error) {
	var w ForcedWave
	err := row.Scan(&w.ID, &w.ChangeNumber, &w.ChangeSysID, &w.Site, &w.RunAt, &w.Wave, &w.NotBefore, &w.Duration, &w.Collection,
		&w.Deployments, &w.UpdateGroups, &w.State, &w.Attempts, &w.LastError, &w.OpenedAt, &w.CloseAt, &w.ClosedAt)
	return w, err
}

func queryWaves(ctx context.Context, db DBTX, where string, args ...any) ([]ForcedWave, error) {
	rows, err := db.Query(ctx, `SELECT `+waveColumns+` FROM forced_waves w JOIN changes c ON c.number = w.change_number `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("store: forced waves: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanWave)
	if err != nil {
		return nil, fmt.Errorf("store: forced waves: %w", err)
	}
	return out, nil
}

// ForcedRun is what a forcing decision writes: the waves in their order,
// and each wave's devices.
type ForcedRun struct {
	Change       string
	Site         string
	RunAt        time.Time
	NotBefore    time.Time
	Duration     time.Duration
	Collection   string
	Deployments  []string
	UpdateGroups []string
	Waves        [][]ForcedDevice
	PlannedAt    time.Time
}

// InsertForcedRun writes a run's waves (in order, so their ids are in
// order) and devices, and returns the waves' ids. A device already forced
// in the change, or a run already written, is a conflict: the caller
// decides under the change's lock, so it never happens but by a bug.
func InsertForcedRun(ctx context.Context, tx pgx.Tx, r ForcedRun) ([]int64, error) {
	ids := make([]int64, len(r.Waves))
	for i, devs := range r.Waves {
		if err := tx.QueryRow(ctx, `INSERT INTO forced_waves (change_number, site, run_at, wave, not_before, duration, collection,
				deployments, update_groups, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id`,
			r.Change, r.Site, r.RunAt, i, r.NotBefore, r.Duration, r.Collection, r.Deployments, r.UpdateGroups, r.PlannedAt).Scan(&ids[i]); err != nil {
			return nil, fmt.Errorf("store: forced wave %d of %s: %w", i, r.Change, err)
		}
		names, schedules, deadlines := make([]string, len(devs)), make([]string, len(devs)), make([]time.Time, len(devs))
		for j, d := range devs {
			names[j], schedules[j], deadlines[j] = d.Device, d.Schedule, d.Deadline
		}
		if _, err := tx.Exec(ctx, `INSERT INTO forced_devices (change_number, device_name, wave_id, schedule_name, deadline, planned_at)
			SELECT $1, n, $2, s, d, $3 FROM unnest($4::text[], $5::text[], $6::timestamptz[]) AS x(n, s, d)`,
			r.Change, ids[i], r.PlannedAt, names, schedules, deadlines); err != nil {
			return nil, fmt.Errorf("store: forced devices of wave %d of %s: %w", i, r.Change, err)
		}
	}
	return ids, nil
}

// ForcedNames returns the devices of a change already in a forced wave
// (lower-case names), whatever became of the wave.
func ForcedNames(ctx context.Context, db DBTX, change string) (map[string]bool, error) {
	rows, err := db.Query(ctx, `SELECT lower(device_name) FROM forced_devices WHERE change_number = $1`, change)
	if err != nil {
		return nil, fmt.Errorf("store: forced devices of %s: %w", change, err)
	}
	out := map[string]bool{}
	var n string
	if _, err := pgx.ForEachRow(rows, []any{&n}, func() error { out[n] = true; return nil }); err != nil {
		return nil, fmt.Errorf("store: forced devices of %s: %w", change, err)
	}
	return out, nil
}

// LastForcedEnd is when the forced waves already queued will have ended at
// the earliest, seen from now: a new run starts no sooner (one collection,
// one wave at a time). Used for the plan note only; the keeper decides.
func LastForcedEnd(ctx context.Context, db DBTX, site string, now time.Time) (time.Time, error) {
	var openEnd *time.Time
	var queued time.Duration
	err := db.QueryRow(ctx, `SELECT
		(SELECT max(close_at) FROM forced_waves WHERE state = 'open' AND site = $1),
		(SELECT coalesce(sum(duration), '0') FROM forced_waves WHERE state = 'planned' AND site = $1)`, site).Scan(&openEnd, &queued)
	if err != nil {
		return time.Time{}, fmt.Errorf("store: forced queue: %w", err)
	}
	end := now
	if openEnd != nil && openEnd.After(end) {
		end = *openEnd
	}
	return end.Add(queued), nil
}

// LockNextWave returns the wave whose turn it is at now, locked, or nil:
// the first planned wave, when no wave is open and its not_before has
// come. Another replica holding it (opening it now) is skipped.
func LockNextWave(ctx context.Context, tx pgx.Tx, site string, now time.Time) (*ForcedWave, error) {
	var open bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM forced_waves WHERE state = 'open' AND site = $1)`, site).Scan(&open); err != nil {
		return nil, fmt.Errorf("store: forced waves: %w", err)
	}
	if open {
		return nil, nil
	}
	ws, err := queryWaves(ctx, tx, `WHERE w.id = (SELECT id FROM forced_waves WHERE state = 'planned' AND site = $2 ORDER BY id LIMIT 1)
		AND w.state = 'planned' AND w.not_before <= $1 FOR NO KEY UPDATE OF w SKIP LOCKED`, now, site)
	if err != nil || len(ws) == 0 {
		return nil, err
	}
	return &ws[0], nil
}

// LockWavesToClose returns the open waves that must close by now, locked;
// rows another replica holds are skipped.
func LockWavesToClose(ctx context.Context, tx pgx.Tx, site string, now time.Time) ([]ForcedWave, error) {
	return queryWaves(ctx, tx, `WHERE w.state = 'open' AND w.site = $2 AND w.close_at <= $1 ORDER BY w.id FOR NO KEY UPDATE OF w SKIP LOCKED`, now, site)
}

// GetWave reads one wave.
func GetWave(ctx context.Context, db DBTX, id int64) (ForcedWave, error) {
	ws, err := queryWaves(ctx, db, `WHERE w.id = $1`, id)
	if err != nil {
		return ForcedWave{}, err
	}
	if len(ws) == 0 {
		return ForcedWave{}, ErrNotFound
	}
	return ws[0], nil
}

// ChangeWaves returns a change's waves in order.
func ChangeWaves(ctx context.Context, db DBTX, change string) ([]ForcedWave, error) {
	return queryWaves(ctx, db, `WHERE w.change_number = $1 ORDER BY w.id`, change)
}

// WaveDevices returns a wave's devices in name order, with the ResourceID
// autopatch last saw for each.
func WaveDevices(ctx context.Context, db DBTX, waveID int64) ([]ForcedDevice, error) {
	rows, err := db.Query(ctx, `SELECT f.device_name, f.schedule_name, f.deadline, coalesce(d.resource_id, 0),
			coalesce(f.result, ''), f.status_type, f.error_code, f.status_time, f.observed_at
		FROM forced_devices f LEFT JOIN devices d ON lower(d.name) = lower(f.device_name)
		WHERE f.wave_id = $1 ORDER BY lower(f.device_name)`, waveID)
	if err != nil {
		return nil, fmt.Errorf("store: devices of forced wave %d: %w", waveID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ForcedDevice, error) {
		var d ForcedDevice
		var rid int64
		err := r.Scan(&d.Device, &d.Schedule, &d.Deadline, &rid, &d.Result, &d.StatusType, &d.ErrorCode, &d.StatusTime, &d.ObservedAt)
		d.ResourceID = int(rid)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: devices of forced wave %d: %w", waveID, err)
	}
	return out, nil
}

// OpenWave records that a wave's deployments were enabled at openedAt, to
// stay so until closeAt.
func OpenWave(ctx context.Context, tx pgx.Tx, id int64, openedAt, closeAt time.Time) error {
	tag, err := tx.Exec(ctx, `UPDATE forced_waves SET state = 'open', opened_at = $2, close_at = $3, last_error = ''
		WHERE id = $1 AND state = 'planned'`, id, openedAt, closeAt)
	if err != nil {
		return fmt.Errorf("store: open forced wave %d: %w", id, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("store: open forced wave %d: it is no longer planned", id)
	}
	return nil
}

// CloseWave records that a wave's deployments were disabled at at.
func CloseWave(ctx context.Context, tx pgx.Tx, id int64, at time.Time, detail string) error {
	tag, err := tx.Exec(ctx, `UPDATE forced_waves SET state = 'closed', closed_at = $2, detail = $3
		WHERE id = $1 AND state = 'open'`, id, at, detail)
	if err != nil {
		return fmt.Errorf("store: close forced wave %d: %w", id, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("store: close forced wave %d: it is not open", id)
	}
	return nil
}

// RecordWaveAttempt counts a failed attempt to open a wave, outside the
// transaction that failed, and returns the attempts so far.
func RecordWaveAttempt(ctx context.Context, db DBTX, id int64, cause string) (int, error) {
	var n int
	err := db.QueryRow(ctx, `UPDATE forced_waves SET attempts = attempts + 1, last_error = $2
		WHERE id = $1 AND state = 'planned' RETURNING attempts`, id, cause).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: attempt of forced wave %d: %w", id, err)
	}
	return n, nil
}

// FailRun marks every planned wave of a run (a change, force time and
// site) failed, from the wave that could not run on: their devices stay
// unpatched and the caller reports it.
func FailRun(ctx context.Context, tx pgx.Tx, change, site string, runAt time.Time, detail string) (int, error) {
	tag, err := tx.Exec(ctx, `UPDATE forced_waves SET state = 'failed', detail = $3
		WHERE change_number = $1 AND run_at = $2 AND site = $4 AND state = 'planned'`, change, runAt, detail, site)
	if err != nil {
		return 0, fmt.Errorf("store: fail forced run of %s: %w", change, err)
	}
	return int(tag.RowsAffected()), nil
}

// CancelForcing takes back a canceled change's forcing: waves not yet open
// are canceled, an open one closes now (the keeper disables it). It
// returns how many of each.
func CancelForcing(ctx context.Context, tx pgx.Tx, change string, now time.Time) (canceled, closing int, err error) {
	tag, err := tx.Exec(ctx, `UPDATE forced_waves SET state = 'canceled', detail = 'change canceled'
		WHERE change_number = $1 AND state = 'planned'`, change)
	if err != nil {
		return 0, 0, fmt.Errorf("store: cancel forcing of %s: %w", change, err)
	}
	canceled = int(tag.RowsAffected())
	tag, err = tx.Exec(ctx, `UPDATE forced_waves SET close_at = $2
		WHERE change_number = $1 AND state = 'open' AND close_at > $2`, change, now)
	if err != nil {
		return 0, 0, fmt.Errorf("store: cancel forcing of %s: %w", change, err)
	}
	return canceled, int(tag.RowsAffected()), nil
}

// ForcedResult is one device's result in its wave.
type ForcedResult struct {
	Device     string
	Result     string
	StatusType *int
	ErrorCode  *int64
	StatusTime *time.Time
}

// RecordForcedResults stores the results of a wave's devices, read at at,
// and marks the wave's results read.
func RecordForcedResults(ctx context.Context, tx pgx.Tx, waveID int64, rs []ForcedResult, at time.Time) error {
	for _, r := range rs {
		if _, err := tx.Exec(ctx, `UPDATE forced_devices SET result = $3, status_type = $4, error_code = $5,
				status_time = $6, observed_at = $7
			WHERE wave_id = $1 AND lower(device_name) = lower($2)`,
			waveID, r.Device, r.Result, r.StatusType, r.ErrorCode, r.StatusTime, at); err != nil {
			return fmt.Errorf("store: result of forced %s: %w", r.Device, err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE forced_waves SET results_at = $2 WHERE id = $1`, waveID, at); err != nil {
		return fmt.Errorf("store: results of forced wave %d: %w", waveID, err)
	}
	return nil
}

// ForcedEvidence is what the ledger needs of a forced device.
type ForcedEvidence struct {
	Wave       int64
	State      string     // its wave's state
	OpenedAt   *time.Time // when its wave opened: when it was forced
	PlannedAt  time.Time
	Result     string
	StatusType *int
	ErrorCode  *int64
	StatusTime *time.Time
	ObservedAt *time.Time
}

// ForcedOf returns the forced devices of a change (lower-case name).
func ForcedOf(ctx context.Context, db DBTX, change string) (map[string]ForcedEvidence, error) {
	rows, err := db.Query(ctx, `SELECT lower(f.device_name), w.id, w.state, w.opened_at, f.planned_at, coalesce(f.result, ''),
			f.status_type, f.error_code, f.status_time, f.observed_at
		FROM forced_devices f JOIN forced_waves w ON w.id = f.wave_id WHERE f.change_number = $1`, change)
	if err != nil {
		return nil, fmt.Errorf("store: forced devices of %s: %w", change, err)
	}
	out := map[string]ForcedEvidence{}
	var name string
	var e ForcedEvidence
	if _, err := pgx.ForEachRow(rows, []any{&name, &e.Wave, &e.State, &e.OpenedAt, &e.PlannedAt, &e.Result,
		&e.StatusType, &e.ErrorCode, &e.StatusTime, &e.ObservedAt}, func() error {
		out[strings.ToLower(name)] = e
		return nil
	}); err != nil {
		return nil, fmt.Errorf("store: forced devices of %s: %w", change, err)
	}
	return out, nil
}

// DeviceRequestItems returns, for each named device, the request item
// (number and sys_id) that last put it into its schedule: where its owner
// is reached. Devices without one are absent.
func DeviceRequestItems(ctx context.Context, db DBTX, names []string) (map[string][2]string, error) {
	rows, err := db.Query(ctx, `SELECT lower(d.name), e.record_number, e.record_sys_id
		FROM devices d
		JOIN LATERAL (SELECT a.webhook_event FROM device_assignments a
			WHERE a.device_id = d.id AND a.outcome IN ('moved', 'already_there')
			ORDER BY a.created_at DESC LIMIT 1) last ON true
		JOIN webhook_events e ON e.id = last.webhook_event
		WHERE lower(d.name) = ANY(SELECT lower(n) FROM unnest($1::text[]) AS n)`, names)
	if err != nil {
		return nil, fmt.Errorf("store: request items of %d device(s): %w", len(names), err)
	}
	out := map[string][2]string{}
	var n, num, sys string
	if _, err := pgx.ForEachRow(rows, []any{&n, &num, &sys}, func() error { out[n] = [2]string{num, sys}; return nil }); err != nil {
		return nil, fmt.Errorf("store: request items of %d device(s): %w", len(names), err)
	}
	return out, nil
}
