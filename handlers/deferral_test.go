package handlers

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/compliance"
	"github.com/autopatch/autopatch/internal/ledger"
)

const ritmSysID = "fedcba9876543210fedcba9876543210"

// deferralBody is a valid deferral of SQL01 in CHG0031234 (critical:
// deadline 2026-12-22 00:00 UTC), changed by mod.
func deferralBody(mod func(body jsonObject)) []byte {
	body := jsonObject{
		"event_id":     "sc_req_item:" + ritmSysID + ":deferral:1",
		"request_item": jsonObject{"number": "RITM0010002", "sys_id": ritmSysID},
		"change":       "CHG0031234",
		"devices":      []any{"SQL01"},
		"until":        "2026-12-28 10:00:00",
		"reason":       "Quarter-end close",
		"approved_by":  "security.approver",
	}
	if mod != nil {
		mod(body)
	}
	b, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	return b
}

// setupDeferral is a planned critical change with SQL01 and SQL02 in its
// DB-SAT-0200 window.
func setupDeferral(t *testing.T) *testBundle {
	t.Helper()
	b := setup(t, nil)
	_, err := b.pool.Exec(context.Background(), `
		INSERT INTO changes (number, sys_id, state, approval, start_at, end_at, update_groups, status, revision, classification)
		VALUES ('CHG0031234', '`+sysID1+`', 'scheduled', 'approved',
		        '2026-12-12 20:00Z', '2026-12-14 06:00Z', '{"2026-12 Servers"}', 'planned', 1, 'critical');
		INSERT INTO plans (change_number, version, change_start, change_end) VALUES ('CHG0031234', 1, '2026-12-12 20:00Z', '2026-12-14 06:00Z');
		INSERT INTO plan_entries (plan_id, schedule_name, window_start, window_end)
		SELECT id, 'DB-SAT-0200', '2026-12-13 02:00Z', '2026-12-13 06:00Z' FROM plans;
		INSERT INTO devices (name, schedule_name, service, tier) VALUES
			('SQL01', 'DB-SAT-0200', 'Payroll', 'backend'), ('SQL02', 'DB-SAT-0200', 'Payroll', 'backend')`)
	require.NoError(t, err)
	return b
}

// TestDeferralWebhook: an approved deferral is recorded with a note on the
// change and on the request item, shows in the ledger, and is refused,
// naming the field, beyond 7 days, for an unknown change or a device not in
// it; one for a forced device is recorded and answered 409.
func TestDeferralWebhook(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("Accepted", func(t *testing.T) {
		t.Parallel()
		b := setupDeferral(t)
		resp := b.post(t, PathDeferralWebhook, deferralBody(nil), true, nil)
		require.Equal(t, http.StatusAccepted, resp.status, "%s", resp.body)
		require.Equal(t, "accepted", resp.webhook(t).Status)
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM deferrals WHERE change_number = 'CHG0031234' AND device_name = 'SQL01'
			AND until = '2026-12-28 10:00Z' AND approved_by = 'security.approver' AND ritm_number = 'RITM0010002' AND forced_at IS NULL`))
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'work_note' AND args->>'table' = 'sc_req_item' AND args->>'sys_id' = $1`, ritmSysID))
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'work_note' AND args->>'table' = 'change_request' AND args->>'sys_id' = $1
			AND args->>'text' LIKE '%Deferred until 2026-12-28 10:00 UTC (1 device(s)): SQL01%'`, sysID1))
		require.Equal(t, 1.0, b.metric(t, "deferral", "accepted"))
		require.Equal(t, 1, b.jobs(t, "refresh_ledger"), "the stored outcomes follow the deferral")

		l, err := ledger.ForChange(ctx, b.pool, "CHG0031234", time.Date(2026, 12, 23, 0, 0, 0, 0, time.UTC), ledger.Options{})
		require.NoError(t, err)
		require.Len(t, l.Devices, 2)
		require.Equal(t, compliance.Deferred, l.Devices[0].Outcome)
		require.Equal(t, time.Date(2026, 12, 28, 10, 0, 0, 0, time.UTC), *l.Devices[0].DeferredUntil)
		require.Nil(t, l.Devices[1].DeferredUntil)
		require.Equal(t, time.Date(2026, 12, 22, 0, 0, 0, 0, time.UTC), l.Devices[1].Deadline, "critical: Patch Tuesday + 14 days")

		// The same delivery again: nothing more.
		resp = b.post(t, PathDeferralWebhook, deferralBody(nil), true, nil)
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		require.Equal(t, "duplicate", resp.webhook(t).Status)
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM deferrals`))
		require.Equal(t, 2, b.jobs(t, "work_note"))
	})

	t.Run("Refused", func(t *testing.T) {
		t.Parallel()
		b := setupDeferral(t)
		for _, tt := range []struct {
			name  string
			body  []byte
			field string
			inMsg string
		}{
			{"EightDays", deferralBody(func(o jsonObject) { o["until"] = "2026-12-30 00:00:00" }), "until", "at most 7 days after the devices' deadline 2026-12-22 00:00:00"},
			{"BeforeDeadline", deferralBody(func(o jsonObject) { o["until"] = "2026-12-21 00:00:00" }), "until", "after the devices' deadline"},
			{"UnknownChange", deferralBody(func(o jsonObject) { o["change"] = "CHG0099999" }), "change", "CHG0099999"},
			{"DeviceNotInChange", deferralBody(func(o jsonObject) { o["devices"] = []any{"SQL01", "WEB07"} }), "devices[1]", "WEB07 is not in its plan"},
			{"DeviceTwice", deferralBody(func(o jsonObject) { o["devices"] = []any{"SQL01", "sql01"} }), "devices[1]", "repeats"},
			{"NoReason", deferralBody(func(o jsonObject) { delete(o, "reason") }), "reason", "is required"},
			{"NoApprover", deferralBody(func(o jsonObject) { o["approved_by"] = "" }), "approved_by", "is required"},
			{"BadUntil", deferralBody(func(o jsonObject) { o["until"] = "soon" }), "until", "date and time"},
		} {
			resp := b.post(t, PathDeferralWebhook, tt.body, false, nil)
			require.Equal(t, http.StatusBadRequest, resp.status, "%s: %s", tt.name, resp.body)
			var e APIError
			require.NoError(t, json.Unmarshal(resp.body, &e))
			require.Equal(t, "validation_failed", e.Code, tt.name)
			require.Equal(t, tt.field, e.Details[0].Field, "%s: %s", tt.name, resp.body)
			require.Contains(t, e.Details[0].Message, tt.inMsg, tt.name)
		}
		require.Equal(t, 0, b.events(t), "nothing recorded")
		require.Equal(t, 0, b.allJobs(t), "nothing enqueued")
	})

	t.Run("AfterForced", func(t *testing.T) {
		t.Parallel()
		b := setupDeferral(t)
		// Forcing put SQL01 into a wave at its deadline (jobs/force_change.go).
		_, err := b.pool.Exec(ctx, `WITH w AS (
				INSERT INTO forced_waves (change_number, run_at, wave, not_before, duration, collection, deployments, update_groups, created_at)
				VALUES ('CHG0031234', '2026-12-22 10:00Z', 0, '2026-12-22 10:00Z', '2 hours', 'autopatch - Forced',
					ARRAY['AP-CHG0031234-(forced)-2026-12 Servers'], ARRAY['2026-12 Servers'], '2026-12-22 10:00Z') RETURNING id)
			INSERT INTO forced_devices (change_number, device_name, wave_id, schedule_name, deadline, planned_at)
			SELECT 'CHG0031234', 'SQL01', id, 'DB-SAT-0200', '2026-12-22 00:00Z', '2026-12-22 10:00Z' FROM w`)
		require.NoError(t, err)
		resp := b.post(t, PathDeferralWebhook, deferralBody(func(o jsonObject) { o["devices"] = []any{"SQL02", "SQL01"} }), true, nil)
		require.Equal(t, http.StatusConflict, resp.status, "%s", resp.body)
		var e APIError
		require.NoError(t, json.Unmarshal(resp.body, &e))
		require.Equal(t, "already_forced", e.Code)
		require.Equal(t, []FieldError{{Field: "devices[1]", Message: "was forced at 2026-12-22T10:00:00Z"}}, e.Details)
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM deferrals WHERE device_name = 'SQL01' AND forced_at = '2026-12-22 10:00Z'`), "recorded")
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM deferrals WHERE device_name = 'SQL02' AND forced_at IS NULL`))
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'work_note' AND args->>'table' = 'sc_req_item'
			AND args->>'text' LIKE '%already forced (1 device(s)): SQL01 (forced 2026-12-22 10:00 UTC)%'`))

		l, err := ledger.ForChange(ctx, b.pool, "CHG0031234", time.Date(2026, 12, 23, 0, 0, 0, 0, time.UTC), ledger.Options{})
		require.NoError(t, err)
		require.Nil(t, l.Devices[0].DeferredUntil, "a deferral after forcing moves nothing")
		require.NotNil(t, l.Devices[1].DeferredUntil)
	})
}
