package winrm

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/go-ntlmssp"
	"github.com/jcmturner/gokrb5/v8/spnego"
	mz "github.com/masterzen/winrm"
	"github.com/masterzen/winrm/soap"
)

// SOAP actions the library sends that we treat specially.
const (
	actionSignal = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal"
	actionDelete = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
)

// wsmanCodeTimedOut is the WSManFault code of an expired OperationTimeout.
const wsmanCodeTimedOut = "2150858793"

// newRoundTripper builds the HTTP transport shared by all calls of a Client, so
// that TCP and TLS connections are reused between calls.
func newRoundTripper(cfg *Config, tlsCfg *tls.Config) (*http.Transport, http.RoundTripper) {
	base := &http.Transport{
		// WinRM is an internal protocol and NTLM does not survive proxies.
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: 30 * time.Second,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false, // WinRM (http.sys) speaks HTTP/1.1
	}
	if cfg.Auth == AuthNTLM {
		return base, ntlmssp.Negotiator{RoundTripper: noBasic{base}}
	}
	return base, base
}

// noBasic lets the NTLM negotiator talk but stops it from falling back to Basic.
type noBasic struct{ rt http.RoundTripper }

func (n noBasic) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasPrefix(req.Header.Get("Authorization"), "Basic ") {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, errBasicDowngrade
	}
	return n.rt.RoundTrip(req)
}

// callTransport is a masterzen/winrm Transporter bound to one call. The library
// has no context support; binding the call's ctx to every HTTP request is what
// makes a timed-out call stop at once instead of leaking goroutines until some
// library timeout.
type callTransport struct {
	c   *Client
	ctx context.Context
	// fail aborts the call with the first transport error. The library swallows
	// errors of Send, so without this a failed Send would look like a timeout.
	fail func(error)

	mu        sync.Mutex
	sent      int // request bytes, for the log
	receivedB int // response bytes, for the log
}

// Transport is called by the library with its Endpoint; ours is already built.
func (t *callTransport) Transport(*mz.Endpoint) error { return nil }

// Post sends one SOAP message and returns the answer body.
func (t *callTransport) Post(_ *mz.Client, msg *soap.SoapMessage) (string, error) {
	body := msg.String()
	action := soapAction(body)
	ctx := t.ctx
	cleanup := action == actionSignal || action == actionDelete
	if cleanup {
		// Terminating the command and deleting the shell must happen even when
		// the call timed out: use a detached, short deadline of their own.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(t.ctx), cleanupTimeout)
		defer cancel()
	}
	answer, err := t.c.post(ctx, body)
	t.mu.Lock()
	t.sent += len(body)
	t.receivedB += len(answer)
	t.mu.Unlock()
	if err != nil {
		if errors.Is(err, errOperationTimeout) {
			return "", err // the library polls again
		}
		if cleanup {
			t.c.logger.Debug("winrm: cleanup request failed", "host", t.c.host, "error", err)
		} else {
			t.fail(err)
		}
		return "", err
	}
	return answer, nil
}

func (t *callTransport) bytes() (sent, received int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sent, t.receivedB
}

// soapAction extracts the WS-Addressing Action of a message built by the library.
func soapAction(body string) string {
	i := strings.Index(body, ":Action ")
	if i < 0 {
		return ""
	}
	rest := body[i:]
	j := strings.IndexByte(rest, '>')
	if j < 0 {
		return ""
	}
	rest = rest[j+1:]
	k := strings.IndexByte(rest, '<')
	if k < 0 {
		return ""
	}
	return strings.TrimSpace(rest[:k])
}

// post sends one SOAP envelope and maps the HTTP answer.
func (c *Client) post(ctx context.Context, body string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url.String(), strings.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/soap+xml;charset=UTF-8")
	switch c.cfg.Auth {
	case AuthBasic, AuthNTLM:
		// With NTLM the negotiator turns these into NTLM messages.
		req.SetBasicAuth(c.cfg.User, c.cfg.Password)
	case AuthKerberos:
		if err := spnego.SetSPNEGOHeader(c.krb, req, c.cfg.KrbSPN); err != nil {
			return "", &kerberosError{msg: err.Error()}
		}
	}
	resp, err := c.httpc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	limit := int64(4*c.cfg.MaxEnvelopeSize + 64<<10)
	answer, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return "", fmt.Errorf("read answer: %w", err)
	}
	if int64(len(answer)) > limit {
		return "", fmt.Errorf("answer larger than %d bytes", limit)
	}
	isSOAP := strings.Contains(resp.Header.Get("Content-Type"), "application/soap+xml")
	switch {
	case resp.StatusCode == http.StatusOK && isSOAP:
		return string(answer), nil
	case resp.StatusCode == http.StatusUnauthorized:
		return "", &statusError{Status: resp.StatusCode}
	case isSOAP && len(answer) > 0:
		if f := parseFault(answer); f != nil {
			if f.WSManCode == wsmanCodeTimedOut || strings.HasSuffix(f.Subcode, ":TimedOut") {
				return "", errOperationTimeout
			}
			return "", f
		}
	}
	return "", &statusError{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type")}
}

// parseFault reads a SOAP 1.2 fault; unqualified tags match any namespace.
func parseFault(body []byte) *FaultError {
	var env struct {
		Code    string `xml:"Body>Fault>Code>Value"`
		Subcode string `xml:"Body>Fault>Code>Subcode>Value"`
		Reason  string `xml:"Body>Fault>Reason>Text"`
		Detail  struct {
			Code    string `xml:"Code,attr"`
			Message string `xml:"Message"`
		} `xml:"Body>Fault>Detail>WSManFault"`
	}
	if err := xml.NewDecoder(bytes.NewReader(body)).Decode(&env); err != nil {
		return nil
	}
	if env.Code == "" && env.Subcode == "" && env.Detail.Code == "" {
		return nil
	}
	reason := strings.TrimSpace(env.Reason)
	if reason == "" {
		reason = strings.TrimSpace(env.Detail.Message)
	}
	return &FaultError{
		Code:      strings.TrimSpace(env.Code),
		Subcode:   strings.TrimSpace(env.Subcode),
		WSManCode: strings.TrimSpace(env.Detail.Code),
		Reason:    reason,
	}
}

// kerberosError is a failure to obtain or build a Kerberos ticket.
type kerberosError struct{ msg string }

func (e *kerberosError) Error() string { return "kerberos: " + e.msg }

// network reports whether the KDC could not be reached (gokrb5 flattens its
// errors into text, hence the string test).
func (e *kerberosError) network() bool { return strings.Contains(e.msg, "Networking_Error") }
