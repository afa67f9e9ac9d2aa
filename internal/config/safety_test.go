package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSafetySettings(t *testing.T) {
	t.Parallel()
	cfg, err := Load(env(nil), "")
	require.NoError(t, err)
	require.Equal(t, "reject", cfg.Safety.RequestPolicy)
	require.Equal(t, "warn", cfg.Safety.PlanPolicy)
	require.Empty(t, cfg.ServicesFile, "the services file is optional")

	cfg, err = Load(env(map[string]string{
		"AUTOPATCH_SAFETY_REQUEST_POLICY": "warn",
		"AUTOPATCH_SAFETY_PLAN_POLICY":    "hold",
		"AUTOPATCH_SERVICES_FILE":         "services.yaml",
	}), "")
	require.NoError(t, err)
	require.Equal(t, "warn", cfg.Safety.RequestPolicy)
	require.Equal(t, "hold", cfg.Safety.PlanPolicy)
	require.Equal(t, "services.yaml", cfg.ServicesFile)

	for _, tc := range []struct{ name, value, want string }{
		{"AUTOPATCH_SAFETY_REQUEST_POLICY", "hold", `AUTOPATCH_SAFETY_REQUEST_POLICY="hold" is invalid: want reject or warn`},
		{"AUTOPATCH_SAFETY_PLAN_POLICY", "reject", `AUTOPATCH_SAFETY_PLAN_POLICY="reject" is invalid: want warn or hold`},
	} {
		_, err := Load(env(map[string]string{tc.name: tc.value}), "")
		require.ErrorContains(t, err, tc.want)
	}
}
