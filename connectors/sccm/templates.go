package sccm

import "github.com/autopatch/autopatch/connectors/winrm"

// The PowerShell that runs on the site server. Every script is a compile-time
// constant: the only thing that varies between calls is $Data, the decoded JSON
// object the winrm connector hands to the script. Nothing (no device, collection,
// update group or deployment name) is ever spliced into script text, so a hostile
// name is just a string value to these scripts, and the simulator refuses any
// script that is not byte-for-byte one of these.
//
// Conventions shared by all templates:
//   - $ErrorActionPreference = 'Stop': any cmdlet error ends the script with a
//     non-zero exit and PowerShell's error text on stderr (winrm.ScriptError).
//   - Batches are validated before anything changes, so a refusal (unknown
//     collection, unknown update group, name too long, ...) leaves SCCM as it was.
//   - Name look-ups use -DisableWildcardHandling and then compare names exactly,
//     because a name may contain '*', '?' or '['.
//   - The answer is ONE JSON document written last; every other output is
//     discarded ($null = ..., Out-Null) so nothing else reaches stdout.
//   - No backtick escapes and no '%' alias are used (the scan in the tests keeps
//     it that way), which also keeps these Go raw strings honest.

// Template names, as they appear in winrm.ScriptError.Template and in the
// simulator's call counts.
const (
	ResolveDevicesTemplate     = "sccm.resolve_devices"
	SetMembershipTemplate      = "sccm.set_membership"
	CreateDeploymentsTemplate  = "sccm.create_deployments"
	SetEnabledTemplate         = "sccm.set_enabled"
	RefreshPolicyTemplate      = "sccm.refresh_policy"
	DeleteDeploymentsTemplate  = "sccm.delete_deployments"
	DeploymentStatusTemplate   = "sccm.deployment_status"
	MaintenanceWindowsTemplate = "sccm.maintenance_window_collections"
	DeviceStateTemplate        = "sccm.device_state"
)

// prelude loads the ConfigurationManager module, selects the site drive and
// defines the helpers the bodies use. It follows "param($Data)" in every script.
const prelude = `
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

# The module ships with the console; SMS_ADMIN_UI_PATH points at its bin\i386 folder.
if ($null -eq (Get-Module -Name ConfigurationManager)) {
    if ([string]::IsNullOrEmpty($env:SMS_ADMIN_UI_PATH)) {
        throw 'SMS_ADMIN_UI_PATH is not set: the Configuration Manager console is not installed on this host.'
    }
    $modulePath = Join-Path -Path (Split-Path -Path $env:SMS_ADMIN_UI_PATH -Parent) -ChildPath 'ConfigurationManager.psd1'
    Import-Module -Name $modulePath
}

# Site code from the data, or the CMSite drive the module created.
$SiteCode = [string]$Data.site_code
if ([string]::IsNullOrEmpty($SiteCode)) {
    $siteDrive = Get-PSDrive -PSProvider CMSite | Select-Object -First 1
    if ($null -eq $siteDrive) {
        throw 'No CMSite drive exists: run this on a site server or configure the site code.'
    }
    $SiteCode = $siteDrive.Name
} elseif ($null -eq (Get-PSDrive -Name $SiteCode -PSProvider CMSite -ErrorAction SilentlyContinue)) {
    $null = New-PSDrive -Name $SiteCode -PSProvider CMSite -Root $env:COMPUTERNAME
}
Set-Location -Path ($SiteCode + ':')

function Write-ApAnswer($Value) {
    # -InputObject keeps empty and one-element arrays as arrays; a pipeline would unroll them.
    ConvertTo-Json -InputObject $Value -Depth 10 -Compress
}

function New-ApList {
    return ,(New-Object -TypeName 'System.Collections.Generic.List[object]')
}

function New-ApMap {
    # Ordinal (case-sensitive) keys: a PowerShell hashtable would fold case.
    return ,(New-Object -TypeName 'System.Collections.Generic.Dictionary[string,object]')
}

function ConvertTo-ApUtc($Value) {
    # Windows PowerShell 5.1 leaves RFC 3339 strings as strings; PowerShell 7 already made a DateTime.
    if ($Value -is [datetime]) { return $Value.ToUniversalTime() }
    $styles = [Globalization.DateTimeStyles]::AdjustToUniversal -bor [Globalization.DateTimeStyles]::AssumeUniversal
    return [datetime]::Parse([string]$Value, [Globalization.CultureInfo]::InvariantCulture, $styles)
}

function Format-ApTime($Value) {
    if ($null -eq $Value) { return $null }
    return ([datetime]$Value).ToUniversalTime().ToString('o', [Globalization.CultureInfo]::InvariantCulture)
}

function Find-ApCollection([string]$Name) {
    # Get-CMDeviceCollection documents no -DisableWildcardHandling (its -Name
    # takes wildcards); Get-CMCollection scoped to device collections does:
    # https://learn.microsoft.com/en-us/powershell/module/configurationmanager/get-cmcollection?view=sccm-ps
    Get-CMCollection -CollectionType Device -Name $Name -DisableWildcardHandling |
        Where-Object { $_.Name -ceq $Name } |
        Select-Object -First 1
}

function Find-ApUpdateGroup([string]$Name) {
    Get-CMSoftwareUpdateGroup -Name $Name -DisableWildcardHandling |
        Where-Object { $_.LocalizedDisplayName -ceq $Name } |
        Select-Object -First 1
}

function Find-ApDeployment([string]$Name) {
    Get-CMSoftwareUpdateDeployment -Name $Name -DisableWildcardHandling |
        Where-Object { $_.AssignmentName -ceq $Name } |
        Select-Object -First 1
}

function Test-ApSameTime($Read, [datetime]$Want) {
    # Deployment times are kept to the minute. With UseGMTTimes the provider
    # holds the UTC wall time; accept it whether the module hands it back as
    # that wall time or converted to the server's local time.
    if ($null -eq $Read) { return $false }
    $read = [datetime]$Read
    $format = 'yyyy-MM-dd HH:mm'
    $want = $Want.ToString($format, [Globalization.CultureInfo]::InvariantCulture)
    return ($read.ToString($format, [Globalization.CultureInfo]::InvariantCulture) -eq $want) -or
        ($read.ToUniversalTime().ToString($format, [Globalization.CultureInfo]::InvariantCulture) -eq $want)
}

function Find-ApDevice([string]$Name) {
    # -Fast skips lazy properties. A re-imaged machine can leave an obsolete
    # record with the same name: never pick that one; of the rest, the newest
    # record (highest ResourceID) wins.
    Get-CMDevice -Name $Name -Fast -DisableWildcardHandling |
        Where-Object { $_.Name -ceq $Name -and -not $_.IsObsolete } |
        Sort-Object -Property ResourceID -Descending |
        Select-Object -First 1
}
`

const resolveDevicesScript = `param($Data)` + prelude + `
# In:  names: [string]
# Out: {devices: [{name, resource_id}], unknown: [string]}
$devices = New-ApList
$unknown = New-ApList
foreach ($name in $Data.names) {
    $device = Find-ApDevice -Name $name
    if ($null -eq $device) {
        $unknown.Add([string]$name)
        continue
    }
    $devices.Add([ordered]@{ name = [string]$name; resource_id = [int]$device.ResourceID })
}
Write-ApAnswer ([ordered]@{ devices = $devices.ToArray(); unknown = $unknown.ToArray() })
`

const setMembershipScript = `param($Data)` + prelude + `
# In:  moves: [{device, resource_id (0 = look up by name), collection}], managed_collections: [string]
# Out: {results: [{device, resource_id, result: moved|already_there|unknown, removed_from: [string]}]}
# A device ends up with a direct rule in its target collection and in no other
# autopatch-managed collection.

# Validate every target first: an unknown target changes nothing.
$targets = New-ApMap
foreach ($move in $Data.moves) {
    $name = [string]$move.collection
    if ($targets.ContainsKey($name)) { continue }
    $collection = Find-ApCollection -Name $name
    if ($null -eq $collection) {
        throw ("No device collection named '" + $name + "' exists on site " + $SiteCode + ".")
    }
    $targets[$name] = $collection
}

# Managed collections that do not exist hold no rules to remove.
$managed = New-ApList
foreach ($name in $Data.managed_collections) {
    $collection = Find-ApCollection -Name ([string]$name)
    if ($null -ne $collection) { $managed.Add($collection) }
}

$results = New-ApList
foreach ($move in $Data.moves) {
    $resourceId = [int]$move.resource_id
    if ($resourceId -eq 0) {
        $device = Find-ApDevice -Name ([string]$move.device)
    } else {
        $device = Get-CMDevice -ResourceId $resourceId -Fast
    }
    if ($null -eq $device) {
        $results.Add([ordered]@{ device = [string]$move.device; resource_id = $resourceId; result = 'unknown'; removed_from = @() })
        continue
    }
    $resourceId = [int]$device.ResourceID
    $target = $targets[[string]$move.collection]

    $removed = New-ApList
    foreach ($other in $managed) {
        if ($other.CollectionID -eq $target.CollectionID) { continue }
        $rule = Get-CMDeviceCollectionDirectMembershipRule -CollectionId $other.CollectionID -ResourceId $resourceId
        if ($null -ne $rule) {
            Remove-CMDeviceCollectionDirectMembershipRule -CollectionId $other.CollectionID -ResourceId $resourceId -Force
            $removed.Add([string]$other.Name)
        }
    }

    $rule = Get-CMDeviceCollectionDirectMembershipRule -CollectionId $target.CollectionID -ResourceId $resourceId
    if ($null -ne $rule) {
        $result = 'already_there'
    } else {
        Add-CMDeviceCollectionDirectMembershipRule -CollectionId $target.CollectionID -ResourceId $resourceId
        $result = 'moved'
    }
    $results.Add([ordered]@{ device = [string]$move.device; resource_id = $resourceId; result = $result; removed_from = $removed.ToArray() })
}
Write-ApAnswer ([ordered]@{ results = $results.ToArray() })
`

const createDeploymentsScript = `param($Data)` + prelude + `
# In:  deployments: [{name, collection, update_group, available, deadline (RFC 3339 UTC), suppress_restart}]
# Out: {deployments: [{name, id, unique_id, existed}]}
# Every deployment of the batch is left DISABLED: autopatch enables it at its
# window's start. A deployment that already exists under the name (a retry, or a
# re-planned change) is found, gets the new times and is disabled; it is never
# created twice.

# Validate the whole batch first: a refusal creates nothing.
$seen = New-Object -TypeName 'System.Collections.Generic.HashSet[string]'
$collections = New-ApMap
$groups = New-ApMap
foreach ($spec in $Data.deployments) {
    $name = [string]$spec.name
    if ($name.Length -lt 1 -or $name.Length -gt 256) {
        throw ("The deployment name '" + $name + "' is " + $name.Length + " characters long; SCCM allows 1 to 256.")
    }
    if (-not $seen.Add($name)) {
        throw ("The deployment name '" + $name + "' appears more than once in this request.")
    }
    $collectionName = [string]$spec.collection
    if (-not $collections.ContainsKey($collectionName)) {
        $collection = Find-ApCollection -Name $collectionName
        if ($null -eq $collection) {
            throw ("No device collection named '" + $collectionName + "' exists on site " + $SiteCode + ".")
        }
        $collections[$collectionName] = $collection
    }
    $groupName = [string]$spec.update_group
    if (-not $groups.ContainsKey($groupName)) {
        $group = Find-ApUpdateGroup -Name $groupName
        if ($null -eq $group) {
            throw ("No software update group named '" + $groupName + "' exists on site " + $SiteCode + ".")
        }
        $groups[$groupName] = $group
    }
    $existing = Find-ApDeployment -Name $name
    if ($null -ne $existing) {
        if ($existing.TargetCollectionID -ne $collections[$collectionName].CollectionID -or
            $existing.AssignedUpdateGroup -ne $groups[$groupName].CI_ID) {
            throw ("A deployment named '" + $name + "' already exists on site " + $SiteCode + " for another collection or update group.")
        }
    }
}

$results = New-ApList
foreach ($spec in $Data.deployments) {
    $name = [string]$spec.name
    $available = ConvertTo-ApUtc $spec.available
    $deadline = ConvertTo-ApUtc $spec.deadline
    $suppress = [bool]$spec.suppress_restart
    # SuppressReboot (SMS_CIAssignmentBaseClass) is a bit field: bit 0 (1)
    # workstations, bit 1 (2) servers. manual_reboot suppresses both, automatic
    # neither.
    # https://learn.microsoft.com/en-us/mem/configmgr/develop/reference/compliance/sms_ciassignmentbaseclass-server-wmi-class
    $wantSuppress = 0
    if ($suppress) { $wantSuppress = 3 }

    $existing = Find-ApDeployment -Name $name
    $existed = $null -ne $existing
    if ($existed) {
        # The documented route to a new deadline for an existing deployment is
        # Set-CMSoftwareUpdateDeployment -DeploymentExpireDateTime (the page
        # calls it the deployment's expiration; the value is read back below,
        # so a module that wrote another property fails this script loudly).
        # https://learn.microsoft.com/en-us/powershell/module/configurationmanager/set-cmsoftwareupdatedeployment?view=sccm-ps
        Set-CMSoftwareUpdateDeployment -InputObject $existing -AvailableDateTime $available -DeploymentExpireDateTime $deadline -TimeBasedOn Utc
    } else {
        # -RestartServer/-RestartWorkstation are left to the Set- call below:
        # the New- page describes them as "allow", the Set- page as "suppress".
        # https://learn.microsoft.com/en-us/powershell/module/configurationmanager/new-cmsoftwareupdatedeployment?view=sccm-ps
        $params = @{
            DeploymentName          = $name
            SoftwareUpdateGroupName = [string]$spec.update_group
            CollectionName          = [string]$spec.collection
            DeploymentType          = 'Required'
            AvailableDateTime       = $available
            DeadlineDateTime        = $deadline
            TimeBasedOn             = 'Utc'
            # No maintenance windows are used: autopatch's window is the enabled period.
            SoftwareInstallation    = $true
            AllowRestart            = $true
            UserNotification        = 'DisplaySoftwareCenterOnly'
            VerbosityLevel          = 'AllMessages'
            AcceptEula              = $true
            DisableWildcardHandling = $true
        }
        # Its output is documented only as System.Object: never trusted, the
        # deployment is read back by its deterministic name instead.
        $null = New-CMSoftwareUpdateDeployment @params
    }

    $deployment = Find-ApDeployment -Name $name
    if ($null -eq $deployment) {
        throw ("The deployment '" + $name + "' was not found on site " + $SiteCode + " after it was created.")
    }
    # New-CMSoftwareUpdateDeployment has no -Enable: disable right away. The
    # Set- page documents -RestartServer/-RestartWorkstation $true as
    # "suppress the restart".
    # https://learn.microsoft.com/en-us/powershell/module/configurationmanager/set-cmsoftwareupdatedeployment?view=sccm-ps
    Set-CMSoftwareUpdateDeployment -InputObject $deployment -Enable $false -RestartServer $suppress -RestartWorkstation $suppress

    # Read everything back: the outcome is checked, not assumed.
    # https://learn.microsoft.com/en-us/mem/configmgr/develop/reference/sum/sms_updatesassignment-server-wmi-class
    $deployment = Find-ApDeployment -Name $name
    if ($null -eq $deployment) {
        throw ("The deployment '" + $name + "' disappeared from site " + $SiteCode + " while it was being configured.")
    }
    if ([bool]$deployment.Enabled) {
        throw ("The deployment '" + $name + "' is still enabled after it was disabled: it must not run before its window.")
    }
    if (([int]$deployment.SuppressReboot -band 3) -ne $wantSuppress) {
        throw ("The deployment '" + $name + "' has SuppressReboot " + [int]$deployment.SuppressReboot + "; the schedule needs " + $wantSuppress + ".")
    }
    if (-not (Test-ApSameTime $deployment.EnforcementDeadline $deadline)) {
        throw ("The deployment '" + $name + "' has deadline " + (Format-ApTime $deployment.EnforcementDeadline) + "; the change needs " + (Format-ApTime $deadline) + ".")
    }
    if (-not (Test-ApSameTime $deployment.StartTime $available)) {
        throw ("The deployment '" + $name + "' becomes available at " + (Format-ApTime $deployment.StartTime) + "; the change needs " + (Format-ApTime $available) + ".")
    }
    $results.Add([ordered]@{
        name      = $name
        id        = [int]$deployment.AssignmentID
        unique_id = [string]$deployment.AssignmentUniqueID
        existed   = $existed
    })
}
Write-ApAnswer ([ordered]@{ deployments = $results.ToArray() })
`

const setEnabledScript = `param($Data)` + prelude + `
# In:  names: [string], enabled: bool, refresh_collections: [string]
# Out: {deployments: [{name, id, was_enabled}], refreshed: [string]}
# Opening a window is one call: enable its deployments, then ask the clients of
# refresh_collections to fetch machine policy now, so they see the deployments
# in seconds rather than at their next policy poll.
$enable = [bool]$Data.enabled

# Find every deployment and collection first: an unknown name changes nothing.
$found = New-ApList
foreach ($name in $Data.names) {
    $deployment = Find-ApDeployment -Name ([string]$name)
    if ($null -eq $deployment) {
        throw ("No software update deployment named '" + [string]$name + "' exists on site " + $SiteCode + ".")
    }
    $found.Add($deployment)
}
$refresh = New-ApList
foreach ($name in $Data.refresh_collections) {
    $collection = Find-ApCollection -Name ([string]$name)
    if ($null -eq $collection) {
        throw ("No device collection named '" + [string]$name + "' exists on site " + $SiteCode + ".")
    }
    $refresh.Add($collection)
}

$results = New-ApList
foreach ($deployment in $found) {
    $was = [bool]$deployment.Enabled
    # Only a change is written: a retry after a crash between this call and
    # autopatch's commit finds the deployment already in the asked state and
    # leaves it alone, so a window is enabled once however often it is opened.
    if ($was -ne $enable) {
        Set-CMSoftwareUpdateDeployment -InputObject $deployment -Enable $enable
    }
    $results.Add([ordered]@{ name = [string]$deployment.AssignmentName; id = [int]$deployment.AssignmentID; was_enabled = $was })
}
$refreshed = New-ApList
foreach ($collection in $refresh) {
    # -ActionType ClientNotificationRequestMachinePolicyNow: in every parameter
    # set and in the accepted values of the current-branch page (2203 and later).
    # The page's prose points policy requests at -NotificationType, but the
    # module's 1710 release notes deprecate it ("NotificationType has been
    # superseded by ActionType") and the 2010 notes request policy via -ActionType.
    # https://learn.microsoft.com/en-us/powershell/module/configurationmanager/invoke-cmclientaction?view=sccm-ps
    # https://learn.microsoft.com/en-us/powershell/sccm/1710_release_notes
    # https://learn.microsoft.com/en-us/powershell/sccm/2010-release-notes
    $null = Invoke-CMClientAction -CollectionId $collection.CollectionID -ActionType ClientNotificationRequestMachinePolicyNow
    $refreshed.Add([string]$collection.Name)
}
Write-ApAnswer ([ordered]@{ deployments = $results.ToArray(); refreshed = $refreshed.ToArray() })
`

const refreshPolicyScript = `param($Data)` + prelude + `
# In:  collections: [string]
# Out: {collections: [string]}
# Clients otherwise fetch policy on their own polling interval (60 minutes by
# default): ask every member of each collection to fetch machine policy now.
$found = New-ApList
foreach ($name in $Data.collections) {
    $collection = Find-ApCollection -Name ([string]$name)
    if ($null -eq $collection) {
        throw ("No device collection named '" + [string]$name + "' exists on site " + $SiteCode + ".")
    }
    $found.Add($collection)
}
$done = New-ApList
foreach ($collection in $found) {
    # -ActionType ClientNotificationRequestMachinePolicyNow: in every parameter
    # set and in the accepted values of the current-branch page (2203 and later).
    # The page's prose points policy requests at -NotificationType, but the
    # module's 1710 release notes deprecate it ("NotificationType has been
    # superseded by ActionType") and the 2010 notes request policy via -ActionType.
    # https://learn.microsoft.com/en-us/powershell/module/configurationmanager/invoke-cmclientaction?view=sccm-ps
    # https://learn.microsoft.com/en-us/powershell/sccm/1710_release_notes
    # https://learn.microsoft.com/en-us/powershell/sccm/2010-release-notes
    $null = Invoke-CMClientAction -CollectionId $collection.CollectionID -ActionType ClientNotificationRequestMachinePolicyNow
    $done.Add([string]$collection.Name)
}
Write-ApAnswer ([ordered]@{ collections = $done.ToArray() })
`

const deleteDeploymentsScript = `param($Data)` + prelude + `
# In:  names: [string]
# Out: {deployments: [{name, deleted}]}   deleted = false: there was none (already gone)
$results = New-ApList
foreach ($name in $Data.names) {
    $deployment = Find-ApDeployment -Name ([string]$name)
    if ($null -eq $deployment) {
        $results.Add([ordered]@{ name = [string]$name; deleted = $false })
        continue
    }
    Remove-CMSoftwareUpdateDeployment -InputObject $deployment -Force
    $results.Add([ordered]@{ name = [string]$name; deleted = $true })
}
Write-ApAnswer ([ordered]@{ deployments = $results.ToArray() })
`

const deploymentStatusScript = `param($Data)` + prelude + `
# In:  names: [string]
# Out: {statuses: [{deployment, deployment_id, device, resource_id, status_type,
#       status_error_code, status_description, last_enforcement_message,
#       last_enforcement_message_id, status_time}], missing: [string]}
# status_type as SMS_SUMDeploymentAssetDetails: 1 success, 2 in progress, 4 unknown, 5 error.
# last_enforcement_message_id is its LastEnforcementMessageID (the state of
# topic type 402; 9 is "pending system restart"):
# https://learn.microsoft.com/en-us/intune/configmgr/develop/reference/sum/sms_sumdeploymentassetdetails-server-wmi-class
$rows = New-ApList
$missing = New-ApList
foreach ($name in $Data.names) {
    $deployment = Find-ApDeployment -Name ([string]$name)
    if ($null -eq $deployment) {
        $missing.Add([string]$name)
        continue
    }
    $reported = New-Object -TypeName 'System.Collections.Generic.HashSet[int]'
    $details = Get-CMSoftwareUpdateDeploymentStatus -InputObject $deployment | Get-CMDeploymentStatusDetails
    foreach ($detail in $details) {
        if (-not $reported.Add([int]$detail.ResourceID)) { continue }
        $rows.Add([ordered]@{
            deployment               = [string]$name
            deployment_id            = [int]$deployment.AssignmentID
            device                   = [string]$detail.DeviceName
            resource_id              = [int]$detail.ResourceID
            status_type              = [int]$detail.StatusType
            status_error_code        = [int64]$detail.StatusErrorCode
            status_description       = [string]$detail.StatusDescription
            last_enforcement_message = [string]$detail.LastEnforcementMessageDesc
            last_enforcement_message_id = [int]$detail.LastEnforcementMessageID
            status_time              = Format-ApTime $detail.StatusTime
        })
    }
    # A member that never reported has no row: report it as unknown so the
    # caller sees silent devices.
    foreach ($member in Get-CMCollectionMember -CollectionId $deployment.TargetCollectionID) {
        if (-not $reported.Add([int]$member.ResourceID)) { continue }
        $rows.Add([ordered]@{
            deployment               = [string]$name
            deployment_id            = [int]$deployment.AssignmentID
            device                   = [string]$member.Name
            resource_id              = [int]$member.ResourceID
            status_type              = 4
            status_error_code        = 0
            status_description       = ''
            last_enforcement_message = ''
            last_enforcement_message_id = 0
            status_time              = $null
        })
    }
}
Write-ApAnswer ([ordered]@{ statuses = $rows.ToArray(); missing = $missing.ToArray() })
`

const maintenanceWindowsScript = `param($Data)` + prelude + `
# In:  (nothing but the site code)
# Out: {collections: [string]}   device collections with their own maintenance windows
$names = New-ApList
foreach ($collection in Get-CMDeviceCollection) {
    if ([int]$collection.ServiceWindowsCount -gt 0) { $names.Add([string]$collection.Name) }
}
Write-ApAnswer ([ordered]@{ collections = $names.ToArray() })
`

const deviceStateScript = `param($Data)` + prelude + `
# In:  reads: [{collection: string, update_groups: [string] (may be empty)}]
# Out: {devices: [{read, collection, device, resource_id, is_client, client_active_status,
#       last_policy_request, required, reboot_pending}]}   read: the index of its read
# Every read's collection members' SCCM client state, from
# SMS_CombinedDeviceResources (what Get-CMDevice returns): IsClient,
# ClientActiveStatus (0 inactive, 1 active, from client health) and LastPolicyRequest.
# https://learn.microsoft.com/en-us/intune/configmgr/develop/reference/core/clients/collections/sms_combineddeviceresources-server-wmi-class
# https://learn.microsoft.com/en-us/powershell/module/configurationmanager/get-cmdevice?view=sccm-ps
# With update groups: each member's compliance for their updates (the group's
# Updates, SMS_AuthorizationList), from SMS_UpdateComplianceStatus, one query
# per update whatever the number of reads: Status 2 is "update is required";
# LastEnforcementMessageID 9 ("pending system restart") on a required update
# counts as installed and waiting for a restart, not as required.
# https://learn.microsoft.com/en-us/intune/configmgr/develop/reference/sum/sms_authorizationlist-server-wmi-class
# https://learn.microsoft.com/en-us/intune/configmgr/develop/reference/sum/sms_updatecompliancestatus-server-wmi-class
$found = New-ApList
$groups = New-ApMap
foreach ($read in $Data.reads) {
    $collection = Find-ApCollection -Name ([string]$read.collection)
    if ($null -eq $collection) {
        throw ("No device collection named '" + [string]$read.collection + "' exists on site " + $SiteCode + ".")
    }
    $found.Add($collection)
    foreach ($name in $read.update_groups) {
        if ($groups.ContainsKey([string]$name)) { continue }
        $group = Find-ApUpdateGroup -Name ([string]$name)
        if ($null -eq $group) {
            throw ("No software update group named '" + [string]$name + "' exists on site " + $SiteCode + ".")
        }
        $ids = New-ApList
        foreach ($ci in $group.Updates) { $ids.Add([int]$ci) }
        $groups[[string]$name] = $ids
    }
}
# Per update: the machines that require it, and those waiting for a restart after it.
$required = New-Object -TypeName 'System.Collections.Generic.Dictionary[int,object]'
$restart = New-Object -TypeName 'System.Collections.Generic.Dictionary[int,object]'
$namespace = 'root\SMS\site_' + $SiteCode
foreach ($ids in $groups.Values) {
    foreach ($ci in $ids) {
        if ($required.ContainsKey([int]$ci)) { continue }
        $need = New-Object -TypeName 'System.Collections.Generic.HashSet[int]'
        $wait = New-Object -TypeName 'System.Collections.Generic.HashSet[int]'
        $filter = 'CI_ID = ' + ([int]$ci).ToString([Globalization.CultureInfo]::InvariantCulture)
        foreach ($row in Get-CimInstance -Namespace $namespace -ClassName SMS_UpdateComplianceStatus -Filter $filter) {
            if ([int]$row.Status -ne 2) { continue }
            if ([int]$row.LastEnforcementMessageID -eq 9) {
                $null = $wait.Add([int]$row.MachineID)
            } else {
                $null = $need.Add([int]$row.MachineID)
            }
        }
        $required[[int]$ci] = $need
        $restart[[int]$ci] = $wait
    }
}
$rows = New-ApList
$index = 0
foreach ($read in $Data.reads) {
    $collection = $found[$index]
    $cis = New-Object -TypeName 'System.Collections.Generic.HashSet[int]'
    foreach ($name in $read.update_groups) {
        foreach ($ci in $groups[[string]$name]) { $null = $cis.Add([int]$ci) }
    }
    foreach ($device in Get-CMDevice -CollectionId $collection.CollectionID) {
        $id = [int]$device.ResourceID
        $count = 0
        $pending = $false
        foreach ($ci in $cis) {
            if ($required[$ci].Contains($id)) {
                $count = $count + 1
            } elseif ($restart[$ci].Contains($id)) {
                $pending = $true
            }
        }
        $rows.Add([ordered]@{
            read                 = $index
            collection           = [string]$collection.Name
            device               = [string]$device.Name
            resource_id          = $id
            is_client            = [bool]$device.IsClient
            client_active_status = [int]$device.ClientActiveStatus
            last_policy_request  = Format-ApTime $device.LastPolicyRequest
            required             = $count
            reboot_pending       = $pending
        })
    }
    $index = $index + 1
}
Write-ApAnswer ([ordered]@{ devices = $rows.ToArray() })
`

const forceWaveScript = `param($Data)` + prelude + `
# In:  collection: string, devices: [{name, resource_id (0 = look up by name)}],
#      deployments: [{name, update_group}], at (RFC 3339 UTC)
# Out: {members: [{name, resource_id}], unknown: [string], removed: n,
#       deployments: [{name, id, existed, was_enabled}]}
# One wave of forced remediation in one call: the collection's direct members
# become exactly the wave's devices (the previous wave's leave), each update
# group gets a required deployment to the collection, available and due at
# 'at', with restarts allowed, and enabled; then the members are asked to
# fetch machine policy now. A retry finds everything in place and changes
# nothing: no rule is added or removed twice, no deployment enabled twice.

# Validate everything first: a refusal changes nothing.
$collectionName = [string]$Data.collection
$collection = Find-ApCollection -Name $collectionName
if ($null -eq $collection) {
    throw ("No device collection named '" + $collectionName + "' exists on site " + $SiteCode + ".")
}
# Default collections (IDs SMS...) take no direct membership rules; the
# collection a rule targets must have an ID that starts with a site code:
# https://learn.microsoft.com/en-us/powershell/module/configurationmanager/add-cmdevicecollectiondirectmembershiprule?view=sccm-ps
# https://learn.microsoft.com/en-us/powershell/module/configurationmanager/remove-cmdevicecollectiondirectmembershiprule?view=sccm-ps
if ([string]$collection.CollectionID -like 'SMS*') {
    throw ("The device collection '" + $collectionName + "' (" + [string]$collection.CollectionID + ") is a default collection: it takes no direct membership rules, so it cannot hold a forced wave.")
}
if (@($Data.deployments).Count -lt 1) {
    throw ("The wave names no deployment: nothing would be forced on '" + $collectionName + "'.")
}
$seen = New-Object -TypeName 'System.Collections.Generic.HashSet[string]'
$groups = New-ApMap
foreach ($spec in $Data.deployments) {
    $name = [string]$spec.name
    if ($name.Length -lt 1 -or $name.Length -gt 256) {
        throw ("The deployment name '" + $name + "' is " + $name.Length + " characters long; SCCM allows 1 to 256.")
    }
    if (-not $seen.Add($name)) {
        throw ("The deployment name '" + $name + "' appears more than once in this request.")
    }
    $groupName = [string]$spec.update_group
    if (-not $groups.ContainsKey($groupName)) {
        $group = Find-ApUpdateGroup -Name $groupName
        if ($null -eq $group) {
            throw ("No software update group named '" + $groupName + "' exists on site " + $SiteCode + ".")
        }
        $groups[$groupName] = $group
    }
    $existing = Find-ApDeployment -Name $name
    if ($null -ne $existing) {
        if ($existing.TargetCollectionID -ne $collection.CollectionID -or
            $existing.AssignedUpdateGroup -ne $groups[$groupName].CI_ID) {
            throw ("A deployment named '" + $name + "' already exists on site " + $SiteCode + " for another collection or update group.")
        }
    }
}
$at = ConvertTo-ApUtc $Data.at

# Resolve the devices (read only). A device named twice is one member.
$members = New-ApList
$unknown = New-ApList
$wanted = New-Object -TypeName 'System.Collections.Generic.HashSet[int]'
$order = New-Object -TypeName 'System.Collections.Generic.List[int]'
foreach ($entry in $Data.devices) {
    $resourceId = [int]$entry.resource_id
    if ($resourceId -gt 0) {
        $device = Get-CMDevice -ResourceId $resourceId -Fast
    } else {
        $device = Find-ApDevice -Name ([string]$entry.name)
    }
    if ($null -eq $device) {
        $unknown.Add([string]$entry.name)
        continue
    }
    $resourceId = [int]$device.ResourceID
    if (-not $wanted.Add($resourceId)) { continue }
    $order.Add($resourceId)
    $members.Add([ordered]@{ name = [string]$entry.name; resource_id = $resourceId })
}

# Membership, batched: read the direct rules once, remove the stale ones in
# one call and add the missing ones in one call (both cmdlets take arrays:
# -ResourceId String[] on Remove-, Int32[] on Add-), then have the site
# evaluate the collection's membership now rather than on its schedule.
# https://learn.microsoft.com/en-us/powershell/module/configurationmanager/get-cmdevicecollectiondirectmembershiprule?view=sccm-ps
# https://learn.microsoft.com/en-us/powershell/module/configurationmanager/invoke-cmcollectionupdate?view=sccm-ps
$present = New-Object -TypeName 'System.Collections.Generic.HashSet[int]'
$stale = New-Object -TypeName 'System.Collections.Generic.List[string]'
foreach ($rule in Get-CMDeviceCollectionDirectMembershipRule -CollectionId $collection.CollectionID) {
    $ruleId = [int]$rule.ResourceID
    if (-not $present.Add($ruleId)) { continue }
    if (-not $wanted.Contains($ruleId)) {
        $stale.Add($ruleId.ToString([Globalization.CultureInfo]::InvariantCulture))
    }
}
$missing = New-Object -TypeName 'System.Collections.Generic.List[int]'
foreach ($id in $order) {
    if (-not $present.Contains($id)) { $missing.Add($id) }
}
if ($stale.Count -gt 0) {
    $staleIds = $stale.ToArray()
    Remove-CMDeviceCollectionDirectMembershipRule -CollectionId $collection.CollectionID -ResourceId $staleIds -Force
}
if ($missing.Count -gt 0) {
    $missingIds = $missing.ToArray()
    Add-CMDeviceCollectionDirectMembershipRule -CollectionId $collection.CollectionID -ResourceId $missingIds
}
$null = Invoke-CMCollectionUpdate -CollectionId $collection.CollectionID

# Deployments: found by name or created (required, available and due at
# 'at', installation and restart allowed outside maintenance windows), then
# enabled unless they already are, and read back.
$results = New-ApList
foreach ($spec in $Data.deployments) {
    $name = [string]$spec.name
    $deployment = Find-ApDeployment -Name $name
    $existed = $null -ne $deployment
    $was = $existed -and [bool]$deployment.Enabled
    if (-not $existed) {
        # https://learn.microsoft.com/en-us/powershell/module/configurationmanager/new-cmsoftwareupdatedeployment?view=sccm-ps
        $params = @{
            DeploymentName          = $name
            SoftwareUpdateGroupName = [string]$spec.update_group
            CollectionId            = [string]$collection.CollectionID
            DeploymentType          = 'Required'
            AvailableDateTime       = $at
            DeadlineDateTime        = $at
            TimeBasedOn             = 'Utc'
            SoftwareInstallation    = $true
            AllowRestart            = $true
            UserNotification        = 'DisplaySoftwareCenterOnly'
            VerbosityLevel          = 'AllMessages'
            AcceptEula              = $true
            DisableWildcardHandling = $true
        }
        # Its output is documented only as System.Object: the deployment is
        # read back by its deterministic name instead.
        $null = New-CMSoftwareUpdateDeployment @params
        $deployment = Find-ApDeployment -Name $name
        if ($null -eq $deployment) {
            throw ("The deployment '" + $name + "' was not found on site " + $SiteCode + " after it was created.")
        }
    }
    # Only a change is written, so a retry enables nothing twice. Forcing
    # means restarting: the Set- page documents -RestartServer and
    # -RestartWorkstation $true as "suppress the restart", so both are $false.
    # https://learn.microsoft.com/en-us/powershell/module/configurationmanager/set-cmsoftwareupdatedeployment?view=sccm-ps
    if (-not $was) {
        Set-CMSoftwareUpdateDeployment -InputObject $deployment -Enable $true -RestartServer $false -RestartWorkstation $false
    }

    # Read back: the outcome is checked, not assumed.
    # https://learn.microsoft.com/en-us/mem/configmgr/develop/reference/sum/sms_updatesassignment-server-wmi-class
    $deployment = Find-ApDeployment -Name $name
    if ($null -eq $deployment) {
        throw ("The deployment '" + $name + "' disappeared from site " + $SiteCode + " while it was being configured.")
    }
    if (-not [bool]$deployment.Enabled) {
        throw ("The deployment '" + $name + "' is still disabled after it was enabled: the wave would install nothing.")
    }
    if (([int]$deployment.SuppressReboot -band 3) -ne 0) {
        throw ("The deployment '" + $name + "' has SuppressReboot " + [int]$deployment.SuppressReboot + "; a forced wave needs 0 (restarts allowed).")
    }
    $results.Add([ordered]@{
        name        = $name
        id          = [int]$deployment.AssignmentID
        existed     = $existed
        was_enabled = $was
    })
}

# Ask the members for machine policy now, as the set_enabled template does
# (see it for the -ActionType citations).
# https://learn.microsoft.com/en-us/powershell/module/configurationmanager/invoke-cmclientaction?view=sccm-ps
$null = Invoke-CMClientAction -CollectionId $collection.CollectionID -ActionType ClientNotificationRequestMachinePolicyNow

Write-ApAnswer ([ordered]@{
    members     = $members.ToArray()
    unknown     = $unknown.ToArray()
    removed     = $stale.Count
    deployments = $results.ToArray()
})
`

// Templates returns every script the SCCM connector can run, in a fixed order.
// The simulator accepts exactly these texts and nothing else.
func Templates() []winrm.Template {
	return []winrm.Template{
		{Name: ResolveDevicesTemplate, Script: resolveDevicesScript},
		{Name: SetMembershipTemplate, Script: setMembershipScript},
		{Name: CreateDeploymentsTemplate, Script: createDeploymentsScript},
		{Name: SetEnabledTemplate, Script: setEnabledScript},
		{Name: RefreshPolicyTemplate, Script: refreshPolicyScript},
		{Name: DeleteDeploymentsTemplate, Script: deleteDeploymentsScript},
		{Name: DeploymentStatusTemplate, Script: deploymentStatusScript},
		{Name: MaintenanceWindowsTemplate, Script: maintenanceWindowsScript},
		{Name: DeviceStateTemplate, Script: deviceStateScript},
		{Name: ForceWaveTemplate, Script: forceWaveScript},
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
	panic("sccm: no template " + name) // a typo in this package, caught by every test
}
