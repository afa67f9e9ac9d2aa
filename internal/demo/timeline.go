package demo

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/autopatch/autopatch/internal/estate"
)

// timeline prints what happens, as it happens: the demo's own steps (playing
// ServiceNow and the operator) and every change it sees in the simulated
// estate, which is what autopatch did.
type timeline struct {
	mu       sync.Mutex
	out      io.Writer
	start    time.Time
	progress string // the current progress line, redrawn in place on a terminal
	tty      bool
	// tag, when set, names the customer of every line (the two-customer
	// demo): "acme SCCM" instead of "SCCM".
	tag string

	// what has been printed already
	members  map[string]bool // collection\x00device
	deps     map[string]int  // deployment → events printed
	created  map[string]bool
	deleted  map[string]bool
	alerts   map[string]string // id → "raised" / "ticket" / "closed"
	incident map[string]string // number → state printed
	notes    int
	records  map[string]string // sys_id → number, for notes
}

func newTimeline(out io.Writer, tty bool) *timeline {
	return &timeline{
		out: out, tty: tty, start: time.Now(),
		members: map[string]bool{}, deps: map[string]int{}, created: map[string]bool{}, deleted: map[string]bool{},
		alerts: map[string]string{}, incident: map[string]string{}, records: map[string]string{},
	}
}

// line prints one timeline entry.
func (t *timeline) line(source, format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.printLocked(time.Now(), source, fmt.Sprintf(format, args...))
}

func (t *timeline) printLocked(at time.Time, source, text string) {
	if t.tty && t.progress != "" {
		fmt.Fprint(t.out, "\r\033[K")
	}
	first, rest, _ := strings.Cut(text, "\n")
	width, indent := 5, 30
	if t.tag != "" {
		source, width, indent = t.tag+" "+source, tagWidth, 25+tagWidth
	}
	fmt.Fprintf(t.out, "%7.1fs  %s  %-*s %s\n", at.Sub(t.start).Seconds(), at.Format("15:04:05.000"), width, source, first)
	for _, l := range strings.Split(rest, "\n") {
		if l != "" {
			fmt.Fprintf(t.out, "%*s%s\n", indent, "", l)
		}
	}
	if t.tty && t.progress != "" {
		fmt.Fprint(t.out, t.progress)
	}
}

// tagWidth is the width of a tagged source column: a customer's name and
// its system ("contoso SCCM").
const tagWidth = 13

// setProgress shows a one-line status while the demo waits (terminals only).
func (t *timeline) setProgress(text string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.tty {
		return
	}
	if text == "" {
		if t.progress != "" {
			fmt.Fprint(t.out, "\r\033[K")
		}
		t.progress = ""
		return
	}
	t.progress = "          … " + text
	fmt.Fprint(t.out, "\r\033[K"+t.progress)
}

func (t *timeline) record(sysID, number string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.records[sysID] = number
}

// observe prints what changed in the estate since the last call.
func (t *timeline) observe(s estate.State) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range s.Collections {
		for _, m := range c.Members {
			k := c.Name + "\x00" + m
			if !t.members[k] {
				t.members[k] = true
				t.printLocked(time.Now(), "SCCM", fmt.Sprintf("%s is now a member of %q", m, c.Name))
			}
		}
	}
	for _, d := range s.Deployments {
		if !t.created[d.Name] {
			t.created[d.Name] = true
			restart := ""
			if d.SuppressRestart {
				restart = ", restart suppressed"
			}
			t.printLocked(d.CreatedAt, "SCCM", fmt.Sprintf("deployment %s created DISABLED (%q → %q%s)", d.Name, d.UpdateGroup, d.Collection, restart))
		}
		for _, e := range d.Events[t.deps[d.Name]:] {
			what := "disabled"
			if e.Enabled {
				what = "ENABLED"
			}
			t.printLocked(e.At, "SCCM", fmt.Sprintf("deployment %s %s", d.Name, what))
		}
		t.deps[d.Name] = len(d.Events)
		if d.Deleted && !t.deleted[d.Name] {
			t.deleted[d.Name] = true
			t.printLocked(time.Now(), "SCCM", fmt.Sprintf("deployment %s deleted", d.Name))
		}
	}
	for _, a := range s.Alerts {
		if _, ok := t.alerts[a.ID]; !ok {
			t.alerts[a.ID] = "raised"
			t.printLocked(a.RaisedAt, "SCOM", fmt.Sprintf("alert raised on %s (%s): %s", a.Device, a.Severity, firstLine(a.Description)))
		}
		if a.TicketID != "" && t.alerts[a.ID] == "raised" {
			t.alerts[a.ID] = "ticket"
			t.printLocked(time.Now(), "SCOM", fmt.Sprintf("alert on %s linked to %s", a.Device, a.TicketID))
		}
		if a.ResolutionState == 255 && t.alerts[a.ID] != "closed" {
			t.alerts[a.ID] = "closed"
			t.printLocked(time.Now(), "SCOM", fmt.Sprintf("alert on %s closed (resolution state 255)", a.Device))
		}
	}
	for _, in := range s.Incidents {
		prev, seen := t.incident[in.Number]
		switch {
		case !seen:
			t.printLocked(time.Now(), "SNOW", fmt.Sprintf("incident %s opened: %s", in.Number, in.ShortDescription))
		case prev != in.State:
			t.printLocked(time.Now(), "SNOW", fmt.Sprintf("incident %s is now %s", in.Number, incidentState(in.State)))
		}
		t.incident[in.Number] = in.State
	}
	for _, in := range s.Incidents {
		t.records[in.SysID] = in.Number
	}
	for _, n := range s.WorkNotes[min(t.notes, len(s.WorkNotes)):] {
		rec := t.records[n.SysID]
		if rec == "" {
			rec = n.Table + "/" + n.SysID
		}
		// ServiceNow keeps notes to the second: show when the demo saw
		// them, so the timeline stays in order.
		t.printLocked(time.Now(), "SNOW", fmt.Sprintf("work note on %s: %s", rec, indentNote(n.Text)))
	}
	t.notes = len(s.WorkNotes)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// noteLines is how much of a work note the timeline shows. The demo's
// longest notes (a plan of five schedules with its deployments, a window of
// eight deployments) fit; a longer one is cut, and says where the rest is.
const noteLines = 16

// indentNote keeps a note readable on the timeline.
func indentNote(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > noteLines {
		more := len(lines) - noteLines + 1
		lines = append(lines[:noteLines-1], fmt.Sprintf("… %d more line%s: the whole note is in the summary JSON (work_notes)", more, map[bool]string{true: "", false: "s"}[more == 1]))
	}
	return strings.Join(lines, "\n")
}

func incidentState(s string) string {
	switch s {
	case "1":
		return "New"
	case "2":
		return "In Progress"
	case "6":
		return "Resolved"
	case "7":
		return "Closed"
	}
	return "state " + s
}
