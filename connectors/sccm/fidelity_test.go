package sccm_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/connectors/sccm/sccmsim"
	"github.com/autopatch/autopatch/connectors/winrm"
)

// TestSimulatorRefusesUndocumentedCalls sends deliberately wrong templates
// through the real client (masterzen/winrm → wsmansim → sccmsim) and expects
// the refusal a real site server prints: the simulator checks every script
// against cmdlets.yaml before it runs anything.
func TestSimulatorRefusesUndocumentedCalls(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.seed(t, []string{"Patch A"}, []string{"2026-12 Servers"}, nil)
	refresh := sccm.Templates()[4]
	require.Equal(t, sccm.RefreshPolicyTemplate, refresh.Name)
	const find = "Get-CMCollection -CollectionType Device -Name $Name -DisableWildcardHandling |"
	const invoke = "Invoke-CMClientAction -CollectionId $collection.CollectionID -ActionType ClientNotificationRequestMachinePolicyNow"
	require.Contains(t, refresh.Script, find)
	require.Contains(t, refresh.Script, invoke)

	tests := []struct {
		name   string
		script string
		want   string
		id     string
	}{
		{
			// The look-up as it was before issue #12 (defect 1).
			name:   "UndocumentedParameter",
			script: strings.Replace(refresh.Script, find, "Get-CMDeviceCollection -Name $Name -DisableWildcardHandling |", 1),
			want:   "A parameter cannot be found that matches parameter name 'DisableWildcardHandling'.",
			id:     "NamedParameterNotFound",
		},
		{
			name:   "UnknownCmdlet",
			script: strings.Replace(refresh.Script, invoke, "Invoke-CMClientNotification -CollectionId $collection.CollectionID", 1),
			want: "The term 'Invoke-CMClientNotification' is not recognized as the name of a cmdlet, function, script file, " +
				"or operable program. Check the spelling of the name, or if a path was included, verify that the path is correct and try again.",
			id: "CommandNotFoundException",
		},
		{
			name:   "ValueOutsideTheDocumentedSet",
			script: strings.Replace(refresh.Script, invoke, "Invoke-CMClientAction -CollectionId $collection.CollectionID -ActionType ClientNotificationRequestMachinePolicyLater", 1),
			want:   `Cannot bind parameter 'ActionType'. Cannot convert value "ClientNotificationRequestMachinePolicyLater" to type "ClientActionType".`,
			id:     "CannotConvertArgumentNoMessage",
		},
		{
			name:   "NoSingleParameterSet",
			script: strings.Replace(refresh.Script, invoke, invoke+" -CollectionName 'Patch A'", 1),
			want:   "Parameter set cannot be resolved using the specified named parameters.",
			id:     "AmbiguousParameterSet",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := b.site.State()
			var out map[string]any
			err := b.winrm.Run(t.Context(), winrm.Template{Name: "wrong", Script: tt.script},
				map[string]any{"collections": []string{"Patch A"}}, &out)
			var se *winrm.ScriptError
			require.True(t, errors.As(err, &se), "%v", err)
			require.Equal(t, 1, se.ExitCode)
			require.True(t, strings.HasPrefix(se.Stderr, tt.want), "stderr: %s", se.Stderr)
			require.Contains(t, se.Stderr, "FullyQualifiedErrorId : "+tt.id)
			require.Contains(t, se.Stderr, "At line:")
			require.Equal(t, before, b.site.State(), "nothing ran")
		})
	}
}

// TestCreateDeploymentsReadBack shows the create template failing loudly when
// the site does not end up as asked (issue #12, defects 2, 3 and 4): the
// simulator plays a module that ignores a parameter, and the template's
// read-back throws.
func TestCreateDeploymentsReadBack(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 13, 2, 0, 0, 0, time.UTC)
	manual := sccm.DeploymentSpec{Name: "AP-CHG1-A-Servers", Collection: "Patch A", UpdateGroup: "2026-12 Servers",
		Available: start, Deadline: start.Add(time.Hour), SuppressRestart: true}

	tests := []struct {
		name   string
		faults sccmsim.Faults
		twice  bool // create once, then again with a new deadline
		want   string
		check  func(t *testing.T, st sccmsim.DeploymentState)
	}{
		{
			name: "CreateLost", faults: sccmsim.Faults{CreateLost: true},
			want: "The deployment 'AP-CHG1-A-Servers' was not found on site PS1 after it was created.",
		},
		{
			name: "StillEnabled", faults: sccmsim.Faults{DisableIgnored: true},
			want: "The deployment 'AP-CHG1-A-Servers' is still enabled after it was disabled: it must not run before its window.",
			check: func(t *testing.T, st sccmsim.DeploymentState) {
				require.True(t, st.Enabled, "the site really left it enabled; the error says so")
			},
		},
		{
			name: "RestartNotSuppressed", faults: sccmsim.Faults{RestartFlagsIgnored: true},
			want: "The deployment 'AP-CHG1-A-Servers' has SuppressReboot 0; the schedule needs 3.",
			check: func(t *testing.T, st sccmsim.DeploymentState) {
				require.False(t, st.Enabled)
				require.Zero(t, st.SuppressReboot)
			},
		},
		{
			name: "DeadlineNotMoved", faults: sccmsim.Faults{DeadlineIgnored: true}, twice: true,
			want: "The deployment 'AP-CHG1-A-Servers' has deadline 2026-12-13T03:00:00.0000000Z; the change needs 2026-12-13T05:00:00.0000000Z.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOpts{faults: tt.faults})
			b.seed(t, []string{"Patch A"}, []string{"2026-12 Servers"}, nil)
			specs := []sccm.DeploymentSpec{manual}
			if tt.twice {
				_, err := b.client.CreateDeployments(t.Context(), specs)
				require.NoError(t, err)
				specs[0].Deadline = start.Add(3 * time.Hour)
			}
			_, err := b.client.CreateDeployments(t.Context(), specs)
			requireRefusal(t, err, sccm.CreateDeploymentsTemplate, tt.want)
			if tt.check != nil {
				tt.check(t, b.deployment(t, manual.Name))
			}
		})
	}

	t.Run("WellBehavedSite", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		b.seed(t, []string{"Patch A"}, []string{"2026-12 Servers"}, nil)
		_, err := b.client.CreateDeployments(t.Context(), []sccm.DeploymentSpec{manual})
		require.NoError(t, err)
		moved := manual
		moved.Deadline = start.Add(3 * time.Hour)
		moved.SuppressRestart = false
		got, err := b.client.CreateDeployments(t.Context(), []sccm.DeploymentSpec{moved})
		require.NoError(t, err)
		require.True(t, got[0].Existed)
		st := b.deployment(t, manual.Name)
		require.True(t, moved.Deadline.Equal(st.Deadline), "the deadline moved")
		require.Zero(t, st.SuppressReboot, "automatic: no restart suppressed")
		require.False(t, st.Enabled)
	})
}
