package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/internal/estate"
)

// doctorBundle is a simulated estate and the settings that point doctor at it.
type doctorBundle struct {
	estate *estate.Estate
	env    map[string]string
}

// doctorSchedules are the schedules (and so the collections) of every doctor test.
var doctorSchedules = []string{"Patch - DB - Sat 02:00", "Patch - Web - 3rd Sun"}

const doctorUpdateGroup = "2026-12 Servers"

// setupDoctor starts a simulated estate in-process, as `autopatch sim` does,
// whose site has the collections of doctorSchedules that are in present and the
// update group doctorUpdateGroup, and returns serve's settings for it plus
// the schedules file.
func setupDoctor(t *testing.T, seed estate.Seed, present []string) *doctorBundle {
	t.Helper()
	seed.UpdateGroups = append(seed.UpdateGroups, doctorUpdateGroup)
	e, err := estate.Start(t.Context(), estate.Options{Seed: seed, ScheduleCollections: present})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })

	var b strings.Builder
	b.WriteString("schedules:\n")
	for i, c := range doctorSchedules {
		fmt.Fprintf(&b, "  - name: S%d\n    collection: %q\n    windows: [{start: \"2026-12-20T22:00:00Z\", end: \"2026-12-21T02:00:00Z\"}]\n", i+1, c)
	}
	path := filepath.Join(t.TempDir(), "schedules.yaml")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))

	env := map[string]string{
		"AUTOPATCH_SCHEDULES_FILE": path,
		// doctor never opens the database; serve's validation wants the setting.
		"AUTOPATCH_DATABASE_URL": "postgres://autopatch@localhost/autopatch",
	}
	for _, line := range e.Env() {
		k, v, _ := strings.Cut(line, "=")
		env[k] = v
	}
	return &doctorBundle{estate: e, env: env}
}

// setupHealthy is an estate where every check passes.
func setupHealthy(t *testing.T) *doctorBundle {
	return setupDoctor(t, estate.Seed{}, doctorSchedules)
}

// run runs doctor with the bundle's settings and returns its exit code and output.
func (b *doctorBundle) run(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := doctorMain(t.Context(), args, func(k string) string { return b.env[k] }, &stdout, &stderr)
	require.Empty(t, stderr.String())
	out := stdout.String()
	for _, secret := range []string{"AUTOPATCH_SCCM_PASSWORD", "AUTOPATCH_SCOM_PASSWORD", "AUTOPATCH_SERVICENOW_PASSWORD"} {
		if v := b.env[secret]; v != "" {
			require.NotContains(t, out, v, "a secret reached the output")
		}
	}
	return code, out
}

// line returns the output line of the named check ("FAIL  sccm.winrm: …").
func line(t *testing.T, out, name string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if len(l) > 6 && strings.HasPrefix(l[6:], name+": ") {
			return l
		}
	}
	t.Fatalf("no line for check %q in:\n%s", name, out)
	return ""
}

func TestDoctorPassesAgainstSim(t *testing.T) {
	t.Parallel()
	b := setupHealthy(t)

	code, out := b.run(t, "--update-group", doctorUpdateGroup)
	require.Equal(t, 0, code, out)
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, "autopatch doctor:") {
			require.Equal(t, "autopatch doctor: 25 ok, 0 warn, 0 FAIL", l)
			continue
		}
		require.True(t, strings.HasPrefix(l, "ok    "), l)
	}
	for _, name := range []string{
		"config", "schedules", "sccm.winrm", "sccm.module", "sccm.site_drive",
		`sccm.collection "Patch - DB - Sat 02:00"`, `sccm.collection "Patch - Web - 3rd Sun"`,
		"sccm.maintenance_windows", `sccm.update_group "2026-12 Servers"`,
		"scom.winrm", "scom.event_source", "scom.module", "scom.connection", "scom.management_pack",
		"scom.rule Autopatch.Alerts.Rule.Critical", "scom.rule Autopatch.Alerts.Rule.Warning",
		"scom.rule Autopatch.Alerts.Rule.Information", "scom.class",
		"servicenow.read change_request", "servicenow.read sc_req_item", "servicenow.read incident", "servicenow.read sys_journal_field",
		"servicenow.write change_request", "servicenow.write sc_req_item", "servicenow.write incident",
	} {
		line(t, out, name)
	}
	require.Contains(t, line(t, out, "servicenow.write incident"), "role check only")

	// One WinRM call per system: the SCCM checks are one batch.
	calls := b.estate.SCCM().CallsByTemplate()
	require.Equal(t, map[string]int{"sccm.doctor": 1}, calls)

	// The setting adds to the flag; JSON carries the same checks.
	b.env["AUTOPATCH_DOCTOR_UPDATE_GROUPS"] = doctorUpdateGroup + ", "
	code, out = b.run(t, "--format", "json")
	require.Equal(t, 0, code, out)
	var rep doctorReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.True(t, rep.OK)
	require.Len(t, rep.Checks, 25)
}

func TestDoctorFailures(t *testing.T) {
	t.Parallel()

	// Each case breaks one thing and expects its line: status, what was
	// found, and the fix.
	for _, tc := range []struct {
		name     string
		seed     estate.Seed
		present  []string // schedule collections that exist; nil means all
		breakIt  func(t *testing.T, b *doctorBundle)
		args     []string
		check    string
		want     []string // substrings of the check's line
		wantCode int
	}{
		{
			name:  "WrongSCCMPassword",
			check: "sccm.winrm",
			breakIt: func(_ *testing.T, b *doctorBundle) {
				b.env["AUTOPATCH_SCCM_PASSWORD"] = "not-the-password"
			},
			want: []string{"FAIL", "credentials refused (HTTP 401", "fix: AUTOPATCH_SCCM_USER / _PASSWORD are wrong"},
		},
		{
			name:    "MissingCollection",
			present: doctorSchedules[:1],
			check:   `sccm.collection "Patch - Web - 3rd Sun"`,
			want:    []string{"FAIL", "not found (schedule S2)", "fix: create the device collection"},
		},
		{
			name:  "MissingUpdateGroup",
			args:  []string{"--update-group", doctorUpdateGroup, "--update-group", "2027-01 Servers"},
			check: `sccm.update_group "2027-01 Servers"`,
			want:  []string{"FAIL", "not found", "fix: create the group"},
		},
		{
			name:     "CollectionWithMaintenanceWindows",
			seed:     estate.Seed{Collections: []estate.SeedCollection{{Name: doctorSchedules[0], MaintenanceWindows: 2}}},
			check:    `sccm.maintenance_windows "Patch - DB - Sat 02:00"`,
			want:     []string{"warn", "has 2 maintenance window(s) of its own", "fix: delete them"},
			wantCode: 0,
		},
		{
			name:  "UnreachableSCCM",
			check: "sccm.winrm",
			breakIt: func(t *testing.T, b *doctorBundle) {
				b.env["AUTOPATCH_SCCM_ENDPOINT"] = "https://" + closedPort(t) + "/wsman"
			},
			want: []string{"FAIL", "connection refused", "fix: no WinRM listener on that host and port"},
		},
		{
			name:  "UntrustedCertificate",
			check: "scom.winrm",
			breakIt: func(_ *testing.T, b *doctorBundle) {
				delete(b.env, "AUTOPATCH_SCOM_CA_FILE")
			},
			want: []string{"FAIL", "TLS certificate not trusted", "fix: set AUTOPATCH_SCOM_CA_FILE"},
		},
		{
			name:  "MissingManagementPack",
			check: "scom.management_pack",
			breakIt: func(_ *testing.T, b *doctorBundle) {
				b.estate.SCOM().RemoveManagementPack()
			},
			want: []string{"FAIL", "Autopatch.Alerts is not imported", "fix: import integrations/scom/Autopatch.Alerts.xml"},
		},
		{
			// 1.0.0.0 is the SDK-route pack: its rules never see the events.
			name:  "OlderManagementPack",
			check: "scom.management_pack",
			breakIt: func(_ *testing.T, b *doctorBundle) {
				b.estate.SCOM().SetManagementPackVersion("1.0.0.0")
			},
			want: []string{"FAIL", "Autopatch.Alerts 1.0.0.0 is imported; this autopatch needs 1.1.0.0", "SDK event provider",
				"fix: import integrations/scom/Autopatch.Alerts.xml"},
		},
		{
			name:  "NewerManagementPack",
			check: "scom.management_pack",
			breakIt: func(_ *testing.T, b *doctorBundle) {
				b.estate.SCOM().SetManagementPackVersion("1.10.0.0")
			},
			want:     []string{"warn", "Autopatch.Alerts 1.10.0.0 is imported; this autopatch ships 1.1.0.0"},
			wantCode: 0,
		},
		{
			name:  "EventSourceNotRegistered",
			check: "scom.event_source",
			breakIt: func(_ *testing.T, b *doctorBundle) {
				b.estate.SCOM().SetEventSource(false)
			},
			want: []string{"FAIL", "the event source autopatch is not registered on the management server",
				"fix: run once as an administrator on the management server: New-EventLog -LogName Application -Source autopatch"},
		},
		{
			name:  "RuleDisabled",
			check: "scom.rule Autopatch.Alerts.Rule.Warning",
			breakIt: func(t *testing.T, b *doctorBundle) {
				require.NoError(t, b.estate.SCOM().SetRuleEnabled("Autopatch.Alerts.Rule.Warning", false))
			},
			want: []string{"FAIL", "disabled in the imported management pack", "fix: import"},
		},
		{
			name:  "ServiceNowReadDenied",
			check: "servicenow.read sc_req_item",
			breakIt: func(_ *testing.T, b *doctorBundle) {
				b.estate.ServiceNow().DenyRead("sc_req_item")
			},
			want: []string{"FAIL", "read denied (HTTP 403)", "User Not Authorized", "User is unauthorized to access table: sc_req_item",
				"fix: grant the integration user a role that reads the table"},
		},
		{
			name:  "ServiceNowWriteRoleMissing",
			check: "servicenow.write change_request",
			breakIt: func(_ *testing.T, b *doctorBundle) {
				b.estate.ServiceNow().SetRoles("snc_read_only", "sn_incident_write")
			},
			want: []string{"FAIL", "user has none of admin, itil, sn_change_write", "role check only",
				"fix: grant autopatch.integration."},
		},
		{
			name:  "ServiceNowRolesUnreadable",
			check: "servicenow.write",
			breakIt: func(_ *testing.T, b *doctorBundle) {
				b.estate.ServiceNow().DenyRead("sys_user_has_role")
			},
			want:     []string{"warn", "write access unknown", "HTTP 403", "fix: have a ServiceNow admin confirm"},
			wantCode: 0,
		},
		{
			name:  "WrongServiceNowPassword",
			check: "servicenow.read change_request",
			breakIt: func(_ *testing.T, b *doctorBundle) {
				b.env["AUTOPATCH_SERVICENOW_PASSWORD"] = "not-the-password"
			},
			want: []string{"FAIL", "credentials refused (HTTP 401)", "fix: check AUTOPATCH_SERVICENOW_USER / _PASSWORD"},
		},
		{
			name:  "UnreachableServiceNow",
			check: "servicenow.read change_request",
			breakIt: func(t *testing.T, b *doctorBundle) {
				b.env["AUTOPATCH_SERVICENOW_URL"] = "http://" + closedPort(t)
			},
			want: []string{"FAIL", "connection refused", "fix: check AUTOPATCH_SERVICENOW_URL"},
		},
		{
			name:  "MissingSetting",
			check: "config",
			breakIt: func(_ *testing.T, b *doctorBundle) {
				delete(b.env, "AUTOPATCH_API_TOKEN")
			},
			want: []string{"FAIL", "AUTOPATCH_API_TOKEN is required", "fix: set it in the environment"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			present := tc.present
			if present == nil {
				present = doctorSchedules
			}
			b := setupDoctor(t, tc.seed, present)
			if tc.breakIt != nil {
				tc.breakIt(t, b)
			}
			args := tc.args
			if args == nil {
				args = []string{"--update-group", doctorUpdateGroup}
			}
			code, out := b.run(t, args...)
			l := line(t, out, tc.check)
			for _, w := range tc.want {
				require.Contains(t, l, w)
			}
			if tc.want[0] == "FAIL" {
				require.Equal(t, 1, code, out)
			} else {
				require.Equal(t, tc.wantCode, code, out)
			}
		})
	}
}

func TestDoctorUsage(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	getenv := func(string) string { return "" }
	require.Equal(t, 2, doctorMain(t.Context(), []string{"--format", "yaml"}, getenv, &stdout, &stderr))
	require.Equal(t, 2, doctorMain(t.Context(), []string{"extra"}, getenv, &stdout, &stderr))

	// Nothing configured: every missing setting is named, nothing is dialled.
	stdout.Reset()
	require.Equal(t, 1, doctorMain(t.Context(), nil, getenv, &stdout, &stderr))
	require.Contains(t, stdout.String(), "FAIL  config: AUTOPATCH_SCCM_ENDPOINT is required")
	require.Contains(t, stdout.String(), "FAIL  sccm: not checked")
}

// closedPort returns a loopback host:port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}
