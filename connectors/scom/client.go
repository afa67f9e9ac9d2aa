// Package scom raises, links and closes Operations Manager (SCOM) alerts
// through the OperationsManager PowerShell module on a management server,
// over WinRM (docs/architecture.md §5).
//
// SCOM has no API that creates an alert (its REST API cannot). autopatch
// writes an event of the source "autopatch" to the Application log of the
// management server it reaches over WinRM (EventLog.WriteEvent), and an NT
// event log rule of the management pack autopatch ships
// (integrations/scom/Autopatch.Alerts.xml) turns it into an alert on the
// device's Windows Computer carrying the key in CustomField1. This event-log
// route works on SCOM 2016, 2019, 2022 and 2025; the SDK route used before
// (InsertCustomMonitoringEvent) is deprecated from 2019 on (see templates.go
// and the README). The rule runs asynchronously, so RaiseAlerts may answer
// Pending: the alert is on its way, and calling RaiseAlerts again links it
// without writing another event. The event goes to the management server's
// own log, not the device's: one account on the management server is enough,
// and nothing is written on the devices being patched.

// Every method is exactly one WinRM call running one constant template (see
// Templates) with one data value, whatever the batch size: powershell.exe
// and Import-Module OperationsManager take seconds.
package scom

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/autopatch/autopatch/connectors/winrm"
)

// Runner runs one template with one data value on the management server and
// decodes its JSON answer into out. *winrm.Client is the production Runner.
type Runner interface {
	Run(ctx context.Context, t winrm.Template, data any, out any) error
}

// ErrInvalid is wrapped by errors about the caller's input (an empty key, a
// ticket id too long, ...): nothing was sent, and sending it again will not help.
var ErrInvalid = errors.New("invalid request")

// DefaultAlertWait is how long RaiseAlerts lets the management server wait
// for the rule to raise the alerts of newly written events.
const DefaultAlertWait = 10 * time.Second

// Options configure a Client. The zero value suits a client that runs its
// templates on a management server.
type Options struct {
	// ManagementServer is the server New-SCOMManagementGroupConnection
	// connects to, from the host the templates run on; empty means localhost.
	ManagementServer string
	// AlertWait bounds how long one RaiseAlerts call waits, on the server, for
	// the management pack's rule to raise the alerts of the events it wrote
	// (polling every 2 s). Zero means DefaultAlertWait; negative means do not
	// wait (those alerts are answered Pending).
	AlertWait time.Duration
}

// Client is the SCOM connector. It is safe for concurrent use as far as its
// Runner is.
type Client struct {
	runner Runner
	opts   Options
	logger *slog.Logger
}

// New returns a Client that runs its templates through r. A nil logger discards.
func New(r Runner, opts Options, logger *slog.Logger) *Client {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.AlertWait == 0 {
		opts.AlertWait = DefaultAlertWait
	}
	return &Client{runner: r, opts: opts, logger: logger}
}

// run executes one template and wraps its error with the action's name.
func (c *Client) run(ctx context.Context, action, name string, data, out any) error {
	start := time.Now()
	err := c.runner.Run(ctx, template(name), data, out)
	c.logger.DebugContext(ctx, "scom call", "action", action, "template", name,
		"duration", time.Since(start), "error", err)
	if err != nil {
		return fmt.Errorf("scom: %s: %w", action, err)
	}
	return nil
}

// IsRefusal reports whether err is a script that ran and failed: SCOM, or the
// template's own validation, refused the request. Unlike a call that did not
// get through, it does not go away on retry.
func IsRefusal(err error) bool {
	var se *winrm.ScriptError
	return errors.As(err, &se)
}

// ---- keys ----------------------------------------------------------------------

// StoredKey is the form of key that goes into the alert's CustomField1: key
// itself when it fits the column (MaxKeyLength UTF-16 code units), else its
// first characters, "~" and 8 hex digits of its SHA-256, so a long key stays
// unique and the same on every call. The methods apply it; callers only need
// it to find the alert by hand. Callers are expected to use the incident's
// correlation id (servicenow.CorrelationID, at most 100 characters) as the
// key, so the alert and the incident carry the same id.
func StoredKey(key string) string {
	if utf16Len(key) <= MaxKeyLength {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	suffix := "~" + hex.EncodeToString(sum[:4])
	budget := MaxKeyLength - len(suffix)
	var b strings.Builder
	n := 0
	for _, r := range key {
		w := utf16.RuneLen(r)
		if w < 0 {
			w = 1 // invalid rune: U+FFFD
		}
		if n+w > budget {
			break
		}
		b.WriteRune(r)
		n += w
	}
	return b.String() + suffix
}

// eventText clips free text to what one event log insertion string holds
// (MaxEventStringLength UTF-16 code units; EventLog.WriteEvent refuses a
// longer one, and the template refuses the whole batch before writing), so
// one long error text from another system cannot hold back every alert.
func eventText(s string) string {
	if utf16Len(s) <= MaxEventStringLength {
		return s
	}
	const mark = " [truncated]"
	budget := MaxEventStringLength - len(mark)
	var b strings.Builder
	n := 0
	for _, r := range s {
		w := utf16.RuneLen(r)
		if w < 0 {
			w = 1
		}
		if n+w > budget {
			break
		}
		b.WriteRune(r)
		n += w
	}
	return b.String() + mark
}

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		if w := utf16.RuneLen(r); w > 0 {
			n += w
		} else {
			n++
		}
	}
	return n
}

// checkIdentifier refuses what cannot be an alert key or a ticket id: empty,
// not UTF-8, or holding a character an event's XML data item cannot carry.
func checkIdentifier(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s is empty: %w", what, ErrInvalid)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s is not UTF-8: %w", what, ErrInvalid)
	case strings.IndexFunc(s, func(r rune) bool { return !xmlChar(r) }) >= 0:
		return fmt.Errorf("%s %q holds a character XML cannot carry: %w", what, s, ErrInvalid)
	}
	return nil
}

// xmlChar reports whether r may appear in an XML 1.0 document: SCOM carries
// events and alerts as XML data items, which cannot hold the others.
func xmlChar(r rune) bool {
	return r == '\t' || r == '\n' || r == '\r' ||
		(r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
}

// xmlText replaces what an XML data item cannot carry by U+FFFD, for free
// text (summary, description, error code) that may quote another system.
func xmlText(s string) string {
	if utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return !xmlChar(r) }) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || !xmlChar(r) {
			return '\uFFFD'
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
}

// ---- raise ---------------------------------------------------------------------

// Severity is an alert's severity. Each has its own rule in the management
// pack, with the priority that goes with it.
type Severity string

// The severities RaiseAlerts accepts.
const (
	// SeverityCritical: SCOM severity Critical (2), priority High.
	SeverityCritical Severity = "critical"
	// SeverityWarning: SCOM severity Warning (1), priority Medium.
	SeverityWarning Severity = "warning"
	// SeverityInformation: SCOM severity Information (0), priority Low.
	SeverityInformation Severity = "information"
)

// Alert is one alert to raise.
type Alert struct {
	// Key identifies the failure: one open alert per key. Use the incident's
	// correlation id "autopatch:<change>:<device>". It goes to CustomField1
	// (see StoredKey).
	Key string
	// Device is the Windows Computer, by FQDN or NetBIOS name (case-insensitive).
	Device string
	// Severity defaults to SeverityCritical.
	Severity Severity
	// Summary is the first line of the alert's description. The alert's name
	// is the management pack's, the same for every autopatch alert, so
	// subscriptions and connectors can match it.
	Summary string
	// Description follows the summary in the alert's description.
	Description string
	// Change (CustomField2) and ErrorCode (CustomField3) are for views,
	// subscriptions and the ServiceNow connector to filter on.
	Change    string
	ErrorCode string
}

// RaiseOutcome says what RaiseAlerts did for one alert.
type RaiseOutcome string

// The outcomes of RaiseAlerts.
const (
	// Raised: the event was written and the rule raised the alert.
	Raised RaiseOutcome = "raised"
	// Existing: an open alert with the key existed; nothing was written.
	Existing RaiseOutcome = "existing"
	// Pending: the event was written but the rule had not raised the alert
	// within the wait. Call RaiseAlerts again later to learn its id.
	Pending RaiseOutcome = "pending"
	// UnknownDevice: no Windows Computer of that name is monitored.
	UnknownDevice RaiseOutcome = "unknown_device"
	// AmbiguousDevice: the name (a NetBIOS name in several domains) matches
	// more than one Windows Computer; use the FQDN.
	AmbiguousDevice RaiseOutcome = "ambiguous_device"
)

// RaiseResult is the answer for one Alert.
type RaiseResult struct {
	// Key and Device are as given.
	Key    string
	Device string
	// Computer is the PrincipalName of the Windows Computer the alert is on.
	Computer string
	// AlertID is the alert's Id (a GUID), empty unless Raised or Existing.
	AlertID string
	Outcome RaiseOutcome
	// Message explains UnknownDevice and AmbiguousDevice.
	Message string
}

// Failed reports whether the alert could not be raised for its device.
func (r RaiseResult) Failed() bool {
	return r.Outcome == UnknownDevice || r.Outcome == AmbiguousDevice
}

type alertData struct {
	Key         string `json:"key"`
	Device      string `json:"device"`
	Severity    string `json:"severity"`
	Summary     string `json:"summary"`
	Description string `json:"description"`
	Change      string `json:"change"`
	ErrorCode   string `json:"error_code"`
}

type raiseRequest struct {
	ManagementServer string      `json:"management_server"`
	WaitSeconds      int         `json:"wait_seconds"`
	Alerts           []alertData `json:"alerts"`
}

type raiseAnswer struct {
	Results []struct {
		Key      string       `json:"key"`
		Device   string       `json:"device"`
		Computer string       `json:"computer"`
		AlertID  string       `json:"alert_id"`
		Outcome  RaiseOutcome `json:"outcome"`
		Message  string       `json:"message"`
	} `json:"results"`
}

// RaiseAlerts raises one alert per Alert in one call and returns, in order,
// each alert's result. It is idempotent by key: while an alert with the key
// is open it is returned as Existing and no event is written. A device SCOM
// does not monitor is a result (UnknownDevice), not an error. Keys must be
// unique within the batch.
func (c *Client) RaiseAlerts(ctx context.Context, alerts []Alert) ([]RaiseResult, error) {
	if len(alerts) == 0 {
		return []RaiseResult{}, nil
	}
	req := raiseRequest{ManagementServer: c.opts.ManagementServer, WaitSeconds: waitSeconds(c.opts.AlertWait)}
	seen := make(map[string]string, len(alerts))
	for i, a := range alerts {
		if err := checkIdentifier("key", a.Key); err != nil {
			return nil, fmt.Errorf("scom: raise alerts: alert %d: %w", i, err)
		}
		if err := checkIdentifier("device", a.Device); err != nil {
			return nil, fmt.Errorf("scom: raise alerts: alert %d (%q): %w", i, a.Key, err)
		}
		if utf16Len(a.Device) > MaxEventStringLength {
			return nil, fmt.Errorf("scom: raise alerts: alert %q: device name longer than an event log string (%d): %w", a.Key, MaxEventStringLength, ErrInvalid)
		}
		if strings.TrimSpace(a.Summary) == "" {
			return nil, fmt.Errorf("scom: raise alerts: alert %q: summary is empty: %w", a.Key, ErrInvalid)
		}
		sev := a.Severity
		switch sev {
		case "":
			sev = SeverityCritical
		case SeverityCritical, SeverityWarning, SeverityInformation:
		default:
			return nil, fmt.Errorf("scom: raise alerts: alert %q: unknown severity %q: %w", a.Key, sev, ErrInvalid)
		}
		stored := StoredKey(a.Key)
		if other, dup := seen[stored]; dup {
			return nil, fmt.Errorf("scom: raise alerts: keys %q and %q are the same alert: %w", other, a.Key, ErrInvalid)
		}
		seen[stored] = a.Key
		req.Alerts = append(req.Alerts, alertData{
			Key: stored, Device: a.Device, Severity: string(sev),
			Summary: eventText(xmlText(a.Summary)), Description: eventText(xmlText(a.Description)),
			Change: eventText(xmlText(a.Change)), ErrorCode: eventText(xmlText(a.ErrorCode)),
		})
	}
	var ans raiseAnswer
	if err := c.run(ctx, "raise alerts", RaiseAlertsTemplate, req, &ans); err != nil {
		return nil, err
	}
	if len(ans.Results) != len(alerts) {
		return nil, fmt.Errorf("scom: raise alerts: %d results for %d alerts", len(ans.Results), len(alerts))
	}
	out := make([]RaiseResult, len(alerts))
	for i, r := range ans.Results {
		if r.Key != req.Alerts[i].Key {
			return nil, fmt.Errorf("scom: raise alerts: result %d is for another key", i)
		}
		out[i] = RaiseResult{
			Key: alerts[i].Key, Device: alerts[i].Device, Computer: r.Computer,
			AlertID: r.AlertID, Outcome: r.Outcome, Message: r.Message,
		}
	}
	return out, nil
}

func waitSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(math.Ceil(d.Seconds()))
}

// ---- ticket and resolve ----------------------------------------------------------

// AlertRef names alerts: by AlertID (that one alert, whatever its state) or,
// when AlertID is empty, by Key (the alerts with that key; which ones depends
// on the method).
type AlertRef struct {
	Key     string
	AlertID string
}

// TicketLink asks for an alert's TicketId to be set.
type TicketLink struct {
	// Key or AlertID names the alert, as in AlertRef. By key, the open
	// alerts with that key are updated.
	Key     string
	AlertID string
	// TicketID is the incident number, e.g. INC0010001.
	TicketID string
}

// UpdateOutcome says what SetTicket or ResolveAlerts did for one reference.
type UpdateOutcome string

// The outcomes of SetTicket and ResolveAlerts.
const (
	// TicketSet: at least one alert's TicketId was changed.
	TicketSet UpdateOutcome = "set"
	// Unchanged: every alert already had the ticket id.
	Unchanged UpdateOutcome = "unchanged"
	// Closed: at least one open alert was closed.
	Closed UpdateOutcome = "closed"
	// AlreadyClosed: the alerts were closed already.
	AlreadyClosed UpdateOutcome = "already_closed"
	// NotFound: no alert matched (by key: none open for SetTicket, none at
	// all for ResolveAlerts). For a Pending alert, try again later.
	NotFound UpdateOutcome = "not_found"
)

// UpdateResult is the answer for one reference.
type UpdateResult struct {
	// Key and AlertID are as given.
	Key     string
	AlertID string
	// AlertIDs are the alerts the reference matched.
	AlertIDs []string
	Outcome  UpdateOutcome
}

type refData struct {
	Key      string `json:"key"`
	AlertID  string `json:"alert_id"`
	TicketID string `json:"ticket_id,omitempty"`
}

type ticketRequest struct {
	ManagementServer string    `json:"management_server"`
	Links            []refData `json:"links"`
	Comment          string    `json:"comment"`
}

type resolveRequest struct {
	ManagementServer string    `json:"management_server"`
	Refs             []refData `json:"refs"`
	Comment          string    `json:"comment"`
}

type updateAnswer struct {
	Results []struct {
		Key      string        `json:"key"`
		AlertID  string        `json:"alert_id"`
		AlertIDs []string      `json:"alert_ids"`
		Outcome  UpdateOutcome `json:"outcome"`
	} `json:"results"`
}

// ref validates one reference and returns its data form.
func ref(key, alertID string) (refData, error) {
	if alertID != "" {
		id, err := uuid.Parse(alertID)
		if err != nil {
			return refData{}, fmt.Errorf("alert id %q is not a GUID: %w", alertID, ErrInvalid)
		}
		return refData{Key: StoredKey(key), AlertID: id.String()}, nil
	}
	if err := checkIdentifier("key", key); err != nil {
		return refData{}, err
	}
	return refData{Key: StoredKey(key)}, nil
}

// SetTicket sets the TicketId of the referenced alerts in one call
// (Set-SCOMAlert -TicketId), leaving alerts that already have it alone.
// Results are in the order of links.
func (c *Client) SetTicket(ctx context.Context, links []TicketLink) ([]UpdateResult, error) {
	if len(links) == 0 {
		return []UpdateResult{}, nil
	}
	req := ticketRequest{ManagementServer: c.opts.ManagementServer, Comment: "Linked to ticket by autopatch."}
	for i, l := range links {
		d, err := ref(l.Key, l.AlertID)
		if err != nil {
			return nil, fmt.Errorf("scom: set ticket: link %d: %w", i, err)
		}
		if err := checkIdentifier("ticket id", l.TicketID); err != nil {
			return nil, fmt.Errorf("scom: set ticket: link %d: %w", i, err)
		}
		if n := utf16Len(l.TicketID); n > MaxTicketIDLength {
			return nil, fmt.Errorf("scom: set ticket: link %d: ticket id is %d characters long, SCOM holds %d: %w",
				i, n, MaxTicketIDLength, ErrInvalid)
		}
		d.TicketID = l.TicketID
		req.Links = append(req.Links, d)
	}
	var ans updateAnswer
	if err := c.run(ctx, "set ticket", SetTicketTemplate, req, &ans); err != nil {
		return nil, err
	}
	keys := make([]AlertRef, len(links))
	for i, l := range links {
		keys[i] = AlertRef{Key: l.Key, AlertID: l.AlertID}
	}
	return updateResults("set ticket", keys, ans)
}

// ResolveAlerts closes the referenced alerts (ResolutionState 255, with
// comment in their history) in one call: by id that alert, by key every
// open alert with the key. Closing a closed alert is AlreadyClosed, so a
// retry is safe. Results are in the order of refs.
func (c *Client) ResolveAlerts(ctx context.Context, refs []AlertRef, comment string) ([]UpdateResult, error) {
	if len(refs) == 0 {
		return []UpdateResult{}, nil
	}
	req := resolveRequest{ManagementServer: c.opts.ManagementServer, Comment: xmlText(comment)}
	for i, r := range refs {
		d, err := ref(r.Key, r.AlertID)
		if err != nil {
			return nil, fmt.Errorf("scom: resolve alerts: ref %d: %w", i, err)
		}
		req.Refs = append(req.Refs, d)
	}
	var ans updateAnswer
	if err := c.run(ctx, "resolve alerts", ResolveAlertsTemplate, req, &ans); err != nil {
		return nil, err
	}
	return updateResults("resolve alerts", refs, ans)
}

func updateResults(action string, refs []AlertRef, ans updateAnswer) ([]UpdateResult, error) {
	if len(ans.Results) != len(refs) {
		return nil, fmt.Errorf("scom: %s: %d results for %d references", action, len(ans.Results), len(refs))
	}
	out := make([]UpdateResult, len(refs))
	for i, r := range ans.Results {
		ids := r.AlertIDs
		if ids == nil {
			ids = []string{}
		}
		out[i] = UpdateResult{Key: refs[i].Key, AlertID: refs[i].AlertID, AlertIDs: ids, Outcome: r.Outcome}
	}
	return out, nil
}
