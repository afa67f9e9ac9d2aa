package safety

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFormatUTC(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 12, 3, 7, 5, 0, 0, time.UTC)
	for _, tt := range []struct {
		name     string
		from, to time.Time
		want     string
	}{
		{"Minutes", day, day.Add(2 * time.Hour), "Thu 2026-12-03 07:05–09:05 UTC"},
		{"SecondsApart", day.Add(28 * time.Second), day.Add(36 * time.Second), "Thu 2026-12-03 07:05:28–07:05:36 UTC"},
		{"AcrossMidnight", day.Add(16 * time.Hour), day.Add(19 * time.Hour), "Thu 2026-12-03 23:05 – Fri 2026-12-04 02:05 UTC"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, formatUTC(tt.from, tt.to))
		})
	}
}
