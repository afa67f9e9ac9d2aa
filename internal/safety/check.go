package safety

import (
	"cmp"

	"slices"
	"strings"
	"time"

	"github.com/autopatch/autopatch/internal/calendar"
)

// source is the windows a check looks at, per timeline schedule index: the
// timeline's over the horizon, or a plan's (one window per placed schedule).
type source struct {
	wins [][]win
	full [][]calendar.Window
	// cycles is the number of cycle slots of the tier rule: the horizon's
	// cycles, or 1 for a plan (a change is one round of patching whatever
	// the cycles of its windows).
	cycles int
}

func (tl *Timeline) source() source {
	return source{wins: tl.wins, full: tl.full, cycles: tl.h.Cycles}
}

// ref is one window of one schedule, with the group's devices on it.
type ref struct {
	sched, w, n int32
}

// span is the first start and last end of a tier's windows in one cycle.
type span struct {
	min, max int64
	ok       bool
}

// checker holds the scratch space of checks, reused from group to group so
// a full check allocates little beyond its findings.
type checker struct {
	inv      *Inventory
	src      source
	streams  []stream
	started  []ref
	involved []ref
	spans    []span
	out      []Violation
	// halt, when set, is asked about every violation found; once it says
	// yes the check stops (halted): a caller that only needs to know
	// whether there is one is spared the rest.
	halt   func(Violation) bool
	halted bool
	// arena holds the windows of the violations found (see windows).
	arena []Involved
}

// windows returns an empty slice for n windows of a violation, cut from the
// checker's arena: Walk resets the arena from service to service, so a full
// check allocates for its largest service, not for every violation.
func (c *checker) windows(n int) []Involved {
	if cap(c.arena)-len(c.arena) < n {
		// Blocks double up to 4096 windows: a check of one service or one
		// request stays small, a full check soon stops allocating.
		c.arena = make([]Involved, 0, max(n, min(4096, max(16, 2*cap(c.arena)))))
	}
	start := len(c.arena)
	c.arena = c.arena[:start+n]
	return c.arena[start : start : start+n]
}

// emit records v.
func (c *checker) emit(v Violation) {
	c.out = append(c.out, v)
	if c.halt != nil && c.halt(v) {
		c.halted = true
	}
}

func (inv *Inventory) newChecker(src source) *checker {
	return &checker{inv: inv, src: src, spans: make([]span, 3*src.cycles)}
}

// Check checks every service over the timeline's horizon. Violations are
// sorted by service, then by time.
func (inv *Inventory) Check() []Violation {
	var out []Violation
	inv.Walk(func(v Violation) {
		v.Windows = slices.Clone(v.Windows)
		out = append(out, v)
	})
	return out
}

// Walk checks every service over the timeline's horizon and hands each
// violation to fn, in the order Check returns them, without holding them
// all: an estate where every service breaks a rule every month has
// millions. v.Windows is reused once fn returns: fn must copy it to keep
// it.
func (inv *Inventory) Walk(fn func(Violation)) {
	order := make([]int32, len(inv.svcs))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return strings.Compare(inv.svcs[a].key, inv.svcs[b].key) })
	c := inv.newChecker(inv.tl.source())
	for _, i := range order {
		c.out = c.out[:0]
		// The windows of the previous service's violations were handed to
		// fn, which copied what it keeps.
		c.arena = c.arena[:0]
		c.service(&inv.svcs[i])
		sortViolations(c.out)
		for _, v := range c.out {
			fn(v)
		}
	}
}

// CheckService checks one service over the timeline's horizon (nil when the
// inventory has no such service).
func (inv *Inventory) CheckService(name string) []Violation {
	s := inv.service(name, false)
	if s == nil {
		return nil
	}
	c := inv.newChecker(inv.tl.source())
	c.service(s)
	sortViolations(c.out)
	return c.out
}

func (c *checker) service(s *service) {
	for t := range s.tiers {
		g := &s.tiers[t]
		if limit, ok := c.inv.limit(s, g); ok && !c.halted {
			c.redundancy(s, t, g, limit)
		}
	}
	if !c.halted {
		c.tierOrder(s)
	}
}

// redundancy sweeps the windows of a group's schedules in time order,
// keeping the number of its devices inside a window; every stretch where it
// exceeds limit is one violation. Each schedule's windows are sorted and do
// not overlap, so its starts and ends already alternate in time order: the
// sweep merges these streams, one per schedule, instead of sorting events.
func (c *checker) redundancy(s *service, t int, g *group, limit int32) {
	var total int32
	c.streams = c.streams[:0]
	for _, ct := range g.counts {
		if ws := c.src.wins[ct.sched]; len(ws) > 0 {
			total += ct.n
			c.streams = append(c.streams, stream{sched: ct.sched, n: ct.n, wins: ws})
		}
	}
	if total <= limit {
		return // even every windowed device at once is allowed
	}
	var (
		cur, peak int32
		over      bool
		from      int64
	)
	for {
		// The next instant: the earliest next start or end of any stream.
		at, found := int64(0), false
		for k := range c.streams {
			if st := &c.streams[k]; st.i < len(st.wins) {
				if t := st.next(); !found || t < at {
					at, found = t, true
				}
			}
		}
		if !found {
			break
		}
		// Ends before starts: windows are half-open, so one that starts as
		// another ends does not overlap it.
		for k := range c.streams {
			if st := &c.streams[k]; st.inside && st.next() == at {
				cur -= st.n
				st.inside = false
				st.i++
			}
		}
		started := c.started[:0]
		for k := range c.streams {
			if st := &c.streams[k]; st.i < len(st.wins) && !st.inside && st.next() == at {
				cur += st.n
				st.inside = true
				started = append(started, ref{sched: st.sched, w: int32(st.i), n: st.n})
			}
		}
		c.started = started
		// The state is judged once all events of an instant are applied,
		// so back-to-back stretches are one violation.
		switch {
		case cur > limit && !over:
			over, from, peak = true, at, cur
			c.involved = c.involved[:0]
			for k := range c.streams {
				if st := &c.streams[k]; st.inside {
					c.involved = append(c.involved, ref{sched: st.sched, w: int32(st.i), n: st.n})
				}
			}
		case cur > limit:
			peak = max(peak, cur)
			c.involved = append(c.involved, started...)
		case over:
			over = false
			c.emitRedundancy(s, t, g, limit, from, at, peak)
			if c.halted {
				return
			}
		}
	}
}

// stream walks one schedule's windows for the sweep: inside says whether
// the next event is the end of window i (or else its start).
type stream struct {
	sched, n int32
	wins     []win
	i        int
	inside   bool
}

func (st *stream) next() int64 {
	if st.inside {
		return st.wins[st.i].end
	}
	return st.wins[st.i].start
}

func (c *checker) emitRedundancy(s *service, t int, g *group, limit int32, from, to int64, peak int32) {
	v := Violation{
		Kind: KindRedundancy, Service: s.name, Tier: Tiers[t],
		From: time.Unix(0, from).UTC(), To: time.Unix(0, to).UTC(),
		Down: int(peak), Limit: int(limit), Members: int(g.members),
		Windows: c.windows(len(c.involved)),
	}
	for _, r := range c.involved {
		v.Windows = append(v.Windows, Involved{Window: c.src.full[r.sched][r.w], Tier: Tiers[t], Devices: int(r.n)})
	}
	sortInvolved(v.Windows)
	v.Cycle = v.Windows[0].Window.Cycle
	c.emit(v)
}

// tierOrder checks, cycle by cycle, that each tier's windows all end before
// any window of a later tier starts.
func (c *checker) tierOrder(s *service) {
	tiers := 0
	for t := range s.tiers {
		if len(s.tiers[t].counts) > 0 {
			tiers++
		}
	}
	if tiers < 2 {
		return
	}
	n := c.src.cycles
	clear(c.spans)
	for t := range s.tiers {
		for _, ct := range s.tiers[t].counts {
			for _, w := range c.src.wins[ct.sched] {
				sp := &c.spans[t*n+int(w.cycle)]
				if !sp.ok {
					*sp = span{min: w.start, max: w.end, ok: true}
					continue
				}
				sp.min, sp.max = min(sp.min, w.start), max(sp.max, w.end)
			}
		}
	}
	for a := 0; a < 3; a++ {
		for b := a + 1; b < 3; b++ {
			for cyc := range n {
				early, late := c.spans[a*n+cyc], c.spans[b*n+cyc]
				if early.ok && late.ok && early.max > late.min {
					c.emitTierOrder(s, a, b, int32(cyc), late.min, early.max)
					if c.halted {
						return
					}
				}
			}
		}
	}
}

// emitTierOrder reports that in cycle slot cyc, tier b's windows that start
// before lastEnd precede the end of tier a's windows that end after
// firstStart.
func (c *checker) emitTierOrder(s *service, a, b int, cyc int32, firstStart, lastEnd int64) {
	v := Violation{
		Kind: KindTierOrder, Service: s.name, Tier: Tiers[b], Before: Tiers[a],
		From: time.Unix(0, firstStart).UTC(), To: time.Unix(0, lastEnd).UTC(),
	}
	n := 0
	for _, ct := range s.tiers[a].counts {
		for _, w := range c.src.wins[ct.sched] {
			if w.cycle == cyc && w.end > firstStart {
				n++
			}
		}
	}
	for _, ct := range s.tiers[b].counts {
		for _, w := range c.src.wins[ct.sched] {
			if w.cycle == cyc && w.start < lastEnd {
				n++
			}
		}
	}
	v.Windows = c.windows(n)
	for _, ct := range s.tiers[a].counts {
		for k, w := range c.src.wins[ct.sched] {
			if w.cycle == cyc && w.end > firstStart {
				v.Windows = append(v.Windows, Involved{Window: c.src.full[ct.sched][k], Tier: Tiers[a], Devices: int(ct.n)})
			}
		}
	}
	for _, ct := range s.tiers[b].counts {
		for k, w := range c.src.wins[ct.sched] {
			if w.cycle == cyc && w.start < lastEnd {
				v.Windows = append(v.Windows, Involved{Window: c.src.full[ct.sched][k], Tier: Tiers[b], Devices: int(ct.n)})
			}
		}
	}
	sortInvolved(v.Windows)
	// The later tier's window names the cycle: in a plan, the windows of a
	// change may come from two cycles.
	v.Cycle = v.Windows[0].Window.Cycle
	for _, w := range v.Windows {
		if w.Tier == v.Tier {
			v.Cycle = w.Window.Cycle
			break
		}
	}
	c.emit(v)
}

func sortInvolved(ws []Involved) {
	slices.SortFunc(ws, func(a, b Involved) int {
		if c := a.Window.Start.Compare(b.Window.Start); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Tier.rank(), b.Tier.rank()); c != 0 {
			return c
		}
		return strings.Compare(a.Window.Schedule, b.Window.Schedule)
	})
}

func sortViolations(vs []Violation) {
	slices.SortStableFunc(vs, compareViolations)
}

func compareViolations(a, b Violation) int {
	if a.Service != b.Service {
		if c := strings.Compare(ServiceKey(a.Service), ServiceKey(b.Service)); c != 0 {
			return c
		}
	}
	if c := a.From.Compare(b.From); c != 0 {
		return c
	}
	if c := strings.Compare(string(a.Kind), string(b.Kind)); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Tier.rank(), b.Tier.rank()); c != 0 {
		return c
	}
	return cmp.Compare(a.Before.rank(), b.Before.rank())
}
