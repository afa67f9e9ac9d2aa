package jobs

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/internal/store"
)

// CreateDeploymentsArgs brings SCCM in line with a change's plan: it deletes
// the deployments the plan dropped and creates (disabled) the ones it added
// or moved, one WinRM call each per site, then schedules their windows.
//
// It is not unique: a plan that changes while this runs inserts another, and
// the second run finds only what is left to do.
type CreateDeploymentsArgs struct {
	ChangeNumber string `json:"change_number"`
}

// Kind implements river.JobArgs.
func (CreateDeploymentsArgs) Kind() string { return "create_deployments" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (CreateDeploymentsArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueSCCM}
}

// CreateDeploymentsWorker works CreateDeploymentsArgs.
type CreateDeploymentsWorker struct {
	river.WorkerDefaults[CreateDeploymentsArgs]
	deps *Deps
}

// NextRetry implements river.Worker. River's default backoff (1 s, 16 s,
// 81 s …) would let a short WinRM outage right after an approval push the
// creation past a window that starts soon after (found by make chaos): an
// emergency change is approved minutes before its window. Every second for
// the first five attempts, so a blip of a few seconds costs seconds, then
// the windows' own schedule, 2 s doubling to at most 30 s.
func (w *CreateDeploymentsWorker) NextRetry(job *river.Job[CreateDeploymentsArgs]) time.Time {
	return time.Now().Add(quickRetry(job.Attempt))
}

// waitForOpenPredecessor is how long a deployment waits for the open
// deployment that holds its SCCM name to close (a window moved while open).
const waitForOpenPredecessor = 5 * time.Second

// Work implements river.Worker. Each site is worked side by side in
// transactions of its own (docs/architecture.md §10.1), so a site that is
// down or slow holds back neither the others' creations nor their windows;
// the job retries the sites that failed. Each remote call runs inside a
// transaction that holds the rows it acts on, so an unwind or a re-plan of
// the same change waits for it and then sees its result; a crash before the
// commit leaves the rows as they were and the retry repeats the call, which
// SCCM answers idempotently (deterministic names; delete of a missing name
// is fine).
func (w *CreateDeploymentsWorker) Work(ctx context.Context, job *river.Job[CreateDeploymentsArgs]) error {
	number := job.Args.ChangeNumber
	sites, err := store.ChangeSites(ctx, w.deps.Pool, number, store.DeploymentPlanned, store.DeploymentObsolete)
	if err != nil {
		return err
	}
	var waiting atomic.Bool
	failed := eachSite(ctx, w.deps, sites, func(ctx context.Context, site string, conn SCCM) error {
		if err := w.deleteObsolete(ctx, number, site, conn); err != nil {
			return err
		}
		wait, err := w.create(ctx, number, site, conn)
		if wait {
			waiting.Store(true)
		}
		return err
	})
	if err := siteErrors(failed); err != nil {
		return err
	}
	if waiting.Load() {
		return river.JobSnooze(waitForOpenPredecessor)
	}
	return nil
}

// create creates, disabled and in one call, the planned deployments of
// the change at site; waiting reports one whose name an open deployment
// still holds.
func (w *CreateDeploymentsWorker) create(ctx context.Context, number, site string, conn SCCM) (waiting bool, err error) {
	err = pgx.BeginFunc(ctx, w.deps.Pool, func(tx pgx.Tx) error {
		rows, err := store.LockSiteDeployments(ctx, tx, number, site, store.DeploymentPlanned)
		if err != nil || len(rows) == 0 {
			return err
		}
		names := make([]string, len(rows))
		for i, d := range rows {
			names[i] = d.Name
		}
		open, err := store.OpenNames(ctx, tx, names)
		if err != nil {
			return err
		}
		var ready []store.Deployment
		for _, d := range rows {
			if open[d.Name] {
				waiting = true
				continue
			}
			ready = append(ready, d)
		}
		if len(ready) == 0 {
			return nil
		}
		created, err := conn.CreateDeployments(ctx, deploymentSpecs(ready))
		now := w.deps.now()
		if sccm.IsRefusal(err) {
			return w.refused(ctx, tx, ready, err, now)
		}
		if err != nil {
			return fmt.Errorf("create deployments of %s: %w", number, err)
		}
		ids := map[string]string{}
		for _, c := range created {
			ids[c.Name] = strconv.Itoa(c.ID)
		}
		for _, d := range ready {
			if err := store.Move(ctx, tx, store.Transition{ID: d.ID, From: store.DeploymentPlanned, To: store.DeploymentCreated,
				At: now, SCCMID: ids[d.Name], Reason: "created disabled in SCCM"}); err != nil {
				return err
			}
		}
		return note(ctx, tx, tableChangeRequest, ready[0].ChangeSysID, createdNote(ready))
	})
	return waiting, err
}

// deleteObsolete deletes the deployments the plan dropped at site, in one
// call.
func (w *CreateDeploymentsWorker) deleteObsolete(ctx context.Context, number, site string, conn SCCM) error {
	return pgx.BeginFunc(ctx, w.deps.Pool, func(tx pgx.Tx) error {
		rows, err := store.LockSiteDeployments(ctx, tx, number, site, store.DeploymentObsolete)
		if err != nil || len(rows) == 0 {
			return err
		}
		var names []string
		for _, d := range rows {
			// Several obsolete rows may share a name (a window moved
			// twice); SCCM has one object.
			if !slices.Contains(names, d.Name) {
				names = append(names, d.Name)
			}
		}
		if _, err := conn.DeleteDeployments(ctx, names); err != nil {
			return fmt.Errorf("delete deployments of %s: %w", number, err)
		}
		now := w.deps.now()
		for _, d := range rows {
			if err := store.Move(ctx, tx, store.Transition{ID: d.ID, From: store.DeploymentObsolete, To: store.DeploymentDeleted,
				At: now, Reason: "deleted from SCCM"}); err != nil {
				return err
			}
		}
		return nil
	})
}

func deploymentSpecs(rows []store.Deployment) []sccm.DeploymentSpec {
	specs := make([]sccm.DeploymentSpec, len(rows))
	for i, d := range rows {
		specs[i] = sccm.DeploymentSpec{
			Name: d.Name, Collection: d.Collection, UpdateGroup: d.UpdateGroup,
			// Available and due at the window's start: once enabled,
			// clients install at once (no maintenance window needed).
			Available: d.WindowStart, Deadline: d.WindowStart,
			SuppressRestart: d.SuppressRestart,
		}
	}
	return specs
}

// refused records SCCM's refusal (an unknown collection or update group, a
// name clash): retrying cannot help, a person must fix the cause and re-plan.
func (w *CreateDeploymentsWorker) refused(ctx context.Context, tx pgx.Tx, rows []store.Deployment, cause error, now time.Time) error {
	for _, d := range rows {
		if err := store.Move(ctx, tx, store.Transition{ID: d.ID, From: store.DeploymentPlanned, To: store.DeploymentFailed,
			At: now, Reason: cause.Error()}); err != nil {
			return err
		}
	}
	w.deps.Logger.ErrorContext(ctx, "SCCM refused the deployments of a change", "change", rows[0].ChangeNumber, "error", cause)
	text := fmt.Sprintf("autopatch could NOT create the deployments of %s: SCCM refused them.\n%s\n\nNothing was deployed. Fix the cause (collection or software update group names) and update the change to re-plan it.",
		rows[0].ChangeNumber, cause)
	return note(ctx, tx, tableChangeRequest, rows[0].ChangeSysID, text)
}

func createdNote(rows []store.Deployment) string {
	sort.Slice(rows, func(i, j int) bool {
		if !rows[i].WindowStart.Equal(rows[j].WindowStart) {
			return rows[i].WindowStart.Before(rows[j].WindowStart)
		}
		return rows[i].Name < rows[j].Name
	})
	var b strings.Builder
	fmt.Fprintf(&b, "autopatch created %d SCCM deployment(s) for %s, DISABLED until their window opens:\n", len(rows), rows[0].ChangeNumber)
	for _, d := range rows {
		restart := ""
		if d.SuppressRestart {
			restart = ", restart suppressed"
		}
		fmt.Fprintf(&b, "- %s → %q, update group %q: opens %s, closes %s UTC%s\n", d.Name, d.Collection, d.UpdateGroup,
			d.WindowStart.UTC().Format("2006-01-02 15:04:05"), d.CloseAt.UTC().Format("2006-01-02 15:04:05"), restart)
	}
	return strings.TrimRight(b.String(), "\n")
}
