// Command withpg runs a command with a throwaway PostgreSQL cluster, its URL
// in an environment variable, and removes the cluster afterwards. When the
// variable is already set, it runs the command against that database.
//
//	go run ./internal/pgtemp/withpg -env TEST_DATABASE_URL -- go test ./...
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/autopatch/autopatch/internal/pgtemp"
)

func main() {
	envName := flag.String("env", "TEST_DATABASE_URL", "environment `variable` that receives the database URL")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: withpg [-env NAME] -- command [args...]")
		os.Exit(2)
	}
	os.Exit(run(*envName, flag.Args()))
}

func run(envName string, args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if os.Getenv(envName) == "" {
		c, err := pgtemp.Start(ctx)
		if err != nil {
			fmt.Fprintf(os.Stderr, "withpg: %v\n", err)
			return 1
		}
		defer c.Close()
		os.Setenv(envName, c.URL("postgres"))
		fmt.Fprintf(os.Stderr, "withpg: throwaway PostgreSQL at %s (%s)\n", c.URL("postgres"), envName)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "withpg: %v\n", err)
		return 1
	}
	// Forward the interrupt so the command stops gracefully and the
	// cluster is removed after it.
	go func() {
		<-ctx.Done()
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}()
	err := cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		return 1
	}
	return 0
}
