// Package serveproc holds what the demo and the crash suite (internal/chaos)
// share to run `autopatch serve` as a child process and to talk to it as
// ServiceNow does: a free loopback port, an environment without the
// caller's own AUTOPATCH_* settings, and signed webhook deliveries.
package serveproc

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
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
