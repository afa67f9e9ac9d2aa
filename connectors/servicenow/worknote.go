package servicenow

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Tables AddWorkNote writes to.
const (
	TableChangeRequest = "change_request"
	TableRequestItem   = "sc_req_item"
	TableIncident      = "incident"
)

// AddWorkNote appends text to the work notes (a journal: every PATCH adds an
// entry) of the record sysID in table, which is TableChangeRequest,
// TableRequestItem or TableIncident.
//
// A PATCH is retried like any request. If the instance applied it but the
// answer was lost, the retry appends the note a second time: a repeated work
// note is harmless, a missing one is not.
func (c *Client) AddWorkNote(ctx context.Context, table, sysID, text string) error {
	switch table {
	case TableChangeRequest, TableRequestItem, TableIncident:
	default:
		return fmt.Errorf("servicenow: add work note to %s %s: unsupported table: %w", table, sysID, ErrInvalid)
	}
	if strings.TrimSpace(text) == "" {
		// An instance silently drops an empty journal entry; say so instead.
		return fmt.Errorf("servicenow: add work note to %s %s: text is empty: %w", table, sysID, ErrInvalid)
	}
	if err := c.patch(ctx, table, sysID, map[string]string{"work_notes": text}); err != nil {
		return fmt.Errorf("servicenow: add work note to %s %s: %w", table, sysID, err)
	}
	return nil
}

// patch updates fields of one record, retrying; the answer is reduced to the
// sys_id since nobody reads the rest.
func (c *Client) patch(ctx context.Context, table, sysID string, fields map[string]string) error {
	if !isSysID(sysID) {
		return fmt.Errorf("%q is not a sys_id: %w", sysID, ErrInvalid)
	}
	if len(fields) == 0 {
		return fmt.Errorf("no fields to update: %w", ErrInvalid)
	}
	body, err := json.Marshal(fields)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	_, err = c.do(ctx, request{
		method: http.MethodPatch,
		path:   "/api/now/table/" + table + "/" + sysID,
		query:  url.Values{"sysparm_fields": {"sys_id"}, "sysparm_exclude_reference_link": {"true"}},
		json:   body,
	})
	return err
}

// HasWorkNote reports whether the record sysID of table already carries a
// work note whose text is text. A work note cannot be written idempotently
// (each PATCH appends a journal entry), so a note whose writer may have
// sent it already — a retry, or a job taken over from a replica that died
// after the PATCH and before it recorded success — looks first.
//
// Journal entries are rows of sys_journal_field (name = the record's table,
// element = the field, element_id = the record's sys_id, value = the text):
// ServiceNow, "Journal field type" (Washington DC to Yokohama). The newest
// entries are read first; a note that is not among the last 100 of the
// record is taken as not written (a repeat then is harmless, a loss not).
func (c *Client) HasWorkNote(ctx context.Context, table, sysID, text string) (bool, error) {
	if !isSysID(sysID) {
		return false, fmt.Errorf("servicenow: look up work notes of %s %q: not a sys_id: %w", table, sysID, ErrInvalid)
	}
	switch table {
	case TableChangeRequest, TableRequestItem, TableIncident:
	default:
		return false, fmt.Errorf("servicenow: look up work notes of %s %s: unsupported table: %w", table, sysID, ErrInvalid)
	}
	body, err := c.do(ctx, request{method: http.MethodGet, path: "/api/now/table/sys_journal_field", query: url.Values{
		"sysparm_query":  {"name=" + table + "^element=work_notes^element_id=" + sysID + "^ORDERBYDESCsys_created_on"},
		"sysparm_fields": {"value"},
		"sysparm_limit":  {"100"},
	}})
	if err != nil {
		return false, fmt.Errorf("servicenow: look up work notes of %s %s: %w", table, sysID, err)
	}
	recs, err := decodeList(body)
	if err != nil {
		return false, fmt.Errorf("servicenow: look up work notes of %s %s: %w", table, sysID, err)
	}
	want := strings.TrimSpace(text)
	for _, rec := range recs {
		if strings.TrimSpace(rec.str("value")) == want {
			return true, nil
		}
	}
	return false, nil
}
