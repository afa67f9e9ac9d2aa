package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/store"
)

// TestChangeWebhookRolloutFields: change.on_hold and patching.error_budget
// are stored; a change of On hold (and only a change) asks for a
// hold_change job; a malformed budget is refused with its field named and
// nothing recorded or enqueued.
func TestChangeWebhookRolloutFields(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	version := 0
	send := func(onHold bool, budget any) response {
		version++
		return b.post(t, PathChangeWebhook, changeBody(func(body, c, p jsonObject) {
			body["event_id"] = "change_request:" + sysID1 + ":" + string(rune('a'+version))
			c["sys_updated_on"] = "2026-12-01 10:02:0" + string(rune('0'+version))
			c["on_hold"] = onHold
			if budget != nil {
				p["error_budget"] = budget
			}
		}), true, nil)
	}
	r := send(false, 5)
	require.Equal(t, http.StatusAccepted, r.status, "%s", r.body)
	c := b.change(t, "CHG0031234")
	require.False(t, c.OnHold)
	require.Equal(t, "5", c.ErrorBudget)
	require.Zero(t, b.jobs(t, "hold_change"), "not on hold, never was: nothing to do")

	r = send(true, "2.5%")
	require.Equal(t, http.StatusAccepted, r.status, "%s", r.body)
	c = b.change(t, "CHG0031234")
	require.True(t, c.OnHold)
	require.Equal(t, "2.5%", c.ErrorBudget)
	require.Equal(t, 1, b.jobs(t, "hold_change"))

	r = send(true, nil)
	require.Equal(t, http.StatusAccepted, r.status, "%s", r.body)
	require.Equal(t, 1, b.jobs(t, "hold_change"), "still on hold: no new job")
	require.Empty(t, b.change(t, "CHG0031234").ErrorBudget, "omitted: the configured budget")

	r = send(false, nil)
	require.Equal(t, http.StatusAccepted, r.status, "%s", r.body)
	require.Equal(t, 2, b.jobs(t, "hold_change"), "taken off hold: released")

	events, jobs := b.events(t), b.allJobs(t)
	for _, bad := range []any{"12", "110%", -1, "-1", 5.5, "ten", true, "1.234%"} {
		version++
		r := b.post(t, PathChangeWebhook, changeBody(func(body, c, p jsonObject) {
			body["event_id"] = "bad-budget-" + string(rune('a'+version))
			c["sys_updated_on"] = "2026-12-02 10:02:0" + string(rune('0'+version%10))
			p["error_budget"] = bad
		}), false, nil)
		require.Equal(t, http.StatusBadRequest, r.status, "%v: %s", bad, r.body)
		e := r.apiError(t)
		require.Equal(t, validationFailed, e.Code)
		require.Len(t, e.Details, 1, "%v: %s", bad, r.body)
		require.Equal(t, "patching.error_budget", e.Details[0].Field, "%v", bad)
	}
	require.Equal(t, events, b.events(t), "nothing recorded")
	require.Equal(t, jobs, b.allJobs(t), "nothing enqueued")
}

// TestResumeAPI: POST /api/v1/changes/{number}/resume releases the holds
// of a held change with the reason, enqueues the release, and answers as
// openapi.yaml says; 409 for a change that is not held, 404 for an
// unknown one, 400 without a reason, 401 without the token. GET shows the
// hold and its release.
func TestResumeAPI(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	_, err := b.pool.Exec(ctx, `
		INSERT INTO changes (number, sys_id, state, approval, start_at, end_at, update_groups, status, revision)
		VALUES ('CHG0031234', 'c0ffee00c0ffee00c0ffee00c0ffee00', 'scheduled', 'approved', '2026-12-12 00:00Z', '2026-12-14 06:00Z', '{"2026-12 Servers"}', 'planned', 1),
		       ('CHG0031235', 'c0ffee00c0ffee00c0ffee00c0ffee01', 'scheduled', 'approved', '2026-12-12 00:00Z', '2026-12-14 06:00Z', '{"2026-12 Servers"}', 'planned', 1);
		INSERT INTO deployments (change_number, schedule_name, update_group, name, collection, window_start, window_end, close_at, state, held_from)
		VALUES ('CHG0031234', 'DB-SAT-0200', '2026-12 Servers', 'AP-CHG0031234-DB-SAT-0200-2026-12 Servers', 'Patch - DB - Sat 02:00',
		        '2026-12-12 02:00Z', '2026-12-12 06:00Z', '2026-12-12 06:00Z', 'held', 'created');
		INSERT INTO rollout_holds (change_number, kind, reason, held_at)
		VALUES ('CHG0031234', 'budget', 'error budget exceeded: 6 failure(s) in the closed windows, more than the budget of 5 failures', now());
	`)
	require.NoError(t, err)

	call := func(number, token string, body []byte, valid bool) response {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, b.server.URL+"/api/v1/changes/"+number+"/resume", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := b.server.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		respBody, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		checkSpec(t, req, body, valid, resp, respBody)
		return response{status: resp.StatusCode, body: respBody}
	}
	reason := []byte(`{"reason":"KB5099999 pulled from the update group (jane.doe)"}`)

	require.Equal(t, http.StatusUnauthorized, call("CHG0031234", "", reason, false).status)
	r := call("CHG0031234", "test-token", []byte(`{"reason":""}`), false)
	require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
	require.Equal(t, "reason", r.apiError(t).Details[0].Field)
	require.Equal(t, http.StatusNotFound, call("CHG0099999", "test-token", reason, true).status)
	r = call("CHG0031235", "test-token", reason, true)
	require.Equal(t, http.StatusConflict, r.status, "%s", r.body)
	require.Equal(t, "not_held", r.apiError(t).Code)
	require.Zero(t, b.jobs(t, "hold_change"))

	r = call("CHG0031234", "test-token", reason, true)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	var out resumeResponse
	require.NoError(t, json.Unmarshal(r.body, &out))
	require.Len(t, out.Released, 1)
	require.Equal(t, store.HoldBudget, out.Released[0].Kind)
	require.Equal(t, "KB5099999 pulled from the update group (jane.doe)", out.Released[0].ReleaseReason)
	require.Equal(t, 1, b.jobs(t, "hold_change"), "the release is enqueued with the resume")

	r = call("CHG0031234", "test-token", reason, true)
	require.Equal(t, http.StatusConflict, r.status, "resumed already: %s", r.body)

	req, err := http.NewRequest(http.MethodGet, b.server.URL+"/api/v1/changes/CHG0031234", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer test-token")
	resp, err := b.server.Client().Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	checkSpec(t, req, nil, true, resp, body)
	var got changeResponse
	require.NoError(t, json.Unmarshal(body, &got))
	require.False(t, got.Change.Held)
	require.Len(t, got.Holds, 1)
	require.Equal(t, "api", got.Holds[0].ReleasedBy)
	require.Contains(t, got.Holds[0].Reason, "error budget exceeded")
	require.Equal(t, store.DeploymentHeld, got.Deployments[0].State, "the job releases it, not the request")
}
