package main

import (
	"context"
	"fmt"
	"io"
)

// runDemo is a placeholder until the demo issue lands.
func runDemo(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "autopatch demo: not built yet; it arrives with the demo issue (#9). Try `autopatch sim --help` and `autopatch plan --help`.")
	return 1
}
