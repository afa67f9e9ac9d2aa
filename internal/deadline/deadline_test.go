package deadline

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPolicyOf(t *testing.T) {
	t.Parallel()

	// December 2026: Patch Tuesday is the 8th.
	start := time.Date(2026, 12, 12, 20, 0, 0, 0, time.UTC)
	pt := time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)
	explicit := time.Date(2026, 12, 20, 10, 0, 0, 0, time.FixedZone("CET", 3600))
	for _, tt := range []struct {
		name     string
		policy   Policy
		class    Classification
		explicit *time.Time
		want     time.Time
	}{
		{"NormalDefault", Policy{}, Normal, nil, pt.Add(30 * 24 * time.Hour)},
		{"EmptyIsNormal", Policy{}, "", nil, pt.Add(30 * 24 * time.Hour)},
		{"NormalConfigured", Policy{Normal: 48 * time.Hour}, Normal, nil, pt.Add(48 * time.Hour)},
		{"Critical", Policy{}, Critical, nil, time.Date(2026, 12, 22, 0, 0, 0, 0, time.UTC)},
		{"Emergency", Policy{}, Emergency, nil, start.Add(24 * time.Hour)},
		{"EmergencyConfigured", Policy{Emergency: time.Hour}, Emergency, nil, start.Add(time.Hour)},
		{"ExplicitWins", Policy{}, Emergency, &explicit, time.Date(2026, 12, 20, 9, 0, 0, 0, time.UTC)},
		// A change starting late in the month before its Patch Tuesday
		// still belongs to its start's month.
		{"CycleIsStartMonth", Policy{}, Critical, nil, time.Date(2026, 12, 22, 0, 0, 0, 0, time.UTC)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.policy.Of(tt.class, start, tt.explicit)
			require.True(t, tt.want.Equal(got), "want %s, got %s", tt.want, got)
			require.Equal(t, time.UTC, got.Location())
		})
	}
}

func TestDeferralAllowed(t *testing.T) {
	t.Parallel()

	dl := time.Date(2026, 12, 22, 0, 0, 0, 0, time.UTC)
	require.True(t, DeferralAllowed(dl, dl.Add(7*24*time.Hour)), "exactly 7 days")
	require.True(t, DeferralAllowed(dl, dl.Add(-time.Hour)), "before the deadline")
	require.False(t, DeferralAllowed(dl, dl.Add(7*24*time.Hour+time.Second)))
	require.False(t, DeferralAllowed(dl, dl.Add(8*24*time.Hour)), "8 days")
}

func TestEffective(t *testing.T) {
	t.Parallel()

	dl := time.Date(2026, 12, 22, 0, 0, 0, 0, time.UTC)
	later, earlier := dl.Add(time.Hour), dl.Add(-time.Hour)
	require.Equal(t, dl, Effective(dl, nil))
	require.Equal(t, later, Effective(dl, &later))
	require.Equal(t, dl, Effective(dl, &earlier))
	require.True(t, Classification("critical").Valid())
	require.False(t, Classification("urgent").Valid())
}

func TestWhy(t *testing.T) {
	t.Parallel()

	start := time.Date(2026, 12, 12, 20, 0, 0, 0, time.UTC)
	require.Equal(t, "critical change: Patch Tuesday 2026-12-08 + 14 days", Policy{}.Why(Critical, start, nil))
	require.Equal(t, "emergency change: its start + 1 day", Policy{}.Why(Emergency, start, nil))
	require.Equal(t, "normal change: Patch Tuesday 2026-12-08 + 1h30m0s", Policy{Normal: 90 * time.Minute}.Why("", start, nil))
	require.Equal(t, "critical change, deadline given by the change", Policy{}.Why(Critical, start, &start))
}
