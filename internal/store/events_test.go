package store

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/testdb"
)

func TestEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := &Store{Pool: testdb.Pool(t)}
	v1 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	event := func(eventID string, updated time.Time, outcome string) Event {
		return Event{
			ID: uuid.New(), Kind: EventChange, EventID: eventID,
			RecordNumber: "CHG0031234", RecordSysID: "0123456789abcdef0123456789abcdef",
			SysUpdatedOn: updated, Payload: []byte(`{"x":1}`), Outcome: outcome,
		}
	}
	record := func(ev Event) (Prior, bool) {
		var (
			p        Prior
			inserted bool
		)
		require.NoError(t, s.InTx(ctx, func(tx pgx.Tx) error {
			require.NoError(t, LockRecord(ctx, tx, ev.Kind, ev.RecordSysID))
			var err error
			if p, err = FindPrior(ctx, tx, ev); err != nil || p.DuplicateOf != uuid.Nil {
				return err
			}
			inserted, err = InsertEvent(ctx, tx, ev)
			return err
		}))
		return p, inserted
	}

	first := event("e1", v1, OutcomeAccepted)
	p, ok := record(first)
	require.True(t, ok)
	require.Equal(t, Prior{}, p)

	// Same event id, or same version: the first one.
	p, _ = record(event("e1", v1.Add(time.Hour), OutcomeAccepted))
	require.Equal(t, first.ID, p.DuplicateOf)
	p, _ = record(event("e2", v1, OutcomeAccepted))
	require.Equal(t, first.ID, p.DuplicateOf)
	p, _ = record(event("", v1, OutcomeAccepted))
	require.Equal(t, first.ID, p.DuplicateOf)

	// Another kind is another namespace.
	other := event("e1", v1, OutcomeAccepted)
	other.Kind = EventScheduleRequest
	p, ok = record(other)
	require.True(t, ok)
	require.Equal(t, uuid.Nil, p.DuplicateOf)

	// The latest applied version ignores stale deliveries.
	p, ok = record(event("e3", v1.Add(2*time.Hour), OutcomeAccepted))
	require.True(t, ok)
	require.True(t, p.LatestApplied.Equal(v1), "%v", p.LatestApplied)
	p, ok = record(event("e4", v1.Add(5*time.Hour), OutcomeStale))
	require.True(t, ok)
	require.True(t, p.LatestApplied.Equal(v1.Add(2*time.Hour)))
	p, _ = record(event("e5", time.Time{}, OutcomeAccepted))
	require.True(t, p.LatestApplied.Equal(v1.Add(2*time.Hour)), "stale e4 is not applied")

	// A concurrent winner with the same event id: InsertEvent says so.
	inserted, err := InsertEvent(ctx, s.Pool, event("e1", time.Time{}, OutcomeAccepted))
	require.NoError(t, err)
	require.False(t, inserted)

	var n int
	require.NoError(t, s.Pool.QueryRow(ctx, "SELECT count(*) FROM webhook_events").Scan(&n))
	require.Equal(t, 5, n)
}

func TestScheduleRequestRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := &Store{Pool: testdb.Pool(t)}
	updated := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	want := ScheduleRequest{
		EventID:      "sc_req_item:0123456789abcdef0123456789abcdef:3",
		RequestItem:  RequestItem{Number: "RITM0010001", SysID: "0123456789abcdef0123456789abcdef", SysUpdatedOn: &updated},
		RequestedFor: "jane.doe",
		Schedule:     "DB-SAT-0200",
		Devices:      []RequestedDevice{{Name: "SQL01", Service: "Payroll", Tier: "backend"}},
	}
	payload := []byte(`{"event_id":"sc_req_item:0123456789abcdef0123456789abcdef:3","request_item":{"number":"RITM0010001","sys_id":"0123456789abcdef0123456789abcdef","sys_updated_on":"2026-12-01T10:00:00Z"},"requested_for":"jane.doe","schedule":"DB-SAT-0200","devices":[{"name":"SQL01","service":"Payroll","tier":"backend"}]}`)
	ev := Event{ID: uuid.New(), Kind: EventScheduleRequest, EventID: want.EventID, RecordNumber: "RITM0010001",
		RecordSysID: want.RequestItem.SysID, SysUpdatedOn: updated, Payload: payload, Outcome: OutcomeAccepted}
	ok, err := InsertEvent(ctx, s.Pool, ev)
	require.NoError(t, err)
	require.True(t, ok)
	got, err := GetScheduleRequest(ctx, s.Pool, ev.ID)
	require.NoError(t, err)
	require.Equal(t, want.Devices, got.Devices)
	require.True(t, got.RequestItem.SysUpdatedOn.Equal(updated))
	got.RequestItem.SysUpdatedOn, want.RequestItem.SysUpdatedOn = nil, nil
	require.Equal(t, want, got)

	_, err = GetScheduleRequest(ctx, s.Pool, uuid.New())
	require.ErrorIs(t, err, ErrNotFound)
}

func TestUnknownSchedules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := &Store{Pool: testdb.Pool(t)}
	_, err := s.Pool.Exec(ctx, `INSERT INTO schedules (name, collection, kind, timezone, definition, retired_at) VALUES
		('A', 'Patch - A', 'automatic', 'UTC', '{}', NULL),
		('B', 'Patch - B', 'manual_patch', 'UTC', '{}', NULL),
		('OLD', 'Patch - Old', 'automatic', 'UTC', '{}', now())`)
	require.NoError(t, err)
	unknown, err := UnknownSchedules(ctx, s.Pool, []string{"A", "OLD", "a", "B", "C"})
	require.NoError(t, err)
	require.Equal(t, []string{"OLD", "a", "C"}, unknown)
	unknown, err = UnknownSchedules(ctx, s.Pool, nil)
	require.NoError(t, err)
	require.Empty(t, unknown)
}
