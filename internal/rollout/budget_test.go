package rollout

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseBudget(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in    string
		want  string // String() of the result; empty: refused
		share bool
	}{
		{"5", "5", false},
		{"0", "0", false},
		{"10%", "10%", true},
		{"0%", "0%", true},
		{"100%", "100%", true},
		{"2.5%", "2.5%", true},
		{"0.25%", "0.25%", true},
		{"007", "7", false},
		{"-1", "", false},
		{"+1", "", false},
		{"110%", "", false},
		{"100.01%", "", false},
		{"1.234%", "", false},
		{"12.%", "", false},
		{".5%", "", false},
		{"%", "", false},
		{"", "", false},
		{" 5", "", false},
		{"5 ", "", false},
		{"1e3", "", false},
		{"5.0", "", false},
		{"ten", "", false},
		{"99999999999", "", false},
		{"\"12\"", "", false},
	} {
		b, err := ParseBudget(tt.in)
		if tt.want == "" {
			require.Error(t, err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, b.String(), tt.in)
		require.Equal(t, tt.share, b.IsShare(), tt.in)
	}
}

func TestExceeded(t *testing.T) {
	t.Parallel()
	must := func(s string) Budget {
		b, err := ParseBudget(s)
		require.NoError(t, err)
		return b
	}
	for _, tt := range []struct {
		budget            string
		failures, devices int
		want              bool
	}{
		{"5", 5, 100, false}, // N failures: not yet
		{"5", 6, 100, true},  // N+1: held
		{"5", 6, 6, true},
		{"0", 0, 10, false},
		{"0", 1, 10, true},
		{"10%", 3, 30, false}, // exactly 10%
		{"10%", 4, 30, true},
		{"10%", 2, 25, false}, // 2.5 allowed
		{"10%", 3, 25, true},
		{"10%", 1, 0, true}, // no devices known, yet a failure: over any share
		{"100%", 10, 10, false},
		{"0%", 1, 1000, true},
		{"0%", 0, 1000, false},
		{"2.5%", 5, 200, false},
		{"2.5%", 6, 200, true},
	} {
		require.Equal(t, tt.want, must(tt.budget).Exceeded(tt.failures, tt.devices), "%s: %d of %d", tt.budget, tt.failures, tt.devices)
	}
	require.Equal(t, DefaultBudget, must("10%"))
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	b, _ := ParseBudget("10%")
	require.Equal(t, "10% of 25 devices = 2.5 failures", b.Describe(25))
	require.Equal(t, "10% of 30 devices = 3 failures", b.Describe(30))
	c, _ := Count(5)
	require.Equal(t, "5 failures", c.Describe(30))
	_, err := Count(-1)
	require.Error(t, err)
}

func TestCounts(t *testing.T) {
	t.Parallel()
	for outcome, want := range map[string]bool{
		OutcomeFailed: true, OutcomeNotReported: true, OutcomePendingReboot: true,
		OutcomeClientInactive: false, "patched_in_window": false, "patched_outside_window": false, "pending": false,
	} {
		require.Equal(t, want, Counts(outcome), outcome)
	}
}

func TestFromJSON(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`5`: "5", `0`: "0", `"10%"`: "10%", `"2.5%"`: "2.5%",
		`"12"`: "", `"110%"`: "", `-1`: "", `"-1"`: "", `5.5`: "", `1e2`: "", `true`: "", `null`: "", `"abc"`: "", `[]`: "",
	} {
		b, err := FromJSON([]byte(in))
		if want == "" {
			require.Error(t, err, in)
			continue
		}
		require.NoError(t, err, in)
		require.Equal(t, want, b.String(), in)
	}
}
