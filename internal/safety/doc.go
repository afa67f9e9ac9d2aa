// Package safety checks that patching never takes a service down: the
// members of a redundancy group are never all (or more than the service
// allows) inside a window at once, and a service's tiers patch in order —
// backend, then middle, then frontend (issue #8, the seed's "Trouble with
// reboots, part 1").
//
// It is pure: schedules, device counts and plans come in, violations come
// out; no file, network or database access. Callers (the schedule-request
// and plan jobs, the read API, `autopatch plan --check`) load the data.
//
// # Rules
//
//   - A redundancy group is the devices of one service and one tier. In a
//     group of n ≥ 2 devices, at no instant may more than max_unavailable of
//     them be inside a window: n−1 by default (never all at once), or the
//     service's max_unavailable from the services file.
//   - Within a service and a patch cycle (calendar.Window.Cycle), every
//     backend window ends before any middle window starts, every middle
//     window before any frontend one, and so every backend window before any
//     frontend one too (a service without a middle tier is still ordered).
//     Windows are half-open, so one may start at the instant another ends.
//
// Windows of every kind count: automatic and manual_reboot windows because
// autopatch deploys in them, manual_patch windows because their owners patch
// (and reboot) in them by hand.
//
// # Scale
//
// Devices collapse into counts per (service, tier, schedule); each
// schedule's windows over the horizon are computed once (Timeline); each
// group is one sweep over the windows of its few schedules. A request is
// checked on the services it touches only.
package safety
