package ui

import (
	"fmt"
	"time"
)

// The change page draws its deployments on a time line as inline SVG: a
// bar per deployment for its window, coloured by state, a mark for each
// transition. SVG needs no script and no inline style (classes colour it),
// so the Content Security Policy stays strict.

const (
	ganttWidth = 1000.0 // viewBox units
	ganttLabel = 230.0  // left column for the labels
	ganttRow   = 22.0
	ganttTop   = 24.0 // room for the day ticks
)

type ganttTick struct {
	X     float64
	Label string
}

type ganttMark struct {
	X     float64
	Title string
}

type ganttBar struct {
	Y, X, W float64
	TextY   float64
	Label   string
	State   string
	Title   string
	Marks   []ganttMark
	MarkY   float64
}

type gantt struct {
	Height float64
	Width  float64
	Left   float64
	Ticks  []ganttTick
	Bars   []ganttBar
	Now    *float64
}

// newGantt lays out the deployments and their transitions over the span
// that holds all of them; nil when there is nothing to draw.
func newGantt(deps []deploymentView, transitions map[int64][]timelineEntry, now time.Time) *gantt {
	if len(deps) == 0 {
		return nil
	}
	from, to := deps[0].WindowStart, deps[0].WindowEnd
	for _, d := range deps {
		from, to = minTime(from, d.WindowStart), maxTime(to, d.WindowEnd)
		for _, t := range transitions[d.ID] {
			from, to = minTime(from, t.At), maxTime(to, t.At)
		}
	}
	from = from.UTC().Truncate(24 * time.Hour)
	to = to.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	span := to.Sub(from).Seconds()
	x := func(t time.Time) float64 {
		return ganttLabel + (ganttWidth-ganttLabel-4)*t.Sub(from).Seconds()/span
	}
	g := &gantt{Width: ganttWidth, Left: ganttLabel, Height: ganttTop + float64(len(deps))*ganttRow + 6}
	days := int(to.Sub(from).Hours() / 24)
	step := max(1, days/12)
	for d := 0; d < days; d += step {
		t := from.AddDate(0, 0, d)
		g.Ticks = append(g.Ticks, ganttTick{X: x(t), Label: t.Format("Jan 2")})
	}
	if !now.Before(from) && now.Before(to) {
		n := x(now)
		g.Now = &n
	}
	for i, d := range deps {
		y := ganttTop + float64(i)*ganttRow
		b := ganttBar{
			Y: y + 4, X: x(d.WindowStart), W: max(2, x(d.WindowEnd)-x(d.WindowStart)), TextY: y + 15,
			Label: d.Schedule + " · " + d.UpdateGroup, State: d.State, MarkY: y + 11,
			Title: fmt.Sprintf("%s: %s, %s", d.Name, d.State, d.Window),
		}
		for _, t := range transitions[d.ID] {
			b.Marks = append(b.Marks, ganttMark{X: x(t.At), Title: t.At.UTC().Format("2006-01-02 15:04 UTC") + " " + t.What + detail(t.Detail)})
		}
		g.Bars = append(g.Bars, b)
	}
	return g
}

func detail(s string) string {
	if s == "" {
		return ""
	}
	return " — " + s
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
