package servicenow

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/servicenow/servicenowsim"
)

const (
	testUser     = "autopatch.integration"
	testPassword = `p@ss"word^OR=1`
	testClientID = "3f1c0a9e2b7d4c6f8a1e5b9d0c2f4a6e"
	testSecret   = "client-secret"
)

// fakeClock is a settable clock shared by the simulator and the client, so
// tokens expire without anybody sleeping.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type testBundle struct {
	sim    *servicenowsim.Server
	srv    *httptest.Server
	client *Client
	clock  *fakeClock

	mu     sync.Mutex
	sleeps []time.Duration
}

// Sleeps returns the waits the client asked for between retries.
func (b *testBundle) Sleeps() []time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]time.Duration(nil), b.sleeps...)
}

// countRequests counts the simulator's requests with method and path.
func (b *testBundle) countRequests(method, path string) int {
	n := 0
	for _, r := range b.sim.Requests() {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

type setupOpts struct {
	oauth      bool
	simOpts    func(*servicenowsim.Options)
	config     func(*Config)
	realSleeps bool
}

func setup(t *testing.T, o setupOpts) *testBundle {
	t.Helper()
	clock := &fakeClock{now: time.Date(2026, 12, 12, 20, 0, 0, 0, time.UTC)}
	simOpts := servicenowsim.Options{User: testUser, Password: testPassword, Clock: clock.Now}
	if o.oauth {
		simOpts.OAuthClientID, simOpts.OAuthClientSecret = testClientID, testSecret
	}
	if o.simOpts != nil {
		o.simOpts(&simOpts)
	}
	sim := servicenowsim.New(simOpts)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)

	cfg := Config{
		URL: srv.URL, User: testUser, Password: testPassword,
		Timeout: 5 * time.Second, RetryBaseDelay: time.Millisecond, RetryMaxDelay: time.Minute,
		Clock: clock.Now,
	}
	if o.oauth {
		cfg.OAuthClientID, cfg.OAuthClientSecret = testClientID, testSecret
	}
	if o.config != nil {
		o.config(&cfg)
	}
	client, err := New(cfg, srv.Client(), nil)
	require.NoError(t, err)

	b := &testBundle{sim: sim, srv: srv, client: client, clock: clock}
	if !o.realSleeps {
		client.sleep = func(ctx context.Context, d time.Duration) error {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.sleeps = append(b.sleeps, d)
			return ctx.Err()
		}
		client.jitter = func(d time.Duration) time.Duration { return d }
	}
	return b
}

func testIncident(correlationID string) Incident {
	return Incident{
		ShortDescription: "SQL01 failed to patch in CHG0031234",
		Description:      "Deployment AP-CHG0031234-DB-SAT-0200-2026-12 Servers: error 0x80240022",
		CMDBCI:           "9d3a4f7c1b2e4a6d8c0f1e3b5a7d9c2e",
		AssignmentGroup:  "287ebd7da9fe198100f92cc8d1d2154e",
		Urgency:          2,
		Impact:           3,
		CorrelationID:    correlationID,
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	base := Config{URL: "https://example.service-now.com", User: "u", Password: "p"}
	tests := []struct {
		name   string
		modify func(*Config)
		ok     bool
	}{
		{"Basic", func(*Config) {}, true},
		{"OAuth", func(c *Config) { c.OAuthClientID, c.OAuthClientSecret = "id", "secret" }, true},
		{"TrailingSlash", func(c *Config) { c.URL += "/" }, true},
		{"NoURL", func(c *Config) { c.URL = "" }, false},
		{"RelativeURL", func(c *Config) { c.URL = "example.service-now.com" }, false},
		{"FTP", func(c *Config) { c.URL = "ftp://example.service-now.com" }, false},
		{"URLWithQuery", func(c *Config) { c.URL += "/?x=1" }, false},
		{"URLWithUserInfo", func(c *Config) { c.URL = "https://u:p@example.service-now.com" }, false},
		{"NoUser", func(c *Config) { c.User = "" }, false},
		{"NoPassword", func(c *Config) { c.Password = "" }, false},
		{"OAuthIDWithoutSecret", func(c *Config) { c.OAuthClientID = "id" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := base
			tt.modify(&cfg)
			c, err := New(cfg, nil, nil)
			if tt.ok {
				require.NoError(t, err)
				require.NotNil(t, c)
				return
			}
			require.ErrorIs(t, err, ErrInvalid)
			require.ErrorContains(t, err, "servicenow: ")
			require.NotContains(t, err.Error(), ":p@", "no password in the message")
		})
	}
}

func TestCreateIncident(t *testing.T) {
	t.Parallel()

	t.Run("CreatesWithFields", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		inc := testIncident(CorrelationID("CHG0031234", "SQL01"))
		ref, err := b.client.CreateIncident(t.Context(), inc)
		require.NoError(t, err)

		got := b.sim.Incidents()
		require.Len(t, got, 1)
		require.Equal(t, Ref{Number: got[0].Number, SysID: got[0].SysID}, ref)
		require.Regexp(t, `^INC\d{7}$`, ref.Number)
		require.Equal(t, servicenowsim.Incident{
			Number: ref.Number, SysID: ref.SysID,
			CorrelationID: "autopatch:CHG0031234:SQL01", State: "1",
			ShortDescription: inc.ShortDescription, Description: inc.Description,
			CMDBCI: inc.CMDBCI, AssignmentGroup: inc.AssignmentGroup,
			Urgency: "2", Impact: "3", Active: true,
		}, got[0])

		// The guard's look-up went first, with the documented query.
		reqs := b.sim.Requests()
		require.Len(t, reqs, 2)
		require.Equal(t, http.MethodGet, reqs[0].Method)
		q, err := url.ParseQuery(reqs[0].Query)
		require.NoError(t, err)
		require.Equal(t, "correlation_id=autopatch:CHG0031234:SQL01^active=true^state<6^ORDERBYsys_created_on", q.Get("sysparm_query"))
		require.Equal(t, "1", q.Get("sysparm_limit"))
		require.Equal(t, http.MethodPost, reqs[1].Method)
	})

	t.Run("SecondCreateReturnsTheSameIncident", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		inc := testIncident(CorrelationID("CHG0031234", "SQL02"))
		// A job that crashed after the POST and before storing the number
		// runs again: the second call must find the first incident.
		first, err := b.client.CreateIncident(t.Context(), inc)
		require.NoError(t, err)
		second, err := b.client.CreateIncident(t.Context(), inc)
		require.NoError(t, err)
		require.Equal(t, first, second)
		require.Len(t, b.sim.Incidents(), 1)
		require.Equal(t, 1, b.countRequests(http.MethodPost, "/api/now/table/incident"))

		found, ok, err := b.client.FindIncidentByCorrelation(t.Context(), inc.CorrelationID)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, first, found)
	})

	t.Run("LostPOSTAnswerIsNotADuplicate", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		b.sim.LoseNextResponses(http.MethodPost, 1)
		ref, err := b.client.CreateIncident(t.Context(), testIncident("autopatch:CHG0031234:APP01"))
		require.NoError(t, err)
		got := b.sim.Incidents()
		require.Len(t, got, 1, "the retry must find the incident the lost POST created")
		require.Equal(t, got[0].SysID, ref.SysID)
		require.Equal(t, 1, b.countRequests(http.MethodPost, "/api/now/table/incident"))
		require.Equal(t, 2, b.countRequests(http.MethodGet, "/api/now/table/incident"))
	})

	t.Run("LookedUpSkipsTheFirstLookUpNotTheRetrys", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		inc := testIncident("autopatch:CHG0031234:APP02")
		inc.LookedUp = true
		b.sim.LoseNextResponses(http.MethodPost, 1)
		ref, err := b.client.CreateIncident(t.Context(), inc)
		require.NoError(t, err)
		got := b.sim.Incidents()
		require.Len(t, got, 1, "the retry looks up and finds what the lost POST created")
		require.Equal(t, got[0].SysID, ref.SysID)
		require.Equal(t, 1, b.countRequests(http.MethodPost, "/api/now/table/incident"))
		require.Equal(t, 1, b.countRequests(http.MethodGet, "/api/now/table/incident"), "the retry's look-up only")
	})

	t.Run("FindManyInFewRequests", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		var ids []string
		want := map[string]Ref{}
		for i := range 150 {
			id := CorrelationID("CHG0031234", fmt.Sprintf("SRV%05d", i))
			ids = append(ids, id)
			if i%3 == 0 {
				ref, err := b.client.CreateIncident(t.Context(), testIncident(id))
				require.NoError(t, err)
				want[id] = ref
			}
		}
		before := b.countRequests(http.MethodGet, "/api/now/table/incident")
		// Different case, a hostile id (looked up on its own), a repeat.
		ids = append(ids, strings.ToUpper(ids[3]), "autopatch:CHG0031234:a^b", ids[0])
		found, err := b.client.FindIncidentsByCorrelation(t.Context(), ids)
		require.NoError(t, err)
		want[strings.ToUpper(ids[3])] = want[ids[3]]
		require.Equal(t, want, found)
		require.Equal(t, 3, b.countRequests(http.MethodGet, "/api/now/table/incident")-before,
			"150 ids in two pages of 100, the hostile one alone")
	})

	t.Run("POSTRetriedAfter503", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		b.sim.FailNextMethod(http.MethodPost, 2, http.StatusServiceUnavailable, "")
		ref, err := b.client.CreateIncident(t.Context(), testIncident("autopatch:CHG0031234:WEB01"))
		require.NoError(t, err)
		require.Len(t, b.sim.Incidents(), 1)
		require.Equal(t, b.sim.Incidents()[0].SysID, ref.SysID)
		// Three POSTs, each after its own look-up.
		require.Equal(t, 3, b.countRequests(http.MethodPost, "/api/now/table/incident"))
		require.Equal(t, 3, b.countRequests(http.MethodGet, "/api/now/table/incident"))
		require.Equal(t, []time.Duration{time.Millisecond, 2 * time.Millisecond}, b.Sleeps())
	})

	t.Run("ResolvedIncidentIsNotReused", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		inc := testIncident("autopatch:CHG0031234:SQL03")
		first, err := b.client.CreateIncident(t.Context(), inc)
		require.NoError(t, err)
		require.NoError(t, b.client.ResolveIncident(t.Context(), first.SysID, "SQL03 patched in a later window."))
		// The device fails again: a new incident, not the resolved one.
		second, err := b.client.CreateIncident(t.Context(), inc)
		require.NoError(t, err)
		require.NotEqual(t, first.SysID, second.SysID)
		require.Len(t, b.sim.Incidents(), 2)
	})

	t.Run("Refusals", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		tests := []struct {
			name   string
			modify func(*Incident)
		}{
			{"EmptyCorrelationID", func(i *Incident) { i.CorrelationID = "" }},
			{"TooLongCorrelationID", func(i *Incident) { i.CorrelationID = "autopatch:" + string(make([]byte, 91)) }},
			{"CorrelationIDStartsWithCaret", func(i *Incident) { i.CorrelationID = "^ORactive=false" }},
			{"InvalidUTF8", func(i *Incident) { i.CorrelationID = "autopatch:\xff" }},
			{"EmptyShortDescription", func(i *Incident) { i.ShortDescription = " " }},
			{"UrgencyOutOfRange", func(i *Incident) { i.Urgency = 4 }},
		}
		for _, tt := range tests {
			inc := testIncident("autopatch:CHG0031234:SQL01")
			tt.modify(&inc)
			_, err := b.client.CreateIncident(t.Context(), inc)
			require.ErrorIs(t, err, ErrInvalid, tt.name)
		}
		require.Empty(t, b.sim.Requests(), "nothing is sent for a refused call")
	})
}

func TestHostileValuesRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	ids := []string{
		`autopatch:CHG0031234:SQL01^ORactive=false`,
		`autopatch:CHG0031234:a"b'c`,
		"autopatch:CHG0031234:line1\nline2\r\n",
		`autopatch:CHG0031234:x^NQcorrelation_idISNOTEMPTY`,
		"autopatch:CHG0031234:Ünïcødé-服务器-🙂",
		`autopatch:CHG0031234:a=b&c=d%20e+f,g`,
		`autopatch:CHG0031234:tab	space ORDERBYnumber`,
	}
	texts := []string{"quote \" apostrophe ' caret ^ newline \n end", "<script>alert(1)</script> & ümlaut 🙂"}
	refs := map[string]Ref{}
	for i, id := range ids {
		inc := testIncident(id)
		inc.ShortDescription = texts[i%len(texts)]
		inc.Description = texts[(i+1)%len(texts)] + id
		ref, err := b.client.CreateIncident(t.Context(), inc)
		require.NoError(t, err, id)
		refs[id] = ref
	}

	// Stored exactly, each its own incident.
	got := b.sim.Incidents()
	require.Len(t, got, len(ids))
	for i, id := range ids {
		var match []servicenowsim.Incident
		for _, g := range got {
			if g.CorrelationID == id {
				match = append(match, g)
			}
		}
		require.Len(t, match, 1, id)
		require.Equal(t, refs[id].SysID, match[0].SysID)
		require.Equal(t, texts[i%len(texts)], match[0].ShortDescription)
		require.Equal(t, texts[(i+1)%len(texts)]+id, match[0].Description)
	}

	// Found again exactly, and creating again returns the same incident.
	for _, id := range ids {
		ref, ok, err := b.client.FindIncidentByCorrelation(t.Context(), id)
		require.NoError(t, err, id)
		require.True(t, ok, id)
		require.Equal(t, refs[id], ref, id)
		again, err := b.client.CreateIncident(t.Context(), testIncident(id))
		require.NoError(t, err)
		require.Equal(t, refs[id], again)
	}
	require.Len(t, b.sim.Incidents(), len(ids))

	// A hostile id that would match another incident if its ^OR reached
	// the query matches nothing (the simulator implements ^OR and ^NQ).
	for _, id := range []string{
		"autopatch:CHG0031234:none^ORcorrelation_idSTARTSWITHautopatch",
		"autopatch:CHG0031234:none^NQactive=true",
	} {
		_, ok, err := b.client.FindIncidentByCorrelation(t.Context(), id)
		require.NoError(t, err)
		require.False(t, ok, id)
	}
	for _, r := range b.sim.Requests() {
		if r.Method != http.MethodGet {
			continue
		}
		q, err := url.ParseQuery(r.Query)
		require.NoError(t, err)
		// Only the client's own separators: ^active, ^state, ^ORDERBY.
		require.Regexp(t, `^correlation_id(=|STARTSWITH)[\p{L}\p{N}.\-_:@/#]+\^active=true\^state<6\^ORDERBYsys_created_on$`, q.Get("sysparm_query"))
	}
}

func TestCorrelationID(t *testing.T) {
	t.Parallel()
	require.Equal(t, "autopatch:CHG0031234:SQL01", CorrelationID("CHG0031234", "SQL01"))

	long := "web-frontend-0001.emea.production.datacenter-one.corp.example.com.very-long-suffix.example"
	a := CorrelationID("CHG0031234", long+".a")
	b := CorrelationID("CHG0031234", long+".b")
	require.Len(t, []rune(a), MaxCorrelationIDLen)
	require.Len(t, []rune(b), MaxCorrelationIDLen)
	require.NotEqual(t, a, b, "ids sharing a long prefix stay distinct")
	require.Equal(t, a, CorrelationID("CHG0031234", long+".a"), "deterministic")
	require.Regexp(t, `^autopatch:CHG0031234:web-frontend.*~[0-9a-f]{8}$`, a)

	// Counted in characters, as the field's length is, not in bytes.
	uni := CorrelationID("CHG0031234", strings.Repeat("服", 120))
	require.Len(t, []rune(uni), MaxCorrelationIDLen)
	require.NoError(t, checkCorrelationID(uni))
	require.Equal(t, "autopatch:CHG0031234:"+strings.Repeat("服", 70), CorrelationID("CHG0031234", strings.Repeat("服", 70)))
}

func TestResolveIncident(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{config: func(c *Config) { c.CloseCode = "Solved (Permanently)" }})
	ref, err := b.client.CreateIncident(t.Context(), testIncident("autopatch:CHG0031234:SQL02"))
	require.NoError(t, err)

	require.NoError(t, b.client.ResolveIncident(t.Context(), ref.SysID, "SQL02 installed every update in window 2."))
	got := b.sim.Incidents()[0]
	require.Equal(t, "6", got.State)
	require.Equal(t, "Solved (Permanently)", got.CloseCode)
	require.Equal(t, "SQL02 installed every update in window 2.", got.CloseNotes)

	rec, err := b.client.GetIncident(t.Context(), ref.SysID)
	require.NoError(t, err)
	require.Equal(t, ref, rec.Ref)
	require.Equal(t, "6", rec.State)
	require.False(t, rec.Open())

	// Again: no second PATCH, and a person's notes are not overwritten.
	patches := b.countRequests(http.MethodPatch, "/api/now/table/incident/"+ref.SysID)
	require.NoError(t, b.client.ResolveIncident(t.Context(), ref.SysID, "other notes"))
	require.Equal(t, patches, b.countRequests(http.MethodPatch, "/api/now/table/incident/"+ref.SysID))
	require.Equal(t, "SQL02 installed every update in window 2.", b.sim.Incidents()[0].CloseNotes)

	// The data policy the resolve fields satisfy is really there.
	ref2, err := b.client.CreateIncident(t.Context(), testIncident("autopatch:CHG0031234:SQL04"))
	require.NoError(t, err)
	err = b.client.UpdateIncident(t.Context(), ref2.SysID, map[string]string{"state": "6"})
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusForbidden, apiErr.Status)
	require.Contains(t, apiErr.Detail, "Data Policy Exception")

	require.NoError(t, b.client.UpdateIncident(t.Context(), ref2.SysID, map[string]string{"urgency": "1", "impact": "1"}))
	rec, err = b.client.GetIncident(t.Context(), ref2.SysID)
	require.NoError(t, err)
	require.True(t, rec.Open())

	_, err = b.client.GetIncident(t.Context(), "0123456789abcdef0123456789abcdef")
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorIs(t, b.client.ResolveIncident(t.Context(), "0123456789abcdef0123456789abcdef", "x"), ErrNotFound)
	require.ErrorIs(t, b.client.ResolveIncident(t.Context(), ref2.SysID, " "), ErrInvalid)
}

func TestAddWorkNote(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	const chg, ritm = "c0ffee00c0ffee00c0ffee00c0ffee00", "0badf00d0badf00d0badf00d0badf00d"
	require.NoError(t, b.sim.AddRecord(TableChangeRequest, chg, "CHG0031234"))
	require.NoError(t, b.sim.AddRecord(TableRequestItem, ritm, "RITM0010001"))

	notes := []struct{ table, sysID, text string }{
		{TableChangeRequest, chg, "Plan:\n- DB-SAT-0200: 2026-12-12 02:00 → 06:00 Europe/London"},
		{TableRequestItem, ritm, "SQL01 moved to DB-SAT-0200 (Patch - DB - Sat 02:00)."},
		{TableChangeRequest, chg, "Window DB-SAT-0200 opened; quote \" caret ^ ümlaut."},
	}
	for _, n := range notes {
		require.NoError(t, b.client.AddWorkNote(t.Context(), n.table, n.sysID, n.text))
		b.clock.Advance(time.Minute)
	}
	got := b.sim.WorkNotes()
	require.Len(t, got, len(notes))
	start := time.Date(2026, 12, 12, 20, 0, 0, 0, time.UTC)
	for i, n := range notes {
		require.Equal(t, servicenowsim.WorkNote{
			Table: n.table, SysID: n.sysID, Text: n.text,
			At: start.Add(time.Duration(i) * time.Minute).Format(time.RFC3339),
		}, got[i])
	}

	// A retried note looks itself up in sys_journal_field first.
	for _, n := range notes {
		has, err := b.client.HasWorkNote(t.Context(), n.table, n.sysID, n.text)
		require.NoError(t, err)
		require.True(t, has, "%s on %s", n.text, n.table)
	}
	has, err := b.client.HasWorkNote(t.Context(), TableChangeRequest, chg, "never written")
	require.NoError(t, err)
	require.False(t, has)
	has, err = b.client.HasWorkNote(t.Context(), TableRequestItem, ritm, notes[0].text)
	require.NoError(t, err)
	require.False(t, has, "a note on another record is not this record's")

	// Not parallel: it counts the simulator's requests, and the subtests
	// below make some of their own.
	t.Run("Refusals", func(t *testing.T) {
		before := len(b.sim.Requests())
		require.ErrorIs(t, b.client.AddWorkNote(t.Context(), "sys_user", chg, "x"), ErrInvalid)
		require.ErrorIs(t, b.client.AddWorkNote(t.Context(), TableChangeRequest, "../incident/"+chg[:20], "x"), ErrInvalid)
		require.ErrorIs(t, b.client.AddWorkNote(t.Context(), TableChangeRequest, chg, "  \n"), ErrInvalid)
		require.Len(t, b.sim.Requests(), before)
	})

	t.Run("UnknownRecord", func(t *testing.T) {
		t.Parallel()
		err := b.client.AddWorkNote(t.Context(), TableRequestItem, "ffffffffffffffffffffffffffffffff", "x")
		require.ErrorIs(t, err, ErrNotFound)
		var apiErr *APIError
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, "No Record found", apiErr.Message)
		require.ErrorContains(t, err, "servicenow: add work note to sc_req_item ffffffffffffffffffffffffffffffff: HTTP 404")
	})
}

func TestRetries(t *testing.T) {
	t.Parallel()
	const sysID = "c0ffee00c0ffee00c0ffee00c0ffee00"
	patchPath := "/api/now/table/change_request/" + sysID

	tests := []struct {
		name       string
		faults     func(*servicenowsim.Server)
		maxRetries int
		wantErr    []error
		wantSleeps []time.Duration
		wantSent   int
	}{
		{
			name:       "429RetryAfterZero",
			faults:     func(s *servicenowsim.Server) { s.FailNext(2, http.StatusTooManyRequests, "0") },
			wantSleeps: []time.Duration{0, 0},
			wantSent:   3,
		},
		{
			name:       "429RetryAfterSeconds",
			faults:     func(s *servicenowsim.Server) { s.FailNext(1, http.StatusTooManyRequests, "7") },
			wantSleeps: []time.Duration{7 * time.Second},
			wantSent:   2,
		},
		{
			name: "429RetryAfterDate",
			faults: func(s *servicenowsim.Server) {
				at := time.Date(2026, 12, 12, 20, 0, 42, 0, time.UTC) // the fake clock + 42 s
				s.FailNext(1, http.StatusTooManyRequests, at.Format(http.TimeFormat))
			},
			wantSleeps: []time.Duration{42 * time.Second},
			wantSent:   2,
		},
		{
			name: "5xxBackoff",
			faults: func(s *servicenowsim.Server) {
				s.FailNext(1, http.StatusServiceUnavailable, "")
				s.FailNext(1, http.StatusBadGateway, "")
				s.FailNext(1, http.StatusInternalServerError, "")
			},
			wantSleeps: []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond},
			wantSent:   4,
		},
		{
			name:       "GivesUpAfterMaxRetries503",
			faults:     func(s *servicenowsim.Server) { s.FailNext(10, http.StatusServiceUnavailable, "") },
			maxRetries: 2,
			wantErr:    []error{},
			wantSleeps: []time.Duration{time.Millisecond, 2 * time.Millisecond},
			wantSent:   3,
		},
		{
			name:       "GivesUpAfterMaxRetries429",
			faults:     func(s *servicenowsim.Server) { s.FailNext(10, http.StatusTooManyRequests, "1") },
			maxRetries: 3,
			wantErr:    []error{ErrRateLimited},
			wantSleeps: []time.Duration{time.Second, time.Second, time.Second},
			wantSent:   4,
		},
		{
			name:       "RetryAfterBeyondMaxDelayStopsAtOnce",
			faults:     func(s *servicenowsim.Server) { s.FailNext(1, http.StatusTooManyRequests, "3600") },
			wantErr:    []error{ErrRateLimited},
			wantSleeps: nil,
			wantSent:   1,
		},
		{
			name:       "NoRetriesWhenDisabled",
			faults:     func(s *servicenowsim.Server) { s.FailNext(1, http.StatusServiceUnavailable, "") },
			maxRetries: -1,
			wantErr:    []error{},
			wantSent:   1,
		},
		{
			name:     "400IsNotRetried",
			faults:   func(s *servicenowsim.Server) { s.FailNext(1, http.StatusBadRequest, "") },
			wantErr:  []error{},
			wantSent: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOpts{config: func(c *Config) { c.MaxRetries = tt.maxRetries }})
			require.NoError(t, b.sim.AddRecord(TableChangeRequest, sysID, ""))
			tt.faults(b.sim)
			err := b.client.AddWorkNote(t.Context(), TableChangeRequest, sysID, "note")
			require.Equal(t, tt.wantSleeps, b.Sleeps())
			require.Equal(t, tt.wantSent, b.countRequests(http.MethodPatch, patchPath))
			if tt.wantErr == nil {
				require.NoError(t, err)
				require.Len(t, b.sim.WorkNotes(), 1)
				return
			}
			require.Error(t, err)
			require.ErrorContains(t, err, "servicenow: add work note")
			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr)
			for _, want := range tt.wantErr {
				require.ErrorIs(t, err, want)
			}
			require.Empty(t, b.sim.WorkNotes())
		})
	}

	t.Run("RetryAfterIsKeptForSnoozing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		require.NoError(t, b.sim.AddRecord(TableChangeRequest, sysID, ""))
		b.sim.FailNext(1, http.StatusTooManyRequests, "3600")
		err := b.client.AddWorkNote(t.Context(), TableChangeRequest, sysID, "note")
		var apiErr *APIError
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, time.Hour, apiErr.RetryAfter)
		require.Equal(t, "Too many requests", apiErr.Message)
	})

	t.Run("RetryAfterBeyondDeadlineStopsAtOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		require.NoError(t, b.sim.AddRecord(TableChangeRequest, sysID, ""))
		b.sim.FailNext(1, http.StatusTooManyRequests, "20")
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		err := b.client.AddWorkNote(ctx, TableChangeRequest, sysID, "note")
		require.ErrorIs(t, err, ErrRateLimited)
		require.Empty(t, b.Sleeps(), "no point waiting past the caller's deadline")
	})

	t.Run("HTMLErrorBody", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{config: func(c *Config) { c.MaxRetries = -1 }})
		b.sim.FailNext(1, http.StatusBadGateway, "")
		_, _, err := b.client.FindIncidentByCorrelation(t.Context(), "autopatch:x")
		var apiErr *APIError
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusBadGateway, apiErr.Status)
		require.Equal(t, "Bad Gateway", apiErr.Message)
		require.Empty(t, apiErr.Detail)
	})

	t.Run("RealSleeps", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{realSleeps: true})
		require.NoError(t, b.sim.AddRecord(TableChangeRequest, sysID, ""))
		b.sim.FailNext(1, http.StatusTooManyRequests, "0")
		b.sim.FailNext(1, http.StatusServiceUnavailable, "")
		require.NoError(t, b.client.AddWorkNote(t.Context(), TableChangeRequest, sysID, "note"))
		require.Len(t, b.sim.WorkNotes(), 1)
	})

	t.Run("TransportError", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{config: func(c *Config) { c.MaxRetries = 2 }})
		b.srv.Close()
		err := b.client.AddWorkNote(t.Context(), TableChangeRequest, sysID, "note")
		require.ErrorIs(t, err, ErrTransport)
		require.ErrorContains(t, err, "giving up after 3 attempts")
		require.Len(t, b.Sleeps(), 2)
		require.NotContains(t, err.Error(), testPassword)
	})

	t.Run("CanceledWhileWaiting", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{realSleeps: true, config: func(c *Config) { c.RetryBaseDelay = time.Hour; c.RetryMaxDelay = time.Hour }})
		require.NoError(t, b.sim.AddRecord(TableChangeRequest, sysID, ""))
		b.sim.FailNext(1, http.StatusServiceUnavailable, "")
		waiting := make(chan struct{})
		b.client.sleep = func(ctx context.Context, d time.Duration) error {
			close(waiting)
			return sleepCtx(ctx, d) // an hour, unless canceled
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- b.client.AddWorkNote(ctx, TableChangeRequest, sysID, "note") }()
		<-waiting
		cancel()
		err := <-done
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, 1, b.countRequests(http.MethodPatch, patchPath))
	})
}

func TestAuthentication(t *testing.T) {
	t.Parallel()

	t.Run("BasicWrongPassword", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{config: func(c *Config) { c.Password = "wrong" }})
		_, err := b.client.CreateIncident(t.Context(), testIncident("autopatch:CHG0031234:SQL01"))
		require.ErrorIs(t, err, ErrUnauthorized)
		var apiErr *APIError
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, "User Not Authenticated", apiErr.Message)
		require.Len(t, b.sim.Requests(), 1, "a 401 is not retried")
		require.Empty(t, b.sim.Incidents())
	})

	t.Run("OAuthTokenReused", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{oauth: true})
		for i := range 3 {
			_, err := b.client.CreateIncident(t.Context(), testIncident(CorrelationID("CHG0031234", string(rune('A'+i)))))
			require.NoError(t, err)
		}
		require.Equal(t, map[string]int{"password": 1}, grants(b.sim))
	})

	t.Run("OAuthRefreshBeforeExpiry", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{oauth: true, simOpts: func(o *servicenowsim.Options) { o.TokenTTL = 10 * time.Minute }})
		_, _, err := b.client.FindIncidentByCorrelation(t.Context(), "autopatch:x")
		require.NoError(t, err)
		// 9m30s: the token has 30 s left, inside the renewal margin (60 s).
		b.clock.Advance(9*time.Minute + 30*time.Second)
		_, _, err = b.client.FindIncidentByCorrelation(t.Context(), "autopatch:x")
		require.NoError(t, err)
		require.Equal(t, map[string]int{"password": 1, "refresh_token": 1}, grants(b.sim))
		for _, r := range b.sim.Requests() {
			require.NotEqual(t, http.StatusUnauthorized, r.Status, "renewed before the instance refused it")
		}
	})

	t.Run("OAuthRefreshAfter401", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{oauth: true})
		_, _, err := b.client.FindIncidentByCorrelation(t.Context(), "autopatch:x")
		require.NoError(t, err)
		b.sim.RevokeAccessTokens()
		_, err = b.client.CreateIncident(t.Context(), testIncident("autopatch:CHG0031234:SQL01"))
		require.NoError(t, err)
		require.Equal(t, map[string]int{"password": 1, "refresh_token": 1}, grants(b.sim))
		require.Len(t, b.sim.Incidents(), 1)
	})

	t.Run("OAuthExpiredRefreshFallsBackToPassword", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{oauth: true, simOpts: func(o *servicenowsim.Options) {
			o.TokenTTL = time.Minute
			o.RefreshTokenTTL = 2 * time.Minute
		}})
		_, _, err := b.client.FindIncidentByCorrelation(t.Context(), "autopatch:x")
		require.NoError(t, err)
		b.clock.Advance(3 * time.Minute)
		_, _, err = b.client.FindIncidentByCorrelation(t.Context(), "autopatch:x")
		require.NoError(t, err)
		require.Equal(t, map[string]int{"password": 2, "refresh_token:refused": 1}, grants(b.sim))
	})

	t.Run("OAuthWrongClientSecret", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{oauth: true, config: func(c *Config) { c.OAuthClientSecret = "wrong" }})
		_, err := b.client.CreateIncident(t.Context(), testIncident("autopatch:CHG0031234:SQL01"))
		require.ErrorIs(t, err, ErrUnauthorized)
		require.NotContains(t, err.Error(), "wrong")
		require.NotContains(t, err.Error(), testPassword)
		require.Len(t, b.sim.Requests(), 1, "nothing but the refused grant")
		require.Equal(t, map[string]int{"password:refused": 1}, grants(b.sim))
	})

	t.Run("OAuthConcurrentCallersShareOneToken", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{oauth: true})
		var wg sync.WaitGroup
		errs := make(chan error, 10)
		for range 10 {
			wg.Go(func() {
				_, _, err := b.client.FindIncidentByCorrelation(t.Context(), "autopatch:x")
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.Equal(t, map[string]int{"password": 1}, grants(b.sim))
	})

	t.Run("OAuthTokenEndpointUnavailableIsRetried", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{oauth: true})
		// The token endpoint is not behind FailNext; kill it with a proxy
		// that answers 503 for the first token request.
		var once sync.Once
		proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			failed := false
			if r.URL.Path == "/oauth_token.do" {
				once.Do(func() { failed = true })
			}
			if failed {
				http.Error(w, "unavailable", http.StatusServiceUnavailable)
				return
			}
			b.sim.ServeHTTP(w, r)
		}))
		t.Cleanup(proxy.Close)
		client, err := New(Config{
			URL: proxy.URL, User: testUser, Password: testPassword,
			OAuthClientID: testClientID, OAuthClientSecret: testSecret,
			RetryBaseDelay: time.Millisecond, Clock: b.clock.Now,
		}, proxy.Client(), nil)
		require.NoError(t, err)
		_, _, err = client.FindIncidentByCorrelation(t.Context(), "autopatch:x")
		require.NoError(t, err)
		require.Equal(t, map[string]int{"password": 1}, grants(b.sim))
	})
}

// grants counts the token requests by grant type, with ":refused" after a
// grant the simulator refused.
func grants(sim *servicenowsim.Server) map[string]int {
	out := map[string]int{}
	for _, r := range sim.Requests() {
		if r.Path != "/oauth_token.do" {
			continue
		}
		key := r.Grant
		if r.Status != http.StatusOK {
			key += ":refused"
		}
		out[key]++
	}
	return out
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 12, 20, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{" 5 ", 5 * time.Second, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"99999999999999", 24 * time.Hour, true},
	}
	for _, tt := range tests {
		got, ok := parseRetryAfter(tt.in, now)
		require.Equal(t, tt.wantOK, ok, tt.in)
		require.Equal(t, tt.want, got, tt.in)
	}
}

func TestAPIErrorIs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status int
		is     error
	}{
		{http.StatusUnauthorized, ErrUnauthorized},
		{http.StatusForbidden, ErrUnauthorized},
		{http.StatusNotFound, ErrNotFound},
		{http.StatusTooManyRequests, ErrRateLimited},
	}
	all := []error{ErrUnauthorized, ErrNotFound, ErrRateLimited, ErrTransport, ErrInvalid}
	for _, tt := range tests {
		err := error(&APIError{Status: tt.status})
		for _, target := range all {
			require.Equal(t, target == tt.is, errors.Is(err, target), "%d %v", tt.status, target)
		}
	}
}
