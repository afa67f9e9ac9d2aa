package jobs

import (
	"github.com/google/uuid"
	"github.com/riverqueue/river"
)

// AssignDevicesArgs carries out one accepted schedule request: its devices
// move into the schedule's collection. The request itself is the
// webhook_events row EventID (read it with store.GetScheduleRequest), so the
// job's args stay small whatever the number of devices.
type AssignDevicesArgs struct {
	EventID uuid.UUID `json:"event_id"`
}

// Kind implements river.JobArgs.
func (AssignDevicesArgs) Kind() string { return "assign_devices" }

// InsertOpts runs assignments on the SCCM queue, once per event (River's
// default unique states include completed: an event is never assigned twice
// while its job is kept).
func (AssignDevicesArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueSCCM, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}
