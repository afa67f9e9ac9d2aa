package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/testdb"
)

func baseChange() Change {
	start := time.Date(2026, 12, 12, 20, 0, 0, 0, time.UTC)
	return Change{
		Number: "CHG0031234", SysID: "0123456789abcdef0123456789abcdef",
		State: "scheduled", Approval: "approved",
		Start: start, End: start.Add(34 * time.Hour),
		UpdateGroups: []string{"2026-12 Servers"},
		SysUpdatedOn: time.Date(2026, 12, 1, 10, 2, 3, 0, time.UTC),
	}
}

func TestDecideChange(t *testing.T) {
	t.Parallel()
	planned := &ChangeRow{Change: baseChange(), Status: ChangePlanned, Revision: 3}
	received := &ChangeRow{Change: baseChange(), Status: ChangeReceived, Revision: 0}
	received.Approval = "requested"
	canceled := &ChangeRow{Change: baseChange(), Status: ChangeCanceled, Revision: 4}
	later := func(mod func(*Change)) Change {
		c := baseChange()
		c.SysUpdatedOn = c.SysUpdatedOn.Add(time.Minute)
		mod(&c)
		return c
	}
	same := func(*Change) {}

	tests := []struct {
		name string
		prev *ChangeRow
		next Change
		want Decision
	}{
		{"NewApproved", nil, baseChange(), Decision{Action: ActionPlan, Status: ChangePlanned, Revision: 1}},
		{"NewApprovedCaseInsensitive", nil, later(func(c *Change) { c.Approval = "Approved" }), Decision{Action: ActionPlan, Status: ChangePlanned, Revision: 1}},
		{"NewRequested", nil, later(func(c *Change) { c.Approval = "requested" }), Decision{Status: ChangeReceived}},
		{"NewCanceled", nil, later(func(c *Change) { c.State = "canceled" }), Decision{Status: ChangeCanceled}},
		{"ReceivedThenApproved", received, later(same), Decision{Action: ActionPlan, Status: ChangePlanned, Revision: 1}},
		{"ReapprovedSameInputs", planned, later(func(c *Change) { c.State = "implement"; c.ShortDescription = "edited" }), Decision{Status: ChangePlanned, Revision: 3}},
		{"UpdateGroupsRepeated", planned, later(func(c *Change) { c.UpdateGroups = []string{"2026-12 Servers", "2026-12 Servers"} }), Decision{Status: ChangePlanned, Revision: 3}},
		{"UpdateGroupsReordered", &ChangeRow{Change: later(func(c *Change) { c.UpdateGroups = []string{"A", "B"} }), Status: ChangePlanned}, later(func(c *Change) { c.UpdateGroups = []string{"B", "A"} }), Decision{Status: ChangePlanned}},
		{"NewStart", planned, later(func(c *Change) { c.Start = c.Start.Add(time.Hour) }), Decision{Action: ActionPlan, Status: ChangePlanned, Revision: 4}},
		{"NewEnd", planned, later(func(c *Change) { c.End = c.End.Add(-time.Hour) }), Decision{Action: ActionPlan, Status: ChangePlanned, Revision: 4}},
		{"NewUpdateGroup", planned, later(func(c *Change) { c.UpdateGroups = append(c.UpdateGroups, "2026-12 Office") }), Decision{Action: ActionPlan, Status: ChangePlanned, Revision: 4}},
		{"SchedulesNamed", planned, later(func(c *Change) { c.Schedules = []string{"DB-SAT-0200"} }), Decision{Action: ActionPlan, Status: ChangePlanned, Revision: 4}},
		{"Canceled", planned, later(func(c *Change) { c.State = "canceled" }), Decision{Action: ActionUnwind, Status: ChangeCanceled, Revision: 4}},
		{"CancelledBritish", planned, later(func(c *Change) { c.State = "Cancelled" }), Decision{Action: ActionUnwind, Status: ChangeCanceled, Revision: 4}},
		{"ApprovalWithdrawn", planned, later(func(c *Change) { c.Approval = "requested" }), Decision{Action: ActionUnwind, Status: ChangeCanceled, Revision: 4}},
		{"Rejected", planned, later(func(c *Change) { c.Approval = "rejected" }), Decision{Action: ActionUnwind, Status: ChangeCanceled, Revision: 4}},
		{"ClosedKeepsPlan", planned, later(func(c *Change) { c.State = "closed" }), Decision{Status: ChangePlanned, Revision: 3}},
		{"CanceledAgain", canceled, later(func(c *Change) { c.State = "canceled" }), Decision{Status: ChangeCanceled, Revision: 4}},
		{"ReapprovedAfterCancel", canceled, later(same), Decision{Action: ActionPlan, Status: ChangePlanned, Revision: 5}},
		{"Older", planned, later(func(c *Change) { c.SysUpdatedOn = c.SysUpdatedOn.Add(-time.Hour); c.State = "canceled" }), Decision{Stale: true, Status: ChangePlanned, Revision: 3}},
		{"SameVersion", planned, baseChange(), Decision{Status: ChangePlanned, Revision: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, DecideChange(tt.prev, tt.next))
		})
	}
}

// TestSaveChanges walks a change through its versions as ingest does:
// lock, match, decide, save.
func TestSaveChanges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := &Store{Pool: testdb.Pool(t)}
	apply := func(c Change) (Decision, error) {
		var d Decision
		err := s.InTx(ctx, func(tx pgx.Tx) error {
			_, stored, err := ReadDeliveries(ctx, tx, nil, []string{c.Number}, []string{c.SysID})
			if err != nil {
				return err
			}
			prev, err := MatchChange(stored, c)
			if err != nil {
				return err
			}
			if d = DecideChange(prev, c); d.Stale {
				return nil
			}
			return WriteDeliveries(ctx, tx, nil, nil, []ChangeRow{{Change: c, Status: d.Status, Revision: d.Revision}})
		})
		return d, err
	}
	c := baseChange()
	d, err := apply(c)
	require.NoError(t, err)
	require.Equal(t, ActionPlan, d.Action)

	got, err := GetChange(ctx, s.Pool, c.Number)
	require.NoError(t, err)
	require.Equal(t, ChangePlanned, got.Status)
	require.Equal(t, int64(1), got.Revision)
	require.Equal(t, c.UpdateGroups, got.UpdateGroups)
	require.Nil(t, got.Schedules, "NULL: every schedule")
	require.True(t, got.Start.Equal(c.Start) && got.End.Equal(c.End) && got.SysUpdatedOn.Equal(c.SysUpdatedOn))

	// The same inputs, a later version: nothing to do, but the row follows.
	c.SysUpdatedOn = c.SysUpdatedOn.Add(time.Minute)
	c.ShortDescription = "December patching"
	c.Schedules = nil
	d, err = apply(c)
	require.NoError(t, err)
	require.Equal(t, ActionNone, d.Action)
	got, err = GetChange(ctx, s.Pool, c.Number)
	require.NoError(t, err)
	require.Equal(t, "December patching", got.ShortDescription)
	require.Equal(t, int64(1), got.Revision)

	// Named schedules are stored as given.
	c.SysUpdatedOn = c.SysUpdatedOn.Add(time.Minute)
	c.Schedules = []string{"DB-SAT-0200"}
	d, err = apply(c)
	require.NoError(t, err)
	require.Equal(t, ActionPlan, d.Action)
	got, err = GetChange(ctx, s.Pool, c.Number)
	require.NoError(t, err)
	require.Equal(t, []string{"DB-SAT-0200"}, got.Schedules)
	require.Equal(t, int64(2), got.Revision)

	// An older version changes nothing.
	old := c
	old.SysUpdatedOn = old.SysUpdatedOn.Add(-time.Hour)
	old.State = "canceled"
	d, err = apply(old)
	require.NoError(t, err)
	require.True(t, d.Stale)
	got, err = GetChange(ctx, s.Pool, c.Number)
	require.NoError(t, err)
	require.Equal(t, "scheduled", got.State)

	// Canceled: unwind.
	c.SysUpdatedOn = c.SysUpdatedOn.Add(time.Minute)
	c.State = "canceled"
	d, err = apply(c)
	require.NoError(t, err)
	require.Equal(t, ActionUnwind, d.Action)
	got, err = GetChange(ctx, s.Pool, c.Number)
	require.NoError(t, err)
	require.Equal(t, ChangeCanceled, got.Status)
	require.Equal(t, int64(3), got.Revision)

	// Number and sys_id must agree with what is stored.
	other := baseChange()
	other.SysID = "ffffffffffffffffffffffffffffffff"
	_, err = apply(other)
	var mismatch *MismatchError
	require.True(t, errors.As(err, &mismatch), "%v", err)
	require.Equal(t, "sys_id", mismatch.Field)
	require.Equal(t, c.SysID, mismatch.Known)

	other = baseChange()
	other.Number = "CHG0000002"
	_, err = apply(other)
	require.True(t, errors.As(err, &mismatch), "%v", err)
	require.Equal(t, "number", mismatch.Field)
	require.Equal(t, c.Number, mismatch.Known)

	_, err = GetChange(ctx, s.Pool, "CHG9999999")
	require.ErrorIs(t, err, ErrNotFound)

	// Several in one statement; a nil list of update groups is stored empty.
	a, b := baseChange(), baseChange()
	a.Number, a.SysID = "CHG0000010", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	b.Number, b.SysID, b.UpdateGroups, b.Schedules = "CHG0000011", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", nil, []string{"X", "Y"}
	require.NoError(t, s.InTx(ctx, func(tx pgx.Tx) error {
		return WriteDeliveries(ctx, tx, nil, nil, []ChangeRow{{Change: a, Status: ChangeReceived}, {Change: b, Status: ChangePlanned, Revision: 4}})
	}))
	gotA, err := GetChange(ctx, s.Pool, a.Number)
	require.NoError(t, err)
	require.Equal(t, a.UpdateGroups, gotA.UpdateGroups)
	require.Nil(t, gotA.Schedules)
	gotB, err := GetChange(ctx, s.Pool, b.Number)
	require.NoError(t, err)
	require.Equal(t, []string{}, gotB.UpdateGroups)
	require.Equal(t, []string{"X", "Y"}, gotB.Schedules)
	require.Equal(t, int64(4), gotB.Revision)
	require.Equal(t, ChangePlanned, gotB.Status)
}
