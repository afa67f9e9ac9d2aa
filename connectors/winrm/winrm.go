// Package winrm runs autopatch's PowerShell templates on a Windows host over
// WS-Management (github.com/masterzen/winrm).
//
// Every remote action is a constant PowerShell template plus one data value.
// Nothing from outside is ever spliced into script text: the command line is
// always CommandLine() (powershell.exe -EncodedCommand <Bootstrap>), and the
// template and the data travel base64-encoded in a temporary file that echo
// commands of the same shell write in chunks under cmd.exe's command-line limit;
// the bootstrap reads it as its redirected stdin (see Commands for why WinRS
// stdin is not used). The template answers with one JSON document on stdout,
// which Run decodes. See Bootstrap for the remote side and DecodeInvocation for
// simulators.
//
// Host requirements: WinRM over HTTPS (5986) is the supported setup. masterzen's
// client does not implement WS-Man message encryption, so NTLM and Kerberos over
// plain HTTP only work when the host sets AllowUnencrypted=true; Basic needs
// Auth/Basic=true on the host and a local account.
package winrm

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	krbclient "github.com/jcmturner/gokrb5/v8/client"
	krbconfig "github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/credentials"
	mz "github.com/masterzen/winrm"
)

// Authentication mechanisms for Config.Auth.
const (
	AuthBasic    = "basic"
	AuthNTLM     = "ntlm"
	AuthKerberos = "kerberos"
)

// Defaults applied by New.
const (
	// DefaultTimeout bounds one call (shell creation to shell deletion).
	DefaultTimeout = 2 * time.Minute
	// DefaultMaxEnvelopeSize is Windows' default MaxEnvelopeSizekb (500) in bytes.
	DefaultMaxEnvelopeSize = 500 * 1024
	// DefaultKrbConfig is where krb5.conf is read from when Config.KrbConfig is empty.
	DefaultKrbConfig = "/etc/krb5.conf"
)

const (
	// operationTimeout is the WS-Man OperationTimeout: how long the host may hold
	// one Receive before answering "no output yet" (the library then polls again).
	operationTimeout = "PT60S"
	// cleanupTimeout bounds each of the best-effort Signal and Delete requests
	// that end a call, including a call that timed out.
	cleanupTimeout = 15 * time.Second
	// maxAnswerBytes caps what stdout/stderr may hold in memory.
	maxAnswerBytes = 64 << 20
	// minEnvelopeSize leaves room for a command line and a useful Receive after
	// the SOAP headers.
	minEnvelopeSize = 16 * 1024
)

// Config says how to reach one Windows host.
type Config struct {
	// Endpoint is the WS-Man URL, e.g. https://sccm01.corp.example:5986/wsman.
	// Scheme http or https; the port defaults to 5985/5986 and the path to /wsman.
	// It must not hold credentials, a query or a fragment.
	Endpoint string
	// User is "user", "DOMAIN\user" or "user@domain". For Kerberos, "user@REALM"
	// (or set KrbRealm).
	User     string
	Password string
	// Auth is "basic", "ntlm" or "kerberos", case-insensitive. Empty means
	// "ntlm": Windows ships with Basic disabled and Negotiate enabled, and NTLM
	// needs no krb5.conf. With "ntlm" the client never falls back to Basic.
	Auth string
	// CAFile is a PEM bundle used instead of the system roots to verify the
	// host's certificate (https only).
	CAFile string
	// InsecureSkipVerify disables certificate checks: an explicit opt-in for labs.
	InsecureSkipVerify bool
	// Timeout bounds each call; 0 means DefaultTimeout. A ctx deadline that is
	// earlier wins.
	Timeout time.Duration

	// MaxEnvelopeSize is the host's MaxEnvelopeSizekb×1024 (bytes); 0 means
	// DefaultMaxEnvelopeSize. It bounds the output the host sends per Receive.
	MaxEnvelopeSize int
	// KrbConfig is the krb5.conf path for Kerberos; empty means DefaultKrbConfig.
	KrbConfig string
	// KrbRealm is the Kerberos realm; empty means the part of User after "@".
	KrbRealm string
	// KrbSPN is the service principal; empty means "HTTP/<endpoint host>".
	KrbSPN string
	// KrbCCache is an optional credential cache (e.g. from kinit); when set,
	// Password is not needed.
	KrbCCache string
}

// ReadCAFile reads a PEM CA bundle (Config.CAFile). New calls it; the
// tenants file calls it at load, so a tenant's unreadable CA is reported
// with the file's other problems.
func ReadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// Template is one remote action: a constant PowerShell script whose first line is
// `param($Data)` and that writes exactly one JSON document to stdout, e.g. with
// `ConvertTo-Json -Depth 10 -Compress` (never Write-Host, which powershell.exe
// prints on stdout too). Scripts must be idempotent: a call whose outcome is
// unknown (timeout, lost connection) is simply run again.
type Template struct {
	// Name identifies the template in logs and errors.
	Name string
	// Script is the constant template text. It receives the data as $Data
	// (the result of ConvertFrom-Json on the data value).
	Script string
}

// Client runs templates on one host. It is safe for concurrent use; the host's
// per-user shell quota (30 by default) bounds useful concurrency.
type Client struct {
	cfg      Config
	url      *url.URL
	host     string // host:port, for logs
	endpoint *mz.Endpoint
	logger   *slog.Logger
	base     *http.Transport
	httpc    *http.Client
	krb      *krbclient.Client

	// pending counts calls whose library goroutine is still running: a timed
	// out call returns at once but its Signal/Delete may still be under way.
	pending sync.WaitGroup
}

// New validates cfg and builds a Client. It does not contact the host.
func New(cfg Config, logger *slog.Logger) (*Client, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	u, err := parseEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("winrm: endpoint: %w", err)
	}
	https := u.Scheme == "https"

	cfg.Auth = strings.ToLower(strings.TrimSpace(cfg.Auth))
	if cfg.Auth == "" {
		cfg.Auth = AuthNTLM
	}
	switch cfg.Auth {
	case AuthBasic, AuthNTLM:
		if cfg.User == "" || cfg.Password == "" {
			return nil, fmt.Errorf("winrm: %s authentication needs a user and a password", cfg.Auth)
		}
	case AuthKerberos:
		if cfg.User == "" && cfg.KrbCCache == "" {
			return nil, errors.New("winrm: kerberos authentication needs a user or a credential cache")
		}
		if cfg.Password == "" && cfg.KrbCCache == "" {
			return nil, errors.New("winrm: kerberos authentication needs a password or a credential cache")
		}
	default:
		return nil, fmt.Errorf("winrm: unknown auth %q (want basic, ntlm or kerberos)", cfg.Auth)
	}

	switch {
	case cfg.Timeout == 0:
		cfg.Timeout = DefaultTimeout
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("winrm: negative timeout %s", cfg.Timeout)
	}
	switch {
	case cfg.MaxEnvelopeSize == 0:
		cfg.MaxEnvelopeSize = DefaultMaxEnvelopeSize
	case cfg.MaxEnvelopeSize < minEnvelopeSize:
		return nil, fmt.Errorf("winrm: max envelope size %d is below %d bytes", cfg.MaxEnvelopeSize, minEnvelopeSize)
	}

	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureSkipVerify} //nolint:gosec // explicit opt-in
	if cfg.CAFile != "" {
		if !https {
			return nil, errors.New("winrm: a CA file is set but the endpoint is not https")
		}
		pool, err := ReadCAFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("winrm: %w", err)
		}
		tlsCfg.RootCAs = pool
	}
	if !https && cfg.Auth == AuthBasic {
		logger.Warn("winrm: basic authentication over plain http sends the password in clear", "host", u.Host)
	}
	if cfg.InsecureSkipVerify && https {
		logger.Warn("winrm: certificate verification is disabled", "host", u.Host)
	}

	port, _ := strconv.Atoi(u.Port())
	c := &Client{
		cfg:      cfg,
		url:      u,
		host:     u.Host,
		endpoint: &mz.Endpoint{Host: u.Hostname(), Port: port, HTTPS: https, Insecure: cfg.InsecureSkipVerify, Timeout: cfg.Timeout},
		logger:   logger,
	}
	var rt http.RoundTripper
	c.base, rt = newRoundTripper(&cfg, tlsCfg)
	c.httpc = &http.Client{
		Transport: rt,
		// A WS-Man host never redirects; following one could send credentials
		// elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if cfg.Auth == AuthKerberos {
		if c.krb, err = newKerberos(&c.cfg, u.Hostname()); err != nil {
			return nil, fmt.Errorf("winrm: kerberos: %w", err)
		}
	}
	return c, nil
}

func parseEndpoint(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("scheme %q is not http or https", u.Scheme)
	case u.Hostname() == "":
		return nil, errors.New("no host")
	case u.User != nil:
		return nil, errors.New("credentials belong in User and Password, not in the URL")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, errors.New("query and fragment are not allowed")
	}
	if u.Port() == "" {
		port := "5985"
		if u.Scheme == "https" {
			port = "5986"
		}
		u.Host = net.JoinHostPort(u.Hostname(), port)
	} else if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
		return nil, fmt.Errorf("bad port %q", u.Port())
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/wsman"
	}
	return u, nil
}

func newKerberos(cfg *Config, host string) (*krbclient.Client, error) {
	path := cfg.KrbConfig
	if path == "" {
		path = DefaultKrbConfig
	}
	conf, err := krbconfig.Load(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	if cfg.KrbSPN == "" {
		cfg.KrbSPN = "HTTP/" + host
	}
	if cfg.KrbCCache != "" {
		cc, err := credentials.LoadCCache(cfg.KrbCCache)
		if err != nil {
			return nil, fmt.Errorf("load credential cache: %w", err)
		}
		cl, err := krbclient.NewFromCCache(cc, conf, krbclient.DisablePAFXFAST(true))
		if err != nil {
			return nil, fmt.Errorf("credential cache: %w", err)
		}
		return cl, nil
	}
	user, realm := cfg.User, cfg.KrbRealm
	if i := strings.LastIndexByte(user, '@'); i >= 0 {
		if realm == "" {
			realm = user[i+1:]
		}
		user = user[:i]
	}
	if realm == "" {
		realm = conf.LibDefaults.DefaultRealm
	}
	if realm == "" {
		return nil, errors.New("no realm: set KrbRealm, use user@REALM or default_realm in krb5.conf")
	}
	return krbclient.NewWithPassword(user, strings.ToUpper(realm), cfg.Password, conf,
		krbclient.DisablePAFXFAST(true), krbclient.AssumePreAuthentication(true)), nil
}

// Run runs template t on the host with data (marshalled to JSON; it must be a
// JSON object, or nil for {}) and decodes the template's JSON answer into out
// (nil to discard it, after checking it is one JSON document). See the error
// variables for what can go wrong and what to do about it.
func (c *Client) Run(ctx context.Context, t Template, data any, out any) error {
	if err := t.check(); err != nil {
		return fmt.Errorf("winrm: %s: %w", t.Name, err)
	}
	dataJSON, err := marshalData(data)
	if err != nil {
		return fmt.Errorf("winrm: %s: %w", t.Name, err)
	}
	envelope, err := encodeEnvelope(t.Script, dataJSON)
	if err != nil {
		return fmt.Errorf("winrm: %s: %w", t.Name, err)
	}
	id, err := newCallID()
	if err != nil {
		return fmt.Errorf("winrm: %s: %w", t.Name, err)
	}

	start := time.Now()
	res, err := c.call(ctx, id, envelope)
	elapsed := time.Since(start)
	attrs := []any{
		"template", t.Name, "host", c.host, "duration", elapsed, "call", id, "commands", res.commands,
		"envelope_bytes", len(envelope), "sent_bytes", res.sent, "received_bytes", res.received,
	}
	if err != nil {
		err = c.classify(t.Name, err, elapsed)
		c.logger.Warn("winrm call failed", append(attrs, "error", err)...)
		return err
	}
	attrs = append(attrs, "exit_code", res.exitCode, "stdout_bytes", len(res.stdout), "stderr_bytes", len(res.stderr))
	if res.exitCode != 0 {
		c.logger.Warn("winrm call: script failed", attrs...)
		return &ScriptError{Template: t.Name, ExitCode: res.exitCode, Stderr: cleanStderr(string(res.stderr))}
	}
	if res.overflow {
		c.logger.Warn("winrm call: answer too large", attrs...)
		return &BadAnswerError{Template: t.Name, Stdout: res.stdout, Err: fmt.Errorf("more than %d bytes of output", maxAnswerBytes)}
	}
	if err := decodeAnswer(res.stdout, out); err != nil {
		c.logger.Warn("winrm call: bad answer", attrs...)
		return &BadAnswerError{Template: t.Name, Stdout: res.stdout, Err: err}
	}
	if len(res.stderr) > 0 {
		// Warnings on stderr of a successful script: worth a look, not an error.
		c.logger.Warn("winrm call succeeded with text on stderr", attrs...)
	} else {
		c.logger.Info("winrm call", attrs...)
	}
	return nil
}

// Close waits until calls that timed out have finished their best-effort
// Signal/Delete (at most a few cleanupTimeouts) and closes idle connections.
// The Client must not be used afterwards.
func (c *Client) Close() error {
	c.pending.Wait()
	c.base.CloseIdleConnections()
	return nil
}

func (t Template) check() error {
	if t.Name == "" {
		return errors.New("template has no name")
	}
	first, _, _ := strings.Cut(strings.TrimPrefix(t.Script, "\ufeff"), "\n")
	if !strings.EqualFold(strings.TrimSpace(first), "param($Data)") {
		return errors.New("template script must start with a param($Data) line")
	}
	return nil
}

func marshalData(data any) ([]byte, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("marshal data: %w", err)
	}
	if string(b) == "null" {
		return []byte("{}"), nil
	}
	if len(b) == 0 || b[0] != '{' {
		// PowerShell's ConvertFrom-Json unrolls a top-level array (and turns a
		// one-element array into a scalar), so only objects are reliable.
		return nil, errors.New("data must marshal to a JSON object")
	}
	return b, nil
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// decodeAnswer checks stdout is exactly one JSON document and decodes it.
func decodeAnswer(stdout []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(bytes.TrimPrefix(stdout, utf8BOM)))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("no JSON document on stdout")
		}
		return fmt.Errorf("stdout is not JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("stdout holds more than one JSON document")
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("answer does not fit %T: %w", out, err)
	}
	return nil
}

// newCallID names the invocation file of one call: random, so concurrent calls
// of the same user (one %TEMP%) never share a file, and hex, so it is inert on a
// cmd.exe command line.
func newCallID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("call id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// callResult is what one call produced.
type callResult struct {
	exitCode       int
	stdout, stderr []byte
	overflow       bool
	sent, received int
	commands       int // commands started in the shell
}

// call writes the invocation file, runs the bootstrap on it and removes it, in
// one shell. It returns when the library is done, the call's deadline passes or
// a transport error aborts it, whichever comes first.
func (c *Client) call(ctx context.Context, id string, envelope []byte) (callResult, error) {
	timeoutCtx, cancelTimeout := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancelTimeout()
	callCtx, abort := context.WithCancelCause(timeoutCtx)
	defer abort(nil)

	var once sync.Once
	tr := &callTransport{c: c, ctx: callCtx, fail: func(err error) { once.Do(func() { abort(err) }) }}
	params := mz.NewParameters(operationTimeout, "en-US", c.cfg.MaxEnvelopeSize)
	params.TransportDecorator = func() mz.Transporter { return tr }
	mc, err := mz.NewClientWithParameters(c.endpoint, c.cfg.User, c.cfg.Password, params)
	if err != nil {
		return callResult{}, fmt.Errorf("build client: %w", err)
	}

	stdout := &capWriter{max: maxAnswerBytes}
	stderr := &capWriter{max: maxAnswerBytes}
	type outcome struct {
		exitCode int
		err      error
	}
	done := make(chan outcome, 1)
	var started atomic.Int32
	c.pending.Add(1)
	go func() {
		defer c.pending.Done()
		code, err := runInShell(mc, id, envelope, stdout, stderr, &started)
		done <- outcome{code, err}
	}()

	var o outcome
	select {
	case o = <-done:
	case <-callCtx.Done():
		select {
		case o = <-done: // finished at the same instant: use it
		default:
			sent, recv := tr.bytes()
			return callResult{sent: sent, received: recv, commands: int(started.Load())}, context.Cause(callCtx)
		}
	}
	sent, recv := tr.bytes()
	res := callResult{sent: sent, received: recv, commands: int(started.Load())}
	if o.err != nil {
		// A transport error aborts the call (see callTransport.fail) and explains
		// the failure better than the library's own error, which is then only
		// "context canceled"; the same goes for the deadline.
		if cause := context.Cause(callCtx); cause != nil {
			return res, cause
		}
		return res, o.err
	}
	res.exitCode = o.exitCode
	res.stdout, res.stderr = stdout.buf.Bytes(), stderr.buf.Bytes()
	res.overflow = stdout.over || stderr.over
	return res, nil
}

// classify maps a call error to the package's error kinds.
func (c *Client) classify(name string, err error, elapsed time.Duration) error {
	var (
		status *statusError
		fault  *FaultError
		krb    *kerberosError
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("winrm: %s: %w after %s (the remote effect is unknown; the template is idempotent, retry)",
			name, ErrTimeout, elapsed.Round(time.Millisecond))
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("winrm: %s: %w (the remote effect is unknown)", name, context.Canceled)
	case errors.As(err, &status) && status.Status == http.StatusUnauthorized,
		errors.Is(err, errBasicDowngrade):
		return fmt.Errorf("winrm: %s: %w by %s: %w", name, ErrUnauthorized, c.host, err)
	case errors.As(err, &fault) && fault.accessDenied():
		return fmt.Errorf("winrm: %s: %w by %s: %w", name, ErrUnauthorized, c.host, err)
	case errors.As(err, &krb) && !krb.network():
		return fmt.Errorf("winrm: %s: %w by %s: %w", name, ErrUnauthorized, c.host, err)
	default:
		return fmt.Errorf("winrm: %s: %s %w: %w", name, c.host, ErrUnreachable, err)
	}
}

// capWriter collects output up to max bytes and then discards the rest; it never
// fails, because a failing writer would block the library's pipe forever.
type capWriter struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (w *capWriter) Write(p []byte) (int, error) {
	if w.over || w.buf.Len()+len(p) > w.max {
		w.over = true
		return len(p), nil
	}
	return w.buf.Write(p)
}

// runInShell runs the commands of one call (see Commands) in one shell and
// returns the bootstrap's exit code, its output in stdout and stderr. A write
// that fails (say %TEMP% is full) ends the call with that command's exit code
// and cmd.exe's message in stderr, which Run reports as a ScriptError. The file
// is removed whatever the bootstrap did; only a call that times out or loses
// its connection leaves it behind (the shell is deleted, %TEMP% is not).
func runInShell(mc *mz.Client, id string, envelope []byte, stdout, stderr io.Writer, started *atomic.Int32) (int, error) {
	shell, err := mc.CreateShell()
	if err != nil {
		return 1, err
	}
	defer shell.Close()
	writes, run, cleanup := Commands(id, envelope)
	for _, line := range writes {
		var msg bytes.Buffer
		code, err := runCommand(shell, line, io.Discard, &msg, started)
		if err != nil {
			return 1, err
		}
		if code != 0 {
			fmt.Fprintf(stderr, "writing the invocation file %s failed (exit %d): %s", InvocationFile(id), code, msg.String())
			_, _ = runCommand(shell, cleanup, io.Discard, io.Discard, started)
			return code, nil
		}
	}
	code, err := runCommand(shell, run, stdout, stderr, started)
	if err != nil {
		return 1, err
	}
	// Best effort: a file left behind holds only this call's base64.
	_, _ = runCommand(shell, cleanup, io.Discard, io.Discard, started)
	return code, nil
}

// runCommand runs one command line in shell with no stdin at all: nothing is
// ever sent to WinRS stdin, so its console mode cannot matter.
func runCommand(shell *mz.Shell, line string, stdout, stderr io.Writer, started *atomic.Int32) (int, error) {
	cmd, err := shell.Execute(line)
	if err != nil {
		return 1, err
	}
	started.Add(1)
	var wg sync.WaitGroup
	var outErr, errErr error
	wg.Add(2)
	go func() { defer wg.Done(); _, outErr = io.Copy(stdout, cmd.Stdout) }()
	go func() { defer wg.Done(); _, errErr = io.Copy(stderr, cmd.Stderr) }()
	cmd.Wait()
	wg.Wait()
	_ = cmd.Close() // Signal terminate: frees the command on the host
	// The library reports a failed Receive by closing the output pipes with it.
	if err := errors.Join(outErr, errErr); err != nil {
		return 1, err
	}
	return cmd.ExitCode(), nil
}
