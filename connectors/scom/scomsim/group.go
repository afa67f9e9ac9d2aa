// Package scomsim is an in-memory Operations Manager management group for
// tests, the demo and `autopatch sim`. It sits behind a WS-Management server
// (connectors/winrm/wsmansim) and answers exactly the scripts of
// scom.Templates: for each one it does what that PowerShell would do against
// a management group with autopatch's management pack imported, including the
// template's own validation and SCOM's refusals, and writes the same JSON
// answer. Any other script is refused the way a constrained PowerShell
// endpoint refuses it: exit 1 and error text.
//
// The route is the event-log one (integrations/scom/README.md): the template
// writes an event of source "autopatch" to the management server's
// Application log, and the management pack's NT event log rule for its entry
// type raises the alert on the device's Windows Computer. The group models
// what Windows and SCOM do on that route: an unregistered source fails the
// template's check (Options.NoEventSource), an insertion string longer than
// EventLog.WriteEvent accepts is refused, each written event is one data item
// for the rule of its level, with the alert's custom fields taken from its
// parameters, and the rule's suppression (same rule, computer and key while
// the alert is open) raises the repeat count instead of a second alert.
//
// The rule is simulated synchronously: a written event becomes an alert
// before the template looks for it, so RaiseAlerts answers "raised" at once.
// HoldAlerts queues events instead, as a busy management server would, so
// callers can exercise the "pending" path; the template's wait is not
// simulated (no call ever sleeps).
package scomsim

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/autopatch/autopatch/connectors/scom"
	"github.com/autopatch/autopatch/connectors/winrm/wsmansim"
)

// DefaultManagementServer is the name of a Group whose Options name none.
const DefaultManagementServer = "scom01.corp.example"

// The alert name of every autopatch rule (the management pack's DisplayString
// of its alert messages) and the description format of its alerts: the
// summary, a blank line, the description.
const (
	AlertName = "Automated patching needs attention"
)

// Options configure a Group. The zero value is usable.
type Options struct {
	// ManagementServer is the management server's FQDN; the templates may
	// connect to it by that name, by its first label or as localhost.
	// Default DefaultManagementServer.
	ManagementServer string
	// Now is the group's clock (event, alert and history times); default time.Now.
	Now func() time.Time
	// Logger receives one debug line per call; nil discards.
	Logger *slog.Logger
	// NoEventSource models a management server on which nobody has run
	// New-EventLog -LogName Application -Source autopatch: raise_alerts fails
	// its source check before writing anything. Default false (registered).
	NoEventSource bool
}

// Group is the simulated management group. All methods are safe for
// concurrent use; each script runs atomically.
type Group struct {
	server string
	now    func() time.Time
	host   *wsmansim.TemplateHost // counts, refuses and answers the scripts

	mu        sync.Mutex
	computers []*computer
	index     map[string][]*computer // lower-case name -> computers
	events    []*event
	alerts    []*alert
	hold      bool
	queued    []*event
	noSource  bool // the event source is not registered (Options.NoEventSource)
	seq       int
	pack      pack // what the doctor sees of the management pack; see doctor.go
}

type computer struct {
	principal string
	netbios   string
}

// event is one event the template wrote to the management server's
// Application log.
type event struct {
	computer   *computer // the Windows Computer Param[2] names, where the alert goes
	level      int
	params     []string // $Data/Params/Param[1]$ ...
	insertedAt time.Time
	alertID    string // the alert the rule raised or raised again, once processed
}

type alert struct {
	id          string
	rule        string
	computer    *computer
	severity    int // 0 information, 1 warning, 2 critical
	priority    int // 0 low, 1 medium, 2 high
	description string
	custom      [4]string // CustomField1 (key) to CustomField4 (device)
	ticketID    string
	state       int
	raisedAt    time.Time
	resolvedAt  time.Time
	modifiedAt  time.Time
	repeats     int
	history     []HistoryEntry
}

// rules are the management pack's alert rules, by event level.
var rules = map[int]struct {
	id                 string
	severity, priority int
}{
	1: {"Autopatch.Alerts.Rule.Critical", 2, 2},
	2: {"Autopatch.Alerts.Rule.Warning", 1, 1},
	4: {"Autopatch.Alerts.Rule.Information", 0, 0},
}

// New returns a management group that monitors no computer yet.
func New(opts Options) *Group {
	if opts.ManagementServer == "" {
		opts.ManagementServer = DefaultManagementServer
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	g := &Group{
		server:   opts.ManagementServer,
		now:      opts.Now,
		index:    map[string][]*computer{},
		noSource: opts.NoEventSource,
	}
	g.host = wsmansim.NewTemplateHost("scomsim", scom.Templates(), g.dispatch, opts.Logger)
	// A real management server refuses what the modules do not document.
	g.host.CheckSignatures(scom.Signatures())
	return g
}

// ManagementServer returns the management server's name.
func (g *Group) ManagementServer() string { return g.server }

// AddComputer makes a Windows Computer known (an agent reporting to the
// group). principalName is its FQDN and key; netbiosName may be empty. A
// device matches a computer by either name, or by the display name (the
// principal name), case-insensitively.
func (g *Group) AddComputer(principalName, netbiosName string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if principalName == "" {
		return fmt.Errorf("scomsim: add computer: empty principal name")
	}
	for _, c := range g.computers {
		if c.principal == principalName {
			return fmt.Errorf("scomsim: add computer %q: already exists", principalName)
		}
	}
	c := &computer{principal: principalName, netbios: netbiosName}
	g.computers = append(g.computers, c)
	for _, n := range uniqueLower(principalName, netbiosName) {
		g.index[n] = append(g.index[n], c)
	}
	return nil
}

func uniqueLower(names ...string) []string {
	var out []string
	for _, n := range names {
		// ToLowerInvariant in the template; strings.ToLower is the same
		// mapping for every name a computer can have.
		if l := strings.ToLower(n); n != "" && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

// SetEventSource registers (true) or removes (false) the "autopatch" event
// source, as New-EventLog and Remove-EventLog -Source do on the management server.
func (g *Group) SetEventSource(registered bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.noSource = !registered
}

// HoldAlerts makes the rule stop turning events into alerts (hold true), as
// when the management server is busy, or fire every queued event in order
// and resume (hold false).
func (g *Group) HoldAlerts(hold bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hold = hold
	if hold {
		return
	}
	queued := g.queued
	g.queued = nil
	for _, e := range queued {
		g.fire(e)
	}
}

// SetResolutionState changes an alert's resolution state as an operator
// does in the console (255 closes it). Unknown ids are an error.
func (g *Group) SetResolutionState(id string, state int, comment string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	a := g.alertByID(id)
	if a == nil {
		return fmt.Errorf("scomsim: set resolution state: no alert %s", id)
	}
	if state < 0 || state > 255 {
		return fmt.Errorf("scomsim: set resolution state: %d is not a resolution state", state)
	}
	g.setState(a, state, "console operator", comment)
	return nil
}

// Calls returns how many scripts the group has been asked to run, refused ones
// included: each is one WinRM command.
func (g *Group) Calls() int { return g.host.Calls() }

// CallsByTemplate returns the number of runs per template name; refused
// scripts count under "(refused)".
func (g *Group) CallsByTemplate() map[string]int { return g.host.CallsByTemplate() }

// Handles reports whether script is one of the SCOM templates, byte for
// byte. A host that serves several simulators dispatches on it.
func (g *Group) Handles(script string) bool { return g.host.Handles(script) }

// Run executes one script with its decoded data, as powershell.exe on the
// management server would: the JSON answer on stdout and exit 0, or error
// text on stderr and exit 1. Its signature is what wsmansim.PowerShell takes.
func (g *Group) Run(ctx context.Context, script string, data []byte) (stdout []byte, stderr string, exit int) {
	return g.host.Run(ctx, script, data)
}

// dispatch runs one template under the group's lock, so each script is atomic.
func (g *Group) dispatch(name string, data []byte) (any, *wsmansim.PSError) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var probe struct {
		ManagementServer string `json:"management_server"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, wsmansim.CmdletError("ConvertFrom-Json", "Invalid JSON primitive: "+err.Error())
	}
	if !g.answersTo(probe.ManagementServer) {
		// New-SCOMManagementGroupConnection to a server that is not this one.
		return nil, wsmansim.CmdletError("New-SCOMManagementGroupConnection -ComputerName $ManagementServer",
			"The Data Access service is either not running or not yet initialized. Check the event log for more information.")
	}
	switch name {
	case scom.RaiseAlertsTemplate:
		return decodeAnd(data, g.raiseAlerts)
	case scom.SetTicketTemplate:
		return decodeAnd(data, g.setTicket)
	case scom.ResolveAlertsTemplate:
		return decodeAnd(data, g.resolveAlerts)
	case scom.DoctorTemplate:
		return decodeAnd(data, g.doctor)
	}
	return nil, wsmansim.Throw("scomsim has no implementation of template " + name)
}

func (g *Group) answersTo(server string) bool {
	s := strings.ToLower(server)
	short, _, _ := strings.Cut(strings.ToLower(g.server), ".")
	return s == "" || s == "localhost" || s == strings.ToLower(g.server) || s == short
}

// decodeAnd decodes a template's data; a value of the wrong type fails the
// script's casts, [string]$value first.
func decodeAnd[Req any](data []byte, f func(Req) (any, *wsmansim.PSError)) (any, *wsmansim.PSError) {
	return wsmansim.DecodeAnd(data, "[string]$value", f)
}

// NotATemplateError is the error text for a script that is not one of the
// templates: what a constrained (JEA) endpoint that allows only approved
// scripts answers.
func NotATemplateError() string { return wsmansim.NotATemplateError() }

// ---- the rule ------------------------------------------------------------------

// write records an event in the Application log and lets the rule process
// it (or queues it).
func (g *Group) write(e *event) {
	g.events = append(g.events, e)
	if g.hold {
		g.queued = append(g.queued, e)
		return
	}
	g.fire(e)
}

// fire is the management pack's rule for the event's level: a new alert on
// the event's computer, unless an open alert of the same rule on the same
// computer has the same suppression value (the key), which gets its repeat
// count raised instead.
func (g *Group) fire(e *event) {
	r, ok := rules[e.level]
	if !ok {
		return // no rule listens for this level
	}
	now := g.now().UTC()
	key := e.params[0]
	for _, a := range g.alerts {
		if a.rule == r.id && a.computer == e.computer && a.custom[0] == key && a.state != scom.ResolutionClosed {
			a.repeats++
			a.modifiedAt = now
			e.alertID = a.id
			return
		}
	}
	g.seq++
	a := &alert{
		id:       uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "scomsim/%s/alert/%d", g.server, g.seq)).String(),
		rule:     r.id,
		computer: e.computer,
		severity: r.severity, priority: r.priority,
		// The alert message's description: "{0}\n\n{1}" with the summary and
		// the description (Param[3] and Param[4]).
		description: e.params[2] + "\n\n" + e.params[3],
		// Custom1..4: key, change, error code, device (Param[1], [5], [6], [7]).
		custom:   [4]string{e.params[0], e.params[4], e.params[5], e.params[6]},
		raisedAt: now, modifiedAt: now,
	}
	g.alerts = append(g.alerts, a)
	e.alertID = a.id
}

func (g *Group) alertByID(id string) *alert {
	for _, a := range g.alerts {
		if a.id == id {
			return a
		}
	}
	return nil
}

func (g *Group) setState(a *alert, state int, by, comment string) {
	now := g.now().UTC()
	a.state = state
	a.modifiedAt = now
	if state == scom.ResolutionClosed {
		a.resolvedAt = now
	} else {
		a.resolvedAt = time.Time{}
	}
	a.history = append(a.history, HistoryEntry{At: now, By: by, ResolutionState: state, TicketID: a.ticketID, Comment: comment})
}

// alertsByKey is Find-ApAlertsByKey: exact key, oldest first.
func (g *Group) alertsByKey(key string, openOnly bool) []*alert {
	var out []*alert
	for _, a := range g.alerts {
		if a.custom[0] == key && (!openOnly || a.state != scom.ResolutionClosed) {
			out = append(out, a)
		}
	}
	return out // g.alerts is in TimeRaised order
}

// ---- the templates ---------------------------------------------------------------

// operator is who the templates act as: the account the WinRM call runs under.
const operator = "autopatch (Operations Manager Operators)"

type raiseReq struct {
	WaitSeconds int `json:"wait_seconds"`
	Alerts      []struct {
		Key         string `json:"key"`
		Device      string `json:"device"`
		Severity    string `json:"severity"`
		Summary     string `json:"summary"`
		Description string `json:"description"`
		Change      string `json:"change"`
		ErrorCode   string `json:"error_code"`
	} `json:"alerts"`
}

type raiseResult struct {
	Key      string `json:"key"`
	Device   string `json:"device"`
	Computer string `json:"computer"`
	AlertID  string `json:"alert_id"`
	Outcome  string `json:"outcome"`
	Message  string `json:"message"`
}

// levels are the template's entry types per severity, as EventLevel numbers
// (EventLogEntryType Error 1, Warning 2, Information 4). The template's
// -notcontains and hashtable look-ups are case-insensitive, hence ToLower.
var levels = map[string]int{"critical": 1, "warning": 2, "information": 4}

func (g *Group) raiseAlerts(req raiseReq) (any, *wsmansim.PSError) {
	// Validation, in the template's order; its throw texts.
	keys := map[string]bool{}
	for _, a := range req.Alerts {
		if n := utf16Len(a.Key); n < 1 || n > scom.MaxKeyLength {
			return nil, wsmansim.Throw(fmt.Sprintf("The alert key '%s' is %d characters long; CustomField1 holds 1 to %d.", a.Key, n, scom.MaxKeyLength))
		}
		if keys[a.Key] {
			return nil, wsmansim.Throw("The alert key '" + a.Key + "' appears more than once in this request.")
		}
		keys[a.Key] = true
		if _, ok := levels[strings.ToLower(a.Severity)]; !ok {
			return nil, wsmansim.Throw("Unknown severity '" + a.Severity + "' for the alert key '" + a.Key + "'.")
		}
		for _, v := range []string{a.Summary, a.Description, a.Change, a.ErrorCode, a.Device} {
			if n := utf16Len(v); n > scom.MaxEventStringLength {
				return nil, wsmansim.Throw(fmt.Sprintf("A text of the alert key '%s' is %d characters long; an event log string holds %d.", a.Key, n, scom.MaxEventStringLength))
			}
		}
	}
	// The template's LogNameFromSourceName check: without the source, nothing is written.
	if g.noSource {
		return nil, wsmansim.Throw("The event source '" + scom.EventSource + "' is not registered in the " + scom.EventLog +
			" log of this management server (registered in: ''). Run once as an administrator: New-EventLog -LogName " +
			scom.EventLog + " -Source " + scom.EventSource)
	}

	now := g.now().UTC()
	results := []*raiseResult{}
	var pending []*raiseResult
	for _, a := range req.Alerts {
		res := &raiseResult{Key: a.Key, Device: a.Device}
		results = append(results, res)
		found := g.index[strings.ToLower(a.Device)]
		switch {
		case len(found) == 0:
			res.Outcome = "unknown_device"
			res.Message = "No Windows Computer named '" + a.Device + "' is monitored by this management group."
			continue
		case len(found) > 1:
			names := make([]string, len(found))
			for i, c := range found {
				names[i] = c.principal
			}
			slices.Sort(names)
			res.Outcome = "ambiguous_device"
			res.Message = fmt.Sprintf("The name '%s' matches %d Windows Computers: %s.", a.Device, len(found), strings.Join(names, ", "))
			continue
		}
		c := found[0]
		res.Computer = c.principal
		if open := g.alertsByKey(a.Key, true); len(open) > 0 {
			res.AlertID, res.Outcome = open[0].id, "existing"
			continue
		}
		g.write(&event{
			computer: c, level: levels[strings.ToLower(a.Severity)], insertedAt: now,
			params: []string{a.Key, c.principal, a.Summary, a.Description, a.Change, a.ErrorCode, a.Device},
		})
		res.Outcome = "pending"
		pending = append(pending, res)
	}
	// The template's look-up after the writes; the wait itself is not simulated.
	for _, res := range pending {
		if open := g.alertsByKey(res.Key, true); len(open) > 0 {
			res.AlertID, res.Outcome = open[0].id, "raised"
		}
	}
	return map[string]any{"results": results}, nil
}

type refReq struct {
	Key      string `json:"key"`
	AlertID  string `json:"alert_id"`
	TicketID string `json:"ticket_id"`
}

type updateResult struct {
	Key      string   `json:"key"`
	AlertID  string   `json:"alert_id"`
	AlertIDs []string `json:"alert_ids"`
	Outcome  string   `json:"outcome"`
}

// find is Find-ApAlerts: by id (a GUID, in any case), or by key.
func (g *Group) find(r refReq, openOnly bool) []*alert {
	if r.AlertID != "" {
		id, _ := uuid.Parse(r.AlertID) // validated before
		if a := g.alertByID(id.String()); a != nil {
			return []*alert{a}
		}
		return nil
	}
	return g.alertsByKey(r.Key, openOnly)
}

// checkGUID is the templates' [guid] cast.
func checkGUID(s string) *wsmansim.PSError {
	if s == "" {
		return nil
	}
	if _, err := uuid.Parse(s); err != nil {
		return wsmansim.CmdletError("[guid][string]$link.alert_id",
			`Cannot convert value "`+s+`" to type "System.Guid". Error: "Guid should contain 32 digits with 4 dashes (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)."`)
	}
	return nil
}

func (g *Group) setTicket(req struct {
	Links   []refReq `json:"links"`
	Comment string   `json:"comment"`
}) (any, *wsmansim.PSError) {
	for _, l := range req.Links {
		if n := utf16Len(l.TicketID); n < 1 || n > scom.MaxTicketIDLength {
			return nil, wsmansim.Throw(fmt.Sprintf("The ticket id '%s' is %d characters long; TicketId holds 1 to %d.", l.TicketID, n, scom.MaxTicketIDLength))
		}
		if err := checkGUID(l.AlertID); err != nil {
			return nil, err
		}
	}
	results := []updateResult{}
	for _, l := range req.Links {
		ids := []string{}
		changed := false
		for _, a := range g.find(l, true) {
			ids = append(ids, a.id)
			if a.ticketID == l.TicketID {
				continue
			}
			a.ticketID = l.TicketID
			now := g.now().UTC()
			a.modifiedAt = now
			a.history = append(a.history, HistoryEntry{At: now, By: operator, ResolutionState: a.state, TicketID: a.ticketID, Comment: req.Comment})
			changed = true
		}
		outcome := "unchanged"
		switch {
		case len(ids) == 0:
			outcome = "not_found"
		case changed:
			outcome = "set"
		}
		results = append(results, updateResult{Key: l.Key, AlertID: l.AlertID, AlertIDs: ids, Outcome: outcome})
	}
	return map[string]any{"results": results}, nil
}

func (g *Group) resolveAlerts(req struct {
	Refs    []refReq `json:"refs"`
	Comment string   `json:"comment"`
}) (any, *wsmansim.PSError) {
	for _, r := range req.Refs {
		if err := checkGUID(r.AlertID); err != nil {
			return nil, err
		}
	}
	results := []updateResult{}
	for _, r := range req.Refs {
		ids := []string{}
		closed := 0
		for _, a := range g.find(r, false) {
			ids = append(ids, a.id)
			if a.state == scom.ResolutionClosed {
				continue
			}
			g.setState(a, scom.ResolutionClosed, operator, req.Comment)
			closed++
		}
		outcome := "already_closed"
		switch {
		case len(ids) == 0:
			outcome = "not_found"
		case closed > 0:
			outcome = "closed"
		}
		results = append(results, updateResult{Key: r.Key, AlertID: r.AlertID, AlertIDs: ids, Outcome: outcome})
	}
	return map[string]any{"results": results}, nil
}

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
	}
	return n
}
