package stallwatch

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSeesAStall stops the whole process for 300 ms (SIGSTOP from a child,
// then SIGCONT), as a host descheduling the VM would, and expects the
// watch to have seen a stall at least about that long.
func TestSeesAStall(t *testing.T) {
	w := Start()
	defer w.Stop()
	time.Sleep(50 * time.Millisecond)
	pid := strconv.Itoa(os.Getpid())
	cmd := exec.Command("sh", "-c", "kill -STOP "+pid+"; sleep 0.3; kill -CONT "+pid)
	require.NoError(t, cmd.Run())
	require.Eventually(t, func() bool { return w.Longest() >= 250*time.Millisecond }, 10*time.Second, 10*time.Millisecond,
		"longest stall seen: %s", w.Longest())
}
