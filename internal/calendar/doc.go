// Package calendar turns patch schedules into concrete windows and change plans.
//
// It implements the schedules file and calendar rules of docs/architecture.md §4.2: Patch
// Tuesday (the second Tuesday of a month, in the schedule's time zone), recurrences
// anchored on Patch Tuesday plus any number of days or on the nth weekday of a month,
// explicit one-off windows, and the plan of a change. It is pure: no file, network or
// database access; callers hand it bytes and instants.
//
// Local times are resolved explicitly rather than through time.Date, which documents
// no choice for wall clocks that do not exist or exist twice: a start inside a DST gap
// moves forward by the length of the gap (02:30 becomes 03:30), and a start inside a
// DST overlap is the earlier of the two instants. Durations are elapsed time, so a
// window that straddles a transition ends at a different local clock time than its
// start plus its duration would suggest.
package calendar

import (
	// The binary runs in distroless images without /usr/share/zoneinfo; embedding the
	// zone database keeps time.LoadLocation working there.
	_ "time/tzdata"
)
