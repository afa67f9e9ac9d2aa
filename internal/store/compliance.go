package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ScopeDevice is a managed device of a schedule in a change's scope.
type ScopeDevice struct {
	Name     string
	Schedule string
	Service  string
	Tier     string
}

// LedgerDeployment is a deployment of a change with what the ledger needs
// of it: its window and whether its final status read happened.
type LedgerDeployment struct {
	Deployment
	FinalPolledAt *time.Time
}

// ClientHealth is one device's SCCM client state as the pre-flight read it.
type ClientHealth struct {
	Change            string
	Device            string
	Schedule          string
	Installed         bool
	Active            bool
	LastPolicyRequest *time.Time
	ObservedAt        time.Time
}

// ManualCompliance is one manual device's compliance read.
type ManualCompliance struct {
	Change        string
	Device        string
	Schedule      string
	Required      int
	RebootPending bool
	ObservedAt    time.Time
}

// LedgerEvidence is everything stored about a change that its compliance
// ledger is decided from.
type LedgerEvidence struct {
	Change      ChangeRow
	Plan        *Plan             // nil: never planned
	Kinds       map[string]string // schedule → kind
	Collections map[string]string // schedule → collection
	Devices     []ScopeDevice
	Deployments []LedgerDeployment
	Results     []DeviceResult
	Clients     []ClientHealth
	Manual      []ManualCompliance
	// Deferrals is the deferral in force of each deferred device
	// (lower-case name → until).
	Deferrals map[string]time.Time
	// Forced is each forced device (lower-case name), §9.2.
	Forced map[string]ForcedEvidence
}

// ChangeLedgerEvidence reads the evidence of one change's ledger. An
// unknown change is ErrNotFound.
func ChangeLedgerEvidence(ctx context.Context, db DBTX, number string) (LedgerEvidence, error) {
	var ev LedgerEvidence
	c, err := GetChange(ctx, db, number)
	if err != nil {
		return ev, err
	}
	ev.Change = c
	if ev.Deferrals, err = DeferralsOf(ctx, db, number); err != nil {
		return ev, err
	}
	if ev.Forced, err = ForcedOf(ctx, db, number); err != nil {
		return ev, err
	}
	p, err := LatestPlan(ctx, db, number)
	switch {
	case err == nil:
		ev.Plan = &p
	case !errors.Is(err, ErrNotFound):
		return ev, err
	}
	wrap := func(what string, err error) error {
		return fmt.Errorf("store: ledger of %s: %s: %w", number, what, err)
	}

	rows, err := db.Query(ctx, `SELECT name, kind, collection FROM schedules`)
	if err != nil {
		return ev, wrap("schedules", err)
	}
	ev.Kinds, ev.Collections = map[string]string{}, map[string]string{}
	var name, kind, collection string
	if _, err := pgx.ForEachRow(rows, []any{&name, &kind, &collection}, func() error {
		ev.Kinds[name], ev.Collections[name] = kind, collection
		return nil
	}); err != nil {
		return ev, wrap("schedules", err)
	}

	var scope []string
	if ev.Plan != nil {
		for _, e := range ev.Plan.Entries {
			scope = append(scope, e.Schedule)
		}
	}
	rows, err = db.Query(ctx, `SELECT name, schedule_name, coalesce(service, ''), coalesce(tier, '') FROM devices
		WHERE schedule_name = ANY($1) ORDER BY lower(name)`, scope)
	if err != nil {
		return ev, wrap("devices", err)
	}
	ev.Devices, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ScopeDevice, error) {
		var d ScopeDevice
		err := r.Scan(&d.Name, &d.Schedule, &d.Service, &d.Tier)
		return d, err
	})
	if err != nil {
		return ev, wrap("devices", err)
	}

	deps, err := ChangeDeployments(ctx, db, number)
	if err != nil {
		return ev, err
	}
	finals := map[int64]*time.Time{}
	rows, err = db.Query(ctx, `SELECT id, final_polled_at FROM deployments WHERE change_number = $1`, number)
	if err != nil {
		return ev, wrap("deployments", err)
	}
	var id int64
	var fp *time.Time
	if _, err := pgx.ForEachRow(rows, []any{&id, &fp}, func() error { finals[id] = fp; return nil }); err != nil {
		return ev, wrap("deployments", err)
	}
	for _, d := range deps {
		ev.Deployments = append(ev.Deployments, LedgerDeployment{Deployment: d, FinalPolledAt: finals[d.ID]})
	}

	rows, err = db.Query(ctx, `SELECT r.deployment_id, r.device_name, r.status_type, r.error_code, r.message,
			r.enforcement_message, r.status_time, r.observed_at
		FROM device_results r JOIN deployments d ON d.id = r.deployment_id
		WHERE d.change_number = $1 ORDER BY r.deployment_id, r.device_name`, number)
	if err != nil {
		return ev, wrap("results", err)
	}
	ev.Results, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (DeviceResult, error) {
		var x DeviceResult
		err := r.Scan(&x.DeploymentID, &x.Device, &x.StatusType, &x.ErrorCode, &x.Message, &x.EnforcementMessage, &x.StatusTime, &x.ObservedAt)
		return x, err
	})
	if err != nil {
		return ev, wrap("results", err)
	}

	rows, err = db.Query(ctx, `SELECT change_number, device_name, schedule_name, installed, active, last_policy_request, observed_at
		FROM client_health WHERE change_number = $1`, number)
	if err != nil {
		return ev, wrap("client health", err)
	}
	ev.Clients, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ClientHealth, error) {
		var x ClientHealth
		err := r.Scan(&x.Change, &x.Device, &x.Schedule, &x.Installed, &x.Active, &x.LastPolicyRequest, &x.ObservedAt)
		return x, err
	})
	if err != nil {
		return ev, wrap("client health", err)
	}

	rows, err = db.Query(ctx, `SELECT change_number, device_name, schedule_name, required, reboot_pending, observed_at
		FROM manual_compliance WHERE change_number = $1`, number)
	if err != nil {
		return ev, wrap("manual compliance", err)
	}
	ev.Manual, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ManualCompliance, error) {
		var x ManualCompliance
		err := r.Scan(&x.Change, &x.Device, &x.Schedule, &x.Required, &x.RebootPending, &x.ObservedAt)
		return x, err
	})
	if err != nil {
		return ev, wrap("manual compliance", err)
	}
	return ev, nil
}

// ChangesStartingIn returns the changes, not canceled, whose planned start
// is in [from, to): a patch cycle's changes.
func ChangesStartingIn(ctx context.Context, db DBTX, from, to time.Time) ([]string, error) {
	rows, err := db.Query(ctx, `SELECT number FROM changes WHERE start_at >= $1 AND start_at < $2
		AND status <> 'canceled' ORDER BY start_at, number`, from, to)
	if err != nil {
		return nil, fmt.Errorf("store: changes of the cycle: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: changes of the cycle: %w", err)
	}
	return out, nil
}

// RecordClientHealth stores pre-flight reads, replacing earlier ones.
func RecordClientHealth(ctx context.Context, db DBTX, hs []ClientHealth) error {
	for _, h := range hs {
		if _, err := db.Exec(ctx, `INSERT INTO client_health (change_number, device_name, schedule_name, installed, active, last_policy_request, observed_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (change_number, device_name) DO UPDATE SET schedule_name = EXCLUDED.schedule_name,
				installed = EXCLUDED.installed, active = EXCLUDED.active,
				last_policy_request = EXCLUDED.last_policy_request, observed_at = EXCLUDED.observed_at`,
			h.Change, h.Device, h.Schedule, h.Installed, h.Active, h.LastPolicyRequest, h.ObservedAt); err != nil {
			return fmt.Errorf("store: client health of %s: %w", h.Device, err)
		}
	}
	return nil
}

// RecordManualCompliance stores compliance reads, replacing earlier ones.
func RecordManualCompliance(ctx context.Context, db DBTX, ms []ManualCompliance) error {
	for _, m := range ms {
		if _, err := db.Exec(ctx, `INSERT INTO manual_compliance (change_number, device_name, schedule_name, required, reboot_pending, observed_at)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (change_number, device_name) DO UPDATE SET schedule_name = EXCLUDED.schedule_name,
				required = EXCLUDED.required, reboot_pending = EXCLUDED.reboot_pending, observed_at = EXCLUDED.observed_at`,
			m.Change, m.Device, m.Schedule, m.Required, m.RebootPending, m.ObservedAt); err != nil {
			return fmt.Errorf("store: compliance of %s: %w", m.Device, err)
		}
	}
	return nil
}

// Outcome is a device's outcome in a change, as the ledger decided it.
type Outcome struct {
	Device     string
	Outcome    string
	ByDeadline bool
	// Deadline is the device's deadline, moved by its deferral if any;
	// zero when unknown.
	Deadline time.Time
}

// RecordOutcomes stores each device's outcome in a change (of cycle
// YYYY-MM) and returns the devices whose outcome changed (or that had
// none), so that a change of outcome is acted on once.
func RecordOutcomes(ctx context.Context, db DBTX, change, cycle string, outcomes []Outcome, at time.Time) (map[string]string, error) {
	if len(outcomes) == 0 {
		return nil, nil
	}
	devices, values, by := make([]string, len(outcomes)), make([]string, len(outcomes)), make([]bool, len(outcomes))
	deadlines := make([]*time.Time, len(outcomes))
	for i, o := range outcomes {
		devices[i], values[i], by[i], deadlines[i] = o.Device, o.Outcome, o.ByDeadline, nullTime(o.Deadline)
	}
	rows, err := db.Query(ctx, `WITH input AS (
			SELECT DISTINCT ON (device_name) * FROM unnest($2::text[], $3::text[], $4::bool[], $7::timestamptz[])
				AS t(device_name, outcome, by_deadline, deadline)
		), changed AS (
			SELECT i.*, o.outcome IS DISTINCT FROM i.outcome AS new_outcome FROM input i LEFT JOIN compliance_outcomes o
				ON o.change_number = $1 AND o.device_name = i.device_name
			WHERE (o.outcome, o.by_deadline, o.deadline) IS DISTINCT FROM (i.outcome, i.by_deadline, i.deadline)
		), upsert AS (
			INSERT INTO compliance_outcomes (change_number, device_name, outcome, by_deadline, cycle, updated_at, deadline)
			SELECT $1, device_name, outcome, by_deadline, $5, $6, deadline FROM changed
			ON CONFLICT (change_number, device_name) DO UPDATE SET outcome = EXCLUDED.outcome,
				by_deadline = EXCLUDED.by_deadline, cycle = EXCLUDED.cycle, deadline = EXCLUDED.deadline,
				updated_at = EXCLUDED.updated_at
		)
		SELECT device_name, outcome FROM changed WHERE new_outcome`, change, devices, values, by, cycle, at, deadlines)
	if err != nil {
		return nil, fmt.Errorf("store: outcomes of %s: %w", change, err)
	}
	out := map[string]string{}
	var d, o string
	if _, err := pgx.ForEachRow(rows, []any{&d, &o}, func() error { out[d] = o; return nil }); err != nil {
		return nil, fmt.Errorf("store: outcomes of %s: %w", change, err)
	}
	return out, nil
}

// CycleCount is the number of devices with one outcome in one cycle, and
// how many of them were patched by their deadline.
type CycleCount struct {
	Cycle, Outcome      string
	Devices, ByDeadline int
	// PastDeadline counts the devices whose deadline has passed (by the
	// database's clock), when the outcome is neither patched nor deferred.
	PastDeadline int
}

// OutcomeCounts counts the stored outcomes by cycle and outcome.
func OutcomeCounts(ctx context.Context, db DBTX) ([]CycleCount, error) {
	rows, err := db.Query(ctx, `SELECT cycle, outcome, count(*), count(*) FILTER (WHERE by_deadline),
			count(*) FILTER (WHERE deadline < now() AND outcome NOT IN ('patched_in_window', 'patched_outside_window', 'manual_compliant', 'deferred'))
		FROM compliance_outcomes GROUP BY cycle, outcome ORDER BY cycle, outcome`)
	if err != nil {
		return nil, fmt.Errorf("store: outcome counts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (CycleCount, error) {
		var c CycleCount
		err := r.Scan(&c.Cycle, &c.Outcome, &c.Devices, &c.ByDeadline, &c.PastDeadline)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: outcome counts: %w", err)
	}
	return out, nil
}

// MarkNoted records that the named note of a change was written; false
// when it had been already, so that each note is written once.
func MarkNoted(ctx context.Context, db DBTX, change, note string) (bool, error) {
	tag, err := db.Exec(ctx, `INSERT INTO compliance_notes (change_number, note) VALUES ($1, $2)
		ON CONFLICT DO NOTHING`, change, note)
	if err != nil {
		return false, fmt.Errorf("store: note %q on %s: %w", note, change, err)
	}
	return tag.RowsAffected() == 1, nil
}

// ClosedWindowFailures counts, over the windows of a change that have
// closed and had their final status read, the devices with a failure
// (error or no status) and the devices that had a result at all: the
// figures an error budget (docs/architecture.md §9.3) is checked against.
func ClosedWindowFailures(ctx context.Context, db DBTX, change string) (failed, devices int, err error) {
	err = db.QueryRow(ctx, `WITH closed AS (
			SELECT id FROM deployments WHERE change_number = $1 AND state = 'closed' AND final_polled_at IS NOT NULL
		)
		SELECT
			(SELECT count(DISTINCT lower(f.subject)) FROM failures f
				WHERE f.change_number = $1 AND f.kind IN ('error', 'no_status') AND f.deployment_id IN (SELECT id FROM closed)),
			(SELECT count(DISTINCT lower(r.device_name)) FROM device_results r WHERE r.deployment_id IN (SELECT id FROM closed))`,
		change).Scan(&failed, &devices)
	if err != nil {
		return 0, 0, fmt.Errorf("store: failures of %s's closed windows: %w", change, err)
	}
	return failed, devices, nil
}

// ManualRequestItems returns the request items (number and sys_id) that put
// the devices of schedule into it: where its owners are reached.
func ManualRequestItems(ctx context.Context, db DBTX, schedule string) ([][2]string, error) {
	rows, err := db.Query(ctx, `SELECT DISTINCT e.record_number, e.record_sys_id
		FROM devices d
		JOIN LATERAL (SELECT a.webhook_event FROM device_assignments a
			WHERE a.device_id = d.id AND a.schedule_name = d.schedule_name AND a.outcome IN ('moved', 'already_there')
			ORDER BY a.created_at DESC LIMIT 1) last ON true
		JOIN webhook_events e ON e.id = last.webhook_event
		WHERE d.schedule_name = $1 ORDER BY e.record_number`, schedule)
	if err != nil {
		return nil, fmt.Errorf("store: request items of %s: %w", schedule, err)
	}
	var out [][2]string
	var n, s string
	if _, err := pgx.ForEachRow(rows, []any{&n, &s}, func() error { out = append(out, [2]string{n, s}); return nil }); err != nil {
		return nil, fmt.Errorf("store: request items of %s: %w", schedule, err)
	}
	return out, nil
}

// Noted reports whether the named note of a change was written.
func Noted(ctx context.Context, db DBTX, change, note string) (bool, error) {
	var ok bool
	err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM compliance_notes WHERE change_number = $1 AND note = $2)`, change, note).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("store: note %q on %s: %w", note, change, err)
	}
	return ok, nil
}

// PlannedChangesSince returns the planned changes whose start is at or
// after since: the ones whose ledger may still move.
func PlannedChangesSince(ctx context.Context, db DBTX, since time.Time) ([]string, error) {
	rows, err := db.Query(ctx, `SELECT number FROM changes WHERE status = 'planned' AND start_at >= $1 ORDER BY start_at, number`, since)
	if err != nil {
		return nil, fmt.Errorf("store: planned changes: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: planned changes: %w", err)
	}
	return out, nil
}

// UnsettledDeployments returns the closed deployments, already read for the
// last time at their window's end, of the planned changes started since
// since that still have a device whose outcome may change with a later
// status (not reported, pending a restart, failed): an install still
// running at the close, a late client, a restart or a retry after it.
func UnsettledDeployments(ctx context.Context, db DBTX, since time.Time) ([]Deployment, error) {
	return queryDeployments(ctx, db, `WHERE d.state = 'closed' AND d.final_polled_at IS NOT NULL
		AND c.status = 'planned' AND c.start_at >= $1
		AND EXISTS (SELECT 1 FROM compliance_outcomes o WHERE o.change_number = d.change_number
			AND o.outcome IN ('not_reported', 'pending_reboot', 'failed'))
		ORDER BY d.id`, since)
}
