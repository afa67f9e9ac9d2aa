package calendar

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/autopatch/autopatch/internal/yamlnode"
)

// The bounds of a recurring window's duration (docs/architecture.md §4.2 / issue #3).
const (
	MinDuration = 15 * time.Minute
	MaxDuration = 24 * time.Hour
)

// maxOffsetDays keeps Patch Tuesday offsets inside time.Time's arithmetic. The
// contract allows any integer; a hundred years either way is any integer in practice.
const maxOffsetDays = 36500

// nameRE is the charset of schedule names: they travel into SCCM deployment names
// (AP-<change>-<schedule>-<group>), so no spaces or punctuation SCCM or a shell mangles.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// siteRE is SCCM's rule for a site code: three letters or digits.
var siteRE = regexp.MustCompile(`^[A-Z0-9]{3}$`)

// FieldError is one problem in a schedules file; its message names the
// schedule and the field, e.g. `schedules[2] "DB-SAT-0200": timezone:
// unknown time zone "Europe/Lundon" (line 14)`.
type FieldError = yamlnode.FieldError

// Parse reads and validates a schedules file (docs/architecture.md §4.2). It reports every
// problem, not just the first: the error wraps an errors.Join of one *FieldError per
// problem, in file order, so the message reads one problem per line; errors.As finds
// the first, and errors.Unwrap then Unwrap() []error yields them all.
func Parse(data []byte) ([]Schedule, error) {
	var doc yaml.Node
	// Strict: a misspelt key must be an error, never a silently ignored setting. The
	// walk below checks every mapping's keys itself rather than through the decoder's
	// KnownFields, whose messages name Go types instead of the schedule and field.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("calendar: parse schedules: the file is empty")
		}
		return nil, fmt.Errorf("calendar: parse schedules: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("calendar: parse schedules: want one YAML document, found more")
	}
	p := &parser{}
	schedules := p.file(&doc)
	if len(p.errs) > 0 {
		// File order reads best: by schedule, then by line.
		slices.SortStableFunc(p.errs, func(a, b *FieldError) int {
			if a.Index != b.Index {
				return a.Index - b.Index
			}
			return a.Line - b.Line
		})
		errs := make([]error, len(p.errs))
		for k, e := range p.errs {
			errs[k] = e
		}
		return nil, fmt.Errorf("calendar: invalid schedules file:\n%w", errors.Join(errs...))
	}
	return schedules, nil
}

// parser collects problems while walking the YAML tree.
type parser struct {
	errs []*FieldError
	// zones caches loaded locations: time.LoadLocation reads and decodes the zone
	// database on every call, and a large file names the same few zones many times.
	zones map[string]*time.Location
}

func (p *parser) fail(index int, name, field string, n *yaml.Node, format string, args ...any) {
	p.errs = append(p.errs, &FieldError{List: "schedules", Index: index, Name: name, Field: field, Line: yamlnode.Line(n), Msg: fmt.Sprintf(format, args...)})
}

// pair is one key of a mapping with its value.
type pair struct {
	key   string
	keyN  *yaml.Node
	value *yaml.Node
}

// fields returns a mapping's pairs, reporting keys not in allowed and repeated keys.
func (p *parser) fields(n *yaml.Node, allowed []string, index int, name, prefix string) map[string]pair {
	out := make(map[string]pair, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], yamlnode.Deref(n.Content[i+1])
		field := prefix + k.Value
		switch {
		case !slices.Contains(allowed, k.Value):
			p.fail(index, name, field, k, "unknown field; want one of %s", strings.Join(allowed, ", "))
		case out[k.Value].keyN != nil:
			p.fail(index, name, field, k, "repeated")
		default:
			out[k.Value] = pair{key: k.Value, keyN: k, value: v}
		}
	}
	return out
}

// str returns a scalar's text; ok is false (and a problem recorded) for anything else.
func (p *parser) str(f pair, index int, name, field string) (string, bool) {
	if yamlnode.IsNull(f.value) {
		return "", true
	}
	if f.value.Kind != yaml.ScalarNode {
		p.fail(index, name, field, f.value, "want a single value")
		return "", false
	}
	if strings.ContainsRune(f.value.Value, 0) {
		// YAML's "\0" escape reaches here; PostgreSQL text cannot hold it,
		// so serve would stop at start-up on what plan accepted.
		p.fail(index, name, field, f.value, "contains a NUL character (\\0), which SCCM and the database cannot store")
		return "", false
	}
	return f.value.Value, true
}

var scheduleFields = []string{"name", "collection", "site", "kind", "timezone", "recurrence", "start", "duration", "windows"}

func (p *parser) file(doc *yaml.Node) []Schedule {
	root := yamlnode.Deref(doc)
	if root == nil || yamlnode.IsNull(root) {
		p.fail(-1, "", "schedules", nil, "required")
		return nil
	}
	if root.Kind != yaml.MappingNode {
		p.fail(-1, "", "", root, "want a mapping with the key schedules")
		return nil
	}
	top := p.fields(root, []string{"schedules"}, -1, "", "")
	list, ok := top["schedules"]
	switch {
	case !ok:
		p.fail(-1, "", "schedules", root, "required")
		return nil
	case yamlnode.IsNull(list.value):
		p.fail(-1, "", "schedules", list.keyN, "empty; want at least one schedule")
		return nil
	case list.value.Kind != yaml.SequenceNode:
		p.fail(-1, "", "schedules", list.value, "want a list")
		return nil
	case len(list.value.Content) == 0:
		p.fail(-1, "", "schedules", list.value, "empty; want at least one schedule")
		return nil
	}
	schedules := make([]Schedule, 0, len(list.value.Content))
	names := map[string]int{}       // lower-cased name → index
	collections := map[string]int{} // lower-cased collection → index
	for i, item := range list.value.Content {
		s, nameN, collN := p.schedule(i, yamlnode.Deref(item))
		// SCCM compares collection names case-insensitively, and two schedules whose
		// names differ only in case would read as one in deployment names.
		if key := strings.ToLower(s.Name); s.Name != "" {
			if j, dup := names[key]; dup {
				p.fail(i, s.Name, "name", nameN, "duplicate of schedules[%d] %q", j, schedules[j].Name)
			} else {
				names[key] = i
			}
		}
		if key := strings.ToLower(s.Collection); s.Collection != "" {
			if j, dup := collections[key]; dup {
				p.fail(i, s.Name, "collection", collN, "%q already used by schedules[%d] %q", s.Collection, j, schedules[j].Name)
			} else {
				collections[key] = i
			}
		}
		schedules = append(schedules, s)
	}
	return schedules
}

// schedule validates one entry. It returns what it could read even when there are
// problems so that later checks (duplicates) still run; the name and collection nodes
// are for their line numbers.
func (p *parser) schedule(i int, n *yaml.Node) (s Schedule, nameN, collN *yaml.Node) {
	if n == nil || n.Kind != yaml.MappingNode {
		p.fail(i, "", "", n, "want a mapping with name, collection, ...")
		return Schedule{}, nil, nil
	}
	// The name first: every other message carries it, unknown keys included.
	for k := 0; k+1 < len(n.Content); k += 2 {
		if v := yamlnode.Deref(n.Content[k+1]); n.Content[k].Value == "name" && v != nil && v.Kind == yaml.ScalarNode && !yamlnode.IsNull(v) {
			s.Name = v.Value
		}
	}
	f := p.fields(n, scheduleFields, i, s.Name, "")
	s.Name = ""
	if fn, ok := f["name"]; ok {
		nameN = fn.value
		if v, ok := p.str(fn, i, "", "name"); ok {
			switch {
			case v == "":
				p.fail(i, "", "name", fn.keyN, "required")
			case !nameRE.MatchString(v):
				p.fail(i, v, "name", fn.value, "want 1..64 characters of A-Z a-z 0-9 . _ - (it becomes part of SCCM deployment names)")
				s.Name = v
			default:
				s.Name = v
			}
		}
	} else {
		p.fail(i, "", "name", n, "required")
	}
	name := s.Name

	if fc, ok := f["collection"]; ok {
		collN = fc.value
		if v, ok := p.str(fc, i, name, "collection"); ok {
			switch {
			case v == "":
				p.fail(i, name, "collection", fc.keyN, "required")
			case strings.TrimSpace(v) != v:
				p.fail(i, name, "collection", fc.value, "%q has leading or trailing spaces; SCCM would not find it", v)
			default:
				s.Collection = v
			}
		}
	} else {
		p.fail(i, name, "collection", n, "required")
	}

	if fs, ok := f["site"]; ok {
		if v, ok := p.str(fs, i, name, "site"); ok && v != "" {
			if siteRE.MatchString(v) {
				s.Site = v
			} else {
				p.fail(i, name, "site", fs.value, "%q is not a site code: want three upper-case letters or digits (PS1)", v)
			}
		}
	}

	s.Kind = KindAutomatic
	if fk, ok := f["kind"]; ok {
		if v, ok := p.str(fk, i, name, "kind"); ok && v != "" {
			switch k := Kind(v); k {
			case KindAutomatic, KindManualPatch, KindManualReboot:
				s.Kind = k
			default:
				p.fail(i, name, "kind", fk.value, "unknown kind %q; want automatic, manual_patch or manual_reboot", v)
			}
		}
	}

	fr, hasRec := f["recurrence"]
	fw, hasWin := f["windows"]
	hasRec = hasRec && !yamlnode.IsNull(fr.value)
	hasWin = hasWin && !yamlnode.IsNull(fw.value)

	if ft, ok := f["timezone"]; ok {
		if v, ok := p.str(ft, i, name, "timezone"); ok && v != "" {
			s.TimeZone = v
			s.Location = p.location(i, name, ft.value, v)
		} else if ok && hasRec {
			p.fail(i, name, "timezone", ft.keyN, "required with recurrence (an IANA zone such as Europe/London)")
		}
	} else if hasRec {
		p.fail(i, name, "timezone", n, "required with recurrence (an IANA zone such as Europe/London)")
	}
	if s.TimeZone == "" && !hasRec {
		// One-off windows are absolute instants; the zone only affects how they print.
		s.TimeZone, s.Location = "UTC", time.UTC
	}

	if hasRec && hasWin {
		p.fail(i, name, "windows", fw.keyN, "cannot be combined with recurrence; a schedule has one or the other")
	}
	if !hasRec && !hasWin {
		p.fail(i, name, "recurrence", n, "required (or windows, for one-off windows)")
	}
	if hasRec {
		s.Recurrence = p.recurrence(i, name, fr.value)
		s.Start, s.Duration = p.startAndDuration(i, name, n, f)
	}
	if hasWin {
		if !hasRec {
			for _, key := range []string{"start", "duration"} {
				if fx, ok := f[key]; ok {
					p.fail(i, name, key, fx.keyN, "not allowed with windows (each window has its own start and end)")
				}
			}
		}
		loc := s.Location
		if loc == nil {
			loc = time.UTC // the zone was invalid and is reported already
		}
		s.OneOffs = p.oneOffs(i, name, fw.value, loc)
	}
	return s, nameN, collN
}

func (p *parser) location(i int, name string, n *yaml.Node, zone string) *time.Location {
	if zone == "Local" {
		// time.LoadLocation("Local") is the machine's zone: the same file would mean
		// different instants on different servers.
		p.fail(i, name, "timezone", n, "%q is the machine's zone; name an IANA zone such as Europe/London", zone)
		return nil
	}
	if loc, ok := p.zones[zone]; ok {
		if loc == nil {
			p.fail(i, name, "timezone", n, "unknown time zone %q", zone)
		}
		return loc
	}
	loc, err := time.LoadLocation(zone)
	if p.zones == nil {
		p.zones = map[string]*time.Location{}
	}
	p.zones[zone] = loc
	if err != nil {
		p.fail(i, name, "timezone", n, "unknown time zone %q", zone)
		return nil
	}
	return loc
}

var recurrenceFields = []string{"anchor", "offset_days", "nth", "weekday"}

func (p *parser) recurrence(i int, name string, n *yaml.Node) *Recurrence {
	if n.Kind != yaml.MappingNode {
		p.fail(i, name, "recurrence", n, "want a mapping such as {anchor: patch_tuesday, offset_days: 4}")
		return nil
	}
	f := p.fields(n, recurrenceFields, i, name, "recurrence.")
	r := &Recurrence{}
	fa, ok := f["anchor"]
	anchor := ""
	if ok {
		anchor, _ = p.str(fa, i, name, "recurrence.anchor")
	}
	switch Anchor(anchor) {
	case AnchorPatchTuesday, AnchorNthWeekday:
		r.Anchor = Anchor(anchor)
	case "":
		p.fail(i, name, "recurrence.anchor", n, "required; want patch_tuesday or nth_weekday")
	default:
		p.fail(i, name, "recurrence.anchor", fa.value, "unknown anchor %q; want patch_tuesday or nth_weekday", anchor)
	}
	// onlyWith reports a field that belongs to the other anchor.
	onlyWith := func(key string, want Anchor) bool {
		fx, ok := f[key]
		if ok && r.Anchor != "" && r.Anchor != want {
			p.fail(i, name, "recurrence."+key, fx.keyN, "only with anchor %s", want)
			return false
		}
		return ok
	}
	if onlyWith("offset_days", AnchorPatchTuesday) {
		fo := f["offset_days"]
		if v, ok := p.integer(i, name, "recurrence.offset_days", fo); ok {
			if v < -maxOffsetDays || v > maxOffsetDays {
				p.fail(i, name, "recurrence.offset_days", fo.value, "%d out of range %d..%d", v, -maxOffsetDays, maxOffsetDays)
			} else {
				r.OffsetDays = v
			}
		}
	}
	if onlyWith("nth", AnchorNthWeekday) {
		fn := f["nth"]
		if v, ok := p.integer(i, name, "recurrence.nth", fn); ok {
			if (v < 1 || v > 5) && v != -1 {
				p.fail(i, name, "recurrence.nth", fn.value, "%d out of range; want 1..5 or -1 (the last)", v)
			} else {
				r.Nth = v
			}
		}
	} else if _, ok := f["nth"]; !ok && r.Anchor == AnchorNthWeekday {
		p.fail(i, name, "recurrence.nth", n, "required with anchor nth_weekday; want 1..5 or -1 (the last)")
	}
	if onlyWith("weekday", AnchorNthWeekday) {
		fd := f["weekday"]
		if v, ok := p.str(fd, i, name, "recurrence.weekday"); ok {
			if wd, ok := parseWeekday(v); ok {
				r.Weekday = wd
			} else {
				p.fail(i, name, "recurrence.weekday", fd.value, "unknown weekday %q; want sunday, monday, ... saturday", v)
			}
		}
	} else if _, ok := f["weekday"]; !ok && r.Anchor == AnchorNthWeekday {
		p.fail(i, name, "recurrence.weekday", n, "required with anchor nth_weekday; want sunday, monday, ... saturday")
	}
	return r
}

func (p *parser) integer(i int, name, field string, f pair) (int, bool) {
	if yamlnode.IsNull(f.value) {
		p.fail(i, name, field, f.keyN, "empty; want an integer")
		return 0, false
	}
	if f.value.Kind == yaml.ScalarNode && f.value.Tag == "!!int" {
		if v, err := strconv.Atoi(f.value.Value); err == nil {
			return v, true
		}
		var v int
		if err := f.value.Decode(&v); err == nil { // 0x10, 1_000, ...
			return v, true
		}
	}
	p.fail(i, name, field, f.value, "%q: want an integer", f.value.Value)
	return 0, false
}

func parseWeekday(s string) (time.Weekday, bool) {
	for d := time.Sunday; d <= time.Saturday; d++ {
		if strings.EqualFold(s, d.String()) {
			return d, true
		}
	}
	return 0, false
}

func (p *parser) startAndDuration(i int, name string, n *yaml.Node, f map[string]pair) (TimeOfDay, time.Duration) {
	var start TimeOfDay
	if fs, ok := f["start"]; !ok || yamlnode.IsNull(fs.value) {
		p.fail(i, name, "start", n, `required with recurrence; want "HH:MM" local time`)
	} else if v, ok := p.str(fs, i, name, "start"); ok {
		c, ok := parseTimeOfDay(v)
		if !ok {
			p.fail(i, name, "start", fs.value, `bad start %q; want "HH:MM" (00:00..23:59)`, v)
		}
		start = c
	}
	var d time.Duration
	if fd, ok := f["duration"]; !ok || yamlnode.IsNull(fd.value) {
		p.fail(i, name, "duration", n, "required with recurrence; want a Go duration such as 4h or 90m")
	} else if v, ok := p.str(fd, i, name, "duration"); ok {
		parsed, err := time.ParseDuration(v)
		switch {
		case err != nil:
			p.fail(i, name, "duration", fd.value, "bad duration %q; want a Go duration such as 4h or 90m", v)
		case parsed < MinDuration || parsed > MaxDuration:
			p.fail(i, name, "duration", fd.value, "%s outside %s..%s", v, fmtDuration(MinDuration), fmtDuration(MaxDuration))
		default:
			d = parsed
		}
	}
	return start, d
}

// parseTimeOfDay accepts exactly "HH:MM", 00:00..23:59.
func parseTimeOfDay(s string) (TimeOfDay, bool) {
	if len(s) != 5 || s[2] != ':' {
		return TimeOfDay{}, false
	}
	h, err1 := strconv.Atoi(s[:2])
	m, err2 := strconv.Atoi(s[3:])
	if err1 != nil || err2 != nil || s[0] == '+' || s[0] == '-' || s[3] == '+' || s[3] == '-' ||
		h < 0 || h > 23 || m < 0 || m > 59 {
		return TimeOfDay{}, false
	}
	return TimeOfDay{Hour: h, Minute: m}, true
}

// fmtDuration prints 15m0s as 15m and 24h0m0s as 24h.
func fmtDuration(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

var windowFields = []string{"start", "end"}

// oneOffs reads explicit windows: RFC 3339 instants with end after start, no two of
// one schedule overlapping (a collection is either inside its window or not).
func (p *parser) oneOffs(i int, name string, n *yaml.Node, loc *time.Location) []Window {
	if n.Kind != yaml.SequenceNode {
		p.fail(i, name, "windows", n, "want a list of {start, end}")
		return nil
	}
	if len(n.Content) == 0 {
		p.fail(i, name, "windows", n, "empty; want at least one {start, end}")
		return nil
	}
	type indexed struct {
		Window
		j int
	}
	var ws []indexed
	for j, item := range n.Content {
		item = yamlnode.Deref(item)
		prefix := fmt.Sprintf("windows[%d]", j)
		if item == nil || item.Kind != yaml.MappingNode {
			p.fail(i, name, prefix, item, "want {start, end}")
			continue
		}
		f := p.fields(item, windowFields, i, name, prefix+".")
		start, okS := p.instant(i, name, prefix+".start", item, f)
		end, okE := p.instant(i, name, prefix+".end", item, f)
		if !okS || !okE {
			continue
		}
		if !end.After(start) {
			p.fail(i, name, prefix+".end", f["end"].value, "%s is not after start %s", f["end"].value.Value, f["start"].value.Value)
			continue
		}
		ws = append(ws, indexed{Window: Window{Schedule: name, Start: start.In(loc), End: end.In(loc), Cycle: MonthOf(start.UTC())}, j: j})
	}
	slices.SortStableFunc(ws, func(a, b indexed) int { return a.Start.Compare(b.Start) })
	out := make([]Window, 0, len(ws))
	for k, w := range ws {
		if k > 0 && w.Start.Before(ws[k-1].End) {
			p.fail(i, name, fmt.Sprintf("windows[%d]", w.j), n.Content[w.j], "overlaps windows[%d]", ws[k-1].j)
		}
		out = append(out, w.Window)
	}
	return out
}

func (p *parser) instant(i int, name, field string, item *yaml.Node, f map[string]pair) (time.Time, bool) {
	key := field[strings.LastIndexByte(field, '.')+1:]
	fx, ok := f[key]
	if !ok || yamlnode.IsNull(fx.value) {
		p.fail(i, name, field, item, "required; want an RFC 3339 instant such as 2026-12-20T22:00:00Z")
		return time.Time{}, false
	}
	v, ok := p.str(fx, i, name, field)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		p.fail(i, name, field, fx.value, "bad instant %q; want RFC 3339 such as 2026-12-20T22:00:00Z", v)
		return time.Time{}, false
	}
	return t, true
}
