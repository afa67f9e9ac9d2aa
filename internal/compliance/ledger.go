package compliance

import (
	"strings"
	"time"
)

// Row is one status row of a read: a device's status in one deployment.
type Row struct {
	Device string
	Status Status
}

// Attach adds each row's status to the device of that name (SCCM names are
// case-insensitive) and returns the devices, in their order, followed by any
// device that reported without being in scope (a member added to the
// collection outside autopatch), which gets base's window of the first
// device in scope that shares its deployment.
func Attach(devices []Device, rows []Row) []Device {
	index := make(map[string]int, len(devices))
	for i := range devices {
		index[strings.ToLower(devices[i].Name)] = i
	}
	byDeployment := map[string]int{}
	for _, r := range rows {
		key := strings.ToLower(r.Device)
		i, ok := index[key]
		if !ok {
			d := Device{Name: r.Device, Kind: KindAutomatic}
			if j, ok := byDeployment[r.Status.Deployment]; ok {
				d.Kind, d.WindowStart, d.WindowEnd, d.Deadline, d.FinalRead = devices[j].Kind,
					devices[j].WindowStart, devices[j].WindowEnd, devices[j].Deadline, devices[j].FinalRead
			}
			devices = append(devices, d)
			i = len(devices) - 1
			index[key] = i
		}
		if _, ok := byDeployment[r.Status.Deployment]; !ok {
			byDeployment[r.Status.Deployment] = i
		}
		devices[i].Statuses = append(devices[i].Statuses, r.Status)
	}
	return devices
}

// Summary counts a ledger.
type Summary struct {
	Devices              int             `json:"devices"`
	ByOutcome            map[Outcome]int `json:"by_outcome"`
	PatchedOutsideWindow int             `json:"patched_outside_window"`
	PatchedByDeadline    int             `json:"patched_by_deadline"`
	// DeadlinePassed is true when every device's deadline has passed.
	DeadlinePassed bool `json:"deadline_passed"`
}

// Entry is a classified device with its deadline.
type Entry struct {
	Result   Result
	Deadline time.Time
}

// Summarize counts entries at now. Every outcome appears in ByOutcome,
// zero or not, so reports and metrics have a stable shape.
func Summarize(entries []Entry, now time.Time) Summary {
	s := Summary{Devices: len(entries), ByOutcome: make(map[Outcome]int, len(Outcomes)), DeadlinePassed: len(entries) > 0}
	for _, o := range Outcomes {
		s.ByOutcome[o] = 0
	}
	for _, e := range entries {
		s.ByOutcome[e.Result.Outcome]++
		if e.Result.Outcome == PatchedOutsideWindow {
			s.PatchedOutsideWindow++
		}
		if e.Result.ByDeadline(e.Deadline) {
			s.PatchedByDeadline++
		}
		if e.Deadline.IsZero() || now.Before(e.Deadline) {
			s.DeadlinePassed = false
		}
	}
	return s
}

// ByDeadlineRatio is the share of devices patched by their deadline, 0 for
// an empty ledger.
func (s Summary) ByDeadlineRatio() float64 {
	if s.Devices == 0 {
		return 0
	}
	return float64(s.PatchedByDeadline) / float64(s.Devices)
}

// Deadline is the normal deadline of a cycle (docs/architecture.md §9.2): after the
// cycle's Patch Tuesday (its date, taken at 00:00 UTC) by after. The
// deadlines issue (#15) brings critical and emergency deadlines and
// per-change overrides; until then every change has the normal one.
func Deadline(patchTuesday time.Time, after time.Duration) time.Time {
	return patchTuesday.Add(after)
}
