package estate_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/connectors/winrm"
	"github.com/autopatch/autopatch/internal/estate"
	"github.com/autopatch/autopatch/internal/tenants"
)

// TestEstateTenants: one estate per customer, each with its own site,
// SCOM and ServiceNow on its own ports and credentials; the tenants file
// and env file written for them load as serve loads them, hold no secret,
// and reach each customer's own site (issue #20).
func TestEstateTenants(t *testing.T) {
	t.Parallel()
	seed, err := estate.ParseSeed([]byte(exampleSeed))
	require.NoError(t, err)
	contosoSeed := seed
	contosoSeed.SiteCode = "CT1"
	ts, err := estate.StartTenants(t.Context(), []estate.Tenant{
		{Name: "acme", Options: estate.Options{Seed: seed, ScheduleCollections: []string{"Patch - Acme"}, Sites: []string{"AC2"}}},
		{Name: "contoso-eu", Options: estate.Options{Seed: contosoSeed, ScheduleCollections: []string{"Patch - Contoso"}}},
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, ts.Close()) })
	acme, contoso := ts.Estate("acme"), ts.Estate("contoso-eu")
	require.Equal(t, []string{"acme", "contoso-eu"}, ts.Names())
	require.NotEqual(t, acme.SCCMEndpoint(), contoso.SCCMEndpoint())
	require.NotEqual(t, acme.ServiceNowURL(), contoso.ServiceNowURL())
	require.NotEqual(t, acme.WebhookSecret(), contoso.WebhookSecret())
	require.Equal(t, acme.CAPEM(), contoso.CAPEM(), "one CA: AUTOPATCH_SCCM_CA_FILE is every tenant's")

	dir := t.TempDir()
	schedules := filepath.Join(dir, "schedules.yaml")
	night := "schedules:\n  - {name: NIGHT, collection: \"Patch - Night\", %swindows: [{start: \"2026-12-20T22:00:00Z\", end: \"2026-12-21T02:00:00Z\"}]}\n"
	require.NoError(t, os.WriteFile(schedules, []byte(fmt.Sprintf(night, "")), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "acme.yaml"), []byte(fmt.Sprintf(night, "site: AC2, ")), 0o600))
	tenantsPath, envPath := filepath.Join(dir, "tenants.yaml"), filepath.Join(dir, "sim.env")
	require.Error(t, ts.WriteFiles(tenantsPath, envPath, map[string]string{"acme": "acme.yaml"}), "a tenant without schedules")
	require.NoError(t, ts.WriteFiles(tenantsPath, envPath, map[string]string{"acme": "acme.yaml", "contoso-eu": schedules}))

	env := readEnv(t, envPath)
	st, err := os.Stat(envPath)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	for k := range env {
		require.False(t, strings.HasPrefix(k, "AUTOPATCH_SCCM_ENDPOINT") || k == "AUTOPATCH_WEBHOOK_SECRET" || k == "AUTOPATCH_API_TOKEN",
			"%s: no setting of the default tenant", k)
	}
	file, err := os.ReadFile(tenantsPath)
	require.NoError(t, err)
	for k, v := range env {
		if strings.HasPrefix(k, "TENANT_") {
			require.NotContains(t, string(file), v, "the secret of %s is not in the tenants file", k)
		}
	}

	loaded, err := tenants.Load(env["AUTOPATCH_TENANTS_FILE"], func(k string) string { return env[k] })
	require.NoError(t, err)
	require.Len(t, loaded, 2)
	require.Equal(t, "acme", loaded[0].Name)
	require.Len(t, loaded[0].SCCM, 2)
	require.Equal(t, []string{"PS1", "AC2"}, []string{loaded[0].SCCM[0].Code, loaded[0].SCCM[1].Code})
	require.Equal(t, "CT1", loaded[1].SCCM[0].Code)
	require.Equal(t, contoso.ServiceNowURL(), loaded[1].ServiceNow.URL)
	require.Equal(t, contoso.WebhookSecret(), loaded[1].WebhookSecret.Reveal())
	require.Equal(t, acme.APIToken(), loaded[0].APIToken.Reveal())
	require.Equal(t, filepath.Join(dir, "acme.yaml"), loaded[0].SchedulesFile, "relative to the tenants file")
	require.Equal(t, schedules, loaded[1].SchedulesFile)

	// What the file and env say reaches each customer's own site: acme's
	// credentials do not open contoso's.
	client := func(site tenants.Site) *sccm.Client {
		wc, err := winrm.New(winrm.Config{Endpoint: site.Endpoint, User: site.User, Password: site.Password.Reveal(),
			Auth: env["AUTOPATCH_SCCM_AUTH"], CAFile: env["AUTOPATCH_SCCM_CA_FILE"]}, nil)
		require.NoError(t, err)
		t.Cleanup(func() { _ = wc.Close() })
		return sccm.New(wc, site.Code, nil)
	}
	_, err = client(loaded[0].SCCM[0]).ResolveDevices(t.Context(), []string{"SQL01"})
	require.NoError(t, err)
	_, err = client(loaded[1].SCCM[0]).ResolveDevices(t.Context(), []string{"SQL01"})
	require.NoError(t, err)
	wrong := loaded[1].SCCM[0]
	wrong.Password = loaded[0].SCCM[0].Password
	_, err = client(wrong).ResolveDevices(t.Context(), []string{"SQL01"})
	require.Error(t, err, "acme's WinRM password on contoso's site server")

	_, err = estate.StartTenants(t.Context(), []estate.Tenant{{Name: "acme"}, {Name: "acme"}})
	require.ErrorContains(t, err, "listed twice")
	_, err = estate.StartTenants(t.Context(), []estate.Tenant{{Name: "Acme"}})
	require.ErrorContains(t, err, "DNS label")
}
