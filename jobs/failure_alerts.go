package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/autopatch/autopatch/connectors/scom"
	"github.com/autopatch/autopatch/internal/store"
)

// FailureAlertsArgs brings the SCOM side of failures up to date, in one
// WinRM call per step whatever their number: raise the alerts not raised
// yet, set the TicketId of those whose incident exists, close those whose
// device recovered (once linked).
type FailureAlertsArgs struct {
	IDs []int64 `json:"ids"`
	// Sweep marks a job the sweep asked for: at most one per failure
	// waits or runs.
	Sweep bool `json:"sweep,omitempty"`
}

// Kind implements river.JobArgs.
func (FailureAlertsArgs) Kind() string { return "failure_alerts" }

// InsertOpts implements river.JobArgsWithInsertOpts. Jobs asked for by a
// decision are not unique: each is inserted once, in the decision's
// transaction, and a job that finds its work done does nothing.
func (a FailureAlertsArgs) InsertOpts() river.InsertOpts {
	opts := river.InsertOpts{Queue: QueueSCOM}
	if a.Sweep {
		opts.UniqueOpts = river.UniqueOpts{ByArgs: true, ByState: inFlight}
	}
	return opts
}

// alertPendingRetry is when a job whose alert the management pack's rule
// had not raised yet looks again.
const alertPendingRetry = 5 * time.Second

// alertsPerJob bounds the pending failures a job takes along with its own.
const alertsPerJob = 1000

// alertTimeout bounds one job: three WinRM calls at most.
const alertTimeout = 15 * time.Minute

// FailureAlertsWorker works FailureAlertsArgs.
type FailureAlertsWorker struct {
	river.WorkerDefaults[FailureAlertsArgs]
	deps *Deps
}

// Timeout implements river.Worker.
func (w *FailureAlertsWorker) Timeout(*river.Job[FailureAlertsArgs]) time.Duration {
	return alertTimeout
}

// Work implements river.Worker.
func (w *FailureAlertsWorker) Work(ctx context.Context, job *river.Job[FailureAlertsArgs]) error {
	// Every failure with a SCOM step to do comes along: with SCOM at
	// seconds a call, a month's polls and incidents would otherwise queue
	// one job of up to three calls each behind one another (issue #19).
	others, err := store.PendingAlerts(ctx, w.deps.Pool, alertsPerJob)
	if err != nil {
		return err
	}
	ids := sortedIDs(append(slices.Clone(job.Args.IDs), others...))
	pending := false
	err = withFailureLocks(ctx, w.deps.Pool, lockAlerts, ids, func(conn *pgxpool.Conn) error {
		all, err := store.FailuresByID(ctx, conn, ids)
		if err != nil {
			return err
		}
		var fs []store.Failure
		for _, f := range all {
			if f.Reported() {
				fs = append(fs, f)
			}
		}
		if pending, err = w.raise(ctx, conn, fs); err != nil {
			return err
		}
		if err := w.link(ctx, conn, fs); err != nil {
			return err
		}
		return w.close(ctx, conn, fs)
	})
	if err != nil {
		return err
	}
	if pending {
		return river.JobSnooze(alertPendingRetry)
	}
	return nil
}

// raise raises the alerts of fs not raised yet (updating fs) and reports
// whether some are still on their way.
func (w *FailureAlertsWorker) raise(ctx context.Context, conn *pgxpool.Conn, fs []store.Failure) (bool, error) {
	var todo []int
	var alerts []scom.Alert
	for i, f := range fs {
		if f.AlertDone() {
			continue
		}
		if f.AlertComputer == "" {
			detail := "no Windows Computer to raise the alert on: set AUTOPATCH_SCOM_WINDOW_COMPUTER"
			if err := store.RecordAlert(ctx, conn, f.ID, store.AlertResult{Outcome: store.AlertRefused, Detail: detail}); err != nil {
				return false, err
			}
			fs[i].AlertOutcome = store.AlertRefused
			continue
		}
		r, err := describe(ctx, conn, w.deps, f)
		if err != nil {
			return false, err
		}
		todo = append(todo, i)
		alerts = append(alerts, scom.Alert{
			Key: f.CorrelationID, Device: f.AlertComputer, Severity: r.severity,
			Summary: r.summary, Description: r.description, Change: f.ChangeNumber, ErrorCode: r.errorCode,
		})
	}
	if len(alerts) == 0 {
		return false, nil
	}
	results, err := w.deps.SCOM.RaiseAlerts(ctx, alerts)
	if err != nil && len(alerts) > 1 && refused(err) {
		// One bad alert must not hold back the others: find it.
		results, err = w.raiseOneByOne(ctx, alerts)
	}
	if err != nil {
		return false, fmt.Errorf("raise %d alert(s): %w", len(alerts), err)
	}
	pending := false
	for k, res := range results {
		i := todo[k]
		f := &fs[i]
		if err := store.RecordAlert(ctx, conn, f.ID, store.AlertResult{
			Outcome: string(res.Outcome), AlertID: res.AlertID, Detail: res.Message,
		}); err != nil {
			return false, err
		}
		f.AlertOutcome = string(res.Outcome)
		if res.AlertID != "" {
			f.AlertID = res.AlertID
		}
		switch res.Outcome {
		case scom.Raised:
			w.deps.Metrics.AlertsRaised.Inc()
		case scom.Pending:
			pending = true
		case scom.UnknownDevice, scom.AmbiguousDevice, scom.RaiseOutcome(store.AlertRefused):
			w.deps.Logger.WarnContext(ctx, "no SCOM alert for this failure; its incident says so",
				"change", f.ChangeNumber, "subject", f.Subject, "computer", f.AlertComputer, "outcome", res.Outcome, "detail", res.Message)
		}
	}
	return pending, nil
}

// refused reports whether SCOM or the connector refused the request itself,
// which sending it again will not change.
func refused(err error) bool {
	return scom.IsRefusal(err) || errors.Is(err, scom.ErrInvalid)
}

// raiseOneByOne raises alerts one call each, answering a refused one as
// refused. Only used after a batch was refused.
func (w *FailureAlertsWorker) raiseOneByOne(ctx context.Context, alerts []scom.Alert) ([]scom.RaiseResult, error) {
	out := make([]scom.RaiseResult, 0, len(alerts))
	for _, a := range alerts {
		res, err := w.deps.SCOM.RaiseAlerts(ctx, []scom.Alert{a})
		switch {
		case refused(err):
			out = append(out, scom.RaiseResult{Key: a.Key, Device: a.Device, Outcome: scom.RaiseOutcome(store.AlertRefused), Message: err.Error()})
		case err != nil:
			return nil, err
		default:
			out = append(out, res[0])
		}
	}
	return out, nil
}

// link sets the TicketId of raised alerts whose incident exists.
func (w *FailureAlertsWorker) link(ctx context.Context, conn *pgxpool.Conn, fs []store.Failure) error {
	var todo []int
	var links []scom.TicketLink
	for i, f := range fs {
		if f.AlertID != "" && f.IncidentNumber != "" && f.AlertTicket != f.IncidentNumber {
			todo = append(todo, i)
			links = append(links, scom.TicketLink{Key: f.CorrelationID, AlertID: f.AlertID, TicketID: f.IncidentNumber})
		}
	}
	if len(links) == 0 {
		return nil
	}
	results, err := w.deps.SCOM.SetTicket(ctx, links)
	if err != nil {
		return fmt.Errorf("link %d alert(s) to their incident: %w", len(links), err)
	}
	for k, res := range results {
		f := &fs[todo[k]]
		if res.Outcome == scom.NotFound {
			// The alert is gone (groomed out): nothing left to link.
			w.deps.Logger.WarnContext(ctx, "SCOM alert to link not found", "alert", f.AlertID, "incident", f.IncidentNumber)
		}
		if err := store.RecordAlertTicket(ctx, conn, f.ID, f.IncidentNumber); err != nil {
			return err
		}
		f.AlertTicket = f.IncidentNumber
	}
	return nil
}

// close closes the linked alerts whose device recovered.
func (w *FailureAlertsWorker) close(ctx context.Context, conn *pgxpool.Conn, fs []store.Failure) error {
	var todo []int
	var refs []scom.AlertRef
	for i, f := range fs {
		if f.RecoveredAt != nil && f.AlertID != "" && f.AlertClosedAt == nil &&
			f.IncidentNumber != "" && f.AlertTicket == f.IncidentNumber {
			todo = append(todo, i)
			refs = append(refs, scom.AlertRef{Key: f.CorrelationID, AlertID: f.AlertID})
		}
	}
	if len(refs) == 0 {
		return nil
	}
	if _, err := w.deps.SCOM.ResolveAlerts(ctx, refs, "autopatch: the device reported success; closed by autopatch."); err != nil {
		return fmt.Errorf("close %d alert(s): %w", len(refs), err)
	}
	now := w.deps.now()
	for _, i := range todo {
		if err := store.RecordAlertClosed(ctx, conn, fs[i].ID, now); err != nil {
			return err
		}
		w.deps.Metrics.AlertsClosed.Inc()
	}
	return nil
}
