package servicenowsim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const (
	user     = "admin"
	password = "secret"
)

type testBundle struct {
	sim   *Server
	srv   *httptest.Server
	mu    sync.Mutex
	clock time.Time
}

func (b *testBundle) now() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.clock
}

func (b *testBundle) advance(d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.clock = b.clock.Add(d)
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	b := &testBundle{clock: time.Date(2026, 12, 1, 10, 2, 3, 0, time.UTC)}
	b.sim = New(Options{
		User: user, Password: password,
		OAuthClientID: "cid", OAuthClientSecret: "csecret",
		TokenTTL: time.Minute, Clock: b.now,
	})
	b.srv = httptest.NewServer(b.sim)
	t.Cleanup(b.srv.Close)
	return b
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// call sends one request with Basic credentials unless auth says otherwise
// ("-" for none, "Bearer …" for a token).
func (b *testBundle) call(t *testing.T, method, path, contentType, body, auth string) reply {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, b.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	switch {
	case auth == "":
		req.SetBasicAuth(user, password)
	case auth != "-":
		req.Header.Set("Authorization", auth)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := b.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (r reply) result() map[string]any {
	m, _ := r.body["result"].(map[string]any)
	return m
}

func (r reply) results() []any {
	l, _ := r.body["result"].([]any)
	return l
}

func (r reply) errorBody() (message, detail any) {
	e, _ := r.body["error"].(map[string]any)
	return e["message"], e["detail"]
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tests := []struct {
		name, auth string
		want       int
	}{
		{"Basic", "", http.StatusOK},
		{"None", "-", http.StatusUnauthorized},
		{"WrongPassword", "Basic YWRtaW46d3Jvbmc=", http.StatusUnauthorized},
		{"UnknownToken", "Bearer 0123", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		r := b.call(t, "GET", "/api/now/table/incident", "", "", tt.auth)
		require.Equal(t, tt.want, r.status, tt.name)
		if tt.want == http.StatusUnauthorized {
			msg, detail := r.errorBody()
			require.Equal(t, "User Not Authenticated", msg)
			require.Equal(t, "Required to provide Auth information", detail)
			require.Equal(t, "failure", r.body["status"])
			require.Contains(t, r.header.Get("WWW-Authenticate"), "Basic")
		}
	}
}

func TestOAuth(t *testing.T) {
	t.Parallel()
	b := setup(t)
	token := func(form url.Values) reply {
		return b.call(t, "POST", "/oauth_token.do", "application/x-www-form-urlencoded", form.Encode(), "-")
	}
	base := url.Values{"client_id": {"cid"}, "client_secret": {"csecret"}}
	with := func(kv ...string) url.Values {
		v := url.Values{}
		for k, vals := range base {
			v[k] = vals
		}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}

	r := token(with("grant_type", "password", "username", user, "password", password))
	require.Equal(t, http.StatusOK, r.status, r.raw)
	require.Equal(t, "Bearer", r.body["token_type"])
	require.InDelta(t, 60, r.body["expires_in"], 0)
	access, refresh := r.body["access_token"].(string), r.body["refresh_token"].(string)
	require.NotEmpty(t, access)
	require.NotEmpty(t, refresh)
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/api/now/table/incident", "", "", "Bearer "+access).status)

	b.advance(time.Minute)
	require.Equal(t, http.StatusUnauthorized, b.call(t, "GET", "/api/now/table/incident", "", "", "Bearer "+access).status, "expired")

	r = token(with("grant_type", "refresh_token", "refresh_token", refresh))
	require.Equal(t, http.StatusOK, r.status, r.raw)
	renewed := r.body["access_token"].(string)
	require.NotEqual(t, access, renewed)
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/api/now/table/incident", "", "", "Bearer "+renewed).status)

	b.sim.RevokeAccessTokens()
	require.Equal(t, http.StatusUnauthorized, b.call(t, "GET", "/api/now/table/incident", "", "", "Bearer "+renewed).status, "revoked")

	refusals := []struct {
		name string
		form url.Values
		want int
	}{
		{"WrongPassword", with("grant_type", "password", "username", user, "password", "x"), http.StatusUnauthorized},
		{"WrongClientSecret", with("grant_type", "password", "username", user, "password", password, "client_secret", "x"), http.StatusUnauthorized},
		{"UnknownRefreshToken", with("grant_type", "refresh_token", "refresh_token", "nope"), http.StatusUnauthorized},
		{"UnsupportedGrant", with("grant_type", "client_credentials"), http.StatusBadRequest},
	}
	for _, tt := range refusals {
		r := token(tt.form)
		require.Equal(t, tt.want, r.status, tt.name)
		require.NotContains(t, r.raw, "access_token", tt.name)
	}
	r = b.call(t, "POST", "/oauth_token.do", "application/json", `{"grant_type":"password"}`, "-")
	require.Equal(t, http.StatusBadRequest, r.status)
}

func TestCreateAndRead(t *testing.T) {
	t.Parallel()
	b := setup(t)
	body := `{"short_description":"SQL01 failed","correlation_id":"autopatch:CHG1:SQL01","urgency":2,"impact":"1",` +
		`"cmdb_ci":"9d3a4f7c1b2e4a6d8c0f1e3b5a7d9c2e","u_no_such_field":"x","sys_id":"ffffffffffffffffffffffffffffffff","number":"INC9"}`
	r := b.call(t, "POST", "/api/now/table/incident", "application/json", body, "")
	require.Equal(t, http.StatusCreated, r.status, r.raw)
	res := r.result()
	sysID := res["sys_id"].(string)
	require.Regexp(t, `^[0-9a-f]{32}$`, sysID)
	require.NotEqual(t, "ffffffffffffffffffffffffffffffff", sysID, "sys_id is not writable")
	require.Equal(t, "INC0010001", res["number"])
	require.Equal(t, "1", res["state"])
	require.Equal(t, "true", res["active"])
	require.Equal(t, "2", res["urgency"])
	require.Equal(t, "2", res["priority"], "impact 1 + urgency 2 - 1")
	require.NotContains(t, res, "u_no_such_field")
	require.Equal(t, "/api/now/table/incident/"+sysID, r.header.Get("Location"))
	require.Equal(t, map[string]any{
		"link":  b.srv.URL + "/api/now/table/cmdb_ci/9d3a4f7c1b2e4a6d8c0f1e3b5a7d9c2e",
		"value": "9d3a4f7c1b2e4a6d8c0f1e3b5a7d9c2e",
	}, res["cmdb_ci"])

	r = b.call(t, "POST", "/api/now/table/incident", "application/json", `{"short_description":"second"}`, "")
	require.Equal(t, "INC0010002", r.result()["number"])

	r = b.call(t, "GET", "/api/now/table/incident/"+sysID+"?sysparm_fields=number,cmdb_ci,nope&sysparm_exclude_reference_link=true", "", "", "")
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, map[string]any{"number": "INC0010001", "cmdb_ci": "9d3a4f7c1b2e4a6d8c0f1e3b5a7d9c2e"}, r.result())

	r = b.call(t, "GET", "/api/now/table/incident/0123456789abcdef0123456789abcdef", "", "", "")
	require.Equal(t, http.StatusNotFound, r.status)
	msg, _ := r.errorBody()
	require.Equal(t, "No Record found", msg)

	got := b.sim.Incidents()
	require.Len(t, got, 2)
	require.Equal(t, "autopatch:CHG1:SQL01", got[0].CorrelationID)
	require.Equal(t, "SQL01 failed", got[0].ShortDescription)
}

func TestRequestRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tests := []struct {
		name, method, path, contentType, body string
		want                                  int
	}{
		{"WrongContentType", "POST", "/api/now/table/incident", "text/plain", `{"short_description":"x"}`, http.StatusUnsupportedMediaType},
		{"NoContentType", "POST", "/api/now/table/incident", "", `{"short_description":"x"}`, http.StatusUnsupportedMediaType},
		{"BadJSON", "POST", "/api/now/table/incident", "application/json", `{"short_description":`, http.StatusBadRequest},
		{"JSONArray", "POST", "/api/now/table/incident", "application/json", `[1]`, http.StatusBadRequest},
		{"UnknownTable", "GET", "/api/now/table/sys_user", "", "", http.StatusBadRequest},
		{"UnsupportedOperator", "GET", "/api/now/table/incident?sysparm_query=numberINSTANCEOFx", "", "", http.StatusBadRequest},
		{"DanglingOR", "GET", "/api/now/table/incident?sysparm_query=ORnumber=1", "", "", http.StatusBadRequest},
		{"BadLimit", "GET", "/api/now/table/incident?sysparm_limit=0", "", "", http.StatusBadRequest},
		{"PatchUnknown", "PATCH", "/api/now/table/change_request/0123456789abcdef0123456789abcdef", "application/json", `{"work_notes":"x"}`, http.StatusNotFound},
	}
	for _, tt := range tests {
		r := b.call(t, tt.method, tt.path, tt.contentType, tt.body, "")
		require.Equal(t, tt.want, r.status, tt.name)
		msg, _ := r.errorBody()
		require.NotEmpty(t, msg, tt.name)
		require.Equal(t, "failure", r.body["status"], tt.name)
	}
	require.Empty(t, b.sim.Incidents())
	require.Empty(t, b.sim.WorkNotes())
}

func TestQuery(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, f := range []string{
		`{"short_description":"a","correlation_id":"autopatch:CHG1:SQL01","urgency":"1"}`,
		`{"short_description":"b","correlation_id":"autopatch:CHG1:SQL02","urgency":"2"}`,
		`{"short_description":"c","correlation_id":"autopatch:CHG2:SQL01","urgency":"3"}`,
		`{"short_description":"d","correlation_id":""}`,
	} {
		require.Equal(t, http.StatusCreated, b.call(t, "POST", "/api/now/table/incident", "application/json", f, "").status)
	}
	// Close the third so active=true has something to exclude.
	third := b.sim.Incidents()[2].SysID
	r := b.call(t, "PATCH", "/api/now/table/incident/"+third, "application/json", `{"state":"7","close_code":"Duplicate","close_notes":"x"}`, "")
	require.Equal(t, http.StatusOK, r.status, r.raw)

	tests := []struct {
		query string
		want  string // short descriptions, in order
	}{
		{"", "abcd"},
		{"correlation_id=autopatch:CHG1:SQL01", "a"},
		{"correlation_id=AUTOPATCH:chg1:sql01", "a"},
		{"correlation_id=autopatch:CHG2:SQL01^active=true", ""},
		{"active=true^state<6", "abd"},
		{"correlation_idSTARTSWITHautopatch:CHG1:", "ab"},
		{"correlation_idENDSWITHSQL01", "ac"},
		{"correlation_idLIKECHG2", "c"},
		{"correlation_idNOTLIKECHG1", "cd"},
		{"correlation_idISEMPTY", "d"},
		{"correlation_idISNOTEMPTY^urgency>=2", "bc"},
		{"urgency<2", "a"},
		{"urgency<=2^urgency!=1", "b"},
		{"urgencyIN1,3", "acd"},
		{"urgencyNOT IN1,3", "b"},
		{"correlation_id=autopatch:CHG1:SQL02^ORcorrelation_id=autopatch:CHG2:SQL01", "bc"},
		{"urgency=1^NQurgency=3^active=false", "ac"},
		{"urgency>1^ORDERBYnumber^EQ", "bcd"},
		{"ORDERBYDESCnumber", "dcba"},
		{"ORDERBYDESCurgency^ORDERBYnumber", "cdba"}, // d takes the default urgency, 3
		{"no_such_field=x", ""},
		{"no_such_fieldISEMPTY", "abcd"},
	}
	for _, tt := range tests {
		r := b.call(t, "GET", "/api/now/table/incident?sysparm_fields=short_description&sysparm_query="+url.QueryEscape(tt.query), "", "", "")
		require.Equal(t, http.StatusOK, r.status, tt.query)
		var got strings.Builder
		for _, rec := range r.results() {
			got.WriteString(rec.(map[string]any)["short_description"].(string))
		}
		require.Equal(t, tt.want, got.String(), tt.query)
		require.Equal(t, len(tt.want), len(r.results()))
	}

	r = b.call(t, "GET", "/api/now/table/incident?sysparm_fields=short_description&sysparm_limit=2&sysparm_offset=1", "", "", "")
	require.Len(t, r.results(), 2)
	require.Equal(t, "b", r.results()[0].(map[string]any)["short_description"])
	require.Equal(t, "4", r.header.Get("X-Total-Count"))
}

func TestUpdateStatesAndJournal(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.call(t, "POST", "/api/now/table/incident", "application/json", `{"short_description":"x","work_notes":"first"}`, "")
	sysID := r.result()["sys_id"].(string)
	path := "/api/now/table/incident/" + sysID
	patch := func(body string) reply { return b.call(t, "PATCH", path, "application/json", body, "") }

	r = patch(`{"state":"6"}`)
	require.Equal(t, http.StatusForbidden, r.status)
	_, detail := r.errorBody()
	require.Contains(t, detail, "Data Policy Exception")
	require.Contains(t, detail, "Resolution code is mandatory")
	require.Equal(t, "1", b.sim.Incidents()[0].State, "refused update changed nothing")

	b.advance(time.Hour)
	r = patch(`{"state":"6","close_code":"Solution provided","close_notes":"done","work_notes":"second\nline"}`)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	res := r.result()
	require.Equal(t, "6", res["state"])
	require.Equal(t, "true", res["active"], "resolved stays active until closed")
	require.Equal(t, "2026-12-01 11:02:03", res["resolved_at"])
	require.Equal(t, "2026-12-01 11:02:03 - admin (Work notes)\nsecond\nline\n\n", res["work_notes"])

	r = patch(`{"state":"7"}`)
	require.Equal(t, "false", r.result()["active"])

	r = b.call(t, "PUT", path, "application/json", `{"state":"2"}`, "")
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "true", r.result()["active"], "reopened")
	require.Empty(t, r.result()["closed_at"])

	require.Equal(t, []WorkNote{
		{Table: "incident", SysID: sysID, At: "2026-12-01T10:02:03Z", Text: "first"},
		{Table: "incident", SysID: sysID, At: "2026-12-01T11:02:03Z", Text: "second\nline"},
	}, b.sim.WorkNotes())

	// Other tables: seeded records, their own inactive states.
	const chg = "c0ffee00c0ffee00c0ffee00c0ffee00"
	require.NoError(t, b.sim.AddRecord("change_request", chg, "CHG0031234"))
	r = b.call(t, "PATCH", "/api/now/table/change_request/"+chg, "application/json", `{"work_notes":"plan","state":"4"}`, "")
	require.Equal(t, http.StatusOK, r.status, r.raw)
	require.Equal(t, "CHG0031234", r.result()["number"])
	require.Equal(t, "false", r.result()["active"])
	require.Len(t, b.sim.WorkNotes(), 3)

	r = b.call(t, "PATCH", "/api/now/table/change_request/"+chg, "application/json", `{"work_notes":"   "}`, "")
	require.Equal(t, http.StatusOK, r.status)
	require.Len(t, b.sim.WorkNotes(), 3, "an empty journal entry is dropped")

	// The journal sorts before it limits: the latest entry of a record.
	latest := "/api/now/table/sys_journal_field?sysparm_fields=value&sysparm_limit=1&sysparm_query=" +
		url.QueryEscape("name=incident^element=work_notes^element_id="+sysID+"^ORDERBYDESCsys_created_on")
	r = b.call(t, "GET", latest, "", "", "")
	require.Equal(t, http.StatusOK, r.status, r.raw)
	require.Len(t, r.results(), 1)
	require.Equal(t, "second\nline", r.results()[0].(map[string]any)["value"])
}

func TestAddRecord(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const id = "0badf00d0badf00d0badf00d0badf00d"
	require.NoError(t, b.sim.AddRecord("sc_req_item", id, ""))
	require.Error(t, b.sim.AddRecord("sc_req_item", id, "RITM1"), "duplicate")
	require.Error(t, b.sim.AddRecord("sys_user", id, ""), "unknown table")
	require.Error(t, b.sim.AddRecord("change_request", "ABC", ""), "bad sys_id")
	r := b.call(t, "GET", "/api/now/table/sc_req_item/"+id, "", "", "")
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "RITM0010001", r.result()["number"])
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sim.SetRateLimit(3, time.Hour)
	for range 3 {
		require.Equal(t, http.StatusOK, b.call(t, "GET", "/api/now/table/incident", "", "", "").status)
	}
	r := b.call(t, "GET", "/api/now/table/incident", "", "", "")
	require.Equal(t, http.StatusTooManyRequests, r.status)
	after, err := strconv.Atoi(r.header.Get("Retry-After"))
	require.NoError(t, err)
	require.Greater(t, after, 0)
	require.LessOrEqual(t, after, 3600, "the seconds left of the rule's hour")
	require.Equal(t, 1, b.sim.RateLimited())

	b.sim.SetRateLimit(0, 0)
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/api/now/table/incident", "", "", "").status)
}

func TestFaults(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sim.FailNextMethod("POST", 1, http.StatusServiceUnavailable, "3")
	b.sim.FailNext(1, http.StatusTooManyRequests, "0")

	// The GET passes the POST-only fault and takes the 429.
	r := b.call(t, "GET", "/api/now/table/incident", "", "", "")
	require.Equal(t, http.StatusTooManyRequests, r.status)
	require.Equal(t, "0", r.header.Get("Retry-After"))
	msg, _ := r.errorBody()
	require.Equal(t, "Too many requests", msg)

	r = b.call(t, "POST", "/api/now/table/incident", "application/json", `{"short_description":"x"}`, "")
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	require.Equal(t, "3", r.header.Get("Retry-After"))
	require.True(t, strings.HasPrefix(r.raw, "<html>"), "a load balancer's page, not JSON")
	require.Empty(t, b.sim.Incidents())

	// A lost response: the record exists, the client got nothing.
	b.sim.LoseNextResponses("POST", 1)
	req, err := http.NewRequestWithContext(t.Context(), "POST", b.srv.URL+"/api/now/table/incident", strings.NewReader(`{"short_description":"lost"}`))
	require.NoError(t, err)
	req.SetBasicAuth(user, password)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.srv.Client().Do(req)
	if err == nil {
		resp.Body.Close()
	}
	require.Error(t, err)
	require.Len(t, b.sim.Incidents(), 1)
	require.Equal(t, "lost", b.sim.Incidents()[0].ShortDescription)

	// The request log is written when the handler returns, which may be
	// after the client saw the connection drop.
	require.Eventually(t, func() bool {
		reqs := b.sim.Requests()
		return len(reqs) == 3 && reqs[2].Status == 0
	}, 5*time.Second, 5*time.Millisecond, "a lost response is logged with status 0")
}

func TestParseQuery(t *testing.T) {
	t.Parallel()
	row := record{"number": "INC0010001", "state": "1"}
	tests := []struct {
		q     string
		ok    bool
		match bool
	}{
		{"", true, true},
		{"^", true, true},
		{"^^EQ", true, true},
		{"^OR", false, false},
		{"^ORnumber=1", false, false},
		{"=", false, false},
		{"a", false, false},
		{"Number=INC0010001", false, false},
		{"number=", true, false},
		{"numberISEMPTY", true, false},
		{"state<", true, false},
		{"^NQ^NQ", true, true},
		{"ORDERBYnumber", true, true},
		{"numberIN", true, false},
		{"state=2^ORstate=1", true, true},
		{"state=2^NQstate=1", true, true},
		{"state=1^state=2", true, false},
		{"number=inc0010001", true, true},
		{"number=INC0010001^ORnumber=x^state=1", true, true},
	}
	for _, tt := range tests {
		parsed, err := parseQuery(tt.q)
		if !tt.ok {
			require.Error(t, err, tt.q)
			continue
		}
		require.NoError(t, err, tt.q)
		require.Equal(t, tt.match, parsed.matches(row), tt.q)
	}
}
