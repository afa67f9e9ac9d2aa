package rollout

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/autopatch/autopatch/internal/safety"
)

// Window is one window of a change that has not opened: its schedule and
// start.
type Window struct {
	Schedule string
	Start    time.Time
}

// Member is a device of a window of the change, with its service and tier.
type Member struct {
	Device  string
	Service string
	Tier    string
	Window  Window
}

// Failed is a device that failed (Counts) in a window of the change.
type Failed struct {
	Device  string
	Service string
	Tier    string
	// Start is the start of the window it failed in.
	Start time.Time
}

// Gate is a window tier gating holds, and why.
type Gate struct {
	Window Window
	Reason string
}

// TierGates returns the windows to hold because a frontend member of a
// service would patch while that service's backend or middle members
// failed in an earlier window of the same change ("each tier is entirely
// dependent on the tier below it"). A failure in the same window or a later
// one does not gate: tiers patch in order, so those members were never
// meant to be patched first. One gate per window, in window order; its
// reason names each service and the failed devices.
func TierGates(windows []Member, failed []Failed) []Gate {
	type culprit struct{ device, tier string }
	below := map[string][]Failed{} // by service key
	for _, f := range failed {
		t := safety.Tier(strings.ToLower(strings.TrimSpace(f.Tier)))
		if t != safety.Backend && t != safety.Middle {
			continue
		}
		k := safety.ServiceKey(f.Service)
		if k == "" {
			continue
		}
		below[k] = append(below[k], f)
	}
	type key struct {
		schedule string
		start    int64
	}
	reasons := map[key]map[string][]string{} // window → service key → "SQL01 (backend)"
	wins := map[key]Window{}
	display := map[string]string{} // service key → its name as first seen
	for _, m := range windows {
		if safety.Tier(strings.ToLower(strings.TrimSpace(m.Tier))) != safety.Frontend {
			continue
		}
		k := safety.ServiceKey(m.Service)
		for _, f := range below[k] {
			if !f.Start.Before(m.Window.Start) {
				continue
			}
			wk := key{m.Window.Schedule, m.Window.Start.UnixNano()}
			if reasons[wk] == nil {
				reasons[wk] = map[string][]string{}
				wins[wk] = m.Window
			}
			if _, ok := display[k]; !ok {
				display[k] = strings.TrimSpace(m.Service)
			}
			reasons[wk][k] = append(reasons[wk][k], fmt.Sprintf("%s (%s)", f.Device, strings.ToLower(strings.TrimSpace(f.Tier))))
		}
	}
	var out []Gate
	for wk, services := range reasons {
		names := make([]string, 0, len(services))
		for s := range services {
			names = append(names, s)
		}
		sort.Strings(names)
		var parts []string
		for _, s := range names {
			devs := services[s]
			sort.Strings(devs)
			devs = compact(devs)
			parts = append(parts, fmt.Sprintf("service %s: %s failed in an earlier window", display[s], strings.Join(devs, ", ")))
		}
		out = append(out, Gate{Window: wins[wk], Reason: "tier gating: frontend members would patch while " + strings.Join(parts, "; ")})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Window.Start.Equal(out[j].Window.Start) {
			return out[i].Window.Start.Before(out[j].Window.Start)
		}
		return out[i].Window.Schedule < out[j].Window.Schedule
	})
	return out
}

func compact(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
