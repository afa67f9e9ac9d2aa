package sccm

import (
	"context"
	"fmt"
	"time"
)

// ---- forced remediation (docs/architecture.md §9.2) -----------------------

// ForceWaveTemplate is the template of one wave of forced remediation.
const ForceWaveTemplate = "sccm.force_wave"

// ForceWave is one wave of forced remediation: the devices that missed their
// deadline, put into the collection autopatch manages for forcing, with a
// required deployment of each of the change's update groups enabled on it.
type ForceWave struct {
	// Collection is AUTOPATCH_FORCE_COLLECTION: a device collection that
	// autopatch alone manages. After the call its direct members are exactly
	// Devices (the previous wave's are removed). Its ID must start with the
	// site code: SCCM's default collections (SMS…) take no direct rules.
	Collection string
	Devices    []ForceDevice
	// Deployments are one per update group of the change, named
	// deterministically (DeploymentName(change, "(forced)", group)); an
	// existing one of that name is reused (a later wave, or a retry) and
	// must target Collection and its update group.
	Deployments []ForceDeployment
	// At is when the updates become available and required: the wave's
	// start. Installation starts when the deployment is enabled.
	At time.Time
}

// ForceDevice is a device of a wave; ResourceID 0 means "look it up by
// name".
type ForceDevice struct {
	Name       string `json:"name"`
	ResourceID int    `json:"resource_id"`
}

// ForceDeployment is a required deployment of one update group to the
// forced collection.
type ForceDeployment struct {
	Name        string `json:"name"`
	UpdateGroup string `json:"update_group"`
}

// ForceResult is what one wave did.
type ForceResult struct {
	// Members are the wave's devices now direct members, with their
	// ResourceID; Unknown the names SCCM has no (non-obsolete) record of.
	Members []ForceDevice `json:"members"`
	Unknown []string      `json:"unknown"`
	// Removed is how many direct rules of an earlier wave were removed.
	Removed int `json:"removed"`
	// Deployments is each deployment's ID and whether it existed and was
	// already enabled (a retry).
	Deployments []ForcedDeployment `json:"deployments"`
}

// ForcedDeployment is the answer for one ForceDeployment.
type ForcedDeployment struct {
	Name       string `json:"name"`
	ID         int    `json:"id"`
	Existed    bool   `json:"existed"`
	WasEnabled bool   `json:"was_enabled"`
}

type forceRequest struct {
	SiteCode    string            `json:"site_code"`
	Collection  string            `json:"collection"`
	Devices     []ForceDevice     `json:"devices"`
	Deployments []ForceDeployment `json:"deployments"`
	At          string            `json:"at"`
}

// ForceWave runs one wave in one call: it sets the forced collection's
// direct members to the wave's devices, creates (or finds) the required
// deployments, enables them and asks the members to fetch policy now. The
// call is idempotent: a retry after a crash finds the members and enabled
// deployments in place and changes nothing. An unknown collection or update
// group, a default collection or a deployment name taken by another
// collection or group is refused before anything changes.
func (c *Client) ForceWave(ctx context.Context, w ForceWave) (ForceResult, error) {
	if len(w.Deployments) == 0 {
		return ForceResult{}, fmt.Errorf("sccm: force wave: no deployment")
	}
	if w.At.IsZero() {
		// A zero time would make the deployments available and due in year 1.
		return ForceResult{}, fmt.Errorf("sccm: force wave: no start time")
	}
	req := forceRequest{SiteCode: c.siteCode, Collection: w.Collection, Devices: nonNil(w.Devices),
		Deployments: w.Deployments, At: w.At.UTC().Format(time.RFC3339)}
	var ans ForceResult
	if err := c.run(ctx, "force wave", ForceWaveTemplate, req, &ans); err != nil {
		return ForceResult{}, err
	}
	if len(ans.Deployments) != len(w.Deployments) {
		return ForceResult{}, fmt.Errorf("sccm: force wave: %d answers for %d deployments", len(ans.Deployments), len(w.Deployments))
	}
	ans.Members, ans.Unknown = nonNil(ans.Members), nonNil(ans.Unknown)
	return ans, nil
}
