package handlers

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/store"
	"github.com/autopatch/autopatch/jobs"
)

// TestChangeAccepted: one 202, one recorded event, one plan_change job, in
// the shape the document promises.
func TestChangeAccepted(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	resp := b.post(t, PathChangeWebhook, changeBody(nil), true, nil)
	require.Equal(t, http.StatusAccepted, resp.status, "%s", resp.body)
	w := resp.webhook(t)
	require.Equal(t, "accepted", w.Status)
	require.NotEqual(t, uuid.Nil, w.ID)

	var (
		kind, eventID, number, sysID, outcome string
		updated                               time.Time
		payload                               map[string]any
	)
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT kind, event_id, record_number, record_sys_id, sys_updated_on, payload, outcome
		FROM webhook_events WHERE id = $1`, w.ID).Scan(&kind, &eventID, &number, &sysID, &updated, &payload, &outcome))
	require.Equal(t, []string{"change", "change_request:" + sysID1 + ":7", "CHG0031234", sysID1, "accepted"},
		[]string{kind, eventID, number, sysID, outcome})
	require.True(t, updated.Equal(time.Date(2026, 12, 1, 10, 2, 3, 0, time.UTC)), "%v", updated)
	var sent map[string]any
	require.NoError(t, json.Unmarshal(changeBody(nil), &sent))
	require.Equal(t, sent, payload)
	require.Equal(t, 1, b.events(t))

	rivertest.RequireManyInserted(ctx, t, riverpgxv5.New(b.pool), []rivertest.ExpectedJob{
		{Args: &jobs.PlanChangeArgs{ChangeNumber: "CHG0031234", Revision: 1}, Opts: &rivertest.RequireInsertedOpts{Queue: jobs.QueueDefault}},
	})
	c := b.change(t, "CHG0031234")
	require.Equal(t, store.ChangePlanned, c.Status)
	require.Equal(t, []string{"2026-12 Servers"}, c.UpdateGroups)
	require.Nil(t, c.Schedules)
	require.True(t, c.Start.Equal(time.Date(2026, 12, 12, 20, 0, 0, 0, time.UTC)))
	require.True(t, c.End.Equal(time.Date(2026, 12, 14, 6, 0, 0, 0, time.UTC)))
	require.Equal(t, 1.0, b.metric(t, store.EventChange, "accepted"))
}

// TestChangeClassification: the classification and deadline are stored
// (normal when omitted), and a new version that changes either is planned
// again.
func TestChangeClassification(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	resp := b.post(t, PathChangeWebhook, changeBody(nil), true, nil)
	require.Equal(t, http.StatusAccepted, resp.status, "%s", resp.body)
	c := b.change(t, "CHG0031234")
	require.Equal(t, "normal", c.Classification)
	require.Nil(t, c.Deadline)

	resp = b.post(t, PathChangeWebhook, changeBody(func(body, change, p jsonObject) {
		body["event_id"] = "change_request:" + sysID1 + ":8"
		change["sys_updated_on"] = "2026-12-01 10:05:00"
		p["classification"] = "emergency"
		p["deadline"] = "2026-12-13 08:00:00"
	}), true, nil)
	require.Equal(t, http.StatusAccepted, resp.status, "%s", resp.body)
	c = b.change(t, "CHG0031234")
	require.Equal(t, "emergency", c.Classification)
	require.NotNil(t, c.Deadline)
	require.True(t, c.Deadline.Equal(time.Date(2026, 12, 13, 8, 0, 0, 0, time.UTC)), "%v", c.Deadline)
	require.EqualValues(t, 2, c.Revision, "a new classification and deadline is a new plan")
	rivertest.RequireManyInserted(ctx, t, riverpgxv5.New(b.pool), []rivertest.ExpectedJob{
		{Args: &jobs.PlanChangeArgs{ChangeNumber: "CHG0031234", Revision: 1}},
		{Args: &jobs.PlanChangeArgs{ChangeNumber: "CHG0031234", Revision: 2}},
	})
}

// TestChangeDuplicates: the same event id, or the same record version
// under another event id, is answered with the first id and does nothing.
func TestChangeDuplicates(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	first := b.post(t, PathChangeWebhook, changeBody(nil), true, nil).webhook(t)

	tests := []struct {
		name string
		body []byte
	}{
		{"SameBody", changeBody(nil)},
		{"SameEventIDOtherContent", changeBody(func(_, c, _ jsonObject) {
			c["sys_updated_on"] = "2026-12-02 00:00:00"
			c["start_date"] = "2026-12-13 20:00:00"
		})},
		{"SameVersionOtherEventID", changeBody(func(b, _, _ jsonObject) { b["event_id"] = "another" })},
		{"SameVersionNoEventID", changeBody(func(b, _, _ jsonObject) { delete(b, "event_id") })},
		{"SameVersionAsRFC3339", changeBody(func(b, c, _ jsonObject) {
			delete(b, "event_id")
			c["sys_updated_on"] = "2026-12-01T11:02:03+01:00"
		})},
	}
	for _, tt := range tests {
		resp := b.post(t, PathChangeWebhook, tt.body, true, nil)
		require.Equal(t, http.StatusOK, resp.status, tt.name)
		require.Equal(t, WebhookResponse{ID: first.ID, Status: "duplicate"}, resp.webhook(t), tt.name)
	}
	require.Equal(t, 1, b.events(t))
	require.Equal(t, 1, b.allJobs(t))
	require.Equal(t, float64(len(tests)), b.metric(t, store.EventChange, "duplicate"))
}

// TestChangeConcurrentDuplicates: ten identical deliveries at once give one
// 202 and nine 200s with the same id, one event and one job.
func TestChangeConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	const n = 10
	results := make([]response, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			results[i] = b.post(t, PathChangeWebhook, changeBody(nil), true, nil)
		})
	}
	close(start)
	wg.Wait()

	statuses := map[int]int{}
	ids := map[uuid.UUID]bool{}
	for _, r := range results {
		statuses[r.status]++
		ids[r.webhook(t).ID] = true
	}
	require.Equal(t, map[int]int{http.StatusAccepted: 1, http.StatusOK: n - 1}, statuses)
	require.Len(t, ids, 1, "every answer names the first delivery")
	require.Equal(t, 1, b.events(t))
	require.Equal(t, 1, b.jobs(t, "plan_change"))
}

// TestChangeStale: a delivery older than an applied one is recorded as
// stale and changes nothing.
func TestChangeStale(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	require.Equal(t, http.StatusAccepted, b.post(t, PathChangeWebhook, changeBody(nil), true, nil).status)
	b.finishJobs(t)

	older := changeBody(func(b, c, _ jsonObject) {
		b["event_id"] = "change_request:" + sysID1 + ":6"
		c["sys_updated_on"] = "2026-12-01 10:02:02"
		c["state"] = "canceled"
	})
	resp := b.post(t, PathChangeWebhook, older, true, nil)
	require.Equal(t, http.StatusOK, resp.status)
	w := resp.webhook(t)
	require.Equal(t, "stale", w.Status)
	require.Equal(t, "stale", outcomeOf(t, b, w.ID))
	require.Equal(t, 2, b.events(t))
	require.Equal(t, 0, b.count(t, "SELECT count(*) FROM river_job WHERE state <> 'completed'"))
	c := b.change(t, "CHG0031234")
	require.Equal(t, "scheduled", c.State)
	require.Equal(t, store.ChangePlanned, c.Status)

	// The same stale delivery again is a duplicate of the stale one.
	again := b.post(t, PathChangeWebhook, older, true, nil)
	require.Equal(t, WebhookResponse{ID: w.ID, Status: "duplicate"}, again.webhook(t))
}

func outcomeOf(t *testing.T, b *testBundle, id uuid.UUID) string {
	t.Helper()
	var outcome string
	require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT outcome FROM webhook_events WHERE id = $1", id).Scan(&outcome))
	return outcome
}

// TestChangeLifecycle walks a change through approval, a re-approval with
// the same inputs, new dates, and cancellation, with the workers "running"
// (jobs completed) between deliveries.
func TestChangeLifecycle(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	version := 0
	send := func(mod func(c, p jsonObject)) response {
		version++
		body := changeBody(func(body, c, p jsonObject) {
			body["event_id"] = "change_request:" + sysID1 + ":" + string(rune('a'+version))
			c["sys_updated_on"] = time.Date(2026, 12, 1, 10, 0, version, 0, time.UTC).Format(time.DateTime)
			mod(c, p)
		})
		resp := b.post(t, PathChangeWebhook, body, true, nil)
		require.Equal(t, http.StatusAccepted, resp.status, "%s", resp.body)
		return resp
	}
	type step struct {
		name   string
		mod    func(c, p jsonObject)
		plan   int // plan_change jobs in all afterwards
		unwind int
		status string
	}
	steps := []step{
		{"Requested", func(c, _ jsonObject) { c["approval"] = "requested"; c["state"] = "authorize" }, 0, 0, store.ChangeReceived},
		{"Approved", func(c, _ jsonObject) {}, 1, 0, store.ChangePlanned},
		{"ReapprovedSameDates", func(c, _ jsonObject) { c["state"] = "implement"; c["short_description"] = "edited" }, 1, 0, store.ChangePlanned},
		{"NewDates", func(c, _ jsonObject) { c["end_date"] = "2026-12-15 06:00:00" }, 2, 0, store.ChangePlanned},
		{"NewUpdateGroup", func(c, p jsonObject) {
			c["end_date"] = "2026-12-15 06:00:00"
			p["software_update_groups"] = []any{"2026-12 Servers", "2026-12 Office"}
		}, 3, 0, store.ChangePlanned},
		{"NamedSchedules", func(c, p jsonObject) {
			c["end_date"] = "2026-12-15 06:00:00"
			p["software_update_groups"] = []any{"2026-12 Office", "2026-12 Servers"}
			p["schedules"] = []any{"WEB-3RD-SUN"}
		}, 4, 0, store.ChangePlanned},
		{"Canceled", func(c, p jsonObject) { c["state"] = "canceled" }, 4, 1, store.ChangeCanceled},
		{"CanceledAgain", func(c, p jsonObject) { c["state"] = "canceled"; c["short_description"] = "x" }, 4, 1, store.ChangeCanceled},
	}
	for _, s := range steps {
		send(s.mod)
		require.Equal(t, s.plan, b.jobs(t, "plan_change"), s.name)
		require.Equal(t, s.unwind, b.jobs(t, "unwind_change"), s.name)
		require.Equal(t, s.status, b.change(t, "CHG0031234").Status, s.name)
		b.finishJobs(t)
	}
	require.Equal(t, int64(5), b.change(t, "CHG0031234").Revision, "4 plans and 1 unwind asked for")
	require.Equal(t, len(steps), b.events(t))
	rivertest.RequireInserted(context.Background(), t, riverpgxv5.New(b.pool), &jobs.UnwindChangeArgs{ChangeNumber: "CHG0031234", Revision: 5}, nil)

	// Withdrawn approval of a planned change unwinds too.
	b2 := setup(t, nil)
	require.Equal(t, http.StatusAccepted, b2.post(t, PathChangeWebhook, changeBody(nil), true, nil).status)
	withdrawn := changeBody(func(body, c, _ jsonObject) {
		body["event_id"] = "withdrawn"
		c["sys_updated_on"] = "2026-12-02 00:00:00"
		c["approval"] = "requested"
	})
	require.Equal(t, http.StatusAccepted, b2.post(t, PathChangeWebhook, withdrawn, true, nil).status)
	require.Equal(t, 1, b2.jobs(t, "unwind_change"))
	require.Equal(t, store.ChangeCanceled, b2.change(t, "CHG0031234").Status)
}

// TestChangeBurst: every version that asks for a plan gets its own job,
// with its revision, also while an older one runs (River's uniqueness would
// swallow a job with the same args); identical deliveries do not.
func TestChangeBurst(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	send := func(i int) {
		body := changeBody(func(body, c, _ jsonObject) {
			body["event_id"] = "burst-" + strconv.Itoa(i)
			c["end_date"] = time.Date(2026, 12, 14, 6+i, 0, 0, 0, time.UTC).Format(time.DateTime)
			c["sys_updated_on"] = time.Date(2026, 12, 1, 10, 0, i, 0, time.UTC).Format(time.DateTime)
		})
		require.Equal(t, http.StatusAccepted, b.post(t, PathChangeWebhook, body, true, nil).status)
		require.Equal(t, http.StatusOK, b.post(t, PathChangeWebhook, body, true, nil).status)
	}
	for i := range 3 {
		send(i)
	}
	_, err := b.pool.Exec(context.Background(), "UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now()")
	require.NoError(t, err)
	send(3)

	var revisions []int64
	rows, err := b.pool.Query(context.Background(), "SELECT (args->>'revision')::bigint FROM river_job WHERE kind = 'plan_change' ORDER BY id")
	require.NoError(t, err)
	for rows.Next() {
		var r int64
		require.NoError(t, rows.Scan(&r))
		revisions = append(revisions, r)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []int64{1, 2, 3, 4}, revisions)
	require.Equal(t, int64(4), b.change(t, "CHG0031234").Revision)
}

// TestChangeIdentityMismatch: a known number with another sys_id is
// refused, and nothing is recorded.
func TestChangeIdentityMismatch(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	require.Equal(t, http.StatusAccepted, b.post(t, PathChangeWebhook, changeBody(nil), true, nil).status)
	other := changeBody(func(body, c, _ jsonObject) {
		body["event_id"] = "other"
		c["sys_id"] = sysID2
		c["sys_updated_on"] = "2026-12-02 00:00:00"
	})
	resp := b.post(t, PathChangeWebhook, other, true, nil)
	require.Equal(t, http.StatusBadRequest, resp.status)
	e := resp.apiError(t)
	require.Equal(t, "validation_failed", e.Code)
	require.Equal(t, "change.sys_id", e.Details[0].Field)
	require.Equal(t, 1, b.events(t))
	require.Equal(t, 1, b.allJobs(t))
}

// TestScheduleRequestAccepted: 202, one event whose payload is the request
// as validated, one assign_devices job naming it; duplicates by event id,
// by content when there is no event id, and stale RITM versions.
func TestScheduleRequestAccepted(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	resp := b.post(t, PathScheduleRequestWebhook, scheduleRequestBody(nil), true, nil)
	require.Equal(t, http.StatusAccepted, resp.status, "%s", resp.body)
	w := resp.webhook(t)
	rivertest.RequireManyInserted(ctx, t, riverpgxv5.New(b.pool), []rivertest.ExpectedJob{
		{Args: &jobs.AssignDevicesArgs{EventID: w.ID}, Opts: &rivertest.RequireInsertedOpts{Queue: jobs.QueueSCCM}},
	})
	got, err := store.GetScheduleRequest(ctx, b.pool, w.ID)
	require.NoError(t, err)
	require.Equal(t, store.ScheduleRequest{
		EventID:      "sc_req_item:" + sysID2 + ":3",
		RequestItem:  store.RequestItem{Number: "RITM0010001", SysID: sysID2},
		RequestedFor: "jane.doe",
		Schedule:     "DB-SAT-0200",
		Devices: []store.RequestedDevice{
			{Name: "SQL01", Service: "Payroll", Tier: "backend"},
			{Name: "web01.corp.example.com", Service: "Payroll", Tier: "frontend"},
		},
	}, got)

	dup := b.post(t, PathScheduleRequestWebhook, scheduleRequestBody(nil), true, nil)
	require.Equal(t, WebhookResponse{ID: w.ID, Status: "duplicate"}, dup.webhook(t))
	require.Equal(t, 1, b.events(t))
	require.Equal(t, 1, b.allJobs(t))
}

func TestScheduleRequestWithoutEventID(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	body := func(extra string, devices ...string) []byte {
		return scheduleRequestBody(func(body, _ jsonObject, d []jsonObject) []jsonObject {
			delete(body, "event_id")
			if extra != "" {
				body["u_extra"] = extra
			}
			if len(devices) > 0 {
				d = d[:0]
				for _, name := range devices {
					d = append(d, jsonObject{"name": name, "service": "Payroll", "tier": "middle"})
				}
			}
			return d
		})
	}
	first := b.post(t, PathScheduleRequestWebhook, body(""), true, nil)
	require.Equal(t, http.StatusAccepted, first.status)
	id := first.webhook(t).ID

	// The same content, with unknown fields and another layout: duplicate.
	indented, err := json.MarshalIndent(json.RawMessage(body("ignored")), "", "  ")
	require.NoError(t, err)
	resp := b.post(t, PathScheduleRequestWebhook, indented, true, nil)
	require.Equal(t, WebhookResponse{ID: id, Status: "duplicate"}, resp.webhook(t))

	// Other devices: a new request.
	resp = b.post(t, PathScheduleRequestWebhook, body("", "APP01"), true, nil)
	require.Equal(t, http.StatusAccepted, resp.status)
	require.Equal(t, 2, b.jobs(t, "assign_devices"))

	var key string
	require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT event_id FROM webhook_events WHERE id = $1", id).Scan(&key))
	require.True(t, strings.HasPrefix(key, "sha256:") && len(key) == len("sha256:")+64, key)
}

func TestScheduleRequestVersions(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	at := func(eventID, updated string) []byte {
		return scheduleRequestBody(func(body, item jsonObject, d []jsonObject) []jsonObject {
			body["event_id"] = eventID
			item["sys_updated_on"] = updated
			return d
		})
	}
	v2 := b.post(t, PathScheduleRequestWebhook, at("v2", "2026-12-01 09:00:02"), true, nil)
	require.Equal(t, http.StatusAccepted, v2.status)
	// Same version under another event id: duplicate.
	resp := b.post(t, PathScheduleRequestWebhook, at("v2-again", "2026-12-01T09:00:02Z"), true, nil)
	require.Equal(t, WebhookResponse{ID: v2.webhook(t).ID, Status: "duplicate"}, resp.webhook(t))
	// Older: recorded as stale, nothing enqueued.
	resp = b.post(t, PathScheduleRequestWebhook, at("v1", "2026-12-01 09:00:01"), true, nil)
	require.Equal(t, http.StatusOK, resp.status)
	require.Equal(t, "stale", resp.webhook(t).Status)
	require.Equal(t, "stale", outcomeOf(t, b, resp.webhook(t).ID))
	// Newer: accepted.
	require.Equal(t, http.StatusAccepted, b.post(t, PathScheduleRequestWebhook, at("v3", "2026-12-01 09:00:03"), true, nil).status)
	require.Equal(t, 2, b.jobs(t, "assign_devices"))
	require.Equal(t, 3, b.events(t))
	require.Equal(t, 1.0, b.metric(t, store.EventScheduleRequest, "stale"))
}

// TestScheduleRequestLimits: 5,000 devices are accepted.
func TestScheduleRequestLimits(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	body := scheduleRequestBody(func(_, _ jsonObject, _ []jsonObject) []jsonObject { return manyDevices(5000) })
	resp := b.post(t, PathScheduleRequestWebhook, body, true, nil)
	require.Equal(t, http.StatusAccepted, resp.status, "%.300s", resp.body)
	got, err := store.GetScheduleRequest(context.Background(), b.pool, resp.webhook(t).ID)
	require.NoError(t, err)
	require.Len(t, got.Devices, 5000)
}

// TestWebhookAuthMethods: each configured method alone is enough; a method
// that is not configured is ignored; the timestamp may be 5 minutes off.
func TestWebhookAuthMethods(t *testing.T) {
	t.Parallel()
	hmacOnly := setup(t, &WebhookAuth{Secret: testSecret})
	basicOnly := setup(t, &WebhookAuth{User: testUser, Password: testPassword})
	both := setup(t, nil)

	unsigned := func(r *http.Request) { r.Header.Del(HeaderTimestamp); r.Header.Del(HeaderSignature) }
	basic := func(r *http.Request) { unsigned(r); r.SetBasicAuth(testUser, testPassword) }
	body := func(n int) []byte {
		return changeBody(func(b, c, _ jsonObject) {
			b["event_id"] = "auth-" + string(rune('a'+n))
			c["sys_updated_on"] = time.Date(2026, 12, 1, 0, 0, n, 0, time.UTC).Format(time.DateTime)
		})
	}
	edge := func(b *testBundle, offset time.Duration) func(*http.Request) {
		return func(r *http.Request) {
			rc, err := r.GetBody()
			require.NoError(t, err)
			raw, err := io.ReadAll(rc)
			require.NoError(t, err)
			ts := b.now.Add(offset).Unix()
			r.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
			r.Header.Set(HeaderSignature, sign(testSecret, ts, raw))
		}
	}
	tests := []struct {
		name   string
		b      *testBundle
		mod    func(*http.Request)
		status int
	}{
		{"HMACOnlySigned", hmacOnly, nil, 202},
		{"HMACOnlyBasicIgnored", hmacOnly, basic, 401},
		{"HMACOnlyWrongBasicIgnored", hmacOnly, func(r *http.Request) { r.SetBasicAuth("x", "y") }, 202},
		{"HMACOnly5MinutesPast", hmacOnly, edge(hmacOnly, -MaxClockSkew), 202},
		{"HMACOnly5MinutesFuture", hmacOnly, edge(hmacOnly, MaxClockSkew), 202},
		{"BasicOnly", basicOnly, basic, 202},
		{"BasicOnlySignatureIgnored", basicOnly, nil, 401},
		{"BasicOnlyCharset", basicOnly, func(r *http.Request) { basic(r); r.Header.Set("Content-Type", "application/json; charset=UTF-8") }, 202},
		{"BothSigned", both, nil, 202},
		{"BothBasic", both, basic, 202},
		{"BothSignedAndBasic", both, func(r *http.Request) { r.SetBasicAuth(testUser, testPassword) }, 202},
	}
	for i, tt := range tests {
		resp := tt.b.post(t, PathChangeWebhook, body(i), tt.status == 202, tt.mod)
		require.Equal(t, tt.status, resp.status, "%s: %s", tt.name, resp.body)
		if tt.status == 401 {
			want := `X-Autopatch-Signature realm="autopatch"`
			if tt.b.auth.User != "" {
				want = `Basic realm="autopatch", charset="UTF-8"`
			}
			require.Equal(t, want, resp.header.Get("WWW-Authenticate"), tt.name)
		}
	}
}

// TestChangeConcurrentVersions: versions of one change arriving at once in
// any order leave the newest one applied; each older one is either applied
// before it or recorded as stale, never applied after it.
func TestChangeConcurrentVersions(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	const n = 8
	results := make([]WebhookResponse, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			body := changeBody(func(body, c, _ jsonObject) {
				body["event_id"] = "v" + strconv.Itoa(i)
				c["end_date"] = time.Date(2026, 12, 14, 6+i, 0, 0, 0, time.UTC).Format(time.DateTime)
				c["sys_updated_on"] = time.Date(2026, 12, 1, 10, 0, i, 0, time.UTC).Format(time.DateTime)
			})
			<-start
			results[i] = b.post(t, PathChangeWebhook, body, true, nil).webhook(t)
		})
	}
	close(start)
	wg.Wait()

	require.Equal(t, "accepted", results[n-1].Status, "the newest version is applied")
	for _, r := range results {
		require.Contains(t, []string{"accepted", "stale"}, r.Status)
		require.Equal(t, r.Status, outcomeOf(t, b, r.ID))
	}
	c := b.change(t, "CHG0031234")
	require.True(t, c.SysUpdatedOn.Equal(time.Date(2026, 12, 1, 10, 0, n-1, 0, time.UTC)), "%v", c.SysUpdatedOn)
	require.True(t, c.End.Equal(time.Date(2026, 12, 14, 6+n-1, 0, 0, 0, time.UTC)), "%v", c.End)
	require.Equal(t, n, b.events(t))
	// One plan per applied version.
	accepted := 0
	for _, r := range results {
		if r.Status == "accepted" {
			accepted++
		}
	}
	require.Equal(t, accepted, b.jobs(t, "plan_change"))
	require.Equal(t, int64(accepted), c.Revision)
}
