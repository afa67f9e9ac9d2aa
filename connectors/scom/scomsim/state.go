package scomsim

import (
	"time"

	"github.com/autopatch/autopatch/connectors/scom"
)

// State is the group's content, for tests and `autopatch sim`'s GET /state.
type State struct {
	Computers []ComputerState `json:"computers"`
	Events    []EventState    `json:"events"`
	Alerts    []AlertState    `json:"alerts"`
}

// ComputerState is one monitored Windows Computer.
type ComputerState struct {
	PrincipalName string `json:"principal_name"`
	NetBIOSName   string `json:"netbios_name,omitempty"`
}

// EventState is one event the template wrote to the Application log of the
// management server.
type EventState struct {
	// Source, Log and EventID are what the management pack's rules filter on.
	Source  string `json:"source"`
	Log     string `json:"log"`
	EventID int    `json:"event_id"`
	// Level is the entry type as the rules see it: 1 Error, 2 Warning, 4 Information.
	Level int `json:"level"`
	// LoggedOn is the management server whose log holds the event.
	LoggedOn string `json:"logged_on"`
	// Computer is the Windows Computer the alert is raised on (Param[2]).
	Computer string `json:"computer"`
	// Params are the insertion strings, $Data/Params/Param[1]$ onwards.
	Params     []string  `json:"params"`
	InsertedAt time.Time `json:"inserted_at"`
	// AlertID is the alert the rule raised (or raised again) for the event;
	// empty while the rule holds it (HoldAlerts).
	AlertID string `json:"alert_id,omitempty"`
}

// HistoryEntry is one change of an alert, as its history in the console shows.
type HistoryEntry struct {
	At              time.Time `json:"at"`
	By              string    `json:"by"`
	ResolutionState int       `json:"resolution_state"`
	TicketID        string    `json:"ticket_id,omitempty"`
	Comment         string    `json:"comment,omitempty"`
}

// AlertState is one alert. The first five fields are the shape of
// docs/architecture.md §4.5 (contract); the rest are extras.
type AlertState struct {
	ID string `json:"id"`
	// Device is the device as autopatch named it (CustomField4).
	Device          string    `json:"device"`
	TicketID        string    `json:"ticket_id"`
	ResolutionState int       `json:"resolution_state"`
	RaisedAt        time.Time `json:"raised_at"`

	// Key is CustomField1.
	Key string `json:"key"`
	// Computer is the PrincipalName of the Windows Computer the alert is on.
	Computer    string `json:"computer"`
	Rule        string `json:"rule"`
	Name        string `json:"name"`
	Description string `json:"description"`
	// Severity is "Information", "Warning" or "Critical"; Priority "Low",
	// "Medium" or "High".
	Severity string `json:"severity"`
	Priority string `json:"priority"`
	// Change and ErrorCode are CustomField2 and CustomField3.
	Change       string         `json:"change"`
	ErrorCode    string         `json:"error_code"`
	RepeatCount  int            `json:"repeat_count"`
	LastModified time.Time      `json:"last_modified"`
	ResolvedAt   *time.Time     `json:"resolved_at,omitempty"`
	History      []HistoryEntry `json:"history"`
}

var (
	severityNames = [...]string{"Information", "Warning", "Critical"}
	priorityNames = [...]string{"Low", "Medium", "High"}
)

// State returns a snapshot of the group. Slices are never nil, so the JSON
// has [] rather than null.
func (g *Group) State() State {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := State{Computers: []ComputerState{}, Events: []EventState{}, Alerts: g.alertStates()}
	for _, c := range g.computers {
		st.Computers = append(st.Computers, ComputerState{PrincipalName: c.principal, NetBIOSName: c.netbios})
	}
	for _, e := range g.events {
		st.Events = append(st.Events, EventState{
			Source: scom.EventSource, Log: scom.EventLog, EventID: scom.EventID, Level: e.level,
			LoggedOn: g.server, Computer: e.computer.principal, Params: append([]string{}, e.params...),
			InsertedAt: e.insertedAt, AlertID: e.alertID,
		})
	}
	return st
}

// Alerts returns every alert, in the order they were raised.
func (g *Group) Alerts() []AlertState {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.alertStates()
}

func (g *Group) alertStates() []AlertState {
	out := make([]AlertState, 0, len(g.alerts))
	for _, a := range g.alerts {
		as := AlertState{
			ID: a.id, Device: a.custom[3], TicketID: a.ticketID, ResolutionState: a.state, RaisedAt: a.raisedAt,
			Key: a.custom[0], Computer: a.computer.principal, Rule: a.rule, Name: AlertName,
			Description: a.description, Severity: severityNames[a.severity], Priority: priorityNames[a.priority],
			Change: a.custom[1], ErrorCode: a.custom[2], RepeatCount: a.repeats, LastModified: a.modifiedAt,
			History: append([]HistoryEntry{}, a.history...),
		}
		if !a.resolvedAt.IsZero() {
			at := a.resolvedAt
			as.ResolvedAt = &at
		}
		out = append(out, as)
	}
	return out
}
