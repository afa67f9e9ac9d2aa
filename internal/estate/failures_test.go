package estate_test

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/scom"
	"github.com/autopatch/autopatch/connectors/servicenow"
	"github.com/autopatch/autopatch/connectors/winrm"
	"github.com/autopatch/autopatch/internal/config"
	"github.com/autopatch/autopatch/internal/estate"
)

const changeSysID = "0123456789abcdef0123456789abcdef"

// TestEstateFailuresOut raises alerts on the simulated SCOM and incidents and
// work notes on the simulated ServiceNow, with nothing but what the env file
// says, as serve would, and checks GET /state shows them in the shape of
// docs/architecture.md §4.5.
func TestEstateFailuresOut(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *estate.Options) {
		no := false
		o.Seed.Devices = append(o.Seed.Devices, estate.SeedDevice{Name: "LAB01", SCOM: &no})
	})
	e := b.estate
	ctx := t.Context()
	require.NoError(t, e.ServiceNow().AddRecord("change_request", changeSysID, "CHG0031234"))

	// serve's configuration, from the env file.
	path := filepath.Join(t.TempDir(), "sim.env")
	require.NoError(t, e.WriteEnvFile(path))
	env := readEnv(t, path)
	cfg, err := config.Load(func(k string) string { return env[k] }, "")
	require.NoError(t, err, "config.Load accepts what the estate writes")
	require.Equal(t, e.SCOMEndpoint(), cfg.SCOM.Endpoint)
	require.Equal(t, e.CAFile(), cfg.SCOM.CAFile)
	require.Equal(t, "basic", cfg.SCOM.Auth)
	require.Equal(t, e.ServiceNowURL(), cfg.ServiceNow.URL)
	require.Equal(t, e.ServiceNowUser(), cfg.ServiceNow.User)

	wc, err := winrm.New(winrm.Config{
		Endpoint: cfg.SCOM.Endpoint, User: cfg.SCOM.User, Password: cfg.SCOM.Password.Reveal(),
		Auth: cfg.SCOM.Auth, CAFile: cfg.SCOM.CAFile,
	}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = wc.Close() })
	scomClient := scom.New(wc, scom.Options{}, nil)
	snow, err := servicenow.New(servicenow.Config{
		URL: cfg.ServiceNow.URL, User: cfg.ServiceNow.User, Password: cfg.ServiceNow.Password.Reveal(),
	}, nil, nil)
	require.NoError(t, err)

	key := servicenow.CorrelationID("CHG0031234", "SQL02")
	raised, err := scomClient.RaiseAlerts(ctx, []scom.Alert{
		{Key: key, Device: "SQL02", Summary: "SQL02: installation failed (0x80240022)", Change: "CHG0031234", ErrorCode: "0x80240022"},
		{Key: "autopatch:CHG0031234:sql02.CORP.example", Device: "sql02.CORP.example", Summary: "by FQDN"},
		{Key: servicenow.CorrelationID("CHG0031234", "LAB01"), Device: "LAB01", Summary: "LAB01 failed"},
	})
	require.NoError(t, err)
	require.Equal(t, scom.Raised, raised[0].Outcome)
	require.Equal(t, "SQL02.corp.example", raised[0].Computer, "seed devices join SCOM under the seed's domain")
	require.Equal(t, scom.Raised, raised[1].Outcome)
	require.Equal(t, scom.UnknownDevice, raised[2].Outcome, "scom: false")
	require.Equal(t, 1, e.SCOM().Calls())
	require.Zero(t, e.SCCM().Calls(), "the SCOM template went to the SCOM simulator")

	inc, err := snow.CreateIncident(ctx, servicenow.Incident{
		ShortDescription: "SQL02: installation failed (0x80240022)", CorrelationID: key, Urgency: 2, Impact: 2,
	})
	require.NoError(t, err)
	require.NoError(t, snow.AddWorkNote(ctx, "change_request", changeSysID, "SQL02 failed; see "+inc.Number))
	_, err = scomClient.SetTicket(ctx, []scom.TicketLink{{Key: key, TicketID: inc.Number}})
	require.NoError(t, err)
	_, err = scomClient.ResolveAlerts(ctx, []scom.AlertRef{{AlertID: raised[1].AlertID}}, "recovered")
	require.NoError(t, err)

	raw := getState(t, e)
	var st struct {
		Alerts []struct {
			ID              *string `json:"id"`
			Device          *string `json:"device"`
			TicketID        *string `json:"ticket_id"`
			ResolutionState *int    `json:"resolution_state"`
			RaisedAt        *string `json:"raised_at"`
		} `json:"alerts"`
		Incidents []struct {
			Number           *string `json:"number"`
			SysID            *string `json:"sys_id"`
			CorrelationID    *string `json:"correlation_id"`
			State            *string `json:"state"`
			ShortDescription *string `json:"short_description"`
		} `json:"incidents"`
		WorkNotes []struct {
			Table *string `json:"table"`
			SysID *string `json:"sys_id"`
			At    *string `json:"at"`
			Text  *string `json:"text"`
		} `json:"work_notes"`
	}
	require.NoError(t, json.Unmarshal(raw, &st))

	require.Len(t, st.Alerts, 2)
	a := st.Alerts[0]
	for _, f := range []any{a.ID, a.Device, a.TicketID, a.ResolutionState, a.RaisedAt} {
		require.NotNil(t, f, "every contract field is present")
	}
	require.Equal(t, raised[0].AlertID, *a.ID)
	require.Equal(t, "SQL02", *a.Device)
	require.Equal(t, inc.Number, *a.TicketID)
	require.Zero(t, *a.ResolutionState)
	require.Equal(t, "2026-12-12T20:00:00Z", *a.RaisedAt)
	require.Equal(t, "sql02.CORP.example", *st.Alerts[1].Device)
	require.Equal(t, scom.ResolutionClosed, *st.Alerts[1].ResolutionState)
	require.Empty(t, *st.Alerts[1].TicketID)

	require.Len(t, st.Incidents, 1)
	i := st.Incidents[0]
	require.Equal(t, inc.Number, *i.Number)
	require.Equal(t, inc.SysID, *i.SysID)
	require.Equal(t, key, *i.CorrelationID)
	require.Equal(t, "1", *i.State, "New")
	require.Equal(t, "SQL02: installation failed (0x80240022)", *i.ShortDescription)

	require.Len(t, st.WorkNotes, 1)
	w := st.WorkNotes[0]
	require.Equal(t, "change_request", *w.Table)
	require.Equal(t, changeSysID, *w.SysID)
	require.Equal(t, b.clock.Now().Format(time.RFC3339), *w.At)
	require.Equal(t, "SQL02 failed; see "+inc.Number, *w.Text)

	// /state is the estate's State.
	want, err := json.Marshal(e.State())
	require.NoError(t, err)
	require.JSONEq(t, string(want), string(raw))
}

func TestEstateSCOMComputers(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *estate.Options) {
		o.Seed.SCOMDomain = "lab.example"
		no := false
		o.Seed.Devices = append(o.Seed.Devices,
			estate.SeedDevice{Name: "db01.prod.example"},
			estate.SeedDevice{Name: "LAB01", SCOM: &no})
	})
	var names []string
	for _, c := range b.estate.SCOM().State().Computers {
		names = append(names, c.PrincipalName+"/"+c.NetBIOSName)
	}
	require.Equal(t, []string{
		"SQL01.lab.example/SQL01", "SQL02.lab.example/SQL02", "WEB01.lab.example/WEB01",
		"APP01.lab.example/APP01", "OLD01.lab.example/OLD01", "db01.prod.example/db01",
	}, names, "every seed device but LAB01, a name with a dot as its FQDN")
	require.False(t, slices.Contains(names, "LAB01.lab.example/LAB01"))
}
