// Package serveproc holds what the demo, the compressed month (internal/scalemonth)
// and the crash suite (internal/chaos)
// share to run `autopatch serve` as a child process and to talk to it as
// ServiceNow does: a free loopback port, an environment without the
// caller's own AUTOPATCH_* settings, and signed webhook deliveries.
package serveproc

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("serveproc: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// WithoutAutopatch drops the AUTOPATCH_* variables from env, so a child
// serve sees only the settings its caller gives it.
func WithoutAutopatch(env []string) []string {
	var out []string
	for _, e := range env {
		if !strings.HasPrefix(e, "AUTOPATCH_") {
			out = append(out, e)
		}
	}
	return out
}

// PostSigned posts body as JSON to url, signed as ServiceNow's Script
// Include signs a webhook (docs/architecture.md §4.3), and returns the status and
// the response body.
func PostSigned(client *http.Client, url, secret string, body any) (int, string, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return 0, "", err
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + string(raw)))
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(raw))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Autopatch-Timestamp", ts)
	req.Header.Set("X-Autopatch-Signature", "sha256="+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// ExitedError is WaitReady's answer when serve exited before it was ready.
type ExitedError struct{ Err error }

func (e *ExitedError) Error() string { return fmt.Sprintf("serve exited during start-up (%v)", e.Err) }

// WaitReady polls apiURL/readyz until it answers 200, serve exits (its
// cmd.Wait result arrives on exited: an *ExitedError), ctx ends, or within
// has passed.
func WaitReady(ctx context.Context, apiURL string, exited <-chan error, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(apiURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-exited:
			return &ExitedError{Err: err}
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("serve not ready after %s", within)
		}
	}
}

// Stop stops serve gracefully (SIGTERM), as an operator would, and kills it
// after grace; exited carries its cmd.Wait result.
func Stop(cmd *exec.Cmd, exited <-chan error, grace time.Duration) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-exited
	}
}
