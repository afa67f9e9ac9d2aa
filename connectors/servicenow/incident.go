package servicenow

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	pathIncident = "/api/now/table/incident"

	// CorrelationDisplay is the correlation_display of every incident
	// autopatch raises: the name of the integration, shown in the list.
	CorrelationDisplay = "autopatch"

	// MaxCorrelationIDLen is the length of correlation_id on a stock
	// instance. A longer value would be cut by the instance and the guard's
	// look-up would never find it again, so CreateIncident refuses it.
	MaxCorrelationIDLen = 100

	// lookupPage is the page size of the prefix look-up (see
	// FindIncidentByCorrelation) and lookupMaxPages its bound.
	lookupPage     = 100
	lookupMaxPages = 100
)

// Incident is what autopatch writes when it raises an incident.
type Incident struct {
	ShortDescription string
	Description      string
	// CMDBCI and AssignmentGroup are reference fields: give the sys_id of
	// the configuration item and of the group.
	CMDBCI          string
	AssignmentGroup string
	// Urgency and Impact are 1 (high) to 3 (low); 0 leaves the instance's
	// default.
	Urgency, Impact int
	// CorrelationID identifies the failure, see CorrelationID; the
	// create guard looks incidents up by it.
	CorrelationID string
	// LookedUp says the caller has just looked CorrelationID up
	// (FindIncidentsByCorrelation) while holding what stops anyone else
	// creating it, and found no open incident: the first POST goes without
	// the guard's own look-up, halving the requests of a burst of failures
	// against a rate-limited instance. A retry of the POST still looks
	// first: the lost answer may have created the incident.
	LookedUp bool
}

// Ref names a record.
type Ref struct {
	Number string
	SysID  string
}

// IncidentRecord is an incident as read back from the instance.
type IncidentRecord struct {
	Ref
	// State is the state's value: "1" New, "2" In Progress, "3" On Hold,
	// "6" Resolved, "7" Closed, "8" Canceled on a stock instance.
	State            string
	Active           bool
	CorrelationID    string
	ShortDescription string
	CloseCode        string
	CloseNotes       string
}

// Open reports whether the incident is still being worked on (not
// resolved, closed or canceled).
func (r IncidentRecord) Open() bool {
	return r.Active && isOpenState(r.State)
}

// CorrelationID returns the correlation id of the incident for device
// failing in change: "autopatch:<change>:<device>". An id longer than
// MaxCorrelationIDLen keeps its first characters and ends in "~" and 8 hex
// digits of its SHA-256, so it stays unique and the same on every call.
func CorrelationID(change, device string) string {
	id := "autopatch:" + change + ":" + device
	if utf8.RuneCountInString(id) <= MaxCorrelationIDLen {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	suffix := "~" + hex.EncodeToString(sum[:4])
	runes := []rune(id)
	return string(runes[:MaxCorrelationIDLen-len(suffix)]) + suffix
}

// CreateIncident raises inc unless an open incident with its correlation id
// exists, in which case it returns that one. The look-up runs before the
// first POST and again before every retry of it: a POST whose answer was
// lost may have created the incident, and the Table API has no upsert.
//
// Two callers racing on one correlation id can still both create one; the
// caller's database (one job per failure) is what rules that out.
func (c *Client) CreateIncident(ctx context.Context, inc Incident) (Ref, error) {
	op := fmt.Sprintf("create incident %q", inc.CorrelationID)
	if err := checkCorrelationID(inc.CorrelationID); err != nil {
		return Ref{}, fmt.Errorf("servicenow: %s: %w", op, err)
	}
	if strings.TrimSpace(inc.ShortDescription) == "" {
		return Ref{}, fmt.Errorf("servicenow: %s: short description is empty: %w", op, ErrInvalid)
	}
	if inc.Urgency < 0 || inc.Urgency > 3 || inc.Impact < 0 || inc.Impact > 3 {
		return Ref{}, fmt.Errorf("servicenow: %s: urgency and impact must be 1..3 (or 0 for the default): %w", op, ErrInvalid)
	}
	fields := map[string]string{
		"short_description":   inc.ShortDescription,
		"correlation_id":      inc.CorrelationID,
		"correlation_display": CorrelationDisplay,
	}
	for name, v := range map[string]string{
		"description":      inc.Description,
		"cmdb_ci":          inc.CMDBCI,
		"assignment_group": inc.AssignmentGroup,
	} {
		if v != "" {
			fields[name] = v
		}
	}
	if inc.Urgency != 0 {
		fields["urgency"] = strconv.Itoa(inc.Urgency)
	}
	if inc.Impact != 0 {
		fields["impact"] = strconv.Itoa(inc.Impact)
	}
	body, err := json.Marshal(fields)
	if err != nil {
		return Ref{}, fmt.Errorf("servicenow: %s: encode: %w", op, err)
	}

	var ref Ref
	lookUp := !inc.LookedUp
	err = c.retry(ctx, "POST "+pathIncident, func() error {
		if lookUp {
			existing, found, err := c.findIncident(ctx, inc.CorrelationID)
			if err != nil {
				return final{err} // findIncident has retried already
			}
			if found {
				c.logger.InfoContext(ctx, "servicenow: incident exists", "number", existing.Number, "correlation_id", inc.CorrelationID)
				ref = existing
				return nil
			}
		}
		lookUp = true
		resp, err := c.send(ctx, request{
			method: http.MethodPost,
			path:   pathIncident,
			query:  url.Values{"sysparm_fields": {"sys_id,number"}, "sysparm_exclude_reference_link": {"true"}},
			json:   body,
		})
		if err != nil {
			return err
		}
		rec, err := decodeOne(resp.body)
		if err != nil {
			return err
		}
		ref = Ref{Number: rec.str("number"), SysID: rec.str("sys_id")}
		if !isSysID(ref.SysID) {
			return fmt.Errorf("answer has no sys_id")
		}
		c.logger.InfoContext(ctx, "servicenow: incident created", "number", ref.Number, "correlation_id", inc.CorrelationID)
		return nil
	})
	if err != nil {
		return Ref{}, fmt.Errorf("servicenow: %s: %w", op, err)
	}
	return ref, nil
}

// FindIncidentByCorrelation returns the open incident (active, not resolved,
// closed or canceled) whose correlation_id is id, comparing without regard to
// case as an instance's database does. found is false when there is none.
//
// An encoded query has no escape for "^" (it separates conditions, and ^OR,
// ^NQ and ORDERBY follow it), so a value is put into the query only when it
// is made of letters, digits and ".-_:@/#". Any other id is looked up by its
// longest such prefix (correlation_idSTARTSWITH…), paged, and compared
// exactly here: a hostile id cannot add a condition, and still round-trips.
func (c *Client) FindIncidentByCorrelation(ctx context.Context, id string) (ref Ref, found bool, err error) {
	if err := checkCorrelationID(id); err != nil {
		return Ref{}, false, fmt.Errorf("servicenow: find incident %q: %w", id, err)
	}
	ref, found, err = c.findIncident(ctx, id)
	if err != nil {
		return Ref{}, false, fmt.Errorf("servicenow: find incident %q: %w", id, err)
	}
	return ref, found, nil
}

// FindIncidentsByCorrelation is FindIncidentByCorrelation for many ids in
// few requests: one GET per lookupPage ids (correlation_idIN…, paged), so
// a thousand failures cost ten look-ups rather than a thousand. The map
// holds the ids found, as given. An id that cannot stand in an encoded
// query is looked up on its own, as FindIncidentByCorrelation does.
// The IN operator ("fieldINa,b,c", "is one of") and ORDERBY: ServiceNow,
// "Operators available for filters and queries" and "Encoded query
// strings" (Yokohama, Zurich):
// https://www.servicenow.com/docs/r/australia/platform-user-interface/r_OpAvailableFiltersQueries.html
// https://www.servicenow.com/docs/r/zurich/platform-user-interface/configure-user-experiences/c_EncodedQueryStrings.html
func (c *Client) FindIncidentsByCorrelation(ctx context.Context, ids []string) (map[string]Ref, error) {
	found := map[string]Ref{}
	byLower := map[string]Ref{} // what the IN look-ups found, by lower-case id
	queued := map[string]bool{}
	var batch []string
	for _, id := range ids {
		if err := checkCorrelationID(id); err != nil {
			return nil, fmt.Errorf("servicenow: find incidents: %q: %w", id, err)
		}
		if _, exact := queryPrefix(id); !exact {
			ref, ok, err := c.findIncident(ctx, id)
			if err != nil {
				return nil, fmt.Errorf("servicenow: find incident %q: %w", id, err)
			}
			if ok {
				found[id] = ref
			}
			continue
		}
		if lower := strings.ToLower(id); !queued[lower] {
			queued[lower] = true
			batch = append(batch, id)
		}
	}
	for len(batch) > 0 {
		part := batch[:min(lookupPage, len(batch))]
		batch = batch[len(part):]
		query := "correlation_idIN" + strings.Join(part, ",") + "^active=true^state<6^ORDERBYsys_created_on"
		for page := 0; ; page++ {
			if page == lookupMaxPages {
				return nil, fmt.Errorf("servicenow: find incidents: more than %d open incidents for %d correlation ids", lookupPage*lookupMaxPages, len(part))
			}
			body, err := c.do(ctx, request{method: http.MethodGet, path: pathIncident, query: url.Values{
				"sysparm_query":                  {query},
				"sysparm_fields":                 {"sys_id,number,state,correlation_id"},
				"sysparm_limit":                  {strconv.Itoa(lookupPage)},
				"sysparm_offset":                 {strconv.Itoa(page * lookupPage)},
				"sysparm_exclude_reference_link": {"true"},
			}})
			if err != nil {
				return nil, fmt.Errorf("servicenow: find incidents: %w", err)
			}
			recs, err := decodeList(body)
			if err != nil {
				return nil, fmt.Errorf("servicenow: find incidents: %w", err)
			}
			for _, rec := range recs {
				lower := strings.ToLower(rec.str("correlation_id"))
				if _, seen := byLower[lower]; queued[lower] && !seen && isSysID(rec.str("sys_id")) {
					byLower[lower] = Ref{Number: rec.str("number"), SysID: rec.str("sys_id")}
				}
			}
			if len(recs) < lookupPage {
				break
			}
		}
	}
	for _, id := range ids {
		if ref, ok := byLower[strings.ToLower(id)]; ok {
			found[id] = ref
		}
	}
	return found, nil
}

// findIncident is FindIncidentByCorrelation without the checks and the
// error prefix, with its own retries.
func (c *Client) findIncident(ctx context.Context, id string) (Ref, bool, error) {
	prefix, exact := queryPrefix(id)
	// Incident states below 6 are the open ones (New, In Progress, On Hold
	// and the older Awaiting… states); active alone would also match a
	// resolved incident, which an instance keeps active until it closes.
	const open = "^active=true^state<6^ORDERBYsys_created_on"
	query := "correlation_id=" + id + open
	limit := 1
	if !exact {
		query = "correlation_idSTARTSWITH" + prefix + open
		limit = lookupPage
	}
	for page := range lookupMaxPages {
		body, err := c.do(ctx, request{method: http.MethodGet, path: pathIncident, query: url.Values{
			"sysparm_query":                  {query},
			"sysparm_fields":                 {"sys_id,number,state,correlation_id"},
			"sysparm_limit":                  {strconv.Itoa(limit)},
			"sysparm_offset":                 {strconv.Itoa(page * limit)},
			"sysparm_exclude_reference_link": {"true"},
		}})
		if err != nil {
			return Ref{}, false, err
		}
		recs, err := decodeList(body)
		if err != nil {
			return Ref{}, false, err
		}
		for _, rec := range recs {
			if strings.EqualFold(rec.str("correlation_id"), id) && isSysID(rec.str("sys_id")) {
				return Ref{Number: rec.str("number"), SysID: rec.str("sys_id")}, true, nil
			}
		}
		if exact || len(recs) < limit {
			return Ref{}, false, nil
		}
	}
	return Ref{}, false, fmt.Errorf("more than %d open incidents share the prefix %q", lookupPage*lookupMaxPages, prefix)
}

// GetIncident reads one incident.
func (c *Client) GetIncident(ctx context.Context, sysID string) (IncidentRecord, error) {
	if !isSysID(sysID) {
		return IncidentRecord{}, fmt.Errorf("servicenow: get incident %q: not a sys_id: %w", sysID, ErrInvalid)
	}
	body, err := c.do(ctx, request{method: http.MethodGet, path: pathIncident + "/" + sysID, query: url.Values{
		"sysparm_fields":                 {"sys_id,number,state,active,correlation_id,short_description,close_code,close_notes"},
		"sysparm_exclude_reference_link": {"true"},
	}})
	if err != nil {
		return IncidentRecord{}, fmt.Errorf("servicenow: get incident %s: %w", sysID, err)
	}
	rec, err := decodeOne(body)
	if err != nil {
		return IncidentRecord{}, fmt.Errorf("servicenow: get incident %s: %w", sysID, err)
	}
	return IncidentRecord{
		Ref:              Ref{Number: rec.str("number"), SysID: rec.str("sys_id")},
		State:            rec.str("state"),
		Active:           rec.str("active") == "true",
		CorrelationID:    rec.str("correlation_id"),
		ShortDescription: rec.str("short_description"),
		CloseCode:        rec.str("close_code"),
		CloseNotes:       rec.str("close_notes"),
	}, nil
}

// UpdateIncident sets fields (Table API field names and values) on an
// incident. A retried PATCH is harmless except for journal fields
// (work_notes, comments): if an answer was lost the entry may be appended
// twice, which beats losing it.
func (c *Client) UpdateIncident(ctx context.Context, sysID string, fields map[string]string) error {
	if err := c.patch(ctx, "incident", sysID, fields); err != nil {
		return fmt.Errorf("servicenow: update incident %s: %w", sysID, err)
	}
	return nil
}

// ResolveIncident moves an incident to Resolved (state 6) with
// Config.CloseCode and closeNotes, the two fields a stock instance's data
// policy requires. An incident already resolved, closed or canceled is left
// alone, so a repeated call neither fails on a closed record's ACLs nor
// overwrites what a person wrote.
func (c *Client) ResolveIncident(ctx context.Context, sysID, closeNotes string) error {
	if strings.TrimSpace(closeNotes) == "" {
		return fmt.Errorf("servicenow: resolve incident %s: close notes are empty: %w", sysID, ErrInvalid)
	}
	inc, err := c.GetIncident(ctx, sysID)
	if err != nil {
		return err
	}
	if !isOpenState(inc.State) {
		c.logger.InfoContext(ctx, "servicenow: incident already resolved", "number", inc.Number, "state", inc.State)
		return nil
	}
	err = c.patch(ctx, "incident", sysID, map[string]string{
		"state":       "6",
		"close_code":  c.cfg.CloseCode,
		"close_notes": closeNotes,
	})
	if err != nil {
		return fmt.Errorf("servicenow: resolve incident %s: %w", sysID, err)
	}
	return nil
}

// isOpenState reports whether an incident state value is before Resolved.
func isOpenState(state string) bool {
	n, err := strconv.Atoi(state)
	return err == nil && n < 6
}

// checkCorrelationID refuses ids the guard cannot find again: empty, longer
// than the field, not UTF-8, with a NUL, or without a safe first character
// to anchor the prefix look-up on.
func checkCorrelationID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("correlation id is empty: %w", ErrInvalid)
	case !utf8.ValidString(id) || strings.ContainsRune(id, 0):
		return fmt.Errorf("correlation id is not valid text: %w", ErrInvalid)
	case utf8.RuneCountInString(id) > MaxCorrelationIDLen:
		return fmt.Errorf("correlation id is longer than %d characters (see CorrelationID): %w", MaxCorrelationIDLen, ErrInvalid)
	}
	if prefix, _ := queryPrefix(id); prefix == "" {
		return fmt.Errorf("correlation id must start with a letter or digit: %w", ErrInvalid)
	}
	return nil
}

// queryPrefix returns the longest prefix of id that is safe inside an
// encoded query value, and whether that is all of id.
func queryPrefix(id string) (prefix string, whole bool) {
	for i, r := range id {
		if !querySafe(r) {
			return id[:i], false
		}
	}
	return id, true
}

// querySafe reports whether r can stand in an encoded query value without
// meaning anything to the parser. Deliberately narrow: everything else goes
// through the prefix look-up, which is always correct, only slower.
func querySafe(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune(".-_:@/#", r)
}

// record is one result object of the Table API.
type record map[string]json.RawMessage

// str returns a field as a string, accepting the plain form and the
// {"value":…,"link":…} form of reference fields, and numbers or booleans
// from a proxy that rewrote them.
func (r record) str(name string) string {
	raw, ok := r[name]
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var ref struct {
		Value string `json:"value"`
	}
	if json.Unmarshal(raw, &ref) == nil && ref.Value != "" {
		return ref.Value
	}
	var v any
	if json.Unmarshal(raw, &v) == nil && v != nil {
		return fmt.Sprint(v)
	}
	return ""
}

func decodeOne(body []byte) (record, error) {
	var env struct {
		Result record `json:"result"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("decode answer: %w", err)
	}
	if env.Result == nil {
		return nil, errors.New("decode answer: no result")
	}
	return env.Result, nil
}

func decodeList(body []byte) ([]record, error) {
	var env struct {
		Result []record `json:"result"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("decode answer: %w", err)
	}
	return env.Result, nil
}

// isSysID reports whether s is a sys_id: 32 lowercase hex digits. Checking
// it keeps anything else out of request paths.
func isSysID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := range len(s) {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
