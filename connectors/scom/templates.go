package scom

import "github.com/autopatch/autopatch/connectors/winrm"

// The PowerShell that runs on the SCOM management server. Every script is a
// compile-time constant: the only thing that varies between calls is $Data,
// the decoded JSON object the winrm connector hands to the script. No key,
// device, summary or ticket number is ever spliced into script text, so a
// hostile value is just a string to these scripts, and the simulator refuses
// any script that is not byte-for-byte one of these.
//
// One place needs care: Get-SCOMAlert -Criteria takes SCOM's own query
// language (a SQL WHERE dialect), and the templates look alerts up by the key
// in CustomField1. The key enters that query only as a string literal built
// inside the script by ConvertTo-ApCriteriaLiteral (single-quoted, every
// single quote doubled) from the value in $Data; it is escaping for the query
// language, never PowerShell text. The database then compares
// case-insensitively and ignores trailing blanks, so every look-up keeps only
// the alerts whose CustomField1 is exactly the key (-ceq).
//
// Alerts are raised by the event-log route (integrations/scom/README.md):
// raise_alerts writes an event of the registered source "autopatch" to the
// Application log of the management server it runs on, and the management
// pack's NT event log rules (Microsoft.Windows.EventProvider on every
// management server, System.Health.GenerateAlertForType) raise the alert on
// the device's Windows Computer. It works on SCOM 2012 R2, 2016, 2019, 2022
// and 2025 alike: both modules are in the sealed libraries every version
// ships. The SDK route it replaces (InsertCustomMonitoringEvent, read by
// Microsoft.SystemCenter.SdkEventProvider) is deprecated from 2019 on: that
// version's Microsoft.SystemCenter.2007 pack ships the rule that reads it,
// CollectSdkEventData, disabled and marked deprecated
// (https://systemcenter.wiki/?GetElement=Microsoft.SystemCenter.CollectSdkEventData&Language=KOR&ManagementPack=Microsoft.SystemCenter.2007&Type=Rule&Version=10.19.10505.0),
// moving SDK events to a DataAccessService provider of its own.
//
// Conventions shared by all templates (as in connectors/sccm):
//   - $ErrorActionPreference = 'Stop': any cmdlet error ends the script with a
//     non-zero exit and PowerShell's error text on stderr (winrm.ScriptError).
//   - Batches are validated before anything changes, so a refusal leaves SCOM
//     as it was. A device SCOM does not know is a per-alert result instead:
//     one decommissioned server must not hold back every other alert.
//   - The answer is ONE JSON document written last; every other output is
//     discarded ($null = ...) so nothing else reaches stdout.
//   - No backtick escapes and no '%' alias are used (the tests keep it that
//     way), which also keeps these Go raw strings honest.

// Template names, as they appear in winrm.ScriptError.Template and in the
// simulator's call counts.
const (
	RaiseAlertsTemplate   = "scom.raise_alerts"
	SetTicketTemplate     = "scom.set_ticket"
	ResolveAlertsTemplate = "scom.resolve_alerts"
)

// What the management pack (integrations/scom/Autopatch.Alerts.xml) listens
// for: events of this source and id in the Application log of the management
// server the template runs on (the event-log route; the SDK's
// InsertCustomMonitoringEvent route is gone because the 2019+ management packs
// ship its data source's collection disabled and deprecated, see
// integrations/scom/README.md). The event's entry type picks the rule, and so
// the alert's severity (see Severity).
const (
	EventSource = "autopatch"
	EventLog    = "Application"
	EventID     = 41001
)

// MaxEventStringLength is the longest insertion string
// EventLog.WriteEvent accepts, in UTF-16 code units; a longer one is an
// ArgumentException (https://learn.microsoft.com/en-us/dotnet/api/system.diagnostics.eventlog.writeevent).
const MaxEventStringLength = 32766

// Limits of the OperationsManager database columns the templates write
// (Alert.CustomField1 is nvarchar(255), Alert.TicketId nvarchar(150)),
// counted in UTF-16 code units as SQL Server and .NET count them.
const (
	MaxKeyLength      = 255
	MaxTicketIDLength = 150
)

// ResolutionClosed is the resolution state of a closed alert.
const ResolutionClosed = 255

// prelude loads the OperationsManager module, connects to the management
// group and defines the helpers the bodies use. It follows "param($Data)" in
// every script.
const prelude = `
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

# The module is installed with every management server and Operations console.
# https://learn.microsoft.com/en-us/powershell/module/microsoft.powershell.core/get-module?view=powershell-5.1
if ($null -eq (Get-Module -Name OperationsManager)) {
    # https://learn.microsoft.com/en-us/powershell/module/microsoft.powershell.core/import-module?view=powershell-5.1
    Import-Module -Name OperationsManager
}

# Each call is a new powershell.exe, so each opens its own connection to the
# Data Access (SDK) service: this management server's, unless the data names another.
$ManagementServer = [string]$Data.management_server
if ([string]::IsNullOrEmpty($ManagementServer)) { $ManagementServer = 'localhost' }
# https://learn.microsoft.com/en-us/powershell/module/operationsmanager/new-scommanagementgroupconnection?view=systemcenter-ps-2025
$null = New-SCOMManagementGroupConnection -ComputerName $ManagementServer

# The management pack's contract: source, log and id of the events its rules turn into alerts.
$ApSource = 'autopatch'
$ApLog = 'Application'
$ApEventId = 41001
$ApMaxEventString = 32766
# Column sizes in the OperationsManager database (Alert.CustomField1, Alert.TicketId).
$ApMaxKeyLength = 255
$ApMaxTicketLength = 150
$ApClosed = 255

function Write-ApAnswer($Value) {
    # -InputObject keeps empty and one-element arrays as arrays; a pipeline would unroll them.
    # https://learn.microsoft.com/en-us/powershell/module/microsoft.powershell.utility/convertto-json?view=powershell-5.1
    ConvertTo-Json -InputObject $Value -Depth 10 -Compress
}

function New-ApList {
    return ,(New-Object -TypeName 'System.Collections.Generic.List[object]')
}

function ConvertTo-ApCriteriaLiteral([string]$Value) {
    # -Criteria is SCOM's query language, not PowerShell: a value from $Data
    # enters it only as a string literal, single-quoted with each single quote
    # doubled. Only '=' is used, so LIKE wildcards mean nothing here.
    return "'" + $Value.Replace("'", "''") + "'"
}

function Find-ApAlertsByKey([string]$Key, [bool]$OpenOnly) {
    $criteria = 'CustomField1 = ' + (ConvertTo-ApCriteriaLiteral $Key)
    if ($OpenOnly) { $criteria = $criteria + ' AND ResolutionState <> 255' }
    # The database compares case-insensitively and ignores trailing blanks:
    # keep only the alerts whose key is exactly this one, oldest first.
    # https://learn.microsoft.com/en-us/powershell/module/operationsmanager/get-scomalert?view=systemcenter-ps-2025 (FromCriteria)
    Get-SCOMAlert -Criteria $criteria |
        Where-Object { [string]$_.CustomField1 -ceq $Key } |
        Sort-Object -Property TimeRaised
}

function Find-ApAlerts($Ref, [bool]$OpenOnly) {
    # A reference names an alert by its id, or else by its key.
    $id = [string]$Ref.alert_id
    if (-not [string]::IsNullOrEmpty($id)) {
        # The [guid] cast admits only a GUID, so the literal needs no escaping.
        $guid = ([guid]$id).ToString()
        # https://learn.microsoft.com/en-us/powershell/module/operationsmanager/get-scomalert?view=systemcenter-ps-2025 (FromCriteria)
        return Get-SCOMAlert -Criteria ("Id = '" + $guid + "'")
    }
    return Find-ApAlertsByKey -Key ([string]$Ref.key) -OpenOnly $OpenOnly
}

function Get-ApPrincipalName($Computer) {
    return [string]$Computer.'[Microsoft.Windows.Computer].PrincipalName'.Value
}

function Get-ApComputerIndex {
    # One read of every Windows Computer, then look-ups in memory: a batch
    # names many devices and each Get-SCOMClassInstance is a round trip. A
    # device may be named by its FQDN (PrincipalName, DisplayName) or its
    # NetBIOS name; Windows names are case-insensitive.
    # https://learn.microsoft.com/en-us/powershell/module/operationsmanager/get-scomclass?view=systemcenter-ps-2025 (FromClassName)
    $class = Get-SCOMClass -Name 'Microsoft.Windows.Computer'
    # https://learn.microsoft.com/en-us/powershell/module/operationsmanager/get-scomclassinstance?view=systemcenter-ps-2025 (FromManagementPackClass)
    $index = New-Object -TypeName 'System.Collections.Generic.Dictionary[string,object]'
    foreach ($computer in Get-SCOMClassInstance -Class $class) {
        $names = New-Object -TypeName 'System.Collections.Generic.HashSet[string]'
        $candidates = @(
            (Get-ApPrincipalName $computer),
            [string]$computer.DisplayName,
            [string]$computer.'[Microsoft.Windows.Computer].NetbiosComputerName'.Value
        )
        foreach ($name in $candidates) {
            if (-not [string]::IsNullOrEmpty($name)) { $null = $names.Add($name.ToLowerInvariant()) }
        }
        foreach ($name in $names) {
            if (-not $index.ContainsKey($name)) { $index[$name] = New-ApList }
            $index[$name].Add($computer)
        }
    }
    return ,$index
}
`

const raiseAlertsScript = `param($Data)` + prelude + `
# In:  alerts: [{key, device, severity, summary, description, change, error_code}], wait_seconds
# Out: {results: [{key, device, computer, alert_id, outcome, message}]}
#      outcome: raised | existing | pending | unknown_device | ambiguous_device

# Validate the whole batch before any event is written.
$keys = New-Object -TypeName 'System.Collections.Generic.HashSet[string]'
foreach ($spec in $Data.alerts) {
    $key = [string]$spec.key
    if ($key.Length -lt 1 -or $key.Length -gt $ApMaxKeyLength) {
        throw ("The alert key '" + $key + "' is " + $key.Length + " characters long; CustomField1 holds 1 to " + $ApMaxKeyLength + ".")
    }
    if (-not $keys.Add($key)) {
        throw ("The alert key '" + $key + "' appears more than once in this request.")
    }
    if (@('critical', 'warning', 'information') -notcontains [string]$spec.severity) {
        throw ("Unknown severity '" + [string]$spec.severity + "' for the alert key '" + $key + "'.")
    }
    # WriteEvent refuses a longer insertion string after earlier events were
    # written; refuse the batch before any is.
    foreach ($value in @([string]$spec.summary, [string]$spec.description, [string]$spec.change, [string]$spec.error_code, [string]$spec.device)) {
        if ($value.Length -gt $ApMaxEventString) {
            throw ("A text of the alert key '" + $key + "' is " + $value.Length + " characters long; an event log string holds " + $ApMaxEventString + ".")
        }
    }
}

# The rules read events of a registered source only, and WriteEvent would try
# to register an unknown source itself (needs administrator rights, and could
# land it in another log). An administrator registers it once
# (New-EventLog -LogName Application -Source autopatch); until then, fail loudly.
# https://learn.microsoft.com/en-us/dotnet/api/system.diagnostics.eventlog.lognamefromsourcename
$registeredLog = [System.Diagnostics.EventLog]::LogNameFromSourceName($ApSource, '.')
if ($registeredLog -ne $ApLog) {
    throw ("The event source '" + $ApSource + "' is not registered in the " + $ApLog + " log of this management server (registered in: '" + $registeredLog + "'). Run once as an administrator: New-EventLog -LogName " + $ApLog + " -Source " + $ApSource)
}

# Entry type per severity (EventLogEntryType: Error 1, Warning 2, Information 4,
# the EventLevel the rules filter on); the management pack has one rule per type.
# https://learn.microsoft.com/en-us/dotnet/api/system.diagnostics.eventlogentrytype
$entryTypes = @{ critical = 'Error'; warning = 'Warning'; information = 'Information' }
$index = Get-ApComputerIndex
$results = New-ApList
$pending = New-ApList
foreach ($spec in $Data.alerts) {
    $key = [string]$spec.key
    $device = [string]$spec.device
    $result = [ordered]@{ key = $key; device = $device; computer = ''; alert_id = ''; outcome = ''; message = '' }
    $results.Add($result)

    $found = $null
    if ($index.ContainsKey($device.ToLowerInvariant())) { $found = $index[$device.ToLowerInvariant()] }
    if ($null -eq $found) {
        $result.outcome = 'unknown_device'
        $result.message = "No Windows Computer named '" + $device + "' is monitored by this management group."
        continue
    }
    if ($found.Count -gt 1) {
        $principals = @($found | ForEach-Object { Get-ApPrincipalName $_ } | Sort-Object)
        $result.outcome = 'ambiguous_device'
        $result.message = "The name '" + $device + "' matches " + $found.Count + " Windows Computers: " + ($principals -join ', ') + "."
        continue
    }
    $computer = $found[0]
    $result.computer = Get-ApPrincipalName $computer

    # Idempotent: while an alert with this key is open, it is the answer and
    # no second event is written.
    $open = @(Find-ApAlertsByKey -Key $key -OpenOnly $true)
    if ($open.Count -gt 0) {
        $result.alert_id = $open[0].Id.ToString()
        $result.outcome = 'existing'
        continue
    }

    # The parameter order is the management pack's contract: $Data/Params/Param[1]$ to [7].
    $parameters = [object[]]@($key, $result.computer, [string]$spec.summary, [string]$spec.description,
        [string]$spec.change, [string]$spec.error_code, $device)
    # https://learn.microsoft.com/en-us/dotnet/api/system.diagnostics.eventinstance.-ctor (instance id, category, entry type)
    $instance = [System.Diagnostics.EventInstance]::new([long]$ApEventId, 0, [System.Diagnostics.EventLogEntryType]$entryTypes[[string]$spec.severity])
    # https://learn.microsoft.com/en-us/dotnet/api/system.diagnostics.eventlog.writeevent (source, instance, insertion strings)
    [System.Diagnostics.EventLog]::WriteEvent($ApSource, $instance, $parameters)
    $result.outcome = 'pending'
    $pending.Add($result)
}

# The management pack's rule raises each alert asynchronously, usually within
# seconds: look for the new alerts until all are there or wait_seconds have
# passed. One still missing is answered 'pending'; calling again returns it
# as 'existing' once raised, and while the rule has not raised it yet, the
# rule's suppression on the key folds a second event into the same alert.
$deadline = [datetime]::UtcNow.AddSeconds([double]$Data.wait_seconds)
while ($pending.Count -gt 0) {
    foreach ($result in $pending.ToArray()) {
        $open = @(Find-ApAlertsByKey -Key $result.key -OpenOnly $true)
        if ($open.Count -gt 0) {
            $result.alert_id = $open[0].Id.ToString()
            $result.outcome = 'raised'
            $null = $pending.Remove($result)
        }
    }
    if ($pending.Count -eq 0 -or [datetime]::UtcNow -ge $deadline) { break }
    # https://learn.microsoft.com/en-us/powershell/module/microsoft.powershell.utility/start-sleep?view=powershell-5.1
    Start-Sleep -Seconds 2
}
Write-ApAnswer ([ordered]@{ results = $results.ToArray() })
`

const setTicketScript = `param($Data)` + prelude + `
# In:  links: [{key, alert_id, ticket_id}], comment
# Out: {results: [{key, alert_id, alert_ids, outcome}]}   outcome: set | unchanged | not_found
# A link by alert_id updates that alert whatever its state; a link by key
# updates the open alerts with that key.
foreach ($link in $Data.links) {
    $ticket = [string]$link.ticket_id
    if ($ticket.Length -lt 1 -or $ticket.Length -gt $ApMaxTicketLength) {
        throw ("The ticket id '" + $ticket + "' is " + $ticket.Length + " characters long; TicketId holds 1 to " + $ApMaxTicketLength + ".")
    }
    if (-not [string]::IsNullOrEmpty([string]$link.alert_id)) { $null = [guid][string]$link.alert_id }
}

$comment = [string]$Data.comment
$results = New-ApList
foreach ($link in $Data.links) {
    $ticket = [string]$link.ticket_id
    $ids = New-ApList
    $changed = $false
    foreach ($alert in @(Find-ApAlerts -Ref $link -OpenOnly $true)) {
        $ids.Add($alert.Id.ToString())
        # Every Set-SCOMAlert adds to the alert's history: change only what differs.
        if ([string]$alert.TicketId -ceq $ticket) { continue }
        $params = @{ Alert = $alert; TicketId = $ticket }
        if (-not [string]::IsNullOrEmpty($comment)) { $params.Comment = $comment }
        # https://learn.microsoft.com/en-us/powershell/module/operationsmanager/set-scomalert?view=systemcenter-ps-2025
        Set-SCOMAlert @params
        $changed = $true
    }
    $outcome = 'unchanged'
    if ($ids.Count -eq 0) { $outcome = 'not_found' } elseif ($changed) { $outcome = 'set' }
    $results.Add([ordered]@{ key = [string]$link.key; alert_id = [string]$link.alert_id; alert_ids = $ids.ToArray(); outcome = $outcome })
}
Write-ApAnswer ([ordered]@{ results = $results.ToArray() })
`

const resolveAlertsScript = `param($Data)` + prelude + `
# In:  refs: [{key, alert_id}], comment
# Out: {results: [{key, alert_id, alert_ids, outcome}]}   outcome: closed | already_closed | not_found
# Closes (ResolutionState 255) the alert with that id, or every open alert with that key.
foreach ($ref in $Data.refs) {
    if (-not [string]::IsNullOrEmpty([string]$ref.alert_id)) { $null = [guid][string]$ref.alert_id }
}

$comment = [string]$Data.comment
$results = New-ApList
foreach ($ref in $Data.refs) {
    $ids = New-ApList
    $closed = 0
    foreach ($alert in @(Find-ApAlerts -Ref $ref -OpenOnly $false)) {
        $ids.Add($alert.Id.ToString())
        if ([int]$alert.ResolutionState -eq $ApClosed) { continue }
        $params = @{ Alert = $alert; ResolutionState = $ApClosed }
        if (-not [string]::IsNullOrEmpty($comment)) { $params.Comment = $comment }
        # https://learn.microsoft.com/en-us/powershell/module/operationsmanager/set-scomalert?view=systemcenter-ps-2025 (ResolutionState 255 is Closed)
        Set-SCOMAlert @params
        $closed++
    }
    $outcome = 'already_closed'
    if ($ids.Count -eq 0) { $outcome = 'not_found' } elseif ($closed -gt 0) { $outcome = 'closed' }
    $results.Add([ordered]@{ key = [string]$ref.key; alert_id = [string]$ref.alert_id; alert_ids = $ids.ToArray(); outcome = $outcome })
}
Write-ApAnswer ([ordered]@{ results = $results.ToArray() })
`

// Templates returns every script the SCOM connector can run, in a fixed
// order. The simulator accepts exactly these texts and nothing else.
func Templates() []winrm.Template {
	return []winrm.Template{
		{Name: RaiseAlertsTemplate, Script: raiseAlertsScript},
		{Name: SetTicketTemplate, Script: setTicketScript},
		{Name: ResolveAlertsTemplate, Script: resolveAlertsScript},
		{Name: DoctorTemplate, Script: doctorScript},
	}
}

// template returns the named template; the names are the constants above.
func template(name string) winrm.Template {
	for _, t := range Templates() {
		if t.Name == name {
			return t
		}
	}
	panic("scom: no template " + name) // a typo in this package, caught by every test
}
