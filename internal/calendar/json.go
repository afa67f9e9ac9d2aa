package calendar

import "time"

// LocalLayout is RFC 3339 that always writes the numeric offset, so a window
// in Europe/London shows +00:00 in winter: the schedule's own offset, distinct
// from the Z of the UTC fields.
const LocalLayout = "2006-01-02T15:04:05-07:00"

// WindowJSON is a window in autopatch's JSON contract (docs/architecture.md §4.1),
// shared by `autopatch plan` and the read API.
type WindowJSON struct {
	Schedule string `json:"schedule"`
	Start    string `json:"start"`
	End      string `json:"end"`
	StartUTC string `json:"start_utc"`
	EndUTC   string `json:"end_utc"`
}

// JSON returns w in the contract's shape.
func (w Window) JSON() WindowJSON {
	return WindowJSON{
		Schedule: w.Schedule,
		Start:    w.Start.Format(LocalLayout),
		End:      w.End.Format(LocalLayout),
		StartUTC: w.Start.UTC().Format(time.RFC3339),
		EndUTC:   w.End.UTC().Format(time.RFC3339),
	}
}
