package sccm

import (
	"context"
	"strings"
)

// DoctorTemplate is the read-only check of `autopatch doctor` (docs/architecture.md
// §9.6). It lives apart from templates.go so that the doctor changes nothing
// the jobs run.
const DoctorTemplate = "sccm.doctor"

// doctorScript checks, in one call (a powershell.exe start and the module
// import take seconds): the ConfigurationManager module, the CMSite drive,
// each named collection (that it exists, is a device collection, and how many
// maintenance windows of its own it has) and each named software update group.
// Unlike the other templates it does not use the prelude: a failed module
// import or site drive is reported in the answer rather than thrown, so the
// administrator learns which step failed. It only reads.
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

# In:  site_code, collections: [string], update_groups: [string]
# Out: {module: {ok, error}, site: {ok, code, error},
#       collections: [{name, found, collection_type, service_windows}],
#       update_groups: [{name, found}]}
$collections = New-ApList
$groups = New-ApList
$answer = [ordered]@{
    module        = [ordered]@{ ok = $false; error = '' }
    site          = [ordered]@{ ok = $false; code = ''; error = '' }
    collections   = $collections
    update_groups = $groups
}

try {
    # The module ships with the console; SMS_ADMIN_UI_PATH points at its bin\i386 folder.
    if ($null -eq (Get-Module -Name ConfigurationManager)) {
        if ([string]::IsNullOrEmpty($env:SMS_ADMIN_UI_PATH)) {
            throw 'SMS_ADMIN_UI_PATH is not set: the Configuration Manager console is not installed on this host.'
        }
        $modulePath = Join-Path -Path (Split-Path -Path $env:SMS_ADMIN_UI_PATH -Parent) -ChildPath 'ConfigurationManager.psd1'
        Import-Module -Name $modulePath
    }
    $answer.module.ok = $true
} catch {
    $answer.module.error = [string]$_.Exception.Message
}

if ($answer.module.ok) {
    try {
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
        $answer.site.ok = $true
        $answer.site.code = $SiteCode
    } catch {
        $answer.site.error = [string]$_.Exception.Message
    }
}

if ($answer.site.ok) {
    foreach ($item in $Data.collections) {
        $name = [string]$item
        # The device collection is looked up as Find-ApCollection in the other
        # templates looks it up; only when there is none is a user collection
        # of that name looked for, so it is told apart from a missing one.
        # Names are compared exactly, as the other templates compare them.
        # https://learn.microsoft.com/en-us/powershell/module/configurationmanager/get-cmcollection?view=sccm-ps
        $found = Get-CMCollection -CollectionType Device -Name $name -DisableWildcardHandling |
            Where-Object { $_.Name -ceq $name } |
            Select-Object -First 1
        if ($null -eq $found) {
            $found = Get-CMCollection -CollectionType User -Name $name -DisableWildcardHandling |
                Where-Object { $_.Name -ceq $name } |
                Select-Object -First 1
        }
        if ($null -eq $found) {
            $collections.Add([ordered]@{ name = $name; found = $false; collection_type = 0; service_windows = 0 })
            continue
        }
        # SMS_Collection.CollectionType: 1 user, 2 device.
        $collections.Add([ordered]@{
            name            = $name
            found           = $true
            collection_type = [int]$found.CollectionType
            service_windows = [int]$found.ServiceWindowsCount
        })
    }

    foreach ($item in $Data.update_groups) {
        $name = [string]$item
        $found = Get-CMSoftwareUpdateGroup -Name $name -DisableWildcardHandling |
            Where-Object { $_.LocalizedDisplayName -ceq $name } |
            Select-Object -First 1
        $groups.Add([ordered]@{ name = $name; found = ($null -ne $found) })
    }
}

Write-ApAnswer ($answer)
`

// collectionTypeUser is SMS_Collection.CollectionType of a user collection (2 is device).
const (
	collectionTypeUser = 1
)

// DoctorReport is what the site said to Doctor.
type DoctorReport struct {
	// ModuleError is why the ConfigurationManager module did not load; empty
	// when it did. Nothing after it was checked when it is set.
	ModuleError string
	// SiteCode is the CMSite drive used; SiteError why none could be used
	// (then no collection or update group was checked).
	SiteCode  string
	SiteError string
	// Collections and UpdateGroups answer the names asked for, in order.
	Collections  []CollectionCheck
	UpdateGroups []UpdateGroupCheck
}

// CollectionCheck is one collection as the site knows it.
type CollectionCheck struct {
	Name  string
	Found bool
	// UserCollection is true when the name is a user collection, not a
	// device collection: deployments and direct rules by ResourceId need a
	// device collection.
	UserCollection bool
	// MaintenanceWindows is SMS_Collection.ServiceWindowsCount.
	MaintenanceWindows int
}

// UpdateGroupCheck is one software update group as the site knows it.
type UpdateGroupCheck struct {
	Name  string
	Found bool
}

type doctorRequest struct {
	SiteCode     string   `json:"site_code"`
	Collections  []string `json:"collections"`
	UpdateGroups []string `json:"update_groups"`
}

type doctorAnswer struct {
	Module struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	} `json:"module"`
	Site struct {
		OK    bool   `json:"ok"`
		Code  string `json:"code"`
		Error string `json:"error"`
	} `json:"site"`
	Collections []struct {
		Name           string `json:"name"`
		Found          bool   `json:"found"`
		CollectionType int    `json:"collection_type"`
		ServiceWindows int    `json:"service_windows"`
	} `json:"collections"`
	UpdateGroups []struct {
		Name  string `json:"name"`
		Found bool   `json:"found"`
	} `json:"update_groups"`
}

// Doctor runs the read-only checks of `autopatch doctor` in one call. An
// error means the call itself failed (unreachable, refused credentials, a
// script error); what the site lacks is in the report.
func (c *Client) Doctor(ctx context.Context, collections, updateGroups []string) (DoctorReport, error) {
	var ans doctorAnswer
	if err := c.run(ctx, "doctor", DoctorTemplate, doctorRequest{
		SiteCode: c.siteCode, Collections: nonNil(collections), UpdateGroups: nonNil(updateGroups),
	}, &ans); err != nil {
		return DoctorReport{}, err
	}
	rep := DoctorReport{SiteCode: ans.Site.Code}
	if !ans.Module.OK {
		rep.ModuleError = nonEmpty(ans.Module.Error, "the module did not load")
		return rep, nil
	}
	if !ans.Site.OK {
		rep.SiteError = nonEmpty(ans.Site.Error, "no CMSite drive")
		return rep, nil
	}
	for _, col := range ans.Collections {
		rep.Collections = append(rep.Collections, CollectionCheck{
			Name: col.Name, Found: col.Found,
			UserCollection:     col.Found && col.CollectionType == collectionTypeUser,
			MaintenanceWindows: col.ServiceWindows,
		})
	}
	for _, g := range ans.UpdateGroups {
		rep.UpdateGroups = append(rep.UpdateGroups, UpdateGroupCheck(g))
	}
	return rep, nil
}

func nonEmpty(s, fallback string) string {
	if strings.TrimSpace(s) == "" {
		return fallback
	}
	return s
}
