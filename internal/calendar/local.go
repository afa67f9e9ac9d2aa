package calendar

import (
	"math"
	"time"
)

// zoneSpan bounds how far a wall clock can be from UTC, and so how far apart two
// offsets of one zone can be. Real offsets stay within -12h..+14h (historic local mean
// times a little beyond); 30h leaves room for a gap or overlap of a whole day, as when
// Samoa skipped 30 December 2011.
const zoneSpan = 30 * 60 * 60

// period is a range of instants [start, end) (Unix seconds) over which a zone keeps
// one UTC offset. Consecutive windows of a schedule usually fall in the same period
// (months pass between DST transitions), so remembering the last one saves the zone
// lookups that dominate the cost of a window: with Go's embedded, "slim" zone database
// every lookup past the last listed transition re-parses the zone's rule string.
type period struct {
	start, end, offset int64
	valid              bool
}

// localInstant returns the instant at which the wall clock in loc reads
// year-month-day hour:min:00; day may lie outside the month and is normalised as by
// time.Date. hint, if not nil, is a period of loc from an earlier call; it is used
// when it decides the answer and updated otherwise.
//
// time.Date leaves the result unspecified for clocks that do not exist or exist twice,
// so the rules of docs/architecture.md §4.2 are applied here explicitly: the zone periods
// around the wall clock are walked in order; the first period whose offset maps the
// wall clock back into that same period gives the earliest matching instant (the
// earlier one of an overlap). A wall clock that no period maps lies in a gap between
// two periods; it is read with the offset before the gap, which lands the same
// distance after the transition as the clock was after the last valid clock: moved
// forward by the length of the gap.
func localInstant(loc *time.Location, hint *period, year int, month time.Month, day, hour, minute int) time.Time {
	wall := time.Date(year, month, day, hour, minute, 0, 0, time.UTC).Unix()
	if hint != nil && hint.valid {
		// Valid, and more than zoneSpan from either end of its period, where no other
		// period's offset could map the wall clock too.
		if u := wall - hint.offset; u-zoneSpan >= hint.start && u+zoneSpan < hint.end {
			return time.Unix(u, 0).In(loc)
		}
	}
	t := time.Unix(wall-zoneSpan, 0).In(loc)
	prevOffset, havePrev := int64(0), false
	for {
		_, off := t.Zone()
		offset := int64(off)
		startT, endT := t.ZoneBounds()
		start, end := int64(math.MinInt64), int64(math.MaxInt64)
		if !startT.IsZero() {
			start = startT.Unix()
		}
		if !endT.IsZero() {
			end = endT.Unix()
		}
		// start is the transition from the previous period to this one.
		if havePrev && wall >= start+prevOffset && wall < start+offset {
			return time.Unix(wall-prevOffset, 0).In(loc)
		}
		if u := wall - offset; u >= start && u < end {
			if hint != nil {
				*hint = period{start: start, end: end, offset: offset, valid: true}
			}
			return time.Unix(u, 0).In(loc)
		}
		// Later periods cannot match: their candidates would lie beyond wall+zoneSpan.
		if end > wall+zoneSpan {
			break
		}
		prevOffset, havePrev = offset, true
		t = endT.In(loc)
	}
	// Unreachable for real zone data; time.Date is a reasonable last resort.
	return time.Date(year, month, day, hour, minute, 0, 0, loc)
}
