package scom_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/scom"
	"github.com/autopatch/autopatch/connectors/scom/scomsim"
	"github.com/autopatch/autopatch/connectors/winrm"
	"github.com/autopatch/autopatch/connectors/winrm/wsmansim"
)

// Every test here goes over the real wire: scom.Client → winrm.Client
// (masterzen/winrm) → HTTP → wsmansim → scomsim.

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type testBundle struct {
	url    string // the WinRM endpoint
	group  *scomsim.Group
	wsman  *wsmansim.Server
	winrm  *winrm.Client
	client *scom.Client
	clock  *clock
}

type setupOpts struct {
	latency          time.Duration
	managementServer string // the client's
}

func setup(t testing.TB, opts setupOpts) *testBundle {
	t.Helper()
	clk := &clock{t: time.Date(2026, 12, 13, 3, 0, 0, 0, time.UTC)}
	group := scomsim.New(scomsim.Options{Now: clk.Now})
	wsman := wsmansim.New(wsmansim.Options{
		User: "sim", Password: "s3cret", Latency: opts.latency,
		Exec: wsmansim.PowerShell(group.Run),
	})
	mux := http.NewServeMux()
	mux.Handle("/wsman", wsman)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(wsman.Close)

	wc := newWinRM(t, srv.URL+"/wsman", time.Minute)
	client := scom.New(wc, scom.Options{ManagementServer: opts.managementServer}, nil)
	return &testBundle{url: srv.URL + "/wsman", group: group, wsman: wsman, winrm: wc, client: client, clock: clk}
}

func newWinRM(t testing.TB, endpoint string, timeout time.Duration) *winrm.Client {
	t.Helper()
	wc, err := winrm.New(winrm.Config{
		Endpoint: endpoint, User: "sim", Password: "s3cret", Auth: winrm.AuthBasic, Timeout: timeout,
	}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = wc.Close() })
	return wc
}

// computers makes each NetBIOS name a computer of corp.example.
func (b *testBundle) computers(t testing.TB, netbios ...string) {
	t.Helper()
	for _, n := range netbios {
		require.NoError(t, b.group.AddComputer(n+".corp.example", n))
	}
}

func (b *testBundle) alert(t testing.TB, id string) scomsim.AlertState {
	t.Helper()
	for _, a := range b.group.Alerts() {
		if a.ID == id {
			return a
		}
	}
	t.Fatalf("no alert %s", id)
	return scomsim.AlertState{}
}

// requireRefusal checks err is the script failing with SCOM's text.
func requireRefusal(t testing.TB, err error, template, text string) {
	t.Helper()
	require.Error(t, err)
	var se *winrm.ScriptError
	require.Truef(t, errors.As(err, &se), "want a *winrm.ScriptError, got %T: %v", err, err)
	require.Equal(t, template, se.Template)
	require.Equal(t, 1, se.ExitCode)
	require.Contains(t, se.Stderr, text)
	require.True(t, scom.IsRefusal(err))
	require.True(t, strings.HasPrefix(err.Error(), "scom: "), err.Error())
}

func failure(change, device, code string) scom.Alert {
	return scom.Alert{
		Key: "autopatch:" + change + ":" + device, Device: device, Severity: scom.SeverityCritical,
		Summary:     device + ": update installation failed (" + code + ")",
		Description: "Update group 2026-12 Servers, window Sat 02:00-06:00 UTC.",
		Change:      change, ErrorCode: code,
	}
}

func TestRaiseAlerts(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.computers(t, "SQL01", "SQL02", "WEB01")

	alerts := []scom.Alert{
		failure("CHG0031234", "SQL01", "0x80240022"),
		failure("CHG0031234", "sql02.CORP.example", "0x8024402C"), // FQDN, any case
		failure("CHG0031234", "GHOST01", "0x80070005"),
		{Key: "autopatch:CHG0031234:WEB01", Device: "web01", Severity: scom.SeverityWarning,
			Summary: "WEB01 did not report during its window"},
		{Key: "autopatch:CHG0031234:missed", Device: "WEB01", Severity: scom.SeverityInformation,
			Summary: "Window missed", Description: "DB-SAT-0200 2026-12-12 02:00 was missed."},
	}
	res, err := b.client.RaiseAlerts(t.Context(), alerts)
	require.NoError(t, err)
	require.Len(t, res, len(alerts))
	require.Equal(t, 1, b.group.Calls(), "one call for the batch")

	ids := map[string]bool{}
	for i, r := range res {
		require.Equal(t, alerts[i].Key, r.Key)
		require.Equal(t, alerts[i].Device, r.Device)
		if i == 2 {
			continue
		}
		require.Equal(t, scom.Raised, r.Outcome, "%s: %s", r.Key, r.Message)
		require.False(t, r.Failed())
		_, err := uuid.Parse(r.AlertID)
		require.NoError(t, err, "a GUID")
		ids[r.AlertID] = true
	}
	require.Len(t, ids, 4, "one alert each")

	require.Equal(t, scom.UnknownDevice, res[2].Outcome)
	require.True(t, res[2].Failed())
	require.Empty(t, res[2].AlertID)
	require.Equal(t, "No Windows Computer named 'GHOST01' is monitored by this management group.", res[2].Message)

	require.Equal(t, "SQL01.corp.example", res[0].Computer)
	require.Equal(t, "SQL02.corp.example", res[1].Computer)

	want := []struct {
		sev, prio string
	}{{"Critical", "High"}, {"Critical", "High"}, {}, {"Warning", "Medium"}, {"Information", "Low"}}
	for i, r := range res {
		if r.AlertID == "" {
			continue
		}
		a := b.alert(t, r.AlertID)
		require.Equal(t, alerts[i].Key, a.Key)
		require.Equal(t, alerts[i].Device, a.Device)
		require.Equal(t, r.Computer, a.Computer)
		require.Equal(t, alerts[i].Summary+"\n\n"+alerts[i].Description, a.Description)
		require.Equal(t, alerts[i].Change, a.Change)
		require.Equal(t, alerts[i].ErrorCode, a.ErrorCode)
		require.Equal(t, want[i].sev, a.Severity)
		require.Equal(t, want[i].prio, a.Priority)
		require.Zero(t, a.ResolutionState)
		require.Empty(t, a.TicketID)
		require.Equal(t, b.clock.Now(), a.RaisedAt)
		require.Equal(t, scomsim.AlertName, a.Name)
	}

	events := b.group.State().Events
	require.Len(t, events, 4, "no event for the unknown device")
	for _, e := range events {
		require.Equal(t, scom.EventSource, e.Source)
		require.Equal(t, scom.EventLog, e.Log)
		require.Equal(t, scom.EventID, e.EventID)
		require.Equal(t, b.group.ManagementServer(), e.LoggedOn, "written on the management server, for its rule")
	}
}

func TestRaiseAlertsIsIdempotent(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.computers(t, "SQL01", "SQL02")
	alerts := []scom.Alert{failure("CHG1", "SQL01", "0x80240022"), failure("CHG1", "SQL02", "0x80240022")}

	first, err := b.client.RaiseAlerts(t.Context(), alerts)
	require.NoError(t, err)
	for range 9 {
		b.clock.Advance(5 * time.Minute) // one poll later
		again, err := b.client.RaiseAlerts(t.Context(), alerts)
		require.NoError(t, err)
		for i := range again {
			require.Equal(t, scom.Existing, again[i].Outcome)
			require.Equal(t, first[i].AlertID, again[i].AlertID)
		}
	}
	require.Equal(t, 10, b.group.Calls())
	st := b.group.State()
	require.Len(t, st.Alerts, 2, "one alert per key")
	require.Len(t, st.Events, 2, "no event after the first")
	for _, a := range st.Alerts {
		require.Zero(t, a.RepeatCount)
	}

	t.Run("ClosedAlertIsRaisedAgain", func(t *testing.T) {
		require.NoError(t, b.group.SetResolutionState(first[0].AlertID, scom.ResolutionClosed, "closed by hand"))
		res, err := b.client.RaiseAlerts(t.Context(), alerts[:1])
		require.NoError(t, err)
		require.Equal(t, scom.Raised, res[0].Outcome)
		require.NotEqual(t, first[0].AlertID, res[0].AlertID)
		require.Len(t, b.group.Alerts(), 3)
	})
}

// TestRaiseAlertsPending: the rule has not raised the alert yet when the
// template looks; a second call writes another event, which the rule's
// suppression folds into the same alert, and a later call links it.
func TestRaiseAlertsPending(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.computers(t, "SQL01")
	alerts := []scom.Alert{failure("CHG1", "SQL01", "0x80240022")}

	b.group.HoldAlerts(true)
	res, err := b.client.RaiseAlerts(t.Context(), alerts)
	require.NoError(t, err)
	require.Equal(t, scom.Pending, res[0].Outcome)
	require.Empty(t, res[0].AlertID)
	require.Equal(t, "SQL01.corp.example", res[0].Computer)

	links, err := b.client.SetTicket(t.Context(), []scom.TicketLink{{Key: alerts[0].Key, TicketID: "INC0010001"}})
	require.NoError(t, err)
	require.Equal(t, scom.NotFound, links[0].Outcome, "nothing to link yet")

	res, err = b.client.RaiseAlerts(t.Context(), alerts)
	require.NoError(t, err)
	require.Equal(t, scom.Pending, res[0].Outcome)

	b.group.HoldAlerts(false)
	st := b.group.State()
	require.Len(t, st.Events, 2)
	require.Len(t, st.Alerts, 1, "suppressed into one alert")
	require.Equal(t, 1, st.Alerts[0].RepeatCount)

	res, err = b.client.RaiseAlerts(t.Context(), alerts)
	require.NoError(t, err)
	require.Equal(t, scom.Existing, res[0].Outcome)
	require.Equal(t, st.Alerts[0].ID, res[0].AlertID)
	links, err = b.client.SetTicket(t.Context(), []scom.TicketLink{{Key: alerts[0].Key, TicketID: "INC0010001"}})
	require.NoError(t, err)
	require.Equal(t, scom.TicketSet, links[0].Outcome)
	require.Equal(t, "INC0010001", b.alert(t, res[0].AlertID).TicketID)
}

func TestRaiseAlertsAmbiguousDevice(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	require.NoError(t, b.group.AddComputer("WEB01.corp.example", "WEB01"))
	require.NoError(t, b.group.AddComputer("WEB01.dmz.example", "WEB01"))

	res, err := b.client.RaiseAlerts(t.Context(), []scom.Alert{
		failure("CHG1", "WEB01", "0x1"),
		{Key: "k2", Device: "web01.DMZ.example", Summary: "by FQDN"},
	})
	require.NoError(t, err)
	require.Equal(t, scom.AmbiguousDevice, res[0].Outcome)
	require.True(t, res[0].Failed())
	require.Equal(t, "The name 'WEB01' matches 2 Windows Computers: WEB01.corp.example, WEB01.dmz.example.", res[0].Message)
	require.Equal(t, scom.Raised, res[1].Outcome)
	require.Equal(t, "WEB01.dmz.example", res[1].Computer)
	require.Equal(t, "Critical", b.alert(t, res[1].AlertID).Severity, "critical is the default")
}

func TestSetTicket(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.computers(t, "SQL01", "SQL02", "SQL03")
	raised, err := b.client.RaiseAlerts(t.Context(), []scom.Alert{
		failure("CHG1", "SQL01", "0x1"), failure("CHG1", "SQL02", "0x2"), failure("CHG1", "SQL03", "0x3"),
	})
	require.NoError(t, err)
	b.clock.Advance(time.Minute)

	res, err := b.client.SetTicket(t.Context(), []scom.TicketLink{
		{Key: raised[0].Key, TicketID: "INC0010001"},
		{AlertID: strings.ToUpper(raised[1].AlertID), TicketID: "INC0010002"},
		{Key: "autopatch:CHG1:NOPE", TicketID: "INC0010003"},
		{AlertID: uuid.NewString(), TicketID: "INC0010004"},
	})
	require.NoError(t, err)
	require.Equal(t, 1, b.group.CallsByTemplate()[scom.SetTicketTemplate], "one call")
	require.Equal(t, []scom.UpdateResult{
		{Key: raised[0].Key, AlertIDs: []string{raised[0].AlertID}, Outcome: scom.TicketSet},
		{AlertID: strings.ToUpper(raised[1].AlertID), AlertIDs: []string{raised[1].AlertID}, Outcome: scom.TicketSet},
		{Key: "autopatch:CHG1:NOPE", AlertIDs: []string{}, Outcome: scom.NotFound},
		{AlertID: res[3].AlertID, AlertIDs: []string{}, Outcome: scom.NotFound},
	}, res)
	a0 := b.alert(t, raised[0].AlertID)
	require.Equal(t, "INC0010001", a0.TicketID)
	require.Equal(t, "INC0010002", b.alert(t, raised[1].AlertID).TicketID)
	require.Empty(t, b.alert(t, raised[2].AlertID).TicketID)
	require.Len(t, a0.History, 1)
	require.Equal(t, b.clock.Now(), a0.History[0].At)
	require.Equal(t, "INC0010001", a0.History[0].TicketID)

	t.Run("SameTicketAgainChangesNothing", func(t *testing.T) {
		res, err := b.client.SetTicket(t.Context(), []scom.TicketLink{{Key: raised[0].Key, TicketID: "INC0010001"}})
		require.NoError(t, err)
		require.Equal(t, scom.Unchanged, res[0].Outcome)
		require.Len(t, b.alert(t, raised[0].AlertID).History, 1, "no history entry for nothing")
	})

	t.Run("ClosedAlertByKeyIsNotFoundByIDIsSet", func(t *testing.T) {
		require.NoError(t, b.group.SetResolutionState(raised[2].AlertID, scom.ResolutionClosed, ""))
		res, err := b.client.SetTicket(t.Context(), []scom.TicketLink{
			{Key: raised[2].Key, TicketID: "INC0010009"},
			{AlertID: raised[2].AlertID, TicketID: "INC0010009"},
		})
		require.NoError(t, err)
		require.Equal(t, scom.NotFound, res[0].Outcome)
		require.Equal(t, scom.TicketSet, res[1].Outcome)
		require.Equal(t, "INC0010009", b.alert(t, raised[2].AlertID).TicketID)
	})
}

func TestResolveAlerts(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.computers(t, "SQL01", "SQL02")
	raised, err := b.client.RaiseAlerts(t.Context(), []scom.Alert{failure("CHG1", "SQL01", "0x1"), failure("CHG1", "SQL02", "0x2")})
	require.NoError(t, err)
	b.clock.Advance(time.Hour)
	closedAt := b.clock.Now()

	res, err := b.client.ResolveAlerts(t.Context(), []scom.AlertRef{
		{Key: raised[0].Key}, {AlertID: raised[1].AlertID}, {Key: "autopatch:CHG1:NOPE"},
	}, "SQL01 installed the updates on its next attempt.")
	require.NoError(t, err)
	require.Equal(t, []scom.UpdateOutcome{scom.Closed, scom.Closed, scom.NotFound},
		[]scom.UpdateOutcome{res[0].Outcome, res[1].Outcome, res[2].Outcome})
	require.Equal(t, []string{raised[0].AlertID}, res[0].AlertIDs)
	for _, r := range raised {
		a := b.alert(t, r.AlertID)
		require.Equal(t, scom.ResolutionClosed, a.ResolutionState)
		require.NotNil(t, a.ResolvedAt)
		require.Equal(t, closedAt, *a.ResolvedAt)
		require.Equal(t, "SQL01 installed the updates on its next attempt.", a.History[len(a.History)-1].Comment)
	}

	b.clock.Advance(time.Hour)
	res, err = b.client.ResolveAlerts(t.Context(), []scom.AlertRef{{Key: raised[0].Key}, {AlertID: raised[1].AlertID}}, "again")
	require.NoError(t, err)
	require.Equal(t, scom.AlreadyClosed, res[0].Outcome)
	require.Equal(t, scom.AlreadyClosed, res[1].Outcome)
	require.Equal(t, closedAt, *b.alert(t, raised[0].AlertID).ResolvedAt, "a retry changes nothing")
	require.Len(t, b.alert(t, raised[0].AlertID).History, 1)
}

func TestClientRefusesBadInputWithoutACall(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	ok := scom.Alert{Key: "k", Device: "d", Summary: "s"}
	with := func(f func(*scom.Alert)) []scom.Alert {
		a := ok
		f(&a)
		return []scom.Alert{a}
	}
	tests := []struct {
		name string
		call func() error
	}{
		{"EmptyKey", func() error {
			_, err := b.client.RaiseAlerts(t.Context(), with(func(a *scom.Alert) { a.Key = "" }))
			return err
		}},
		{"NULInKey", func() error {
			_, err := b.client.RaiseAlerts(t.Context(), with(func(a *scom.Alert) { a.Key = "a\x00b" }))
			return err
		}},
		{"InvalidUTF8Key", func() error {
			_, err := b.client.RaiseAlerts(t.Context(), with(func(a *scom.Alert) { a.Key = "a\xffb" }))
			return err
		}},
		{"EmptyDevice", func() error {
			_, err := b.client.RaiseAlerts(t.Context(), with(func(a *scom.Alert) { a.Device = "" }))
			return err
		}},
		{"EmptySummary", func() error {
			_, err := b.client.RaiseAlerts(t.Context(), with(func(a *scom.Alert) { a.Summary = " \n" }))
			return err
		}},
		{"UnknownSeverity", func() error {
			_, err := b.client.RaiseAlerts(t.Context(), with(func(a *scom.Alert) { a.Severity = "Critical" }))
			return err
		}},
		{"DuplicateKey", func() error {
			_, err := b.client.RaiseAlerts(t.Context(), []scom.Alert{ok, ok})
			return err
		}},
		{"EmptyTicket", func() error {
			_, err := b.client.SetTicket(t.Context(), []scom.TicketLink{{Key: "k"}})
			return err
		}},
		{"TicketTooLong", func() error {
			_, err := b.client.SetTicket(t.Context(), []scom.TicketLink{{Key: "k", TicketID: strings.Repeat("9", scom.MaxTicketIDLength+1)}})
			return err
		}},
		{"TicketTooLongInUTF16", func() error {
			_, err := b.client.SetTicket(t.Context(), []scom.TicketLink{{Key: "k", TicketID: strings.Repeat("😀", 76)}})
			return err
		}},
		{"NeitherKeyNorID", func() error {
			_, err := b.client.ResolveAlerts(t.Context(), []scom.AlertRef{{}}, "")
			return err
		}},
		{"NotAGUID", func() error {
			_, err := b.client.ResolveAlerts(t.Context(), []scom.AlertRef{{AlertID: "'; Remove-Item C:\\ -Recurse; '"}}, "")
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			require.ErrorIs(t, err, scom.ErrInvalid)
			require.True(t, strings.HasPrefix(err.Error(), "scom: "), err.Error())
			require.False(t, scom.IsRefusal(err))
		})
	}
	require.Zero(t, b.group.Calls(), "nothing was sent")
}

// TestTemplatesRefuse sends what the client would refuse straight through
// WinRM: the templates validate the batch themselves, before anything changes.
func TestTemplatesRefuse(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.computers(t, "SQL01")
	tmpl := map[string]winrm.Template{}
	for _, tt := range scom.Templates() {
		tmpl[tt.Name] = tt
	}
	alert := func(key, sev string) map[string]any {
		return map[string]any{"key": key, "device": "SQL01", "severity": sev, "summary": "s"}
	}
	tests := []struct {
		name     string
		template string
		data     map[string]any
		text     string
	}{
		{"KeyTooLong", scom.RaiseAlertsTemplate, map[string]any{"alerts": []any{alert("ok", "critical"), alert(strings.Repeat("k", 256), "critical")}},
			"is 256 characters long; CustomField1 holds 1 to 255."},
		{"DuplicateKey", scom.RaiseAlertsTemplate, map[string]any{"alerts": []any{alert("a", "critical"), alert("a", "warning")}},
			"The alert key 'a' appears more than once in this request."},
		{"UnknownSeverity", scom.RaiseAlertsTemplate, map[string]any{"alerts": []any{alert("a", "fatal")}},
			"Unknown severity 'fatal' for the alert key 'a'."},
		{"TicketTooLong", scom.SetTicketTemplate, map[string]any{"links": []any{map[string]any{"key": "a", "ticket_id": strings.Repeat("1", 151)}}},
			"is 151 characters long; TicketId holds 1 to 150."},
		{"NotAGUID", scom.ResolveAlertsTemplate, map[string]any{"refs": []any{map[string]any{"alert_id": "x'; Stop-Computer; '"}}},
			`Cannot convert value "x'; Stop-Computer; '" to type "System.Guid".`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := b.group.State()
			err := b.winrm.Run(t.Context(), tmpl[tt.template], tt.data, nil)
			var se *winrm.ScriptError
			require.True(t, errors.As(err, &se), "%v", err)
			require.Contains(t, se.Stderr, tt.text)
			require.Equal(t, before, b.group.State(), "a refused batch changes nothing")
		})
	}
}

func TestManagementServer(t *testing.T) {
	t.Parallel()
	for _, server := range []string{"", "localhost", scomsim.DefaultManagementServer, "SCOM01"} {
		t.Run("Matching"+server, func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOpts{managementServer: server})
			_, err := b.client.ResolveAlerts(t.Context(), []scom.AlertRef{{Key: "k"}}, "")
			require.NoError(t, err)
		})
	}
	t.Run("Other", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{managementServer: "scom99.corp.example"})
		_, err := b.client.ResolveAlerts(t.Context(), []scom.AlertRef{{Key: "k"}}, "")
		requireRefusal(t, err, scom.ResolveAlertsTemplate, "The Data Access service is either not running or not yet initialized.")
		require.True(t, strings.HasPrefix(err.Error(), "scom: resolve alerts: "), err.Error())
	})
}

func TestNonTemplateScriptIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.computers(t, "SQL01")
	raise := scom.Templates()[0]

	// The group answers like a constrained endpoint whose visible commands
	// are the documented cmdlets of cmdlets.yaml and which runs only the
	// templates: a command outside the table is not recognized (as in JEA),
	// an undocumented parameter is refused with PowerShell's binding error,
	// and a documented script that is not a template is refused as a whole.
	const notRecognized = "is not recognized as the name of a cmdlet, function, script file, or operable program."
	const notATemplate = "this endpoint runs only autopatch's approved script templates"
	tests := []struct {
		name   string
		script string
		want   string
	}{
		{"Arbitrary", "param($Data)\nGet-SCOMAlert | Set-SCOMAlert -ResolutionState 255\n", notATemplate},
		{"TemplateWithInjectedLine", strings.Replace(raise.Script, "\n", "\nRemove-SCOMManagementPack -ManagementPack (Get-SCOMManagementPack)\n", 2),
			"The term 'Remove-SCOMManagementPack' " + notRecognized},
		{"TemplateWithInjectedDocumentedLine", strings.Replace(raise.Script, "\n", "\nGet-SCOMAlert | Set-SCOMAlert -ResolutionState 255\n", 2), notATemplate},
		{"UndocumentedParameter", strings.Replace(raise.Script, "Get-SCOMClass -Name 'Microsoft.Windows.Computer'",
			"Get-SCOMClass -Name 'Microsoft.Windows.Computer' -Recurse", 1),
			"A parameter cannot be found that matches parameter name 'Recurse'."},
		{"TemplateWithTrailingSpace", raise.Script + " ", notATemplate},
		{"TemplateWithCRLF", strings.ReplaceAll(raise.Script, "\n", "\r\n"), notATemplate},
		{"OtherConnectorsTemplate", "param($Data)\n$ErrorActionPreference = 'Stop'\nImport-Module -Name ConfigurationManager\n", notATemplate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := b.group.State()
			err := b.winrm.Run(t.Context(), winrm.Template{Name: "evil", Script: tt.script},
				map[string]any{"alerts": []any{map[string]any{"key": "k", "device": "SQL01", "severity": "critical", "summary": "s"}}}, nil)
			var se *winrm.ScriptError
			require.True(t, errors.As(err, &se), "%v", err)
			require.Equal(t, 1, se.ExitCode)
			require.Contains(t, se.Stderr, tt.want)
			require.Equal(t, before, b.group.State())
		})
	}
	require.Equal(t, len(tests), b.group.CallsByTemplate()["(refused)"])
}

func TestStoredKey(t *testing.T) {
	t.Parallel()
	short := "autopatch:CHG0031234:SQL01"
	require.Equal(t, short, scom.StoredKey(short))
	exact := strings.Repeat("k", scom.MaxKeyLength)
	require.Equal(t, exact, scom.StoredKey(exact))

	long1 := "autopatch:CHG0031234:" + strings.Repeat("x", 300) + "1"
	long2 := "autopatch:CHG0031234:" + strings.Repeat("x", 300) + "2"
	s1, s2 := scom.StoredKey(long1), scom.StoredKey(long2)
	require.NotEqual(t, s1, s2, "unique")
	require.Equal(t, s1, scom.StoredKey(long1), "stable")
	require.Len(t, s1, scom.MaxKeyLength)
	require.True(t, strings.HasPrefix(long1, strings.Split(s1, "~")[0]))
	require.Regexp(t, `~[0-9a-f]{8}$`, s1)

	// Counted in UTF-16 units, never cutting a character in two.
	emoji := strings.Repeat("😀", 200)
	se := scom.StoredKey(emoji)
	units := 0
	for _, r := range se {
		if r > 0xFFFF {
			units += 2
		} else {
			units++
		}
	}
	require.LessOrEqual(t, units, scom.MaxKeyLength)
	require.True(t, strings.HasPrefix(se, "😀"))
	require.NotContains(t, se, "\uFFFD")
}

func TestLongKeyRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.computers(t, "SQL01")
	key := "autopatch:CHG0031234:" + strings.Repeat("Ω", 300)

	res, err := b.client.RaiseAlerts(t.Context(), []scom.Alert{{Key: key, Device: "SQL01", Summary: "s"}})
	require.NoError(t, err)
	require.Equal(t, key, res[0].Key, "the caller's key comes back exactly")
	require.Equal(t, scom.StoredKey(key), b.alert(t, res[0].AlertID).Key, "SCOM holds the stored form")

	again, err := b.client.RaiseAlerts(t.Context(), []scom.Alert{{Key: key, Device: "SQL01", Summary: "s"}})
	require.NoError(t, err)
	require.Equal(t, scom.Existing, again[0].Outcome)
	links, err := b.client.SetTicket(t.Context(), []scom.TicketLink{{Key: key, TicketID: "INC1"}})
	require.NoError(t, err)
	require.Equal(t, scom.TicketSet, links[0].Outcome)
	require.Equal(t, key, links[0].Key)
	closed, err := b.client.ResolveAlerts(t.Context(), []scom.AlertRef{{Key: key}}, "")
	require.NoError(t, err)
	require.Equal(t, scom.Closed, closed[0].Outcome)
}

func TestFreeTextThatXMLCannotCarryIsReplaced(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.computers(t, "SQL01")
	res, err := b.client.RaiseAlerts(t.Context(), []scom.Alert{{
		Key: "k", Device: "SQL01", Summary: "bell\a and nul\x00", Description: "escape \x1b[31m and bad \xff utf-8",
		ErrorCode: "0x8024\x0002",
	}})
	require.NoError(t, err)
	a := b.alert(t, res[0].AlertID)
	require.Equal(t, "bell\uFFFD and nul\uFFFD\n\nescape \uFFFD[31m and bad \uFFFD utf-8", a.Description)
	require.Equal(t, "0x8024\uFFFD02", a.ErrorCode)
}

// TestRaiseTimeoutThenRetry: a call that times out leaves its effect
// unknown; running the same batch again converges to one alert per key.
func TestRaiseTimeoutThenRetry(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{latency: 1500 * time.Millisecond})
	b.computers(t, "SQL01", "SQL02")
	alerts := []scom.Alert{failure("CHG1", "SQL01", "0x1"), failure("CHG1", "SQL02", "0x2")}

	impatient := scom.New(newWinRM(t, b.url, 200*time.Millisecond), scom.Options{}, nil)
	_, err := impatient.RaiseAlerts(t.Context(), alerts)
	require.ErrorIs(t, err, winrm.ErrTimeout)
	require.False(t, scom.IsRefusal(err))
	require.True(t, strings.HasPrefix(err.Error(), "scom: raise alerts: "), err.Error())

	res, err := b.client.RaiseAlerts(t.Context(), alerts)
	require.NoError(t, err)
	for _, r := range res {
		require.NotEmpty(t, r.AlertID)
	}
	require.Len(t, b.group.Alerts(), 2, "each alert exactly once, whatever the first call did")
}

func TestEmptyBatchesMakeNoCall(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	ctx := context.Background()
	res, err := b.client.RaiseAlerts(ctx, nil)
	require.NoError(t, err)
	require.NotNil(t, res)
	_, err = b.client.SetTicket(ctx, nil)
	require.NoError(t, err)
	_, err = b.client.ResolveAlerts(ctx, nil, "x")
	require.NoError(t, err)
	require.Zero(t, b.group.Calls())
}

// TestKeysAreExact: the database would match keys case-insensitively and
// without trailing blanks; the templates keep only exact matches, so these
// are four alerts.
func TestKeysAreExact(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.computers(t, "SQL01")
	keys := []string{"autopatch:CHG1:SQL01", "AUTOPATCH:chg1:sql01", "autopatch:CHG1:SQL01  ", "autopatch:CHG1:SQL01%"}
	var alerts []scom.Alert
	for _, k := range keys {
		alerts = append(alerts, scom.Alert{Key: k, Device: "SQL01", Summary: "s"})
	}
	res, err := b.client.RaiseAlerts(t.Context(), alerts)
	require.NoError(t, err)
	ids := map[string]bool{}
	for i, r := range res {
		require.Equal(t, scom.Raised, r.Outcome, keys[i])
		ids[r.AlertID] = true
	}
	require.Len(t, ids, len(keys))

	closed, err := b.client.ResolveAlerts(t.Context(), []scom.AlertRef{{Key: keys[1]}}, "")
	require.NoError(t, err)
	require.Equal(t, []string{res[1].AlertID}, closed[0].AlertIDs, "only the exact key")
	for i, r := range res {
		want := 0
		if i == 1 {
			want = scom.ResolutionClosed
		}
		require.Equal(t, want, b.alert(t, r.AlertID).ResolutionState, keys[i])
	}
}

// TestEventLogRoute walks the whole path on the event-log route: the event
// source must be registered on the management server (as New-EventLog does),
// each alert is one Application-log event whose insertion strings the rule
// maps to the alert, and the alert is linked and closed by its key.
func TestEventLogRoute(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.computers(t, "SQL01")
	alerts := []scom.Alert{failure("CHG1", "SQL01", "0x80240022")}

	// Before an administrator registers the source nothing is written: the
	// rules would never see the event, and WriteEvent would try to register
	// the source itself.
	b.group.SetEventSource(false)
	_, err := b.client.RaiseAlerts(t.Context(), alerts)
	requireRefusal(t, err, scom.RaiseAlertsTemplate,
		"The event source 'autopatch' is not registered in the Application log of this management server")
	require.Empty(t, b.group.State().Events)

	b.group.SetEventSource(true)
	res, err := b.client.RaiseAlerts(t.Context(), alerts)
	require.NoError(t, err)
	require.Equal(t, scom.Raised, res[0].Outcome)

	events := b.group.State().Events
	require.Len(t, events, 1)
	e := events[0]
	require.Equal(t, 1, e.Level, "critical is an Error entry")
	require.Equal(t, []string{alerts[0].Key, "SQL01.corp.example", alerts[0].Summary, alerts[0].Description,
		alerts[0].Change, alerts[0].ErrorCode, "SQL01"}, e.Params)
	require.Equal(t, res[0].AlertID, e.AlertID)

	links, err := b.client.SetTicket(t.Context(), []scom.TicketLink{{Key: alerts[0].Key, TicketID: "INC0010001"}})
	require.NoError(t, err)
	require.Equal(t, scom.TicketSet, links[0].Outcome)
	closed, err := b.client.ResolveAlerts(t.Context(), []scom.AlertRef{{Key: alerts[0].Key}}, "device recovered")
	require.NoError(t, err)
	require.Equal(t, scom.Closed, closed[0].Outcome)
	a := b.alert(t, res[0].AlertID)
	require.Equal(t, "INC0010001", a.TicketID)
	require.Equal(t, scom.ResolutionClosed, a.ResolutionState)
	require.Equal(t, alerts[0].Key, a.Key)
}

// TestLongTextFitsAnEventString: an insertion string holds at most
// MaxEventStringLength UTF-16 code units. The client clips free text, so one
// long error text does not refuse the batch; a raw call with a longer one is
// refused by the template before anything is written.
func TestLongTextFitsAnEventString(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	b.computers(t, "SQL01", "SQL02")
	long := failure("CHG1", "SQL01", "0x1")
	long.Description = strings.Repeat("é", scom.MaxEventStringLength+100)
	res, err := b.client.RaiseAlerts(t.Context(), []scom.Alert{long, failure("CHG1", "SQL02", "0x2")})
	require.NoError(t, err)
	require.Equal(t, scom.Raised, res[0].Outcome)
	require.Equal(t, scom.Raised, res[1].Outcome)
	desc := b.group.State().Events[0].Params[3]
	require.Equal(t, scom.MaxEventStringLength, utf8.RuneCountInString(desc))
	require.True(t, strings.HasSuffix(desc, "[truncated]"))

	before := b.group.State()
	err = b.winrm.Run(t.Context(), scom.Templates()[0], map[string]any{"alerts": []any{map[string]any{
		"key": "k", "device": "SQL01", "severity": "critical", "summary": "s",
		"description": strings.Repeat("x", scom.MaxEventStringLength+1),
	}}}, nil)
	var se *winrm.ScriptError
	require.True(t, errors.As(err, &se), "%v", err)
	require.Contains(t, se.Stderr, "an event log string holds 32766.")
	require.Equal(t, before, b.group.State())
}
