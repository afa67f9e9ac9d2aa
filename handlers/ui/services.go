package ui

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/autopatch/autopatch/handlers"
	"github.com/autopatch/autopatch/internal/safety"
	"github.com/autopatch/autopatch/internal/store"
)

type serviceRow struct {
	Service   string
	Devices   int
	Tiers     string
	Schedules string
}

func (c *console) serviceList(ctx echo.Context) error {
	counts, err := store.ServiceCounts(ctx.Request().Context(), c.opts.DB)
	if err != nil {
		return c.fail(ctx, err)
	}
	var rows []serviceRow
	index := map[string]int{}
	tiersOf, schedulesOf := map[string][]string{}, map[string][]string{}
	for _, sc := range counts {
		key := safety.ServiceKey(sc.Service)
		i, ok := index[key]
		if !ok {
			i = len(rows)
			index[key] = i
			rows = append(rows, serviceRow{Service: strings.TrimSpace(sc.Service)})
		}
		rows[i].Devices += sc.Devices
		tiersOf[key] = append(tiersOf[key], sc.Tier)
		schedulesOf[key] = append(schedulesOf[key], sc.Schedule)
	}
	for key, i := range index {
		t, s := tiersOf[key], schedulesOf[key]
		slices.Sort(t)
		slices.Sort(s)
		rows[i].Tiers, rows[i].Schedules = strings.Join(slices.Compact(t), ", "), strings.Join(slices.Compact(s), ", ")
	}
	slices.SortFunc(rows, func(a, b serviceRow) int {
		return strings.Compare(strings.ToLower(a.Service), strings.ToLower(b.Service))
	})
	return c.render(ctx, http.StatusOK, "services", page{Title: "Services", Nav: "services", SignedIn: true, Data: rows})
}

// shownDevices is how many device names a cell of the service page lists;
// the rest are a link to the devices page filtered to them.
const shownDevices = 25

type serviceScheduleView struct {
	Schedule string
	InForce  bool
	Kind     string
	Devices  []string
	// More is how many devices are not listed; AllHref lists them all.
	More    int
	AllHref string
	Next    []string
}

type violationView struct {
	safety.ViolationJSON
	More int
}

type serviceTierView struct {
	Tier           string
	Members        int
	MaxUnavailable string
	Schedules      []serviceScheduleView
}

type serviceData struct {
	Service    string
	Horizon    string
	Tiers      []serviceTierView
	Violations []violationView
	// MoreViolations is how many violations are not listed.
	MoreViolations int
}

// shownViolations is how many violations the service page lists.
const shownViolations = 10

// servicePage shows a service's managed devices by tier and schedule, each
// schedule's next windows, and the service-safety rules it breaks over the
// next cycles: what GET /api/v1/services/{name} answers, for people.
func (c *console) servicePage(ctx echo.Context) error {
	name := handlers.PathParam(ctx, "name")
	members, err := store.ServiceMembers(ctx.Request().Context(), c.opts.DB, []string{safety.ServiceKey(name)}, nil)
	if err != nil {
		return c.fail(ctx, err)
	}
	if len(members) == 0 {
		return c.problem(ctx, http.StatusNotFound, "No such service",
			fmt.Sprintf("autopatch manages no device of service %q.", name), c.href("/services"), "the services")
	}
	set := c.opts.Schedules.Get()
	at := c.opts.Now()
	h := safety.NextCycles(at)
	rules := c.opts.ServiceRules.Get()
	inv := safety.NewInventory(safety.NewTimeline(set.All(), h), rules)
	var as []safety.Assignment
	for _, m := range members {
		tier, err := safety.ParseTier(m.Tier)
		if err != nil {
			return c.fail(ctx, err)
		}
		if err := inv.Add(m.Service, tier, m.Schedule, 1); err != nil {
			return c.fail(ctx, err)
		}
		as = append(as, safety.Assignment{Device: m.Device, Service: m.Service, Tier: tier, Schedule: m.Schedule})
	}
	d := serviceData{Service: strings.TrimSpace(members[0].Service),
		Horizon: fmt.Sprintf("cycles %s to %s, from %s", h.First, h.Last(), at.UTC().Format("2006-01-02 15:04 UTC"))}
	for _, tier := range safety.Tiers {
		t := serviceTierView{Tier: string(tier)}
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
				sv := serviceScheduleView{Schedule: a.Schedule}
				if s, ok := set.Get(a.Schedule); ok {
					sv.InForce, sv.Kind = true, string(s.Kind)
					ws := s.Windows(at, at.Add(400*24*time.Hour))
					for _, w := range ws[:min(len(ws), 3)] {
						sv.Next = append(sv.Next, w.LocalString())
					}
				}
				t.Schedules = append(t.Schedules, sv)
			}
			t.Schedules[i].Devices = append(t.Schedules[i].Devices, a.Device)
		}
		if t.Members == 0 {
			continue
		}
		switch {
		case t.Members < 2:
			t.MaxUnavailable = "one device: no redundancy to keep"
		default:
			n, source := t.Members-1, "default: all but one"
			if max, ok := rules.MaxUnavailable(name); ok {
				n, source = max, "services file"
			}
			t.MaxUnavailable = fmt.Sprintf("at most %d of %d down at once (%s)", n, t.Members, source)
		}
		d.Tiers = append(d.Tiers, t)
	}
	for _, t := range d.Tiers {
		for i := range t.Schedules {
			s := &t.Schedules[i]
			if n := len(s.Devices); n > shownDevices {
				s.More, s.Devices = n-shownDevices, s.Devices[:shownDevices]
				s.AllHref = c.href("/devices") + queryString("service", d.Service, "schedule", s.Schedule, "tier", t.Tier)
			}
		}
	}
	vs := inv.CheckService(name)
	if len(vs) > shownViolations {
		d.MoreViolations, vs = len(vs)-shownViolations, vs[:shownViolations]
	}
	for _, v := range vs {
		vv := violationView{ViolationJSON: v.JSON(as)}
		if n := len(vv.Devices); n > shownDevices {
			vv.More, vv.Devices = n-shownDevices, vv.Devices[:shownDevices]
		}
		d.Violations = append(d.Violations, vv)
	}
	return c.render(ctx, http.StatusOK, "service", page{Title: d.Service, Nav: "services", SignedIn: true, Data: d})
}
