package servicenow

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors. Every error the Client returns is prefixed "servicenow: "
// and wraps at most one of these, so callers (River workers) can decide
// between retrying, snoozing and cancelling with errors.Is.
var (
	// ErrUnauthorized: the instance refused the credentials (401) or the
	// user's roles (403), after one token refresh when OAuth is used.
	// Retrying will not help until someone fixes the integration user.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrNotFound: the record does not exist or an ACL hides it (404).
	ErrNotFound = errors.New("not found")
	// ErrRateLimited: the instance kept answering 429 until the retries ran
	// out, or asked for a pause longer than Config.RetryMaxDelay. The
	// *APIError in the chain carries the pause it asked for.
	ErrRateLimited = errors.New("rate limited")
	// ErrTransport: no HTTP response arrived (connection refused or reset,
	// TLS failure, per-request timeout), after the retries ran out.
	ErrTransport = errors.New("transport error")
	// ErrInvalid: the call was refused before anything was sent (a
	// malformed sys_id, an empty correlation id, an unknown table).
	ErrInvalid = errors.New("invalid argument")
)

// APIError is an HTTP error answer from the instance. ServiceNow's body is
// {"error":{"message":…,"detail":…},"status":"failure"}; a body that is not
// that (an HTML page from a load balancer) leaves Message as the status text
// and Detail empty.
type APIError struct {
	Status  int
	Message string
	Detail  string
	// RetryAfter is the pause the instance asked for with Retry-After, or 0.
	RetryAfter time.Duration
	// hasRetryAfter tells "Retry-After: 0" (retry now) from no header.
	hasRetryAfter bool
}

// Error implements error. It has no package prefix because the Client always
// wraps it in one that has.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP %d: %s", e.Status, e.Message)
	if e.Detail != "" {
		fmt.Fprintf(&b, " (%s)", e.Detail)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " [retry after %s]", e.RetryAfter)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNotFound) and friends true for the matching
// statuses, so callers need not know status codes.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	}
	return false
}

// retryable reports whether the request may succeed if sent again.
func (e *APIError) retryable() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// newAPIError builds an APIError from a non-2xx answer.
func newAPIError(status int, header http.Header, body []byte, now time.Time) *APIError {
	e := &APIError{Status: status, Message: http.StatusText(status)}
	var sn struct {
		Error struct {
			Message string          `json:"message"`
			Detail  json.RawMessage `json:"detail"`
		} `json:"error"`
		// The OAuth endpoint answers {"error_description":…,"error":…}.
		ErrorDescription string `json:"error_description"`
	}
	if json.Unmarshal(body, &sn) == nil {
		switch {
		case sn.Error.Message != "":
			e.Message = sn.Error.Message
			var detail string
			if json.Unmarshal(sn.Error.Detail, &detail) == nil {
				e.Detail = detail
			}
		case sn.ErrorDescription != "":
			e.Message = sn.ErrorDescription
		}
	}
	e.RetryAfter, e.hasRetryAfter = parseRetryAfter(header.Get("Retry-After"), now)
	return e
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date
// (RFC 9110 §10.2.3). ok is false when the header is absent or unreadable;
// a date in the past means "now".
func parseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		const maxSecs = int64(24 * time.Hour / time.Second) // keeps the multiplication in range
		return time.Duration(min(secs, maxSecs)) * time.Second, true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(at.Sub(now), 0), true
	}
	return 0, false
}
