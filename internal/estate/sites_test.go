package estate_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/connectors/winrm"
	"github.com/autopatch/autopatch/internal/config"
	"github.com/autopatch/autopatch/internal/estate"
)

// TestEstateSites: further sites are site servers of their own, each on
// its own WinRM endpoint; the env file configures every site, and what it
// says is enough to reach each; one site can be down while the others
// answer (docs/architecture.md §10.1).
func TestEstateSites(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *estate.Options) {
		o.Sites = []string{"EU1"}
		o.SiteCollections = map[string][]string{"EU1": {"Patch - Frankfurt"}}
	})
	path := filepath.Join(t.TempDir(), "sim.env")
	require.NoError(t, b.estate.WriteEnvFile(path))
	env := readEnv(t, path)
	cfg, err := config.Load(func(k string) string { return env[k] }, "")
	require.NoError(t, err)
	require.Equal(t, []string{"PS1", "EU1"}, cfg.SiteCodes())
	require.NotEqual(t, cfg.Sites[0].WinRM.Endpoint, cfg.Sites[1].WinRM.Endpoint)
	require.Empty(t, env["AUTOPATCH_SCCM_ENDPOINT"], "with sites, each has its own endpoint")
	require.NotEmpty(t, env["AUTOPATCH_SCOM_ENDPOINT"])

	client := func(site config.SCCMSite) *sccm.Client {
		wc, err := winrm.New(winrm.Config{
			Endpoint: site.WinRM.Endpoint, User: site.WinRM.User, Password: site.WinRM.Password.Reveal(),
			Auth: site.WinRM.Auth, CAFile: site.WinRM.CAFile,
		}, nil)
		require.NoError(t, err)
		t.Cleanup(func() { _ = wc.Close() })
		return sccm.New(wc, site.Code, nil)
	}
	ps1, eu1 := client(cfg.Sites[0]), client(cfg.Sites[1])
	at := time.Date(2026, 12, 13, 2, 0, 0, 0, time.UTC)
	_, err = eu1.CreateDeployments(t.Context(), []sccm.DeploymentSpec{{Name: "AP-CHG0000001-FRA-2026-12 Servers",
		Collection: "Patch - Frankfurt", UpdateGroup: "2026-12 Servers", Available: at, Deadline: at}})
	require.NoError(t, err)
	require.Len(t, b.estate.Site("EU1").State().Deployments, 1)
	require.Empty(t, b.estate.SCCM().State().Deployments, "the seed's site holds none of EU1's")
	require.Len(t, b.estate.State().Deployments, 1, "GET /state shows every site's")

	// Each site server serves its own site only.
	_, err = ps1.CreateDeployments(t.Context(), []sccm.DeploymentSpec{{Name: "AP-CHG0000001-FRA-2026-12 Office",
		Collection: "Patch - Frankfurt", UpdateGroup: "2026-12 Servers", Available: at, Deadline: at}})
	require.True(t, sccm.IsRefusal(err), "PS1 has no collection Patch - Frankfurt: %v", err)

	b.estate.SetSiteDown("EU1", true)
	_, err = eu1.DeploymentStatus(t.Context(), []string{"AP-CHG0000001-FRA-2026-12 Servers"})
	require.ErrorIs(t, err, winrm.ErrUnreachable)
	_, err = ps1.ResolveDevices(t.Context(), []string{"SQL01"})
	require.NoError(t, err, "the other site answers")
	b.estate.SetSiteDown("EU1", false)
	_, err = eu1.DeploymentStatus(t.Context(), []string{"AP-CHG0000001-FRA-2026-12 Servers"})
	require.NoError(t, err)
}
