package servicenow

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// TableUserRoles is where an instance records each user's roles, granted
// and inherited (one row per role, with an inherited flag).
const TableUserRoles = "sys_user_has_role"

// writeRoles lists, per table autopatch writes, the roles of which any one
// lets the base system's ACLs write the table:
//   - itil: the fulfiller role of the base system (incident, change_request,
//     sc_req_item);
//   - sn_incident_write, sn_change_write, sn_request_write: the granular
//     roles of the "ITSM Roles" plugins, "Write access to the … application
//     and related records" (ServiceNow docs, "Components installed with ITSM
//     Roles - Change Management", Washington DC to Australia releases:
//     https://www.servicenow.com/docs/r/xanadu/it-service-management/change-management/installed-with-cm-itsm-roles.html);
//   - admin, which passes every ACL.
var writeRoles = map[string][]string{
	TableChangeRequest: {"admin", "itil", "sn_change_write"},
	TableIncident:      {"admin", "itil", "sn_incident_write"},
	TableRequestItem:   {"admin", "itil", "sn_request_write"},
}

// WriteRoles returns the roles any one of which lets the integration user
// write table (see writeRoles), or nil for a table autopatch does not write.
func WriteRoles(table string) []string { return slices.Clone(writeRoles[table]) }

// CheckRead reads at most one record of table (GET with sysparm_limit=1 and
// only sys_id), as the doctor's proof that the integration user may read it.
// It returns the number of rows the instance says the query matches
// (X-Total-Count, -1 when absent). A table-level read ACL answers 403
// (ErrUnauthorized); row-level ACLs hide rows without an error, so a count of
// 0 is not proof of access to any particular record. The request is sent
// once, without the client's retries: the doctor reports the first answer.
func (c *Client) CheckRead(ctx context.Context, table string) (int, error) {
	if !isTableName(table) {
		return 0, fmt.Errorf("servicenow: read %s: not a table name: %w", table, ErrInvalid)
	}
	resp, err := c.send(ctx, request{method: http.MethodGet, path: "/api/now/table/" + table, query: url.Values{
		"sysparm_limit": {"1"}, "sysparm_fields": {"sys_id"}, "sysparm_exclude_reference_link": {"true"},
	}})
	if err != nil {
		return 0, fmt.Errorf("servicenow: read %s: %w", table, err)
	}
	if _, err := decodeList(resp.body); err != nil {
		return 0, fmt.Errorf("servicenow: read %s: %w", table, err)
	}
	n := -1
	if v, err := strconv.Atoi(resp.header.Get("X-Total-Count")); err == nil {
		n = v
	}
	return n, nil
}

// UserRoles returns the names of the integration user's roles, granted and
// inherited, from sys_user_has_role through the Table API (a dot-walked
// query on user.user_name and sysparm_fields=role.name, as the Table API's
// GET documents: "Table API - GET /now/table/{tableName}", and ServiceNow's
// "Dot-walking in the REST Table API",
// https://developer.servicenow.com/blog.do?p=/post/dot-walking-in-the-rest-table-api-2/).
//
// It is how the doctor tests write access without writing: the Table API has
// no dry run, and a PATCH of a record that does not exist answers 404 before
// any write ACL is consulted. Reading sys_user_has_role needs a read ACL that
// some instances grant only to admins and user_admin; a 403 here means "could
// not tell", not "cannot write".
func (c *Client) UserRoles(ctx context.Context) ([]string, error) {
	if strings.ContainsAny(c.cfg.User, "^=") {
		// An encoded query has no escape for these.
		return nil, fmt.Errorf("servicenow: roles of the integration user: user name has ^ or =: %w", ErrInvalid)
	}
	resp, err := c.send(ctx, request{method: http.MethodGet, path: "/api/now/table/" + TableUserRoles, query: url.Values{
		"sysparm_query": {"user.user_name=" + c.cfg.User}, "sysparm_fields": {"role.name"}, "sysparm_limit": {"1000"},
	}})
	if err != nil {
		return nil, fmt.Errorf("servicenow: roles of the integration user: %w", err)
	}
	recs, err := decodeList(resp.body)
	if err != nil {
		return nil, fmt.Errorf("servicenow: roles of the integration user: %w", err)
	}
	var roles []string
	for _, r := range recs {
		if name := r.str("role.name"); name != "" && !slices.Contains(roles, name) {
			roles = append(roles, name)
		}
	}
	slices.Sort(roles)
	return roles, nil
}

func isTableName(s string) bool {
	if s == "" || len(s) > 80 {
		return false
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}
