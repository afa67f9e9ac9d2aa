package safety

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/calendar"
)

// year2026 is the horizon most tests use: the twelve cycles of 2026, past
// windows included.
var year2026 = Horizon{First: calendar.Month{Year: 2026, Month: time.January}, Cycles: 12}

func parseSchedules(t testing.TB, yaml string) []calendar.Schedule {
	t.Helper()
	list, err := calendar.Parse([]byte("schedules:\n" + yaml))
	require.NoError(t, err)
	return list
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func inventory(t testing.TB, schedules []calendar.Schedule, h Horizon, rules *Services, as ...Assignment) *Inventory {
	t.Helper()
	inv, err := InventoryOf(NewTimeline(schedules, h), rules, as)
	require.NoError(t, err)
	return inv
}

func dev(name, service string, tier Tier, schedule string) Assignment {
	return Assignment{Device: name, Service: service, Tier: tier, Schedule: schedule}
}

func kinds(vs []Violation) []Kind {
	out := []Kind{}
	for _, v := range vs {
		out = append(out, v.Kind)
	}
	return out
}
