package handlers

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/config"
	"github.com/autopatch/autopatch/internal/store"
	"github.com/autopatch/autopatch/internal/testdb"
	"github.com/autopatch/autopatch/jobs"
)

func TestMain(m *testing.M) { testdb.Run(m) }

const (
	testSecret   = "autopatch-test-secret"
	testUser     = "servicenow"
	testPassword = "s3cret-password"
	sysID1       = "0123456789abcdef0123456789abcdef"
	sysID2       = "89abcdef0123456789abcdef01234567"
)

// noopWorker lets the test River client know a job kind; the client is
// never started, so it never runs.
type noopWorker[T river.JobArgs] struct{ river.WorkerDefaults[T] }

func (noopWorker[T]) Work(context.Context, *river.Job[T]) error { return nil }

type testBundle struct {
	pool     *pgxpool.Pool
	echo     *echo.Echo
	server   *httptest.Server
	registry *prometheus.Registry
	now      time.Time
	auth     WebhookAuth
}

// setup starts autopatch's HTTP stack on a fresh database with two active
// schedules and a retired one. auth nil means HMAC and Basic both on.
func setup(t testing.TB, auth *WebhookAuth) *testBundle {
	t.Helper()
	return setupPool(t, testdb.Pool(t), auth)
}

func setupPool(t testing.TB, pool *pgxpool.Pool, auth *WebhookAuth) *testBundle {
	t.Helper()
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO schedules (name, collection, kind, timezone, definition, retired_at) VALUES
		('DB-SAT-0200', 'Patch - DB - Sat 02:00', 'automatic', 'Europe/London', '{}', NULL),
		('WEB-3RD-SUN', 'Patch - Web - 3rd Sun', 'manual_reboot', 'America/New_York', '{}', NULL),
		('OLD-SCHEDULE', 'Patch - Old', 'automatic', 'UTC', '{}', now())`)
	require.NoError(t, err)

	workers := river.NewWorkers()
	river.AddWorker(workers, &noopWorker[jobs.PlanChangeArgs]{})
	river.AddWorker(workers, &noopWorker[jobs.UnwindChangeArgs]{})
	river.AddWorker(workers, &noopWorker[jobs.AssignDevicesArgs]{})
	river.AddWorker(workers, &noopWorker[jobs.WorkNoteArgs]{})
	river.AddWorker(workers, &noopWorker[jobs.RefreshLedgerArgs]{})
	river.AddWorker(workers, &noopWorker[jobs.HoldChangeArgs]{})
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Workers: workers})
	require.NoError(t, err)

	b := &testBundle{pool: pool, registry: prometheus.NewRegistry(), now: time.Now().Truncate(time.Second)}
	if auth == nil {
		auth = &WebhookAuth{Secret: testSecret, User: testUser, Password: testPassword}
	}
	b.auth = *auth
	b.echo = New(Options{
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Ready:    func(context.Context) error { return nil },
		Registry: b.registry,
		APIToken: config.Secret("test-token"),
		Pool:     pool,
		Webhooks: &WebhookOptions{
			Store: &store.Store{Pool: pool},
			Jobs:  client,
			Auth:  *auth,
			Now:   func() time.Time { return b.now },
		},
	})
	b.server = httptest.NewServer(b.echo)
	t.Cleanup(b.server.Close)
	return b
}

// sign returns the X-Autopatch-Signature of body at ts, computed here
// independently of the middleware.
func sign(secret string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "%d.%s", ts, body)
	return "sha256=" + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) webhook(t testing.TB) WebhookResponse {
	t.Helper()
	var w WebhookResponse
	require.NoError(t, json.Unmarshal(r.body, &w), "%s", r.body)
	return w
}

func (r response) apiError(t testing.TB) APIError {
	t.Helper()
	var e APIError
	require.NoError(t, json.Unmarshal(r.body, &e), "%s", r.body)
	return e
}

// post sends body to path, signed with the bundle's clock unless mod
// changes the request, and checks the answer against openapi.yaml (the
// request too when validRequest).
func (b *testBundle) post(t testing.TB, path string, body []byte, validRequest bool, mod func(*http.Request)) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.server.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	ts := b.now.Unix()
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, sign(testSecret, ts, body))
	if mod != nil {
		mod(req)
	}
	resp, err := b.server.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	respBody, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	checkSpec(t, req, body, validRequest, resp, respBody)
	return response{status: resp.StatusCode, header: resp.Header, body: respBody}
}

func (b *testBundle) count(t testing.TB, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

func (b *testBundle) events(t testing.TB) int {
	return b.count(t, "SELECT count(*) FROM webhook_events")
}

func (b *testBundle) jobs(t testing.TB, kind string) int {
	return b.count(t, "SELECT count(*) FROM river_job WHERE kind = $1", kind)
}

func (b *testBundle) allJobs(t testing.TB) int {
	return b.count(t, "SELECT count(*) FROM river_job")
}

// finishJobs marks every job completed, as if the workers had run.
func (b *testBundle) finishJobs(t testing.TB) {
	t.Helper()
	_, err := b.pool.Exec(context.Background(), "UPDATE river_job SET state = 'completed', finalized_at = now()")
	require.NoError(t, err)
}

func (b *testBundle) change(t testing.TB, number string) store.ChangeRow {
	t.Helper()
	c, err := store.GetChange(context.Background(), b.pool, number)
	require.NoError(t, err)
	return c
}

// metric returns the value of autopatch_webhook_deliveries_total{kind,outcome}.
func (b *testBundle) metric(t testing.TB, kind, outcome string) float64 {
	t.Helper()
	families, err := b.registry.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != "autopatch_webhook_deliveries_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["kind"] == kind && labels["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// --- bodies -----------------------------------------------------------------

type jsonObject = map[string]any

func changeBody(mod func(body, change, patching jsonObject)) []byte {
	change := jsonObject{
		"number": "CHG0031234", "sys_id": sysID1, "type": "normal", "state": "scheduled",
		"approval": "approved", "start_date": "2026-12-12 20:00:00", "end_date": "2026-12-14 06:00:00",
		"short_description": "December patching", "sys_updated_on": "2026-12-01 10:02:03",
	}
	patching := jsonObject{"software_update_groups": []any{"2026-12 Servers"}}
	body := jsonObject{"event_id": "change_request:" + sysID1 + ":7", "change": change, "patching": patching}
	if mod != nil {
		mod(body, change, patching)
	}
	b, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	return b
}

func scheduleRequestBody(mod func(body, item jsonObject, devices []jsonObject) []jsonObject) []byte {
	item := jsonObject{"number": "RITM0010001", "sys_id": sysID2}
	devices := []jsonObject{
		{"name": "SQL01", "service": "Payroll", "tier": "backend"},
		{"name": "web01.corp.example.com", "service": "Payroll", "tier": "frontend"},
	}
	body := jsonObject{"event_id": "sc_req_item:" + sysID2 + ":3", "request_item": item, "requested_for": "jane.doe", "schedule": "DB-SAT-0200"}
	if mod != nil {
		devices = mod(body, item, devices)
	}
	body["devices"] = devices
	b, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	return b
}

func manyDevices(n int) []jsonObject {
	out := make([]jsonObject, n)
	for i := range out {
		out[i] = jsonObject{"name": fmt.Sprintf("SRV%05d", i), "service": "Payroll", "tier": "middle"}
	}
	return out
}

// --- refusals ---------------------------------------------------------------

// TestWebhookRefusals sends every kind of bad delivery and checks the
// status, the error code, the field paths, and that nothing was recorded
// or enqueued.
func TestWebhookRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	const (
		chg  = PathChangeWebhook
		ritm = PathScheduleRequestWebhook
	)
	unsigned := func(r *http.Request) { r.Header.Del(HeaderTimestamp); r.Header.Del(HeaderSignature) }
	at := func(offset time.Duration) func(*http.Request) {
		return func(r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			ts := b.now.Add(offset).Unix()
			r.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
			r.Header.Set(HeaderSignature, sign(testSecret, ts, body))
		}
	}
	header := func(k, v string) func(*http.Request) { return func(r *http.Request) { r.Header.Set(k, v) } }
	both := func(fs ...func(*http.Request)) func(*http.Request) {
		return func(r *http.Request) {
			for _, f := range fs {
				f(r)
			}
		}
	}
	basic := func(user, pass string) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth(user, pass) }
	}
	rawChange := func(s string) []byte { return []byte(s) }
	change := func(f func(change jsonObject)) []byte {
		return changeBody(func(_, c, _ jsonObject) { f(c) })
	}
	patching := func(f func(p jsonObject)) []byte {
		return changeBody(func(_, _, p jsonObject) { f(p) })
	}
	devices := func(f func([]jsonObject) []jsonObject) []byte {
		return scheduleRequestBody(func(_, _ jsonObject, d []jsonObject) []jsonObject { return f(d) })
	}
	request := func(f func(body, item jsonObject)) []byte {
		return scheduleRequestBody(func(body, item jsonObject, d []jsonObject) []jsonObject { f(body, item); return d })
	}
	groups := func(n int, name func(i int) string) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = name(i)
		}
		return out
	}
	huge := bytes.Repeat([]byte(" "), MaxBody+1)

	tests := []struct {
		name   string
		path   string
		body   []byte
		mod    func(*http.Request)
		status int
		code   string
		fields []string // the details' fields, in order; nil: not checked
		inMsg  string   // a substring of the first detail or of the message
	}{
		// 401
		{"Unsigned", chg, changeBody(nil), unsigned, 401, "unauthorized", nil, "missing credentials"},
		{"UnsignedJunk", chg, []byte("junk"), both(unsigned, header("Content-Type", "text/plain")), 401, "unauthorized", nil, ""},
		{"BadSignature", chg, changeBody(nil), header(HeaderSignature, sign("another-secret", b.now.Unix(), changeBody(nil))), 401, "unauthorized", nil, "signature does not match"},
		{"SignatureOfOtherBody", chg, changeBody(nil), header(HeaderSignature, sign(testSecret, b.now.Unix(), []byte("{}"))), 401, "unauthorized", nil, ""},
		{"SignatureNotBase64", chg, changeBody(nil), header(HeaderSignature, "sha256=***"), 401, "unauthorized", nil, "base64"},
		{"SignatureWithoutPrefix", chg, changeBody(nil), header(HeaderSignature, strings.TrimPrefix(sign(testSecret, b.now.Unix(), changeBody(nil)), "sha256=")), 401, "unauthorized", nil, "sha256="},
		{"SignatureWithoutTimestamp", chg, changeBody(nil), header(HeaderTimestamp, ""), 401, "unauthorized", nil, "both"},
		{"TimestampNotANumber", chg, changeBody(nil), header(HeaderTimestamp, "yesterday"), 401, "unauthorized", nil, "unix time"},
		{"TimestampOtherThanSigned", chg, changeBody(nil), header(HeaderTimestamp, strconv.FormatInt(b.now.Unix()+1, 10)), 401, "unauthorized", nil, "signature does not match"},
		{"StalePast", chg, changeBody(nil), at(-MaxClockSkew - time.Second), 401, "unauthorized", nil, "from autopatch's clock"},
		{"StaleFuture", chg, changeBody(nil), at(MaxClockSkew + time.Second), 401, "unauthorized", nil, "from autopatch's clock"},
		{"BasicWrongPassword", chg, changeBody(nil), both(unsigned, basic(testUser, "wrong")), 401, "unauthorized", nil, "wrong user or password"},
		{"BasicWrongUser", ritm, scheduleRequestBody(nil), both(unsigned, basic("someone", testPassword)), 401, "unauthorized", nil, ""},
		{"BasicRightSignatureWrong", chg, changeBody(nil), both(basic(testUser, testPassword), header(HeaderSignature, sign("x", b.now.Unix(), changeBody(nil)))), 401, "unauthorized", nil, ""},
		{"BasicWrongSignatureRight", chg, changeBody(nil), basic(testUser, "wrong"), 401, "unauthorized", nil, ""},
		// 413
		{"TooLarge", chg, huge, nil, 413, "body_too_large", nil, ""},
		{"TooLargeChunked", chg, huge, func(r *http.Request) { r.ContentLength = -1; r.Body = io.NopCloser(bytes.NewReader(huge)) }, 413, "body_too_large", nil, ""},
		{"TooLargeUnsigned", ritm, huge, unsigned, 413, "body_too_large", nil, ""},
		// 415
		{"TextPlain", chg, changeBody(nil), header("Content-Type", "text/plain"), 415, "unsupported_media_type", nil, ""},
		{"NoContentType", ritm, scheduleRequestBody(nil), header("Content-Type", ""), 415, "unsupported_media_type", nil, ""},
		{"Latin1", chg, changeBody(nil), header("Content-Type", "application/json; charset=iso-8859-1"), 415, "unsupported_media_type", nil, "UTF-8"},
		{"FormEncoded", ritm, scheduleRequestBody(nil), header("Content-Type", "application/x-www-form-urlencoded"), 415, "unsupported_media_type", nil, ""},
		// 400 bad JSON
		{"Empty", chg, nil, nil, 400, "bad_json", []string{""}, "empty"},
		{"Truncated", chg, changeBody(nil)[:40], nil, 400, "bad_json", []string{""}, "ends in the middle"},
		{"TrailingComma", chg, rawChange("{\n  \"a\": 1,\n}"), nil, 400, "bad_json", []string{""}, "line 3, column 1 (byte offset 12)"},
		{"NotAnObject", ritm, rawChange(`[1,2]`), nil, 400, "bad_json", []string{""}, "must be a JSON object"},
		{"TrailingData", chg, append(changeBody(nil), []byte(" {}")...), nil, 400, "bad_json", []string{""}, "after the JSON object"},
		{"InvalidUTF8", ritm, []byte("{\"requested_for\":\"\xff\"}"), nil, 400, "bad_json", []string{""}, "byte offset 18"},
		// 400 validation: change
		{"ChangeMissing", chg, rawChange(`{"patching":{"software_update_groups":["x"]}}`), nil, 400, "validation_failed", []string{"change"}, "is required"},
		{"PatchingMissing", chg, changeBody(func(b, _, _ jsonObject) { delete(b, "patching") }), nil, 400, "validation_failed", []string{"patching"}, "is required"},
		{"NumberFormat", chg, change(func(c jsonObject) { c["number"] = "CHG123" }), nil, 400, "validation_failed", []string{"change.number"}, "must be a ServiceNow change number like CHG0031234"},
		{"NumberIsRITM", chg, change(func(c jsonObject) { c["number"] = "RITM0010001" }), nil, 400, "validation_failed", []string{"change.number"}, ""},
		{"NumberType", chg, change(func(c jsonObject) { c["number"] = 31234 }), nil, 400, "validation_failed", []string{"change.number"}, "must be a string, not a number"},
		{"SysIDUpper", chg, change(func(c jsonObject) { c["sys_id"] = strings.ToUpper(sysID1) }), nil, 400, "validation_failed", []string{"change.sys_id"}, "32 lowercase hexadecimal"},
		{"SysIDShort", chg, change(func(c jsonObject) { c["sys_id"] = sysID1[1:] }), nil, 400, "validation_failed", []string{"change.sys_id"}, ""},
		{"StateMissing", chg, change(func(c jsonObject) { delete(c, "state") }), nil, 400, "validation_failed", []string{"change.state"}, "is required"},
		{"ApprovalMissing", chg, change(func(c jsonObject) { c["approval"] = "" }), nil, 400, "validation_failed", []string{"change.approval"}, "is required"},
		{"StartFormat", chg, change(func(c jsonObject) { c["start_date"] = "12/12/2026 20:00" }), nil, 400, "validation_failed", []string{"change.start_date"}, "2026-12-12 20:00:00"},
		{"StartImpossible", chg, change(func(c jsonObject) { c["start_date"] = "2026-02-30 20:00:00" }), nil, 400, "validation_failed", []string{"change.start_date"}, ""},
		{"EndRFC3339NoZone", chg, change(func(c jsonObject) { c["end_date"] = "2026-12-14T06:00:00" }), nil, 400, "validation_failed", []string{"change.end_date"}, ""},
		{"EndBeforeStart", chg, change(func(c jsonObject) { c["end_date"] = "2026-12-12 19:59:59" }), nil, 400, "validation_failed", []string{"change.end_date"}, "must be after change.start_date"},
		{"EndEqualsStart", chg, change(func(c jsonObject) { c["end_date"] = "2026-12-12T20:00:00Z" }), nil, 400, "validation_failed", []string{"change.end_date"}, "must be after"},
		{"UpdatedMissing", chg, change(func(c jsonObject) { delete(c, "sys_updated_on") }), nil, 400, "validation_failed", []string{"change.sys_updated_on"}, "is required"},
		{"StateControl", chg, change(func(c jsonObject) { c["state"] = "sched\u0000uled" }), nil, 400, "validation_failed", []string{"change.state"}, "printable"},
		{"DescriptionNUL", chg, change(func(c jsonObject) { c["short_description"] = "Dec\u0000ember" }), nil, 400, "validation_failed", []string{"change.short_description"}, "NUL"},
		{"EventIDControl", chg, changeBody(func(b, _, _ jsonObject) { b["event_id"] = "a\nb" }), nil, 400, "validation_failed", []string{"event_id"}, "printable"},
		{"ClassificationUnknown", chg, patching(func(p jsonObject) { p["classification"] = "urgent" }), nil, 400, "validation_failed", []string{"patching.classification"}, "one of normal, critical, emergency"},
		{"DeadlineNotATime", chg, patching(func(p jsonObject) { p["deadline"] = "next Tuesday" }), nil, 400, "validation_failed", []string{"patching.deadline"}, "date and time"},
		{"DeadlineBeforeStart", chg, patching(func(p jsonObject) { p["deadline"] = "2026-12-12 19:59:59" }), nil, 400, "validation_failed", []string{"patching.deadline"}, "after change.start_date"},
		{"DeadlineAtStart", chg, patching(func(p jsonObject) { p["deadline"] = "2026-12-12T20:00:00Z" }), nil, 400, "validation_failed", []string{"patching.deadline"}, "after change.start_date"},
		{"GroupsEmpty", chg, patching(func(p jsonObject) { p["software_update_groups"] = []any{} }), nil, 400, "validation_failed", []string{"patching.software_update_groups"}, "at least 1 item"},
		{"GroupsMissing", chg, patching(func(p jsonObject) { delete(p, "software_update_groups") }), nil, 400, "validation_failed", []string{"patching.software_update_groups"}, "is required"},
		{"Groups101", chg, patching(func(p jsonObject) {
			p["software_update_groups"] = groups(101, func(i int) string { return fmt.Sprintf("G%d", i) })
		}), nil, 400, "validation_failed", []string{"patching.software_update_groups"}, "at most 100 items"},
		{"GroupControl", chg, patching(func(p jsonObject) { p["software_update_groups"] = []any{"ok", "bell\u0007"} }), nil, 400, "validation_failed", []string{"patching.software_update_groups[1]"}, "software update group"},
		{"GroupFormatChar", chg, patching(func(p jsonObject) { p["software_update_groups"] = []any{"evil\u202egnp"} }), nil, 400, "validation_failed", []string{"patching.software_update_groups[0]"}, ""},
		{"GroupTooLong", chg, patching(func(p jsonObject) { p["software_update_groups"] = []any{strings.Repeat("é", 257)} }), nil, 400, "validation_failed", []string{"patching.software_update_groups[0]"}, ""},
		{"GroupSpaces", chg, patching(func(p jsonObject) { p["software_update_groups"] = []any{" 2026-12 Servers"} }), nil, 400, "validation_failed", []string{"patching.software_update_groups[0]"}, ""},
		{"GroupEmpty", chg, patching(func(p jsonObject) { p["software_update_groups"] = []any{""} }), nil, 400, "validation_failed", []string{"patching.software_update_groups[0]"}, ""},
		{"GroupType", chg, patching(func(p jsonObject) { p["software_update_groups"] = []any{"a", 2} }), nil, 400, "validation_failed", []string{"patching.software_update_groups[1]"}, "must be a string"},
		{"GroupDuplicate", chg, patching(func(p jsonObject) { p["software_update_groups"] = []any{"2026-12 Servers", "x", "2026-12 SERVERS"} }), nil, 400, "validation_failed", []string{"patching.software_update_groups[2]"}, "repeats patching.software_update_groups[0]"},
		{"SchedulesEmpty", chg, patching(func(p jsonObject) { p["schedules"] = []any{} }), nil, 400, "validation_failed", []string{"patching.schedules"}, "at least 1 item"},
		{"ScheduleUnknown", chg, patching(func(p jsonObject) { p["schedules"] = []any{"DB-SAT-0200", "NOPE"} }), nil, 400, "validation_failed", []string{"patching.schedules[1]"}, `"NOPE" is not one`},
		{"ScheduleRetired", chg, patching(func(p jsonObject) { p["schedules"] = []any{"OLD-SCHEDULE"} }), nil, 400, "validation_failed", []string{"patching.schedules[0]"}, ""},
		{"ScheduleWrongCase", chg, patching(func(p jsonObject) { p["schedules"] = []any{"db-sat-0200"} }), nil, 400, "validation_failed", []string{"patching.schedules[0]"}, ""},
		{"ScheduleTwice", chg, patching(func(p jsonObject) { p["schedules"] = []any{"DB-SAT-0200", "DB-SAT-0200"} }), nil, 400, "validation_failed", []string{"patching.schedules[1]"}, "repeats"},
		{"ManyProblems", chg, change(func(c jsonObject) { c["number"] = "x"; c["sys_id"] = "y"; delete(c, "approval") }), nil, 400, "validation_failed", []string{"change.number", "change.sys_id", "change.approval"}, ""},
		// 400 validation: schedule request
		{"RITMFormat", ritm, request(func(_, item jsonObject) { item["number"] = "REQ0010001" }), nil, 400, "validation_failed", []string{"request_item.number"}, "RITM0010001"},
		{"RITMSysID", ritm, request(func(_, item jsonObject) { item["sys_id"] = "g123456789abcdef0123456789abcdef" }), nil, 400, "validation_failed", []string{"request_item.sys_id"}, ""},
		{"RITMUpdatedFormat", ritm, request(func(_, item jsonObject) { item["sys_updated_on"] = "yesterday" }), nil, 400, "validation_failed", []string{"request_item.sys_updated_on"}, ""},
		{"RequestItemMissing", ritm, request(func(b, _ jsonObject) { delete(b, "request_item") }), nil, 400, "validation_failed", []string{"request_item"}, ""},
		{"RequestedForMissing", ritm, request(func(b, _ jsonObject) { delete(b, "requested_for") }), nil, 400, "validation_failed", []string{"requested_for"}, "is required"},
		{"ScheduleMissing", ritm, request(func(b, _ jsonObject) { b["schedule"] = "" }), nil, 400, "validation_failed", []string{"schedule"}, "is required"},
		{"ScheduleNotActive", ritm, request(func(b, _ jsonObject) { b["schedule"] = "OLD-SCHEDULE" }), nil, 400, "validation_failed", []string{"schedule"}, "active schedule"},
		{"DevicesMissing", ritm, rawChange(`{"request_item":{"number":"RITM0010001","sys_id":"` + sysID2 + `"},"requested_for":"jane.doe","schedule":"DB-SAT-0200"}`), nil, 400, "validation_failed", []string{"devices"}, "is required"},
		{"DevicesEmpty", ritm, devices(func([]jsonObject) []jsonObject { return []jsonObject{} }), nil, 400, "validation_failed", []string{"devices"}, "at least 1 item"},
		{"Devices5001", ritm, devices(func([]jsonObject) []jsonObject { return manyDevices(5001) }), nil, 400, "validation_failed", []string{"devices"}, "at most 5000 items"},
		{"DevicesNotArray", ritm, request(func(b, _ jsonObject) {}), func(r *http.Request) {
			body := bytes.Replace(scheduleRequestBody(nil), []byte(`"devices":[`), []byte(`"devices":"SQL01","x":[`), 1)
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
			ts := b.now.Unix()
			r.Header.Set(HeaderSignature, sign(testSecret, ts, body))
		}, 400, "validation_failed", []string{"devices"}, "must be an array, not a string"},
		{"DeviceNameType", ritm, devices(func(d []jsonObject) []jsonObject { d[1]["name"] = 42; return d }), nil, 400, "validation_failed", []string{"devices[1].name"}, "must be a string, not a number"},
		{"DeviceNameSpace", ritm, devices(func(d []jsonObject) []jsonObject { d[1]["name"] = "SQL 02"; return d }), nil, 400, "validation_failed", []string{"devices[1].name"}, "NetBIOS"},
		{"DeviceNameTooLong", ritm, devices(func(d []jsonObject) []jsonObject { d[0]["name"] = "ABCDEFGHIJKLMNOP"; return d }), nil, 400, "validation_failed", []string{"devices[0].name"}, ""},
		{"DeviceNameDigits", ritm, devices(func(d []jsonObject) []jsonObject { d[0]["name"] = "12345"; return d }), nil, 400, "validation_failed", []string{"devices[0].name"}, ""},
		{"DeviceNameLeadingDash", ritm, devices(func(d []jsonObject) []jsonObject { d[0]["name"] = "-SQL01"; return d }), nil, 400, "validation_failed", []string{"devices[0].name"}, ""},
		{"DeviceDNSUnderscore", ritm, devices(func(d []jsonObject) []jsonObject { d[0]["name"] = "sql_01.corp.example.com"; return d }), nil, 400, "validation_failed", []string{"devices[0].name"}, ""},
		{"DeviceDNSLabelTooLong", ritm, devices(func(d []jsonObject) []jsonObject { d[0]["name"] = strings.Repeat("a", 64) + ".corp"; return d }), nil, 400, "validation_failed", []string{"devices[0].name"}, ""},
		{"DeviceDNSEmptyLabel", ritm, devices(func(d []jsonObject) []jsonObject { d[0]["name"] = "sql01..corp"; return d }), nil, 400, "validation_failed", []string{"devices[0].name"}, ""},
		{"DeviceDNSTrailingDot", ritm, devices(func(d []jsonObject) []jsonObject { d[0]["name"] = "sql01.corp."; return d }), nil, 400, "validation_failed", []string{"devices[0].name"}, ""},
		{"DeviceDNSTooLong", ritm, devices(func(d []jsonObject) []jsonObject {
			d[0]["name"] = strings.TrimSuffix(strings.Repeat(strings.Repeat("a", 63)+".", 4), ".")
			return d
		}), nil, 400, "validation_failed", []string{"devices[0].name"}, ""},
		{"DeviceDuplicate", ritm, devices(func(d []jsonObject) []jsonObject {
			return append(d, jsonObject{"name": "sql01", "service": "Payroll", "tier": "backend"}, jsonObject{"name": "WEB01.corp.example.com", "service": "x", "tier": "middle"})
		}), nil, 400, "validation_failed", []string{"devices[2].name", "devices[3].name"}, "repeats devices[0].name"},
		{"DeviceTier", ritm, devices(func(d []jsonObject) []jsonObject { d[1]["tier"] = "database"; return d }), nil, 400, "validation_failed", []string{"devices[1].tier"}, "must be one of backend, middle, frontend"},
		{"DeviceTierMissing", ritm, devices(func(d []jsonObject) []jsonObject { delete(d[0], "tier"); return d }), nil, 400, "validation_failed", []string{"devices[0].tier"}, "is required"},
		{"DeviceServiceMissing", ritm, devices(func(d []jsonObject) []jsonObject { d[0]["service"] = ""; return d }), nil, 400, "validation_failed", []string{"devices[0].service"}, "is required"},
		{"DeviceNull", ritm, devices(func(d []jsonObject) []jsonObject { return append(d, nil) }), nil, 400, "validation_failed", []string{"devices[2].name", "devices[2].service", "devices[2].tier"}, ""},
		{"ManyBadDevices", ritm, devices(func([]jsonObject) []jsonObject {
			d := manyDevices(150)
			for _, dev := range d {
				dev["tier"] = "top"
			}
			return d
		}), nil, 400, "validation_failed", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := b.post(t, tt.path, tt.body, false, tt.mod)
			require.Equal(t, tt.status, resp.status, "%s", resp.body)
			e := resp.apiError(t)
			require.Equal(t, tt.code, e.Code, "%s", resp.body)
			if tt.status == http.StatusUnauthorized {
				require.NotEmpty(t, resp.header.Get("WWW-Authenticate"))
				require.Contains(t, resp.header.Get("WWW-Authenticate"), "Basic realm=")
			}
			if tt.status == http.StatusBadRequest {
				require.NotEmpty(t, e.Details)
			}
			if tt.fields != nil {
				var fields []string
				for _, d := range e.Details {
					fields = append(fields, d.Field)
				}
				require.Equal(t, tt.fields, fields, "%s", resp.body)
			}
			if tt.inMsg != "" {
				msg := e.Message
				if len(e.Details) > 0 {
					msg = e.Details[0].Message
				}
				require.Contains(t, msg, tt.inMsg, "%s", resp.body)
			}
		})
	}
	t.Cleanup(func() {
		// Nothing refused was recorded or enqueued.
		require.Zero(t, b.events(t))
		require.Zero(t, b.allJobs(t))
		require.Zero(t, b.count(t, "SELECT count(*) FROM changes"))
		// Every refusal that reached the webhook middleware was counted
		// with its reason (a declared Content-Length over the limit is
		// refused before, by the BodyLimit middleware).
		want := map[[2]string]float64{}
		for _, tt := range tests {
			kind := store.EventChange
			if tt.path == ritm {
				kind = store.EventScheduleRequest
			}
			if tt.status == http.StatusRequestEntityTooLarge && !strings.Contains(tt.name, "Chunked") {
				continue
			}
			want[[2]string{kind, tt.code}]++
		}
		for k, n := range want {
			require.Equal(t, n, b.metric(t, k[0], k[1]), "%s %s", k[0], k[1])
		}
	})
}
