package store

import (
	"context"
	"fmt"
	"regexp"
)

// schemaRE is what River accepts as a schema (river@v0.51.1 client.go,
// postgresSchemaNameRE), less upper case, which PostgreSQL folds unless
// quoted: a schema autopatch and River both address by the same name.
var schemaRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// CheckSchema reports whether schema is a name OpenSchema accepts.
func CheckSchema(schema string) error {
	if !schemaRE.MatchString(schema) || len(schema) > 63 {
		return fmt.Errorf("store: schema %q is invalid: want lower-case letters, digits and _, starting with a letter or _", schema)
	}
	return nil
}

// OpenSchema is OpenAs for one tenant (docs/tenants.md): every
// session of the pool has search_path set to schema alone, so autopatch's
// statements, which never name a schema, read and write the tenant's
// tables and no other's. public is not on the path: a table missing from
// the schema is an error, never a silent read of another tenant's (or the
// default tenant's) rows. The schema need not exist yet; creating it and
// its tables is migrations.ApplySchema's. opts are applied after the
// URL's settings (WithMaxConns: the tenant's pool size).
func OpenSchema(ctx context.Context, url, name, schema string, opts ...Option) (*Store, error) {
	if err := CheckSchema(schema); err != nil {
		return nil, err
	}
	return open(ctx, url, name, schema, opts)
}
