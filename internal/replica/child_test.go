package replica

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// startChild runs this test binary as a replica that registers and then
// waits to be killed (TestChildReplica).
func startChild(t *testing.T, url string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestChildReplica$")
	cmd.Env = append(os.Environ(), "REPLICA_CHILD_URL="+url)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd
}

// TestChildReplica is the child of RealProcessKill; on its own it does
// nothing.
func TestChildReplica(t *testing.T) {
	url := os.Getenv("REPLICA_CHILD_URL")
	if url == "" {
		return
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	_, err = Register(ctx, pool, "child", quiet, Options{})
	require.NoError(t, err)
	select {}
}
