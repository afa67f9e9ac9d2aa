package scom

import (
	"context"
	"strconv"
	"strings"
)

// DoctorTemplate is the read-only check of `autopatch doctor` (docs/architecture.md
// §9.6). It lives apart from templates.go so that the doctor changes nothing
// the jobs run.
const DoctorTemplate = "scom.doctor"

// The management pack autopatch ships (integrations/scom/Autopatch.Alerts.xml)
// as the doctor expects to find it imported. A test keeps these equal to the
// file, so a new version of the pack cannot ship without the doctor knowing.
const (
	ManagementPackName    = "Autopatch.Alerts"
	ManagementPackVersion = "1.1.0.0"
	// WindowsComputerClass is the class the alerts are raised on.
	WindowsComputerClass = "Microsoft.Windows.Computer"
)

// AlertRules are the IDs of the management pack's rules that turn
// autopatch's events into alerts.
func AlertRules() []string {
	return []string{
		"Autopatch.Alerts.Rule.Critical",
		"Autopatch.Alerts.Rule.Warning",
		"Autopatch.Alerts.Rule.Information",
	}
}

// doctorScript checks, in one call: the OperationsManager module, the
// connection to the management group, the management pack (its version and
// its rules with their Enabled value as the pack defines it), the Windows
// Computer class, and the log the "autopatch" event source is registered in
// on this management server (raise_alerts writes its events under that
// source, and refuses to run until it is registered in the Application log).
// Unlike the other templates it does not use the prelude: a failed step is
// reported in the answer rather than thrown. It only reads.
const doctorScript = `param($Data)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

function Write-ApAnswer($Value) {
    # -InputObject keeps empty and one-element arrays as arrays; a pipeline would unroll them.
    ConvertTo-Json -InputObject $Value -Depth 10 -Compress
}

function New-ApList {
    return ,(New-Object -TypeName 'System.Collections.Generic.List[object]')
}

# In:  management_server, management_pack, class, event_source
# Out: {module: {ok, error}, connection: {ok, error},
#       management_pack: {found, version}, rules: [{name, enabled}], class: {found},
#       event_source: {log, error}}
$rules = New-ApList
$answer = [ordered]@{
    module          = [ordered]@{ ok = $false; error = '' }
    connection      = [ordered]@{ ok = $false; error = '' }
    management_pack = [ordered]@{ found = $false; version = '' }
    rules           = $rules
    class           = [ordered]@{ found = $false }
    event_source    = [ordered]@{ log = ''; error = '' }
}

# The log the source is registered in on this computer ('' when it is not), as
# raise_alerts checks it before writing. It needs neither the module nor the
# connection. https://learn.microsoft.com/en-us/dotnet/api/system.diagnostics.eventlog.lognamefromsourcename
try {
    $answer.event_source.log = [string][System.Diagnostics.EventLog]::LogNameFromSourceName([string]$Data.event_source, '.')
} catch {
    $answer.event_source.error = [string]$_.Exception.Message
}

try {
    # The module is installed with every management server and Operations console.
    if ($null -eq (Get-Module -Name OperationsManager)) {
        Import-Module -Name OperationsManager
    }
    $answer.module.ok = $true
} catch {
    $answer.module.error = [string]$_.Exception.Message
}

if ($answer.module.ok) {
    try {
        $ManagementServer = [string]$Data.management_server
        if ([string]::IsNullOrEmpty($ManagementServer)) { $ManagementServer = 'localhost' }
        $null = New-SCOMManagementGroupConnection -ComputerName $ManagementServer
        $answer.connection.ok = $true
    } catch {
        $answer.connection.error = [string]$_.Exception.Message
    }
}

if ($answer.connection.ok) {
    $mp = Get-SCOMManagementPack -Name ([string]$Data.management_pack) | Select-Object -First 1
    if ($null -ne $mp) {
        $answer.management_pack = [ordered]@{ found = $true; version = $mp.Version.ToString() }
        foreach ($rule in Get-SCOMRule -ManagementPack $mp) {
            # Enabled is a ManagementPackMonitoringLevel: false, true, onEssentialMonitoring, onStandardMonitoring.
            $rules.Add([ordered]@{ name = [string]$rule.Name; enabled = [string]$rule.Enabled })
        }
    }
    $class = Get-SCOMClass -Name ([string]$Data.class) | Select-Object -First 1
    $answer.class = [ordered]@{ found = ($null -ne $class) }
}

Write-ApAnswer ($answer)
`

// DoctorReport is what the management server said to Doctor.
type DoctorReport struct {
	// ModuleError is why the OperationsManager module did not load and
	// ConnectionError why the management group connection failed; empty when
	// they worked. Nothing after a failed step was checked.
	ModuleError     string
	ConnectionError string
	// ManagementPackFound and ManagementPackVersion describe the imported
	// management pack named ManagementPackName.
	ManagementPackFound   bool
	ManagementPackVersion string
	// Rules maps each rule of the imported pack to its Enabled value as the
	// pack defines it ("true", "false", "onEssentialMonitoring", …). An
	// override can still disable a rule that the pack enables.
	Rules map[string]string
	// ClassFound is true when WindowsComputerClass exists.
	ClassFound bool
	// EventSourceLog is the log the EventSource is registered in on the
	// management server the template ran on ("" when it is not registered;
	// raise_alerts needs EventLog). EventSourceError is why the look-up
	// failed, when it did.
	EventSourceLog   string
	EventSourceError string
}

type doctorRequest struct {
	ManagementServer string `json:"management_server"`
	ManagementPack   string `json:"management_pack"`
	Class            string `json:"class"`
	EventSource      string `json:"event_source"`
}

type doctorAnswer struct {
	Module struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	} `json:"module"`
	Connection struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	} `json:"connection"`
	ManagementPack struct {
		Found   bool   `json:"found"`
		Version string `json:"version"`
	} `json:"management_pack"`
	Rules []struct {
		Name    string `json:"name"`
		Enabled string `json:"enabled"`
	} `json:"rules"`
	Class struct {
		Found bool `json:"found"`
	} `json:"class"`
	EventSource struct {
		Log   string `json:"log"`
		Error string `json:"error"`
	} `json:"event_source"`
}

// Doctor runs the read-only checks of `autopatch doctor` in one call. An
// error means the call itself failed (unreachable, refused credentials, a
// script error); what the management group lacks is in the report.
func (c *Client) Doctor(ctx context.Context) (DoctorReport, error) {
	var ans doctorAnswer
	if err := c.run(ctx, "doctor", DoctorTemplate, doctorRequest{
		ManagementServer: c.opts.ManagementServer, ManagementPack: ManagementPackName, Class: WindowsComputerClass,
		EventSource: EventSource,
	}, &ans); err != nil {
		return DoctorReport{}, err
	}
	// The event source is looked up whatever the module and connection did.
	rep := DoctorReport{EventSourceLog: ans.EventSource.Log, EventSourceError: ans.EventSource.Error}
	if !ans.Module.OK {
		rep.ModuleError = nonEmpty(ans.Module.Error, "the module did not load")
		return rep, nil
	}
	if !ans.Connection.OK {
		rep.ConnectionError = nonEmpty(ans.Connection.Error, "no connection")
		return rep, nil
	}
	rep.ManagementPackFound, rep.ManagementPackVersion = ans.ManagementPack.Found, ans.ManagementPack.Version
	rep.Rules, rep.ClassFound = map[string]string{}, ans.Class.Found
	for _, r := range ans.Rules {
		rep.Rules[r.Name] = r.Enabled
	}
	return rep, nil
}

// CompareVersions compares two dotted versions ("1.1.0.0") numerically, part
// by part, a missing part counting as 0; it returns -1, 0 or +1. A part that
// is not a number compares as 0.
func CompareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(pa), len(pb)) {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(strings.TrimSpace(pa[i]))
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(strings.TrimSpace(pb[i]))
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// RuleDisabled reports whether a rule's Enabled value leaves it off. The
// monitoring levels other than "false" run the rule at some level.
func RuleDisabled(enabled string) bool { return strings.EqualFold(enabled, "false") }

func nonEmpty(s, fallback string) string {
	if strings.TrimSpace(s) == "" {
		return fallback
	}
	return s
}
