package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// -update regenerates testdata/plan/*.golden: go test ./cmd/autopatch -run TestPlan -update.
// It is registered in init, which runs after every package-level variable of the
// package: a test file that declares `var update = flag.Bool("update", ...)` gets
// there first and the flag is shared rather than defined twice (a panic).
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files")
	}
}

func updateGolden() bool { return flag.Lookup("update").Value.String() == "true" }

const planSchedules = "testdata/plan/schedules.yaml"

func runPlanForTest(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runPlan(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestPlanGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"month_table", []string{"--month", "2026-12"}},
		{"month_json", []string{"--month", "2026-12", "--format", "json"}},
		// Spans the spring-forward of New York (03-08), London (03-29) and the
		// fall-back of Sydney and Lord Howe (04-05).
		{"range_table", []string{"--from", "2026-03-01T00:00:00Z", "--to", "2026-04-15T00:00:00Z"}},
		{"range_json", []string{"--from", "2026-03-01T00:00:00Z", "--to", "2026-04-15T00:00:00Z", "--format=json"}},
		{"range_empty_table", []string{"--from", "2026-12-09T00:00:00Z", "--to", "2026-12-10T00:00:00Z"}},
		{"range_empty_json", []string{"--from", "2026-12-09T00:00:00Z", "--to", "2026-12-10T00:00:00Z", "--format", "json"}},
		// ServiceNow's format for the change window.
		{"change_table", []string{"--change-start", "2026-12-12 00:00:00", "--change-end", "2026-12-21 06:00:00"}},
		{"change_json", []string{"--change-start", "2026-12-12 00:00:00", "--change-end", "2026-12-21 06:00:00", "--format", "json"}},
		{"change_none_json", []string{"--change-start", "2026-12-09T00:00:00Z", "--change-end", "2026-12-10T00:00:00Z", "--format", "json"}},
		{"month_and_change_table", []string{"--month", "2026-10", "--change-start", "2026-10-01T00:00:00+02:00", "--change-end", "2026-10-15T00:00:00Z"}},
		{"month_and_change_json", []string{"--month", "2026-10", "--change-start", "2026-10-01T00:00:00+02:00", "--change-end", "2026-10-15T00:00:00Z", "--format", "json"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runPlanForTest(t, append([]string{"--schedules", planSchedules}, tc.args...)...)
			require.Equal(t, 0, code, stderr)
			require.Empty(t, stderr)
			path := filepath.Join("testdata", "plan", tc.golden+".golden")
			if updateGolden() {
				require.NoError(t, os.WriteFile(path, []byte(stdout), 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, string(want), stdout)
		})
	}
}

// TestPlanJSONContract checks the JSON against the contract independently of the
// golden files: exact keys, [] rather than null, offsets, order.
func TestPlanJSONContract(t *testing.T) {
	t.Parallel()

	decode := func(t *testing.T, stdout string) map[string][]map[string]string {
		t.Helper()
		var doc map[string][]map[string]string
		require.NoError(t, json.Unmarshal([]byte(stdout), &doc))
		return doc
	}
	checkWindows := func(t *testing.T, ws []map[string]string) {
		t.Helper()
		var prev time.Time
		var prevName string
		for _, w := range ws {
			require.Equal(t, []string{"end", "end_utc", "schedule", "start", "start_utc"}, planSortedKeys(w))
			start, err := time.Parse(time.RFC3339, w["start"])
			require.NoError(t, err)
			end, err := time.Parse(time.RFC3339, w["end"])
			require.NoError(t, err)
			require.True(t, strings.HasSuffix(w["start_utc"], "Z"))
			require.False(t, strings.HasSuffix(w["start"], "Z"), "local times carry their offset: %s", w["start"])
			require.Equal(t, start.UTC().Format(time.RFC3339), w["start_utc"])
			require.Equal(t, end.UTC().Format(time.RFC3339), w["end_utc"])
			require.True(t, end.After(start))
			require.True(t, prev.Before(start) || (prev.Equal(start) && prevName < w["schedule"]), "sorted by start, then schedule")
			prev, prevName = start, w["schedule"]
		}
	}

	t.Run("Windows", func(t *testing.T) {
		t.Parallel()
		code, stdout, stderr := runPlanForTest(t, "--schedules", planSchedules, "--from", "2026-01-01T00:00:00Z", "--to", "2027-01-01T00:00:00Z", "--format", "json")
		require.Equal(t, 0, code, stderr)
		doc := decode(t, stdout)
		require.Equal(t, []string{"windows"}, planSortedKeys(doc))
		require.Greater(t, len(doc["windows"]), 70)
		checkWindows(t, doc["windows"])
	})

	t.Run("Plan", func(t *testing.T) {
		t.Parallel()
		start, end := time.Date(2026, 12, 12, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 21, 6, 0, 0, 0, time.UTC)
		code, stdout, stderr := runPlanForTest(t, "--schedules", planSchedules, "--change-start", start.Format(time.RFC3339), "--change-end", end.Format(time.RFC3339), "--format", "json")
		require.Equal(t, 0, code, stderr)
		doc := decode(t, stdout)
		require.Equal(t, []string{"plan", "unplaceable"}, planSortedKeys(doc))
		checkWindows(t, doc["plan"])
		for _, w := range doc["plan"] {
			s, _ := time.Parse(time.RFC3339, w["start"])
			e, _ := time.Parse(time.RFC3339, w["end"])
			require.False(t, s.Before(start), "inside the change")
			require.False(t, e.After(end), "inside the change")
		}
		for _, u := range doc["unplaceable"] {
			require.Equal(t, []string{"reason", "schedule"}, planSortedKeys(u))
		}
		require.Equal(t, 8, len(doc["plan"])+len(doc["unplaceable"]), "every schedule once")
	})

	t.Run("EmptyArraysNotNull", func(t *testing.T) {
		t.Parallel()
		_, stdout, _ := runPlanForTest(t, "--schedules", planSchedules, "--change-start", "2030-01-01T00:00:00Z", "--change-end", "2030-01-01T00:30:00Z", "--format", "json")
		require.Contains(t, stdout, `"plan": []`)
		_, stdout, _ = runPlanForTest(t, "--schedules", planSchedules, "--month", "2026-02", "--format", "json")
		require.NotContains(t, stdout, "null")
	})
}

func planSortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestPlanErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"NoFlags", nil, 2, "autopatch plan: --schedules: required\nRun 'autopatch plan --help' for usage.\n"},
		{"NoRange", []string{"--schedules", planSchedules}, 2, "want --month, --from/--to or --change-start/--change-end"},
		{"BadMonth", []string{"--schedules", planSchedules, "--month", "2026-13"}, 2, `--month: want YYYY-MM, got "2026-13"`},
		{"BadMonthFormat", []string{"--schedules", planSchedules, "--month", "12/2026"}, 2, `--month: want YYYY-MM, got "12/2026"`},
		{"FromWithoutTo", []string{"--schedules", planSchedules, "--from", "2026-12-01T00:00:00Z"}, 2, "--from and --to go together"},
		{"BadFrom", []string{"--schedules", planSchedules, "--from", "2026-12-01", "--to", "2026-12-02T00:00:00Z"}, 2, `--from: want RFC 3339 such as 2026-12-01T00:00:00Z, got "2026-12-01"`},
		{"BadTo", []string{"--schedules", planSchedules, "--from", "2026-12-01T00:00:00Z", "--to", "2026-12-02 00:00:00"}, 2, `--to: want RFC 3339`},
		{"ToBeforeFrom", []string{"--schedules", planSchedules, "--from", "2026-12-02T00:00:00Z", "--to", "2026-12-01T00:00:00Z"}, 2, "--to: 2026-12-01T00:00:00Z is not after --from 2026-12-02T00:00:00Z"},
		{"MonthAndFrom", []string{"--schedules", planSchedules, "--month", "2026-12", "--from", "2026-12-01T00:00:00Z", "--to", "2026-12-02T00:00:00Z"}, 2, "--month and --from/--to exclude each other"},
		{"ChangeStartOnly", []string{"--schedules", planSchedules, "--change-start", "2026-12-01 00:00:00"}, 2, "--change-start and --change-end go together"},
		{"BadChangeStart", []string{"--schedules", planSchedules, "--change-start", "12/01/2026", "--change-end", "2026-12-02 00:00:00"}, 2, `--change-start: want RFC 3339 (2026-12-12T00:00:00Z) or YYYY-MM-DD HH:MM:SS in UTC, got "12/01/2026"`},
		{"ChangeBackwards", []string{"--schedules", planSchedules, "--change-start", "2026-12-02 00:00:00", "--change-end", "2026-12-01 00:00:00"}, 2, "--change-end: 2026-12-01 00:00:00 is not after --change-start 2026-12-02 00:00:00"},
		{"BadFormat", []string{"--schedules", planSchedules, "--month", "2026-12", "--format", "yaml"}, 2, `--format: want table or json, got "yaml"`},
		{"UnknownFlag", []string{"--schedules", planSchedules, "--month", "2026-12", "--zone", "UTC"}, 2, "flag provided but not defined: -zone"},
		{"Positional", []string{"--schedules", planSchedules, "--month", "2026-12", "extra"}, 2, `unexpected argument "extra"`},
		{"MissingFile", []string{"--schedules", "testdata/plan/nope.yaml", "--month", "2026-12"}, 1, "autopatch plan: --schedules: open testdata/plan/nope.yaml: no such file or directory\n"},
		{"InvalidFile", []string{"--schedules", "testdata/plan/invalid.yaml", "--month", "2026-12"}, 1,
			"autopatch plan: testdata/plan/invalid.yaml: calendar: invalid schedules file:\n" +
				`schedules[0] "DB-SAT-0200": timezone: unknown time zone "Europe/Lundon" (line 4)` + "\n" +
				`schedules[0] "DB-SAT-0200": duration: 10m outside 15m..24h (line 7)` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runPlanForTest(t, tc.args...)
			require.Equal(t, tc.code, code, stderr)
			require.Empty(t, stdout)
			require.Contains(t, stderr, tc.stderr)
			require.True(t, strings.HasPrefix(stderr, "autopatch plan: "), stderr)
		})
	}
}

func TestPlanHelp(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"--help", "-h", "-help"} {
		code, stdout, stderr := runPlanForTest(t, arg)
		require.Equal(t, 0, code)
		require.Empty(t, stderr)
		require.Equal(t, planUsage, stdout)
	}
	// Every flag the command parses is documented.
	for _, f := range []string{"--schedules", "--month", "--from", "--to", "--change-start", "--change-end", "--format"} {
		require.Contains(t, planUsage, f)
	}
}
