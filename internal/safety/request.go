package safety

import (
	"fmt"
	"slices"
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
	rc, err := inv.prepareRequest(moves)
	if err != nil {
		return Verdict{}, err
	}
	return inv.checkAfter(rc, moves, false), nil
}

// requestCheck is the part of a request's check that does not depend on the
// schedule asked for: the touched services as they are, and their
// violations.
type requestCheck struct {
	keys   []string // touched services, in the order first met
	before map[string]*service
	known  map[vkey]bool
}

func (inv *Inventory) prepareRequest(moves []Move) (*requestCheck, error) {
	for _, m := range moves {
		if m.To.Tier.rank() < 0 || (m.From != nil && m.From.Tier.rank() < 0) {
			return nil, fmt.Errorf("safety: device %s: tier: want backend, middle or frontend", m.Device)
		}
	}
	rc := &requestCheck{before: map[string]*service{}, known: map[vkey]bool{}}
	touch := func(name string) {
		key := ServiceKey(name)
		if _, ok := rc.before[key]; ok {
			return
		}
		rc.keys = append(rc.keys, key)
		if s := inv.service(name, false); s != nil {
			cp := s.clone()
			rc.before[key] = &cp
		} else {
			rc.before[key] = &service{name: name, key: key}
		}
	}
	for _, m := range moves {
		if m.From != nil {
			touch(m.From.Service)
		}
		touch(m.To.Service)
	}
	c := inv.newChecker(inv.tl.source())
	for _, k := range rc.keys {
		c.service(rc.before[k])
	}
	for _, v := range c.out {
		rc.known[violationKey(v)] = true
	}
	return rc, nil
}

// checkAfter applies the moves to copies of the touched services and sorts
// the violations found into the request's and the existing ones; with
// first set it stops at the request's first violation.
func (inv *Inventory) checkAfter(rc *requestCheck, moves []Move, first bool) Verdict {
	after := make(map[string]*service, len(rc.before))
	for k, s := range rc.before {
		cp := s.clone()
		after[k] = &cp
	}
	// net counts the devices each (service, tier, schedule) gains: a
	// violation involving one that gains is the request's doing even if it
	// was there before.
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
	blocking := func(v Violation) bool {
		for _, w := range v.Windows {
			if net[gst{ServiceKey(v.Service), w.Tier, w.Window.Schedule}] > 0 {
				return true
			}
		}
		return !rc.known[violationKey(v)]
	}
	c := inv.newChecker(inv.tl.source())
	if first {
		c.halt = blocking
	}
	for _, k := range rc.keys {
		if c.service(after[k]); c.halted {
			break
		}
	}
	var out Verdict
	for _, v := range c.out {
		if blocking(v) {
			out.Violations = append(out.Violations, v)
		} else {
			out.Existing = append(out.Existing, v)
		}
	}
	sortViolations(out.Violations)
	sortViolations(out.Existing)
	return out
}

// vkey identifies a violation across a before and an after check.
type vkey struct {
	kind         Kind
	service      string
	tier, before Tier
	from, to     int64
	schedules    string
}

func violationKey(v Violation) vkey {
	k := vkey{kind: v.Kind, service: ServiceKey(v.Service), tier: v.Tier, before: v.Before,
		from: v.From.UnixNano(), to: v.To.UnixNano()}
	for _, w := range v.Windows {
		k.schedules += w.Window.Schedule + "\x00"
	}
	return k
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
	rc, err := inv.prepareRequest(moves)
	if err != nil {
		return nil, err
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
		if v := inv.checkAfter(rc, try, true); len(v.Violations) == 0 {
			out = append(out, name)
			if len(out) == max {
				break
			}
		}
	}
	return out, nil
}
