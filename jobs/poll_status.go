package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/internal/store"
)

// DefaultPollInterval is how often status is read while a window is open
// when Deps.PollInterval is zero.
const DefaultPollInterval = 5 * time.Minute

// PollStatusArgs reads, at instant At, the per-device status of every open
// deployment and of every closed one that has not had its final read, in
// one SCCM call whatever their number, and acts on what it finds: stores
// each device's result (and its history), reports new failures, resolves
// those whose device recovered.
//
// Polls run on a grid: every instant that is a multiple of the poll
// interval (UTC). Opening a window asks for the next instant of the grid,
// each poll for the one after it while anything is open, closing a window
// for an immediate final poll. Whoever asks, one instant is one job (unique
// by args), so replicas and overlapping windows never double the polling;
// the polls themselves are serialised by a database lock.
type PollStatusArgs struct {
	At time.Time `json:"at"`
}

// Kind implements river.JobArgs.
func (PollStatusArgs) Kind() string { return "poll_status" }

// InsertOpts: one job per instant; retried on the poll's own rhythm.
func (PollStatusArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueSCCM, MaxAttempts: pollMaxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// pollMaxAttempts: a poll retries for as long as SCCM is unreachable, no
// more often than the poll interval; later polls find what it missed.
const pollMaxAttempts = 1000

// pollLead is how long before its instant a poll is scheduled: River
// promotes scheduled jobs every 5 s, the worker waits for the instant.
const pollLead = 5 * time.Second

// pollTimeout bounds one poll: the wait, the lock, the SCCM call, the writes.
const pollTimeout = 15 * time.Minute

// pollLockKey is the pg_advisory_xact_lock key that serialises polls
// ("autopoll").
const pollLockKey int64 = 0x6175746f706f6c6c

func (d *Deps) pollInterval() time.Duration {
	if d.PollInterval > 0 {
		return d.PollInterval
	}
	return DefaultPollInterval
}

func (d *Deps) stormThreshold() int {
	if d.StormThreshold > 0 {
		return d.StormThreshold
	}
	return DefaultStormThreshold
}

// nextPoll is the first instant of the poll grid after now.
func nextPoll(now time.Time, every time.Duration) time.Time {
	return now.UTC().Truncate(every).Add(every)
}

// pollInsertOpts schedules a poll pollLead before its instant, or makes it
// available now when that moment has passed (see windowInsertOpts).
func pollInsertOpts(at, now time.Time) *river.InsertOpts {
	start := at.Add(-pollLead)
	if !start.After(now) {
		return nil
	}
	return &river.InsertOpts{ScheduledAt: start}
}

// pollAfterOpen asks, in the transaction that opened windows at opened, for
// the next poll of the grid.
func pollAfterOpen(ctx context.Context, tx pgx.Tx, deps *Deps, opened time.Time) error {
	at := nextPoll(opened, deps.pollInterval())
	if err := insertTx(ctx, tx, PollStatusArgs{At: at}, pollInsertOpts(at, deps.now())); err != nil {
		return fmt.Errorf("enqueue poll: %w", err)
	}
	return nil
}

// pollAfterClose asks, in the transaction that closed windows at closed,
// for their final poll now.
func pollAfterClose(ctx context.Context, tx pgx.Tx, closed time.Time) error {
	if err := insertTx(ctx, tx, PollStatusArgs{At: closed.UTC().Truncate(time.Millisecond)}, nil); err != nil {
		return fmt.Errorf("enqueue final poll: %w", err)
	}
	return nil
}

// PollStatusWorker works PollStatusArgs.
type PollStatusWorker struct {
	river.WorkerDefaults[PollStatusArgs]
	deps *Deps
}

// Timeout implements river.Worker.
func (w *PollStatusWorker) Timeout(*river.Job[PollStatusArgs]) time.Duration { return pollTimeout }

// NextRetry implements river.Worker: quickly at first, never later than
// the next poll would come.
func (w *PollStatusWorker) NextRetry(job *river.Job[PollStatusArgs]) time.Time {
	return time.Now().Add(min(windowRetry(job.Attempt), w.deps.pollInterval()))
}

// Work implements river.Worker. Everything happens in one transaction that
// holds the poll lock: a crash before the commit leaves no trace and the
// retry reads again.
func (w *PollStatusWorker) Work(ctx context.Context, job *river.Job[PollStatusArgs]) error {
	if err := waitUntil(ctx, job.Args.At, w.deps.now()); err != nil {
		return err
	}
	var retry error // sites that failed, after the others committed
	err := pgx.BeginFunc(ctx, w.deps.Pool, func(tx pgx.Tx) error {
		// Another poll running: wait for it, then read what it left.
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '60s'"); err != nil {
			return fmt.Errorf("poll: %w", err)
		}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", pollLockKey); err != nil {
			return fmt.Errorf("poll: lock: %w", err)
		}
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = 0"); err != nil {
			return fmt.Errorf("poll: %w", err)
		}
		targets, err := store.PollTargets(ctx, tx)
		if err != nil || len(targets) == 0 {
			return err
		}
		// One call per site, side by side: what the answering sites said
		// is recorded; a failed site's deployments are read by the retry.
		start := time.Now()
		rep, read, err := statusBySite(ctx, w.deps, targets)
		if err != nil {
			w.deps.Logger.WarnContext(ctx, "status poll failed; retrying", "deployments", len(targets)-len(read), "attempt", job.Attempt, "error", err)
			retry = fmt.Errorf("poll status of %d deployment(s): %w", len(targets)-len(read), err)
		}
		if len(read) == 0 {
			return nil
		}
		w.deps.Metrics.Polls.Inc()
		w.deps.Metrics.PollDuration.Observe(time.Since(start).Seconds())
		targets = read
		p := &poll{deps: w.deps, tx: tx, now: w.deps.now(), targets: targets}
		if err := p.apply(ctx, rep); err != nil {
			return err
		}
		// Rollout control decides in the transaction that recorded the
		// failures: a crash leaves both or neither.
		if err := evaluateRollouts(ctx, tx, w.deps, targets, p.now); err != nil {
			return err
		}
		for _, d := range targets {
			if d.State == store.DeploymentOpen {
				return pollAfterOpen(ctx, tx, w.deps, p.now)
			}
		}
		return nil
	})
	return errors.Join(err, retry)
}

// poll is one status read being acted on.
type poll struct {
	deps    *Deps
	tx      pgx.Tx
	now     time.Time
	targets []store.Deployment
	report  []int64 // failures whose alert and incident need work
}

// seen is one device's status in each deployment of one change it is in.
type seen struct {
	change string
	device string
	rows   []seenRow
}

type seenRow struct {
	dep    store.Deployment
	status sccm.DeviceStatus
}

// final reports whether this read is d's last: it closed at its window's
// end. A deployment closed early (change canceled or re-planned) has its
// last read too, but its silent devices are not failures.
func final(d store.Deployment) bool {
	return d.State == store.DeploymentClosed
}

func finalAtEnd(d store.Deployment) bool {
	return final(d) && !d.CloseAt.Before(d.WindowEnd)
}

func (p *poll) apply(ctx context.Context, rep sccm.StatusReport) error {
	byName := map[string][]store.Deployment{}
	for _, d := range p.targets {
		byName[d.Name] = append(byName[d.Name], d)
	}
	for _, name := range rep.Missing {
		p.deps.Logger.WarnContext(ctx, "deployment no longer exists in SCCM; no status to read", "deployment", name)
	}

	var results []store.DeviceResult
	devices := map[string]*seen{}
	var order []string
	for _, st := range rep.Devices {
		for _, d := range byName[st.Deployment] {
			r := store.DeviceResult{DeploymentID: d.ID, Device: st.Device, StatusType: int(st.Type),
				Message: st.Message, ObservedAt: p.now}
			if r.Message == "" {
				r.Message = st.Description
			}
			if st.Type == sccm.StatusError || st.ErrorCode != 0 {
				code := int64(st.ErrorCode)
				r.ErrorCode = &code
			}
			if !st.Time.IsZero() {
				t := st.Time
				r.StatusTime = &t
			}
			if st.EnforcementMessage != 0 {
				m := st.EnforcementMessage
				r.EnforcementMessage = &m
			}
			results = append(results, r)
			key := d.ChangeNumber + "\x00" + strings.ToLower(st.Device)
			s, ok := devices[key]
			if !ok {
				s = &seen{change: d.ChangeNumber, device: st.Device}
				devices[key] = s
				order = append(order, key)
			}
			s.rows = append(s.rows, seenRow{dep: d, status: st})
		}
	}
	changed, err := store.RecordResults(ctx, p.tx, results)
	if err != nil {
		return err
	}
	p.deps.Logger.DebugContext(ctx, "status poll", "deployments", len(p.targets), "results", len(results), "changed", changed)

	if err := p.decide(ctx, devices, order); err != nil {
		return err
	}

	var finals []int64
	for _, d := range p.targets {
		if final(d) {
			finals = append(finals, d.ID)
		}
	}
	if err := store.MarkFinalPolled(ctx, p.tx, finals, p.now); err != nil {
		return err
	}
	// The compliance ledger of every change read: the status just stored
	// is its evidence.
	var changes []string
	for _, d := range p.targets {
		if !slices.Contains(changes, d.ChangeNumber) {
			changes = append(changes, d.ChangeNumber)
		}
	}
	for _, c := range changes {
		if err := refreshLedger(ctx, p.tx, p.deps, c, p.now); err != nil {
			return err
		}
	}
	return enqueueReports(ctx, p.tx, p.report)
}

// verdict is what one device's statuses in one change say.
type verdict int

const (
	undecided verdict = iota
	failing           // an error in some deployment
	silent            // no result by the end of the window
	succeeded         // success in every deployment
)

func (s *seen) verdict() (verdict, seenRow) {
	all := true
	var silentRow *seenRow
	for i, r := range s.rows {
		switch r.status.Type {
		case sccm.StatusError:
			return failing, r
		case sccm.StatusSuccess:
			continue
		case sccm.StatusUnknown, sccm.StatusInProgress:
			if finalAtEnd(r.dep) && silentRow == nil {
				silentRow = &s.rows[i]
			}
		}
		all = false
	}
	switch {
	case silentRow != nil:
		return silent, *silentRow
	case all && len(s.rows) > 0:
		return succeeded, s.rows[0]
	}
	return undecided, seenRow{}
}

// windowKey identifies a window of a change.
func windowKey(change, schedule string, start time.Time) string {
	return change + "\x00" + schedule + "\x00" + start.UTC().Format(time.RFC3339Nano)
}

// decide turns the devices' verdicts into failures and recoveries.
func (p *poll) decide(ctx context.Context, devices map[string]*seen, order []string) error {
	changeSet := map[string]bool{}
	for _, s := range devices {
		changeSet[s.change] = true
	}
	if len(changeSet) == 0 {
		return nil
	}
	changes := make([]string, 0, len(changeSet))
	for c := range changeSet {
		changes = append(changes, c)
	}
	sort.Strings(changes)
	existing, err := store.ChangeFailures(ctx, p.tx, changes)
	if err != nil {
		return err
	}
	byDevice := map[string]store.Failure{}
	storms := map[string]store.Failure{}
	perWindow := map[string]int{}
	for _, f := range existing {
		switch f.Kind {
		case store.FailureError, store.FailureNoStatus:
			byDevice[f.ChangeNumber+"\x00"+strings.ToLower(f.Subject)] = f
			if f.WindowStart != nil {
				perWindow[windowKey(f.ChangeNumber, f.Schedule, *f.WindowStart)]++
			}
		case store.FailureStorm:
			if f.WindowStart != nil {
				storms[windowKey(f.ChangeNumber, f.Schedule, *f.WindowStart)] = f
			}
		}
	}

	// New failures, by window, in a stable order.
	type pending struct {
		f   store.Failure
		dep store.Deployment
	}
	newByWindow := map[string][]pending{}
	var windows []string
	var recovered []store.Failure
	sort.Strings(order)
	for _, key := range order {
		s := devices[key]
		v, row := s.verdict()
		f, known := byDevice[key]
		switch {
		case known && v == succeeded && f.State == store.FailureOpen && f.RecoveredAt == nil:
			recovered = append(recovered, f)
		case known, v == undecided, v == succeeded:
		default:
			kind := store.FailureError
			if v == silent {
				kind = store.FailureNoStatus
			}
			nf := store.Failure{
				ChangeNumber: s.change, Subject: s.device, Kind: kind, DeploymentID: &row.dep.ID,
				CorrelationID: failureKey(s.change, kind, s.device), AlertComputer: s.device,
				Message: row.status.Message, FirstSeenAt: p.now,
			}
			if v == failing {
				code := int64(row.status.ErrorCode)
				nf.ErrorCode = &code
			} else {
				nf.Message = "status at the end of the window: " + statusName(int(row.status.Type))
			}
			wk := windowKey(s.change, row.dep.Schedule, row.dep.WindowStart)
			if _, ok := newByWindow[wk]; !ok {
				windows = append(windows, wk)
			}
			newByWindow[wk] = append(newByWindow[wk], pending{f: nf, dep: row.dep})
		}
	}

	var batch []store.Failure
	for _, wk := range windows {
		news := newByWindow[wk]
		storm, stormy := storms[wk]
		if !stormy && perWindow[wk]+len(news) > p.deps.stormThreshold() {
			d := news[0].dep
			subject := windowSubject(d)
			storm = store.Failure{
				ChangeNumber: d.ChangeNumber, Subject: subject, Kind: store.FailureStorm, DeploymentID: &d.ID,
				CorrelationID: failureKey(d.ChangeNumber, store.FailureStorm, subject),
				AlertComputer: p.deps.WindowComputer, FirstSeenAt: p.now,
				Message: fmt.Sprintf("%d failures in the window (threshold %d)", perWindow[wk]+len(news), p.deps.stormThreshold()),
			}
			id, created, err := store.InsertFailure(ctx, p.tx, storm)
			if err != nil {
				return err
			}
			storm.ID, stormy = id, true
			if created {
				p.deps.Metrics.Failures.WithLabelValues(store.FailureStorm).Inc()
				p.deps.Logger.WarnContext(ctx, "failure storm: reporting the window's failures together",
					"change", d.ChangeNumber, "window", subject, "failures", perWindow[wk]+len(news))
			}
		}
		for _, n := range news {
			if stormy {
				n.f.StormID = &storm.ID
			}
			batch = append(batch, n.f)
		}
		if stormy {
			// New storm: its alert and incident; known storm: its incident
			// lists the newcomers.
			p.report = append(p.report, storm.ID)
		}
	}
	// The devices' failures in one statement: a poll of thousands of
	// devices may find hundreds failing (issue #19).
	ids, err := store.InsertFailures(ctx, p.tx, batch)
	if err != nil {
		return err
	}
	for i, id := range ids {
		if id == 0 {
			continue
		}
		p.deps.Metrics.Failures.WithLabelValues(batch[i].Kind).Inc()
		if batch[i].StormID == nil {
			p.report = append(p.report, id)
		}
	}

	stormsTouched := map[int64]bool{}
	sort.Slice(recovered, func(i, j int) bool { return recovered[i].ID < recovered[j].ID })
	recoveredIDs := make([]int64, len(recovered))
	for i, f := range recovered {
		recoveredIDs[i] = f.ID
	}
	if err := store.MarkRecoveredAll(ctx, p.tx, recoveredIDs, p.now); err != nil {
		return err
	}
	for _, f := range recovered {
		if f.StormID != nil {
			stormsTouched[*f.StormID] = true
			continue
		}
		p.deps.Logger.InfoContext(ctx, "device recovered; closing its alert and incident", "change", f.ChangeNumber, "device", f.Subject)
		p.report = append(p.report, f.ID)
	}
	for id := range stormsTouched {
		open, err := store.OpenMembers(ctx, p.tx, id)
		if err != nil {
			return err
		}
		if open == 0 {
			if err := store.MarkRecovered(ctx, p.tx, id, p.now); err != nil {
				return err
			}
			p.report = append(p.report, id)
		}
	}
	return nil
}
