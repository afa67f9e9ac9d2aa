package safety

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/calendar"
)

// planOf builds a change's plan entries as the plan job does: the
// calendar's plan of the schedules in scope; manual_patch ones are fixed.
func planOf(schedules []calendar.Schedule, start, end time.Time, scope ...string) []PlanEntry {
	var list []calendar.Schedule
	for _, s := range schedules {
		if len(scope) == 0 || contains(scope, s.Name) {
			list = append(list, s)
		}
	}
	res := calendar.Plan(list, start, end)
	kind := map[string]calendar.Kind{}
	for _, s := range schedules {
		kind[s.Name] = s.Kind
	}
	var out []PlanEntry
	for _, w := range res.Windows {
		out = append(out, PlanEntry{Schedule: w.Schedule, Window: &w, Fixed: kind[w.Schedule] == calendar.KindManualPatch})
	}
	for _, u := range res.Unplaceable {
		out = append(out, PlanEntry{Schedule: u.Schedule, Reason: u.Reason})
	}
	return out
}

func heldNames(hs []Hold) []string {
	out := []string{}
	for _, h := range hs {
		out = append(out, h.Schedule)
	}
	return out
}

func TestCheckPlan(t *testing.T) {
	t.Parallel()
	schedules := parseSchedules(t, oneOffs)
	// The change 2026-12-12 00:00–09:30 UTC places A, B, C, E; D (10–12)
	// ends after it.
	start, end := utc("2026-12-12T00:00:00Z"), utc("2026-12-12T09:30:00Z")
	for _, tc := range []struct {
		name      string
		devices   []Assignment
		scope     []string
		want      []Kind
		held      []string
		remaining []Kind
	}{
		{
			name:    "Safe",
			devices: []Assignment{dev("S1", "Pay", Backend, "A"), dev("A1", "Pay", Middle, "C"), dev("W1", "Shop", Frontend, "C"), dev("W2", "Shop", Frontend, "A")},
			want:    []Kind{}, held: []string{}, remaining: []Kind{},
		},
		{
			name:    "MiddlePlacedBackendNot",
			devices: []Assignment{dev("S1", "Pay", Backend, "D"), dev("A1", "Pay", Middle, "A"), dev("W1", "Pay", Frontend, "C")},
			// A (middle) and C (frontend) are placed, D (backend) is not;
			// holding A strands the frontend, so C is held too.
			want: []Kind{KindTierNotPlaced, KindTierNotPlaced}, held: []string{"A", "C"}, remaining: []Kind{},
		},
		{
			name:    "BackendOutOfScopeIsTheAdminsChoice",
			devices: []Assignment{dev("S1", "Pay", Backend, "D"), dev("A1", "Pay", Middle, "A")},
			scope:   []string{"A", "B", "C", "E"},
			want:    []Kind{}, held: []string{}, remaining: []Kind{},
		},
		{
			name:    "RedundancyHoldsTheLaterWindow",
			devices: []Assignment{dev("W1", "Pay", Frontend, "A"), dev("W2", "Pay", Frontend, "B")},
			want:    []Kind{KindRedundancy}, held: []string{"B"}, remaining: []Kind{},
		},
		{
			name:    "FixedWindowsAreNeverHeld",
			devices: []Assignment{dev("W1", "Pay", Frontend, "E"), dev("W2", "Pay", Frontend, "A")},
			// E (manual_patch) starts later than A but cannot be held.
			want: []Kind{KindRedundancy}, held: []string{"A"}, remaining: []Kind{},
		},
		{
			name:    "OnlyFixedWindowsRemain",
			devices: []Assignment{dev("W1", "Pay", Frontend, "E"), dev("W2", "Pay", Frontend, "E")},
			want:    []Kind{KindRedundancy}, held: []string{}, remaining: []Kind{KindRedundancy},
		},
		{
			name:    "TierOrderHoldsTheEarlyTier",
			devices: []Assignment{dev("S1", "Pay", Backend, "B"), dev("A1", "Pay", Middle, "C")},
			want:    []Kind{KindTierOrder}, held: []string{"C"}, remaining: []Kind{},
		},
		{
			name: "CascadeAcrossServices",
			// A holds Pay's middle and Shop's backend. Pay's backend (D) is
			// not placed: A is held, which strands Shop's middle on C.
			devices: []Assignment{dev("S1", "Pay", Backend, "D"), dev("A1", "Pay", Middle, "A"), dev("S2", "Shop", Backend, "A"), dev("A2", "Shop", Middle, "C")},
			want:    []Kind{KindTierNotPlaced}, held: []string{"A", "C"}, remaining: []Kind{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inv := inventory(t, schedules, year2026, nil, tc.devices...)
			entries := planOf(schedules, start, end, tc.scope...)

			warn := inv.CheckPlan(entries, false)
			require.ElementsMatch(t, tc.want, kinds(warn.Violations), "%v", warn.Violations)
			require.Empty(t, warn.Held, "warn holds nothing")
			require.Equal(t, warn.Violations, warn.Remaining)

			hold := inv.CheckPlan(entries, true)
			require.Equal(t, warn.Violations, hold.Violations)
			require.Equal(t, tc.held, heldNames(hold.Held))
			require.ElementsMatch(t, tc.remaining, kinds(hold.Remaining), "%v", hold.Remaining)
			for _, h := range hold.Held {
				require.NotEmpty(t, h.Reason)
			}

			// Independently: the plan without the held schedules, checked
			// again as a plan of its own, has only the remaining violations.
			var kept []PlanEntry
			for _, e := range entries {
				if !contains(tc.held, e.Schedule) {
					kept = append(kept, e)
				} else {
					// Held: no window in the change, as the job stores it.
					kept = append(kept, PlanEntry{Schedule: e.Schedule, Reason: "held"})
				}
			}
			again := inv.CheckPlan(kept, false)
			require.ElementsMatch(t, tc.remaining, kinds(again.Violations), "%v", again.Violations)
		})
	}
}

func TestCheckPlanNotPlacedNamesTheReason(t *testing.T) {
	t.Parallel()
	schedules := parseSchedules(t, oneOffs)
	inv := inventory(t, schedules, year2026, nil, dev("S1", "Pay", Backend, "D"), dev("S2", "Pay", Backend, "D"), dev("A1", "Pay", Middle, "A"))
	v := inv.CheckPlan(planOf(schedules, utc("2026-12-12T00:00:00Z"), utc("2026-12-12T09:30:00Z")), false)
	require.Len(t, v.Violations, 1)
	s := v.Violations[0].String()
	require.Contains(t, s, "Pay: middle is patched in this change (A Sat 2026-12-12 02:00–06:00 UTC (1 device)) but backend is not: D (2 devices): ")
	require.Contains(t, s, "starts after the change ends")
	require.Equal(t, []string{"A1", "S1", "S2"}, Devices(v.Violations[0], []Assignment{
		dev("S1", "Pay", Backend, "D"), dev("S2", "Pay", Backend, "D"), dev("A1", "Pay", Middle, "A"), dev("X", "Other", Backend, "D"),
	}))
}
