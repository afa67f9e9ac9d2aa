package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSites(t *testing.T) {
	t.Parallel()

	t.Run("NoneMeansTheOneSiteOfToday", func(t *testing.T) {
		t.Parallel()
		cfg, err := Load(env(map[string]string{"AUTOPATCH_SCCM_ENDPOINT": "https://sccm01:5986/wsman"}), "")
		require.NoError(t, err)
		require.Empty(t, cfg.Sites)
		require.Nil(t, cfg.SiteCodes())
	})

	t.Run("EachSiteItsOwn", func(t *testing.T) {
		t.Parallel()
		secret := filepath.Join(t.TempDir(), "eu1")
		require.NoError(t, os.WriteFile(secret, []byte("eu-pw\n"), 0o600))
		cfg, err := Load(env(map[string]string{
			"AUTOPATCH_SCCM_SITES":             "PS1, EU1",
			"AUTOPATCH_SCCM_USER":              `CORP\svc-autopatch`,
			"AUTOPATCH_SCCM_PASSWORD":          "shared-pw",
			"AUTOPATCH_SCCM_TIMEOUT":           "2m",
			"AUTOPATCH_SCCM_PS1_ENDPOINT":      "https://ps1:5986/wsman",
			"AUTOPATCH_SCCM_EU1_ENDPOINT":      "https://eu1:5986/wsman",
			"AUTOPATCH_SCCM_EU1_USER":          `EU\svc-autopatch`,
			"AUTOPATCH_SCCM_EU1_PASSWORD_FILE": secret,
			"AUTOPATCH_SCCM_EU1_WORKERS":       "4",
		}), "")
		require.NoError(t, err)
		require.Equal(t, []string{"PS1", "EU1"}, cfg.SiteCodes())
		ps1, eu1 := cfg.Sites[0], cfg.Sites[1]
		require.Equal(t, "https://ps1:5986/wsman", ps1.WinRM.Endpoint)
		require.Equal(t, `CORP\svc-autopatch`, ps1.WinRM.User, "the shared account by default")
		require.Equal(t, "shared-pw", ps1.WinRM.Password.Reveal())
		require.Equal(t, 2, ps1.Workers)
		require.Equal(t, `EU\svc-autopatch`, eu1.WinRM.User)
		require.Equal(t, "eu-pw", eu1.WinRM.Password.Reveal())
		require.Equal(t, 4, eu1.Workers)
		require.Equal(t, "ntlm", eu1.WinRM.Auth, "AUTOPATCH_SCCM_* applies to every site")
		require.Equal(t, 2*60e9, float64(eu1.WinRM.Timeout))
	})

	t.Run("FromTheFile", func(t *testing.T) {
		t.Parallel()
		file := filepath.Join(t.TempDir(), "c.yaml")
		require.NoError(t, os.WriteFile(file, []byte("sccm_sites: PS1\nsccm_ps1_endpoint: https://ps1:5986/wsman\nsccm_ps1_workers: 3\n"), 0o600))
		cfg, err := Load(env(nil), file)
		require.NoError(t, err)
		require.Equal(t, []string{"PS1"}, cfg.SiteCodes())
		require.Equal(t, 3, cfg.Sites[0].Workers)
	})

	t.Run("EveryProblemAtOnce", func(t *testing.T) {
		t.Parallel()
		file := filepath.Join(t.TempDir(), "c.yaml")
		require.NoError(t, os.WriteFile(file, []byte("sccm_us1_endpoint: https://us1:5986/wsman\n"), 0o600))
		_, err := LoadServe(env(map[string]string{
			"AUTOPATCH_SCCM_SITES":        "PS1,ps2,PS1,EU1",
			"AUTOPATCH_SCCM_ENDPOINT":     "https://old:5986/wsman",
			"AUTOPATCH_SCCM_PS1_ENDPOINT": "ftp://ps1",
			"AUTOPATCH_SCCM_PS1_WORKERS":  "0",
			"AUTOPATCH_FORCE_COLLECTION":  "Patch - Forced", // forcing works per site (§10.1)
		}), file)
		require.Error(t, err)
		for _, want := range []string{
			`"ps2" is not a site code`,
			"PS1 is listed twice",
			`AUTOPATCH_SCCM_PS1_ENDPOINT="ftp://ps1" is invalid`,
			`AUTOPATCH_SCCM_PS1_WORKERS="0" is invalid`,
			"AUTOPATCH_SCCM_EU1_ENDPOINT is required",
			"AUTOPATCH_SCCM_ENDPOINT is set with AUTOPATCH_SCCM_SITES",
			"settings of sites not in AUTOPATCH_SCCM_SITES: sccm_us1_endpoint",
			"AUTOPATCH_SCCM_EU1_USER and AUTOPATCH_SCCM_EU1_PASSWORD",
		} {
			require.ErrorContains(t, err, want)
		}
		require.NotContains(t, err.Error(), "AUTOPATCH_SCCM_ENDPOINT is required", "with sites, the single site's settings are not asked for")
		require.NotContains(t, err.Error(), "AUTOPATCH_FORCE_COLLECTION", "a forced collection at every site")
	})
}
