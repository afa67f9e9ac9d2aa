package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/safety"
	"github.com/autopatch/autopatch/internal/testdb"
)

const (
	checkSchedules   = "testdata/check/schedules.yaml"
	checkAssignments = "testdata/check/assignments.yaml"
)

// The expectations below follow from testdata/check by hand: HR's middles
// share LON's window with the manual_patch BYHAND one every cycle; Shop's
// backend SQL02 (PT+11) ends after its frontends (PT+4) every cycle; Shop's
// frontends overlap only on 14 March, 07:00–08:00 UTC.

func TestPlanCheckTable(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := runPlanForTest(t, "--schedules", checkSchedules, "--check", "--assignments", checkAssignments, "--month", "2026-01")
	require.Equal(t, planCheckExit, code, stderr)
	require.Empty(t, stderr)
	require.Contains(t, stdout, "Service safety: 6 devices in 2 services, cycles 2026-01 to 2026-12\n")
	require.Contains(t, stdout, "25 violation(s), 3 distinct:\n")
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	require.Len(t, lines, 6)
	require.True(t, strings.HasPrefix(lines[3], "- HR / middle: 2 of its 2 devices"), lines[3])
	require.Contains(t, lines[3], "and 11 more time(s) in the cycles checked (2026-01 to 2026-12) — devices: HR01, HR02")
	require.True(t, strings.HasPrefix(lines[4], "- Shop: frontend would patch before backend has finished (cycle 2026-01)"), lines[4])
	require.Contains(t, lines[4], "backend LATE Sat 2026-01-24 02:00–04:00 UTC (1 device) ends")
	require.Contains(t, lines[4], "devices: SQL02, WEB01, WEB02")
	require.NotContains(t, lines[4], "DB-FRI", "the backend that finishes first is not named")
	require.Equal(t, "- Shop / frontend: 2 of its 2 devices would be in a window at once (at most 1 may be), Sat 2026-03-14 07:00–08:00 UTC: "+
		"LON Sat 2026-03-14 06:00–08:00 GMT (1 device); NYC Sat 2026-03-14 03:00–04:00 EDT (1 device) — devices: WEB01, WEB02", lines[5])

	// Shop may have both frontends down at once.
	code, stdout, stderr = runPlanForTest(t, "--schedules", checkSchedules, "--check", "--assignments", checkAssignments,
		"--month", "2026-01", "--services", "testdata/check/services.yaml")
	require.Equal(t, planCheckExit, code, stderr)
	require.Contains(t, stdout, "24 violation(s), 2 distinct:\n")
	require.NotContains(t, stdout, "Shop / frontend")

	code, stdout, stderr = runPlanForTest(t, "--schedules", checkSchedules, "--check", "--assignments", "testdata/check/safe.yaml", "--month", "2026-01")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "Service safety: 2 devices in 1 services, cycles 2026-01 to 2026-12\n\nNo violations.\n", stdout)

	// Three cycles from April: no March overlap.
	code, stdout, _ = runPlanForTest(t, "--schedules", checkSchedules, "--check", "--assignments", checkAssignments, "--month", "2026-04", "--cycles", "3")
	require.Equal(t, planCheckExit, code)
	require.Contains(t, stdout, "cycles 2026-04 to 2026-06")
	require.Contains(t, stdout, "6 violation(s), 2 distinct:\n")
}

func TestPlanCheckJSON(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := runPlanForTest(t, "--schedules", checkSchedules, "--check", "--assignments", checkAssignments,
		"--month", "2026-01", "--format", "json", "--change-start", "2026-03-10 00:00:00", "--change-end", "2026-03-16 00:00:00")
	require.Equal(t, planCheckExit, code, stderr)
	var doc planCheckJSON
	require.NoError(t, json.Unmarshal([]byte(stdout), &doc))
	require.Equal(t, "2026-01", doc.Check.FirstCycle)
	require.Equal(t, "2026-12", doc.Check.LastCycle)
	require.Equal(t, 6, doc.Check.Devices)
	require.Equal(t, 2, doc.Check.Services)
	require.Len(t, doc.Check.Violations, 25)
	var march []safety.ViolationJSON
	for _, v := range doc.Check.Violations {
		if v.Kind == "redundancy" && v.Service == "Shop" {
			march = append(march, v)
		}
	}
	require.Len(t, march, 1)
	v := march[0]
	require.Equal(t, "2026-03", v.Cycle)
	require.Equal(t, "2026-03-14T07:00:00Z", v.From)
	require.Equal(t, "2026-03-14T08:00:00Z", v.To)
	require.Equal(t, []int{2, 1, 2}, []int{v.Down, v.Limit, v.Members})
	require.Equal(t, []string{"WEB01", "WEB02"}, v.Devices)
	require.Equal(t, []safety.ViolationWindowJSON{
		{Schedule: "LON", Tier: "frontend", Devices: 1, Start: "2026-03-14T06:00:00+00:00", End: "2026-03-14T08:00:00+00:00", StartUTC: "2026-03-14T06:00:00Z", EndUTC: "2026-03-14T08:00:00Z"},
		{Schedule: "NYC", Tier: "frontend", Devices: 1, Start: "2026-03-14T03:00:00-04:00", End: "2026-03-14T04:00:00-04:00", StartUTC: "2026-03-14T07:00:00Z", EndUTC: "2026-03-14T08:00:00Z"},
	}, v.Windows)

	// The change 10–16 March places DB-FRI (13th), LON and NYC (14th) and
	// the manual_patch BYHAND (14th, 05:00–09:00); LATE (21st) is not
	// placed. Shop: frontends overlap, and its backend SQL02 is not
	// patched; HR: BYHAND and LON overlap. Holding NYC (the later frontend)
	// and then both frontends (their backend is missing) resolves Shop;
	// LON's hold resolves HR too, BYHAND being fixed.
	require.NotNil(t, doc.Plan)
	kinds := map[string]int{}
	for _, v := range doc.Plan.Violations {
		kinds[v.Service+" "+v.Kind]++
	}
	require.Equal(t, map[string]int{"HR redundancy": 1, "Shop redundancy": 1, "Shop tier_not_placed": 1}, kinds)
	var held []string
	for _, h := range doc.Plan.Held {
		held = append(held, h.Schedule)
		require.NotEmpty(t, h.Reason)
	}
	require.Equal(t, []string{"LON", "NYC"}, held)
	for _, v := range doc.Plan.Violations {
		if v.Kind == "tier_not_placed" {
			require.Empty(t, v.From, "no stretch of time")
			last := v.Windows[len(v.Windows)-1]
			require.Equal(t, "LATE", last.Schedule)
			require.Contains(t, last.NotPlaced, "starts after the change ends")
		}
	}
}

func TestPlanCheckErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"CheckWithoutAssignments", []string{"--schedules", checkSchedules, "--check"}, 2, "--check: --assignments FILE is required"},
		{"AssignmentsWithoutCheck", []string{"--schedules", checkSchedules, "--month", "2026-01", "--assignments", checkAssignments}, 2, "--assignments goes with --check"},
		{"ServicesWithoutCheck", []string{"--schedules", checkSchedules, "--month", "2026-01", "--services", "x.yaml"}, 2, "--services goes with --check"},
		{"CheckWithRange", []string{"--schedules", checkSchedules, "--check", "--assignments", checkAssignments, "--from", "2026-01-01T00:00:00Z", "--to", "2026-02-01T00:00:00Z"}, 2, "give --month (the first) and --cycles, not --from/--to"},
		{"BadCycles", []string{"--schedules", checkSchedules, "--check", "--assignments", checkAssignments, "--cycles", "0"}, 2, "--cycles: want 1 to 120, got 0"},
		{"MissingAssignments", []string{"--schedules", checkSchedules, "--check", "--assignments", "testdata/check/nope.yaml"}, 1, "--assignments: open testdata/check/nope.yaml: no such file or directory"},
		{"InvalidAssignments", []string{"--schedules", checkSchedules, "--check", "--assignments", "testdata/check/invalid.yaml"}, 1,
			"autopatch plan: testdata/check/invalid.yaml: safety: invalid assignments file:\n" +
				`devices[0] "WEB01": tier: want backend, middle or frontend, got "top" (line 2)` + "\n" +
				`devices[1] "WEB02": schedule: no schedule "NOPE" in the schedules file (line 3)` + "\n"},
		{"InvalidServices", []string{"--schedules", checkSchedules, "--check", "--assignments", checkAssignments, "--services", "testdata/check/assignments.yaml"}, 1,
			"autopatch plan: testdata/check/assignments.yaml: safety: invalid services file:\ndevices: unknown key (want services) (line 1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runPlanForTest(t, tc.args...)
			require.Equal(t, tc.code, code, stderr)
			require.Empty(t, stdout)
			require.Contains(t, stderr, tc.stderr)
		})
	}
}

func TestPlanCheckHelp(t *testing.T) {
	t.Parallel()
	for _, f := range []string{"--check", "--assignments", "--services", "--cycles", "3 (--check) violations found"} {
		require.Contains(t, planUsage, f)
	}
}

// TestServeServicesFile: serve loads the services file at start (an
// invalid one stops start-up, naming the setting) and serves the service
// API.
func TestServeServicesFile(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, testdb.URL(t))
	cfg.ServicesFile = "testdata/check/assignments.yaml"
	_, err := initServer(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.ErrorContains(t, err, "AUTOPATCH_SERVICES_FILE: services file testdata/check/assignments.yaml: safety: invalid services file")

	cfg = testConfig(t, testdb.URL(t))
	cfg.ServicesFile = "testdata/check/services.yaml"
	base := startServer(t, cfg)
	code, body := apiGet(t, base+"/api/v1/services/Shop", "test-token")
	require.Equal(t, http.StatusNotFound, code)
	require.Equal(t, "not_found", body["error"])
}
