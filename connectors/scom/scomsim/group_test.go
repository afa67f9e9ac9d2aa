package scomsim_test

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/scom"
	"github.com/autopatch/autopatch/connectors/scom/scomsim"
)

// run calls the named template the way wsmansim would, bypassing WinRM:
// the wire is covered by connectors/scom's tests.
func run(t *testing.T, g *scomsim.Group, name string, data any) ([]byte, string, int) {
	t.Helper()
	for _, tmpl := range scom.Templates() {
		if tmpl.Name == name {
			b, err := json.Marshal(data)
			require.NoError(t, err)
			return g.Run(t.Context(), tmpl.Script, b)
		}
	}
	t.Fatalf("no template %s", name)
	return nil, "", 0
}

// TestAlertsLookLikeTheManagementPacksAlerts ties the simulated rule to the
// management pack: alert name, rule ids, severity and priority.
func TestAlertsLookLikeTheManagementPacksAlerts(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../../integrations/scom/Autopatch.Alerts.xml")
	require.NoError(t, err)
	var pack struct {
		Rules []struct {
			ID       string `xml:"ID,attr"`
			Severity int    `xml:"WriteActions>WriteAction>Severity"`
			Priority int    `xml:"WriteActions>WriteAction>Priority"`
			Message  string `xml:"WriteActions>WriteAction>AlertMessageId"`
		} `xml:"Monitoring>Rules>Rule"`
		DisplayStrings []struct {
			ElementID string `xml:"ElementID,attr"`
			Name      string `xml:"Name"`
		} `xml:"LanguagePacks>LanguagePack>DisplayStrings>DisplayString"`
	}
	require.NoError(t, xml.Unmarshal(raw, &pack))
	names := map[string]string{}
	for _, d := range pack.DisplayStrings {
		names[d.ElementID] = d.Name
	}

	clk := time.Date(2026, 12, 13, 3, 0, 0, 0, time.UTC)
	g := scomsim.New(scomsim.Options{Now: func() time.Time { return clk }})
	require.NoError(t, g.AddComputer("SQL01.corp.example", "SQL01"))
	var alerts []map[string]string
	for _, sev := range []string{"critical", "warning", "information"} {
		alerts = append(alerts, map[string]string{"key": sev, "device": "SQL01", "severity": sev, "summary": "s"})
	}
	_, stderr, code := run(t, g, scom.RaiseAlertsTemplate, map[string]any{"alerts": alerts})
	require.Zero(t, code, stderr)

	severities := []string{"Information", "Warning", "Critical"}
	priorities := []string{"Low", "Medium", "High"}
	got := g.Alerts()
	require.Len(t, got, 3)
	require.Len(t, pack.Rules, 3)
	for _, a := range got {
		var found bool
		for _, r := range pack.Rules {
			if r.ID != a.Rule {
				continue
			}
			found = true
			require.Equal(t, severities[r.Severity], a.Severity, a.Rule)
			require.Equal(t, priorities[r.Priority], a.Priority, a.Rule)
			msg := r.Message[len(`$MPElement[Name="`) : len(r.Message)-len(`"]$`)]
			require.Equal(t, names[msg], a.Name, "the alert name is the message's display string")
		}
		require.True(t, found, "rule %s is in the management pack", a.Rule)
	}
}

func TestGroup(t *testing.T) {
	t.Parallel()

	t.Run("EmptyStateHasArrays", func(t *testing.T) {
		t.Parallel()
		b, err := json.Marshal(scomsim.New(scomsim.Options{}).State())
		require.NoError(t, err)
		require.JSONEq(t, `{"computers":[],"events":[],"alerts":[]}`, string(b))
	})

	t.Run("AddComputer", func(t *testing.T) {
		t.Parallel()
		g := scomsim.New(scomsim.Options{})
		require.NoError(t, g.AddComputer("a.corp.example", "A"))
		require.Error(t, g.AddComputer("a.corp.example", "B"), "principal names are keys")
		require.Error(t, g.AddComputer("", "B"))
		require.Equal(t, []scomsim.ComputerState{{PrincipalName: "a.corp.example", NetBIOSName: "A"}}, g.State().Computers)
	})

	t.Run("SetResolutionState", func(t *testing.T) {
		t.Parallel()
		g := scomsim.New(scomsim.Options{})
		require.Error(t, g.SetResolutionState("00000000-0000-0000-0000-000000000000", 255, ""))
		require.NoError(t, g.AddComputer("a.corp.example", "A"))
		out, _, code := run(t, g, scom.RaiseAlertsTemplate, map[string]any{"alerts": []any{
			map[string]string{"key": "k", "device": "A", "severity": "critical", "summary": "s"},
		}})
		require.Zero(t, code)
		var ans struct {
			Results []struct {
				AlertID string `json:"alert_id"`
			} `json:"results"`
		}
		require.NoError(t, json.Unmarshal(out, &ans))
		id := ans.Results[0].AlertID
		require.Error(t, g.SetResolutionState(id, 256, ""))
		require.NoError(t, g.SetResolutionState(id, 255, "done"))
		a := g.Alerts()[0]
		require.Equal(t, 255, a.ResolutionState)
		require.NotNil(t, a.ResolvedAt)
		require.NoError(t, g.SetResolutionState(id, 0, "reopened"))
		require.Nil(t, g.Alerts()[0].ResolvedAt)
	})

	t.Run("RefusesWhatIsNotATemplate", func(t *testing.T) {
		t.Parallel()
		g := scomsim.New(scomsim.Options{})
		require.False(t, g.Handles("param($Data)\n"))
		_, stderr, code := g.Run(t.Context(), "param($Data)\nGet-SCOMAlert\n", []byte(`{}`))
		require.Equal(t, 1, code)
		require.Equal(t, scomsim.NotATemplateError(), stderr)
		for _, tmpl := range scom.Templates() {
			require.True(t, g.Handles(tmpl.Script))
		}
		require.Equal(t, map[string]int{"(refused)": 1}, g.CallsByTemplate())
	})

	t.Run("DataOfTheWrongType", func(t *testing.T) {
		t.Parallel()
		g := scomsim.New(scomsim.Options{})
		_, stderr, code := run(t, g, scom.SetTicketTemplate, map[string]any{"links": "not a list"})
		require.Equal(t, 1, code)
		require.Contains(t, stderr, "Cannot convert value")
	})
}

// TestEventLogRoute: without the registered source nothing is written; with
// it, each alert is one Application-log event on the management server whose
// entry type picks the rule, and a second event with the same key while the
// alert is open is folded into it (the rule's suppression).
func TestEventLogRoute(t *testing.T) {
	t.Parallel()
	g := scomsim.New(scomsim.Options{NoEventSource: true})
	require.NoError(t, g.AddComputer("SQL01.corp.example", "SQL01"))
	req := map[string]any{"alerts": []map[string]string{{"key": "k", "device": "SQL01", "severity": "warning", "summary": "s"}}}

	_, stderr, code := run(t, g, scom.RaiseAlertsTemplate, req)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "New-EventLog -LogName Application -Source autopatch")
	require.Empty(t, g.State().Events)

	g.SetEventSource(true)
	g.HoldAlerts(true)
	for range 2 {
		_, stderr, code = run(t, g, scom.RaiseAlertsTemplate, req)
		require.Zero(t, code, stderr)
	}
	g.HoldAlerts(false)
	st := g.State()
	require.Len(t, st.Events, 2)
	for _, e := range st.Events {
		require.Equal(t, scom.EventSource, e.Source)
		require.Equal(t, scom.EventLog, e.Log)
		require.Equal(t, scom.EventID, e.EventID)
		require.Equal(t, 2, e.Level, "Warning entry")
		require.Equal(t, scomsim.DefaultManagementServer, e.LoggedOn)
		require.Equal(t, "SQL01.corp.example", e.Computer)
	}
	require.Len(t, st.Alerts, 1)
	require.Equal(t, 1, st.Alerts[0].RepeatCount)
	require.Equal(t, "Autopatch.Alerts.Rule.Warning", st.Alerts[0].Rule)
}
