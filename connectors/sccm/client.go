// Package sccm drives a Configuration Manager site through the ConfigMgr
// PowerShell module on the site server, over WinRM.
//
// Every method is exactly one WinRM call running one constant template (see
// Templates) with one data value: a powershell.exe start and an
// Import-Module ConfigurationManager take seconds, so callers batch (all
// deployments of a change, all deployments of a window, all statuses of a
// poll) and the client never loops over remote calls.
//
// # Checked against the documentation
//
// Every template is held, in the tests, to cmdlets.yaml: the documented
// parameter sets of the ConfigurationManager cmdlets it calls, transcribed
// from the ConfigMgr PowerShell reference with each row citing its page (see
// Signatures and connectors/winrm/pscheck). An unknown cmdlet or parameter,
// parameters that fit no single parameter set, or a literal value outside the
// documented set fails the build, and sccmsim refuses such a script with
// PowerShell's own error text. Parameter names are written in full.
//
// What the documentation cannot settle is checked on the site at run time:
// the create template reads each deployment back by its deterministic name
// and throws unless it is disabled, its SuppressReboot bits match the
// schedule kind (3 for manual_reboot, 0 for automatic) and its deadline and
// available time are the requested ones; the force wave template reads its
// deployments back and throws unless they are enabled with SuppressReboot 0
// (restarts allowed). Supported: ConfigMgr current branch
// 2203 and later, the versions the transcribed reference documents; only a
// lab run proves the templates on a given site.
package sccm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/autopatch/autopatch/connectors/winrm"
)

// Runner runs one template with one data value on the site server and decodes
// its JSON answer into out. *winrm.Client is the production Runner.
type Runner interface {
	Run(ctx context.Context, t winrm.Template, data any, out any) error
}

// Client is the SCCM connector. It is safe for concurrent use as far as its
// Runner is.
type Client struct {
	runner   Runner
	siteCode string
	logger   *slog.Logger
}

// New returns a Client that runs its templates through r. siteCode is the
// three-character site code (the CMSite drive); empty means "the CMSite drive
// the module creates", which is right on a site server with one site.
// A nil logger discards.
func New(r Runner, siteCode string, logger *slog.Logger) *Client {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Client{runner: r, siteCode: siteCode, logger: logger}
}

// run executes one template and wraps its error with the action's name.
func (c *Client) run(ctx context.Context, action, name string, data, out any) error {
	start := time.Now()
	err := c.runner.Run(ctx, template(name), data, out)
	c.logger.DebugContext(ctx, "sccm call", "action", action, "template", name,
		"duration", time.Since(start), "error", err)
	if err != nil {
		return fmt.Errorf("sccm: %s: %w", action, err)
	}
	return nil
}

// nonNil turns a nil slice into an empty one, so the data holds [] rather than
// null: PowerShell's foreach over @($null) would run once.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// ---- resolve devices -------------------------------------------------------

// Resolution is the answer of ResolveDevices.
type Resolution struct {
	// ResourceIDs maps each known device name to its SCCM ResourceID.
	ResourceIDs map[string]int
	// Unknown lists the names SCCM has no (non-obsolete) device for, in request order.
	Unknown []string
}

type resolveRequest struct {
	SiteCode string   `json:"site_code"`
	Names    []string `json:"names"`
}

type resolveAnswer struct {
	Devices []struct {
		Name       string `json:"name"`
		ResourceID int    `json:"resource_id"`
	} `json:"devices"`
	Unknown []string `json:"unknown"`
}

// ResolveDevices looks up the ResourceID of each device name
// (Get-CMDevice -Name -Fast). Unknown names are reported, not an error.
func (c *Client) ResolveDevices(ctx context.Context, names []string) (Resolution, error) {
	res := Resolution{ResourceIDs: map[string]int{}, Unknown: []string{}}
	if len(names) == 0 {
		return res, nil
	}
	var ans resolveAnswer
	if err := c.run(ctx, "resolve devices", ResolveDevicesTemplate,
		resolveRequest{SiteCode: c.siteCode, Names: names}, &ans); err != nil {
		return Resolution{}, err
	}
	for _, d := range ans.Devices {
		res.ResourceIDs[d.Name] = d.ResourceID
	}
	res.Unknown = append(res.Unknown, ans.Unknown...)
	return res, nil
}

// ---- membership ------------------------------------------------------------

// Move asks for one device to be a direct member of Collection.
type Move struct {
	// Device is the device name; it is looked up when ResourceID is 0.
	Device string
	// ResourceID, when known (from ResolveDevices), saves a look-up.
	ResourceID int
	// Collection is the target device collection's name.
	Collection string
}

// MoveOutcome says what SetMembership did for one device.
type MoveOutcome string

// The outcomes of a Move.
const (
	// Moved: a direct rule was added to the target collection.
	Moved MoveOutcome = "moved"
	// AlreadyThere: the target collection already had the direct rule.
	AlreadyThere MoveOutcome = "already_there"
	// UnknownDevice: SCCM has no such device; nothing was changed for it.
	UnknownDevice MoveOutcome = "unknown"
)

// MoveResult is the answer for one Move.
type MoveResult struct {
	Device     string      `json:"device"`
	ResourceID int         `json:"resource_id"`
	Outcome    MoveOutcome `json:"result"`
	// RemovedFrom lists the other managed collections the device's direct rule
	// was removed from.
	RemovedFrom []string `json:"removed_from"`
}

type moveData struct {
	Device     string `json:"device"`
	ResourceID int    `json:"resource_id"`
	Collection string `json:"collection"`
}

type membershipRequest struct {
	SiteCode           string     `json:"site_code"`
	Moves              []moveData `json:"moves"`
	ManagedCollections []string   `json:"managed_collections"`
}

type membershipAnswer struct {
	Results []MoveResult `json:"results"`
}

// SetMembership makes each device a direct member of its target collection
// (Add-CMDeviceCollectionDirectMembershipRule) and removes its direct rule from
// every other collection in managed (Remove-CMDeviceCollectionDirectMembershipRule),
// all in one call. Results are in the order of moves. An unknown target
// collection is refused before anything changes.
func (c *Client) SetMembership(ctx context.Context, moves []Move, managed []string) ([]MoveResult, error) {
	if len(moves) == 0 {
		return []MoveResult{}, nil
	}
	req := membershipRequest{SiteCode: c.siteCode, ManagedCollections: nonNil(managed)}
	for i, m := range moves {
		if m.Collection == "" || (m.Device == "" && m.ResourceID == 0) {
			return nil, fmt.Errorf("sccm: set membership: move %d: device and collection are required", i)
		}
		req.Moves = append(req.Moves, moveData(m))
	}
	var ans membershipAnswer
	if err := c.run(ctx, "set membership", SetMembershipTemplate, req, &ans); err != nil {
		return nil, err
	}
	if len(ans.Results) != len(moves) {
		return nil, fmt.Errorf("sccm: set membership: %d results for %d moves", len(ans.Results), len(moves))
	}
	for i := range ans.Results {
		ans.Results[i].RemovedFrom = nonNil(ans.Results[i].RemovedFrom)
	}
	return ans.Results, nil
}

// ---- create deployments ----------------------------------------------------

// DeploymentSpec describes one software update deployment: one update group to
// one collection, required, with times in UTC.
type DeploymentSpec struct {
	// Name is the deployment's name, normally DeploymentName(change, schedule, group).
	Name        string
	Collection  string
	UpdateGroup string
	// Available is when the updates become available, Deadline when their
	// installation is required (sent as UTC). The deployment is disabled until
	// autopatch opens its window, so a deadline at or before the window's start
	// makes clients install as soon as it is enabled; a later deadline makes
	// them wait for it.
	Available time.Time
	Deadline  time.Time
	// SuppressRestart suppresses the restart on servers and workstations
	// (schedule kind manual_reboot): updates install, the owner reboots.
	SuppressRestart bool
}

// Deployment is the answer for one DeploymentSpec.
type Deployment struct {
	Name string `json:"name"`
	// ID is the AssignmentID, unique within the site.
	ID int `json:"id"`
	// UniqueID is the AssignmentUniqueID ({GUID}), unique across sites.
	UniqueID string `json:"unique_id"`
	// Existed is true when a deployment of that name was already there (a
	// retry, or a re-plan): it was updated and disabled, not created again.
	Existed bool `json:"existed"`
}

type deploymentData struct {
	Name            string    `json:"name"`
	Collection      string    `json:"collection"`
	UpdateGroup     string    `json:"update_group"`
	Available       time.Time `json:"available"`
	Deadline        time.Time `json:"deadline"`
	SuppressRestart bool      `json:"suppress_restart"`
}

type createRequest struct {
	SiteCode    string           `json:"site_code"`
	Deployments []deploymentData `json:"deployments"`
}

type createAnswer struct {
	Deployments []Deployment `json:"deployments"`
}

// CreateDeployments creates the deployments of a batch, all disabled, in one
// call (New-CMSoftwareUpdateDeployment, then Set-CMSoftwareUpdateDeployment
// -Enable $false). It is idempotent by name: a deployment that already exists
// for the same collection and update group is returned with Existed set, its
// times and restart setting are updated and it is disabled. The whole batch is
// refused, before anything is created, when a collection or update group is
// unknown, a name is too long or repeated, or a name is taken by a deployment
// of another collection or update group. Because it disables, never include a
// deployment whose window is open. Answers are in the order of specs.
func (c *Client) CreateDeployments(ctx context.Context, specs []DeploymentSpec) ([]Deployment, error) {
	if len(specs) == 0 {
		return []Deployment{}, nil
	}
	req := createRequest{SiteCode: c.siteCode}
	for i, s := range specs {
		if s.Name == "" || s.Collection == "" || s.UpdateGroup == "" {
			return nil, fmt.Errorf("sccm: create deployments: spec %d: name, collection and update group are required", i)
		}
		if s.Available.IsZero() || s.Deadline.IsZero() || s.Deadline.Before(s.Available) {
			return nil, fmt.Errorf("sccm: create deployments: %q: need available <= deadline", s.Name)
		}
		req.Deployments = append(req.Deployments, deploymentData{
			Name: s.Name, Collection: s.Collection, UpdateGroup: s.UpdateGroup,
			Available: s.Available.UTC(), Deadline: s.Deadline.UTC(), SuppressRestart: s.SuppressRestart,
		})
	}
	var ans createAnswer
	if err := c.run(ctx, "create deployments", CreateDeploymentsTemplate, req, &ans); err != nil {
		return nil, err
	}
	if len(ans.Deployments) != len(specs) {
		return nil, fmt.Errorf("sccm: create deployments: %d answers for %d deployments", len(ans.Deployments), len(specs))
	}
	return ans.Deployments, nil
}

// ---- enable / disable --------------------------------------------------------

// EnableResult is the answer for one deployment of SetEnabled.
type EnableResult struct {
	Name string `json:"name"`
	ID   int    `json:"id"`
	// WasEnabled is the state before the call; equal to the requested state
	// means the call changed nothing for this deployment.
	WasEnabled bool `json:"was_enabled"`
}

type enableRequest struct {
	SiteCode           string   `json:"site_code"`
	Names              []string `json:"names"`
	Enabled            bool     `json:"enabled"`
	RefreshCollections []string `json:"refresh_collections"`
}

type enableAnswer struct {
	Deployments []EnableResult `json:"deployments"`
}

// SetEnabled enables or disables the named deployments in one call
// (Set-CMSoftwareUpdateDeployment -Enable). An unknown name is refused before
// any deployment changes.
func (c *Client) SetEnabled(ctx context.Context, names []string, enabled bool) ([]EnableResult, error) {
	if len(names) == 0 {
		return []EnableResult{}, nil
	}
	action := "disable deployments"
	if enabled {
		action = "enable deployments"
	}
	return c.setEnabled(ctx, action, enableRequest{SiteCode: c.siteCode, Names: names, Enabled: enabled,
		RefreshCollections: []string{}})
}

// OpenDeployments opens a window in one call: it enables the named
// deployments, then asks the clients of collections to fetch machine policy
// now (as RefreshPolicy). Unknown deployments or collections are refused
// before anything changes. Half the latency of SetEnabled plus RefreshPolicy,
// and the enable comes first.
func (c *Client) OpenDeployments(ctx context.Context, names, collections []string) ([]EnableResult, error) {
	if len(names) == 0 {
		return []EnableResult{}, c.RefreshPolicy(ctx, collections)
	}
	return c.setEnabled(ctx, "open deployments", enableRequest{SiteCode: c.siteCode, Names: names, Enabled: true,
		RefreshCollections: nonNil(collections)})
}

func (c *Client) setEnabled(ctx context.Context, action string, req enableRequest) ([]EnableResult, error) {
	var ans enableAnswer
	if err := c.run(ctx, action, SetEnabledTemplate, req, &ans); err != nil {
		return nil, err
	}
	if len(ans.Deployments) != len(req.Names) {
		return nil, fmt.Errorf("sccm: %s: %d answers for %d deployments", action, len(ans.Deployments), len(req.Names))
	}
	return ans.Deployments, nil
}

// ---- policy refresh ----------------------------------------------------------

type refreshRequest struct {
	SiteCode    string   `json:"site_code"`
	Collections []string `json:"collections"`
}

type refreshAnswer struct {
	Collections []string `json:"collections"`
}

// RefreshPolicy asks every client in the collections to download machine
// policy now (Invoke-CMClientAction -ActionType
// ClientNotificationRequestMachinePolicyNow), so a just-enabled deployment is
// seen in seconds rather than at the next policy poll. An unknown collection
// is refused before any notification is sent.
func (c *Client) RefreshPolicy(ctx context.Context, collections []string) error {
	if len(collections) == 0 {
		return nil
	}
	var ans refreshAnswer
	return c.run(ctx, "refresh policy", RefreshPolicyTemplate,
		refreshRequest{SiteCode: c.siteCode, Collections: collections}, &ans)
}

// ---- delete ------------------------------------------------------------------

// DeleteResult is the answer for one name of DeleteDeployments.
type DeleteResult struct {
	Name string `json:"name"`
	// Deleted is false when no deployment had the name (already deleted).
	Deleted bool `json:"deleted"`
}

type namesRequest struct {
	SiteCode string   `json:"site_code"`
	Names    []string `json:"names"`
}

type deleteAnswer struct {
	Deployments []DeleteResult `json:"deployments"`
}

// DeleteDeployments removes the named deployments in one call
// (Remove-CMSoftwareUpdateDeployment -Force). A missing one is not an error,
// so a retry is safe.
func (c *Client) DeleteDeployments(ctx context.Context, names []string) ([]DeleteResult, error) {
	if len(names) == 0 {
		return []DeleteResult{}, nil
	}
	var ans deleteAnswer
	if err := c.run(ctx, "delete deployments", DeleteDeploymentsTemplate,
		namesRequest{SiteCode: c.siteCode, Names: names}, &ans); err != nil {
		return nil, err
	}
	return nonNil(ans.Deployments), nil
}

// ---- status --------------------------------------------------------------------

// StatusType is SMS_SUMDeploymentAssetDetails.StatusType.
type StatusType int

// The status types SCCM reports per device and deployment.
const (
	StatusSuccess    StatusType = 1
	StatusInProgress StatusType = 2
	StatusUnknown    StatusType = 4
	StatusError      StatusType = 5
)

// String names the status type as the console does.
func (s StatusType) String() string {
	switch s {
	case StatusSuccess:
		return "success"
	case StatusInProgress:
		return "in_progress"
	case StatusUnknown:
		return "unknown"
	case StatusError:
		return "error"
	}
	return fmt.Sprintf("status_%d", int(s))
}

// DeviceStatus is one device's status for one deployment.
type DeviceStatus struct {
	Deployment   string
	DeploymentID int
	Device       string
	ResourceID   int
	Type         StatusType
	// ErrorCode is StatusErrorCode (an HRESULT such as 0x80240022), 0 unless Type is StatusError.
	ErrorCode uint32
	// Description is StatusDescription.
	Description string
	// Message is LastEnforcementMessageDesc.
	Message string
	// EnforcementMessage is LastEnforcementMessageID: 9 is "pending system
	// restart" (installed, waiting for a reboot).
	EnforcementMessage int
	// Time is StatusTime; zero for a device that never reported.
	Time time.Time
}

// ErrorHex formats ErrorCode the way Windows Update logs do ("0x80240022").
func (s DeviceStatus) ErrorHex() string { return fmt.Sprintf("0x%08X", s.ErrorCode) }

// StatusReport is the answer of DeploymentStatus.
type StatusReport struct {
	// Devices holds one row per device of each deployment's target collection
	// (and any other device that reported); members that never reported are
	// StatusUnknown.
	Devices []DeviceStatus
	// Missing lists requested deployments that do not exist.
	Missing []string
}

type statusAnswer struct {
	Statuses []struct {
		Deployment   string    `json:"deployment"`
		DeploymentID int       `json:"deployment_id"`
		Device       string    `json:"device"`
		ResourceID   int       `json:"resource_id"`
		StatusType   int       `json:"status_type"`
		ErrorCode    int64     `json:"status_error_code"`
		Description  string    `json:"status_description"`
		Message      string    `json:"last_enforcement_message"`
		MessageID    int       `json:"last_enforcement_message_id"`
		Time         time.Time `json:"status_time"`
	} `json:"statuses"`
	Missing []string `json:"missing"`
}

// DeploymentStatus reads the per-device status of the named deployments in one
// call (Get-CMSoftwareUpdateDeploymentStatus | Get-CMDeploymentStatusDetails,
// i.e. SMS_SUMDeploymentAssetDetails). Members of a deployment's collection
// without a status row are reported as StatusUnknown so silent devices show.
// Deployments that do not exist are listed in Missing, not an error.
func (c *Client) DeploymentStatus(ctx context.Context, names []string) (StatusReport, error) {
	rep := StatusReport{Devices: []DeviceStatus{}, Missing: []string{}}
	if len(names) == 0 {
		return rep, nil
	}
	// Each name once: a repeated name would only repeat its rows.
	unique := make([]string, 0, len(names))
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			unique = append(unique, n)
		}
	}
	var ans statusAnswer
	if err := c.run(ctx, "deployment status", DeploymentStatusTemplate,
		namesRequest{SiteCode: c.siteCode, Names: unique}, &ans); err != nil {
		return StatusReport{}, err
	}
	for _, s := range ans.Statuses {
		rep.Devices = append(rep.Devices, DeviceStatus{
			Deployment: s.Deployment, DeploymentID: s.DeploymentID,
			Device: s.Device, ResourceID: s.ResourceID,
			Type: StatusType(s.StatusType),
			// WMI hands out HRESULTs signed or unsigned depending on the class;
			// both truncate to the same 32 bits.
			ErrorCode:   uint32(s.ErrorCode),
			Description: s.Description, Message: s.Message, Time: s.Time,
			EnforcementMessage: s.MessageID,
		})
	}
	rep.Missing = append(rep.Missing, ans.Missing...)
	return rep, nil
}

// ---- maintenance windows -------------------------------------------------------

type siteRequest struct {
	SiteCode string `json:"site_code"`
}

type collectionsAnswer struct {
	Collections []string `json:"collections"`
}

// CollectionsWithMaintenanceWindows lists the device collections that have
// their own maintenance windows (SMS_Collection.ServiceWindowsCount > 0): a
// device in one of them may not install inside autopatch's window, because a
// required deployment honours maintenance windows unless told otherwise.
func (c *Client) CollectionsWithMaintenanceWindows(ctx context.Context) ([]string, error) {
	var ans collectionsAnswer
	if err := c.run(ctx, "list maintenance window collections", MaintenanceWindowsTemplate,
		siteRequest{SiteCode: c.siteCode}, &ans); err != nil {
		return nil, err
	}
	return nonNil(ans.Collections), nil
}

// IsRefusal reports whether err is a script that ran and failed: SCCM, or the
// template's own validation, refused the request (unknown collection, name too
// long, ...). Unlike a call that did not get through, it does not go away on
// retry.
func IsRefusal(err error) bool {
	var se *winrm.ScriptError
	return errors.As(err, &se)
}

// ---- device state ----------------------------------------------------------------

// DeviceState is one collection member's SCCM client state and, when its
// read named update groups, its compliance with them.
type DeviceState struct {
	// Read is the index of the StateRead this row answers.
	Read       int
	Collection string
	Device     string
	ResourceID int
	// IsClient is SMS_CombinedDeviceResources.IsClient: a ConfigMgr client is installed.
	IsClient bool
	// Active is ClientActiveStatus = 1 (client health: active).
	Active bool
	// LastPolicyRequest is when the client last asked for policy; zero: never.
	LastPolicyRequest time.Time
	// Required counts the updates of the read's groups the device still
	// requires (SMS_UpdateComplianceStatus Status 2).
	Required int
	// RebootPending: an update of the groups is installed and waits for a
	// restart (LastEnforcementMessageID 9).
	RebootPending bool
}

// StateRead asks for the members of one collection and, when UpdateGroups
// is not empty, their compliance with those groups.
type StateRead struct {
	Collection   string   `json:"collection"`
	UpdateGroups []string `json:"update_groups"`
}

type deviceStateRequest struct {
	SiteCode string      `json:"site_code"`
	Reads    []StateRead `json:"reads"`
}

type deviceStateAnswer struct {
	Devices []struct {
		Read               int        `json:"read"`
		Collection         string     `json:"collection"`
		Device             string     `json:"device"`
		ResourceID         int        `json:"resource_id"`
		IsClient           bool       `json:"is_client"`
		ClientActiveStatus int        `json:"client_active_status"`
		LastPolicyRequest  *time.Time `json:"last_policy_request"`
		Required           int        `json:"required"`
		RebootPending      bool       `json:"reboot_pending"`
	} `json:"devices"`
}

// DeviceStates answers every read in one call: the client state of each
// read's collection members and, for reads with update groups, their
// compliance with those groups (the client-health pre-flight and the
// compliance read of manual schedules, for every change at once). An
// unknown collection or update group is an error and nothing is read.
func (c *Client) DeviceStates(ctx context.Context, reads []StateRead) ([]DeviceState, error) {
	if len(reads) == 0 {
		return []DeviceState{}, nil
	}
	req := deviceStateRequest{SiteCode: c.siteCode, Reads: make([]StateRead, len(reads))}
	for i, r := range reads {
		req.Reads[i] = StateRead{Collection: r.Collection, UpdateGroups: r.UpdateGroups}
		if req.Reads[i].UpdateGroups == nil {
			req.Reads[i].UpdateGroups = []string{}
		}
	}
	var ans deviceStateAnswer
	if err := c.run(ctx, "device state", DeviceStateTemplate, req, &ans); err != nil {
		return nil, err
	}
	out := make([]DeviceState, 0, len(ans.Devices))
	for _, d := range ans.Devices {
		s := DeviceState{Read: d.Read, Collection: d.Collection, Device: d.Device, ResourceID: d.ResourceID, IsClient: d.IsClient,
			Active: d.ClientActiveStatus == 1, Required: d.Required, RebootPending: d.RebootPending}
		if d.LastPolicyRequest != nil {
			s.LastPolicyRequest = *d.LastPolicyRequest
		}
		out = append(out, s)
	}
	return out, nil
}
