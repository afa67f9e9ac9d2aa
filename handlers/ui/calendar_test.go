package ui

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestWindowLabel(t *testing.T) {
	t.Parallel()
	london, err := time.LoadLocation("Europe/London")
	require.NoError(t, err)
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	for _, tt := range []struct {
		name       string
		start, end time.Time
		want       string
	}{
		{"SameDay", time.Date(2026, 12, 12, 2, 0, 0, 0, london), time.Date(2026, 12, 12, 6, 0, 0, 0, london), "02:00–06:00 GMT"},
		{"PastMidnight", time.Date(2026, 12, 20, 23, 0, 0, 0, ny), time.Date(2026, 12, 21, 2, 0, 0, 0, ny), "23:00–02:00+1 EST"},
		// 00:30 GMT for three hours on the night London springs forward:
		// 01:00 GMT becomes 02:00 BST, so it ends at 04:30 BST.
		{"AcrossDST", time.Date(2027, 3, 28, 0, 30, 0, 0, london), time.Date(2027, 3, 28, 0, 30, 0, 0, london).Add(3 * time.Hour), "00:30 GMT–04:30 BST"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, windowLabel(tt.start, tt.end))
		})
	}
}

func TestZoneParam(t *testing.T) {
	t.Parallel()
	for v, ok := range map[string]bool{"": true, "UTC": true, "Europe/London": true, "Local": false, "EST": false, "Mars/Olympus": false, "../../etc/passwd": false} {
		_, got := zoneParam(v)
		require.Equal(t, ok, got, v)
	}
}
