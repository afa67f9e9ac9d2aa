package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/autopatch/autopatch/internal/config"
	"github.com/autopatch/autopatch/internal/store"
	"github.com/autopatch/autopatch/internal/tenants"
	"github.com/autopatch/autopatch/migrations"
)

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "optional YAML configuration `file`")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: autopatch migrate [--config FILE]

Applies autopatch's and River's migrations to AUTOPATCH_DATABASE_URL, and to
the schema of every tenant of AUTOPATCH_TENANTS_FILE. Safe to run again and
from several replicas at once (an advisory lock serialises them).

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
	if err := migrateTenants(ctx, cfg, logger); err != nil {
		fmt.Fprintf(stderr, "autopatch migrate: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "autopatch migrate: database is up to date")
	return 0
}

// migrateTenants migrates the schema of every tenant of the tenants file,
// if any. The file is loaded whole, secrets included, so that migrate
// refuses the file serve would refuse.
func migrateTenants(ctx context.Context, cfg *config.Config, logger *slog.Logger) error {
	if cfg.TenantsFile == "" {
		return nil
	}
	list, err := tenants.Load(cfg.TenantsFile, os.Getenv)
	if err != nil {
		return fmt.Errorf("AUTOPATCH_TENANTS_FILE: %w", err)
	}
	for _, t := range list {
		st, err := store.OpenSchema(ctx, cfg.DatabaseURL.Reveal(), "autopatch migrate "+t.Name, t.Schema())
		if err != nil {
			return fmt.Errorf("tenant %q: %w", t.Name, err)
		}
		err = migrations.ApplySchema(ctx, st.Pool, t.Schema(), logger)
		st.Close()
		if err != nil {
			return fmt.Errorf("tenant %q: %w", t.Name, err)
		}
	}
	return nil
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
