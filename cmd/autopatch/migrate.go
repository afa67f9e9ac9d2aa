package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/autopatch/autopatch/internal/config"
	"github.com/autopatch/autopatch/internal/store"
	"github.com/autopatch/autopatch/migrations"
)

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "optional YAML configuration `file`")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: autopatch migrate [--config FILE]

Applies autopatch's and River's migrations to AUTOPATCH_DATABASE_URL. Safe to
run again and from several replicas at once (an advisory lock serialises them).

Flags:
`)
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	cfg, err := loadConfig(*configFile)
	if err == nil {
		err = cfg.ValidateDatabase()
	}
	if err != nil {
		fmt.Fprintf(stderr, "autopatch migrate: %v\n", err)
		return 1
	}
	logger := newLogger(cfg, stderr)
	st, err := store.Open(ctx, cfg.DatabaseURL.Reveal())
	if err != nil {
		fmt.Fprintf(stderr, "autopatch migrate: %v\n", err)
		return 1
	}
	defer st.Close()
	if err := migrations.Apply(ctx, st.Pool, logger); err != nil {
		fmt.Fprintf(stderr, "autopatch migrate: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "autopatch migrate: database is up to date")
	return 0
}

// parseFlags parses args; done is true when the command should return code
// now (--help, or a usage error).
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) (code int, done bool) {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0, true
		}
		return 2, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "autopatch %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 2, true
	}
	return 0, false
}

func loadConfig(file string) (*config.Config, error) {
	return config.Load(os.Getenv, file)
}
