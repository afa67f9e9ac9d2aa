package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/autopatch/autopatch/connectors/servicenow"
	"github.com/autopatch/autopatch/internal/store"
)

// FailureIncidentsArgs brings the ServiceNow side of failures up to date:
// open the incidents not opened yet (the correlation look-up inside
// CreateIncident finds one a crash left unrecorded), list a storm's new
// devices on its incident, and note and resolve the incidents whose device
// recovered. The Table API has no batch, so failures are handled one after
// the other, each recorded as soon as it is done.
type FailureIncidentsArgs struct {
	IDs []int64 `json:"ids"`
	// Sweep marks a job the sweep asked for: at most one per failure
	// waits or runs.
	Sweep bool `json:"sweep,omitempty"`
}

// Kind implements river.JobArgs.
func (FailureIncidentsArgs) Kind() string { return "failure_incidents" }

// InsertOpts implements river.JobArgsWithInsertOpts (see FailureAlertsArgs).
func (a FailureIncidentsArgs) InsertOpts() river.InsertOpts {
	opts := river.InsertOpts{Queue: QueueServiceNow}
	if a.Sweep {
		opts.UniqueOpts = river.UniqueOpts{ByArgs: true, ByState: inFlight}
	}
	return opts
}

// maxShortDescription is the length of incident.short_description on a
// stock instance.
const maxShortDescription = 160

// FailureIncidentsWorker works FailureIncidentsArgs.
type FailureIncidentsWorker struct {
	river.WorkerDefaults[FailureIncidentsArgs]
	deps *Deps
}

// Timeout implements river.Worker.
func (w *FailureIncidentsWorker) Timeout(job *river.Job[FailureIncidentsArgs]) time.Duration {
	return 5*time.Minute + time.Duration(len(job.Args.IDs))*time.Minute
}

// incidentChunk is how many failures a job holds the locks of at once:
// their incidents are looked up in one request (a storm of a thousand
// failures reported one each costs ten look-ups, not a thousand, against an
// instance's rate limit), then handled one after the other.
const incidentChunk = 100

// Work implements river.Worker. A failure that cannot be handled now does
// not hold back the others; the job is retried for what is left.
func (w *FailureIncidentsWorker) Work(ctx context.Context, job *river.Job[FailureIncidentsArgs]) error {
	var opened []int64
	var errs []error
	ids := sortedIDs(job.Args.IDs)
	for len(ids) > 0 && ctx.Err() == nil {
		chunk := ids[:min(incidentChunk, len(ids))]
		ids = ids[len(chunk):]
		o, err := w.chunk(ctx, chunk)
		opened = append(opened, o...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(opened) > 0 {
		// Their alerts can carry the incident number now (and be closed,
		// for a device that recovered in the meantime).
		if err := insert(ctx, FailureAlertsArgs{IDs: opened}); err != nil {
			errs = append(errs, fmt.Errorf("enqueue alert links: %w", err))
		}
	}
	return errors.Join(errs...)
}

// chunk brings the incidents of failures ids up to date under their locks
// and returns those it opened.
func (w *FailureIncidentsWorker) chunk(ctx context.Context, ids []int64) (opened []int64, err error) {
	var errs []error
	err = withFailureLocks(ctx, w.deps.Pool, lockIncidents, ids, func(conn *pgxpool.Conn) error {
		fs, err := store.FailuresByID(ctx, conn, ids)
		if err != nil {
			return err
		}
		var open []string
		for _, f := range fs {
			if f.Reported() && f.IncidentSysID == "" {
				open = append(open, f.CorrelationID)
			}
		}
		// Under the locks nobody else creates these incidents: one look-up
		// for all finds those a crash left unrecorded, and the others are
		// created without a look-up each. One alone keeps the guard's own.
		var found map[string]servicenow.Ref
		if len(open) > 1 {
			if found, err = w.deps.ServiceNow.FindIncidentsByCorrelation(ctx, open); err != nil {
				return err
			}
		}
		for _, f := range fs {
			created, err := w.one(ctx, conn, f, found, len(open) > 1)
			if err != nil {
				errs = append(errs, fmt.Errorf("incident of failure %d: %w", f.ID, err))
				if ctx.Err() != nil {
					break
				}
				continue
			}
			if created {
				opened = append(opened, f.ID)
			}
		}
		return nil
	})
	if err != nil {
		return opened, fmt.Errorf("incidents of %d failure(s): %w", len(ids), err)
	}
	return opened, errors.Join(errs...)
}

// one brings one failure's incident up to date and reports whether it
// opened it. found are the open incidents a look-up under the lock found
// (lookedUp: for every failure of the chunk).
func (w *FailureIncidentsWorker) one(ctx context.Context, conn *pgxpool.Conn, f store.Failure, found map[string]servicenow.Ref, lookedUp bool) (created bool, err error) {
	if !f.Reported() {
		return false, nil
	}
	if f.IncidentSysID == "" {
		if err := w.open(ctx, conn, &f, found, lookedUp); err != nil {
			return false, err
		}
		created = true
	}
	if f.Kind == store.FailureStorm && f.RecoveredAt == nil {
		if err := w.noteNewMembers(ctx, conn, f); err != nil {
			return created, err
		}
	}
	if f.RecoveredAt != nil && f.IncidentResolvedAt == nil {
		return created, w.resolve(ctx, conn, f)
	}
	return created, nil
}

// open raises f's incident and records it (updating f).
func (w *FailureIncidentsWorker) open(ctx context.Context, conn *pgxpool.Conn, f *store.Failure, found map[string]servicenow.Ref, lookedUp bool) error {
	r, err := describe(ctx, conn, w.deps, *f)
	if err != nil {
		return err
	}
	ref, exists := found[f.CorrelationID]
	if !exists {
		s := w.deps.Incidents
		ref, err = w.deps.ServiceNow.CreateIncident(ctx, servicenow.Incident{
			ShortDescription: truncate(r.summary, maxShortDescription),
			Description:      r.description,
			AssignmentGroup:  s.AssignmentGroup,
			Urgency:          s.urgency(),
			Impact:           s.impact(),
			CorrelationID:    f.CorrelationID,
			LookedUp:         lookedUp,
		})
		if err != nil {
			return err
		}
	}
	now := w.deps.now()
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if err := store.RecordIncident(ctx, tx, f.ID, ref.Number, ref.SysID, now); err != nil {
			return err
		}
		if f.Kind == store.FailureStorm {
			if err := store.RecordMembersNoted(ctx, tx, f.ID, r.members); err != nil {
				return err
			}
		}
		if f.Kind == store.FailureMissedWindow {
			return note(ctx, tx, tableChangeRequest, f.ChangeSysID, fmt.Sprintf(
				"autopatch: incident %s opened for the MISSED window %s; the SCOM alert carries its number.", ref.Number, f.Subject))
		}
		return nil
	})
	if err != nil {
		// The incident exists: the retry's correlation look-up finds it.
		return fmt.Errorf("record incident %s: %w", ref.Number, err)
	}
	w.deps.Metrics.IncidentsCreated.Inc()
	w.deps.Logger.InfoContext(ctx, "incident opened", "change", f.ChangeNumber, "subject", f.Subject, "kind", f.Kind, "incident", ref.Number)
	f.IncidentNumber, f.IncidentSysID, f.IncidentCreatedAt = ref.Number, ref.SysID, &now
	if f.Kind == store.FailureStorm {
		f.MembersNoted = max(f.MembersNoted, r.members)
	}
	return nil
}

// noteNewMembers lists on a storm's incident the devices that joined it
// after it was opened.
func (w *FailureIncidentsWorker) noteNewMembers(ctx context.Context, conn *pgxpool.Conn, f store.Failure) error {
	members, err := store.StormMembers(ctx, conn, f.ID)
	if err != nil || len(members) <= f.MembersNoted {
		return err
	}
	added := members[f.MembersNoted:]
	text := fmt.Sprintf("autopatch: %d more device(s) failed in this window (%d in all):\n%s", len(added), len(members), memberLines(added))
	if err := w.deps.ServiceNow.AddWorkNote(ctx, tableIncident, f.IncidentSysID, text); err != nil {
		return err
	}
	return store.RecordMembersNoted(ctx, conn, f.ID, len(members))
}

// resolve notes the recovery on f's incident and resolves it. The note is
// recorded before the resolution, so a retry does not write it twice.
func (w *FailureIncidentsWorker) resolve(ctx context.Context, conn *pgxpool.Conn, f store.Failure) error {
	text := recoveryText(f)
	if f.IncidentNotedAt == nil {
		if err := w.deps.ServiceNow.AddWorkNote(ctx, tableIncident, f.IncidentSysID, text); err != nil {
			return err
		}
		if err := store.RecordIncidentNoted(ctx, conn, f.ID, w.deps.now()); err != nil {
			return err
		}
	}
	if err := w.deps.ServiceNow.ResolveIncident(ctx, f.IncidentSysID, text); err != nil {
		return err
	}
	if err := store.RecordIncidentResolved(ctx, conn, f.ID, w.deps.now()); err != nil {
		return err
	}
	w.deps.Metrics.IncidentsResolved.Inc()
	w.deps.Logger.InfoContext(ctx, "incident resolved", "change", f.ChangeNumber, "subject", f.Subject, "incident", f.IncidentNumber)
	return nil
}

// truncate cuts s to at most n characters, marking the cut.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
