// Package forcing decides forced remediation (docs/architecture.md §9.2): when
// a change's devices that are neither compliant nor deferred at their
// deadline are forced, and in which waves, so that forcing obeys the same
// service safety as windows (internal/safety): the members of a
// redundancy group (one service, one tier) are never all down together —
// at most max_unavailable of them, n−1 by default — and a service's tiers
// go in order, backend, then middle, then frontend.
//
// It is pure: devices, group sizes and rules come in, waves come out. The
// forcing job fetches, calls Plan, and runs one wave at a time (one WinRM
// call per wave), each wave after the previous one finished.
package forcing

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/autopatch/autopatch/internal/safety"
)

// Device is a device to force.
type Device struct {
	Name    string
	Service string // "" when the device belongs to no service
	Tier    string // backend, middle, frontend; "" or unknown: no tier order
}

// Wave is a set of devices forced together.
type Wave struct {
	Index   int
	Devices []Device
}

// Rules are what a plan of waves must obey.
type Rules struct {
	// Services gives each service's max_unavailable; nil: n−1 for every
	// group.
	Services *safety.Services
	// GroupSize is how many devices the redundancy group (service, tier)
	// has in all — forced or not: a member that is compliant is up, but
	// counts toward n. nil, or less than the forced devices of the group:
	// the forced devices are the group.
	GroupSize func(service, tier string) int
}

// Plan splits devices into waves: wave 0 first. Each redundancy group
// contributes at most its limit of devices to a wave; a service's tiers
// occupy successive waves in order; devices of no service, or of a group
// of one, have no constraint and go in the first wave their service's tier
// order allows.
// The result is deterministic: waves and their devices in name order.
func Plan(devices []Device, rules Rules) []Wave {
	type groupKey struct{ service, tier string }
	groups := map[groupKey][]Device{}
	for _, d := range devices {
		k := groupKey{safety.ServiceKey(d.Service), d.Tier}
		groups[k] = append(groups[k], d)
	}
	// Each service's tiers in order; the waves a tier takes start where
	// the previous tier's ended.
	type tierGroup struct {
		key     groupKey
		devices []Device
		rank    int
	}
	byService := map[string][]tierGroup{}
	for k, ds := range groups {
		slices.SortFunc(ds, func(a, b Device) int { return cmp.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)) })
		byService[k.service] = append(byService[k.service], tierGroup{key: k, devices: ds, rank: rank(k.tier)})
	}
	waves := map[int][]Device{}
	services := make([]string, 0, len(byService))
	for s := range byService {
		services = append(services, s)
	}
	slices.Sort(services)
	for _, s := range services {
		tgs := byService[s]
		slices.SortFunc(tgs, func(a, b tierGroup) int {
			return cmp.Or(cmp.Compare(a.rank, b.rank), cmp.Compare(a.key.tier, b.key.tier))
		})
		next := 0 // the first wave the next tier may use
		for i := 0; i < len(tgs); {
			// Tiers of one rank (unknown tiers share rank -1) go side by side.
			j := i
			end := next
			for ; j < len(tgs) && tgs[j].rank == tgs[i].rank; j++ {
				tg := tgs[j]
				limit := limitOf(tg.key.service, tg.key.tier, len(tg.devices), rules)
				if s == "" {
					limit = len(tg.devices) // no service: no redundancy to keep
				}
				for n, d := range tg.devices {
					w := next + n/limit
					waves[w] = append(waves[w], d)
					end = max(end, w+1)
				}
			}
			if tgs[i].rank >= 0 {
				next = end
			}
			i = j
		}
	}
	out := make([]Wave, 0, len(waves))
	for w := range waves {
		out = append(out, Wave{Index: w, Devices: waves[w]})
	}
	slices.SortFunc(out, func(a, b Wave) int { return cmp.Compare(a.Index, b.Index) })
	// Renumber without gaps: a tier with no device to force leaves none,
	// but the index is what the job records, so make it dense.
	for i := range out {
		out[i].Index = i
		slices.SortFunc(out[i].Devices, func(a, b Device) int { return cmp.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)) })
	}
	return out
}

// rank orders tiers: backend 0, middle 1, frontend 2; -1 for no tier
// (no order to keep).
func rank(tier string) int {
	for i, t := range safety.Tiers {
		if string(t) == tier {
			return i
		}
	}
	return -1
}

// limitOf is how many of a group's devices may be forced together: the
// service's max_unavailable (the services file allows no less than 1), or
// n−1; a group of one has no redundancy to keep.
func limitOf(service, tier string, forced int, rules Rules) int {
	n := forced
	if rules.GroupSize != nil {
		n = max(n, rules.GroupSize(service, tier))
	}
	if m, ok := rules.Services.MaxUnavailable(service); ok {
		return max(1, min(m, n))
	}
	return max(1, n-1)
}

// At is when forcing starts for a device whose deadline is deadline: at
// the deadline, or, when forceAt (minutes after midnight; negative: unset)
// is set, at the first such time of day in loc at or after the deadline.
// Microsoft IT forces at 10:00; AUTOPATCH_FORCE_AT sets it.
func At(deadline time.Time, forceAt int, loc *time.Location) time.Time {
	if forceAt < 0 {
		return deadline
	}
	if loc == nil {
		loc = time.UTC
	}
	d := deadline.In(loc)
	at := time.Date(d.Year(), d.Month(), d.Day(), forceAt/60, forceAt%60, 0, 0, loc)
	if at.Before(d) {
		at = time.Date(d.Year(), d.Month(), d.Day()+1, forceAt/60, forceAt%60, 0, 0, loc)
	}
	return at.UTC()
}

// ParseClock reads a time of day "HH:MM" as minutes after midnight; "" is
// -1 (unset).
func ParseClock(s string) (int, error) {
	if s == "" {
		return -1, nil
	}
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("forcing: time of day %q: want HH:MM", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}
