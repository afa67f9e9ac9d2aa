package safety

import (
	"fmt"
	"slices"
)

// Inventory is the managed devices collapsed into counts per (service,
// tier, schedule): all a check needs, whatever the number of devices.
// Build it with NewInventory and Add; it is not safe for concurrent writes,
// and its checks do not modify it.
type Inventory struct {
	tl    *Timeline
	rules *Services
	svcs  []service
	byKey map[string]int32
	// last remembers the service of the previous Add: rows read in
	// service order hit it without a lookup.
	last     string
	lastIdx  int32
	haveLast bool
	// arena is where new groups' counts are cut from (carve).
	arena []count
}

// service is one service's three redundancy groups.
type service struct {
	name  string // as first seen
	key   string // ServiceKey(name)
	tiers [3]group
}

// group is one redundancy group: its size, and its devices per schedule.
type group struct {
	members int32
	// counts holds the devices on schedules the timeline knows, sorted by
	// schedule. Devices on other schedules (retired ones) are members that
	// are never inside a window.
	counts []count
}

type count struct{ sched, n int32 }

// NewInventory returns an empty inventory over tl's windows, with the
// per-service limits of rules (nil: n−1 everywhere).
func NewInventory(tl *Timeline, rules *Services) *Inventory {
	return &Inventory{tl: tl, rules: rules, byKey: map[string]int32{}}
}

// Reserve makes room for about n services in an empty inventory, sparing a
// large build the growth of its index; a no-op once services are added.
func (inv *Inventory) Reserve(n int) {
	if len(inv.svcs) > 0 || n <= 0 {
		return
	}
	inv.byKey = make(map[string]int32, n)
	inv.svcs = make([]service, 0, n)
}

// Timeline returns the timeline the inventory was built over.
func (inv *Inventory) Timeline() *Timeline { return inv.tl }

// Add counts n devices of service and tier on schedule.
func (inv *Inventory) Add(service string, tier Tier, schedule string, n int) error {
	r := tier.rank()
	if r < 0 {
		return fmt.Errorf("safety: %s: tier %q: want backend, middle or frontend", service, tier)
	}
	if !inv.haveLast || service != inv.last {
		inv.last, inv.lastIdx, inv.haveLast = service, inv.serviceIndex(service), true
	}
	g := &inv.svcs[inv.lastIdx].tiers[r]
	if g.counts == nil {
		g.counts = inv.carve()
	}
	g.adjust(inv.schedIndex(schedule), int32(n))
	return nil
}

// carve returns an empty slice with room for two counts, cut from a shared
// block: most groups use one or two schedules, and a build of hundreds of
// thousands of groups then makes a few hundred allocations, not one per
// group. A group that needs more grows its own slice as usual.
func (inv *Inventory) carve() []count {
	const per, block = 2, 4096
	if len(inv.arena) < per {
		inv.arena = make([]count, block*per)
	}
	out := inv.arena[:0:per]
	inv.arena = inv.arena[per:]
	return out
}

// Services returns the number of services with at least one device.
func (inv *Inventory) Services() int { return len(inv.svcs) }

// service returns the service called name; nil when it is unknown.
func (inv *Inventory) service(name string, create bool) *service {
	if create {
		return &inv.svcs[inv.serviceIndex(name)]
	}
	if i, ok := inv.byKey[ServiceKey(name)]; ok {
		return &inv.svcs[i]
	}
	return nil
}

// serviceIndex returns the index of the service called name, adding it
// when it is new.
func (inv *Inventory) serviceIndex(name string) int32 {
	key := ServiceKey(name)
	if i, ok := inv.byKey[key]; ok {
		return i
	}
	i := int32(len(inv.svcs))
	inv.byKey[key] = i
	inv.svcs = append(inv.svcs, service{name: name, key: key})
	return i
}

// schedIndex is the timeline's index of schedule, -1 when it has none.
func (inv *Inventory) schedIndex(schedule string) int32 {
	if i, ok := inv.tl.index[schedule]; ok {
		return i
	}
	return -1
}

// adjust adds delta devices on schedule sched (-1: a schedule without
// windows) to g.
func (g *group) adjust(sched, delta int32) {
	g.members += delta
	if sched < 0 {
		return
	}
	i, found := slices.BinarySearchFunc(g.counts, sched, func(c count, s int32) int { return int(c.sched - s) })
	switch {
	case found:
		g.counts[i].n += delta
		if g.counts[i].n == 0 {
			g.counts = slices.Delete(g.counts, i, i+1)
		}
	case delta != 0:
		g.counts = slices.Insert(g.counts, i, count{sched: sched, n: delta})
	}
}

func (g *group) countOf(sched int32) int32 {
	i, found := slices.BinarySearchFunc(g.counts, sched, func(c count, s int32) int { return int(c.sched - s) })
	if !found {
		return 0
	}
	return g.counts[i].n
}

// clone returns a deep copy of s, so a request can be tried on it.
func (s *service) clone() service {
	out := *s
	for t := range out.tiers {
		out.tiers[t].counts = slices.Clone(s.tiers[t].counts)
	}
	return out
}

// limit is how many of a group may be inside windows at once; check is
// false when the group cannot break the rule (fewer than two members, or a
// max_unavailable of at least its size).
func (inv *Inventory) limit(s *service, g *group) (limit int32, check bool) {
	if g.members < 2 {
		return 0, false
	}
	if n, ok := inv.rules.maxByKey(s.key); ok {
		return int32(n), int32(n) < g.members
	}
	return g.members - 1, true
}

func (s *Services) maxByKey(key string) (int, bool) {
	if s == nil {
		return 0, false
	}
	i, ok := s.byKey[key]
	if !ok {
		return 0, false
	}
	return s.rules[i].MaxUnavailable, true
}
