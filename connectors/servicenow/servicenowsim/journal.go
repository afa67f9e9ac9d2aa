package servicenowsim

import (
	"net/http"
	"slices"
	"strconv"
)

// tableJournal is where an instance keeps journal entries (work notes,
// comments): one row per entry with name (the record's table), element (the
// field), element_id (the record's sys_id) and value (the text). Source:
// ServiceNow, "Journal field type" (Washington DC, Xanadu, Yokohama):
// "Journal fields technically don't store data in the table that the
// Journal field is on, but instead, create entries in the Journal Entries
// [sys_journal_field] table."
const tableJournal = "sys_journal_field"

// handleJournal serves GET /api/now/table/sys_journal_field from the
// simulator's journal, with the encoded query, sysparm_fields and
// sysparm_limit of any list.
func (s *Server) handleJournal(w http.ResponseWriter, r *http.Request) {
	if f, ok := s.nextFault(r.Method); ok {
		writeFault(w, f)
		return
	}
	if _, ok := s.authenticate(r); !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="Service-now"`)
		writeError(w, http.StatusUnauthorized, "User Not Authenticated", "Required to provide Auth information")
		return
	}
	if s.refuseRead(w, r, tableJournal) {
		return
	}
	q := r.URL.Query()
	query, err := parseQuery(q.Get("sysparm_query"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "Invalid query", err.Error())
		return
	}
	limit, err := intParam(q.Get("sysparm_limit"), 10000)
	if err != nil || limit < 1 {
		writeError(w, http.StatusBadRequest, "Invalid sysparm_limit", q.Get("sysparm_limit"))
		return
	}
	fields := s.viewOptions(r).fields
	s.mu.Lock()
	var matched []record
	for i, e := range s.journal {
		row := record{
			"sys_id": strconv.Itoa(i), "name": e.table, "element": "work_notes", "element_id": e.sysID,
			"value": e.text, "sys_created_by": e.by, "sys_created_on": e.at.UTC().Format(glideDateTime),
		}
		if query.matches(row) {
			matched = append(matched, row)
		}
	}
	s.mu.Unlock()
	sortRecords(matched, orderOf(q.Get("sysparm_query")))
	result := []map[string]any{}
	for _, row := range matched {
		out := map[string]any{}
		for name, v := range row {
			if len(fields) == 0 || slices.Contains(fields, name) {
				out[name] = v
			}
		}
		result = append(result, out)
		if len(result) == limit {
			break
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": result})
}
