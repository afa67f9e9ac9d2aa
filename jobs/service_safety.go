package jobs

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/autopatch/autopatch/internal/calendar"
	"github.com/autopatch/autopatch/internal/safety"
	"github.com/autopatch/autopatch/internal/store"
)

// The service-safety policies (docs/architecture.md §1.5, issue #8).
const (
	// PolicyReject refuses a schedule request that would break a rule.
	PolicyReject = "reject"
	// PolicyWarn carries it out (or plans the change) and notes the warning.
	PolicyWarn = "warn"
	// PolicyHold leaves the schedules whose windows would break a rule out
	// of the change.
	PolicyHold = "hold"
)

// SafetyOptions configures the service-safety checks. The zero value
// rejects requests that would break a rule, warns at plan time, and gives
// every redundancy group the default limit (n−1).
type SafetyOptions struct {
	// Services holds the per-service limits in force (the services file);
	// nil means none.
	Services *safety.CurrentServices
	// RequestPolicy is reject (default when empty) or warn.
	RequestPolicy string
	// PlanPolicy is warn (default when empty) or hold.
	PlanPolicy string
}

func (o SafetyOptions) rejectRequests() bool { return o.RequestPolicy != PolicyWarn }
func (o SafetyOptions) holdPlans() bool      { return o.PlanPolicy == PolicyHold }

// Limits of the work notes: a note is for people, and an estate that breaks
// its rules everywhere must not produce a note nobody can read.
const (
	maxNoteViolations = 25
	maxNoteDevices    = 12
	maxSuggestions    = 5
)

// requestSafety is the check of one schedule request.
type requestSafety struct {
	verdict     safety.Verdict
	suggestions []string
	// after is every device of the touched services as the request would
	// leave them, to name the devices of a violation.
	after []safety.Assignment
}

// checkRequestSafety checks a schedule request against the devices of the
// services it touches, under those services' locks, which the caller
// releases (unlock) once the request's assignments are recorded: a
// concurrent request for the same service then checks against them.
func (w *AssignDevicesWorker) checkRequestSafety(ctx context.Context, req store.ScheduleRequest, sched calendar.Schedule) (unlock func(), rs requestSafety, err error) {
	var keys, names []string
	for _, d := range req.Devices {
		keys = append(keys, safety.ServiceKey(d.Service))
		names = append(names, d.Name)
	}
	// The devices may leave other services: find them, lock them all, and
	// read again under the locks.
	members, err := store.ServiceMembers(ctx, w.deps.Pool, keys, names)
	if err != nil {
		return nil, rs, err
	}
	byName := memberIndex(members)
	locked := slices.Clone(keys)
	for _, d := range req.Devices {
		if m, ok := byName[strings.ToLower(d.Name)]; ok {
			locked = append(locked, safety.ServiceKey(m.Service))
		}
	}
	unlock, err = store.LockServices(ctx, w.deps.Pool, locked)
	if err != nil {
		return nil, rs, err
	}
	defer func() {
		if err != nil {
			unlock()
		}
	}()
	if members, err = store.ServiceMembers(ctx, w.deps.Pool, locked, names); err != nil {
		return nil, rs, err
	}
	byName = memberIndex(members)
	for _, d := range req.Devices {
		if m, ok := byName[strings.ToLower(d.Name)]; ok && !slices.Contains(locked, safety.ServiceKey(m.Service)) {
			// Moved to another service by a request that ran meanwhile.
			return nil, rs, fmt.Errorf("assign devices of %s: %s changed service while being checked; retrying", req.RequestItem.Number, d.Name)
		}
	}

	tl := safety.NewTimeline(w.deps.Schedules.Get().All(), safety.NextCycles(w.deps.now()))
	inv := safety.NewInventory(tl, w.deps.Safety.Services.Get())
	requested := map[string]bool{}
	for _, d := range req.Devices {
		requested[strings.ToLower(d.Name)] = true
	}
	for _, m := range members {
		tier, err := safety.ParseTier(m.Tier)
		if err != nil {
			return nil, rs, err
		}
		if err := inv.Add(m.Service, tier, m.Schedule, 1); err != nil {
			return nil, rs, err
		}
		if !requested[strings.ToLower(m.Device)] {
			rs.after = append(rs.after, safety.Assignment{Device: m.Device, Service: m.Service, Tier: tier, Schedule: m.Schedule})
		}
	}
	moves := make([]safety.Move, 0, len(req.Devices))
	for _, d := range req.Devices {
		tier, err := safety.ParseTier(d.Tier)
		if err != nil {
			return nil, rs, err
		}
		mv := safety.Move{Device: d.Name, To: safety.Placement{Service: d.Service, Tier: tier, Schedule: sched.Name}}
		if m, ok := byName[strings.ToLower(d.Name)]; ok {
			from, err := safety.ParseTier(m.Tier)
			if err != nil {
				return nil, rs, err
			}
			mv.From = &safety.Placement{Service: m.Service, Tier: from, Schedule: m.Schedule}
		}
		moves = append(moves, mv)
		rs.after = append(rs.after, safety.Assignment{Device: d.Name, Service: d.Service, Tier: tier, Schedule: sched.Name})
	}
	if rs.verdict, err = inv.CheckRequest(moves); err != nil {
		return nil, rs, err
	}
	if len(rs.verdict.Violations) > 0 {
		if rs.suggestions, err = inv.Suggest(moves, maxSuggestions); err != nil {
			return nil, rs, err
		}
	}
	return unlock, rs, nil
}

func memberIndex(ms []store.ServiceMember) map[string]store.ServiceMember {
	out := make(map[string]store.ServiceMember, len(ms))
	for _, m := range ms {
		out[strings.ToLower(m.Device)] = m
	}
	return out
}

// refuseRequest records a refused request, device by device, and tells the
// requester why and what to ask for instead. Nothing reached SCCM.
func (w *AssignDevicesWorker) refuseRequest(ctx context.Context, req store.ScheduleRequest, sched calendar.Schedule, eventID uuid.UUID, rs requestSafety) error {
	sums := safety.Summarize(rs.verdict.Violations)
	detail := "service safety: " + sums[0].First.String()
	var b strings.Builder
	fmt.Fprintf(&b, "autopatch refused %s: moving these devices to schedule %s would break service safety — redundant servers of a service must never all be down at once, and tiers patch in order (backend, then middle, then frontend). No device was moved.\n",
		req.RequestItem.Number, sched.Name)
	b.WriteString("\nWhat would break, over the next 12 patch cycles:\n")
	writeViolations(&b, sums, rs.after)
	writeExisting(&b, rs.verdict.Existing, rs.after)
	if len(rs.suggestions) > 0 {
		fmt.Fprintf(&b, "\nSchedules that would satisfy the rules for all these devices: %s. Please order again with one of them.", strings.Join(rs.suggestions, ", "))
	} else {
		b.WriteString("\nNo single schedule of the same kind satisfies the rules for all these devices: order them separately on different schedules, or ask the owners of the other members to move first.")
	}
	w.deps.Logger.WarnContext(ctx, "schedule request refused by service safety", "ritm", req.RequestItem.Number,
		"schedule", sched.Name, "violations", len(rs.verdict.Violations))
	return pgx.BeginFunc(ctx, w.deps.Pool, func(tx pgx.Tx) error {
		for _, d := range req.Devices {
			if err := store.RecordAssignment(ctx, tx, store.Assignment{
				Device: d.Name, Schedule: sched.Name, Service: d.Service, Tier: d.Tier,
				RequestItem: req.RequestItem.Number, EventID: eventID, Outcome: "refused", Detail: detail,
			}); err != nil {
				return err
			}
		}
		return note(ctx, tx, tableRequestItem, req.RequestItem.SysID, b.String())
	})
}

// warningText is the note's section for a request carried out under the
// warn policy, or one that finds the services already broken.
func (rs requestSafety) warningText() string {
	var b strings.Builder
	if len(rs.verdict.Violations) > 0 {
		b.WriteString("\nSERVICE SAFETY WARNING (policy warn: carried out anyway): this request breaks service safety over the next 12 patch cycles:\n")
		writeViolations(&b, safety.Summarize(rs.verdict.Violations), rs.after)
		if len(rs.suggestions) > 0 {
			fmt.Fprintf(&b, "Schedules that would satisfy the rules: %s.\n", strings.Join(rs.suggestions, ", "))
		}
	}
	writeExisting(&b, rs.verdict.Existing, rs.after)
	return strings.TrimRight(b.String(), "\n")
}

func writeExisting(b *strings.Builder, existing []safety.Violation, as []safety.Assignment) {
	if len(existing) == 0 {
		return
	}
	b.WriteString("\nAlready broken in these services (not by this request):\n")
	writeViolations(b, safety.Summarize(existing), as)
}

// writeViolations lists summaries, each with its devices, up to the note's
// limits.
func writeViolations(b *strings.Builder, sums []safety.Summary, as []safety.Assignment) {
	for i, s := range sums {
		if i == maxNoteViolations {
			fmt.Fprintf(b, "- … and %d more\n", len(sums)-i)
			break
		}
		fmt.Fprintf(b, "- %s", s)
		if devices := safety.Devices(s.First, as); len(devices) > 0 {
			fmt.Fprintf(b, " — devices: %s", listNames(devices))
		}
		b.WriteString("\n")
	}
}

func listNames(names []string) string { return listUpTo(names, maxNoteDevices) }

// listUpTo names at most limit of names in a work note, and counts the rest.
func listUpTo(names []string, limit int) string {
	if len(names) <= limit {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:limit], ", "), len(names)-limit)
}

// planSafety is the check of a change's plan.
type planSafety struct {
	verdict safety.PlanVerdict
	held    map[string]string // schedule → reason, under the hold policy
	hold    bool
	members []safety.Assignment // of the services in violations, to name devices
}

// checkPlanSafety checks the plan p against every managed device. Its
// manual_patch schedules outside the change's scope take part with their
// windows inside the change: their owners patch in them whatever autopatch
// deploys.
func (d *Deps) checkPlanSafety(ctx context.Context, tx pgx.Tx, p *changePlan) (*planSafety, error) {
	counts, err := store.ServiceCounts(ctx, tx)
	if err != nil {
		return nil, err
	}
	set := d.Schedules.Get()
	inv := safety.NewInventory(safety.NewTimeline(set.All(), safety.Horizon{}), d.Safety.Services.Get())
	inv.Reserve(len(counts))
	for _, c := range counts {
		tier, err := safety.ParseTier(c.Tier)
		if err != nil {
			return nil, err
		}
		if err := inv.Add(c.Service, tier, c.Schedule, c.Devices); err != nil {
			return nil, err
		}
	}
	var entries []safety.PlanEntry
	for _, w := range p.result.Windows {
		entries = append(entries, safety.PlanEntry{Schedule: w.Schedule, Window: &w, Fixed: p.scope[w.Schedule].Kind == calendar.KindManualPatch})
	}
	for _, u := range p.result.Unplaceable {
		entries = append(entries, safety.PlanEntry{Schedule: u.Schedule, Reason: u.Reason})
	}
	var byHand []calendar.Schedule
	for _, s := range set.All() {
		if _, in := p.scope[s.Name]; !in && s.Kind == calendar.KindManualPatch {
			byHand = append(byHand, s)
		}
	}
	for _, w := range calendar.Plan(byHand, p.change.Start, p.change.End).Windows {
		entries = append(entries, safety.PlanEntry{Schedule: w.Schedule, Window: &w, Fixed: true})
	}
	ps := &planSafety{hold: d.Safety.holdPlans(), held: map[string]string{}}
	ps.verdict = inv.CheckPlan(entries, ps.hold)
	for _, h := range ps.verdict.Held {
		ps.held[h.Schedule] = h.Reason
	}
	var keys []string
	for _, v := range ps.verdict.Violations {
		keys = append(keys, safety.ServiceKey(v.Service))
	}
	if len(keys) > 0 {
		slices.Sort(keys)
		members, err := store.ServiceMembers(ctx, tx, slices.Compact(keys), nil)
		if err != nil {
			return nil, err
		}
		for _, m := range members {
			ps.members = append(ps.members, safety.Assignment{Device: m.Device, Service: m.Service, Tier: safety.Tier(m.Tier), Schedule: m.Schedule})
		}
	}
	return ps, nil
}

// noteText is the plan note's service-safety section; empty when the plan
// breaks no rule.
func (ps *planSafety) noteText() string {
	if ps == nil || len(ps.verdict.Violations) == 0 {
		return ""
	}
	var b strings.Builder
	policy := "warn: the plan is carried out as it is"
	if ps.hold {
		policy = "hold: the schedules below are left out of this change"
	}
	fmt.Fprintf(&b, "\nSERVICE SAFETY: this plan breaks service safety (policy %s):\n", policy)
	writeViolations(&b, safety.Summarize(ps.verdict.Violations), ps.members)
	if len(ps.verdict.Held) > 0 {
		b.WriteString("\nHeld by service safety (no deployment in this change; patch them in a later change):\n")
		for _, h := range ps.verdict.Held {
			fmt.Fprintf(&b, "- %s\n", h.Schedule)
		}
	}
	if ps.hold && len(ps.verdict.Remaining) > 0 {
		b.WriteString("\nStill broken after holding (manual_patch windows, which autopatch cannot hold):\n")
		writeViolations(&b, safety.Summarize(ps.verdict.Remaining), ps.members)
	}
	return strings.TrimRight(b.String(), "\n")
}
