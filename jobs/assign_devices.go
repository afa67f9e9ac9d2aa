package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/internal/store"
)

// AssignDevicesArgs carries out one accepted schedule request: its devices
// move into the schedule's collection. The request itself is the
// webhook_events row EventID (read it with store.GetScheduleRequest), so the
// job's args stay small whatever the number of devices.
type AssignDevicesArgs struct {
	EventID uuid.UUID `json:"event_id"`
}

// Kind implements river.JobArgs.
func (AssignDevicesArgs) Kind() string { return "assign_devices" }

// InsertOpts runs assignments on the SCCM queue, once per event (River's
// default unique states include completed: an event is never assigned twice
// while its job is kept).
func (AssignDevicesArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueSCCM, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// AssignDevicesWorker moves the devices of a schedule request into the
// schedule's collection (and out of every other autopatch collection) in one
// SCCM call, records each device's assignment, and tells the requester on
// the RITM what happened to each device.
type AssignDevicesWorker struct {
	river.WorkerDefaults[AssignDevicesArgs]
	deps *Deps
}

// Work implements river.Worker. The assignment rows are written in the
// transaction that also enqueues the RITM note; a retry after a crash finds
// them and stops, and SetMembership answers "already there" to a repeat.
func (w *AssignDevicesWorker) Work(ctx context.Context, job *river.Job[AssignDevicesArgs]) error {
	req, err := store.GetScheduleRequest(ctx, w.deps.Pool, job.Args.EventID)
	if err != nil {
		return err
	}
	done, err := store.AssignmentsRecorded(ctx, w.deps.Pool, job.Args.EventID)
	if err != nil || done {
		return err
	}
	sched, ok := w.deps.Schedules.Get().Get(req.Schedule)
	if !ok {
		text := fmt.Sprintf("autopatch could not carry out %s: schedule %q is no longer in the schedules file. No device was moved; please order again with a current schedule.",
			req.RequestItem.Number, req.Schedule)
		return pgx.BeginFunc(ctx, w.deps.Pool, func(tx pgx.Tx) error {
			return note(ctx, tx, tableRequestItem, req.RequestItem.SysID, text)
		})
	}
	// Service safety is checked before any SCCM call: a refused request
	// changes no collection. The services' locks are held until the
	// assignments are recorded, so a concurrent request for the same
	// services is checked against them.
	unlock, rs, err := w.checkRequestSafety(ctx, req, sched)
	if err != nil {
		return err
	}
	defer unlock()
	if len(rs.verdict.Violations) > 0 && w.deps.Safety.rejectRequests() {
		return w.refuseRequest(ctx, req, sched, job.Args.EventID, rs)
	}
	warning := ""
	if len(rs.verdict.Violations) > 0 {
		warning = "service safety warning: " + rs.verdict.Violations[0].String()
	}
	conn, err := w.deps.sccmAt(sched.Site)
	if err != nil {
		return err
	}
	managed, err := store.ManagedCollections(ctx, w.deps.Pool)
	if err != nil {
		return err
	}
	// A device belongs to the site whose collection holds it: the move is
	// one call at the schedule's site, among that site's collections
	// (docs/architecture.md §10.1).
	managed = slices.DeleteFunc(managed, func(c string) bool {
		for _, other := range w.deps.Schedules.Get().All() {
			if other.Site != sched.Site && strings.EqualFold(other.Collection, c) {
				return true
			}
		}
		return false
	})
	moves := make([]sccm.Move, len(req.Devices))
	for i, d := range req.Devices {
		moves[i] = sccm.Move{Device: d.Name, Collection: sched.Collection}
	}
	results, err := conn.SetMembership(ctx, moves, managed)
	if sccm.IsRefusal(err) {
		// The schedule's collection does not exist in SCCM: nothing moved.
		text := fmt.Sprintf("autopatch could not carry out %s: SCCM refused the change of membership.\n%s\nNo device was moved. The SCCM administrators have been told through this note; please contact them.",
			req.RequestItem.Number, err)
		w.deps.Logger.ErrorContext(ctx, "SCCM refused a schedule request", "ritm", req.RequestItem.Number, "error", err)
		return errors.Join(pgx.BeginFunc(ctx, w.deps.Pool, func(tx pgx.Tx) error {
			return note(ctx, tx, tableRequestItem, req.RequestItem.SysID, text)
		}), river.JobCancel(err))
	}
	if err != nil {
		return fmt.Errorf("assign devices of %s: %w", req.RequestItem.Number, err)
	}
	byName := map[string]sccm.MoveResult{}
	for _, r := range results {
		byName[strings.ToLower(r.Device)] = r
	}
	return pgx.BeginFunc(ctx, w.deps.Pool, func(tx pgx.Tx) error {
		var b strings.Builder
		fmt.Fprintf(&b, "autopatch: schedule %s (collection %q) for %s, requested for %s:\n", sched.Name, sched.Collection, req.RequestItem.Number, req.RequestedFor)
		for _, d := range req.Devices {
			r, ok := byName[strings.ToLower(d.Name)]
			outcome, line := "unknown_device", "unknown to SCCM — not moved (check the name, or that the SCCM client is installed)"
			if ok {
				switch r.Outcome {
				case sccm.Moved:
					outcome, line = "moved", "moved into the collection"
					if len(r.RemovedFrom) > 0 {
						line += fmt.Sprintf(" (removed from %s)", strings.Join(quoteAll(r.RemovedFrom), ", "))
					}
				case sccm.AlreadyThere:
					outcome, line = "already_there", "already in the collection"
				}
			}
			if err := store.RecordAssignment(ctx, tx, store.Assignment{
				Device: d.Name, ResourceID: r.ResourceID, Schedule: sched.Name, Service: d.Service, Tier: d.Tier,
				RequestItem: req.RequestItem.Number, EventID: job.Args.EventID, Outcome: outcome, Detail: warning,
			}); err != nil {
				return err
			}
			fmt.Fprintf(&b, "- %s (%s, %s): %s\n", d.Name, d.Service, d.Tier, line)
		}
		b.WriteString(rs.warningText())
		return note(ctx, tx, tableRequestItem, req.RequestItem.SysID, strings.TrimRight(b.String(), "\n"))
	})
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}
