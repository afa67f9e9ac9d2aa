package sccmsim

import (
	"fmt"
	"time"
)

// State is the site's content as `autopatch sim` shows it under GET /state
// (docs/architecture.md §4.5): the contract fields plus a few more per object.
type State struct {
	Collections []CollectionState `json:"collections"`
	Deployments []DeploymentState `json:"deployments"`
}

// CollectionState is one device collection.
type CollectionState struct {
	Name string `json:"name"`
	// Members are the device names with a direct rule, in the order they joined.
	Members []string `json:"members"`
	// MaintenanceWindows is the collection's own maintenance window count.
	MaintenanceWindows int `json:"maintenance_windows"`
	// PolicyRefreshes are the times a machine policy refresh was requested.
	PolicyRefreshes []time.Time `json:"policy_refreshes"`
}

// Event is one enable or disable of a deployment.
type Event struct {
	At      time.Time `json:"at"`
	Enabled bool      `json:"enabled"`
}

// DeploymentState is one deployment, deleted ones included.
type DeploymentState struct {
	Name        string    `json:"name"`
	Collection  string    `json:"collection"`
	UpdateGroup string    `json:"update_group"`
	CreatedAt   time.Time `json:"created_at"`
	Deleted     bool      `json:"deleted"`
	// Events holds every Set-CMSoftwareUpdateDeployment -Enable, in order. A
	// deployment is created disabled and has no event for that.
	Events []Event `json:"events"`

	ID              int       `json:"id"`
	UniqueID        string    `json:"unique_id"`
	Enabled         bool      `json:"enabled"`
	Available       time.Time `json:"available"`
	Deadline        time.Time `json:"deadline"`
	SuppressRestart bool      `json:"suppress_restart"`
	// SuppressReboot is SMS_UpdatesAssignment.SuppressReboot: bit 0 (1)
	// workstations, bit 1 (2) servers; 3 for manual_reboot, 0 for automatic.
	SuppressReboot int        `json:"suppress_reboot"`
	DeletedAt      *time.Time `json:"deleted_at,omitempty"`
	// Devices are the devices the deployment reached (enabled while they were
	// members), with their seeded outcome and what they last reported.
	Devices []DeviceOutcome `json:"devices"`
}

// DeviceOutcome is one device's progress on one deployment.
type DeviceOutcome struct {
	Device     string `json:"device"`
	ResourceID int    `json:"resource_id"`
	// Outcome is the seeded behaviour ("success", "error 0x80240022", ...).
	Outcome string `json:"outcome"`
	// StatusType is the last reported status: 1 success, 2 in progress,
	// 4 unknown (nothing reported yet), 5 error.
	StatusType int `json:"status_type"`
	// ErrorCode is the last reported error ("0x80240022"), empty unless StatusType is 5.
	ErrorCode string `json:"error_code,omitempty"`
	// Reads counts the status reads since the device was reached.
	Reads int `json:"reads"`
	// ReportedAt is when the last reported status was first seen.
	ReportedAt *time.Time `json:"reported_at,omitempty"`
}

// State returns a snapshot of the site. Slices are never nil, so the JSON
// has [] rather than null.
func (s *Site) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{Collections: []CollectionState{}, Deployments: []DeploymentState{}}
	for _, c := range s.collections {
		cs := CollectionState{Name: c.name, Members: []string{}, MaintenanceWindows: c.windows,
			PolicyRefreshes: append([]time.Time{}, c.refreshes...)}
		for _, id := range c.members {
			cs.Members = append(cs.Members, s.devByID[id].name)
		}
		st.Collections = append(st.Collections, cs)
	}
	for _, d := range s.deployments {
		ds := DeploymentState{
			Name: d.name, Collection: d.col.name, UpdateGroup: d.group, CreatedAt: d.createdAt,
			Deleted: d.deleted, Events: append([]Event{}, d.events...),
			ID: d.id, UniqueID: d.uniqueID, Enabled: d.enabled,
			Available: d.available, Deadline: d.deadline, SuppressRestart: d.suppressReboot != 0, SuppressReboot: d.suppressReboot,
			Devices: []DeviceOutcome{},
		}
		if d.deleted {
			at := d.deletedAt
			ds.DeletedAt = &at
		}
		for _, e := range d.exposures {
			do := DeviceOutcome{Device: e.dev.name, ResourceID: e.dev.id, Outcome: e.dev.outcome.String(),
				StatusType: e.statusType, Reads: e.reads}
			if e.statusType == statusError {
				do.ErrorCode = fmt.Sprintf("0x%08X", e.code)
			}
			if !e.at.IsZero() {
				at := e.at
				do.ReportedAt = &at
			}
			ds.Devices = append(ds.Devices, do)
		}
		st.Deployments = append(st.Deployments, ds)
	}
	return st
}
