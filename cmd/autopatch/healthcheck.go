package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// runHealthcheck is `autopatch healthcheck`: GET a URL (by default this
// host's /readyz) and exit 0 on 200, 1 otherwise. The container image is
// distroless (no shell, no curl), so Docker's and compose's HEALTHCHECK use
// the binary itself.
func runHealthcheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: autopatch healthcheck [--url URL] [--timeout D]

GETs URL and exits 0 when it answers 200, 1 otherwise, printing the answer.
For container healthchecks: the image has no shell or curl.

Flags:
`)
		fs.PrintDefaults()
	}
	url := fs.String("url", "http://127.0.0.1:8080/readyz", "the `URL` to check")
	timeout := fs.Duration("timeout", 5*time.Second, "`deadline` of the request")
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		fmt.Fprintf(stderr, "autopatch healthcheck: %v\n", err)
		return 2
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "autopatch healthcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprintf(stdout, "%d %s\n", resp.StatusCode, strings.TrimSpace(string(body)))
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}
