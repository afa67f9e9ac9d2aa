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
