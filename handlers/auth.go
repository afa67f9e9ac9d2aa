package handlers

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/autopatch/autopatch/internal/config"
)

// Webhook authentication headers (docs/architecture.md §4.3).
const (
	HeaderTimestamp = "X-Autopatch-Timestamp"
	HeaderSignature = "X-Autopatch-Signature"
	signaturePrefix = "sha256="
	// MaxClockSkew is how far X-Autopatch-Timestamp may be from autopatch's
	// clock: it bounds how long a captured request can be replayed.
	MaxClockSkew = 5 * time.Minute
)

// rawBodyKey is where the webhook middleware leaves the body it read and
// verified, for the handler to decode the very same bytes.
const rawBodyKey = "autopatch.raw_body"

// WebhookAuth holds the webhook credentials. At least one method must be
// set (config.ValidateServe refuses to start otherwise); with none, every
// delivery is refused.
type WebhookAuth struct {
	// Secret is the HMAC-SHA256 key: the raw bytes of
	// AUTOPATCH_WEBHOOK_SECRET.
	Secret config.Secret
	// User and Password are the HTTP Basic credentials; Basic is on when
	// User is set.
	User     string
	Password config.Secret
}

func (a WebhookAuth) hmacOn() bool  { return a.Secret.IsSet() }
func (a WebhookAuth) basicOn() bool { return a.User != "" }

// authFailure is why a delivery was not authenticated. Its text goes to the
// client: it names what is wrong, never a secret or a computed signature.
type authFailure string

// verifyWebhook is the middleware of the webhook routes. In order: read the
// body once, within MaxBody (413); authenticate it (401), before anything
// looks at the content, so unsigned junk learns nothing more; check the
// content type (415). The handler then decodes exactly the bytes that were
// verified.
func (w *webhooks) verifyWebhook(kind string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			body, err := readBody(req)
			if err != nil {
				w.metrics.observe(kind, "body_too_large")
				return err
			}
			if fail := w.authenticate(req, body); fail != "" {
				w.metrics.observe(kind, "unauthorized")
				w.logger.WarnContext(req.Context(), "webhook refused: not authenticated",
					"request_id", requestID(c), "kind", kind, "reason", string(fail), "remote", c.RealIP())
				if w.auth.basicOn() {
					c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Basic realm="autopatch", charset="UTF-8"`)
				} else {
					c.Response().Header().Set(echo.HeaderWWWAuthenticate, `X-Autopatch-Signature realm="autopatch"`)
				}
				return NewError(http.StatusUnauthorized, "unauthorized", string(fail))
			}
			if err := checkContentType(req.Header.Get(echo.HeaderContentType)); err != nil {
				w.metrics.observe(kind, "unsupported_media_type")
				return err
			}
			c.Set(rawBodyKey, body)
			req.Body = io.NopCloser(bytes.NewReader(body))
			return next(c)
		}
	}
}

// readBody reads the whole body, at most MaxBody bytes. The BodyLimit
// middleware already refuses a declared Content-Length over the limit; this
// catches chunked bodies too.
func readBody(req *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(req.Body, MaxBody+1))
	var he *echo.HTTPError
	switch {
	case errors.As(err, &he) && he.Code == http.StatusRequestEntityTooLarge, err == nil && len(body) > MaxBody:
		return nil, NewError(http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("the body is larger than %d bytes", MaxBody))
	case err != nil:
		return nil, NewError(http.StatusBadRequest, "bad_request", "the body could not be read")
	}
	return body, nil
}

// authenticate checks the credentials that the request presents for the
// configured methods. Every presented credential must be valid, and at
// least one must be presented: a wrong signature is refused even when a
// Basic password is right, since it means the two sides disagree on the
// secret. Credentials for a method that is not configured are ignored.
func (w *webhooks) authenticate(req *http.Request, body []byte) authFailure {
	presented := false
	if w.auth.hmacOn() {
		ts, sig := req.Header.Get(HeaderTimestamp), req.Header.Get(HeaderSignature)
		if ts != "" || sig != "" {
			presented = true
			if fail := w.checkSignature(ts, sig, body); fail != "" {
				return fail
			}
		}
	}
	if w.auth.basicOn() {
		if user, pass, ok := req.BasicAuth(); ok {
			presented = true
			if !w.checkBasic(user, pass) {
				return "wrong user or password"
			}
		}
	}
	if !presented {
		var want []string
		if w.auth.hmacOn() {
			want = append(want, HeaderTimestamp+" and "+HeaderSignature)
		}
		if w.auth.basicOn() {
			want = append(want, "HTTP Basic credentials")
		}
		if len(want) == 0 {
			return "webhook authentication is not configured"
		}
		return authFailure("missing credentials: send " + strings.Join(want, " or "))
	}
	return ""
}

// checkSignature verifies X-Autopatch-Signature over "<timestamp>.<body>"
// and that the timestamp is within MaxClockSkew of now.
func (w *webhooks) checkSignature(ts, sig string, body []byte) authFailure {
	if ts == "" || sig == "" {
		return "both " + HeaderTimestamp + " and " + HeaderSignature + " are required"
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return HeaderTimestamp + " must be a unix time in seconds"
	}
	encoded, ok := strings.CutPrefix(sig, signaturePrefix)
	if !ok {
		return HeaderSignature + ` must start with "sha256="`
	}
	got, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return HeaderSignature + " must be base64 after sha256="
	}
	mac := hmac.New(sha256.New, []byte(w.auth.Secret.Reveal()))
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return "the signature does not match the body"
	}
	// Checked after the signature, so only a correctly signed request
	// learns how far off its clock is.
	skew := w.now().Sub(time.Unix(unix, 0))
	if skew > MaxClockSkew || skew < -MaxClockSkew {
		return authFailure(fmt.Sprintf("%s is %s from autopatch's clock (at most %s allowed)", HeaderTimestamp, skew.Round(time.Second), MaxClockSkew))
	}
	return ""
}

// checkBasic compares user and password in constant time. Both sides are
// hashed first so that the comparison does not leak their lengths, and both
// comparisons always run.
func (w *webhooks) checkBasic(user, pass string) bool {
	gotUser, wantUser := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(w.auth.User))
	gotPass, wantPass := sha256.Sum256([]byte(pass)), sha256.Sum256([]byte(w.auth.Password.Reveal()))
	userOK := subtle.ConstantTimeCompare(gotUser[:], wantUser[:])
	passOK := subtle.ConstantTimeCompare(gotPass[:], wantPass[:])
	return userOK&passOK == 1
}

// checkContentType accepts application/json, with an optional charset that
// must be UTF-8 (the only encoding JSON has, RFC 8259).
func checkContentType(ct string) *APIError {
	media, params, err := mime.ParseMediaType(ct)
	if err != nil || media != echo.MIMEApplicationJSON {
		return NewError(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return NewError(http.StatusUnsupportedMediaType, "unsupported_media_type", "the charset must be UTF-8")
	}
	return nil
}
