package estate_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/calendar"
	"github.com/autopatch/autopatch/internal/estate"
	"github.com/autopatch/autopatch/internal/safety"
)

func TestDefaultScale(t *testing.T) {
	t.Parallel()

	s := estate.DefaultScale()
	require.Equal(t, 8000, s.Servers)
	require.Equal(t, 24, s.Schedules)
	require.Equal(t, 3, s.UpdateGroups)
	require.Equal(t, 2*time.Second, s.Latency)
}

func TestParseScale(t *testing.T) {
	t.Parallel()

	s, err := estate.ParseScale("servers=2000, schedules=1,latency=0s")
	require.NoError(t, err)
	require.Equal(t, 2000, s.Servers)
	require.Equal(t, 1, s.Schedules)
	require.Zero(t, s.Latency)
	require.Equal(t, 3, s.UpdateGroups, "the rest keeps its default")

	for _, bad := range []string{"servers", "server=1", "servers=0", "failing=0.9,silent=0.5", "timezone=Mars/Base"} {
		_, err := estate.ParseScale(bad)
		require.Error(t, err, bad)
	}
}

func TestGenerateScale(t *testing.T) {
	t.Parallel()

	e := estate.DefaultScale().Generate("2026-12")
	require.Len(t, e.Devices, 8000)
	require.Len(t, e.Schedules, 24)
	require.Equal(t, []string{"2026-12 OS", "2026-12 DotNET", "2026-12 Office-SQL"}, e.UpdateGroups)
	require.Equal(t, e, estate.DefaultScale().Generate("2026-12"), "deterministic")

	// Services of 2 to 6 members, backend before frontend, members of a
	// service on different windows.
	services := map[string][]estate.ScaleDevice{}
	outcomes := map[string]int{}
	perSchedule := map[string]int{}
	for _, d := range e.Devices {
		services[d.Service] = append(services[d.Service], d)
		kind, _, _ := strings.Cut(d.Outcome, " ")
		if strings.HasSuffix(d.Outcome, "then success") {
			kind = "transient"
		}
		outcomes[kind]++
		perSchedule[d.Schedule]++
	}
	for name, members := range services {
		require.GreaterOrEqual(t, len(members), 2, name)
		require.LessOrEqual(t, len(members), 6, name)
		require.Equal(t, "backend", members[0].Tier, name)
		require.Equal(t, "frontend", members[len(members)-1].Tier, name)
		seen := map[string]bool{}
		for _, m := range members {
			require.False(t, seen[m.Schedule], "%s: two members on %s", name, m.Schedule)
			seen[m.Schedule] = true
		}
	}
	require.Len(t, perSchedule, 24, "every window has devices")
	// A few percent of each kind (2 %, 1 %, 1 %, 1 % of 8,000).
	require.InDelta(t, 160, outcomes["error"], 50)
	require.InDelta(t, 80, outcomes["transient"], 35)
	require.InDelta(t, 80, outcomes["silent"], 35)
	require.InDelta(t, 80, outcomes["in"], 35)

	// The files parse as serve and plan --check read them, and the windows
	// of December 2026 fall Thursday to Sunday.
	schedules, err := calendar.Parse(e.SchedulesYAML())
	require.NoError(t, err)
	require.Len(t, schedules, 24)
	month := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	plan := calendar.Plan(schedules, month, month.AddDate(0, 1, 0))
	require.Empty(t, plan.Unplaceable)
	for _, w := range plan.Windows {
		day := w.Start.In(schedules[0].Location).Weekday()
		require.Contains(t, []time.Weekday{time.Thursday, time.Friday, time.Saturday, time.Sunday}, day, w.Schedule)
	}
	known := map[string]bool{}
	for _, s := range schedules {
		known[s.Name] = true
	}
	assignments, err := safety.ParseAssignments(e.AssignmentsYAML(), func(s string) bool { return known[s] })
	require.NoError(t, err)
	require.Len(t, assignments, 8000)

	seed := e.Seed()
	require.NoError(t, seed.Validate())
	require.Len(t, seed.Devices, 8000)
}
