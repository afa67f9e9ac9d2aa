package jobs

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/replica"
)

// orphan leaves jobs as a SIGKILLed process does: running, last attempted
// by a client that no longer exists.
func (h *harness) orphan(kinds ...string) int64 {
	h.t.Helper()
	tag, err := h.pool.Exec(context.Background(), `UPDATE river_job
		SET state = 'running', attempted_at = now(), attempted_by = ARRAY['killed-replica']
		WHERE kind = ANY($1) AND state NOT IN ('completed', 'discarded', 'cancelled')`, kinds)
	require.NoError(h.t, err)
	return tag.RowsAffected()
}

// TestWindowStartingAfterReturn: the process that created the deployments
// stopped abruptly; the window starts seconds after another one came up, and
// that one opens and closes it on time: nothing about a window lives in the
// process that planned it (issue #13).
func TestWindowStartingAfterReturn(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	stopA := h.startClient()
	now := time.Now().Truncate(time.Second)
	w := window{now.Add(14 * time.Second), now.Add(22 * time.Second)}
	h.load(schedule("AUTO", "automatic", w))
	number, _ := h.approve(now, now.Add(time.Hour))
	h.waitFor("deployments created", func() bool { return h.states(number)["created"] == 2 })
	stopA(true)

	h.startClient()
	h.waitFor("deployments closed", func() bool { return h.states(number)["closed"] == 2 })
	for _, d := range h.deployments(number) {
		h.requireOnTime(t, d, w)
	}
}

// TestChangeApprovedJustBeforeACrash: the process running plan_change was
// killed; a survivor takes the job over within seconds, not River's ten
// minutes, and the change's first window, seconds later, opens on time.
func TestChangeApprovedJustBeforeACrash(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	now := time.Now().Truncate(time.Second)
	w := window{now.Add(20 * time.Second), now.Add(28 * time.Second)}
	h.load(schedule("AUTO", "automatic", w))

	// The killed replica: registered, then its lock's connection gone.
	dead, err := replica.Register(ctx, h.pool, "killed-replica", h.deps.Logger, replica.Options{})
	require.NoError(t, err)
	_ = dead
	number, _ := h.approve(now, now.Add(time.Hour))
	require.EqualValues(t, 1, h.orphan("plan_change"))
	_, err = h.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')`)
	require.NoError(t, err)

	survivor, err := replica.Register(ctx, h.pool, "survivor", h.deps.Logger, replica.Options{})
	require.NoError(t, err)
	rctx, stopReplica := context.WithCancel(ctx)
	t.Cleanup(stopReplica)
	go survivor.Run(rctx)
	h.startClient()

	h.waitFor("deployments created", func() bool { return h.states(number)["created"]+h.states(number)["open"] == 2 })
	h.waitFor("deployments closed", func() bool { return h.states(number)["closed"] == 2 })
	for _, d := range h.deployments(number) {
		h.requireOnTime(t, d, w)
	}
}

// TestReplicaKilledInsideAWindow: two replicas; one is stopped abruptly
// inside the first window; the other, up throughout, closes that window on
// time and opens the next one.
func TestReplicaKilledInsideAWindow(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	stopA := h.startClient()
	h.startClient()
	now := time.Now().Truncate(time.Second)
	w1 := window{now.Add(10 * time.Second), now.Add(16 * time.Second)}
	w2 := window{now.Add(20 * time.Second), now.Add(26 * time.Second)}
	h.load(schedule("FIRST", "automatic", w1), schedule("SECOND", "automatic", w2))
	number, _ := h.approve(now, now.Add(time.Hour))
	h.waitFor("first window open", func() bool { return h.states(number)["open"] == 2 })
	stopA(true)

	h.waitFor("every deployment closed", func() bool { return h.states(number)["closed"] == 4 })
	for _, d := range h.deployments(number) {
		if d.Collection == "Patch - FIRST" {
			h.requireOnTime(t, d, w1)
		} else {
			h.requireOnTime(t, d, w2)
		}
	}
}
