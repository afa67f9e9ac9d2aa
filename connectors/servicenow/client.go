// Package servicenow is autopatch's client of the ServiceNow Table API
// (docs/architecture.md §5): it raises, updates and resolves incidents and appends
// work notes to change requests and request items.
//
// The Table API has no upsert and scripted callers do not retry, so the
// client is built for a caller (a River job) that may run twice:
//
//   - CreateIncident looks the incident up by correlation id before every
//     POST, including each retry of the POST, so a retry after a lost
//     response or a crash finds the incident it made instead of raising a
//     second one;
//   - GET, PATCH and the token endpoint are retried with exponential backoff
//     and jitter on 429, 5xx and transport errors, honouring Retry-After;
//   - errors are typed (ErrUnauthorized, ErrNotFound, ErrRateLimited,
//     ErrTransport, ErrInvalid, *APIError) so the caller can tell "retry
//     later" from "give up".
//
// Authentication is Basic, or the OAuth password grant against
// /oauth_token.do when an OAuth client is configured, with the token cached,
// refreshed before it expires and once after a 401. Credentials and tokens
// never reach a log line or an error message.
package servicenow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults of Config's zero values.
const (
	DefaultTimeout        = 30 * time.Second
	DefaultMaxRetries     = 5
	DefaultRetryBaseDelay = 500 * time.Millisecond
	DefaultRetryMaxDelay  = 30 * time.Second
	// DefaultCloseCode is the resolution code of a stock instance's current
	// incident model ("Solution provided"); instances still on the older
	// choices use "Solved (Permanently)".
	DefaultCloseCode = "Solution provided"
)

// maxResponseBytes bounds what the client reads of one response.
const maxResponseBytes = 16 << 20

// Config configures a Client. Zero values mean the defaults above.
type Config struct {
	// URL is the instance, e.g. https://example.service-now.com.
	URL string
	// User and Password are the integration user's, for Basic or for the
	// OAuth password grant.
	User, Password string
	// OAuthClientID and OAuthClientSecret select the OAuth password grant
	// (an "OAuth API endpoint for external clients" registered on the
	// instance). Empty means Basic.
	OAuthClientID, OAuthClientSecret string
	// Timeout bounds one HTTP request (each attempt of a retried call).
	Timeout time.Duration
	// MaxRetries is how many times a failed request is sent again; 0 means
	// DefaultMaxRetries and a negative value disables retries.
	MaxRetries int
	// RetryBaseDelay is the first backoff; each retry doubles it, up to
	// RetryMaxDelay, with jitter.
	RetryBaseDelay time.Duration
	// RetryMaxDelay caps the backoff. A Retry-After longer than this ends the
	// retries at once with an *APIError carrying the pause, so a River job
	// can snooze instead of holding a worker.
	RetryMaxDelay time.Duration
	// CloseCode is the incident resolution code ResolveIncident sets.
	CloseCode string
	// Clock returns the current time, for token expiry; nil means time.Now.
	Clock func() time.Time
}

// Client talks to one instance. It is safe for concurrent use.
type Client struct {
	base       *url.URL
	cfg        Config
	maxRetries int
	hc         *http.Client
	logger     *slog.Logger
	now        func() time.Time
	tokens     *tokenSource // nil with Basic

	// sleep waits between retries; tests replace it to record the delays.
	sleep func(ctx context.Context, d time.Duration) error
	// jitter picks a delay in [d/2, d].
	jitter func(d time.Duration) time.Duration
}

// New validates cfg and returns a Client. hc nil means a new http.Client
// with the default transport; its Timeout should be zero (Config.Timeout
// bounds each request). logger nil discards.
func New(cfg Config, hc *http.Client, logger *slog.Logger) (*Client, error) {
	// The URL is not echoed unparsed: it might carry a password.
	base, err := url.Parse(strings.TrimRight(cfg.URL, "/"))
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		return nil, fmt.Errorf("servicenow: URL must be an absolute http(s) URL: %w", ErrInvalid)
	}
	if base.RawQuery != "" || base.Fragment != "" || base.User != nil {
		return nil, fmt.Errorf("servicenow: URL %q must not have a query, fragment or user info: %w", base.Redacted(), ErrInvalid)
	}
	if cfg.User == "" || cfg.Password == "" {
		return nil, fmt.Errorf("servicenow: user and password are required: %w", ErrInvalid)
	}
	if (cfg.OAuthClientID == "") != (cfg.OAuthClientSecret == "") {
		return nil, fmt.Errorf("servicenow: OAuth client id and secret go together: %w", ErrInvalid)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.RetryBaseDelay <= 0 {
		cfg.RetryBaseDelay = DefaultRetryBaseDelay
	}
	if cfg.RetryMaxDelay <= 0 {
		cfg.RetryMaxDelay = DefaultRetryMaxDelay
	}
	if cfg.CloseCode == "" {
		cfg.CloseCode = DefaultCloseCode
	}
	c := &Client{
		base:       base,
		cfg:        cfg,
		maxRetries: cfg.MaxRetries,
		hc:         hc,
		logger:     logger,
		now:        cfg.Clock,
		sleep:      sleepCtx,
		jitter:     func(d time.Duration) time.Duration { return d/2 + rand.N(d/2+1) },
	}
	switch {
	case c.maxRetries == 0:
		c.maxRetries = DefaultMaxRetries
	case c.maxRetries < 0:
		c.maxRetries = 0
	}
	if c.hc == nil {
		c.hc = &http.Client{}
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if cfg.OAuthClientID != "" {
		c.tokens = &tokenSource{c: c, sem: make(chan struct{}, 1)}
	}
	return c, nil
}

// request is one Table API or token request, ready to be sent again.
type request struct {
	method string
	path   string // e.g. /api/now/table/incident; only [a-z0-9_/.] by construction
	query  url.Values
	json   []byte // a JSON body, or nil
	form   url.Values
	// noAuth leaves out the Authorization header (the token endpoint).
	noAuth bool
}

func (r request) String() string { return r.method + " " + r.path }

// response is an HTTP answer, read in full.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends req until it succeeds, fails permanently or the retries run out,
// and returns the body of the 2xx answer.
func (c *Client) do(ctx context.Context, req request) ([]byte, error) {
	var body []byte
	err := c.retry(ctx, req.String(), func() error {
		resp, err := c.send(ctx, req)
		if err != nil {
			return err
		}
		body = resp.body
		return nil
	})
	return body, err
}

// retry runs attempt until it returns nil or an error not worth retrying,
// waiting between attempts. The error of the last attempt is returned,
// noting how many attempts were made.
func (c *Client) retry(ctx context.Context, what string, attempt func() error) error {
	for n := 0; ; n++ {
		err := attempt()
		if err == nil {
			return nil
		}
		if !retryable(err) {
			return err
		}
		if n >= c.maxRetries {
			return fmt.Errorf("giving up after %d attempts: %w", n+1, err)
		}
		delay, ok := c.delay(ctx, n, err)
		if !ok {
			return err
		}
		c.logger.WarnContext(ctx, "servicenow: retrying", "request", what, "attempt", n+1, "delay", delay, "error", err)
		if err := c.sleep(ctx, delay); err != nil {
			return fmt.Errorf("%w (stopped waiting to retry: %w)", err, ctx.Err())
		}
	}
}

// delay picks the wait before retry n+1: the instance's Retry-After when it
// sent one, else exponential backoff with jitter. ok is false when waiting
// is pointless: the pause asked for exceeds RetryMaxDelay or outlasts ctx.
func (c *Client) delay(ctx context.Context, n int, err error) (time.Duration, bool) {
	var d time.Duration
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.hasRetryAfter {
		if apiErr.RetryAfter > c.cfg.RetryMaxDelay {
			return 0, false
		}
		d = apiErr.RetryAfter
	} else {
		d = c.cfg.RetryBaseDelay << min(n, 30)
		if d <= 0 || d > c.cfg.RetryMaxDelay {
			d = c.cfg.RetryMaxDelay
		}
		d = c.jitter(d)
	}
	// Waiting is real time whatever Config.Clock says.
	if deadline, has := ctx.Deadline(); has && time.Until(deadline) < d {
		return 0, false
	}
	return d, true
}

// final marks an error that an enclosing retry loop must not retry because
// an inner loop already did.
type final struct{ error }

func (f final) Unwrap() error { return f.error }

// retryable reports whether an error of one attempt is worth another.
func retryable(err error) bool {
	if errors.As(err, new(final)) {
		return false
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.retryable()
	}
	return errors.Is(err, ErrTransport)
}

// send makes one attempt: it authenticates, and with OAuth re-authenticates
// and sends once more after a 401 (the token may have been revoked or have
// expired early). A non-2xx answer is returned as an *APIError.
func (c *Client) send(ctx context.Context, req request) (*response, error) {
	resp, token, err := c.sendOnce(ctx, req)
	if err != nil {
		return nil, err
	}
	if resp.status == http.StatusUnauthorized && c.tokens != nil && !req.noAuth {
		c.logger.InfoContext(ctx, "servicenow: access token refused, authenticating again", "request", req.String())
		c.tokens.invalidate(token)
		if resp, _, err = c.sendOnce(ctx, req); err != nil {
			return nil, err
		}
	}
	if resp.status < 200 || resp.status > 299 {
		return nil, newAPIError(resp.status, resp.header, resp.body, c.now())
	}
	return resp, nil
}

// sendOnce sends req once and reads the whole answer. It returns the bearer
// token used, if any, so a 401 invalidates that token and not a newer one.
func (c *Client) sendOnce(ctx context.Context, req request) (*response, string, error) {
	var token string
	if c.tokens != nil && !req.noAuth {
		var err error
		if token, err = c.tokens.token(ctx); err != nil {
			return nil, "", err
		}
	}

	attemptCtx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	u := *c.base
	u.Path = c.base.Path + req.path // table names and sys_ids need no escaping
	u.RawPath = ""
	u.RawQuery = req.query.Encode()
	var body io.Reader
	switch {
	case req.json != nil:
		body = bytes.NewReader(req.json)
	case req.form != nil:
		body = strings.NewReader(req.form.Encode())
	}
	hr, err := http.NewRequestWithContext(attemptCtx, req.method, u.String(), body)
	if err != nil {
		return nil, "", fmt.Errorf("build %s: %w", req, err)
	}
	hr.Header.Set("Accept", "application/json")
	switch {
	case req.json != nil:
		hr.Header.Set("Content-Type", "application/json")
	case req.form != nil:
		hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	switch {
	case req.noAuth:
	case token != "":
		hr.Header.Set("Authorization", "Bearer "+token)
	default:
		hr.SetBasicAuth(c.cfg.User, c.cfg.Password)
	}

	resp, err := c.hc.Do(hr)
	if err != nil {
		return nil, "", c.transportError(ctx, req, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, "", c.transportError(ctx, req, err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: data}, token, nil
}

// transportError classifies a failure without an HTTP answer: the caller's
// own cancellation is returned as such (not retried); anything else,
// including the per-request timeout, is ErrTransport. The *url.Error's text
// names the URL and its query, never a credential (Basic and bearer travel
// in headers, the password grant in the body).
func (c *Client) transportError(ctx context.Context, req request, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", req, ctx.Err())
	}
	return fmt.Errorf("%w: %s: %w", ErrTransport, req, err)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
