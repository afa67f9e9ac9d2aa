package handlers

import (
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/autopatch/autopatch/internal/safety"
	"github.com/autopatch/autopatch/internal/schedules"
	"github.com/autopatch/autopatch/internal/store"
)

// serviceWindowsAhead is how many upcoming windows each schedule of a
// service shows.
const serviceWindowsAhead = 3

type serviceResponse struct {
	Service    string                 `json:"service"`
	Horizon    horizonJSON            `json:"horizon"`
	Tiers      []serviceTierJSON      `json:"tiers"`
	Violations []safety.ViolationJSON `json:"violations"`
}

type horizonJSON struct {
	FirstCycle string `json:"first_cycle"`
	LastCycle  string `json:"last_cycle"`
	// From is when the check was made: windows that ended before are left
	// out.
	From string `json:"from"`
}

type serviceTierJSON struct {
	Tier    string `json:"tier"`
	Members int    `json:"members"`
	// MaxUnavailable is how many members may be in a window at once; nil
	// for a tier of one device, which has no redundancy to keep.
	MaxUnavailable *int `json:"max_unavailable"`
	// MaxUnavailableSource is services_file or default (members − 1).
	MaxUnavailableSource string                `json:"max_unavailable_source,omitempty"`
	Schedules            []serviceScheduleJSON `json:"schedules"`
}

type serviceScheduleJSON struct {
	Schedule string `json:"schedule"`
	// Kind is empty for a schedule no longer in the schedules file: its
	// devices get no window.
	Kind        string       `json:"kind"`
	InForce     bool         `json:"in_force"`
	Devices     []string     `json:"devices"`
	NextWindows []WindowJSON `json:"next_windows"`
}

// getService is GET /api/v1/services/{name}: the service's managed devices
// by tier and schedule, each schedule's next windows, and the
// service-safety rules it breaks over the next cycles (issue #8). Names
// compare as the checks compare them: trimmed, case-insensitive.
func getService(db store.DBTX, current *schedules.Current, rules *safety.CurrentServices, now func() time.Time) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		name := PathParam(c, "name")
		members, err := store.ServiceMembers(ctx, db, []string{safety.ServiceKey(name)}, nil)
		if err != nil {
			return err
		}
		if len(members) == 0 {
			return NewError(http.StatusNotFound, "not_found", fmt.Sprintf("autopatch manages no device of service %q", name))
		}
		set := current.Get()
		at := now()
		h := safety.NextCycles(at)
		inv := safety.NewInventory(safety.NewTimeline(set.All(), h), rules.Get())
		var as []safety.Assignment
		for _, m := range members {
			tier, err := safety.ParseTier(m.Tier)
			if err != nil {
				return err
			}
			if err := inv.Add(m.Service, tier, m.Schedule, 1); err != nil {
				return err
			}
			as = append(as, safety.Assignment{Device: m.Device, Service: m.Service, Tier: tier, Schedule: m.Schedule})
		}
		resp := serviceResponse{
			Service: members[0].Service,
			Horizon: horizonJSON{FirstCycle: h.First.String(), LastCycle: h.Last().String(), From: at.UTC().Format(time.RFC3339)},
			Tiers:   []serviceTierJSON{}, Violations: []safety.ViolationJSON{},
		}
		for _, tier := range safety.Tiers {
			t := serviceTierJSON{Tier: string(tier), Schedules: []serviceScheduleJSON{}}
			index := map[string]int{}
			for _, a := range as {
				if a.Tier != tier {
					continue
				}
				t.Members++
				i, ok := index[a.Schedule]
				if !ok {
					i = len(t.Schedules)
					index[a.Schedule] = i
					t.Schedules = append(t.Schedules, scheduleOfService(set, a.Schedule, at))
				}
				t.Schedules[i].Devices = append(t.Schedules[i].Devices, a.Device)
			}
			if t.Members == 0 {
				continue
			}
			if t.Members >= 2 {
				n, source := t.Members-1, "default"
				if max, ok := rules.Get().MaxUnavailable(name); ok {
					n, source = max, "services_file"
				}
				t.MaxUnavailable, t.MaxUnavailableSource = &n, source
			}
			resp.Tiers = append(resp.Tiers, t)
		}
		for _, v := range inv.CheckService(name) {
			resp.Violations = append(resp.Violations, v.JSON(as))
		}
		return c.JSON(http.StatusOK, resp)
	}
}

func scheduleOfService(set *schedules.Set, name string, at time.Time) serviceScheduleJSON {
	out := serviceScheduleJSON{Schedule: name, Devices: []string{}, NextWindows: []WindowJSON{}}
	sc, ok := set.Get(name)
	if !ok {
		return out
	}
	out.Kind, out.InForce = string(sc.Kind), true
	ws := sc.Windows(at, at.Add(MaxWindowRange))
	for _, w := range ws[:min(len(ws), serviceWindowsAhead)] {
		out.NextWindows = append(out.NextWindows, NewWindowJSON(w))
	}
	return out
}
