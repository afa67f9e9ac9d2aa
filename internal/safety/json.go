package safety

import (
	"time"

	"github.com/autopatch/autopatch/internal/calendar"
)

// ViolationJSON is a violation as `autopatch plan --check --format json`
// and GET /api/v1/services/{name} show it: one shape for both.
type ViolationJSON struct {
	Kind       string `json:"kind"`
	Service    string `json:"service"`
	Tier       string `json:"tier"`
	BeforeTier string `json:"before_tier,omitempty"`
	Cycle      string `json:"cycle"`
	// From and To are absent for tier_not_placed: no stretch of time.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Down, Limit and Members: redundancy only.
	Down    int                   `json:"down,omitempty"`
	Limit   int                   `json:"limit,omitempty"`
	Members int                   `json:"members,omitempty"`
	Message string                `json:"message"`
	Devices []string              `json:"devices"`
	Windows []ViolationWindowJSON `json:"windows"`
}

// ViolationWindowJSON is one window of a violation, or a schedule that got
// none (NotPlaced says why, and the times are absent).
type ViolationWindowJSON struct {
	Schedule  string `json:"schedule"`
	Tier      string `json:"tier"`
	Devices   int    `json:"devices"`
	Start     string `json:"start,omitempty"`
	End       string `json:"end,omitempty"`
	StartUTC  string `json:"start_utc,omitempty"`
	EndUTC    string `json:"end_utc,omitempty"`
	NotPlaced string `json:"not_placed,omitempty"`
}

// JSON returns v in its JSON shape, naming the devices of assignments it
// involves.
func (v Violation) JSON(assignments []Assignment) ViolationJSON {
	j := ViolationJSON{
		Kind: string(v.Kind), Service: v.Service, Tier: string(v.Tier), BeforeTier: string(v.Before),
		Cycle: v.Cycle.String(), Down: v.Down, Limit: v.Limit, Members: v.Members,
		Message: v.String(), Devices: Devices(v, assignments), Windows: []ViolationWindowJSON{},
	}
	if !v.From.IsZero() {
		j.From, j.To = v.From.UTC().Format(time.RFC3339), v.To.UTC().Format(time.RFC3339)
	}
	if j.Devices == nil {
		j.Devices = []string{}
	}
	for _, w := range v.Windows {
		wj := ViolationWindowJSON{Schedule: w.Window.Schedule, Tier: string(w.Tier), Devices: w.Devices, NotPlaced: w.NotPlaced}
		if w.NotPlaced == "" {
			wj.Start, wj.End = w.Window.Start.Format(calendar.LocalLayout), w.Window.End.Format(calendar.LocalLayout)
			wj.StartUTC, wj.EndUTC = w.Window.Start.UTC().Format(time.RFC3339), w.Window.End.UTC().Format(time.RFC3339)
		}
		j.Windows = append(j.Windows, wj)
	}
	return j
}
