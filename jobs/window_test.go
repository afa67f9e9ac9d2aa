package jobs

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestQuickRetry: a blip of a few seconds after an approval is retried
// every second; a long outage backs off to the windows' 30 s.
func TestQuickRetry(t *testing.T) {
	t.Parallel()
	var total time.Duration
	prev := time.Duration(0)
	for attempt := 1; attempt <= 40; attempt++ {
		d := quickRetry(attempt)
		require.GreaterOrEqual(t, d, prev, "attempt %d", attempt)
		require.LessOrEqual(t, d, 30*time.Second, "attempt %d", attempt)
		if attempt <= 5 {
			total += d
		}
		prev = d
	}
	require.Equal(t, 5*time.Second, total, "the first five retries cover five seconds")
	require.Equal(t, 30*time.Second, quickRetry(40))
}
