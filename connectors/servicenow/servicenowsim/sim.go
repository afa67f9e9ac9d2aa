// Package servicenowsim is a small ServiceNow instance: the subset of the
// Table API and of /oauth_token.do that autopatch uses, with the behaviour of
// a real instance where autopatch depends on it (status codes, JSON error
// bodies, journal fields, encoded queries, reference fields, data policy on
// resolve). It backs the connector's tests, `autopatch sim` and the demo.
//
// Tables: incident, change_request and sc_req_item. Records are created by
// POST (numbers INC0010001…, CHG0030001…, RITM0010001…) or seeded with
// AddRecord; an unknown sys_id is a 404 as on an instance.
//
// Deliberate simplifications, each documented where it is implemented:
// sysparm_display_value is ignored (values are always returned), and an
// encoded query with an operator the simulator does not know is refused with
// 400 instead of being silently ignored, so a wrong query fails a test.
package servicenowsim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configures a Server. The zero value serves Basic authentication
// with no valid user (every request is a 401), so set User and Password.
type Options struct {
	// User and Password are the one integration user accepted with Basic
	// authentication and by the OAuth password grant.
	User, Password string
	// OAuthClientID and OAuthClientSecret enable /oauth_token.do and bearer
	// tokens (Basic keeps working, as on an instance). Empty disables OAuth.
	OAuthClientID, OAuthClientSecret string
	// TokenTTL is the lifetime of an access token; zero means 30 minutes,
	// ServiceNow's default. Tests make it short to exercise refresh.
	TokenTTL time.Duration
	// RefreshTokenTTL is the lifetime of a refresh token; zero means 100
	// days, ServiceNow's default.
	RefreshTokenTTL time.Duration
	// Clock returns the current time; nil means time.Now. Tests pass a
	// settable clock to expire tokens without sleeping.
	Clock func() time.Time
	// Logger receives one debug line per request; nil discards.
	Logger *slog.Logger
}

// Incident is an incident as the simulated estate's /state shows it
// (docs/architecture.md §4.5); the fields after ShortDescription are extras.
type Incident struct {
	Number           string `json:"number"`
	SysID            string `json:"sys_id"`
	CorrelationID    string `json:"correlation_id"`
	State            string `json:"state"`
	ShortDescription string `json:"short_description"`
	Description      string `json:"description,omitempty"`
	CMDBCI           string `json:"cmdb_ci,omitempty"`
	AssignmentGroup  string `json:"assignment_group,omitempty"`
	Urgency          string `json:"urgency,omitempty"`
	Impact           string `json:"impact,omitempty"`
	Active           bool   `json:"active"`
	CloseCode        string `json:"close_code,omitempty"`
	CloseNotes       string `json:"close_notes,omitempty"`
}

// WorkNote is one journal entry of a work_notes field, as /state shows it.
type WorkNote struct {
	Table string `json:"table"`
	SysID string `json:"sys_id"`
	// At is RFC 3339 in UTC.
	At   string `json:"at"`
	Text string `json:"text"`
}

// Request is one request the server answered, for assertions in tests.
// It never holds credentials or bodies.
type Request struct {
	Method string
	Path   string
	// Query is the raw (still percent-encoded) query string.
	Query string
	// Grant is the grant_type of an /oauth_token.do request.
	Grant string
	// Status is the status sent, 0 when the response was deliberately lost.
	Status int
}

// Server is the simulated instance; it is an http.Handler and safe for
// concurrent use.
type Server struct {
	opts   Options
	now    func() time.Time
	logger *slog.Logger
	mux    *http.ServeMux

	mu       sync.Mutex
	tables   map[string]*table
	journal  []journalEntry
	access   map[string]time.Time // access token → expiry
	refresh  map[string]time.Time // refresh token → expiry
	faults   []fault
	limit    rateLimit
	lose     []string // methods of the responses to lose, "" for any
	requests []Request
	perms    perms // roles and read ACLs of the integration user; see access.go
}

// rateLimit is a rate limit rule: at most n Table API requests in each
// fixed window of length per (n 0: none).
type rateLimit struct {
	n      int
	per    time.Duration
	start  time.Time
	count  int
	denied int
}

type fault struct {
	method     string // "" for any
	status     int
	retryAfter string
}

type journalEntry struct {
	table, sysID, text, by string
	at                     time.Time
}

// New returns a simulated instance with empty tables.
func New(opts Options) *Server {
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = 30 * time.Minute
	}
	if opts.RefreshTokenTTL <= 0 {
		opts.RefreshTokenTTL = 100 * 24 * time.Hour
	}
	s := &Server{
		opts:    opts,
		now:     opts.Clock,
		logger:  opts.Logger,
		tables:  newTables(),
		access:  map[string]time.Time{},
		refresh: map[string]time.Time{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth_token.do", s.handleToken)
	mux.HandleFunc("GET /api/now/table/sys_user_has_role", s.handleUserRoles)
	mux.HandleFunc("GET /api/now/table/sys_journal_field", s.handleJournal)
	mux.HandleFunc("GET /api/now/table/{table}", s.tableAPI(s.handleList))
	mux.HandleFunc("POST /api/now/table/{table}", s.tableAPI(s.handleCreate))
	mux.HandleFunc("GET /api/now/table/{table}/{sys_id}", s.tableAPI(s.handleGet))
	mux.HandleFunc("PATCH /api/now/table/{table}/{sys_id}", s.tableAPI(s.handleUpdate))
	mux.HandleFunc("PUT /api/now/table/{table}/{sys_id}", s.tableAPI(s.handleUpdate))
	s.mux = mux
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w}
	s.mux.ServeHTTP(rec, r)
	entry := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Grant: rec.grant}
	if !rec.lost {
		entry.Status = rec.status
		if entry.Status == 0 {
			entry.Status = http.StatusOK
		}
	}
	s.mu.Lock()
	s.requests = append(s.requests, entry)
	s.mu.Unlock()
	s.logger.Debug("servicenowsim: request", "method", r.Method, "path", r.URL.Path, "status", entry.Status)
}

// AddRecord seeds a record, as the estate does for the change requests and
// request items its webhooks name. sysID must be 32 lowercase hex digits;
// number may be empty for an automatic one. Seeding an existing sys_id is an
// error.
func (s *Server) AddRecord(tableName, sysID, number string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tables[tableName]
	if !ok {
		return fmt.Errorf("servicenowsim: add record: unknown table %q", tableName)
	}
	if !isSysID(sysID) {
		return fmt.Errorf("servicenowsim: add record: sys_id %q is not 32 lowercase hex digits", sysID)
	}
	if _, dup := t.byID[sysID]; dup {
		return fmt.Errorf("servicenowsim: add record: %s %s exists", tableName, sysID)
	}
	t.insert(sysID, number, map[string]string{}, s.now(), s.opts.User)
	return nil
}

// FailNext makes the next n Table API requests fail with status before they
// are authenticated or applied, with a Retry-After header when retryAfter is
// not empty. 502, 503 and 504 get an HTML body, as a load balancer in front of
// an instance sends; other statuses get ServiceNow's JSON error body.
func (s *Server) FailNext(n int, status int, retryAfter string) {
	s.FailNextMethod("", n, status, retryAfter)
}

// FailNextMethod is FailNext for the next n requests with the given method
// only ("" for any); requests with other methods pass. Faults queue up in
// the order they were added.
func (s *Server) FailNextMethod(method string, n int, status int, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults = append(s.faults, fault{method: method, status: status, retryAfter: retryAfter})
	}
}

// SetRateLimit enforces a rate limit rule as an instance does (System Web
// Services > Rate Limiting): at most n Table API requests in each fixed
// window of length per; the rest of the window is answered 429 with a
// Retry-After of the seconds until it ends, before authentication. A real
// rule counts per hour; benchmarks use seconds. n 0 removes the limit.
func (s *Server) SetRateLimit(n int, per time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit = rateLimit{n: n, per: per}
}

// RateLimited returns how many requests the rate limit refused.
func (s *Server) RateLimited() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limit.denied
}

// overLimit counts a request against the rate limit and reports the
// Retry-After to answer when it is over.
func (s *Server) overLimit() (retryAfter string, over bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := &s.limit
	if l.n <= 0 {
		return "", false
	}
	now := time.Now()
	if now.Sub(l.start) >= l.per {
		l.start, l.count = now.Truncate(l.per), 0
	}
	l.count++
	if l.count <= l.n {
		return "", false
	}
	l.denied++
	wait := l.start.Add(l.per).Sub(now)
	return strconv.Itoa(int((wait + time.Second - 1) / time.Second)), true
}

// LoseNextResponses makes the next n Table API requests with the given
// method ("" for any) take effect and then drops the connection without a
// response: the client sees a transport error although the record was
// written, as after a network failure or a crash between the instance's
// commit and the caller storing the result.
func (s *Server) LoseNextResponses(method string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.lose = append(s.lose, method)
	}
}

// RevokeAccessTokens invalidates every access token (refresh tokens stay
// valid), so the next bearer request is a 401.
func (s *Server) RevokeAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.access)
}

// Requests returns every request answered so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Incidents returns every incident, ordered by number.
func (s *Server) Incidents() []Incident {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tables[tableIncident]
	out := make([]Incident, 0, len(t.rows))
	for _, r := range t.rows {
		out = append(out, Incident{
			Number:           r["number"],
			SysID:            r["sys_id"],
			CorrelationID:    r["correlation_id"],
			State:            r["state"],
			ShortDescription: r["short_description"],
			Description:      r["description"],
			CMDBCI:           r["cmdb_ci"],
			AssignmentGroup:  r["assignment_group"],
			Urgency:          r["urgency"],
			Impact:           r["impact"],
			Active:           r["active"] == "true",
			CloseCode:        r["close_code"],
			CloseNotes:       r["close_notes"],
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out
}

// WorkNotes returns every work note on every table, oldest first.
func (s *Server) WorkNotes() []WorkNote {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]WorkNote, 0, len(s.journal))
	for _, e := range s.journal {
		out = append(out, WorkNote{Table: e.table, SysID: e.sysID, At: e.at.UTC().Format(time.RFC3339), Text: e.text})
	}
	return out
}

// tableAPI wraps a Table API handler with fault injection, authentication,
// the table check and lost responses.
func (s *Server) tableAPI(h func(w http.ResponseWriter, r *http.Request, t *table) int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if f, ok := s.nextFault(r.Method); ok {
			writeFault(w, f)
			return
		}
		if after, over := s.overLimit(); over {
			writeFault(w, fault{status: http.StatusTooManyRequests, retryAfter: after})
			return
		}
		user, ok := s.authenticate(r)
		if !ok {
			// An instance asks for Basic even when it also takes bearer tokens.
			w.Header().Set("WWW-Authenticate", `Basic realm="Service-now"`)
			writeError(w, http.StatusUnauthorized, "User Not Authenticated", "Required to provide Auth information")
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), userKey{}, user))
		if s.refuseRead(w, r, r.PathValue("table")) {
			return
		}
		s.mu.Lock()
		t, known := s.tables[r.PathValue("table")]
		s.mu.Unlock()
		if !known {
			writeError(w, http.StatusBadRequest, "Invalid table "+r.PathValue("table"), "")
			return
		}
		if s.takeLose(r.Method) {
			// Apply the request against a throwaway writer, then drop the
			// connection so the client never learns the outcome.
			h(discardWriter{header: http.Header{}}, r, t)
			if rec, ok := w.(*statusRecorder); ok {
				rec.lost = true
			}
			hijackAndClose(w)
			return
		}
		h(w, r, t)
	}
}

// nextFault takes the first queued fault that applies to method.
func (s *Server) nextFault(method string) (fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.method == "" || f.method == method {
			s.faults = slices.Delete(s.faults, i, i+1)
			return f, true
		}
	}
	return fault{}, false
}

// takeLose takes the first queued lost response that applies to method.
func (s *Server) takeLose(method string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, m := range s.lose {
		if m == "" || m == method {
			s.lose = slices.Delete(s.lose, i, i+1)
			return true
		}
	}
	return false
}

func writeFault(w http.ResponseWriter, f fault) {
	if f.retryAfter != "" {
		w.Header().Set("Retry-After", f.retryAfter)
	}
	switch f.status {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(f.status)
		_, _ = fmt.Fprintf(w, "<html><body><h1>%d %s</h1></body></html>", f.status, http.StatusText(f.status))
	case http.StatusTooManyRequests:
		writeError(w, f.status, "Too many requests", "Rate limit exceeded for this user")
	default:
		writeError(w, f.status, http.StatusText(f.status), "Injected fault")
	}
}

// handleList serves GET /api/now/table/{table}.
func (s *Server) handleList(w http.ResponseWriter, r *http.Request, t *table) int {
	q := r.URL.Query()
	query, err := parseQuery(q.Get("sysparm_query"))
	if err != nil {
		return writeError(w, http.StatusBadRequest, "Invalid query", err.Error())
	}
	limit, err := intParam(q.Get("sysparm_limit"), 10000)
	if err != nil || limit < 1 {
		return writeError(w, http.StatusBadRequest, "Invalid sysparm_limit", q.Get("sysparm_limit"))
	}
	offset, err := intParam(q.Get("sysparm_offset"), 0)
	if err != nil || offset < 0 {
		return writeError(w, http.StatusBadRequest, "Invalid sysparm_offset", q.Get("sysparm_offset"))
	}
	view := s.viewOptions(r)

	s.mu.Lock()
	var matched []record
	for _, row := range t.rows {
		if query.matches(row) {
			matched = append(matched, row)
		}
	}
	sortRecords(matched, orderOf(q.Get("sysparm_query")))
	total := len(matched)
	matched = matched[min(offset, total):min(offset+limit, total)]
	result := make([]map[string]any, 0, len(matched))
	for _, row := range matched {
		result = append(result, s.render(t, row, view))
	}
	s.mu.Unlock()

	w.Header().Set("X-Total-Count", strconv.Itoa(total))
	return writeJSON(w, http.StatusOK, map[string]any{"result": result})
}

// handleGet serves GET /api/now/table/{table}/{sys_id}.
func (s *Server) handleGet(w http.ResponseWriter, r *http.Request, t *table) int {
	view := s.viewOptions(r)
	s.mu.Lock()
	row, ok := t.byID[r.PathValue("sys_id")]
	var out map[string]any
	if ok {
		out = s.render(t, row, view)
	}
	s.mu.Unlock()
	if !ok {
		return writeNoRecord(w)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"result": out})
}

// handleCreate serves POST /api/now/table/{table}.
func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request, t *table) int {
	fields, status := readBody(w, r)
	if status != 0 {
		return status
	}
	user := requestUser(r)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	sysID := newSysID()
	row := t.insert(sysID, "", fields, now, user)
	if msg := t.violations(row); msg != "" {
		t.remove(sysID)
		return writeDataPolicy(w, msg)
	}
	if note := fields["work_notes"]; strings.TrimSpace(note) != "" {
		s.journal = append(s.journal, journalEntry{table: t.name, sysID: sysID, text: note, by: user, at: now})
	}
	w.Header().Set("Location", "/api/now/table/"+t.name+"/"+sysID)
	return writeJSON(w, http.StatusCreated, map[string]any{"result": s.render(t, row, s.viewOptions(r))})
}

// handleUpdate serves PATCH and PUT /api/now/table/{table}/{sys_id}; both
// update only the fields sent, as on an instance.
func (s *Server) handleUpdate(w http.ResponseWriter, r *http.Request, t *table) int {
	fields, status := readBody(w, r)
	if status != 0 {
		return status
	}
	user := requestUser(r)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	row, ok := t.byID[r.PathValue("sys_id")]
	if !ok {
		return writeNoRecord(w)
	}
	updated := t.apply(row, fields, now, user)
	if msg := t.violations(updated); msg != "" {
		return writeDataPolicy(w, msg)
	}
	t.replace(updated)
	if note := fields["work_notes"]; strings.TrimSpace(note) != "" {
		s.journal = append(s.journal, journalEntry{table: t.name, sysID: row["sys_id"], text: note, by: user, at: now})
	}
	return writeJSON(w, http.StatusOK, map[string]any{"result": s.render(t, updated, s.viewOptions(r))})
}

// userKey carries the authenticated user name in a request's context.
type userKey struct{}

func requestUser(r *http.Request) string {
	user, _ := r.Context().Value(userKey{}).(string)
	return user
}

type viewOptions struct {
	fields       []string
	excludeLinks bool
	base         string
}

func (s *Server) viewOptions(r *http.Request) viewOptions {
	q := r.URL.Query()
	v := viewOptions{excludeLinks: q.Get("sysparm_exclude_reference_link") == "true"}
	if f := q.Get("sysparm_fields"); f != "" {
		for _, name := range strings.Split(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				v.fields = append(v.fields, name)
			}
		}
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	v.base = scheme + "://" + r.Host
	return v
}

// render returns a record as the Table API shows it: every value a string,
// reference fields as {"link","value"} unless links are excluded, and the
// journal field as its latest entry. Callers hold s.mu.
func (s *Server) render(t *table, row record, v viewOptions) map[string]any {
	names := v.fields
	if len(names) == 0 {
		names = t.fieldNames()
	}
	out := make(map[string]any, len(names))
	for _, name := range names {
		if !t.known(name) {
			continue // an instance leaves out fields that do not exist
		}
		value := row[name]
		if name == "work_notes" {
			value = s.latestJournal(t.name, row["sys_id"])
		}
		if refTable, isRef := referenceFields[name]; isRef && value != "" && !v.excludeLinks {
			out[name] = map[string]string{"link": v.base + "/api/now/table/" + refTable + "/" + value, "value": value}
			continue
		}
		out[name] = value
	}
	return out
}

// latestJournal renders the newest work note of a record the way an
// instance displays a journal entry. Callers hold s.mu.
func (s *Server) latestJournal(tableName, sysID string) string {
	for i := len(s.journal) - 1; i >= 0; i-- {
		e := s.journal[i]
		if e.table == tableName && e.sysID == sysID {
			return fmt.Sprintf("%s - %s (Work notes)\n%s\n\n", e.at.UTC().Format(glideDateTime), e.by, e.text)
		}
	}
	return ""
}

// readBody decodes a JSON object body into string values, refusing what an
// instance refuses. It returns a non-zero status when it has answered.
func readBody(w http.ResponseWriter, r *http.Request) (map[string]string, int) {
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "application/json" {
		return nil, writeError(w, http.StatusUnsupportedMediaType, "Unsupported Media Type",
			fmt.Sprintf("Requested content type %q is not supported; use application/json", r.Header.Get("Content-Type")))
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 10<<20))
	if err != nil {
		return nil, writeError(w, http.StatusBadRequest, "Exception while reading request", err.Error())
	}
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil || body == nil {
		return nil, writeError(w, http.StatusBadRequest, "Exception while reading request", "The payload is not valid JSON.")
	}
	fields := make(map[string]string, len(body))
	for name, v := range body {
		switch v := v.(type) {
		case string:
			fields[name] = v
		case bool:
			fields[name] = strconv.FormatBool(v)
		case float64:
			fields[name] = strconv.FormatFloat(v, 'f', -1, 64)
		case nil:
			fields[name] = ""
		default:
			// Objects and arrays are not field values; an instance drops them.
		}
	}
	return fields, 0
}

func intParam(v string, def int) (int, error) {
	if v == "" {
		return def, nil
	}
	return strconv.Atoi(v)
}

func writeJSON(w http.ResponseWriter, status int, v any) int {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
	return status
}

// writeError sends ServiceNow's error body. An empty detail is sent as null.
func writeError(w http.ResponseWriter, status int, message, detail string) int {
	var d any
	if detail != "" {
		d = detail
	}
	return writeJSON(w, status, map[string]any{
		"error":  map[string]any{"message": message, "detail": d},
		"status": "failure",
	})
}

func writeNoRecord(w http.ResponseWriter) int {
	return writeError(w, http.StatusNotFound, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
}

// writeDataPolicy answers as an instance does when a data policy rejects an
// update made through a web service.
func writeDataPolicy(w http.ResponseWriter, msg string) int {
	return writeError(w, http.StatusForbidden, "Operation Failed", "Data Policy Exception: \n\t"+msg+"\n")
}

func newSysID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func isSysID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// statusRecorder remembers the status of a response and whether it was
// deliberately lost.
type statusRecorder struct {
	http.ResponseWriter
	status int
	grant  string
	lost   bool
}

func (r *statusRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection to hijack it.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// hijackAndClose drops the connection without writing a response. Where the
// connection cannot be hijacked (HTTP/2), it aborts the handler instead,
// which net/http also turns into a reset stream.
func hijackAndClose(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

type discardWriter struct{ header http.Header }

func (d discardWriter) Header() http.Header         { return d.header }
func (d discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d discardWriter) WriteHeader(int)             {}
