package safety

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/autopatch/autopatch/internal/calendar"
)

// Issue #8's benchmark estate: 250,000 devices in 50,000 services over 24
// schedules and 12 cycles. Targets on the project's 2-core machine: a full
// check ≤ 2 s and ≤ 512 MiB, one request ≤ 10 ms.
const (
	benchDevices   = 250_000
	benchServices  = 50_000
	benchSchedules = 24
)

var benchHorizon = Horizon{First: calendar.Month{Year: 2026, Month: time.January}, Cycles: DefaultCycles}

// benchSchedulesYAML is 24 schedules as an estate that cares for its
// services has them: for each tier a band of eight 2-hour slots, three
// hours apart, on Patch Tuesday +2 (backend, Europe/London), +4 (middle,
// America/New_York) and +6 (frontend, Asia/Kolkata): two days apart, so
// that the zones never bring two bands together.
func benchSchedulesYAML() string {
	zones := []string{"Europe/London", "America/New_York", "Asia/Kolkata"}
	var b strings.Builder
	for i := range benchSchedules {
		band, slot := i/8, i%8
		fmt.Fprintf(&b, "  - {name: S%02d, collection: \"Patch - S%02d\", timezone: %s, recurrence: {anchor: patch_tuesday, offset_days: %d}, start: \"%02d:00\", duration: 2h}\n",
			i, i, zones[band], 2+2*band, 3*slot)
	}
	return b.String()
}

// benchEstate spreads the devices over the services, five each: two
// backend, two middle and one frontend. With stress unset, each device
// takes a slot of its tier's band that no other member of its group took
// (an owner who knows the rules), except one device in fifty that takes any
// schedule; with stress set, every device takes a random schedule, and
// nearly every service breaks a rule in every cycle.
func benchEstate(b *testing.B, stress bool) ([]calendar.Schedule, []Assignment) {
	b.Helper()
	schedules := parseSchedules(b, benchSchedulesYAML())
	r := rand.New(rand.NewPCG(8, 8))
	tiers := []Tier{Backend, Backend, Middle, Middle, Frontend}
	as := make([]Assignment, 0, benchDevices)
	for svc := range benchServices {
		used := map[int]bool{}
		for k, tier := range tiers {
			slot := r.IntN(8)
			for used[tier.rank()*8+slot] {
				slot = r.IntN(8)
			}
			sched := tier.rank()*8 + slot
			used[sched] = true
			if stress || r.IntN(50) == 0 {
				sched = r.IntN(len(schedules))
			}
			as = append(as, Assignment{
				Device:   fmt.Sprintf("DEV%05d%d", svc, k),
				Service:  fmt.Sprintf("Service %05d", svc),
				Tier:     tier,
				Schedule: schedules[sched].Name,
			})
		}
	}
	return schedules, as
}

func benchFullCheck(b *testing.B, stress bool) {
	schedules, as := benchEstate(b, stress)
	runtime.GC() // the set-up's garbage is not the benchmark's
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	var n, services int
	for b.Loop() {
		inv, err := InventoryOf(NewTimeline(schedules, benchHorizon), nil, as)
		if err != nil {
			b.Fatal(err)
		}
		n, services = 0, inv.Services()
		inv.Walk(func(Violation) { n++ })
	}
	reportCPU(b, cpu)
	b.ReportMetric(float64(n), "violations")
	b.ReportMetric(float64(services), "services")
}

// BenchmarkFullCheck: the windows of every schedule, the 250,000 devices
// collapsed into counts, and every service checked (violations visited,
// not kept). Peak RSS: run it alone under /usr/bin/time -v.
func BenchmarkFullCheck(b *testing.B) { benchFullCheck(b, false) }

// BenchmarkFullCheckStress is the same on an estate where every device
// picked a random schedule.
func BenchmarkFullCheckStress(b *testing.B) { benchFullCheck(b, true) }

// BenchmarkFullCheckCollect keeps every violation (Check), as the CLI's
// JSON output does.
func BenchmarkFullCheckCollect(b *testing.B) {
	schedules, as := benchEstate(b, false)
	runtime.GC() // the set-up's garbage is not the benchmark's
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	var n int
	for b.Loop() {
		inv, err := InventoryOf(NewTimeline(schedules, benchHorizon), nil, as)
		if err != nil {
			b.Fatal(err)
		}
		n = len(inv.Check())
	}
	reportCPU(b, cpu)
	b.ReportMetric(float64(n), "violations")
}

// benchRequest is a request moving three devices of one service (one of
// them new) onto another schedule.
func benchRequest(as []Assignment) []Move {
	var moves []Move
	for _, a := range as[:benchServices*2+1] {
		if a.Service == as[7].Service && len(moves) < 2 {
			moves = append(moves, Move{Device: a.Device, From: &Placement{a.Service, a.Tier, a.Schedule}, To: Placement{a.Service, a.Tier, "S05"}})
		}
	}
	return append(moves, Move{Device: "NEW01", To: Placement{as[7].Service, Frontend, "S05"}})
}

// BenchmarkRequest: the check of one schedule request against the whole
// estate (the inventory built once, as the job reads only the services a
// request touches).
func BenchmarkRequest(b *testing.B) {
	schedules, as := benchEstate(b, false)
	tl := NewTimeline(schedules, benchHorizon)
	inv, err := InventoryOf(tl, nil, as)
	if err != nil {
		b.Fatal(err)
	}
	moves := benchRequest(as)
	as = nil     // the inventory is the estate; the rows it was read from are gone
	runtime.GC() // the set-up's garbage is not the benchmark's
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	for b.Loop() {
		if _, err := inv.CheckRequest(moves); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}

// BenchmarkRequestWithTimeline adds what the job does per request on top of
// the check: the windows of all 24 schedules over the horizon, and the
// suggestions of a refusal (every other schedule tried).
func BenchmarkRequestWithTimeline(b *testing.B) {
	schedules, as := benchEstate(b, false)
	moves := benchRequest(as)
	// The job's inventory: the touched service only.
	var mine []Assignment
	for _, a := range as {
		if ServiceKey(a.Service) == ServiceKey(moves[0].To.Service) {
			mine = append(mine, a)
		}
	}
	as = nil     // the job holds only the touched services' devices
	runtime.GC() // the set-up's garbage is not the benchmark's
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	for b.Loop() {
		inv, err := InventoryOf(NewTimeline(schedules, NextCycles(time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC))), nil, mine)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := inv.CheckRequest(moves); err != nil {
			b.Fatal(err)
		}
		if _, err := inv.Suggest(moves, 5); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}

// BenchmarkPlanHold: the plan check of a change placing every schedule of a
// cycle, under the hold policy, against the whole estate.
func BenchmarkPlanHold(b *testing.B) {
	schedules, as := benchEstate(b, false)
	inv, err := InventoryOf(NewTimeline(schedules, benchHorizon), nil, as)
	if err != nil {
		b.Fatal(err)
	}
	res := calendar.Plan(schedules, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
	var entries []PlanEntry
	for _, w := range res.Windows {
		entries = append(entries, PlanEntry{Schedule: w.Schedule, Window: &w})
	}
	runtime.GC() // the set-up's garbage is not the benchmark's
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	var v PlanVerdict
	for b.Loop() {
		v = inv.CheckPlan(entries, true)
	}
	reportCPU(b, cpu)
	b.ReportMetric(float64(len(v.Violations)), "violations")
	b.ReportMetric(float64(len(v.Held)), "held")
}
