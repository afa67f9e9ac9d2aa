// Command dump writes every PowerShell template of the SCCM and SCOM connectors
// into a directory, one file per template named after it (sccm.create_deployments,
// scom.raise_alerts, …), so that a parser's error reads "sccm.create_deployments:42:7".
// The templates are taken from the connectors' Templates() at run time, never
// copied, so the check sees whatever the templates hold on this branch.
//
//	go run ./internal/parsecheck/dump DIR
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/autopatch/autopatch/connectors/sccm"
	"github.com/autopatch/autopatch/connectors/scom"
	"github.com/autopatch/autopatch/connectors/winrm"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: dump DIR")
		os.Exit(2)
	}
	if err := dump(os.Args[1], append(sccm.Templates(), scom.Templates()...)); err != nil {
		fmt.Fprintln(os.Stderr, "dump:", err)
		os.Exit(1)
	}
}

func dump(dir string, templates []winrm.Template) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	seen := make(map[string]bool, len(templates))
	for _, t := range templates {
		// A name is a file name here; refuse anything that could leave dir or
		// overwrite another template's file.
		if t.Name == "" || strings.ContainsAny(t.Name, `/\`) || t.Name == "." || t.Name == ".." || seen[t.Name] {
			return fmt.Errorf("template name %q is empty, a path or a duplicate", t.Name)
		}
		seen[t.Name] = true
		if err := os.WriteFile(filepath.Join(dir, t.Name), []byte(t.Script), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", t.Name, err)
		}
	}
	fmt.Printf("dump: %d templates in %s\n", len(templates), dir)
	return nil
}
