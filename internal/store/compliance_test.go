package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestClosedWindowFailures counts the failed devices of a change's closed
// and final-read windows only: what an error budget is checked against.
func TestClosedWindowFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFailureFixture(t)
	code := int64(0x80240022)
	results := func(depID int64) []DeviceResult {
		return []DeviceResult{
			{DeploymentID: depID, Device: "SQL01", StatusType: 1, ObservedAt: f.start},
			{DeploymentID: depID, Device: "SQL02", StatusType: 5, ErrorCode: &code, ObservedAt: f.start},
			{DeploymentID: depID, Device: "SQL03", StatusType: 4, ObservedAt: f.start},
		}
	}
	for _, d := range f.deps {
		_, err := RecordResults(ctx, f.pool, results(d.ID))
		require.NoError(t, err)
	}
	for _, s := range []struct{ device, kind string }{{"SQL02", FailureError}, {"SQL03", FailureNoStatus}} {
		_, _, err := InsertFailure(ctx, f.pool, Failure{ChangeNumber: f.change, Subject: s.device, Kind: s.kind,
			DeploymentID: &f.deps[0].ID, CorrelationID: f.change + ":" + s.device, FirstSeenAt: f.start})
		require.NoError(t, err)
	}

	failed, devices, err := ClosedWindowFailures(ctx, f.pool, f.change)
	require.NoError(t, err)
	require.Zero(t, failed, "no window closed yet")
	require.Zero(t, devices)

	f.close(t, 0)
	f.close(t, 1)
	failed, devices, err = ClosedWindowFailures(ctx, f.pool, f.change)
	require.NoError(t, err)
	require.Zero(t, failed+devices, "closed but not read for the last time")

	require.NoError(t, MarkFinalPolled(ctx, f.pool, []int64{f.deps[0].ID, f.deps[1].ID}, f.start.Add(4*time.Hour)))
	failed, devices, err = ClosedWindowFailures(ctx, f.pool, f.change)
	require.NoError(t, err)
	require.Equal(t, 2, failed, "SQL02 and SQL03, each once across the two update groups")
	require.Equal(t, 3, devices)
}

// TestRecordOutcomes reports a device once per change of outcome.
func TestRecordOutcomes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFailureFixture(t)
	at := f.start
	changed, err := RecordOutcomes(ctx, f.pool, f.change, "2026-12", []Outcome{{Device: "SQL01", Outcome: "pending"}, {Device: "SQL02", Outcome: "pending"}}, at)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"SQL01": "pending", "SQL02": "pending"}, changed)
	changed, err = RecordOutcomes(ctx, f.pool, f.change, "2026-12", []Outcome{{Device: "SQL01", Outcome: "patched_outside_window", ByDeadline: true}, {Device: "SQL02", Outcome: "pending"}}, at)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"SQL01": "patched_outside_window"}, changed)
	changed, err = RecordOutcomes(ctx, f.pool, f.change, "2026-12", []Outcome{{Device: "SQL01", Outcome: "patched_outside_window", ByDeadline: true}}, at)
	require.NoError(t, err)
	require.Empty(t, changed, "the same outcome again is no change")

	counts, err := OutcomeCounts(ctx, f.pool)
	require.NoError(t, err)
	require.ElementsMatch(t, []CycleCount{
		{Cycle: "2026-12", Outcome: "patched_outside_window", Devices: 1, ByDeadline: 1},
		{Cycle: "2026-12", Outcome: "pending", Devices: 1},
	}, counts)

	// Past their deadline: the not-patched, not-deferred ones count.
	past := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err = RecordOutcomes(ctx, f.pool, f.change, "2026-12", []Outcome{
		{Device: "SQL01", Outcome: "patched_outside_window", ByDeadline: true, Deadline: past},
		{Device: "SQL02", Outcome: "failed", Deadline: past},
		{Device: "SQL03", Outcome: "deferred", Deadline: past},
		{Device: "SQL04", Outcome: "not_reported", Deadline: time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC)},
	}, at)
	require.NoError(t, err)
	counts, err = OutcomeCounts(ctx, f.pool)
	require.NoError(t, err)
	pastDeadline := 0
	for _, c := range counts {
		pastDeadline += c.PastDeadline
	}
	require.Equal(t, 1, pastDeadline, "SQL02 only")

	first, err := MarkNoted(ctx, f.pool, f.change, "closed")
	require.NoError(t, err)
	require.True(t, first)
	first, err = MarkNoted(ctx, f.pool, f.change, "closed")
	require.NoError(t, err)
	require.False(t, first, "each note once")
}
