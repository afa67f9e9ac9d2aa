package calendar

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	t.Parallel()

	ss := mustParse(t, `
schedules:
  - name: DB-SAT-0200
    collection: "Patch - DB - Sat 02:00"
    kind: automatic
    timezone: Europe/London
    recurrence: {anchor: patch_tuesday, offset_days: -3}
    start: "02:00"
    duration: 4h
  - name: WEB-LAST-SUN
    collection: "Patch - Web - last Sun"
    kind: manual_reboot
    timezone: America/New_York
    recurrence: {anchor: nth_weekday, nth: -1, weekday: Sunday}
    start: 23:30
    duration: 90m
  - name: ONE-OFF
    collection: "Patch - Special"
    kind: manual_patch
    windows:
      - start: 2026-12-20T22:00:00Z   # unquoted: a YAML timestamp, read as written
        end: "2026-12-21T02:00:00+01:00"
`)
	require.Len(t, ss, 3)

	db := ss[0]
	require.Equal(t, "DB-SAT-0200", db.Name)
	require.Equal(t, "Patch - DB - Sat 02:00", db.Collection)
	require.Equal(t, KindAutomatic, db.Kind)
	require.Equal(t, "Europe/London", db.TimeZone)
	require.Equal(t, "Europe/London", db.Location.String())
	require.Equal(t, &Recurrence{Anchor: AnchorPatchTuesday, OffsetDays: -3}, db.Recurrence)
	require.Equal(t, TimeOfDay{2, 0}, db.Start)
	require.Equal(t, 4*time.Hour, db.Duration)
	require.Nil(t, db.OneOffs)
	require.Equal(t, "PT-3", db.Recurrence.String())

	web := ss[1]
	require.Equal(t, KindManualReboot, web.Kind)
	require.Equal(t, &Recurrence{Anchor: AnchorNthWeekday, Nth: -1, Weekday: time.Sunday}, web.Recurrence)
	require.Equal(t, TimeOfDay{23, 30}, web.Start)
	require.Equal(t, 90*time.Minute, web.Duration)
	require.Equal(t, "last Sunday", web.Recurrence.String())

	one := ss[2]
	require.Equal(t, KindManualPatch, one.Kind)
	require.Equal(t, "UTC", one.TimeZone)
	require.Nil(t, one.Recurrence)
	require.Len(t, one.OneOffs, 1)
	require.Equal(t, time.Date(2026, 12, 20, 22, 0, 0, 0, time.UTC), one.OneOffs[0].Start.UTC())
	require.Equal(t, time.Date(2026, 12, 21, 1, 0, 0, 0, time.UTC), one.OneOffs[0].End.UTC())
	require.Equal(t, "ONE-OFF", one.OneOffs[0].Schedule)

	t.Run("DefaultKindIsAutomatic", func(t *testing.T) {
		t.Parallel()
		ss := mustParse(t, "schedules: [{name: a, collection: c, windows: [{start: '2026-01-01T00:00:00Z', end: '2026-01-01T00:00:01Z'}]}]")
		require.Equal(t, KindAutomatic, ss[0].Kind)
	})
}

// TestParseErrors pins the message of every validation, each alone in a file and
// then all of them in one file: Parse reports every problem, not the first.
func TestParseErrors(t *testing.T) {
	t.Parallel()

	// A valid schedule is "base" with fields replaced or removed; each case breaks one.
	const base = `  - name: DB-SAT-0200
    collection: Patch - DB
    timezone: Europe/London
    recurrence: {anchor: patch_tuesday, offset_days: 4}
    start: "02:00"
    duration: 4h
`
	replace := func(old, new string) string {
		require.Contains(t, base, old)
		return strings.Replace(base, old, new, 1)
	}
	cases := []struct {
		name string
		body string // the list items under "schedules:"
		want []string
	}{
		{"CollectionNUL", replace("collection: Patch - DB", `collection: "Patch\0 - DB"`),
			[]string{`schedules[0] "DB-SAT-0200": collection: contains a NUL character (\0), which SCCM and the database cannot store (line 3)`}},
		{"UnknownZone", replace("Europe/London", "Europe/Lundon"),
			[]string{`schedules[0] "DB-SAT-0200": timezone: unknown time zone "Europe/Lundon" (line 4)`}},
		{"LocalZone", replace("Europe/London", "Local"),
			[]string{`schedules[0] "DB-SAT-0200": timezone: "Local" is the machine's zone; name an IANA zone such as Europe/London (line 4)`}},
		{"MissingZone", replace("    timezone: Europe/London\n", ""),
			[]string{`schedules[0] "DB-SAT-0200": timezone: required with recurrence (an IANA zone such as Europe/London) (line 2)`}},
		{"BadStart", replace(`"02:00"`, `"2:00"`),
			[]string{`schedules[0] "DB-SAT-0200": start: bad start "2:00"; want "HH:MM" (00:00..23:59) (line 6)`}},
		{"StartOutOfRange", replace(`"02:00"`, `"24:00"`),
			[]string{`schedules[0] "DB-SAT-0200": start: bad start "24:00"; want "HH:MM" (00:00..23:59) (line 6)`}},
		{"MissingStart", replace("    start: \"02:00\"\n", ""),
			[]string{`schedules[0] "DB-SAT-0200": start: required with recurrence; want "HH:MM" local time (line 2)`}},
		{"DurationTooShort", replace("4h", "10m"),
			[]string{`schedules[0] "DB-SAT-0200": duration: 10m outside 15m..24h (line 7)`}},
		{"DurationTooLong", replace("4h", "24h1m"),
			[]string{`schedules[0] "DB-SAT-0200": duration: 24h1m outside 15m..24h (line 7)`}},
		{"DurationNotADuration", replace("4h", "4 hours"),
			[]string{`schedules[0] "DB-SAT-0200": duration: bad duration "4 hours"; want a Go duration such as 4h or 90m (line 7)`}},
		{"MissingDuration", replace("    duration: 4h\n", ""),
			[]string{`schedules[0] "DB-SAT-0200": duration: required with recurrence; want a Go duration such as 4h or 90m (line 2)`}},
		{"NthOutOfRange", replace("{anchor: patch_tuesday, offset_days: 4}", "{anchor: nth_weekday, nth: 6, weekday: sunday}"),
			[]string{`schedules[0] "DB-SAT-0200": recurrence.nth: 6 out of range; want 1..5 or -1 (the last) (line 5)`}},
		{"NthZero", replace("{anchor: patch_tuesday, offset_days: 4}", "{anchor: nth_weekday, nth: 0, weekday: sunday}"),
			[]string{`schedules[0] "DB-SAT-0200": recurrence.nth: 0 out of range; want 1..5 or -1 (the last) (line 5)`}},
		{"NthNotANumber", replace("{anchor: patch_tuesday, offset_days: 4}", "{anchor: nth_weekday, nth: third, weekday: sunday}"),
			[]string{`schedules[0] "DB-SAT-0200": recurrence.nth: "third": want an integer (line 5)`}},
		{"NthMissing", replace("{anchor: patch_tuesday, offset_days: 4}", "{anchor: nth_weekday, weekday: sunday}"),
			[]string{`schedules[0] "DB-SAT-0200": recurrence.nth: required with anchor nth_weekday; want 1..5 or -1 (the last) (line 5)`}},
		{"BadWeekday", replace("{anchor: patch_tuesday, offset_days: 4}", "{anchor: nth_weekday, nth: 2, weekday: sundy}"),
			[]string{`schedules[0] "DB-SAT-0200": recurrence.weekday: unknown weekday "sundy"; want sunday, monday, ... saturday (line 5)`}},
		{"WeekdayMissing", replace("{anchor: patch_tuesday, offset_days: 4}", "{anchor: nth_weekday, nth: 2}"),
			[]string{`schedules[0] "DB-SAT-0200": recurrence.weekday: required with anchor nth_weekday; want sunday, monday, ... saturday (line 5)`}},
		{"BadAnchor", replace("patch_tuesday", "patch_wednesday"),
			[]string{`schedules[0] "DB-SAT-0200": recurrence.anchor: unknown anchor "patch_wednesday"; want patch_tuesday or nth_weekday (line 5)`}},
		{"MissingAnchor", replace("anchor: patch_tuesday, ", ""),
			[]string{`schedules[0] "DB-SAT-0200": recurrence.anchor: required; want patch_tuesday or nth_weekday (line 5)`}},
		{"OffsetWithNthWeekday", replace("{anchor: patch_tuesday, offset_days: 4}", "{anchor: nth_weekday, nth: 2, weekday: sunday, offset_days: 1}"),
			[]string{`schedules[0] "DB-SAT-0200": recurrence.offset_days: only with anchor patch_tuesday (line 5)`}},
		{"NthWithPatchTuesday", replace("offset_days: 4", "offset_days: 4, nth: 2, weekday: monday"),
			[]string{
				`schedules[0] "DB-SAT-0200": recurrence.nth: only with anchor nth_weekday (line 5)`,
				`schedules[0] "DB-SAT-0200": recurrence.weekday: only with anchor nth_weekday (line 5)`,
			}},
		{"OffsetNotAnInteger", replace("offset_days: 4", "offset_days: 4.5"),
			[]string{`schedules[0] "DB-SAT-0200": recurrence.offset_days: "4.5": want an integer (line 5)`}},
		{"OffsetHuge", replace("offset_days: 4", "offset_days: 99999999"),
			[]string{`schedules[0] "DB-SAT-0200": recurrence.offset_days: 99999999 out of range -36500..36500 (line 5)`}},
		{"RecurrenceNotAMapping", replace("{anchor: patch_tuesday, offset_days: 4}", "patch_tuesday"),
			[]string{`schedules[0] "DB-SAT-0200": recurrence: want a mapping such as {anchor: patch_tuesday, offset_days: 4} (line 5)`}},
		{"UnknownRecurrenceField", replace("offset_days: 4", "offset_day: 4"),
			[]string{`schedules[0] "DB-SAT-0200": recurrence.offset_day: unknown field; want one of anchor, offset_days, nth, weekday (line 5)`}},
		{"BothRecurrenceAndWindows", base + `    windows: [{start: "2026-12-20T22:00:00Z", end: "2026-12-21T02:00:00Z"}]` + "\n",
			[]string{`schedules[0] "DB-SAT-0200": windows: cannot be combined with recurrence; a schedule has one or the other (line 8)`}},
		{"NeitherRecurrenceNorWindows", "  - {name: X, collection: Y, timezone: UTC}\n",
			[]string{`schedules[0] "X": recurrence: required (or windows, for one-off windows) (line 2)`}},
		{"MissingName", replace("  - name: DB-SAT-0200\n    collection", "  - collection"),
			[]string{`schedules[0]: name: required (line 2)`}},
		{"EmptyName", replace("name: DB-SAT-0200", `name: ""`),
			[]string{`schedules[0]: name: required (line 2)`}},
		{"NameCharset", replace("name: DB-SAT-0200", `name: "DB SAT/0200"`),
			[]string{`schedules[0] "DB SAT/0200": name: want 1..64 characters of A-Z a-z 0-9 . _ - (it becomes part of SCCM deployment names) (line 2)`}},
		{"NameTooLong", replace("name: DB-SAT-0200", "name: "+strings.Repeat("x", 65)),
			[]string{`schedules[0] "` + strings.Repeat("x", 65) + `": name: want 1..64 characters of A-Z a-z 0-9 . _ - (it becomes part of SCCM deployment names) (line 2)`}},
		{"MissingCollection", replace("    collection: Patch - DB\n", ""),
			[]string{`schedules[0] "DB-SAT-0200": collection: required (line 2)`}},
		{"CollectionSpaces", replace("collection: Patch - DB", `collection: "Patch - DB "`),
			[]string{`schedules[0] "DB-SAT-0200": collection: "Patch - DB " has leading or trailing spaces; SCCM would not find it (line 3)`}},
		{"BadKind", replace("    timezone:", "    kind: auto\n    timezone:"),
			[]string{`schedules[0] "DB-SAT-0200": kind: unknown kind "auto"; want automatic, manual_patch or manual_reboot (line 4)`}},
		{"UnknownField", replace("timezone:", "timezon:"),
			[]string{
				`schedules[0] "DB-SAT-0200": timezone: required with recurrence (an IANA zone such as Europe/London) (line 2)`,
				`schedules[0] "DB-SAT-0200": timezon: unknown field; want one of name, collection, site, kind, timezone, recurrence, start, duration, windows (line 4)`,
			}},
		{"RepeatedField", replace("    start:", "    duration: 3h\n    start:"),
			[]string{`schedules[0] "DB-SAT-0200": duration: repeated (line 8)`}},
		{"DuplicateName", base + strings.Replace(base, "Patch - DB", "Patch - Other", 1),
			[]string{`schedules[1] "DB-SAT-0200": name: duplicate of schedules[0] "DB-SAT-0200" (line 8)`}},
		{"DuplicateNameIgnoresCase", base + strings.Replace(strings.Replace(base, "Patch - DB", "Patch - Other", 1), "DB-SAT", "db-sat", 1),
			[]string{`schedules[1] "db-sat-0200": name: duplicate of schedules[0] "DB-SAT-0200" (line 8)`}},
		{"DuplicateCollection", base + strings.Replace(strings.Replace(base, "DB-SAT-0200", "OTHER", 1), "Patch - DB", "patch - db", 1),
			[]string{`schedules[1] "OTHER": collection: "patch - db" already used by schedules[0] "DB-SAT-0200" (line 9)`}},
		{"StartWithWindows", "  - {name: X, collection: Y, start: '02:00', duration: 1h, windows: [{start: '2026-12-20T22:00:00Z', end: '2026-12-21T02:00:00Z'}]}\n",
			[]string{
				`schedules[0] "X": start: not allowed with windows (each window has its own start and end) (line 2)`,
				`schedules[0] "X": duration: not allowed with windows (each window has its own start and end) (line 2)`,
			}},
		{"WindowEndBeforeStart", "  - {name: X, collection: Y, windows: [{start: '2026-12-20T22:00:00Z', end: '2026-12-20T22:00:00Z'}]}\n",
			[]string{`schedules[0] "X": windows[0].end: 2026-12-20T22:00:00Z is not after start 2026-12-20T22:00:00Z (line 2)`}},
		{"WindowBadInstant", "  - {name: X, collection: Y, windows: [{start: '2026-12-20 22:00', end: '2026-12-21T02:00:00Z'}]}\n",
			[]string{`schedules[0] "X": windows[0].start: bad instant "2026-12-20 22:00"; want RFC 3339 such as 2026-12-20T22:00:00Z (line 2)`}},
		{"WindowMissingEnd", "  - {name: X, collection: Y, windows: [{start: '2026-12-20T22:00:00Z'}]}\n",
			[]string{`schedules[0] "X": windows[0].end: required; want an RFC 3339 instant such as 2026-12-20T22:00:00Z (line 2)`}},
		{"WindowsOverlap", "  - name: X\n    collection: Y\n    windows:\n      - {start: '2026-12-20T22:00:00Z', end: '2026-12-21T02:00:00Z'}\n      - {start: '2026-12-20T23:00:00-01:00', end: '2026-12-21T03:00:00Z'}\n",
			[]string{`schedules[0] "X": windows[1]: overlaps windows[0] (line 6)`}},
		{"WindowsEmpty", "  - {name: X, collection: Y, windows: []}\n",
			[]string{`schedules[0] "X": windows: empty; want at least one {start, end} (line 2)`}},
		{"WindowUnknownField", "  - {name: X, collection: Y, windows: [{start: '2026-12-20T22:00:00Z', end: '2026-12-21T02:00:00Z', until: x}]}\n",
			[]string{`schedules[0] "X": windows[0].until: unknown field; want one of start, end (line 2)`}},
		{"ScheduleNotAMapping", "  - DB-SAT-0200\n",
			[]string{`schedules[0]: want a mapping with name, collection, ... (line 2)`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte("schedules:\n" + tc.body))
			require.Error(t, err)
			require.Equal(t, "calendar: invalid schedules file:\n"+strings.Join(tc.want, "\n"), err.Error())
			var fe *FieldError
			require.ErrorAs(t, err, &fe)
			require.True(t, strings.HasPrefix(tc.want[0], fmt.Sprintf("schedules[%d]", fe.Index)), "errors.As finds the first problem")
		})
	}

	t.Run("AllAtOnce", func(t *testing.T) {
		t.Parallel()
		var body strings.Builder
		var want []string
		for _, tc := range cases {
			if strings.HasPrefix(tc.name, "Duplicate") {
				continue
			}
			// Make every name and collection unique to this case.
			b := strings.ReplaceAll(tc.body, "DB-SAT-0200", "C"+tc.name)
			b = strings.ReplaceAll(b, "name: X,", "name: C"+tc.name+",")
			b = strings.ReplaceAll(b, "name: X\n", "name: C"+tc.name+"\n")
			b = strings.ReplaceAll(b, "Patch - DB", "Patch - "+tc.name)
			b = strings.ReplaceAll(b, "collection: Y", "collection: "+tc.name)
			body.WriteString(b)
		}
		_, err := Parse([]byte("schedules:\n" + body.String()))
		require.Error(t, err)
		var n int
		for e := range strings.SplitSeq(err.Error(), "\n") {
			if strings.HasPrefix(e, "schedules[") {
				n++
			}
		}
		for _, tc := range cases {
			if !strings.HasPrefix(tc.name, "Duplicate") {
				want = append(want, tc.want...)
			}
		}
		require.Len(t, want, n, err.Error())
		// Every problem is reported, and each one separately findable.
		joined, ok := errors.Unwrap(err).(interface{ Unwrap() []error })
		require.True(t, ok)
		require.Len(t, joined.Unwrap(), n)
	})

	t.Run("File", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name, data, want string
		}{
			{"Empty", "", "calendar: parse schedules: the file is empty"},
			{"OnlyComment", "# nothing\n", "calendar: parse schedules: the file is empty"},
			{"NoSchedulesKey", "schedule: []\n", "calendar: invalid schedules file:\nschedule: unknown field; want one of schedules (line 1)\nschedules: required (line 1)"},
			{"SchedulesEmpty", "schedules: []\n", "calendar: invalid schedules file:\nschedules: empty; want at least one schedule (line 1)"},
			{"SchedulesNull", "schedules:\n", "calendar: invalid schedules file:\nschedules: empty; want at least one schedule (line 1)"},
			{"SchedulesNotAList", "schedules: {a: b}\n", "calendar: invalid schedules file:\nschedules: want a list (line 1)"},
			{"NotAMapping", "- a\n", "calendar: invalid schedules file:\nwant a mapping with the key schedules (line 1)"},
			{"BadYAML", "schedules: [\n", "calendar: parse schedules: yaml: line 1: did not find expected node content"},
			{"TwoDocuments", "schedules: []\n---\nschedules: []\n", "calendar: parse schedules: want one YAML document, found more"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				_, err := Parse([]byte(tc.data))
				require.EqualError(t, err, tc.want)
			})
		}
	})
}

// FuzzParse feeds Parse arbitrary files: it must never panic, and whatever it accepts
// must be usable.
func FuzzParse(f *testing.F) {
	f.Add(genSchedulesYAML(1, 5))
	f.Add("schedules: [{name: a, collection: b, timezone: UTC, recurrence: {anchor: nth_weekday, nth: -1, weekday: friday}, start: '23:59', duration: 24h}]")
	f.Add("schedules: [{name: a, collection: b, windows: [{start: '2026-01-01T00:00:00Z', end: '2026-01-02T00:00:00Z'}]}]")
	f.Add("schedules: [&a {name: a}, *a]")
	f.Add("schedules: [{name: a, collection: b, recurrence: {anchor: patch_tuesday, offset_days: 36500}, timezone: Pacific/Apia, start: '00:00', duration: 15m}]")
	f.Fuzz(func(t *testing.T, data string) {
		ss, err := Parse([]byte(data))
		if err != nil {
			require.Nil(t, ss)
			return
		}
		require.NotEmpty(t, ss)
		for _, s := range ss {
			require.True(t, nameRE.MatchString(s.Name))
			require.NotEmpty(t, s.Collection)
			require.NotNil(t, s.Location)
			require.True(t, (s.Recurrence == nil) != (len(s.OneOffs) == 0))
			from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			ws := s.Windows(from, from.AddDate(1, 0, 0))
			for _, w := range ws {
				require.True(t, w.End.After(w.Start))
			}
		}
	})
}
