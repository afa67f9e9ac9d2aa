package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/internal/store"
)

// Forced waves are opened and closed by the window keeper exactly as
// windows are: the wave's row is locked (SKIP LOCKED) for the whole SCCM
// call and its state moves in the same transaction, so of all replicas one
// acts, and a process killed mid-call leaves the row to the next tick,
// whose call the template makes a no-op in SCCM (members already in,
// deployments already enabled). A crash between two waves therefore
// neither skips nor repeats one: wave k+1 is only ever opened after wave
// k's close committed.

// waveRefusals is how many times SCCM may refuse a wave (an unknown or
// default collection, an unknown update group) before the run is given up:
// a refusal is an answer, not an outage, but one may come from a
// collection an administrator is fixing right now.
const waveRefusals = 5

// openNextWave opens the wave whose turn it is, if any: one SCCM call.
func (k *WindowKeeper) openNextWave(ctx context.Context, site string, conn SCCM, attempt int) (int, error) {
	var wave *store.ForcedWave
	var callErr error
	err := pgx.BeginFunc(ctx, k.deps.Pool, func(tx pgx.Tx) error {
		now := k.deps.now()
		var err error
		if wave, err = store.LockNextWave(ctx, tx, site, now); err != nil || wave == nil {
			return err
		}
		devs, err := store.WaveDevices(ctx, tx, wave.ID)
		if err != nil {
			return err
		}
		w := sccm.ForceWave{Collection: wave.Collection, At: now}
		for _, d := range devs {
			w.Devices = append(w.Devices, sccm.ForceDevice{Name: d.Device, ResourceID: d.ResourceID})
		}
		for i, name := range wave.Deployments {
			w.Deployments = append(w.Deployments, sccm.ForceDeployment{Name: name, UpdateGroup: wave.UpdateGroups[i]})
		}
		res, err := conn.ForceWave(ctx, w)
		if err != nil {
			callErr = err
			k.deps.Logger.WarnContext(ctx, "opening a forced wave failed; retrying", "change", wave.ChangeNumber,
				"wave", wave.Wave+1, "devices", len(devs), "attempt", attempt, "error", err)
			return fmt.Errorf("force wave %d of %s: %w", wave.Wave+1, wave.ChangeNumber, err)
		}
		opened := k.deps.now()
		if err := store.OpenWave(ctx, tx, wave.ID, opened, opened.Add(wave.Duration)); err != nil {
			return err
		}
		unknown := map[string]bool{}
		var rs []store.ForcedResult
		for _, n := range res.Unknown {
			unknown[strings.ToLower(n)] = true
			rs = append(rs, store.ForcedResult{Device: n, Result: store.ForcedUnknown})
		}
		if len(rs) > 0 {
			// Nothing will come of these: they are results now.
			if err := store.RecordForcedResults(ctx, tx, wave.ID, rs, opened); err != nil {
				return err
			}
		}
		k.deps.Metrics.ForcedWaves.WithLabelValues("opened").Inc()
		k.deps.Metrics.ForcedDevices.Add(float64(len(devs) - len(unknown)))
		if err := note(ctx, tx, tableChangeRequest, wave.ChangeSysID, waveOpenNote(*wave, devs, unknown, opened)); err != nil {
			return err
		}
		if err := ownerNotes(ctx, tx, *wave, devs, unknown, opened); err != nil {
			return err
		}
		return refreshLedger(ctx, tx, k.deps, wave.ChangeNumber, opened)
	})
	if err == nil {
		if wave == nil {
			return 0, nil
		}
		return 1, nil
	}
	if wave != nil && callErr != nil && ctx.Err() == nil {
		if gerr := k.giveUpWave(ctx, *wave, callErr); gerr != nil {
			return 1, errors.Join(err, gerr)
		}
	}
	return 1, err
}

// giveUpWave counts a failed attempt at a wave and, when SCCM refused it
// waveRefusals times or it could not be opened within a wave's length of
// its turn, gives the run up: its waves not yet run fail, and the failure
// reaches a person (alert, incident, note on the change).
func (k *WindowKeeper) giveUpWave(ctx context.Context, wave store.ForcedWave, cause error) error {
	n, err := store.RecordWaveAttempt(ctx, k.deps.Pool, wave.ID, cause.Error())
	if err != nil {
		return err
	}
	now := k.deps.now()
	refused := sccm.IsRefusal(cause)
	if !(refused && n >= waveRefusals) && now.Sub(wave.NotBefore) < wave.Duration {
		return nil
	}
	return pgx.BeginFunc(ctx, k.deps.Pool, func(tx pgx.Tx) error {
		failed, err := store.FailRun(ctx, tx, wave.ChangeNumber, wave.Site, wave.RunAt, "given up after "+fmt.Sprint(n)+" attempt(s): "+cause.Error())
		if err != nil || failed == 0 {
			return err
		}
		k.deps.Metrics.ForcedWaves.WithLabelValues("failed").Add(float64(failed))
		subject := fmt.Sprintf("forced wave %d", wave.ID)
		id, created, err := store.InsertFailure(ctx, tx, store.Failure{
			ChangeNumber: wave.ChangeNumber, Subject: subject, Kind: store.FailureForced,
			CorrelationID: failureKey(wave.ChangeNumber, store.FailureForced, subject),
			AlertComputer: k.deps.WindowComputer,
			Message: fmt.Sprintf("SCCM would not run wave %d of the forced remediation (%d attempt(s)): %s",
				wave.Wave+1, n, cause.Error()),
			FirstSeenAt: now,
		})
		if err != nil {
			return err
		}
		if created {
			k.deps.Metrics.Failures.WithLabelValues(store.FailureForced).Inc()
			if err := enqueueReports(ctx, tx, []int64{id}); err != nil {
				return err
			}
		}
		k.deps.Logger.ErrorContext(ctx, "forced remediation given up", "change", wave.ChangeNumber, "wave", wave.Wave+1,
			"attempts", n, "error", cause)
		return note(ctx, tx, tableChangeRequest, wave.ChangeSysID, fmt.Sprintf(
			"autopatch: FORCED REMEDIATION FAILED for %s: SCCM would not run wave %d after %d attempt(s) (%s). "+
				"Its devices and those of the %d wave(s) after it were NOT forced and stay past their deadline; an incident was opened.",
			wave.ChangeNumber, wave.Wave+1, n, cause.Error(), failed-1))
	})
}

// closeWaves disables the deployments of every open wave whose time is up
// (or whose change was canceled), one SCCM call each, and asks for their
// results.
func (k *WindowKeeper) closeWaves(ctx context.Context, site string, conn SCCM, attempt int) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, k.deps.Pool, func(tx pgx.Tx) error {
		now := k.deps.now()
		due, err := store.LockWavesToClose(ctx, tx, site, now)
		if err != nil || len(due) == 0 {
			return err
		}
		n = len(due)
		for _, wave := range due {
			detail := "disabled"
			_, err := conn.SetEnabled(ctx, wave.Deployments, false)
			if sccm.IsRefusal(err) {
				// Deleted in the console: nothing is left enabled.
				var gone map[string]string
				gone, err = k.closeOneByOne(ctx, conn, wave.Deployments)
				if len(gone) > 0 {
					detail = fmt.Sprintf("disabled; %d deployment(s) no longer in SCCM", len(gone))
				}
			}
			if err != nil {
				k.deps.Logger.ErrorContext(ctx, "closing a forced wave failed; retrying", "change", wave.ChangeNumber,
					"wave", wave.Wave+1, "attempt", attempt, "error", err)
				return fmt.Errorf("close forced wave %d of %s: %w", wave.Wave+1, wave.ChangeNumber, err)
			}
			closed := k.deps.now()
			if err := store.CloseWave(ctx, tx, wave.ID, closed, detail); err != nil {
				return err
			}
			k.deps.Metrics.ForcedWaves.WithLabelValues("closed").Inc()
			if err := note(ctx, tx, tableChangeRequest, wave.ChangeSysID, fmt.Sprintf(
				"autopatch: forced wave %d of %s CLOSED at %s UTC: its deployments (%s) are disabled; its results follow.",
				wave.Wave+1, wave.ChangeNumber, closed.UTC().Format("2006-01-02 15:04:05"), strings.Join(wave.Deployments, ", "))); err != nil {
				return err
			}
			if err := insertTx(ctx, tx, ForceResultsArgs{WaveID: wave.ID}, nil); err != nil {
				return fmt.Errorf("enqueue results of forced wave %d: %w", wave.ID, err)
			}
		}
		return nil
	})
	return n, err
}

// noteListLimit bounds the devices named in one line of a forcing note:
// a wave of 2,000 devices must not make a note nobody can read.
const noteListLimit = 100

func listDevices(names []string) string { return listUpTo(names, noteListLimit) }

func waveOpenNote(w store.ForcedWave, devs []store.ForcedDevice, unknown map[string]bool, at time.Time) string {
	var in, out []string
	for _, d := range devs {
		if unknown[strings.ToLower(d.Device)] {
			out = append(out, d.Device)
		} else {
			in = append(in, d.Device)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "autopatch: forced wave %d of %s OPENED at %s UTC until %s UTC: %d device(s) put into %q with the required deployment(s) %s enabled; they install and restart now.\n",
		w.Wave+1, w.ChangeNumber, at.UTC().Format("2006-01-02 15:04:05"), at.Add(w.Duration).UTC().Format("2006-01-02 15:04:05"),
		len(in), w.Collection, strings.Join(w.Deployments, ", "))
	fmt.Fprintf(&b, "Forced: %s", listDevices(in))
	if len(out) > 0 {
		fmt.Fprintf(&b, "\nNot in SCCM, could not be forced (incidents follow): %s", listDevices(out))
	}
	return b.String()
}

// ownerNotes tells each owner, on the request item that put their devices
// into their schedule, which of them are being forced.
func ownerNotes(ctx context.Context, tx pgx.Tx, w store.ForcedWave, devs []store.ForcedDevice, unknown map[string]bool, at time.Time) error {
	names := make([]string, 0, len(devs))
	for _, d := range devs {
		if !unknown[strings.ToLower(d.Device)] {
			names = append(names, d.Device)
		}
	}
	items, err := store.DeviceRequestItems(ctx, tx, names)
	if err != nil {
		return err
	}
	byItem := map[string][]string{}
	var order []string
	for _, n := range names {
		it, ok := items[strings.ToLower(n)]
		if !ok {
			continue
		}
		if _, seen := byItem[it[1]]; !seen {
			order = append(order, it[1])
		}
		byItem[it[1]] = append(byItem[it[1]], n)
	}
	for _, sysID := range order {
		text := fmt.Sprintf("autopatch: your device(s) %s were not patched by their deadline in %s and are being FORCED now (%s UTC): "+
			"the updates install and the device(s) restart within the next %s. Ask the change's owner to cancel the change to stop it.",
			listDevices(byItem[sysID]), w.ChangeNumber, at.UTC().Format("2006-01-02 15:04"), w.Duration)
		if err := note(ctx, tx, tableRequestItem, sysID, text); err != nil {
			return err
		}
	}
	return nil
}

// ForceResultsArgs reads the result of a closed forced wave: one status
// read of its deployments; each device patched, failed or without status
// goes into the ledger, and each that is not patched gets an incident and
// an alert (failure kind forced).
type ForceResultsArgs struct {
	WaveID int64 `json:"wave_id"`
}

// Kind implements river.JobArgs.
func (ForceResultsArgs) Kind() string { return "force_results" }

// InsertOpts: one per wave; retried while SCCM is unreachable.
func (ForceResultsArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueSCCM, MaxAttempts: 50, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// ForceResultsWorker works ForceResultsArgs.
type ForceResultsWorker struct {
	river.WorkerDefaults[ForceResultsArgs]
	deps *Deps
}

// NextRetry implements river.Worker: as the windows' reads.
func (w *ForceResultsWorker) NextRetry(job *river.Job[ForceResultsArgs]) time.Time {
	return time.Now().Add(quickRetry(job.Attempt))
}

// Work implements river.Worker. The read runs inside the transaction that
// records it, under the wave's row lock: a retry after a crash reads again.
func (w *ForceResultsWorker) Work(ctx context.Context, job *river.Job[ForceResultsArgs]) error {
	return pgx.BeginFunc(ctx, w.deps.Pool, func(tx pgx.Tx) error {
		var resultsAt *time.Time
		if err := tx.QueryRow(ctx, `SELECT results_at FROM forced_waves WHERE id = $1 FOR NO KEY UPDATE`, job.Args.WaveID).Scan(&resultsAt); err != nil {
			return fmt.Errorf("forced wave %d: %w", job.Args.WaveID, err)
		}
		wave, err := store.GetWave(ctx, tx, job.Args.WaveID)
		if err != nil {
			return err
		}
		devs, err := store.WaveDevices(ctx, tx, wave.ID)
		if err != nil {
			return err
		}
		conn, err := w.deps.sccmAt(wave.Site)
		if err != nil {
			return err
		}
		report, err := conn.DeploymentStatus(ctx, wave.Deployments)
		if err != nil {
			return fmt.Errorf("results of forced wave %d of %s: %w", wave.Wave+1, wave.ChangeNumber, err)
		}
		now := w.deps.now()
		// A device is patched when every forced deployment reports success
		// for it, failed when one reports an error.
		type acc struct {
			ok, failed int
			code       *int64
			at         *time.Time
			st         *int
		}
		seen := map[string]*acc{}
		for _, s := range report.Devices {
			key := strings.ToLower(s.Device)
			a := seen[key]
			if a == nil {
				a = &acc{}
				seen[key] = a
			}
			switch s.Type {
			case sccm.StatusSuccess:
				a.ok++
				if !s.Time.IsZero() && (a.at == nil || s.Time.After(*a.at)) {
					t := s.Time
					a.at = &t
				}
			case sccm.StatusError:
				a.failed++
				code, st := int64(s.ErrorCode), int(s.Type)
				a.code, a.st = &code, &st
			}
		}
		var rs []store.ForcedResult
		var failures []store.Failure
		for _, d := range devs {
			if d.Result == store.ForcedUnknown {
				failures = append(failures, forcedFailure(wave, d.Device, nil, "not in SCCM: it could not be put into the forced collection", now, w.deps.WindowComputer))
				continue
			}
			a := seen[strings.ToLower(d.Device)]
			r := store.ForcedResult{Device: d.Device, Result: store.ForcedNoStatus}
			switch {
			case a != nil && a.failed > 0:
				r.Result, r.ErrorCode, r.StatusType = store.ForcedFailed, a.code, a.st
			case a != nil && a.ok == len(wave.Deployments):
				st := int(sccm.StatusSuccess)
				r.Result, r.StatusTime, r.StatusType = store.ForcedPatched, a.at, &st
			}
			rs = append(rs, r)
			switch r.Result {
			case store.ForcedFailed:
				failures = append(failures, forcedFailure(wave, d.Device, r.ErrorCode, "the forced installation failed: "+errorText(*r.ErrorCode), now, d.Device))
			case store.ForcedNoStatus:
				failures = append(failures, forcedFailure(wave, d.Device, nil, "no success or error reported by the end of the forced wave", now, d.Device))
			}
			w.deps.Metrics.ForcedResults.WithLabelValues(r.Result).Inc()
		}
		if err := store.RecordForcedResults(ctx, tx, wave.ID, rs, now); err != nil {
			return err
		}
		var ids []int64
		for _, f := range failures {
			id, created, err := store.InsertFailure(ctx, tx, f)
			if err != nil {
				return err
			}
			if created {
				w.deps.Metrics.Failures.WithLabelValues(store.FailureForced).Inc()
				ids = append(ids, id)
			}
		}
		if err := enqueueReports(ctx, tx, ids); err != nil {
			return err
		}
		if resultsAt == nil {
			if err := note(ctx, tx, tableChangeRequest, wave.ChangeSysID, waveResultsNote(wave, rs, len(failures))); err != nil {
				return err
			}
		}
		return refreshLedger(ctx, tx, w.deps, wave.ChangeNumber, now)
	})
}

func forcedFailure(w store.ForcedWave, device string, code *int64, msg string, now time.Time, computer string) store.Failure {
	return store.Failure{
		ChangeNumber: w.ChangeNumber, Subject: device, Kind: store.FailureForced, ErrorCode: code,
		CorrelationID: failureKey(w.ChangeNumber, store.FailureForced, device),
		AlertComputer: computer, Message: fmt.Sprintf("forced wave %d: %s", w.Wave+1, msg), FirstSeenAt: now,
	}
}

func waveResultsNote(w store.ForcedWave, rs []store.ForcedResult, failures int) string {
	by := map[string][]string{}
	for _, r := range rs {
		by[r.Result] = append(by[r.Result], r.Device)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "autopatch: results of forced wave %d of %s: %d patched, %d failed, %d without status.",
		w.Wave+1, w.ChangeNumber, len(by[store.ForcedPatched]), len(by[store.ForcedFailed]), len(by[store.ForcedNoStatus]))
	for _, k := range []string{store.ForcedFailed, store.ForcedNoStatus} {
		if len(by[k]) > 0 {
			fmt.Fprintf(&b, "\n%s: %s", strings.ReplaceAll(k, "_", " "), listDevices(by[k]))
		}
	}
	if failures > 0 {
		fmt.Fprintf(&b, "\n%d incident(s) follow for the devices not patched.", failures)
	}
	return b.String()
}
