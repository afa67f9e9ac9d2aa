// Package ledger builds the compliance ledger of a change or a patch cycle
// (docs/architecture.md §9.1) from the evidence the store holds, deciding each
// device's outcome with internal/compliance. The API, the report command,
// the metrics and the summary note all read it through here, so they agree.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/autopatch/autopatch/internal/calendar"
	"github.com/autopatch/autopatch/internal/compliance"
	"github.com/autopatch/autopatch/internal/deadline"
	"github.com/autopatch/autopatch/internal/store"
)

// DefaultDeadlineAfter is AUTOPATCH_DEADLINE_NORMAL's default: a cycle's
// devices must be patched 30 days after its Patch Tuesday.
const DefaultDeadlineAfter = 30 * 24 * time.Hour

// Options configure how a ledger is built. The zero value is usable.
type Options struct {
	// DeadlineAfter is the normal deadline after Patch Tuesday; zero means
	// DefaultDeadlineAfter.
	DeadlineAfter time.Duration
	// DeadlineCritical (after Patch Tuesday) and DeadlineEmergency (after
	// the change's start) are the other classifications' defaults; zero
	// means internal/deadline's.
	DeadlineCritical, DeadlineEmergency time.Duration
	// DeadlineFor, when set, gives a change's deadline instead (tests and
	// the demo, whose changes cannot wait for a real cycle's deadline).
	DeadlineFor func(store.ChangeRow) time.Time
}

// Deadline is the deadline of change c: the one it gives, else its
// classification's (docs/architecture.md §9.2).
func (o Options) Deadline(c store.ChangeRow) time.Time {
	if o.DeadlineFor != nil {
		return o.DeadlineFor(c)
	}
	return o.Policy().Of(deadline.Classification(c.Classification), c.Start, c.Deadline)
}

// Policy is the deadline policy of the options.
func (o Options) Policy() deadline.Policy {
	return deadline.Policy{Normal: o.deadlineAfter(), Critical: o.DeadlineCritical, Emergency: o.DeadlineEmergency}
}

func (o Options) deadlineAfter() time.Duration {
	if o.DeadlineAfter > 0 {
		return o.DeadlineAfter
	}
	return DefaultDeadlineAfter
}

// Scope says what a ledger covers: one change or one cycle.
type Scope struct {
	Change string `json:"change,omitempty"`
	Cycle  string `json:"cycle,omitempty"`
}

// Device is one device's line in the ledger (the §9.1 JSON, plus the change
// it belongs to and the age and source of its evidence).
type Device struct {
	Change        string             `json:"change"`
	Device        string             `json:"device"`
	Schedule      string             `json:"schedule"`
	Kind          string             `json:"kind"`
	Service       string             `json:"service"`
	Tier          string             `json:"tier"`
	Outcome       compliance.Outcome `json:"outcome"`
	StatusAt      *time.Time         `json:"status_at"`
	StatusType    int                `json:"status_type,omitempty"`
	ErrorCode     string             `json:"error_code,omitempty"`
	WindowStart   *time.Time         `json:"window_start"`
	WindowEnd     *time.Time         `json:"window_end"`
	Deadline      time.Time          `json:"deadline"`
	ByDeadline    bool               `json:"by_deadline"`
	DeferredUntil *time.Time         `json:"deferred_until"`
	// ForcedAt is when forced remediation put the device into the forced
	// collection (its wave opened); ForcedResult what the forced
	// deployment did: patched, failed, no_status, unknown, or running
	// while the wave is open (§9.2).
	ForcedAt     *time.Time `json:"forced_at"`
	ForcedResult string     `json:"forced_result,omitempty"`
	Evidence     string     `json:"evidence"`
	Source       string     `json:"source,omitempty"`
	// EvidenceAt is when autopatch read the evidence from SCCM: how old the
	// outcome is. Null when there is none (pending, never read).
	EvidenceAt *time.Time `json:"evidence_at"`
}

// Ledger is the answer of GET /api/v1/compliance.
type Ledger struct {
	Scope   Scope              `json:"scope"`
	AsOf    time.Time          `json:"as_of"`
	Summary compliance.Summary `json:"summary"`
	// EvidenceAt is the newest evidence read for the ledger; OldestEvidence
	// the oldest (null when none): an SCCM outage shows here.
	EvidenceAt     *time.Time `json:"evidence_at"`
	OldestEvidence *time.Time `json:"oldest_evidence_at"`
	Devices        []Device   `json:"devices"`
}

// CycleOf is the patch cycle of a change: the UTC month of its planned start.
func CycleOf(c store.ChangeRow) calendar.Month {
	return calendar.MonthOf(c.Start.UTC())
}

// DeadlineOf is the normal deadline of a cycle: its Patch Tuesday (00:00
// UTC) plus after.
func DeadlineOf(m calendar.Month, after time.Duration) time.Time {
	day := calendar.PatchTuesday(m.Year, m.Month)
	return compliance.Deadline(time.Date(m.Year, m.Month, day, 0, 0, 0, 0, time.UTC), after)
}

// ErrNotFound is returned for an unknown change.
var ErrNotFound = errors.New("ledger: no such change")

// ForChange builds the ledger of one change at now.
func ForChange(ctx context.Context, db store.DBTX, number string, now time.Time, opts Options) (Ledger, error) {
	ev, err := store.ChangeLedgerEvidence(ctx, db, number)
	if errors.Is(err, store.ErrNotFound) {
		return Ledger{}, fmt.Errorf("%w: %s", ErrNotFound, number)
	}
	if err != nil {
		return Ledger{}, err
	}
	devs := Devices(ev, now, opts)
	return assemble(Scope{Change: ev.Change.Number}, devs, now), nil
}

// ForCycle builds the ledger of every change whose planned start is in the
// month m, at now.
func ForCycle(ctx context.Context, db store.DBTX, m calendar.Month, now time.Time, opts Options) (Ledger, error) {
	from := time.Date(m.Year, m.Month, 1, 0, 0, 0, 0, time.UTC)
	numbers, err := store.ChangesStartingIn(ctx, db, from, from.AddDate(0, 1, 0))
	if err != nil {
		return Ledger{}, err
	}
	var devs []Device
	for _, n := range numbers {
		ev, err := store.ChangeLedgerEvidence(ctx, db, n)
		if err != nil {
			return Ledger{}, err
		}
		devs = append(devs, Devices(ev, now, opts)...)
	}
	return assemble(Scope{Cycle: m.String()}, devs, now), nil
}

func assemble(scope Scope, devs []Device, now time.Time) Ledger {
	l := Ledger{Scope: scope, AsOf: now.UTC(), Devices: devs}
	if l.Devices == nil {
		l.Devices = []Device{}
	}
	entries := make([]compliance.Entry, 0, len(devs))
	for _, d := range devs {
		r := compliance.Result{Outcome: d.Outcome}
		if d.StatusAt != nil {
			r.StatusAt = *d.StatusAt
		}
		if d.EvidenceAt != nil {
			r.EvidenceAt = *d.EvidenceAt
			if l.EvidenceAt == nil || d.EvidenceAt.After(*l.EvidenceAt) {
				l.EvidenceAt = d.EvidenceAt
			}
			if l.OldestEvidence == nil || d.EvidenceAt.Before(*l.OldestEvidence) {
				l.OldestEvidence = d.EvidenceAt
			}
		}
		entries = append(entries, compliance.Entry{Result: r, Deadline: d.Deadline})
	}
	l.Summary = compliance.Summarize(entries, now)
	return l
}

// Devices decides every device of one change from its evidence at now.
// Devices in scope are the managed devices of the schedules of the change's
// latest plan, and any other device SCCM reported in its deployments.
func Devices(ev store.LedgerEvidence, now time.Time, opts Options) []Device {
	changeDeadline := opts.Deadline(ev.Change)
	if ev.Plan == nil {
		return nil
	}
	type window struct{ start, end *time.Time }
	windows := map[string]window{}
	for _, e := range ev.Plan.Entries {
		windows[e.Schedule] = window{e.WindowStart, e.WindowEnd}
	}
	// The deployments of each schedule's current window: a re-plan leaves
	// obsolete ones behind, which are not evidence of this plan.
	deps := map[int64]store.LedgerDeployment{}
	bySchedule := map[string][]store.LedgerDeployment{}
	for _, d := range ev.Deployments {
		w, ok := windows[d.Schedule]
		if !ok || w.start == nil || !w.start.Equal(d.WindowStart) {
			continue
		}
		switch d.State {
		case store.DeploymentCreated, store.DeploymentOpen, store.DeploymentClosed, store.DeploymentMissed:
			deps[d.ID] = d
			bySchedule[d.Schedule] = append(bySchedule[d.Schedule], d)
		}
	}

	scope := append([]store.ScopeDevice(nil), ev.Devices...)
	known := map[string]bool{}
	for _, d := range scope {
		known[strings.ToLower(d.Name)] = true
	}
	for _, r := range ev.Results {
		d, ok := deps[r.DeploymentID]
		if ok && !known[strings.ToLower(r.Device)] {
			known[strings.ToLower(r.Device)] = true
			scope = append(scope, store.ScopeDevice{Name: r.Device, Schedule: d.Schedule})
		}
	}
	// Members SCCM listed in a compliance read or the pre-flight are in
	// scope too: a manual_patch schedule has no deployment to report them.
	for _, m := range ev.Manual {
		if _, ok := windows[m.Schedule]; ok && !known[strings.ToLower(m.Device)] {
			known[strings.ToLower(m.Device)] = true
			scope = append(scope, store.ScopeDevice{Name: m.Device, Schedule: m.Schedule})
		}
	}
	for _, c := range ev.Clients {
		if _, ok := windows[c.Schedule]; ok && !known[strings.ToLower(c.Device)] {
			known[strings.ToLower(c.Device)] = true
			scope = append(scope, store.ScopeDevice{Name: c.Device, Schedule: c.Schedule})
		}
	}
	statuses := map[string][]compliance.Status{}
	for _, r := range ev.Results {
		d, ok := deps[r.DeploymentID]
		if !ok {
			continue
		}
		s := compliance.Status{Deployment: d.Name, Type: r.StatusType, ObservedAt: r.ObservedAt}
		if r.ErrorCode != nil {
			s.ErrorCode = *r.ErrorCode
		}
		if r.EnforcementMessage != nil {
			s.EnforcementMessage = *r.EnforcementMessage
		}
		if r.StatusTime != nil {
			s.At = *r.StatusTime
		}
		key := strings.ToLower(r.Device)
		statuses[key] = append(statuses[key], s)
	}
	clients := map[string]store.ClientHealth{}
	for _, c := range ev.Clients {
		clients[strings.ToLower(c.Device)] = c
	}
	manual := map[string]store.ManualCompliance{}
	for _, m := range ev.Manual {
		manual[strings.ToLower(m.Device)] = m
	}

	out := make([]Device, 0, len(scope))
	for _, sd := range scope {
		key := strings.ToLower(sd.Name)
		w := windows[sd.Schedule]
		// An approved deferral moves the device's deadline (§9.2).
		var deferredUntil *time.Time
		if until, ok := ev.Deferrals[key]; ok {
			u := until.UTC()
			deferredUntil = &u
		}
		dl := deadline.Effective(changeDeadline, deferredUntil)
		in := compliance.Device{Name: sd.Name, Kind: ev.Kinds[sd.Schedule], Deadline: dl, Statuses: statuses[key]}
		if w.start != nil {
			in.WindowStart, in.WindowEnd = *w.start, *w.end
		}
		in.FinalRead = finalRead(bySchedule[sd.Schedule], in.WindowEnd, now)
		if c, ok := clients[key]; ok {
			cl := compliance.Client{Installed: c.Installed, Active: c.Active, ObservedAt: c.ObservedAt}
			if c.LastPolicyRequest != nil {
				cl.LastPolicyRequest = *c.LastPolicyRequest
			}
			in.Client = &cl
		}
		if m, ok := manual[key]; ok {
			in.Manual = &compliance.Manual{Required: m.Required, RebootPending: m.RebootPending, ObservedAt: m.ObservedAt}
		}
		r := compliance.Classify(in, now)
		if deferredUntil != nil && !r.Outcome.Patched() && now.Before(*deferredUntil) {
			r.Outcome = compliance.Deferred
			r.Evidence = fmt.Sprintf("deferred until %s UTC by an approved deferral; %s",
				deferredUntil.Format("2006-01-02 15:04"), r.Evidence)
		}
		d := Device{Change: ev.Change.Number, Device: sd.Name, Schedule: sd.Schedule, Kind: in.Kind,
			Service: sd.Service, Tier: sd.Tier, Outcome: r.Outcome, StatusType: r.StatusType,
			WindowStart: w.start, WindowEnd: w.end, Deadline: dl, ByDeadline: r.ByDeadline(dl),
			DeferredUntil: deferredUntil, Evidence: r.Evidence, Source: r.Source}
		if f, ok := ev.Forced[key]; ok {
			r = forced(&d, f, r)
		}
		if !r.StatusAt.IsZero() {
			t := r.StatusAt.UTC()
			d.StatusAt = &t
		}
		if !r.EvidenceAt.IsZero() {
			t := r.EvidenceAt.UTC()
			d.EvidenceAt = &t
		}
		if r.ErrorCode != 0 {
			d.ErrorCode = fmt.Sprintf("0x%08X", uint32(r.ErrorCode))
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Change != out[j].Change {
			return out[i].Change < out[j].Change
		}
		return strings.ToLower(out[i].Device) < strings.ToLower(out[j].Device)
	})
	return out
}

// forced makes d the forced device f says it is, once its wave opened:
// outcome forced, with the forced deployment's own result; before that the
// evidence says forcing is planned. It returns r with the status time of a
// forced success, so the ledger's times follow.
func forced(d *Device, f store.ForcedEvidence, r compliance.Result) compliance.Result {
	if f.OpenedAt == nil {
		if f.State == store.WavePlanned {
			d.Evidence = fmt.Sprintf("forcing planned (decided %s UTC); %s", f.PlannedAt.UTC().Format("2006-01-02 15:04"), d.Evidence)
		}
		return r
	}
	at := f.OpenedAt.UTC()
	d.Outcome, d.ForcedAt, d.ByDeadline = compliance.Forced, &at, false
	d.ForcedResult = f.Result
	if d.ForcedResult == "" {
		d.ForcedResult = "running"
	}
	d.Evidence = fmt.Sprintf("forced at %s UTC after its deadline %s UTC: %s", at.Format("2006-01-02 15:04"),
		d.Deadline.UTC().Format("2006-01-02 15:04"), d.ForcedResult)
	d.Source = "forced deployment"
	r.StatusAt = time.Time{}
	if f.StatusTime != nil {
		r.StatusAt = *f.StatusTime
	}
	if f.ErrorCode != nil && *f.ErrorCode != 0 {
		r.ErrorCode = *f.ErrorCode
		d.Evidence += fmt.Sprintf(" 0x%08X", uint32(*f.ErrorCode))
	}
	if f.ObservedAt != nil {
		r.EvidenceAt = *f.ObservedAt
	}
	return r
}

// finalRead: every deployment of the window had its closing status read (a
// missed one never opened, so nothing is coming). A window without
// deployments (manual_patch, held) has nothing to read: its end is final.
func finalRead(deps []store.LedgerDeployment, end, now time.Time) bool {
	if len(deps) == 0 {
		return !end.IsZero() && !now.Before(end)
	}
	for _, d := range deps {
		if d.State == store.DeploymentMissed {
			continue
		}
		if d.State != store.DeploymentClosed || d.FinalPolledAt == nil {
			return false
		}
	}
	return true
}
