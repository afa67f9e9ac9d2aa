// Command gen writes integrations/servicenow/autopatch.update_set.xml from
// the scripts and JSON files beside it (see package updateset). With
// --scripts DIR it also writes every script embedded in the update set to
// DIR, one file each, for the JavaScript parse check (make check/parsers).
//
//	go run ./internal/updateset/gen [--dir integrations/servicenow] [--out FILE] [--scripts DIR]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/autopatch/autopatch/internal/updateset"
)

func main() {
	dir := flag.String("dir", "integrations/servicenow", "the `directory` of the ServiceNow scripts; the update set is written there")
	scripts := flag.String("scripts", "", "also write every embedded script to `DIR`")
	out := flag.String("out", "", "write the update set to `FILE` (default: "+updateset.FileName+" in --dir)")
	flag.Parse()
	if *out == "" {
		*out = filepath.Join(*dir, updateset.FileName)
	}
	if err := run(*dir, *out, *scripts); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(dir, out, scripts string) error {
	recs, err := updateset.Load(dir)
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, updateset.Build(recs), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "gen: %s: %d records\n", out, len(recs))
	if scripts == "" {
		return nil
	}
	if err := os.MkdirAll(scripts, 0o755); err != nil {
		return err
	}
	for _, s := range updateset.Scripts(recs) {
		name := strings.NewReplacer("/", "_", " ", "_").Replace(s.Record + "." + s.Field + ".js")
		if err := os.WriteFile(filepath.Join(scripts, name), []byte(s.Text), 0o644); err != nil {
			return err
		}
	}
	return nil
}
