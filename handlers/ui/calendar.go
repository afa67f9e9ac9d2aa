package ui

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/autopatch/autopatch/internal/calendar"
	"github.com/autopatch/autopatch/internal/windowview"
)

// calWindow is one window as a calendar cell shows it.
type calWindow struct {
	// Date is the day it falls on in the display zone, YYYY-MM-DD.
	Date     string
	Schedule string
	State    string
	// Label is the times in the display zone, e.g. "23:00–02:00+1 EST".
	Label string
	// Title is the window in its schedule's zone and in UTC.
	Title   string
	Href    string // the change (the first, when several)
	Changes []string
	// DST is set when the window spans a change of its display zone's offset.
	DST  bool
	Held string
	// Deployments counts the live deployments (week view).
	Deployments int
	// Stray: only deployments know this window (windowview.View.Stray).
	Stray bool
}

type calDay struct {
	Date    string // YYYY-MM-DD
	Day     int
	Weekday string
	InMonth bool
	Today   bool
	Windows []calWindow
	DST     []string
}

type calWeek struct {
	Days     []calDay
	WeekHref string
}

type zoneOption struct {
	Value, Label string
	Selected     bool
}

type calendarData struct {
	Month     string // YYYY-MM
	MonthName string
	Prev      string
	Next      string
	TZ        string
	TZLabel   string
	Zones     []zoneOption
	Weeks     []calWeek
	Legend    []string
	Schedules int
	Windows   int
	// Week view.
	WeekStart, WeekEnd string
	PrevWeek, NextWeek string
	Days               []calDay
	MonthHref          string
}

// zoneParam reads tz: empty for each schedule's own zone, else an IANA zone.
func zoneParam(v string) (*time.Location, bool) {
	if v == "" {
		return nil, true
	}
	if v != "UTC" && !strings.Contains(v, "/") {
		return nil, false // "Local" and abbreviations are not zones the viewer means
	}
	loc, err := time.LoadLocation(v)
	return loc, err == nil
}

func (c *console) zoneOptions(selected string) []zoneOption {
	zones := []string{"UTC"}
	for _, s := range c.opts.Schedules.Get().All() {
		zones = append(zones, s.TimeZone)
	}
	if selected != "" {
		zones = append(zones, selected)
	}
	slices.Sort(zones)
	zones = slices.Compact(zones)
	out := []zoneOption{{Value: "", Label: "Each schedule's own zone", Selected: selected == ""}}
	for _, z := range zones {
		out = append(out, zoneOption{Value: z, Label: z, Selected: z == selected})
	}
	return out
}

// days lays out the windows and DST changes of the local dates [first, last]
// (dates at midnight UTC standing for calendar days). Each window falls on
// the date of its start in the display zone: loc, or its schedule's own.
func (c *console) days(ctx echo.Context, first, last time.Time, loc *time.Location) (map[string][]calWindow, map[string][]string, int, error) {
	list := c.opts.Schedules.Get().All()
	from, to := first.AddDate(0, 0, -2), last.AddDate(0, 0, 3)
	views, err := windowview.Load(ctx.Request().Context(), c.opts.DB, list, true, from, to)
	if err != nil {
		return nil, nil, 0, err
	}
	firstKey, lastKey := first.Format(time.DateOnly), last.Format(time.DateOnly)
	windows := map[string][]calWindow{}
	n := 0
	for _, v := range views {
		zone := loc
		if zone == nil {
			zone = v.Start.Location()
		}
		start, end := v.Start.In(zone), v.End.In(zone)
		key := start.Format(time.DateOnly)
		if key < firstKey || key > lastKey {
			continue
		}
		w := calWindow{
			Date: key, Schedule: v.Schedule, State: v.State, Label: windowLabel(start, end),
			Title:   v.LocalString() + " · " + v.UTCString(),
			Changes: v.Changes, Held: v.HeldReason, Deployments: len(v.Deployments), Stray: v.Stray,
		}
		if v.Stray {
			w.Title += " · not a window of the schedule in force: the schedule changed after its deployments were made"
		}
		_, so := start.Zone()
		_, eo := end.Zone()
		w.DST = so != eo
		if len(v.Changes) > 0 {
			w.Href = c.href("/changes/" + url.PathEscape(v.Changes[0]))
		}
		windows[key] = append(windows[key], w)
		n++
	}
	var zones []*time.Location
	if loc != nil {
		zones = []*time.Location{loc}
	} else {
		seen := map[string]bool{}
		for _, s := range list {
			if !seen[s.TimeZone] {
				seen[s.TimeZone] = true
				zones = append(zones, s.Location)
			}
		}
	}
	dst := map[string][]string{}
	for _, ch := range windowview.DSTChanges(zones, from, to) {
		zl, err := time.LoadLocation(ch.Zone)
		if err != nil {
			continue
		}
		at := ch.At.In(zl)
		key := at.Format(time.DateOnly)
		if key < firstKey || key > lastKey {
			continue
		}
		dir := "forward"
		shift := ch.OffsetAfter - ch.OffsetBefore
		if shift < 0 {
			dir, shift = "back", -shift
		}
		dst[key] = append(dst[key], fmt.Sprintf("DST %s: %s → %s, clocks go %s %s at %s",
			ch.Zone, ch.Before, ch.After, dir, fmtShift(shift), ch.At.In(time.FixedZone(ch.Before, ch.OffsetBefore)).Format("15:04")))
	}
	return windows, dst, n, nil
}

func fmtShift(seconds int) string {
	d := time.Duration(seconds) * time.Second
	if d%time.Hour == 0 {
		return fmt.Sprintf("%d h", int(d/time.Hour))
	}
	return fmt.Sprintf("%d min", int(d/time.Minute))
}

// windowLabel formats a window's times in its display zone: "02:00–06:00
// GMT", "23:00–02:00+1 EST", or with both abbreviations across a DST change.
func windowLabel(start, end time.Time) string {
	sz, _ := start.Zone()
	ez, _ := end.Zone()
	days := int(time.Date(end.Year(), end.Month(), end.Day(), 0, 0, 0, 0, time.UTC).Sub(
		time.Date(start.Year(), start.Month(), start.Day(), 0, 0, 0, 0, time.UTC)) / (24 * time.Hour))
	endText := end.Format("15:04")
	if days > 0 {
		endText += fmt.Sprintf("+%d", days)
	}
	if sz != ez {
		return start.Format("15:04") + " " + sz + "–" + endText + " " + ez
	}
	return start.Format("15:04") + "–" + endText + " " + sz
}

func dayOf(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// mondayOf returns the Monday of d's week.
func mondayOf(d time.Time) time.Time {
	return d.AddDate(0, 0, -((int(d.Weekday()) + 6) % 7))
}

func (c *console) calendarMonth(ctx echo.Context) error {
	tz := ctx.QueryParam("tz")
	loc, ok := zoneParam(tz)
	if !ok {
		return c.problem(ctx, http.StatusBadRequest, "Unknown time zone",
			fmt.Sprintf("%q is not a time zone autopatch knows. Choose one from the list, or write an IANA name such as Europe/London.", tz),
			c.href("/calendar"), "the calendar")
	}
	now := c.opts.Now()
	nowIn := now.UTC()
	if loc != nil {
		nowIn = now.In(loc)
	}
	month := calendar.MonthOf(nowIn)
	if v := ctx.QueryParam("month"); v != "" {
		m, err := calendar.ParseMonth(v)
		if err != nil || m.Year < 2000 || m.Year > 2100 {
			return c.problem(ctx, http.StatusBadRequest, "Not a month",
				fmt.Sprintf("%q is not a month. Write it as YYYY-MM, for example %s.", v, calendar.MonthOf(nowIn)),
				c.href("/calendar"), "this month")
		}
		month = m
	}
	first := time.Date(month.Year, month.Month, 1, 0, 0, 0, 0, time.UTC)
	last := first.AddDate(0, 1, -1)
	gridFirst := mondayOf(first)
	gridLast := mondayOf(last).AddDate(0, 0, 6)
	windows, dst, n, err := c.days(ctx, gridFirst, gridLast, loc)
	if err != nil {
		return c.fail(ctx, err)
	}
	today := dayOf(nowIn).Format(time.DateOnly)
	d := calendarData{
		Month: month.String(), MonthName: first.Format("January 2006"),
		Prev: month.AddMonths(-1).String(), Next: month.AddMonths(1).String(),
		TZ: tz, TZLabel: tzLabel(tz), Zones: c.zoneOptions(tz), Legend: windowview.States,
		Schedules: len(c.opts.Schedules.Get().All()),
	}
	for wk := gridFirst; !wk.After(gridLast); wk = wk.AddDate(0, 0, 7) {
		week := calWeek{WeekHref: c.href("/calendar/week") + queryString("week", wk.Format(time.DateOnly), "tz", tz)}
		for i := range 7 {
			day := wk.AddDate(0, 0, i)
			key := day.Format(time.DateOnly)
			cd := calDay{Date: key, Day: day.Day(), Weekday: day.Format("Mon"), InMonth: day.Month() == month.Month, Today: key == today}
			if cd.InMonth {
				cd.Windows, cd.DST = windows[key], dst[key]
				d.Windows += len(cd.Windows)
			}
			week.Days = append(week.Days, cd)
		}
		d.Weeks = append(d.Weeks, week)
	}
	_ = n
	return c.render(ctx, http.StatusOK, "calendar", page{Title: "Calendar " + d.MonthName, Nav: "calendar", SignedIn: true, Data: d})
}

func tzLabel(tz string) string {
	if tz == "" {
		return "each schedule's own zone"
	}
	return tz
}

func (c *console) calendarWeek(ctx echo.Context) error {
	tz := ctx.QueryParam("tz")
	loc, ok := zoneParam(tz)
	if !ok {
		return c.problem(ctx, http.StatusBadRequest, "Unknown time zone",
			fmt.Sprintf("%q is not a time zone autopatch knows. Choose one from the list, or write an IANA name such as Europe/London.", tz),
			c.href("/calendar/week"), "this week")
	}
	now := c.opts.Now()
	nowIn := now.UTC()
	if loc != nil {
		nowIn = now.In(loc)
	}
	day := dayOf(nowIn)
	if v := ctx.QueryParam("week"); v != "" {
		t, err := time.Parse(time.DateOnly, v)
		if err != nil || t.Year() < 2000 || t.Year() > 2100 {
			return c.problem(ctx, http.StatusBadRequest, "Not a date",
				fmt.Sprintf("%q is not a date. Write the week as any of its days, YYYY-MM-DD, for example %s.", v, day.Format(time.DateOnly)),
				c.href("/calendar/week"), "this week")
		}
		day = t
	}
	monday := mondayOf(day)
	sunday := monday.AddDate(0, 0, 6)
	windows, dst, n, err := c.days(ctx, monday, sunday, loc)
	if err != nil {
		return c.fail(ctx, err)
	}
	today := dayOf(nowIn).Format(time.DateOnly)
	q := queryString
	d := calendarData{
		TZ: tz, TZLabel: tzLabel(tz), Zones: c.zoneOptions(tz), Legend: windowview.States,
		WeekStart: monday.Format("Mon 2 Jan 2006"), WeekEnd: sunday.Format("Mon 2 Jan 2006"),
		PrevWeek:  (q("week", monday.AddDate(0, 0, -7).Format(time.DateOnly), "tz", tz)),
		NextWeek:  (q("week", monday.AddDate(0, 0, 7).Format(time.DateOnly), "tz", tz)),
		MonthHref: c.href("/calendar") + (q("month", calendar.MonthOf(monday).String(), "tz", tz)),
		Month:     monday.Format(time.DateOnly), Windows: n,
		Schedules: len(c.opts.Schedules.Get().All()),
	}
	for i := range 7 {
		dd := monday.AddDate(0, 0, i)
		key := dd.Format(time.DateOnly)
		d.Days = append(d.Days, calDay{Date: key, Day: dd.Day(), Weekday: dd.Format("Monday 2 Jan"), InMonth: true,
			Today: key == today, Windows: windows[key], DST: dst[key]})
	}
	return c.render(ctx, http.StatusOK, "week", page{Title: "Week of " + d.WeekStart, Nav: "week", SignedIn: true, Data: d})
}
