package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/autopatch/autopatch/internal/config"
	"github.com/autopatch/autopatch/internal/store"
	"github.com/autopatch/autopatch/internal/tenants"
)

// tenantFlagDoc is the --tenant flag's text, the same in doctor, plan and
// report: an operator of several customers learns it once.
const tenantFlagDoc = "the tenant `NAME` of AUTOPATCH_TENANTS_FILE to work for (its settings, schedules and schema); " +
	"\"default\" is the tenant of the AUTOPATCH_* settings, as without the flag"

// chosenTenant is the tenant a command works for: the default tenant (the
// AUTOPATCH_* settings, the schema public) or one of the tenants file's.
type chosenTenant struct {
	name string
	// cfg is the process's settings with the tenant's own in place, as
	// serve builds the tenant (tenantConfig): what the command reads is
	// what serve would use for this tenant.
	cfg *config.Config
	// file is the tenants file's entry; nil for the default tenant.
	file *tenants.Tenant
}

// usageError is a --tenant that names nothing to work for: the operator's
// mistake (exit 2), unlike a tenants file that does not load (exit 1, as
// serve refuses to start on it).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// chooseTenant finds the tenant name (the --tenant flag) in cfg's tenants
// file. "" and "default" are the default tenant: the flag changes nothing
// unless it names a tenant of the file, so scripts written before tenants
// keep working, and "default" is the name the metrics and the file's
// reserved word already give the AUTOPATCH_* tenant.
func chooseTenant(cfg *config.Config, name string, getenv func(string) string) (chosenTenant, error) {
	if name == "" || name == tenants.DefaultName {
		if name != "" && cfg.TenantsFile != "" && !cfg.DefaultTenant() {
			// serve does not serve it: its checks or reports would be of
			// settings nobody set.
			return chosenTenant{}, &usageError{"--tenant default: this process has no default tenant: none of its own AUTOPATCH_* settings " +
				"(SCCM, SCOM, ServiceNow, schedules, webhook, API token) is set, so serve serves the tenants of AUTOPATCH_TENANTS_FILE only"}
		}
		return chosenTenant{name: tenants.DefaultName, cfg: cfg}, nil
	}
	if cfg.TenantsFile == "" {
		return chosenTenant{}, &usageError{fmt.Sprintf("--tenant %q: AUTOPATCH_TENANTS_FILE is not set: without a tenants file the only tenant is "+
			"the default one (the AUTOPATCH_* settings); set AUTOPATCH_TENANTS_FILE (or tenants_file in --config) as serve has it", name)}
	}
	list, err := loadTenants(cfg, getenv)
	if err != nil {
		return chosenTenant{}, err
	}
	for i := range list {
		if list[i].Name == name {
			return chosenTenant{name: name, cfg: tenantConfig(cfg, list[i]), file: &list[i]}, nil
		}
	}
	// The operator holds the file: naming its tenants here tells nothing
	// the file does not, and saves a look at it at 3 a.m.
	known := make([]string, 0, len(list)+1)
	if cfg.DefaultTenant() {
		known = append(known, tenants.DefaultName)
	}
	for _, t := range list {
		known = append(known, t.Name)
	}
	return chosenTenant{}, &usageError{fmt.Sprintf("--tenant %q: no such tenant in AUTOPATCH_TENANTS_FILE %s; its tenants: %s",
		name, cfg.TenantsFile, strings.Join(known, ", "))}
}

// loadTenants reads the tenants file as serve does: the same refusals, and
// secrets resolved from the same variables and files. Its errors name
// tenants, fields and variables, never a secret's value (internal/tenants).
func loadTenants(cfg *config.Config, getenv func(string) string) ([]tenants.Tenant, error) {
	list, err := tenants.Load(cfg.TenantsFile, getenv)
	if err != nil {
		return nil, fmt.Errorf("AUTOPATCH_TENANTS_FILE: %w", err)
	}
	return list, nil
}

// openStore opens the tenant's store: the schema public for the default
// tenant (store.Open, as before tenants), the tenant's own schema for a
// file tenant, whose sessions then see no other schema's tables.
func (c chosenTenant) openStore(ctx context.Context, command string) (*store.Store, error) {
	if err := c.cfg.ValidateDatabase(); err != nil {
		return nil, err
	}
	if c.file == nil {
		return store.Open(ctx, c.cfg.DatabaseURL.Reveal())
	}
	st, err := store.OpenSchema(ctx, c.cfg.DatabaseURL.Reveal(), "autopatch "+command+" "+c.name, c.file.Schema())
	if err != nil {
		return nil, fmt.Errorf("tenant %s: %w", c.name, err)
	}
	return st, nil
}

// isUsage reports whether err is the operator's --tenant mistake.
func isUsage(err error) bool {
	var u *usageError
	return errors.As(err, &u)
}

// at names a file tenant at the end of a message (" at tenant acme"): a
// change unknown to one customer may be another's, and the operator should
// see whose records were read. Nothing for the default tenant, whose
// messages stay as they were.
func (c chosenTenant) at() string {
	if c.file == nil {
		return ""
	}
	return " at tenant " + c.name
}

// explain adds to a database error of a file tenant whose schema lacks a
// table (SQLSTATE 42P01: never migrated, the tenant added to the file
// since) what to do about it; the query never falls back to public.
func (c chosenTenant) explain(err error) error {
	var pgErr *pgconn.PgError
	if c.file != nil && errors.As(err, &pgErr) && pgErr.Code == "42P01" {
		return fmt.Errorf("tenant %s: schema %s is not migrated (%w): run `autopatch migrate` with AUTOPATCH_TENANTS_FILE set, "+
			"or start serve with AUTOPATCH_MIGRATE_ON_START", c.name, c.file.Schema(), err)
	}
	return err
}
