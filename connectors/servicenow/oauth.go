package servicenow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// tokenSource caches the OAuth access token of a Client. One goroutine at a
// time fetches a token (sem); the others wait for it, honouring their ctx,
// and then find the new token in the cache.
type tokenSource struct {
	c   *Client
	sem chan struct{}

	mu      sync.Mutex
	access  string
	refresh string
	// renewAt is when the access token is treated as expired: a little
	// before its real expiry, so a request never leaves with a token that
	// dies in flight.
	renewAt time.Time
}

// token returns a live access token, fetching one when there is none or it
// is about to expire: with the refresh token when there is one, else (or
// when the refresh is refused) with the password grant.
func (t *tokenSource) token(ctx context.Context) (string, error) {
	if tok, ok := t.cached(); ok {
		return tok, nil
	}
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("wait for OAuth token: %w", ctx.Err())
	}
	defer func() { <-t.sem }()
	if tok, ok := t.cached(); ok {
		return tok, nil // another goroutine fetched one while we waited
	}

	t.mu.Lock()
	refresh := t.refresh
	t.mu.Unlock()
	if refresh != "" {
		tok, err := t.grant(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}})
		if err == nil {
			return tok, nil
		}
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.retryable() {
			return "", err // the instance is unreachable; the caller retries
		}
		// The refresh token expired or was revoked: start over.
		t.c.logger.InfoContext(ctx, "servicenow: OAuth refresh refused, using the password grant", "status", apiErr.Status)
		t.mu.Lock()
		t.refresh = ""
		t.mu.Unlock()
	}
	tok, err := t.grant(ctx, url.Values{
		"grant_type": {"password"},
		"username":   {t.c.cfg.User},
		"password":   {t.c.cfg.Password},
	})
	if err != nil {
		var apiErr *APIError
		if errors.As(err, &apiErr) && !apiErr.retryable() {
			// 400 and 401 here both mean wrong client or user credentials.
			return "", fmt.Errorf("%w: OAuth password grant: %w", ErrUnauthorized, err)
		}
		return "", err
	}
	return tok, nil
}

func (t *tokenSource) cached() (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.access != "" && t.c.now().Before(t.renewAt) {
		return t.access, true
	}
	return "", false
}

// invalidate forgets token after the instance refused it, unless a newer
// token already replaced it.
func (t *tokenSource) invalidate(token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.access == token {
		t.access = ""
	}
}

// grant makes one request to /oauth_token.do and caches the answer. It is
// not retried here: a failure surfaces in the Table API request that needed
// the token, which its own retry loop sends again.
func (t *tokenSource) grant(ctx context.Context, form url.Values) (string, error) {
	form.Set("client_id", t.c.cfg.OAuthClientID)
	form.Set("client_secret", t.c.cfg.OAuthClientSecret)
	issued := t.c.now()
	resp, err := t.c.send(ctx, request{method: "POST", path: "/oauth_token.do", form: form, noAuth: true})
	if err != nil {
		return "", err
	}
	var body struct {
		AccessToken  string          `json:"access_token"`
		RefreshToken string          `json:"refresh_token"`
		ExpiresIn    json.RawMessage `json:"expires_in"`
	}
	if err := json.Unmarshal(resp.body, &body); err != nil || body.AccessToken == "" {
		// Say nothing of the body: it would hold a token if it held anything.
		return "", fmt.Errorf("OAuth %s grant: answer has no access token", form.Get("grant_type"))
	}
	ttl := parseExpiresIn(body.ExpiresIn)
	// Renew when 90% of the lifetime has passed, at most 30 s early.
	early := min(ttl/10, 30*time.Second)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.access = body.AccessToken
	if body.RefreshToken != "" {
		t.refresh = body.RefreshToken
	}
	t.renewAt = issued.Add(ttl - early)
	return body.AccessToken, nil
}

// parseExpiresIn reads expires_in, a number of seconds an instance sends as
// a JSON number (some proxies turn it into a string). Missing or unreadable
// means a short, safe 5 minutes.
func parseExpiresIn(raw json.RawMessage) time.Duration {
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 5 * time.Minute
		}
		n = json.Number(s)
	}
	secs, err := strconv.ParseFloat(n.String(), 64)
	if err != nil || secs <= 0 {
		return 5 * time.Minute
	}
	return time.Duration(secs * float64(time.Second))
}
