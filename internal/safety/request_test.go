package safety

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func moveAll(schedule string, devices ...Assignment) []Move {
	var out []Move
	for _, d := range devices {
		out = append(out, Move{Device: d.Device, To: Placement{Service: d.Service, Tier: d.Tier, Schedule: schedule}})
	}
	return out
}

func TestCheckRequest(t *testing.T) {
	t.Parallel()
	schedules := parseSchedules(t, oneOffs)
	payroll1, err := ParseServices([]byte("services: [{name: Payroll, max_unavailable: 1}]"))
	require.NoError(t, err)
	from := func(d Assignment) *Placement {
		return &Placement{Service: d.Service, Tier: d.Tier, Schedule: d.Schedule}
	}
	w1, w2, w3 := dev("W1", "Shop", Frontend, "A"), dev("W2", "Shop", Frontend, "D"), dev("W3", "Shop", Frontend, "C")
	for _, tc := range []struct {
		name     string
		rules    *Services
		existing []Assignment
		moves    []Move
		want     []Kind // the violations the request causes
		found    []Kind // those it finds and leaves alone
	}{
		{
			name:     "NewDeviceOverlapsTheOtherMember",
			existing: []Assignment{w1},
			moves:    moveAll("B", dev("W9", "Shop", Frontend, "")),
			want:     []Kind{KindRedundancy},
		},
		{
			name:     "NewDeviceApart",
			existing: []Assignment{w1},
			moves:    moveAll("D", dev("W9", "Shop", Frontend, "")),
		},
		{
			name:     "WholeRequestOnOneSchedule",
			existing: nil,
			moves:    moveAll("A", dev("W1", "Shop", Frontend, ""), dev("W2", "Shop", Frontend, "")),
			want:     []Kind{KindRedundancy},
		},
		{
			name:     "MovingAwayFromTheOverlapIsFine",
			existing: []Assignment{dev("W1", "Shop", Frontend, "A"), dev("W2", "Shop", Frontend, "B")},
			moves:    []Move{{Device: "W2", From: from(dev("W2", "Shop", Frontend, "B")), To: Placement{"Shop", Frontend, "D"}}},
		},
		{
			name:     "UnrelatedExistingViolationIsNotBlamed",
			existing: []Assignment{dev("W1", "Shop", Frontend, "A"), dev("W2", "Shop", Frontend, "B"), dev("S1", "Shop", Backend, "D")},
			moves:    moveAll("D", dev("S2", "Shop", Backend, "")),
			// S1 and S2 both on D: two of two backends down; and S2, like
			// S1, would patch after the frontends, which the order forbids
			// (S2 joins that violation). The frontends' overlap is not the
			// request's doing.
			want:  []Kind{KindRedundancy, KindTierOrder},
			found: []Kind{KindRedundancy},
		},
		{
			name:     "ExistingViolationLeftAlone",
			existing: []Assignment{dev("W1", "Shop", Frontend, "A"), dev("W2", "Shop", Frontend, "B")},
			moves:    moveAll("C", dev("S1", "Shop", Backend, "")),
			// Backend C (06–09) ends after both frontends start.
			want:  []Kind{KindTierOrder},
			found: []Kind{KindRedundancy},
		},
		{
			name:     "JoiningAnExistingOverlapWorsensIt",
			rules:    payroll1,
			existing: []Assignment{dev("P1", "Payroll", Middle, "A"), dev("P2", "Payroll", Middle, "B"), dev("P3", "Payroll", Middle, "D")},
			moves:    moveAll("B", dev("P4", "Payroll", Middle, "")),
			want:     []Kind{KindRedundancy},
		},
		{
			name:     "SameScheduleAgainIsANoOp",
			existing: []Assignment{dev("W1", "Shop", Frontend, "A"), dev("W2", "Shop", Frontend, "B")},
			moves:    []Move{{Device: "W2", From: from(dev("W2", "Shop", Frontend, "B")), To: Placement{"Shop", Frontend, "B"}}},
			found:    []Kind{KindRedundancy},
		},
		{
			name: "LeavingShrinksTheOldGroup",
			// Three frontends, A and B overlap: 2 of 3 down is allowed. W3
			// moves to another service: 2 of 2 down is not.
			existing: []Assignment{dev("W1", "Shop", Frontend, "A"), dev("W2", "Shop", Frontend, "B"), w3},
			moves:    []Move{{Device: "W3", From: from(w3), To: Placement{"Other", Frontend, "D"}}},
			want:     []Kind{KindRedundancy},
		},
		{
			name:     "TierOrderAgainstAnotherDevice",
			existing: []Assignment{dev("S1", "Shop", Backend, "B")},
			moves:    moveAll("A", dev("A1", "Shop", Middle, "")),
			want:     []Kind{KindTierOrder},
		},
		{
			name:     "ServicesCompareWithoutCase",
			existing: []Assignment{w1, w2},
			moves:    moveAll("B", dev("W9", "SHOP", Frontend, "")),
			want:     nil, // 2 of 3 at once is allowed
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inv := inventory(t, schedules, year2026, tc.rules, tc.existing...)
			before := inv.Check()
			v, err := inv.CheckRequest(tc.moves)
			require.NoError(t, err)
			require.ElementsMatch(t, tc.want, kinds(v.Violations), "%v", v.Violations)
			require.ElementsMatch(t, tc.found, kinds(v.Existing), "%v", v.Existing)
			require.Equal(t, before, inv.Check(), "the inventory is not modified")
		})
	}
}

// TestSuggest checks every suggestion independently: the estate with the
// request applied on the suggested schedule has no new violation in a full
// check; and every schedule of the kind that is not suggested does break a
// rule.
func TestSuggest(t *testing.T) {
	t.Parallel()
	schedules := parseSchedules(t, oneOffs)
	existing := []Assignment{dev("W1", "Shop", Frontend, "A"), dev("S1", "Shop", Backend, "D")}
	req := []Assignment{dev("W2", "Shop", Frontend, "")}
	inv := inventory(t, schedules, year2026, nil, existing...)
	got, err := inv.Suggest(moveAll("B", req...), 10)
	require.NoError(t, err)
	// Automatic schedules other than B: A (with W1: both down), C (before
	// the backend D, and touches A: fine for redundancy but not for order),
	// D (with the backend's window). E is manual_patch: another kind.
	for _, name := range []string{"A", "C", "D"} {
		all := append(append([]Assignment{}, existing...), dev("W2", "Shop", Frontend, name))
		broken := len(inventory(t, schedules, year2026, nil, all...).Check()) > 0
		require.Equal(t, !broken, contains(got, name), name)
	}
	require.NotContains(t, got, "B", "not the schedule asked for")
	require.NotContains(t, got, "E", "not another kind")

	none, err := inv.Suggest(moveAll("B", req...), 0)
	require.NoError(t, err)
	require.Empty(t, none)
	_, err = inv.Suggest(moveAll("NOPE", req...), 3)
	require.Error(t, err)
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestCheckRequestRejectsBadTier(t *testing.T) {
	t.Parallel()
	inv := inventory(t, parseSchedules(t, oneOffs), year2026, nil)
	_, err := inv.CheckRequest([]Move{{Device: "X", To: Placement{"Shop", "top", "A"}}})
	require.ErrorContains(t, err, "tier")
}
