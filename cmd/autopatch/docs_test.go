package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDocsReferences: every "docs/architecture.md §n" in the repository
// (code, scripts, README, OpenAPI) names a section the document has, and
// nothing points to a design document outside the repository.
func TestDocsReferences(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../docs/architecture.md")
	require.NoError(t, err)
	doc := string(b)
	sections := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#{2,3} ([0-9]+(?:\.[0-9]+)?)\.? `).FindAllStringSubmatch(doc, -1) {
		sections[m[1]] = true
	}
	// §1.5 is the fifth point of §1's numbered list.
	for _, m := range regexp.MustCompile(`(?m)^([0-9])\. \*\*`).FindAllStringSubmatch(doc[:strings.Index(doc, "\n## 2.")], -1) {
		sections["1."+m[1]] = true
	}
	require.True(t, sections["4.3"] && sections["9.6"], "headings found: %v", sections)

	ref := regexp.MustCompile(`docs/architecture\.md(?:\)|\s|//|\*|#)*§([0-9]+(?:\.[0-9]+)?)`)
	outside := regexp.MustCompile(`ARCHITECTURE(\.md)?\b`)
	// The project's source documents live beside the repository, not in it.
	beside := regexp.MustCompile(`\.\./shared/|shared/seeds`)
	var refs int
	err = filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != "../.." && (strings.HasPrefix(name, ".") || name == "bin" || name == "node_modules" || name == "docs") {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(name) {
		case ".go", ".js", ".md", ".yaml", ".yml", ".json", ".sh", ".html", ".xml":
		default:
			return nil
		}
		if name == "docs_test.go" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range ref.FindAllStringSubmatch(string(b), -1) {
			refs++
			require.True(t, sections[m[1]], "%s: docs/architecture.md §%s does not exist", path, m[1])
		}
		require.False(t, outside.MatchString(string(b)), "%s points to an ARCHITECTURE document outside the repository", path)
		require.False(t, beside.MatchString(string(b)), "%s points to a document outside the repository", path)
		return nil
	})
	require.NoError(t, err)
	require.Greater(t, refs, 20)
}
