package sccmsim_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/sccm/sccmsim"
)

func TestParseOutcome(t *testing.T) {
	t.Parallel()

	tests := []struct {
		in     string
		want   sccmsim.Outcome
		format string
	}{
		{"", sccmsim.Outcome{Kind: sccmsim.OutcomeSuccess}, "success"},
		{"success", sccmsim.Outcome{Kind: sccmsim.OutcomeSuccess}, "success"},
		{"silent", sccmsim.Outcome{Kind: sccmsim.OutcomeSilent}, "silent"},
		{"in progress", sccmsim.Outcome{Kind: sccmsim.OutcomeInProgress}, "in progress"},
		{"success after close", sccmsim.Outcome{Kind: sccmsim.OutcomeLateSuccess, After: 1}, "success after close"},
		{"success after close 2", sccmsim.Outcome{Kind: sccmsim.OutcomeLateSuccess, After: 2}, "success after close 2"},
		{"Pending Restart", sccmsim.Outcome{Kind: sccmsim.OutcomePendingRestart}, "pending restart"},
		{"inactive", sccmsim.Outcome{Kind: sccmsim.OutcomeInactive}, "inactive"},
		{"no client", sccmsim.Outcome{Kind: sccmsim.OutcomeNoClient}, "no client"},
		{"noncompliant", sccmsim.Outcome{Kind: sccmsim.OutcomeNoncompliant}, "noncompliant"},
		{"compliant", sccmsim.Outcome{Kind: sccmsim.OutcomeSuccess}, "success"},
		{"error 0x80240022", sccmsim.Outcome{Kind: sccmsim.OutcomeError, Code: 0x80240022}, "error 0x80240022"},
		{"Error 0x8024402c", sccmsim.Outcome{Kind: sccmsim.OutcomeError, Code: 0x8024402C}, "error 0x8024402C"},
		{"error 0x8024402C then success", sccmsim.Outcome{Kind: sccmsim.OutcomeErrorThenSuccess, Code: 0x8024402C},
			"error 0x8024402C then success"},
		{"  error   0x1   then  success ", sccmsim.Outcome{Kind: sccmsim.OutcomeErrorThenSuccess, Code: 1},
			"error 0x00000001 then success"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := sccmsim.ParseOutcome(tt.in)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.format, got.String())
			again, err := sccmsim.ParseOutcome(got.String())
			require.NoError(t, err)
			require.Equal(t, got, again, "String parses back")
		})
	}

	for _, bad := range []string{"fail", "error", "error 80240022", "error 0xZZ", "error 0x0",
		"error 0x100000000", "error 0x1 then", "error 0x1 then failure", "silent please"} {
		_, err := sccmsim.ParseOutcome(bad)
		require.Errorf(t, err, "%q", bad)
	}
}
