package safety

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/calendar"
)

// oneOffs are schedules of explicit windows on 2026-12-12 (UTC), chosen to
// overlap partly, touch and stay apart:
//
//	A 02:00–06:00   B 04:00–08:00 (overlaps A 04–06)   C 06:00–09:00 (touches A)
//	D 10:00–12:00   E 05:00–05:30 (inside A and B)
const oneOffs = `
  - {name: A, collection: "Patch - A", windows: [{start: "2026-12-12T02:00:00Z", end: "2026-12-12T06:00:00Z"}]}
  - {name: B, collection: "Patch - B", windows: [{start: "2026-12-12T04:00:00Z", end: "2026-12-12T08:00:00Z"}]}
  - {name: C, collection: "Patch - C", windows: [{start: "2026-12-12T06:00:00Z", end: "2026-12-12T09:00:00Z"}]}
  - {name: D, collection: "Patch - D", windows: [{start: "2026-12-12T10:00:00Z", end: "2026-12-12T12:00:00Z"}]}
  - {name: E, collection: "Patch - E", kind: manual_patch, windows: [{start: "2026-12-12T05:00:00Z", end: "2026-12-12T05:30:00Z"}]}
`

// stretch is the part of a violation a case checks.
type stretch struct {
	Service, Tier     string
	From, To          string // HH:MM UTC on 2026-12-12
	Down, Limit, Size int
	Schedules         string
}

func stretches(vs []Violation) []stretch {
	out := []stretch{}
	for _, v := range vs {
		if v.Kind != KindRedundancy {
			continue
		}
		out = append(out, stretch{v.Service, string(v.Tier), v.From.Format("15:04"), v.To.Format("15:04"),
			v.Down, v.Limit, v.Members, fmt.Sprint(v.Schedules())})
	}
	return out
}

func TestRedundancy(t *testing.T) {
	t.Parallel()
	schedules := parseSchedules(t, oneOffs)
	payroll1, err := ParseServices([]byte("services: [{name: Payroll, max_unavailable: 1}, {name: Big, max_unavailable: 5}]"))
	require.NoError(t, err)
	for _, tc := range []struct {
		name    string
		rules   *Services
		devices []Assignment
		want    []stretch
	}{
		{"SingleDeviceNeverViolates", nil,
			[]Assignment{dev("W1", "Shop", Frontend, "A")}, []stretch{}},
		{"TwoApartAreFine", nil,
			[]Assignment{dev("W1", "Shop", Frontend, "A"), dev("W2", "Shop", Frontend, "D")}, []stretch{}},
		{"TouchingIsNotOverlapping", nil,
			[]Assignment{dev("W1", "Shop", Frontend, "A"), dev("W2", "Shop", Frontend, "C")}, []stretch{}},
		{"PartialOverlap", nil,
			[]Assignment{dev("W1", "Shop", Frontend, "A"), dev("W2", "Shop", Frontend, "B")},
			[]stretch{{"Shop", "frontend", "04:00", "06:00", 2, 1, 2, "[A B]"}}},
		{"SameScheduleAllDown", nil,
			[]Assignment{dev("W1", "Shop", Frontend, "A"), dev("W2", "Shop", Frontend, "A"), dev("W3", "Shop", Frontend, "A")},
			[]stretch{{"Shop", "frontend", "02:00", "06:00", 3, 2, 3, "[A]"}}},
		{"ThreeOfThreeOnlyWhereAllOverlap", nil,
			[]Assignment{dev("W1", "Shop", Frontend, "A"), dev("W2", "Shop", Frontend, "B"), dev("W3", "Shop", Frontend, "E")},
			[]stretch{{"Shop", "frontend", "05:00", "05:30", 3, 2, 3, "[A B E]"}}},
		{"OtherTiersAndServicesAreOtherGroups", nil,
			[]Assignment{dev("W1", "Shop", Frontend, "A"), dev("S1", "Shop", Backend, "A"), dev("X1", "Other", Frontend, "A")},
			[]stretch{}},
		{"ServiceNamesIgnoreCase", nil,
			[]Assignment{dev("W1", "Shop", Frontend, "A"), dev("W2", "shop ", Frontend, "B")},
			[]stretch{{"Shop", "frontend", "04:00", "06:00", 2, 1, 2, "[A B]"}}},
		{"MaxUnavailableOne", payroll1,
			[]Assignment{dev("P1", "Payroll", Middle, "A"), dev("P2", "Payroll", Middle, "B"), dev("P3", "Payroll", Middle, "C"), dev("P4", "Payroll", Middle, "D")},
			// A–B overlap 04–06; B–C overlap 06–08: back to back, one stretch.
			[]stretch{{"Payroll", "middle", "04:00", "08:00", 2, 1, 4, "[A B C]"}}},
		{"MaxUnavailableOneSeparateStretches", payroll1,
			[]Assignment{dev("P1", "Payroll", Middle, "A"), dev("P2", "Payroll", Middle, "E"), dev("P3", "Payroll", Middle, "C"), dev("P4", "Payroll", Middle, "C")},
			[]stretch{
				{"Payroll", "middle", "05:00", "05:30", 2, 1, 4, "[A E]"},
				{"Payroll", "middle", "06:00", "09:00", 2, 1, 4, "[C]"},
			}},
		{"DefaultWithoutRule", payroll1,
			[]Assignment{dev("W1", "Shop", Frontend, "A"), dev("W2", "Shop", Frontend, "B"), dev("W3", "Shop", Frontend, "C")},
			[]stretch{}},
		{"RuleAboveGroupSize", payroll1,
			[]Assignment{dev("B1", "Big", Frontend, "A"), dev("B2", "Big", Frontend, "A")}, []stretch{}},
		{"UnknownScheduleCountsAsUp", nil,
			[]Assignment{dev("W1", "Shop", Frontend, "A"), dev("W2", "Shop", Frontend, "A"), dev("W3", "Shop", Frontend, "RETIRED")},
			[]stretch{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inv := inventory(t, schedules, year2026, tc.rules, tc.devices...)
			got := inv.Check()
			require.Equal(t, tc.want, stretches(got))
			for _, v := range got {
				require.Equal(t, calendar.Month{Year: 2026, Month: time.December}, v.Cycle)
				require.NotEmpty(t, Devices(v, tc.devices))
			}
		})
	}
}

func TestTierOrder(t *testing.T) {
	t.Parallel()
	schedules := parseSchedules(t, oneOffs)
	type order struct{ Before, Tier, Schedules string }
	for _, tc := range []struct {
		name    string
		devices []Assignment
		want    []order
	}{
		{"InOrder", []Assignment{dev("S1", "Pay", Backend, "A"), dev("A1", "Pay", Middle, "C"), dev("W1", "Pay", Frontend, "D")}, []order{}},
		{"MiddleStartsBeforeBackendEnds", []Assignment{dev("S1", "Pay", Backend, "A"), dev("A1", "Pay", Middle, "B")},
			[]order{{"backend", "middle", "[A B]"}}},
		{"Reversed", []Assignment{dev("S1", "Pay", Backend, "D"), dev("A1", "Pay", Middle, "C"), dev("W1", "Pay", Frontend, "A")},
			[]order{{"backend", "frontend", "[A D]"}, {"backend", "middle", "[C D]"}, {"middle", "frontend", "[A C]"}}},
		{"NoMiddleStillOrdered", []Assignment{dev("S1", "Pay", Backend, "B"), dev("W1", "Pay", Frontend, "C")},
			[]order{{"backend", "frontend", "[B C]"}}},
		{"SameWindowBreaksOrder", []Assignment{dev("S1", "Pay", Backend, "D"), dev("W1", "Pay", Frontend, "D")},
			[]order{{"backend", "frontend", "[D]"}}},
		{"OnlyOffendingWindowsNamed", []Assignment{dev("S1", "Pay", Backend, "A"), dev("S2", "Pay", Backend, "E"), dev("A1", "Pay", Middle, "C"), dev("A2", "Pay", Middle, "B")},
			// B (middle, 04:00) starts before A and E end; C (06:00) does not.
			[]order{{"backend", "middle", "[A B E]"}}},
		{"OtherServiceIgnored", []Assignment{dev("S1", "Pay", Backend, "D"), dev("W1", "Shop", Frontend, "A")}, []order{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := []order{}
			for _, v := range inventory(t, schedules, year2026, nil, tc.devices...).Check() {
				if v.Kind == KindTierOrder {
					got = append(got, order{string(v.Before), string(v.Tier), fmt.Sprint(v.Schedules())})
				}
			}
			require.ElementsMatch(t, tc.want, got)
		})
	}
}

// TestTierOrderPerCycle: windows of different cycles never constrain each
// other, even when a later cycle's backend window comes after an earlier
// cycle's frontend one.
func TestTierOrderPerCycle(t *testing.T) {
	t.Parallel()
	schedules := parseSchedules(t, `
  - {name: DB-PT4, collection: "Patch - DB", timezone: UTC, recurrence: {anchor: patch_tuesday, offset_days: 4}, start: "02:00", duration: 4h}
  - {name: WEB-PT5, collection: "Patch - WEB", timezone: UTC, recurrence: {anchor: patch_tuesday, offset_days: 5}, start: "02:00", duration: 4h}
  - {name: WEB-1ST-SUN, collection: "Patch - WEB2", timezone: UTC, recurrence: {anchor: nth_weekday, nth: 1, weekday: sunday}, start: "02:00", duration: 4h}
`)
	inv := inventory(t, schedules, year2026, nil, dev("S1", "Pay", Backend, "DB-PT4"), dev("W1", "Pay", Frontend, "WEB-PT5"))
	require.Empty(t, inv.Check(), "PT+5 always follows PT+4 of the same cycle")

	// The first Sunday of a month always comes before Patch Tuesday + 4:
	// every cycle breaks the order.
	inv = inventory(t, schedules, year2026, nil, dev("S1", "Pay", Backend, "DB-PT4"), dev("W1", "Pay", Frontend, "WEB-1ST-SUN"))
	vs := inv.Check()
	require.Len(t, vs, 12)
	for i, v := range vs {
		require.Equal(t, KindTierOrder, v.Kind)
		require.Equal(t, calendar.Month{Year: 2026, Month: time.Month(i + 1)}, v.Cycle)
		for _, w := range v.Windows {
			require.Equal(t, v.Cycle, w.Window.Cycle)
		}
	}
	sums := Summarize(vs)
	require.Len(t, sums, 1)
	require.Equal(t, 12, sums[0].Count)
	require.Contains(t, sums[0].String(), "and 11 more time(s) in the cycles checked (2026-01 to 2026-12)")
}

// The DST schedules: London 06:00–08:00 local and New York 03:00–04:00
// local, both on Patch Tuesday + 4. In UTC, London is 06–08 in winter and
// 05–07 in summer; New York is 08–09 in winter and 07–08 in summer. They
// overlap (07–08 UTC) only while New York is on summer time and London is
// not: of 2026's PT+4 Saturdays, only 14 March (the US changed on 8 March,
// Europe on 29 March). In October and November both zones are on the same
// time (17 Oct summer, 14 Nov winter) and the windows only touch.
const dstSchedules = `
  - {name: LON, collection: "Patch - LON", timezone: Europe/London, recurrence: {anchor: patch_tuesday, offset_days: 4}, start: "06:00", duration: 2h}
  - {name: NYC, collection: "Patch - NYC", timezone: America/New_York, recurrence: {anchor: patch_tuesday, offset_days: 4}, start: "03:00", duration: 1h}
`

func TestDSTShiftedOverlap(t *testing.T) {
	t.Parallel()
	schedules := parseSchedules(t, dstSchedules)

	t.Run("Redundancy", func(t *testing.T) {
		t.Parallel()
		vs := inventory(t, schedules, year2026, nil, dev("W1", "Shop", Frontend, "LON"), dev("W2", "Shop", Frontend, "NYC")).Check()
		require.Len(t, vs, 1, "%v", vs)
		v := vs[0]
		require.Equal(t, KindRedundancy, v.Kind)
		require.Equal(t, calendar.Month{Year: 2026, Month: time.March}, v.Cycle)
		require.Equal(t, utc("2026-03-14T07:00:00Z"), v.From)
		require.Equal(t, utc("2026-03-14T08:00:00Z"), v.To)
		require.Contains(t, v.String(), "Sat 2026-03-14 07:00–08:00 UTC")
		require.Contains(t, v.String(), "NYC Sat 2026-03-14 03:00–04:00 EDT")
		require.Contains(t, v.String(), "LON Sat 2026-03-14 06:00–08:00 GMT")
	})
	t.Run("TierOrder", func(t *testing.T) {
		t.Parallel()
		// Backend in London, frontend in New York: in winter the frontend
		// starts as the backend ends (fine), in summer an hour after; only in
		// March's gap does it start an hour early.
		vs := inventory(t, schedules, year2026, nil, dev("S1", "Shop", Backend, "LON"), dev("W1", "Shop", Frontend, "NYC")).Check()
		require.Len(t, vs, 1, "%v", vs)
		require.Equal(t, KindTierOrder, vs[0].Kind)
		require.Equal(t, calendar.Month{Year: 2026, Month: time.March}, vs[0].Cycle)
		require.Equal(t, utc("2026-03-14T07:00:00Z"), vs[0].From)
		require.Equal(t, utc("2026-03-14T08:00:00Z"), vs[0].To)
	})
}

func TestHorizonDropsPastWindows(t *testing.T) {
	t.Parallel()
	schedules := parseSchedules(t, dstSchedules)
	as := []Assignment{dev("W1", "Shop", Frontend, "LON"), dev("W2", "Shop", Frontend, "NYC")}
	h := year2026
	h.After = utc("2026-03-14T07:30:00Z") // inside the overlap: both windows still open
	require.Len(t, inventory(t, schedules, h, nil, as...).Check(), 1)
	h.After = utc("2026-03-14T08:00:00Z") // both over
	require.Empty(t, inventory(t, schedules, h, nil, as...).Check())

	now := utc("2027-01-05T00:00:00Z")
	nh := NextCycles(now)
	require.Equal(t, calendar.Month{Year: 2026, Month: time.December}, nh.First)
	require.Equal(t, calendar.Month{Year: 2027, Month: time.December}, nh.Last())
	tl := NewTimeline(parseSchedules(t, `
  - {name: LATE, collection: "Patch - L", timezone: UTC, recurrence: {anchor: patch_tuesday, offset_days: 25}, start: "02:00", duration: 2h}
`), nh)
	ws := tl.Windows("LATE")
	// December's PT+25 (8 Dec + 25 = 2 Jan) is over; January's is ahead.
	require.Equal(t, calendar.Month{Year: 2027, Month: time.January}, ws[0].Cycle)
	require.True(t, ws[0].Start.After(now))
	require.Len(t, ws, 12)
}
