package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Deployment states (see migrations/0001_init.sql for the life cycle).
const (
	DeploymentPlanned  = "planned"
	DeploymentCreated  = "created"
	DeploymentOpen     = "open"
	DeploymentClosed   = "closed"
	DeploymentMissed   = "missed"
	DeploymentObsolete = "obsolete"
	DeploymentDeleted  = "deleted"
	DeploymentFailed   = "failed"
	// DeploymentHeld: rollout control holds it (error budget, tier gating,
	// pause); never enabled while held. HeldFrom is where it returns.
	DeploymentHeld = "held"
)

// Deployment is one SCCM deployment of a change.
type Deployment struct {
	ID           int64  `json:"id"`
	ChangeNumber string `json:"change_number"`
	Schedule     string `json:"schedule"`
	UpdateGroup  string `json:"update_group"`
	Name         string `json:"name"`
	Collection   string `json:"collection"`
	// Site is the code of the SCCM site the deployment lives at; empty is
	// the one site of AUTOPATCH_SCCM_* (docs/architecture.md §10.1).
	Site            string     `json:"site,omitempty"`
	WindowStart     time.Time  `json:"window_start"`
	WindowEnd       time.Time  `json:"window_end"`
	CloseAt         time.Time  `json:"close_at"`
	SuppressRestart bool       `json:"suppress_restart"`
	State           string     `json:"state"`
	Detail          string     `json:"detail,omitempty"`
	SCCMID          *string    `json:"sccm_id,omitempty"`
	OpenedAt        *time.Time `json:"opened_at,omitempty"`
	ClosedAt        *time.Time `json:"closed_at,omitempty"`
	HeldFrom        *string    `json:"held_from,omitempty"`
	ChangeSysID     string     `json:"-"`
}

// Locks on deployments and changes are FOR NO KEY UPDATE, not FOR UPDATE:
// the jobs change state columns, never keys, and the weaker lock does not
// conflict with the key-share locks that inserting device results, failures
// or plans takes on the rows they reference. With FOR UPDATE, a status poll
// committing its results made a window job's SKIP LOCKED pass over the
// deployments it had to close, and the close came seconds late.
const deploymentColumns = `d.id, d.change_number, d.schedule_name, d.update_group, d.name, d.collection,
	d.window_start, d.window_end, d.close_at, d.suppress_restart, d.state, d.detail, d.sccm_id,
	d.opened_at, d.closed_at, d.held_from, c.sys_id, d.site`

func scanDeployment(row pgx.CollectableRow) (Deployment, error) {
	var d Deployment
	err := row.Scan(&d.ID, &d.ChangeNumber, &d.Schedule, &d.UpdateGroup, &d.Name, &d.Collection,
		&d.WindowStart, &d.WindowEnd, &d.CloseAt, &d.SuppressRestart, &d.State, &d.Detail, &d.SCCMID,
		&d.OpenedAt, &d.ClosedAt, &d.HeldFrom, &d.ChangeSysID, &d.Site)
	return d, err
}

func queryDeployments(ctx context.Context, db DBTX, where string, args ...any) ([]Deployment, error) {
	rows, err := db.Query(ctx, `SELECT `+deploymentColumns+`
		FROM deployments d JOIN changes c ON c.number = d.change_number `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("store: deployments: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanDeployment)
	if err != nil {
		return nil, fmt.Errorf("store: deployments: %w", err)
	}
	return out, nil
}

// LockChange reads a change and locks its row until the transaction ends.
// Every job that changes a change's deployments takes this lock first, so
// plans, unwinds and webhooks about one change are serialised.
func LockChange(ctx context.Context, tx pgx.Tx, number string) (ChangeRow, error) {
	rows, err := tx.Query(ctx, `SELECT `+changeColumns+` FROM changes WHERE number = $1 FOR NO KEY UPDATE`, number)
	if err != nil {
		return ChangeRow{}, fmt.Errorf("store: lock change %s: %w", number, err)
	}
	c, err := pgx.CollectExactlyOneRow(rows, scanChange)
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return ChangeRow{}, fmt.Errorf("store: change %s: %w", number, ErrNotFound)
		}
		return ChangeRow{}, fmt.Errorf("store: lock change %s: %w", number, err)
	}
	return c, nil
}

// ChangeDeployments returns every deployment of a change, oldest first.
func ChangeDeployments(ctx context.Context, db DBTX, number string) ([]Deployment, error) {
	return queryDeployments(ctx, db, `WHERE d.change_number = $1 ORDER BY d.window_start, d.id`, number)
}

// LockChangeDeployments locks the deployments of a change in the given
// states, in id order (one order everywhere, so no deadlocks).
func LockChangeDeployments(ctx context.Context, tx pgx.Tx, number string, states ...string) ([]Deployment, error) {
	return queryDeployments(ctx, tx, `WHERE d.change_number = $1 AND d.state = ANY($2)
		ORDER BY d.id FOR NO KEY UPDATE OF d`, number, states)
}

// LockSiteDeployments is LockChangeDeployments for the deployments at one
// site: each site's transaction locks only its own rows, so the sites of a
// change are worked side by side.
func LockSiteDeployments(ctx context.Context, tx pgx.Tx, number, site string, states ...string) ([]Deployment, error) {
	return queryDeployments(ctx, tx, `WHERE d.change_number = $1 AND d.site = $2 AND d.state = ANY($3)
		ORDER BY d.id FOR NO KEY UPDATE OF d`, number, site, states)
}

// ChangeSites are the sites of a change's deployments in the given states.
func ChangeSites(ctx context.Context, db DBTX, number string, states ...string) ([]string, error) {
	rows, err := db.Query(ctx, `SELECT DISTINCT site FROM deployments WHERE change_number = $1 AND state = ANY($2) ORDER BY 1`, number, states)
	if err != nil {
		return nil, fmt.Errorf("store: sites of %s: %w", number, err)
	}
	sites, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: sites of %s: %w", number, err)
	}
	return sites, nil
}

// AdoptSitelessDeployments gives the deployments created while the estate
// had one site (empty site) the site code: when AUTOPATCH_SCCM_SITES is set,
// the first site listed is the one AUTOPATCH_SCCM_ENDPOINT was, and
// without a site they would never be opened, closed or polled again.
func AdoptSitelessDeployments(ctx context.Context, db DBTX, site string) (int64, error) {
	tag, err := db.Exec(ctx, `UPDATE deployments SET site = $1 WHERE site = ''`, site)
	if err != nil {
		return 0, fmt.Errorf("store: adopt deployments into site %s: %w", site, err)
	}
	return tag.RowsAffected(), nil
}

// LockDueToOpen locks the created deployments of site whose window has
// started by now, skipping rows another transaction holds: window jobs of
// nearby instants then run side by side, each taking what is due and not
// taken, instead of queueing behind each other's SCCM calls.
func LockDueToOpen(ctx context.Context, tx pgx.Tx, site string, now time.Time) ([]Deployment, error) {
	return queryDeployments(ctx, tx, `WHERE d.state = 'created' AND d.window_start <= $1 AND d.site = $2
		ORDER BY d.id FOR NO KEY UPDATE OF d SKIP LOCKED`, now, site)
}

// LockDueToClose locks the open deployments of site that must be closed by
// now, skipping rows another transaction holds (see LockDueToOpen).
func LockDueToClose(ctx context.Context, tx pgx.Tx, site string, now time.Time) ([]Deployment, error) {
	return queryDeployments(ctx, tx, `WHERE d.state = 'open' AND d.close_at <= $1 AND d.site = $2
		ORDER BY d.id FOR NO KEY UPDATE OF d SKIP LOCKED`, now, site)
}

// OpenNames returns those of names that an open deployment holds (a window
// moved while open keeps its SCCM name until it closes), in one query.
func OpenNames(ctx context.Context, db DBTX, names []string) (map[string]bool, error) {
	rows, err := db.Query(ctx, `SELECT DISTINCT name FROM deployments WHERE state = 'open' AND name = ANY($1)`, names)
	if err != nil {
		return nil, fmt.Errorf("store: open deployments: %w", err)
	}
	open, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: open deployments: %w", err)
	}
	out := make(map[string]bool, len(open))
	for _, n := range open {
		out[n] = true
	}
	return out, nil
}

// InsertDeployment adds a planned deployment.
func InsertDeployment(ctx context.Context, tx pgx.Tx, d Deployment) (int64, error) {
	var id int64
	err := tx.QueryRow(ctx, `INSERT INTO deployments (change_number, schedule_name, update_group, name, collection,
			window_start, window_end, close_at, suppress_restart, site)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9) RETURNING id`,
		d.ChangeNumber, d.Schedule, d.UpdateGroup, d.Name, d.Collection, d.WindowStart, d.WindowEnd, d.SuppressRestart, d.Site).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("store: insert deployment %s: %w", d.Name, mapErr(err))
	}
	if _, err := tx.Exec(ctx, `INSERT INTO deployment_transitions (deployment_id, from_state, to_state, reason)
		VALUES ($1, '', 'planned', 'planned')`, id); err != nil {
		return 0, fmt.Errorf("store: insert deployment %s: %w", d.Name, err)
	}
	return id, nil
}

// Transition moves a locked deployment from one state to another and records
// why. It fails when the row is not in the expected state: the caller's lock
// and re-read make that a bug, not a race.
type Transition struct {
	ID       int64
	From, To string
	Reason   string
	At       time.Time
	SCCMID   string        // set when not empty
	Window   *[2]time.Time // new window (re-plan), when not nil
	CloseAt  *time.Time    // new close time, when not nil
}

// Move applies t.
func Move(ctx context.Context, tx pgx.Tx, t Transition) error {
	var start, end *time.Time
	if t.Window != nil {
		start, end = &t.Window[0], &t.Window[1]
	}
	var sccmID *string
	if t.SCCMID != "" {
		sccmID = &t.SCCMID
	}
	tag, err := tx.Exec(ctx, `UPDATE deployments SET
			state = $3,
			detail = CASE WHEN $3 = state THEN detail ELSE $4 END,
			sccm_id = coalesce($5, sccm_id),
			opened_at = CASE WHEN $3 = 'open' AND state <> 'open' THEN $6 ELSE opened_at END,
			closed_at = CASE WHEN $3 = 'closed' AND state <> 'closed' THEN $6 ELSE closed_at END,
			window_start = coalesce($7, window_start),
			window_end = coalesce($8, window_end),
			close_at = coalesce($9, $8, close_at),
			held_from = CASE WHEN $3 = 'held' THEN coalesce(held_from, $2) END,
			updated_at = now()
		WHERE id = $1 AND state = $2`,
		t.ID, t.From, t.To, t.Reason, sccmID, t.At, start, end, t.CloseAt)
	if err != nil {
		return fmt.Errorf("store: deployment %d %s→%s: %w", t.ID, t.From, t.To, mapErr(err))
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("store: deployment %d is no longer %s", t.ID, t.From)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO deployment_transitions (deployment_id, from_state, to_state, reason, at)
		VALUES ($1, $2, $3, $4, $5)`, t.ID, t.From, t.To, t.Reason, t.At); err != nil {
		return fmt.Errorf("store: deployment %d transition: %w", t.ID, err)
	}
	return nil
}

// PlanEntry is one schedule's line of a plan: its window, or why none.
type PlanEntry struct {
	Schedule    string     `json:"schedule"`
	WindowStart *time.Time `json:"window_start,omitempty"`
	WindowEnd   *time.Time `json:"window_end,omitempty"`
	Unplaceable string     `json:"unplaceable,omitempty"`
	Held        string     `json:"held,omitempty"`
}

// Plan is a stored plan of a change.
type Plan struct {
	Version     int         `json:"version"`
	ChangeStart time.Time   `json:"change_start"`
	ChangeEnd   time.Time   `json:"change_end"`
	ComputedAt  time.Time   `json:"computed_at"`
	Entries     []PlanEntry `json:"entries"`
}

// InsertPlan stores a new version of a change's plan.
func InsertPlan(ctx context.Context, tx pgx.Tx, c ChangeRow, entries []PlanEntry) (int, error) {
	var id int64
	var version int
	err := tx.QueryRow(ctx, `INSERT INTO plans (change_number, version, change_start, change_end)
		SELECT $1, coalesce(max(version), 0) + 1, $2, $3 FROM plans WHERE change_number = $1
		RETURNING id, version`, c.Number, c.Start, c.End).Scan(&id, &version)
	if err != nil {
		return 0, fmt.Errorf("store: insert plan of %s: %w", c.Number, err)
	}
	for _, e := range entries {
		var unplaceable, held *string
		if e.Unplaceable != "" {
			unplaceable = &e.Unplaceable
		}
		if e.Held != "" {
			held = &e.Held
		}
		if _, err := tx.Exec(ctx, `INSERT INTO plan_entries (plan_id, schedule_name, window_start, window_end, unplaceable, held)
			VALUES ($1, $2, $3, $4, $5, $6)`, id, e.Schedule, e.WindowStart, e.WindowEnd, unplaceable, held); err != nil {
			return 0, fmt.Errorf("store: insert plan of %s: %s: %w", c.Number, e.Schedule, err)
		}
	}
	return version, nil
}

// LatestPlan returns the newest plan of a change.
func LatestPlan(ctx context.Context, db DBTX, number string) (Plan, error) {
	var p Plan
	var id int64
	err := db.QueryRow(ctx, `SELECT id, version, change_start, change_end, computed_at FROM plans
		WHERE change_number = $1 ORDER BY version DESC LIMIT 1`, number).Scan(&id, &p.Version, &p.ChangeStart, &p.ChangeEnd, &p.ComputedAt)
	if err != nil {
		return Plan{}, fmt.Errorf("store: plan of %s: %w", number, mapErr(err))
	}
	rows, err := db.Query(ctx, `SELECT schedule_name, window_start, window_end, coalesce(unplaceable, ''), coalesce(held, '')
		FROM plan_entries WHERE plan_id = $1 ORDER BY window_start NULLS LAST, schedule_name`, id)
	if err != nil {
		return Plan{}, fmt.Errorf("store: plan of %s: %w", number, err)
	}
	p.Entries, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (PlanEntry, error) {
		var e PlanEntry
		err := r.Scan(&e.Schedule, &e.WindowStart, &e.WindowEnd, &e.Unplaceable, &e.Held)
		return e, err
	})
	if err != nil {
		return Plan{}, fmt.Errorf("store: plan of %s: %w", number, err)
	}
	return p, nil
}

// SetChangeStatus records what autopatch has done with a change.
func SetChangeStatus(ctx context.Context, tx pgx.Tx, number, status string) error {
	if _, err := tx.Exec(ctx, `UPDATE changes SET status = $2, updated_at = now() WHERE number = $1`, number, status); err != nil {
		return fmt.Errorf("store: change %s status: %w", number, err)
	}
	return nil
}

// TransitionRow is one recorded state change of a deployment.
type TransitionRow struct {
	DeploymentID int64     `json:"-"`
	From         string    `json:"from"`
	To           string    `json:"to"`
	Reason       string    `json:"reason"`
	At           time.Time `json:"at"`
}

// ChangeTransitions returns the state history of a change's deployments,
// oldest first.
func ChangeTransitions(ctx context.Context, db DBTX, number string) ([]TransitionRow, error) {
	rows, err := db.Query(ctx, `SELECT t.deployment_id, t.from_state, t.to_state, t.reason, t.at
		FROM deployment_transitions t JOIN deployments d ON d.id = t.deployment_id
		WHERE d.change_number = $1 ORDER BY t.at, t.id`, number)
	if err != nil {
		return nil, fmt.Errorf("store: transitions of %s: %w", number, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[TransitionRow])
	if err != nil {
		return nil, fmt.Errorf("store: transitions of %s: %w", number, err)
	}
	return out, nil
}

// NextWindowInstant is the earliest instant at which a deployment of site
// or, for the single site (empty), a forced wave is due to open or close (it
// may be past: due now), or nil when none waits. Forcing is built for the
// single site only (docs/architecture.md §10.1).
func NextWindowInstant(ctx context.Context, db DBTX, site string) (*time.Time, error) {
	var at *time.Time
	err := db.QueryRow(ctx, `SELECT least(
		(SELECT min(window_start) FROM deployments WHERE state = 'created' AND site = $1),
		(SELECT min(close_at) FROM deployments WHERE state = 'open' AND site = $1),
		(SELECT min(close_at) FROM forced_waves WHERE site = $1 AND state = 'open'),
		-- a forced wave's turn comes when none of its site is open (forced_waves)
		(SELECT not_before FROM forced_waves WHERE site = $1 AND state = 'planned'
			AND NOT EXISTS (SELECT 1 FROM forced_waves WHERE site = $1 AND state = 'open') ORDER BY id LIMIT 1))`, site).Scan(&at)
	if err != nil {
		return nil, fmt.Errorf("store: next window instant: %w", err)
	}
	return at, nil
}
