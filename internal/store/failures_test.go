package store

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/testdb"
)

// failureFixture is a change with one schedule and two deployments (one per
// update group) of one window.
type failureFixture struct {
	pool   *pgxpool.Pool
	change string
	deps   []Deployment
	start  time.Time
}

func newFailureFixture(t *testing.T) failureFixture {
	t.Helper()
	ctx := context.Background()
	f := failureFixture{pool: testdb.Pool(t), change: "CHG0031234", start: time.Date(2026, 12, 12, 2, 0, 0, 0, time.UTC)}
	_, err := f.pool.Exec(ctx, `INSERT INTO schedules (name, collection, kind, timezone, definition)
		VALUES ('AUTO', 'Patch - AUTO', 'automatic', 'UTC', '{}')`)
	require.NoError(t, err)
	_, err = f.pool.Exec(ctx, `INSERT INTO changes (number, sys_id, state, approval, start_at, end_at, update_groups)
		VALUES ($1, 'c0ffee', 'scheduled', 'approved', $2, $3, '{"2026-12 Servers","2026-12 Office"}')`,
		f.change, f.start.Add(-time.Hour), f.start.Add(24*time.Hour))
	require.NoError(t, err)
	require.NoError(t, pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
		for _, group := range []string{"2026-12 Servers", "2026-12 Office"} {
			d := Deployment{ChangeNumber: f.change, Schedule: "AUTO", UpdateGroup: group, Name: "AP-" + f.change + "-AUTO-" + group,
				Collection: "Patch - AUTO", WindowStart: f.start, WindowEnd: f.start.Add(4 * time.Hour)}
			id, err := InsertDeployment(ctx, tx, d)
			if err != nil {
				return err
			}
			d.ID = id
			for _, step := range [][2]string{{DeploymentPlanned, DeploymentCreated}, {DeploymentCreated, DeploymentOpen}} {
				if err := Move(ctx, tx, Transition{ID: id, From: step[0], To: step[1], At: f.start}); err != nil {
					return err
				}
			}
			f.deps = append(f.deps, d)
		}
		return nil
	}))
	return f
}

func (f failureFixture) close(t *testing.T, i int) {
	t.Helper()
	require.NoError(t, pgx.BeginFunc(context.Background(), f.pool, func(tx pgx.Tx) error {
		return Move(context.Background(), tx, Transition{ID: f.deps[i].ID, From: DeploymentOpen, To: DeploymentClosed, At: f.start.Add(4 * time.Hour)})
	}))
}

func code(c int64) *int64 { return &c }

func TestRecordResultsWritesHistoryOnChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFailureFixture(t)
	dep := f.deps[0].ID
	t0 := f.start.Add(time.Minute)
	result := func(device string, status int, c *int64, at time.Time) DeviceResult {
		return DeviceResult{DeploymentID: dep, Device: device, StatusType: status, ErrorCode: c, Message: "m", ObservedAt: at}
	}
	polls := [][]DeviceResult{
		{result("SQL01", 4, nil, t0), result("SQL02", 4, nil, t0)},
		{result("SQL01", 4, nil, t0.Add(time.Minute)), result("SQL02", 5, code(0x80240022), t0.Add(time.Minute))},
		{result("SQL01", 1, nil, t0.Add(2*time.Minute)), result("SQL02", 5, code(0x80240022), t0.Add(2*time.Minute))},
		{result("SQL01", 1, nil, t0.Add(3*time.Minute)), result("SQL02", 5, code(0x80070005), t0.Add(3*time.Minute))},
		{result("SQL01", 1, nil, t0.Add(4*time.Minute)), result("SQL02", 5, code(0x80070005), t0.Add(4*time.Minute))},
	}
	// What changed, computed from the polls themselves.
	wantHistory := map[string][]DeviceResult{}
	for _, poll := range polls {
		for _, r := range poll {
			h := wantHistory[r.Device]
			if len(h) == 0 || h[len(h)-1].StatusType != r.StatusType || !equalCode(h[len(h)-1].ErrorCode, r.ErrorCode) {
				wantHistory[r.Device] = append(h, r)
			}
		}
	}
	var total int64
	for _, poll := range polls {
		n, err := RecordResults(ctx, f.pool, poll)
		require.NoError(t, err)
		total += n
	}
	var wantTotal int
	for device, want := range wantHistory {
		got, err := ResultHistory(ctx, f.pool, dep, device)
		require.NoError(t, err)
		require.Len(t, got, len(want), device)
		for i := range want {
			require.Equal(t, want[i].StatusType, got[i].StatusType, device)
			require.True(t, equalCode(want[i].ErrorCode, got[i].ErrorCode), device)
			require.True(t, want[i].ObservedAt.Equal(got[i].ObservedAt), device)
		}
		wantTotal += len(want)
	}
	require.EqualValues(t, wantTotal, total)

	latest, err := ChangeResults(ctx, f.pool, f.change, "sql02")
	require.NoError(t, err)
	require.Len(t, latest, 1, "by device, without regard to case")
	last := polls[len(polls)-1][1]
	require.Equal(t, last.StatusType, latest[0].StatusType)
	require.True(t, last.ObservedAt.Equal(latest[0].ObservedAt), "the latest read, even unchanged")
}

func equalCode(a, b *int64) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

func TestPollTargetsAndFinalPoll(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFailureFixture(t)
	ids := func() []int64 {
		ds, err := PollTargets(ctx, f.pool)
		require.NoError(t, err)
		var out []int64
		for _, d := range ds {
			out = append(out, d.ID)
		}
		return out
	}
	require.Equal(t, []int64{f.deps[0].ID, f.deps[1].ID}, ids(), "open ones")
	f.close(t, 0)
	require.Equal(t, []int64{f.deps[0].ID, f.deps[1].ID}, ids(), "closed, final read due")
	require.NoError(t, MarkFinalPolled(ctx, f.pool, []int64{f.deps[0].ID, f.deps[1].ID}, f.start))
	require.Equal(t, []int64{f.deps[1].ID}, ids(), "an open one is not final-polled")
}

func TestFailuresOncePerDeviceAndSettled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFailureFixture(t)
	now := f.start.Add(time.Hour)
	fail := Failure{ChangeNumber: f.change, Subject: "SQL02", Kind: FailureError, DeploymentID: &f.deps[0].ID,
		ErrorCode: code(0x80240022), CorrelationID: "autopatch:" + f.change + ":SQL02", AlertComputer: "SQL02", FirstSeenAt: now}
	id, created, err := InsertFailure(ctx, f.pool, fail)
	require.NoError(t, err)
	require.True(t, created)

	again := fail
	again.Kind = FailureNoStatus // same correlation id: the same device and change
	id2, created, err := InsertFailure(ctx, f.pool, again)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, id, id2)

	got, err := FailuresByID(ctx, f.pool, []int64{id})
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "AUTO", got[0].Schedule, "the window is joined")
	require.True(t, got[0].WindowStart.Equal(f.start))
	require.Equal(t, "c0ffee", got[0].ChangeSysID)
	require.False(t, got[0].AlertDone())

	// Each step recorded; resolved only when recovered, alert closed and
	// incident resolved.
	steps := []struct {
		name string
		do   func() error
	}{
		{"Alert", func() error { return RecordAlert(ctx, f.pool, id, AlertResult{Outcome: "raised", AlertID: "a1"}) }},
		{"Incident", func() error { return RecordIncident(ctx, f.pool, id, "INC0010001", "s1", now) }},
		{"Ticket", func() error { return RecordAlertTicket(ctx, f.pool, id, "INC0010001") }},
		{"Recovered", func() error { return MarkRecovered(ctx, f.pool, id, now) }},
		{"AlertClosed", func() error { return RecordAlertClosed(ctx, f.pool, id, now) }},
		{"IncidentResolved", func() error { return RecordIncidentResolved(ctx, f.pool, id, now) }},
	}
	for i, step := range steps {
		require.NoError(t, step.do(), step.name)
		got, err := FailuresByID(ctx, f.pool, []int64{id})
		require.NoError(t, err)
		want := FailureOpen
		if i == len(steps)-1 {
			want = FailureResolved
		}
		require.Equal(t, want, got[0].State, "after %s", step.name)
	}

	// A device SCOM does not know: resolved without an alert.
	lab := Failure{ChangeNumber: f.change, Subject: "LAB01", Kind: FailureNoStatus, DeploymentID: &f.deps[0].ID,
		CorrelationID: "autopatch:" + f.change + ":LAB01", FirstSeenAt: now}
	labID, _, err := InsertFailure(ctx, f.pool, lab)
	require.NoError(t, err)
	require.NoError(t, RecordAlert(ctx, f.pool, labID, AlertResult{Outcome: AlertUnknownDevice}))
	require.NoError(t, RecordIncident(ctx, f.pool, labID, "INC0010002", "s2", now))
	require.NoError(t, MarkRecovered(ctx, f.pool, labID, now))
	require.NoError(t, RecordIncidentResolved(ctx, f.pool, labID, now))
	got, err = FailuresByID(ctx, f.pool, []int64{labID})
	require.NoError(t, err)
	require.Equal(t, FailureResolved, got[0].State)
	require.True(t, got[0].AlertDone())
}

func TestStormMembers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFailureFixture(t)
	now := f.start.Add(time.Hour)
	stormID, _, err := InsertFailure(ctx, f.pool, Failure{ChangeNumber: f.change, Subject: "AUTO@2026-12-12T02:00Z", Kind: FailureStorm,
		DeploymentID: &f.deps[0].ID, CorrelationID: "autopatch:" + f.change + ":storm:AUTO", FirstSeenAt: now})
	require.NoError(t, err)
	var members []int64
	for _, d := range []string{"WEB01", "WEB02"} {
		id, _, err := InsertFailure(ctx, f.pool, Failure{ChangeNumber: f.change, Subject: d, Kind: FailureError,
			DeploymentID: &f.deps[0].ID, StormID: &stormID, CorrelationID: "autopatch:" + f.change + ":" + d, FirstSeenAt: now})
		require.NoError(t, err)
		members = append(members, id)
	}
	got, err := StormMembers(ctx, f.pool, stormID)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.False(t, got[0].Reported())

	stalled, err := StalledFailures(ctx, f.pool, time.Now().Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, []int64{stormID}, stalled, "the storm has its steps to do; its members have none")

	for i, id := range members {
		require.NoError(t, MarkRecovered(ctx, f.pool, id, now))
		open, err := OpenMembers(ctx, f.pool, stormID)
		require.NoError(t, err)
		require.Equal(t, len(members)-i-1, open)
	}
	got, err = StormMembers(ctx, f.pool, stormID)
	require.NoError(t, err)
	for _, m := range got {
		require.Equal(t, FailureResolved, m.State, "a member has nothing of its own to close")
	}
}

func TestInsertFailuresBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFailureFixture(t)
	dep := f.deps[0].ID
	failure := func(device string) Failure {
		return Failure{ChangeNumber: f.change, Subject: device, Kind: FailureError, DeploymentID: &dep,
			ErrorCode: code(0x80240022), CorrelationID: "autopatch:" + f.change + ":" + device, AlertComputer: device, FirstSeenAt: f.start}
	}
	existing, created, err := InsertFailure(ctx, f.pool, failure("SQL02"))
	require.NoError(t, err)
	require.True(t, created)

	ids, err := InsertFailures(ctx, f.pool, []Failure{failure("SQL01"), failure("SQL02"), failure("SQL03"), failure("SQL01")})
	require.NoError(t, err)
	require.Len(t, ids, 4)
	require.NotZero(t, ids[0])
	require.Zero(t, ids[1], "SQL02 existed")
	require.NotZero(t, ids[2])
	require.Zero(t, ids[3], "a repeat creates nothing")

	all, err := ChangeFailures(ctx, f.pool, []string{f.change})
	require.NoError(t, err)
	require.Len(t, all, 3)
	require.Equal(t, existing, all[0].ID)

	require.NoError(t, MarkRecoveredAll(ctx, f.pool, []int64{ids[0], ids[2]}, f.start.Add(time.Hour)))
	all, err = FailuresByID(ctx, f.pool, []int64{existing, ids[0], ids[2]}) // in id order
	require.NoError(t, err)
	require.Nil(t, all[0].RecoveredAt)
	require.NotNil(t, all[1].RecoveredAt)
	require.NotNil(t, all[2].RecoveredAt)
	require.Equal(t, FailureOpen, all[1].State, "not a storm member: resolved once its alert and incident close")
}

func TestPendingAlerts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFailureFixture(t)
	dep := f.deps[0].ID
	insert := func(device, computer string) int64 {
		id, _, err := InsertFailure(ctx, f.pool, Failure{ChangeNumber: f.change, Subject: device, Kind: FailureError,
			DeploymentID: &dep, CorrelationID: "autopatch:" + f.change + ":" + device, AlertComputer: computer, FirstSeenAt: f.start})
		require.NoError(t, err)
		return id
	}
	toRaise := insert("A", "A")
	unknown := insert("B", "B")
	require.NoError(t, RecordAlert(ctx, f.pool, unknown, AlertResult{Outcome: AlertUnknownDevice}))
	toLink := insert("C", "C")
	require.NoError(t, RecordAlert(ctx, f.pool, toLink, AlertResult{Outcome: "raised", AlertID: "alert-c"}))
	require.NoError(t, RecordIncident(ctx, f.pool, toLink, "INC0010001", "0123456789abcdef0123456789abcdef", f.start))
	linked := insert("D", "D")
	require.NoError(t, RecordAlert(ctx, f.pool, linked, AlertResult{Outcome: "raised", AlertID: "alert-d"}))
	require.NoError(t, RecordIncident(ctx, f.pool, linked, "INC0010002", "0123456789abcdef0123456789abcde0", f.start))
	require.NoError(t, RecordAlertTicket(ctx, f.pool, linked, "INC0010002"))
	toClose := insert("E", "E")
	require.NoError(t, RecordAlert(ctx, f.pool, toClose, AlertResult{Outcome: "raised", AlertID: "alert-e"}))
	require.NoError(t, RecordIncident(ctx, f.pool, toClose, "INC0010003", "0123456789abcdef0123456789abcde1", f.start))
	require.NoError(t, RecordAlertTicket(ctx, f.pool, toClose, "INC0010003"))
	require.NoError(t, MarkRecovered(ctx, f.pool, toClose, f.start.Add(time.Hour)))
	insert("F", "") // no computer: its own job records the refusal

	ids, err := PendingAlerts(ctx, f.pool, 100)
	require.NoError(t, err)
	require.Equal(t, []int64{toRaise, toLink, toClose}, ids)
	ids, err = PendingAlerts(ctx, f.pool, 1)
	require.NoError(t, err)
	require.Equal(t, []int64{toRaise}, ids)
}
