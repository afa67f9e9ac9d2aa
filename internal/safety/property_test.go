package safety

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/calendar"
)

// randomEstate builds schedules (one-off windows bunched so they overlap
// often, and recurring ones in zones with different DST rules) and devices
// spread over a few services.
func randomEstate(r *rand.Rand) (string, []Assignment, *Services) {
	var b strings.Builder
	names := []string{}
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := range 2 + r.IntN(4) {
		name := fmt.Sprintf("ONE%d", i)
		names = append(names, name)
		var ws []string
		t := base.Add(time.Duration(r.IntN(48)) * 30 * time.Minute)
		for range 1 + r.IntN(3) {
			end := t.Add(time.Duration(1+r.IntN(8)) * 30 * time.Minute)
			ws = append(ws, fmt.Sprintf("{start: %q, end: %q}", t.Format(time.RFC3339), end.Format(time.RFC3339)))
			t = end.Add(time.Duration(r.IntN(2*24*7)) * time.Hour)
		}
		fmt.Fprintf(&b, "  - {name: %s, collection: \"Patch - %s\", windows: [%s]}\n", name, name, strings.Join(ws, ", "))
	}
	zones := []string{"UTC", "Europe/London", "America/New_York", "Australia/Sydney", "Asia/Kolkata"}
	for i := range 2 + r.IntN(4) {
		name := fmt.Sprintf("REC%d", i)
		names = append(names, name)
		rec := fmt.Sprintf("{anchor: patch_tuesday, offset_days: %d}", r.IntN(7)-1)
		if r.IntN(3) == 0 {
			rec = fmt.Sprintf("{anchor: nth_weekday, nth: %d, weekday: saturday}", 2+r.IntN(2))
		}
		fmt.Fprintf(&b, "  - {name: %s, collection: \"Patch - %s\", timezone: %s, recurrence: %s, start: \"%02d:%02d\", duration: %dm}\n",
			name, name, zones[r.IntN(len(zones))], rec, r.IntN(24), 30*r.IntN(2), 60+30*r.IntN(8))
	}
	names = append(names, "RETIRED")
	var devices []Assignment
	services := []string{"Pay", "Shop", "HR", "pay"}
	for i := range 3 + r.IntN(12) {
		devices = append(devices, dev(fmt.Sprintf("D%02d", i), services[r.IntN(len(services))], Tiers[r.IntN(3)], names[r.IntN(len(names))]))
	}
	var rules *Services
	if r.IntN(2) == 0 {
		var err error
		rules, err = ParseServices(fmt.Appendf(nil, "services: [{name: Pay, max_unavailable: %d}]", 1+r.IntN(3)))
		if err != nil {
			panic(err)
		}
	}
	return b.String(), devices, rules
}

// referenceWindows lists a device's windows in the horizon straight from
// the calendar, without the Timeline.
func referenceWindows(byName map[string]calendar.Schedule, h Horizon, schedule string) []calendar.Window {
	s, ok := byName[schedule]
	if !ok {
		return nil
	}
	from := time.Date(h.First.Year, h.First.Month, 1, 0, 0, 0, 0, time.UTC).AddDate(0, -2, 0)
	var out []calendar.Window
	for _, w := range s.Windows(from, from.AddDate(0, h.Cycles+4, 0)) {
		if w.Cycle.Compare(h.First) >= 0 && w.Cycle.Compare(h.Last()) <= 0 {
			out = append(out, w)
		}
	}
	return out
}

// TestCheckAgainstBruteForce compares the sweep with a direct count: at
// every window start of a group, how many of its devices are inside a
// window; and, for tier order, every pair of windows of two tiers.
func TestCheckAgainstBruteForce(t *testing.T) {
	t.Parallel()
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 8))
		yaml, devices, rules := randomEstate(r)
		schedules := parseSchedules(t, yaml)
		byName := map[string]calendar.Schedule{}
		for _, s := range schedules {
			byName[s.Name] = s
		}
		h := Horizon{First: calendar.Month{Year: 2026, Month: time.February}, Cycles: 3}
		got := inventory(t, schedules, h, rules, devices...).Check()
		msg := fmt.Sprintf("seed %d\n%s%v", seed, yaml, devices)

		type gkey struct {
			service string
			tier    Tier
		}
		groups := map[gkey][]Assignment{}
		services := map[string][]Assignment{}
		for _, d := range devices {
			k := gkey{ServiceKey(d.Service), d.Tier}
			groups[k] = append(groups[k], d)
			services[k.service] = append(services[k.service], d)
		}

		// Redundancy.
		for k, members := range groups {
			n := len(members)
			limit := n - 1
			if m, ok := rules.MaxUnavailable(k.service); ok {
				limit = m
			}
			var mine []Violation
			for _, v := range got {
				if v.Kind == KindRedundancy && ServiceKey(v.Service) == k.service && v.Tier == k.tier {
					mine = append(mine, v)
				}
			}
			if n < 2 {
				require.Empty(t, mine, msg)
				continue
			}
			down := func(at time.Time) int {
				c := 0
				for _, d := range members {
					for _, w := range referenceWindows(byName, h, d.Schedule) {
						if !at.Before(w.Start) && at.Before(w.End) {
							c++
							break
						}
					}
				}
				return c
			}
			var starts []time.Time
			for _, d := range members {
				for _, w := range referenceWindows(byName, h, d.Schedule) {
					starts = append(starts, w.Start)
				}
			}
			for _, at := range starts {
				inside := false
				for _, v := range mine {
					if !at.Before(v.From) && at.Before(v.To) {
						inside = true
					}
				}
				require.Equal(t, down(at) > limit, inside, "%s at %s: %d down, limit %d\n%s", k, at.UTC(), down(at), limit, msg)
			}
			for _, v := range mine {
				require.Greater(t, down(v.From), limit, msg)
				require.LessOrEqual(t, down(v.To), limit, "a stretch ends when few enough are down\n%s", msg)
				peak := 0
				for _, at := range starts {
					if !at.Before(v.From) && at.Before(v.To) {
						peak = max(peak, down(at))
					}
				}
				require.Equal(t, peak, v.Down, msg)
				require.Equal(t, limit, v.Limit, msg)
				require.Equal(t, n, v.Members, msg)
			}
		}

		// Tier order: every pair of windows of an earlier and a later tier
		// in one cycle.
		type okey struct {
			service      string
			before, tier Tier
			cycle        calendar.Month
		}
		want := map[okey]bool{}
		for svc, members := range services {
			for _, a := range members {
				for _, b := range members {
					if a.Tier.rank() >= b.Tier.rank() {
						continue
					}
					for _, wa := range referenceWindows(byName, h, a.Schedule) {
						for _, wb := range referenceWindows(byName, h, b.Schedule) {
							if wa.Cycle == wb.Cycle && wa.End.After(wb.Start) {
								want[okey{svc, a.Tier, b.Tier, wa.Cycle}] = true
							}
						}
					}
				}
			}
		}
		have := map[okey]bool{}
		for _, v := range got {
			if v.Kind == KindTierOrder {
				k := okey{ServiceKey(v.Service), v.Before, v.Tier, v.Cycle}
				require.False(t, have[k], "reported twice: %v\n%s", k, msg)
				have[k] = true
			}
		}
		require.Equal(t, want, have, msg)
	}
}
