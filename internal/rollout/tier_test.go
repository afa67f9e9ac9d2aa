package rollout

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTierGates(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 12, 20, 0, 0, 0, time.UTC)
	first := Window{"DB", t0}
	second := Window{"WEB", t0.Add(4 * time.Hour)}
	same := Window{"WEB-SAME", t0}
	members := []Member{
		{Device: "WEB03", Service: "Payroll", Tier: "frontend", Window: first},
		{Device: "WEB01", Service: "Payroll", Tier: "frontend", Window: second},
		{Device: "WEB02", Service: "payroll ", Tier: "frontend", Window: second},
		{Device: "WEB09", Service: "Payroll", Tier: "frontend", Window: same},
		{Device: "APP01", Service: "Payroll", Tier: "middle", Window: second},
		{Device: "SHOP01", Service: "Shop", Tier: "frontend", Window: second},
	}
	for _, tt := range []struct {
		name   string
		failed []Failed
		want   []Gate
	}{
		{"NothingFailed", nil, nil},
		{"BackendFailedEarlier", []Failed{{Device: "SQL01", Service: "PAYROLL", Tier: "backend", Start: t0}},
			[]Gate{{second, "tier gating: frontend members would patch while service Payroll: SQL01 (backend) failed in an earlier window"}}},
		{"MiddleFailedEarlier", []Failed{{Device: "APP02", Service: "Payroll", Tier: "middle", Start: t0}, {Device: "SQL01", Service: "Payroll", Tier: "backend", Start: t0}},
			[]Gate{{second, "tier gating: frontend members would patch while service Payroll: APP02 (middle), SQL01 (backend) failed in an earlier window"}}},
		{"FrontendFailedDoesNotGate", []Failed{{Device: "WEB05", Service: "Payroll", Tier: "frontend", Start: t0}}, nil},
		{"SameWindowDoesNotGate", []Failed{{Device: "SQL01", Service: "Payroll", Tier: "backend", Start: second.Start}}, nil},
		{"OtherServiceDoesNotGate", []Failed{{Device: "SQL07", Service: "Billing", Tier: "backend", Start: t0}}, nil},
		{"NoServiceDoesNotGate", []Failed{{Device: "SQL08", Service: "", Tier: "backend", Start: t0}}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, TierGates(members, tt.failed))
		})
	}
}
