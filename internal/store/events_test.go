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
	event := func(eventID string, updated time.Time) Event {
		return Event{
			ID: uuid.New(), Kind: EventChange, EventID: eventID,
			RecordNumber: "CHG0031234", RecordSysID: "0123456789abcdef0123456789abcdef",
			SysUpdatedOn: updated, Payload: []byte(`{"x":1}`),
		}
	}
	// record judges ev as ingest does and returns the outcome, or
	// "duplicate of <id>".
	record := func(ev Event) string {
		var out string
		require.NoError(t, s.InTx(ctx, func(tx pgx.Tx) error {
			prior, _, err := ReadDeliveries(ctx, tx, []Event{ev}, nil, nil)
			if err != nil {
				return err
			}
			if prior[0].Duplicate != uuid.Nil {
				out = "duplicate of " + prior[0].Duplicate.String()
				return nil
			}
			out = OutcomeAccepted
			if prior[0].Stale(ev.SysUpdatedOn) {
				out = OutcomeStale
			}
			return WriteDeliveries(ctx, tx, []Event{ev}, []string{out}, nil)
		}))
		return out
	}

	first := event("e1", v1)
	require.Equal(t, OutcomeAccepted, record(first))
	dupOfFirst := "duplicate of " + first.ID.String()

	// Same event id, or same version: the first one.
	require.Equal(t, dupOfFirst, record(event("e1", v1.Add(time.Hour))))
	require.Equal(t, dupOfFirst, record(event("e2", v1)))
	require.Equal(t, dupOfFirst, record(event("", v1)))

	// Another kind is another namespace.
	other := event("e1", v1)
	other.Kind = EventScheduleRequest
	require.Equal(t, OutcomeAccepted, record(other))

	// Older than an accepted version: stale; newer: accepted. A stale
	// delivery is not a version that was applied.
	require.Equal(t, OutcomeAccepted, record(event("e3", v1.Add(2*time.Hour))))
	stale := event("e4", v1.Add(time.Hour))
	require.Equal(t, OutcomeStale, record(stale))
	require.Equal(t, "duplicate of "+stale.ID.String(), record(event("e4b", v1.Add(time.Hour))))
	require.Equal(t, OutcomeAccepted, record(event("e5", time.Time{})), "no version: never stale")
	require.Equal(t, OutcomeAccepted, record(event("e6", v1.Add(3*time.Hour))))

	var outcome string
	require.NoError(t, s.Pool.QueryRow(ctx, "SELECT outcome FROM webhook_events WHERE id = $1", stale.ID).Scan(&outcome))
	require.Equal(t, OutcomeStale, outcome)

	// Several at once, in order; one never seen before.
	evs := []Event{event("e1", v1), event("nothing", v1.Add(-time.Hour)), other}
	evs[2].EventID = "e9"
	var prior []Prior
	require.NoError(t, s.InTx(ctx, func(tx pgx.Tx) (err error) {
		prior, _, err = ReadDeliveries(ctx, tx, evs, nil, nil)
		return err
	}))
	require.Len(t, prior, 3)
	for i, want := range []Prior{
		{Duplicate: first.ID, Newest: v1.Add(3 * time.Hour)},
		{Newest: v1.Add(3 * time.Hour)},
		{Duplicate: other.ID, Newest: v1},
	} {
		require.Equal(t, want.Duplicate, prior[i].Duplicate, "delivery %d", i)
		require.True(t, want.Newest.Equal(prior[i].Newest), "delivery %d: newest %v, want %v", i, prior[i].Newest, want.Newest)
	}
	require.True(t, prior[1].Stale(v1.Add(-time.Hour)))

	// Recording a duplicate is refused by the database, not silently kept.
	err := s.InTx(ctx, func(tx pgx.Tx) error {
		return WriteDeliveries(ctx, tx, []Event{event("e1", v1.Add(9*time.Hour))}, []string{OutcomeAccepted}, nil)
	})
	require.Error(t, err)

	var n int
	require.NoError(t, s.Pool.QueryRow(ctx, "SELECT count(*) FROM webhook_events").Scan(&n))
	require.Equal(t, 6, n)
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
		RecordSysID: want.RequestItem.SysID, SysUpdatedOn: updated, Payload: payload}
	require.NoError(t, s.InTx(ctx, func(tx pgx.Tx) error {
		return WriteDeliveries(ctx, tx, []Event{ev}, []string{OutcomeAccepted}, nil)
	}))
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
