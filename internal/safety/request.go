package safety

import (
	"fmt"
	"slices"
	"strings"
)

// Placement is where a device is: its service, tier and schedule.
type Placement struct {
	Service  string
	Tier     Tier
	Schedule string
}

// Move is what a schedule request does to one device: it leaves From (nil
// when autopatch does not manage it yet) for To.
type Move struct {
	Device string
	From   *Placement
	To     Placement
}

// Verdict is the check of a schedule request.
type Verdict struct {
	// Violations are the rules the request would break: violations after
	// it that did not exist before, or that its devices would join.
	Violations []Violation
	// Existing are violations of the services it touches that it neither
	// causes nor worsens (assignments made under the warn policy).
	Existing []Violation
}

// CheckRequest checks a schedule request on the services it touches (those
// its devices leave and join): the inventory, which must count the devices
// at their From placements, is not modified.
func (inv *Inventory) CheckRequest(moves []Move) (Verdict, error) {
	for _, m := range moves {
		if m.To.Tier.rank() < 0 || (m.From != nil && m.From.Tier.rank() < 0) {
			return Verdict{}, fmt.Errorf("safety: device %s: tier: want backend, middle or frontend", m.Device)
		}
	}
	// Before and after copies of the touched services, in the order first
	// met, so results do not depend on map order.
	var keys []string
	before := map[string]*service{}
	touch := func(name string) {
		key := ServiceKey(name)
		if _, ok := before[key]; ok {
			return
		}
		keys = append(keys, key)
		if s := inv.service(name, false); s != nil {
			cp := s.clone()
			before[key] = &cp
		} else {
			before[key] = &service{name: name, key: key}
		}
	}
	for _, m := range moves {
		if m.From != nil {
			touch(m.From.Service)
		}
		touch(m.To.Service)
	}
	after := make(map[string]*service, len(before))
	for k, s := range before {
		cp := s.clone()
		after[k] = &cp
	}
	// added marks (service, tier, schedule) that gain devices: a violation
	// involving one of them is the request's doing even if it was there
	// before.
	type gst struct {
		key   string
		tier  Tier
		sched string
	}
	net := map[gst]int32{}
	for _, m := range moves {
		if m.From != nil {
			s := after[ServiceKey(m.From.Service)]
			s.tiers[m.From.Tier.rank()].adjust(inv.schedIndex(m.From.Schedule), -1)
			net[gst{s.key, m.From.Tier, m.From.Schedule}]--
		}
		s := after[ServiceKey(m.To.Service)]
		s.tiers[m.To.Tier.rank()].adjust(inv.schedIndex(m.To.Schedule), 1)
		net[gst{s.key, m.To.Tier, m.To.Schedule}]++
	}

	src := inv.tl.source()
	cb, ca := inv.newChecker(src), inv.newChecker(src)
	for _, k := range keys {
		cb.service(before[k])
		ca.service(after[k])
	}
	known := map[string]bool{}
	for _, v := range cb.out {
		known[violationKey(v)] = true
	}
	var out Verdict
	for _, v := range ca.out {
		joined := false
		for _, w := range v.Windows {
			if net[gst{ServiceKey(v.Service), w.Tier, w.Window.Schedule}] > 0 {
				joined = true
				break
			}
		}
		if joined || !known[violationKey(v)] {
			out.Violations = append(out.Violations, v)
		} else {
			out.Existing = append(out.Existing, v)
		}
	}
	sortViolations(out.Violations)
	sortViolations(out.Existing)
	return out, nil
}

// violationKey identifies a violation across a before and an after check.
func violationKey(v Violation) string {
	return strings.Join([]string{string(v.Kind), ServiceKey(v.Service), string(v.Tier), string(v.Before),
		v.From.String(), v.To.String(), strings.Join(v.Schedules(), "\x00")}, "\x01")
}

// Suggest returns up to max schedules that the request could have asked for
// without breaking a rule: of the requested schedule's kind (an owner who
// asked for automatic patching is not offered patching by hand), with at
// least one window in the horizon, sorted by name.
func (inv *Inventory) Suggest(moves []Move, max int) ([]string, error) {
	if len(moves) == 0 || max <= 0 {
		return nil, nil
	}
	requested := moves[0].To.Schedule
	kind, ok := inv.tl.Kind(requested)
	if !ok {
		return nil, fmt.Errorf("safety: suggest: schedule %q is not in the timeline", requested)
	}
	candidates := slices.Clone(inv.tl.names)
	slices.Sort(candidates)
	try := slices.Clone(moves)
	var out []string
	for _, name := range candidates {
		i := inv.tl.index[name]
		if name == requested || inv.tl.kinds[i] != kind || len(inv.tl.wins[i]) == 0 {
			continue
		}
		for k := range try {
			try[k].To.Schedule = name
		}
		v, err := inv.CheckRequest(try)
		if err != nil {
			return nil, err
		}
		if len(v.Violations) == 0 {
			out = append(out, name)
			if len(out) == max {
				break
			}
		}
	}
	return out, nil
}
