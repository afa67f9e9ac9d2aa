package tenants

import (
	"go/ast"
	goparser "go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// schemaRefRE finds what would take a statement out of its session's
// schema: a name qualified by a schema autopatch owns, or a change of the
// search_path.
var schemaRefRE = regexp.MustCompile(`(?i)\b(public|tenant_[a-z0-9_]+)\s*\.\s*"?[a-z_]|search_path`)

// searchPathSetters are the only places allowed to set the search_path:
// the tenant's pool (store.OpenSchema) and its migrations' transaction.
var searchPathSetters = map[string]bool{
	"internal/store/store.go":  true,
	"migrations/migrations.go": true,
}

// TestNoStatementNamesASchema reads every string literal of the module's Go
// code (tests aside) and every migration: none names a schema or sets the
// search_path, except where a tenant's pool and migrations set it. With
// TestTenantIsolation (every table name resolves in the session's own
// schema), this is what keeps every query inside its tenant. River's own
// statements are qualified by Config.Schema (TestTenantRiverClients).
func TestNoStatementNamesASchema(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	var checked int
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case strings.HasPrefix(rel, "migrations/") && strings.HasSuffix(path, ".sql"):
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			for i, line := range strings.Split(string(b), "\n") {
				code, _, _ := strings.Cut(line, "--")
				require.False(t, schemaRefRE.MatchString(code), "%s:%d names a schema: %s", rel, i+1, line)
			}
			checked++
		case strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") && !searchPathSetters[rel]:
			f, err := goparser.ParseFile(token.NewFileSet(), path, nil, goparser.SkipObjectResolution)
			require.NoError(t, err)
			ast.Inspect(f, func(n ast.Node) bool {
				lit, ok := n.(*ast.BasicLit)
				if ok && lit.Kind == token.STRING && schemaRefRE.MatchString(lit.Value) {
					t.Errorf("%s: a string names a schema or the search_path: %s", rel, lit.Value)
				}
				return true
			})
			checked++
		}
		return nil
	})
	require.NoError(t, err)
	require.Greater(t, checked, 100, "the walk found the module's files")
}
