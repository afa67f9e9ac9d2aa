package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/autopatch/autopatch/internal/buildinfo"
)

// runVersion is `autopatch version`: the module version, VCS revision and
// time, and Go version the toolchain recorded in this binary.
func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: autopatch version [--format text|json]\n\nPrints the module version, VCS revision and time, and Go version of this binary\n(from its embedded build information; \"unknown\" for what was not recorded).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	format := fs.String("format", "text", "output `format`: text or json")
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	info := buildinfo.Read()
	switch *format {
	case "text":
		fmt.Fprintln(stdout, info.String())
	case "json":
		b, _ := json.MarshalIndent(info, "", "  ")
		fmt.Fprintln(stdout, string(b))
	default:
		fmt.Fprintf(stderr, "autopatch version: --format %q: want text or json\n", *format)
		return 2
	}
	return 0
}
