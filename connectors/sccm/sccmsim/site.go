// Package sccmsim is an in-memory Configuration Manager site for tests, the
// demo and `autopatch sim`. It sits behind a WS-Management server
// (connectors/winrm/wsmansim) and answers exactly the scripts of
// sccm.Templates: for each one it does what that PowerShell would do against a
// real site, including the template's own validation and SCCM's refusals, and
// writes the same JSON answer. Any other script is refused the way a
// constrained PowerShell endpoint refuses it: exit 1 and error text.
//
// Status model, kept simple and deterministic: a device is exposed to a
// deployment when the deployment is enabled while the device is a member of
// its collection (or the device joins while it is enabled). Before that the
// device has no status row (the status template reports it as unknown). From
// the first status read after exposure the device reports its seeded outcome;
// "error 0x… then success" reports the error on that first read and success
// from the second read on; "silent" never reports.
package sccmsim

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/connectors/winrm/wsmansim"
)

// DefaultSiteCode is the site code of a Site whose Options name none.
const DefaultSiteCode = "PS1"

// Options configure a Site. The zero value is usable.
type Options struct {
	// SiteCode is the site's three-character code; default DefaultSiteCode.
	SiteCode string
	// Now is the site's clock (created_at, event and status times); default time.Now.
	Now func() time.Time
	// Logger receives one debug line per call; nil discards.
	Logger *slog.Logger
	// Faults make the site misbehave in ways a real site might (a module
	// version whose cmdlet ignores a parameter), so tests can show that the
	// templates notice. The zero value is a well-behaved site.
	Faults Faults
}

// Faults are misbehaviours the create template must detect by reading the
// deployment back (issue #12, defects 2-4). Each makes the template throw;
// what the script did before the throw stays done, as on a real site.
type Faults struct {
	// CreateLost: New-CMSoftwareUpdateDeployment returns, but no deployment
	// with the name can be found afterwards.
	CreateLost bool
	// DisableIgnored: Set-CMSoftwareUpdateDeployment -Enable $false leaves a
	// new deployment enabled (it is created enabled).
	DisableIgnored bool
	// RestartFlagsIgnored: -RestartServer/-RestartWorkstation leave
	// SuppressReboot at 0.
	RestartFlagsIgnored bool
	// DeadlineIgnored: -DeploymentExpireDateTime leaves an existing
	// deployment's EnforcementDeadline as it was.
	DeadlineIgnored bool
}

// Site is the simulated SCCM site. All methods are safe for concurrent use;
// each script runs atomically.
type Site struct {
	siteCode string
	now      func() time.Time
	faults   Faults
	host     *wsmansim.TemplateHost // counts, refuses and answers the scripts

	mu          sync.Mutex
	devices     []*device
	devByName   map[string]*device
	devByID     map[int]*device
	collections []*collection
	colByName   map[string]*collection
	groups      map[string]int // update group name -> CI_ID
	deployments []*deployment
	live        map[string]*deployment // not deleted, by name
	nextID      int
	defaults    int // default collections added, for their SMS… IDs
}

type device struct {
	name    string
	id      int
	outcome Outcome
}

type collection struct {
	name      string
	id        string
	members   []int // ResourceIDs, in the order they joined
	windows   int
	refreshes []time.Time
}

func (c *collection) has(id int) bool { return slices.Contains(c.members, id) }

type exposure struct {
	dev   *device
	reads int
	// closedReads counts the reads while the deployment was disabled
	// after having reached the device.
	closedReads int
	statusType  int
	code        uint32
	at          time.Time
}

type deployment struct {
	id        int
	uniqueID  string
	name      string
	col       *collection
	group     string
	available time.Time
	deadline  time.Time
	// suppressReboot is SMS_UpdatesAssignment.SuppressReboot, a bit field:
	// 1 workstations, 2 servers.
	suppressReboot int
	createdAt      time.Time
	deleted        bool
	deletedAt      time.Time
	enabled        bool
	events         []Event
	exposures      []*exposure
	exposedIDs     map[int]*exposure
}

// New returns an empty site.
func New(opts Options) *Site {
	if opts.SiteCode == "" {
		opts.SiteCode = DefaultSiteCode
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Site{
		siteCode:  opts.SiteCode,
		now:       opts.Now,
		faults:    opts.Faults,
		devByName: map[string]*device{},
		devByID:   map[int]*device{},
		colByName: map[string]*collection{},
		groups:    map[string]int{},
		live:      map[string]*deployment{},
		nextID:    1,
	}
	s.host = wsmansim.NewTemplateHost("sccmsim", sccm.Templates(), s.dispatch, opts.Logger)
	// A real site server refuses what the module does not document.
	s.host.CheckSignatures(sccm.Signatures())
	return s
}

// SiteCode returns the site's code.
func (s *Site) SiteCode() string { return s.siteCode }

// id hands out increasing numbers for the site's objects.
func (s *Site) id() int {
	n := s.nextID
	s.nextID++
	return n
}

// AddDevice adds a device with its scripted outcome and returns its
// ResourceID. Device names are unique.
func (s *Site) AddDevice(name string, outcome Outcome) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if name == "" {
		return 0, fmt.Errorf("sccmsim: add device: empty name")
	}
	if _, ok := s.devByName[name]; ok {
		return 0, fmt.Errorf("sccmsim: add device %q: already exists", name)
	}
	// Real ResourceIDs of systems start at 0x01000000 and count up.
	d := &device{name: name, id: 16777216 + s.id(), outcome: outcome}
	s.devices = append(s.devices, d)
	s.devByName[name] = d
	s.devByID[d.id] = d
	return d.id, nil
}

// AddCollection adds a device collection, with maintenanceWindows of its own
// (reported by the maintenance window template). Adding an existing name
// keeps the collection and raises its window count if the new one is higher.
func (s *Site) AddCollection(name string, maintenanceWindows int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if name == "" {
		return fmt.Errorf("sccmsim: add collection: empty name")
	}
	if c, ok := s.colByName[name]; ok {
		c.windows = max(c.windows, maintenanceWindows)
		return nil
	}
	c := &collection{name: name, id: fmt.Sprintf("%s%05X", s.siteCode, s.id()), windows: maintenanceWindows}
	s.collections = append(s.collections, c)
	s.colByName[name] = c
	return nil
}

// AddDefaultCollection adds a collection as SCCM ships its default ones: its
// ID starts with SMS, not the site code (the first is SMS00001, as "All
// Systems" is). The force wave template refuses it, since default
// collections take no direct membership rules. An existing name is kept.
func (s *Site) AddDefaultCollection(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if name == "" {
		return fmt.Errorf("sccmsim: add default collection: empty name")
	}
	if _, ok := s.colByName[name]; ok {
		return nil
	}
	s.defaults++
	c := &collection{name: name, id: fmt.Sprintf("SMS%05X", s.defaults)}
	s.collections = append(s.collections, c)
	s.colByName[name] = c
	return nil
}

// AddUpdateGroup adds a software update group; an existing name is kept.
func (s *Site) AddUpdateGroup(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if name == "" {
		return fmt.Errorf("sccmsim: add update group: empty name")
	}
	if _, ok := s.groups[name]; !ok {
		s.groups[name] = 16780000 + s.id()
	}
	return nil
}

// AddMember gives device a direct rule in collection, as an admin might have
// before autopatch ran.
func (s *Site) AddMember(collectionName, deviceName string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.colByName[collectionName]
	if !ok {
		return fmt.Errorf("sccmsim: add member: no collection %q", collectionName)
	}
	d, ok := s.devByName[deviceName]
	if !ok {
		return fmt.Errorf("sccmsim: add member: no device %q", deviceName)
	}
	s.addMember(c, d)
	return nil
}

// addMember adds a direct rule and exposes the device to the collection's
// enabled deployments: a client that joins fetches their policy.
func (s *Site) addMember(c *collection, d *device) {
	if c.has(d.id) {
		return
	}
	c.members = append(c.members, d.id)
	for _, dep := range s.deployments {
		if dep.col == c && !dep.deleted && dep.enabled {
			dep.expose(d)
		}
	}
}

func (s *Site) removeMember(c *collection, id int) {
	c.members = slices.DeleteFunc(c.members, func(m int) bool { return m == id })
}

func (dep *deployment) expose(d *device) {
	if _, ok := dep.exposedIDs[d.id]; ok {
		return
	}
	e := &exposure{dev: d, statusType: statusUnknown}
	dep.exposures = append(dep.exposures, e)
	dep.exposedIDs[d.id] = e
}

// Calls returns how many scripts the site has been asked to run, refused ones
// included: each is one WinRM command.
func (s *Site) Calls() int { return s.host.Calls() }

// CallsByTemplate returns the number of runs per template name; refused
// scripts count under "(refused)".
func (s *Site) CallsByTemplate() map[string]int { return s.host.CallsByTemplate() }

// Handles reports whether script is one of the SCCM templates, byte for byte.
// A host that serves several simulators dispatches on it.
func (s *Site) Handles(script string) bool { return s.host.Handles(script) }

// Run executes one script with its decoded data, as powershell.exe on the
// site server would: the JSON answer on stdout and exit 0, or error text on
// stderr and exit 1. Its signature is what wsmansim.PowerShell takes.
func (s *Site) Run(ctx context.Context, script string, data []byte) (stdout []byte, stderr string, exit int) {
	return s.host.Run(ctx, script, data)
}

// dispatch runs one template under the site's lock, so each script is atomic.
func (s *Site) dispatch(name string, data []byte) (any, *wsmansim.PSError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var probe struct {
		SiteCode string `json:"site_code"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, wsmansim.CmdletError("ConvertFrom-Json", "Invalid JSON primitive: "+err.Error())
	}
	if probe.SiteCode != "" && probe.SiteCode != s.siteCode {
		// The prelude's New-PSDrive for a site this provider does not serve.
		return nil, wsmansim.CmdletError("New-PSDrive -Name $SiteCode -PSProvider CMSite -Root $env:COMPUTERNAME",
			"The SMS Provider on this host serves site "+s.siteCode+", not "+probe.SiteCode+".")
	}
	switch name {
	case sccm.ResolveDevicesTemplate:
		return decodeAnd(data, s.resolveDevices)
	case sccm.SetMembershipTemplate:
		return decodeAnd(data, s.setMembership)
	case sccm.CreateDeploymentsTemplate:
		return decodeAnd(data, s.createDeployments)
	case sccm.SetEnabledTemplate:
		return decodeAnd(data, s.setEnabled)
	case sccm.RefreshPolicyTemplate:
		return decodeAnd(data, s.refreshPolicy)
	case sccm.DeleteDeploymentsTemplate:
		return decodeAnd(data, s.deleteDeployments)
	case sccm.DeploymentStatusTemplate:
		return decodeAnd(data, s.deploymentStatus)
	case sccm.DeviceStateTemplate:
		return decodeAnd(data, s.deviceState)
	case sccm.MaintenanceWindowsTemplate:
		return decodeAnd(data, s.maintenanceWindowCollections)
	case sccm.DoctorTemplate:
		return decodeAnd(data, s.doctor)
	case sccm.ForceWaveTemplate:
		return decodeAnd(data, s.forceWave)
	}
	return nil, wsmansim.Throw("sccmsim has no implementation of template " + name)
}

// decodeAnd decodes a template's data; the templates cast their values with
// [int] and [string], and a wrong type fails the first cast, [int]$value.
func decodeAnd[Req any](data []byte, f func(Req) (any, *wsmansim.PSError)) (any, *wsmansim.PSError) {
	return wsmansim.DecodeAnd(data, "[int]$value", f)
}

// NotATemplateError is the error text for a script that is not one of the
// templates: what a constrained (JEA) endpoint that allows only approved
// scripts answers. Hosts that dispatch between simulators use it too.
func NotATemplateError() string { return wsmansim.NotATemplateError() }

// ---- the templates ---------------------------------------------------------

type namesReq struct {
	Names []string `json:"names"`
}

type resolveDevice struct {
	Name       string `json:"name"`
	ResourceID int    `json:"resource_id"`
}

func (s *Site) resolveDevices(req namesReq) (any, *wsmansim.PSError) {
	devices := []resolveDevice{}
	unknown := []string{}
	for _, n := range req.Names {
		if d, ok := s.devByName[n]; ok {
			devices = append(devices, resolveDevice{Name: n, ResourceID: d.id})
		} else {
			unknown = append(unknown, n)
		}
	}
	return map[string]any{"devices": devices, "unknown": unknown}, nil
}

type membershipReq struct {
	Moves []struct {
		Device     string `json:"device"`
		ResourceID int    `json:"resource_id"`
		Collection string `json:"collection"`
	} `json:"moves"`
	ManagedCollections []string `json:"managed_collections"`
}

type moveResult struct {
	Device      string   `json:"device"`
	ResourceID  int      `json:"resource_id"`
	Result      string   `json:"result"`
	RemovedFrom []string `json:"removed_from"`
}

func (s *Site) setMembership(req membershipReq) (any, *wsmansim.PSError) {
	for _, m := range req.Moves {
		if _, ok := s.colByName[m.Collection]; !ok {
			return nil, s.noCollection(m.Collection)
		}
	}
	var managed []*collection
	for _, n := range req.ManagedCollections {
		if c, ok := s.colByName[n]; ok {
			managed = append(managed, c)
		}
	}
	results := []moveResult{}
	for _, m := range req.Moves {
		var d *device
		if m.ResourceID == 0 {
			d = s.devByName[m.Device]
		} else {
			d = s.devByID[m.ResourceID]
		}
		if d == nil {
			results = append(results, moveResult{Device: m.Device, ResourceID: m.ResourceID, Result: "unknown", RemovedFrom: []string{}})
			continue
		}
		target := s.colByName[m.Collection]
		removed := []string{}
		for _, other := range managed {
			if other == target || !other.has(d.id) {
				continue
			}
			s.removeMember(other, d.id)
			removed = append(removed, other.name)
		}
		result := "already_there"
		if !target.has(d.id) {
			s.addMember(target, d)
			result = "moved"
		}
		results = append(results, moveResult{Device: m.Device, ResourceID: d.id, Result: result, RemovedFrom: removed})
	}
	return map[string]any{"results": results}, nil
}

type createReq struct {
	Deployments []struct {
		Name            string `json:"name"`
		Collection      string `json:"collection"`
		UpdateGroup     string `json:"update_group"`
		Available       string `json:"available"`
		Deadline        string `json:"deadline"`
		SuppressRestart bool   `json:"suppress_restart"`
	} `json:"deployments"`
}

type createdDeployment struct {
	Name     string `json:"name"`
	ID       int    `json:"id"`
	UniqueID string `json:"unique_id"`
	Existed  bool   `json:"existed"`
}

func (s *Site) createDeployments(req createReq) (any, *wsmansim.PSError) {
	// Validation, in the template's order; its throw texts.
	seen := map[string]bool{}
	for _, d := range req.Deployments {
		if n := sccm.NameLength(d.Name); n < 1 || n > sccm.MaxNameLength {
			return nil, wsmansim.Throw(fmt.Sprintf("The deployment name '%s' is %d characters long; SCCM allows 1 to 256.", d.Name, n))
		}
		if seen[d.Name] {
			return nil, wsmansim.Throw("The deployment name '" + d.Name + "' appears more than once in this request.")
		}
		seen[d.Name] = true
		col, ok := s.colByName[d.Collection]
		if !ok {
			return nil, s.noCollection(d.Collection)
		}
		if _, ok := s.groups[d.UpdateGroup]; !ok {
			return nil, wsmansim.Throw("No software update group named '" + d.UpdateGroup + "' exists on site " + s.siteCode + ".")
		}
		if ex, ok := s.live[d.Name]; ok && (ex.col != col || ex.group != d.UpdateGroup) {
			return nil, wsmansim.Throw("A deployment named '" + d.Name + "' already exists on site " + s.siteCode + " for another collection or update group.")
		}
	}
	type times struct{ available, deadline time.Time }
	parsed := make([]times, len(req.Deployments))
	for i, d := range req.Deployments {
		a, errA := time.Parse(time.RFC3339Nano, d.Available)
		dl, errD := time.Parse(time.RFC3339Nano, d.Deadline)
		if errA != nil || errD != nil {
			return nil, wsmansim.CmdletError("[datetime]::Parse([string]$Value, $culture, $styles)",
				`Exception calling "Parse" with "3" argument(s): "String was not recognized as a valid DateTime."`)
		}
		parsed[i] = times{a.UTC(), dl.UTC()}
	}

	now := s.now().UTC()
	out := []createdDeployment{}
	for i, d := range req.Deployments {
		want := 0
		if d.SuppressRestart {
			want = suppressWorkstations | suppressServers
		}
		dep, existed := s.live[d.Name]
		if existed {
			// Set-CMSoftwareUpdateDeployment -AvailableDateTime -DeploymentExpireDateTime.
			dep.available = parsed[i].available
			if !s.faults.DeadlineIgnored {
				dep.deadline = parsed[i].deadline
			}
		} else {
			id := 16777216 + s.id()
			dep = &deployment{
				id:       id,
				uniqueID: "{" + strings.ToUpper(uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "%s/%d", s.siteCode, id)).String()) + "}",
				name:     d.Name, col: s.colByName[d.Collection], group: d.UpdateGroup,
				available: parsed[i].available, deadline: parsed[i].deadline,
				createdAt: now, exposedIDs: map[int]*exposure{},
				// New-CMSoftwareUpdateDeployment creates it enabled; the
				// template disables it in the same script, before any client
				// could see it, so a site that obeys records no event for it.
				enabled: true,
			}
			s.deployments = append(s.deployments, dep)
			if s.faults.CreateLost {
				dep.deleted, dep.deletedAt = true, now
				return nil, wsmansim.Throw("The deployment '" + d.Name + "' was not found on site " + s.siteCode + " after it was created.")
			}
			s.live[d.Name] = dep
		}
		// Set-CMSoftwareUpdateDeployment -Enable $false -RestartServer -RestartWorkstation.
		if !s.faults.DisableIgnored || existed {
			if dep.enabled && existed {
				dep.events = append(dep.events, Event{At: now, Enabled: false})
			}
			dep.enabled = false
		}
		if !s.faults.RestartFlagsIgnored {
			dep.suppressReboot = want
		}
		// The template's read-back, in its order and with its texts.
		switch {
		case dep.enabled:
			return nil, wsmansim.Throw("The deployment '" + d.Name + "' is still enabled after it was disabled: it must not run before its window.")
		case dep.suppressReboot&(suppressWorkstations|suppressServers) != want:
			return nil, wsmansim.Throw(fmt.Sprintf("The deployment '%s' has SuppressReboot %d; the schedule needs %d.", d.Name, dep.suppressReboot, want))
		case !dep.deadline.Truncate(time.Minute).Equal(parsed[i].deadline.Truncate(time.Minute)):
			return nil, wsmansim.Throw("The deployment '" + d.Name + "' has deadline " + formatTime(dep.deadline) +
				"; the change needs " + formatTime(parsed[i].deadline) + ".")
		case !dep.available.Truncate(time.Minute).Equal(parsed[i].available.Truncate(time.Minute)):
			return nil, wsmansim.Throw("The deployment '" + d.Name + "' becomes available at " + formatTime(dep.available) +
				"; the change needs " + formatTime(parsed[i].available) + ".")
		}
		out = append(out, createdDeployment{Name: d.Name, ID: dep.id, UniqueID: dep.uniqueID, Existed: existed})
	}
	return map[string]any{"deployments": out}, nil
}

// SMS_UpdatesAssignment.SuppressReboot bits (SMS_CIAssignmentBaseClass: the
// property has the bits qualifier; bit 0 workstations, bit 1 servers).
const (
	suppressWorkstations = 1
	suppressServers      = 2
)

// formatTime is the template's Format-ApTime: ISO 8601 in UTC.
func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }

type enableReq struct {
	Names              []string `json:"names"`
	Enabled            bool     `json:"enabled"`
	RefreshCollections []string `json:"refresh_collections"`
}

type enableResult struct {
	Name       string `json:"name"`
	ID         int    `json:"id"`
	WasEnabled bool   `json:"was_enabled"`
}

func (s *Site) setEnabled(req enableReq) (any, *wsmansim.PSError) {
	found := make([]*deployment, 0, len(req.Names))
	for _, n := range req.Names {
		dep, ok := s.live[n]
		if !ok {
			return nil, s.noDeployment(n)
		}
		found = append(found, dep)
	}
	refresh, perr := s.collectionsNamed(req.RefreshCollections)
	if perr != nil {
		return nil, perr
	}
	now := s.now().UTC()
	out := []enableResult{}
	for _, dep := range found {
		was := dep.enabled
		if was == req.Enabled {
			// The template calls Set-CMSoftwareUpdateDeployment only on a
			// change; every call it makes is recorded, so a doubled action
			// (an enable after a disable) still shows in /state.
			out = append(out, enableResult{Name: dep.name, ID: dep.id, WasEnabled: was})
			continue
		}
		dep.enabled = req.Enabled
		dep.events = append(dep.events, Event{At: now, Enabled: req.Enabled})
		if req.Enabled {
			for _, id := range dep.col.members {
				dep.expose(s.devByID[id])
			}
		}
		out = append(out, enableResult{Name: dep.name, ID: dep.id, WasEnabled: was})
	}
	return map[string]any{"deployments": out, "refreshed": recordRefreshes(refresh, now)}, nil
}

type forceReq struct {
	Collection  string            `json:"collection"`
	Devices     []resolveDevice   `json:"devices"`
	Deployments []forceDeployment `json:"deployments"`
	At          string            `json:"at"`
}

type forceDeployment struct {
	Name        string `json:"name"`
	UpdateGroup string `json:"update_group"`
}

type forcedDeployment struct {
	Name       string `json:"name"`
	ID         int    `json:"id"`
	Existed    bool   `json:"existed"`
	WasEnabled bool   `json:"was_enabled"`
}

// forceWave is the force wave template: validation in its order and with its
// texts, then the collection's direct rules set to the wave's devices with
// addMember/removeMember (so an enabled deployment reaches a device that
// joins), each deployment found or created and enabled unless it already is
// (every enable is an event), and a policy refresh of the collection.
func (s *Site) forceWave(req forceReq) (any, *wsmansim.PSError) {
	col, ok := s.colByName[req.Collection]
	if !ok {
		return nil, s.noCollection(req.Collection)
	}
	if strings.HasPrefix(strings.ToUpper(col.id), "SMS") {
		return nil, wsmansim.Throw("The device collection '" + col.name + "' (" + col.id +
			") is a default collection: it takes no direct membership rules, so it cannot hold a forced wave.")
	}
	if len(req.Deployments) == 0 {
		return nil, wsmansim.Throw("The wave names no deployment: nothing would be forced on '" + req.Collection + "'.")
	}
	seen := map[string]bool{}
	for _, d := range req.Deployments {
		if n := sccm.NameLength(d.Name); n < 1 || n > sccm.MaxNameLength {
			return nil, wsmansim.Throw(fmt.Sprintf("The deployment name '%s' is %d characters long; SCCM allows 1 to 256.", d.Name, n))
		}
		if seen[d.Name] {
			return nil, wsmansim.Throw("The deployment name '" + d.Name + "' appears more than once in this request.")
		}
		seen[d.Name] = true
		if _, ok := s.groups[d.UpdateGroup]; !ok {
			return nil, wsmansim.Throw("No software update group named '" + d.UpdateGroup + "' exists on site " + s.siteCode + ".")
		}
		if ex, ok := s.live[d.Name]; ok && (ex.col != col || ex.group != d.UpdateGroup) {
			return nil, wsmansim.Throw("A deployment named '" + d.Name + "' already exists on site " + s.siteCode + " for another collection or update group.")
		}
	}
	at, err := time.Parse(time.RFC3339Nano, req.At)
	if err != nil {
		return nil, wsmansim.CmdletError("[datetime]::Parse([string]$Value, $culture, $styles)",
			`Exception calling "Parse" with "3" argument(s): "String was not recognized as a valid DateTime."`)
	}
	at = at.UTC()

	// Resolve: Get-CMDevice -ResourceId, or Find-ApDevice by name.
	members := []resolveDevice{}
	unknown := []string{}
	wanted := map[int]bool{}
	var order []*device
	for _, e := range req.Devices {
		var d *device
		if e.ResourceID > 0 {
			d = s.devByID[e.ResourceID]
		} else {
			d = s.devByName[e.Name]
		}
		if d == nil {
			unknown = append(unknown, e.Name)
			continue
		}
		if wanted[d.id] {
			continue
		}
		wanted[d.id] = true
		order = append(order, d)
		members = append(members, resolveDevice{Name: e.Name, ResourceID: d.id})
	}

	// Membership: one Remove- of the stale rules, one Add- of the missing
	// ones, then Invoke-CMCollectionUpdate (direct rules are the members here).
	var stale []int
	for _, id := range col.members {
		if !wanted[id] {
			stale = append(stale, id)
		}
	}
	for _, id := range stale {
		s.removeMember(col, id)
	}
	for _, d := range order {
		s.addMember(col, d)
	}

	now := s.now().UTC()
	out := []forcedDeployment{}
	for _, d := range req.Deployments {
		dep, existed := s.live[d.Name]
		was := existed && dep.enabled
		if !existed {
			id := 16777216 + s.id()
			dep = &deployment{
				id:       id,
				uniqueID: "{" + strings.ToUpper(uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "%s/%d", s.siteCode, id)).String()) + "}",
				name:     d.Name, col: col, group: d.UpdateGroup,
				available: at, deadline: at,
				createdAt: now, exposedIDs: map[int]*exposure{},
			}
			s.deployments = append(s.deployments, dep)
			if s.faults.CreateLost {
				dep.deleted, dep.deletedAt = true, now
				return nil, wsmansim.Throw("The deployment '" + d.Name + "' was not found on site " + s.siteCode + " after it was created.")
			}
			s.live[d.Name] = dep
		}
		if !was {
			// Set-CMSoftwareUpdateDeployment -Enable $true -RestartServer $false
			// -RestartWorkstation $false: recorded, so a doubled enable shows.
			dep.enabled = true
			dep.events = append(dep.events, Event{At: now, Enabled: true})
			dep.suppressReboot = 0
			for _, id := range col.members {
				dep.expose(s.devByID[id])
			}
		}
		// The template's read-back, in its order and with its texts.
		switch {
		case !dep.enabled:
			return nil, wsmansim.Throw("The deployment '" + d.Name + "' is still disabled after it was enabled: the wave would install nothing.")
		case dep.suppressReboot&(suppressWorkstations|suppressServers) != 0:
			return nil, wsmansim.Throw(fmt.Sprintf("The deployment '%s' has SuppressReboot %d; a forced wave needs 0 (restarts allowed).", d.Name, dep.suppressReboot))
		}
		out = append(out, forcedDeployment{Name: d.Name, ID: dep.id, Existed: existed, WasEnabled: was})
	}
	recordRefreshes([]*collection{col}, now)
	return map[string]any{"members": members, "unknown": unknown, "removed": len(stale), "deployments": out}, nil
}

type refreshReq struct {
	Collections []string `json:"collections"`
}

func (s *Site) refreshPolicy(req refreshReq) (any, *wsmansim.PSError) {
	found, perr := s.collectionsNamed(req.Collections)
	if perr != nil {
		return nil, perr
	}
	return map[string]any{"collections": recordRefreshes(found, s.now().UTC())}, nil
}

// collectionsNamed looks up every name before anything changes, as the
// templates do, so an unknown collection refuses the whole request.
func (s *Site) collectionsNamed(names []string) ([]*collection, *wsmansim.PSError) {
	found := make([]*collection, 0, len(names))
	for _, n := range names {
		c, ok := s.colByName[n]
		if !ok {
			return nil, s.noCollection(n)
		}
		found = append(found, c)
	}
	return found, nil
}

// recordRefreshes records a machine policy refresh of each collection at now
// and returns their names, in order, for the answer. It never returns nil,
// so the JSON has [] rather than null.
func recordRefreshes(cols []*collection, now time.Time) []string {
	names := []string{}
	for _, c := range cols {
		c.refreshes = append(c.refreshes, now)
		names = append(names, c.name)
	}
	return names
}

type deleteResult struct {
	Name    string `json:"name"`
	Deleted bool   `json:"deleted"`
}

func (s *Site) deleteDeployments(req namesReq) (any, *wsmansim.PSError) {
	now := s.now().UTC()
	out := []deleteResult{}
	for _, n := range req.Names {
		dep, ok := s.live[n]
		if !ok {
			out = append(out, deleteResult{Name: n, Deleted: false})
			continue
		}
		dep.deleted, dep.deletedAt = true, now
		delete(s.live, n)
		out = append(out, deleteResult{Name: n, Deleted: true})
	}
	return map[string]any{"deployments": out}, nil
}

type statusRow struct {
	Deployment             string  `json:"deployment"`
	DeploymentID           int     `json:"deployment_id"`
	Device                 string  `json:"device"`
	ResourceID             int     `json:"resource_id"`
	StatusType             int     `json:"status_type"`
	StatusErrorCode        int64   `json:"status_error_code"`
	StatusDescription      string  `json:"status_description"`
	LastEnforcementMessage string  `json:"last_enforcement_message"`
	LastEnforcementID      int     `json:"last_enforcement_message_id"`
	StatusTime             *string `json:"status_time"`
}

func (s *Site) deploymentStatus(req namesReq) (any, *wsmansim.PSError) {
	now := s.now().UTC()
	rows := []statusRow{}
	missing := []string{}
	for _, n := range req.Names {
		dep, ok := s.live[n]
		if !ok {
			missing = append(missing, n)
			continue
		}
		reported := map[int]bool{}
		// Get-CMSoftwareUpdateDeploymentStatus | Get-CMDeploymentStatusDetails:
		// the devices that received the deployment and report.
		for _, e := range dep.exposures {
			e.reads++
			if !dep.enabled {
				e.closedReads++
			}
			st, code, ok := e.dev.outcome.status(e.reads, dep.enabled, e.closedReads)
			if !ok {
				continue
			}
			if st != e.statusType || code != e.code {
				e.statusType, e.code, e.at = st, code, now
			}
			reported[e.dev.id] = true
			desc, msg := statusTexts(st)
			enforcement := e.dev.outcome.enforcementMessage(st)
			if enforcement == enforcementPendingRestart {
				desc, msg = "Pending system restart", "Pending system restart"
			}
			at := e.at.Format(time.RFC3339Nano)
			rows = append(rows, statusRow{
				Deployment: n, DeploymentID: dep.id, Device: e.dev.name, ResourceID: e.dev.id,
				StatusType: st, StatusErrorCode: int64(code), StatusDescription: desc,
				LastEnforcementMessage: msg, LastEnforcementID: enforcement, StatusTime: &at,
			})
		}
		// Get-CMCollectionMember: members without a row are unknown.
		for _, id := range dep.col.members {
			if reported[id] {
				continue
			}
			d := s.devByID[id]
			rows = append(rows, statusRow{
				Deployment: n, DeploymentID: dep.id, Device: d.name, ResourceID: d.id,
				StatusType: statusUnknown,
			})
		}
	}
	return map[string]any{"statuses": rows, "missing": missing}, nil
}

type deviceStateReq struct {
	Reads []struct {
		Collection   string   `json:"collection"`
		UpdateGroups []string `json:"update_groups"`
	} `json:"reads"`
}

type deviceStateRow struct {
	Read               int     `json:"read"`
	Collection         string  `json:"collection"`
	Device             string  `json:"device"`
	ResourceID         int     `json:"resource_id"`
	IsClient           bool    `json:"is_client"`
	ClientActiveStatus int     `json:"client_active_status"`
	LastPolicyRequest  *string `json:"last_policy_request"`
	Required           int     `json:"required"`
	RebootPending      bool    `json:"reboot_pending"`
}

// deviceState answers the device state template: for every read, its
// collection members' client state (an inactive client last asked for
// policy 30 days ago, a device without a client never did) and, for the
// read's update groups (one update each here), their compliance as their
// seeded outcome says. Every name is looked up before anything is read.
func (s *Site) deviceState(req deviceStateReq) (any, *wsmansim.PSError) {
	found := make([]*collection, 0, len(req.Reads))
	for _, r := range req.Reads {
		c, ok := s.colByName[r.Collection]
		if !ok {
			return nil, s.noCollection(r.Collection)
		}
		for _, g := range r.UpdateGroups {
			if _, ok := s.groups[g]; !ok {
				return nil, wsmansim.Throw("No software update group named '" + g + "' exists on site " + s.siteCode + ".")
			}
		}
		found = append(found, c)
	}
	now := s.now().UTC()
	rows := []deviceStateRow{}
	for i, c := range found {
		groups := len(slices.Compact(slices.Sorted(slices.Values(req.Reads[i].UpdateGroups))))
		for _, id := range c.members {
			d := s.devByID[id]
			isClient, active := d.outcome.client()
			required, restart := d.outcome.compliance(groups)
			row := deviceStateRow{Read: i, Collection: c.name, Device: d.name, ResourceID: d.id, IsClient: isClient,
				ClientActiveStatus: active, Required: required, RebootPending: restart}
			if isClient {
				last := now.Add(-time.Hour)
				if active == 0 {
					last = now.Add(-30 * 24 * time.Hour)
				}
				at := formatTime(last)
				row.LastPolicyRequest = &at
			}
			rows = append(rows, row)
		}
	}
	return map[string]any{"devices": rows}, nil
}

func (s *Site) maintenanceWindowCollections(struct{}) (any, *wsmansim.PSError) {
	names := []string{}
	for _, c := range s.collections {
		if c.windows > 0 {
			names = append(names, c.name)
		}
	}
	return map[string]any{"collections": names}, nil
}

func (s *Site) noCollection(name string) *wsmansim.PSError {
	return wsmansim.Throw("No device collection named '" + name + "' exists on site " + s.siteCode + ".")
}

func (s *Site) noDeployment(name string) *wsmansim.PSError {
	return wsmansim.Throw("No software update deployment named '" + name + "' exists on site " + s.siteCode + ".")
}
