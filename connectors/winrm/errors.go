package winrm

import (
	"errors"
	"fmt"
	"html"
	"regexp"
	"strings"
)

// Errors returned by Run. Every error Run returns starts with "winrm: <template>: ",
// never contains the password or the data, and is exactly one of:
//
//   - errors.Is(err, ErrUnauthorized): the host refused the credentials (HTTP 401,
//     an AccessDenied fault, an NTLM/Kerberos failure). Retrying will not help.
//   - errors.Is(err, ErrUnreachable): DNS, dial, TLS (certificate errors wrap the
//     x509 / tls error), an HTTP status other than 200/401, or a WS-Management fault
//     (errors.As a *FaultError). Usually transient.
//   - errors.Is(err, ErrTimeout): the call did not finish within min(ctx deadline,
//     Config.Timeout). Its remote effect is unknown.
//   - errors.Is(err, context.Canceled): the caller's ctx was cancelled; effect
//     unknown as for ErrTimeout.
//   - *ScriptError: the script ran and exited non-zero.
//   - *BadAnswerError: the script exited 0 but stdout was not one JSON document.
//   - anything else is a programming error (bad template, data that does not
//     marshal to a JSON object).
//
// After ErrTimeout, ErrUnreachable or context.Canceled the caller cannot know
// whether the script ran: every autopatch template is idempotent (re-running it
// converges to the same state), so the caller simply retries.
var (
	ErrUnauthorized = errors.New("unauthorized")
	ErrUnreachable  = errors.New("unreachable")
	ErrTimeout      = errors.New("timed out")
)

// ScriptError reports a script that ran and exited with a non-zero code.
type ScriptError struct {
	Template string // Template.Name
	ExitCode int
	// Stderr is PowerShell's error text with any CLIXML wrapping removed.
	Stderr string
}

// maxStderrInMessage bounds what Error() prints; the Stderr field keeps it all.
const maxStderrInMessage = 2000

func (e *ScriptError) Error() string {
	msg := strings.Join(strings.Fields(e.Stderr), " ")
	if len(msg) > maxStderrInMessage {
		msg = msg[:maxStderrInMessage] + "…"
	}
	if msg == "" {
		msg = "(no error text)"
	}
	return fmt.Sprintf("winrm: %s: script exited with code %d: %s", e.Template, e.ExitCode, msg)
}

// BadAnswerError reports a script that exited 0 without writing exactly one JSON
// document (that fits the output value) to stdout.
type BadAnswerError struct {
	Template string
	// Stdout is what the script wrote; it is never printed by Error() because an
	// answer may echo data.
	Stdout []byte
	Err    error
}

func (e *BadAnswerError) Error() string {
	return fmt.Sprintf("winrm: %s: bad answer (%d bytes on stdout): %v", e.Template, len(e.Stdout), e.Err)
}

func (e *BadAnswerError) Unwrap() error { return e.Err }

// FaultError is a WS-Management SOAP fault answered by the host (HTTP 500), for
// example a shell quota exceeded. Run wraps it with ErrUnreachable, or with
// ErrUnauthorized for an AccessDenied fault.
type FaultError struct {
	Code      string // SOAP code, e.g. "s:Receiver"
	Subcode   string // e.g. "w:QuotaLimit"
	WSManCode string // WSManFault Code attribute, e.g. "2150859173"
	Reason    string
}

func (e *FaultError) Error() string {
	return fmt.Sprintf("ws-management fault %s %s: %s", e.WSManCode, e.Subcode, e.Reason)
}

// accessDenied reports whether the fault means the user is not allowed in.
func (e *FaultError) accessDenied() bool {
	return strings.HasSuffix(e.Subcode, ":AccessDenied") || e.WSManCode == "5"
}

// statusError is an HTTP answer other than 200 that is not a SOAP fault.
type statusError struct {
	Status      int
	ContentType string
}

func (e *statusError) Error() string {
	if e.Status == 200 || e.ContentType != "" && !strings.Contains(e.ContentType, "application/soap+xml") {
		return fmt.Sprintf("http status %d with content type %q: not a WS-Management answer", e.Status, e.ContentType)
	}
	return fmt.Sprintf("http status %d", e.Status)
}

// errBasicDowngrade refuses to send a password with Basic when NTLM was asked for:
// the NTLM negotiator falls back to Basic when the server does not offer
// Negotiate, which would hand the password to whoever answers.
var errBasicDowngrade = errors.New("host offers only Basic authentication but auth is ntlm")

// errOperationTimeout is the WS-Man "no output yet" answer to a Receive. Its text
// must contain "OperationTimeout": that is how masterzen/winrm recognises it and
// polls again.
var errOperationTimeout = errors.New("ws-management OperationTimeout expired, no output yet")

// CLIXML: when powershell.exe writes error records to a redirected stderr it may
// serialise them as "#< CLIXML" followed by <Objs> XML. We keep the error strings.
var (
	clixmlString = regexp.MustCompile(`(?s)<S S="(?:Error|Warning)">(.*?)</S>`)
	clixmlEscape = regexp.MustCompile(`_x([0-9A-Fa-f]{4})_`)
)

// cleanStderr strips CLIXML wrapping, if present, leaving PowerShell's error text.
func cleanStderr(s string) string {
	s = strings.TrimPrefix(s, "\ufeff")
	idx := strings.Index(s, "#< CLIXML")
	if idx < 0 {
		return strings.TrimSpace(s)
	}
	prefix := s[:idx]
	var b strings.Builder
	b.WriteString(prefix)
	for _, m := range clixmlString.FindAllStringSubmatch(s[idx:], -1) {
		text := clixmlEscape.ReplaceAllStringFunc(m[1], func(esc string) string {
			var r rune
			if _, err := fmt.Sscanf(esc[2:6], "%04x", &r); err != nil {
				return esc
			}
			return string(r)
		})
		b.WriteString(html.UnescapeString(text))
	}
	return strings.TrimSpace(b.String())
}
