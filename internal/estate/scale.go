package estate

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// scaleDefaults is the generator's data file: every default with its source.
//
//go:embed scale.yaml
var scaleDefaults []byte

// Scale describes a generated estate (issue #19): servers in services of
// MinService to MaxService tiered members, spread over Schedules weekend
// windows, with a few percent failing, silent or slow. DefaultScale reads
// the defaults from scale.yaml; ParseScale overrides them.
type Scale struct {
	Servers int `yaml:"servers"`
	// Schedules windows over Days days from Patch Tuesday + 2 (Thursday),
	// Schedules/Days a day, starting at FirstStart and every WindowEvery
	// after it, Duration long, in Timezone.
	Schedules   int           `yaml:"schedules"`
	Days        int           `yaml:"days"`
	FirstStart  string        `yaml:"first_start"`
	WindowEvery time.Duration `yaml:"window_every"`
	Duration    time.Duration `yaml:"duration"`
	Timezone    string        `yaml:"timezone"`

	UpdateGroups int `yaml:"update_groups"`
	MinService   int `yaml:"min_service"`
	MaxService   int `yaml:"max_service"`

	// Fractions of the devices with each outcome; the rest succeed.
	Failing   float64 `yaml:"failing"`
	Transient float64 `yaml:"transient"`
	Silent    float64 `yaml:"silent"`
	Slow      float64 `yaml:"slow"`

	Latency time.Duration `yaml:"latency"`
	Seed    uint64        `yaml:"seed"`
}

// DefaultScale returns the defaults of scale.yaml.
func DefaultScale() Scale {
	s, err := decodeScale(scaleDefaults, Scale{})
	if err != nil {
		panic(err) // the embedded file is tested
	}
	return s
}

func decodeScale(b []byte, s Scale) (Scale, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil && !errors.Is(err, io.EOF) {
		return Scale{}, fmt.Errorf("estate: scale: %w", err)
	}
	return s, s.Validate()
}

// ParseScale reads "key=value,…" (the keys of scale.yaml) over the defaults:
// "servers=2000,schedules=1,latency=0s".
func ParseScale(spec string) (Scale, error) {
	var b strings.Builder
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return Scale{}, fmt.Errorf("estate: scale: %q: want key=value", part)
		}
		fmt.Fprintf(&b, "%s: %s\n", strings.TrimSpace(k), strings.TrimSpace(v))
	}
	return decodeScale([]byte(b.String()), DefaultScale())
}

// Validate reports the first setting the generator cannot use.
func (s Scale) Validate() error {
	switch {
	case s.Servers < 1:
		return fmt.Errorf("estate: scale: servers %d: want at least 1", s.Servers)
	case s.Schedules < 1 || s.Days < 1 || s.Days > 7:
		return fmt.Errorf("estate: scale: want at least 1 schedule over 1 to 7 days, got %d over %d", s.Schedules, s.Days)
	case s.UpdateGroups < 1:
		return fmt.Errorf("estate: scale: update_groups %d: want at least 1", s.UpdateGroups)
	case s.MinService < 1 || s.MaxService < s.MinService:
		return fmt.Errorf("estate: scale: services of %d to %d members", s.MinService, s.MaxService)
	case s.Failing < 0 || s.Transient < 0 || s.Silent < 0 || s.Slow < 0 || s.Failing+s.Transient+s.Silent+s.Slow > 1:
		return errors.New("estate: scale: failing, transient, silent and slow are fractions adding up to at most 1")
	case s.Latency < 0 || s.Duration <= 0 || s.WindowEvery < 0:
		return errors.New("estate: scale: latency, window_every and duration must not be negative (duration positive)")
	}
	if _, err := time.Parse("15:04", s.FirstStart); err != nil {
		return fmt.Errorf("estate: scale: first_start %q: want HH:MM", s.FirstStart)
	}
	if _, err := time.LoadLocation(s.Timezone); err != nil {
		return fmt.Errorf("estate: scale: timezone: %w", err)
	}
	return nil
}

// ScaleSchedule is one generated schedule.
type ScaleSchedule struct {
	Name       string
	Collection string
	// OffsetDays from Patch Tuesday (2 is Thursday); Start is HH:MM local.
	OffsetDays int
	Start      string
}

// ScaleDevice is one generated device: its service, tier and schedule (the
// assignment a schedule request would make) and its outcome.
type ScaleDevice struct {
	Name     string
	Service  string
	Tier     string
	Schedule string
	Outcome  string
}

// ScaleEstate is what Generate makes.
type ScaleEstate struct {
	Scale        Scale
	UpdateGroups []string
	Schedules    []ScaleSchedule
	Devices      []ScaleDevice
}

// scaleErrorCodes are the codes failing devices report: the commonest
// patch failures (see jobs.wuErrors).
var scaleErrorCodes = []string{"0x80240022", "0x80070643", "0x800F0922", "0x80070070", "0x87D00324", "0x80244022"}

// Generate builds the estate s describes. The month names the update
// groups ("2026-12 OS", …).
func (s Scale) Generate(month string) ScaleEstate {
	rng := rand.New(rand.NewPCG(s.Seed, 0x5ca1e))
	out := ScaleEstate{Scale: s}
	groupNames := []string{"OS", "DotNET", "Office-SQL"}
	for i := range s.UpdateGroups {
		name := fmt.Sprintf("Group %d", i+1)
		if i < len(groupNames) {
			name = groupNames[i]
		}
		out.UpdateGroups = append(out.UpdateGroups, month+" "+name)
	}

	first, _ := time.Parse("15:04", s.FirstStart)
	perDay := (s.Schedules + s.Days - 1) / s.Days
	days := []string{"THU", "FRI", "SAT", "SUN", "MON", "TUE", "WED"}
	for i := range s.Schedules {
		day, slot := i/perDay, i%perDay
		start := first.Add(time.Duration(slot) * s.WindowEvery).Format("15:04")
		name := fmt.Sprintf("MSIT-%s-%s", days[day%7], strings.ReplaceAll(start, ":", ""))
		out.Schedules = append(out.Schedules, ScaleSchedule{
			Name: name, Collection: "Patch - " + name, OffsetDays: 2 + day, Start: start,
		})
	}

	// Tier bands over the schedule list, in order: backend the first half,
	// middle the third quarter, frontend the last; a band never empty.
	n := len(out.Schedules)
	band := func(lo, hi int) []int {
		lo, hi = min(lo, n-1), max(min(hi, n), min(lo, n-1)+1)
		var b []int
		for i := lo; i < hi; i++ {
			b = append(b, i)
		}
		return b
	}
	bands := map[string][]int{
		"backend":  band(0, n/2),
		"middle":   band(n/2, n*3/4),
		"frontend": band(n*3/4, n),
	}

	for svc := 1; len(out.Devices) < s.Servers; svc++ {
		rest := s.Servers - len(out.Devices)
		size := min(s.MinService+rng.IntN(s.MaxService-s.MinService+1), rest)
		if left := rest - size; left > 0 && left < s.MinService {
			// Never leave a remainder too small to be a service.
			size = rest - s.MinService
			if size < s.MinService {
				size = rest
			}
		}
		service := fmt.Sprintf("SVC%04d", svc)
		used := map[int]bool{}
		for m := range size {
			tier := serviceTier(m, size)
			b := bands[tier]
			// A schedule of the band no other member took, if any is left.
			pick := b[rng.IntN(len(b))]
			for range len(b) {
				if !used[pick] {
					break
				}
				pick = b[(slices.Index(b, pick)+1)%len(b)]
			}
			used[pick] = true
			out.Devices = append(out.Devices, ScaleDevice{
				Name: fmt.Sprintf("SRV%05d", len(out.Devices)+1), Service: service, Tier: tier,
				Schedule: out.Schedules[pick].Name, Outcome: s.outcome(rng),
			})
		}
	}
	return out
}

// serviceTier tiers member m of a service of size members: the first third
// backend, the last third frontend, the rest middle (a pair: backend and
// frontend).
func serviceTier(m, size int) string {
	third := max(1, size/3)
	switch {
	case m < third:
		return "backend"
	case m >= size-third:
		return "frontend"
	}
	return "middle"
}

func (s Scale) outcome(rng *rand.Rand) string {
	x := rng.Float64()
	switch {
	case x < s.Failing:
		return "error " + scaleErrorCodes[rng.IntN(len(scaleErrorCodes))]
	case x < s.Failing+s.Transient:
		return "error 0x8024402C then success"
	case x < s.Failing+s.Transient+s.Silent:
		return "silent"
	case x < s.Failing+s.Transient+s.Silent+s.Slow:
		return "in progress"
	}
	return ""
}

// Seed is the simulated site's starting content: the update groups, every
// schedule's collection and every device a member of its schedule's.
func (e ScaleEstate) Seed() Seed {
	seed := Seed{UpdateGroups: e.UpdateGroups, Latency: e.Scale.Latency}
	for _, s := range e.Schedules {
		seed.Collections = append(seed.Collections, SeedCollection{Name: s.Collection})
	}
	coll := map[string]string{}
	for _, s := range e.Schedules {
		coll[s.Name] = s.Collection
	}
	seed.Devices = make([]SeedDevice, len(e.Devices))
	for i, d := range e.Devices {
		seed.Devices[i] = SeedDevice{Name: d.Name, Outcome: d.Outcome, Collections: []string{coll[d.Schedule]}}
	}
	return seed
}

// SchedulesYAML is the schedules file of the estate (docs/architecture.md §4.2).
func (e ScaleEstate) SchedulesYAML() []byte {
	var b bytes.Buffer
	b.WriteString("# Generated by autopatch sim --generate (internal/estate/scale.go).\nschedules:\n")
	for _, s := range e.Schedules {
		fmt.Fprintf(&b, "  - {name: %s, collection: %q, kind: automatic, timezone: %s, recurrence: {anchor: patch_tuesday, offset_days: %d}, start: %q, duration: %s}\n",
			s.Name, s.Collection, e.Scale.Timezone, s.OffsetDays, s.Start, e.Scale.Duration)
	}
	return b.Bytes()
}

// AssignmentsYAML is the assignments file of the estate (as `autopatch plan
// --check` reads it): every device's service, tier and schedule.
func (e ScaleEstate) AssignmentsYAML() []byte {
	var b bytes.Buffer
	b.WriteString("# Generated by autopatch sim --generate (internal/estate/scale.go).\ndevices:\n")
	for _, d := range e.Devices {
		fmt.Fprintf(&b, "  - {name: %s, service: %s, tier: %s, schedule: %s}\n", d.Name, d.Service, d.Tier, d.Schedule)
	}
	return b.Bytes()
}
