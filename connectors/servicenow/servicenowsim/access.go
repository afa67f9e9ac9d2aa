package servicenowsim

import (
	"net/http"
	"slices"
	"strings"
)

// tableUserRoles is the one table outside the task tables the simulator
// serves, read-only, for the doctor's role check.
const tableUserRoles = "sys_user_has_role"

// defaultRoles are the integration user's roles until SetRoles: what the
// README asks an administrator to grant.
var defaultRoles = []string{"itil"}

// perms is what the integration user may do. The zero value is the default:
// roles defaultRoles, every table readable.
type perms struct {
	rolesSet   bool
	roles      []string
	readDenied map[string]bool // table -> a read ACL refuses the user
}

// SetRoles replaces the integration user's roles (as rows of
// sys_user_has_role). It changes what the role look-up answers only: writes
// are not checked against roles, as a test of the connector needs them.
func (s *Server) SetRoles(roles ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.perms.rolesSet = true
	s.perms.roles = slices.Clone(roles)
}

// DenyRead makes reads (GET) of table fail as a table-level read ACL makes
// them fail on an instance: 403 with
// {"error":{"message":"User Not Authorized","detail":"User is unauthorized to access table: <table>"},"status":"failure"}
// (the body an instance sends, as quoted in ServiceNow's community thread
// "REST Api call returns forbidden 403 for table …",
// https://www.servicenow.com/community/developer-forum/rest-api-call-returns-forbidden-403-for-table-quot-gs/m-p/1356330).
// table may be sys_user_has_role too.
func (s *Server) DenyRead(table string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perms.readDenied == nil {
		s.perms.readDenied = map[string]bool{}
	}
	s.perms.readDenied[table] = true
}

// refuseRead answers 403 when a GET of table is denied, and reports whether it did.
func (s *Server) refuseRead(w http.ResponseWriter, r *http.Request, table string) bool {
	if r.Method != http.MethodGet {
		return false
	}
	s.mu.Lock()
	denied := s.perms.readDenied[table]
	s.mu.Unlock()
	if !denied {
		return false
	}
	writeError(w, http.StatusForbidden, "User Not Authorized", "User is unauthorized to access table: "+table)
	return true
}

// handleUserRoles serves GET /api/now/table/sys_user_has_role for the one
// query the doctor sends, user.user_name=<name>, with sysparm_fields=role.name
// (a dot-walked field comes back under its dotted name). Any other query is
// refused with 400, as the simulator refuses queries it does not implement.
func (s *Server) handleUserRoles(w http.ResponseWriter, r *http.Request) {
	if f, ok := s.nextFault(r.Method); ok {
		writeFault(w, f)
		return
	}
	user, ok := s.authenticate(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="Service-now"`)
		writeError(w, http.StatusUnauthorized, "User Not Authenticated", "Required to provide Auth information")
		return
	}
	if s.refuseRead(w, r, tableUserRoles) {
		return
	}
	name, ok := strings.CutPrefix(r.URL.Query().Get("sysparm_query"), "user.user_name=")
	if !ok || strings.Contains(name, "^") {
		writeError(w, http.StatusBadRequest, "Invalid query", "servicenowsim serves sys_user_has_role only for user.user_name=<name>")
		return
	}
	s.mu.Lock()
	roles := defaultRoles
	if s.perms.rolesSet {
		roles = s.perms.roles
	}
	s.mu.Unlock()
	result := []map[string]any{}
	if name == user {
		for _, role := range roles {
			result = append(result, map[string]any{"role.name": role})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": result})
}
