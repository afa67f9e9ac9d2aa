package ui

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/autopatch/autopatch/internal/config"
)

// SessionCookie is the console's session cookie.
const SessionCookie = "autopatch_session"

// sessionKeys signs sessions. A session is "<expiry unix>.<HMAC>": it needs
// no server-side store, so it works across replicas, and it carries nothing
// secret. The HMAC key is derived from the API token, so rotating the token
// ends every session; signing out deletes the cookie from the browser.
type sessionKeys struct {
	key       []byte
	tokenHash [32]byte
	tokenSet  bool
}

func newSessionKeys(token config.Secret) sessionKeys {
	mac := hmac.New(sha256.New, []byte(token.Reveal()))
	mac.Write([]byte("autopatch console session v1"))
	return sessionKeys{key: mac.Sum(nil), tokenHash: sha256.Sum256([]byte(token.Reveal())), tokenSet: token.IsSet()}
}

// checkToken compares a presented token with the API token in constant
// time; both are hashed first so that the length does not leak either.
func (k sessionKeys) checkToken(got string) bool {
	sum := sha256.Sum256([]byte(got))
	return k.tokenSet && subtle.ConstantTimeCompare(sum[:], k.tokenHash[:]) == 1
}

func (k sessionKeys) sign(expiry int64) string {
	mac := hmac.New(sha256.New, k.key)
	mac.Write([]byte(strconv.FormatInt(expiry, 10)))
	return strconv.FormatInt(expiry, 10) + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// valid reports whether value is a session this key signed that has not
// expired at now.
func (k sessionKeys) valid(value string, now time.Time) bool {
	exp, sig, ok := strings.Cut(value, ".")
	if !ok || !k.tokenSet {
		return false
	}
	expiry, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return false
	}
	want := k.sign(expiry)
	_, wantSig, _ := strings.Cut(want, ".")
	if !hmac.Equal([]byte(sig), []byte(wantSig)) {
		return false
	}
	return now.Unix() < expiry
}

// secure reports whether the request came over TLS (directly or, as a
// reverse proxy says, to it): the cookie is then Secure.
func secure(c echo.Context) bool {
	return c.Request().TLS != nil || strings.EqualFold(c.Request().Header.Get(echo.HeaderXForwardedProto), "https")
}

func (c *console) setCookie(ctx echo.Context, value string, maxAge int) {
	ctx.SetCookie(&http.Cookie{
		Name: SessionCookie, Value: value, Path: "/ui", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure(ctx),
	})
}

// requireSession sends a request without a valid session to the sign-in
// page, remembering where it was going.
func (c *console) requireSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(ctx echo.Context) error {
		if ck, err := ctx.Cookie(SessionCookie); err == nil && c.sessions.valid(ck.Value, c.opts.Now()) {
			return next(ctx)
		}
		target := "/ui/login"
		if ctx.Request().Method == http.MethodGet {
			target += "?next=" + url.QueryEscape(ctx.Request().URL.RequestURI())
		}
		return ctx.Redirect(http.StatusSeeOther, target)
	}
}

type loginData struct {
	Next    string
	Message string
}

// safeNext keeps a post-login redirect inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return "/ui/calendar"
	}
	return next
}

func (c *console) loginForm(ctx echo.Context) error {
	d := loginData{Next: safeNext(ctx.QueryParam("next"))}
	if ctx.QueryParam("signed_out") != "" {
		d.Message = "You are signed out."
	}
	return c.render(ctx, http.StatusOK, "login", page{Title: "Sign in", Data: d})
}

func (c *console) login(ctx echo.Context) error {
	next := safeNext(ctx.FormValue("next"))
	if !c.sessions.checkToken(ctx.FormValue("token")) {
		c.opts.Logger.WarnContext(ctx.Request().Context(), "ui: sign-in refused", "remote", ctx.RealIP())
		return c.render(ctx, http.StatusUnauthorized, "login", page{Title: "Sign in", Data: loginData{
			Next: next, Message: "That is not the API token (AUTOPATCH_API_TOKEN).",
		}})
	}
	expiry := c.opts.Now().Add(c.opts.SessionTTL)
	c.setCookie(ctx, c.sessions.sign(expiry.Unix()), int(c.opts.SessionTTL.Seconds()))
	return ctx.Redirect(http.StatusSeeOther, next)
}

func (c *console) logout(ctx echo.Context) error {
	c.setCookie(ctx, "", -1)
	return ctx.Redirect(http.StatusSeeOther, "/ui/login?signed_out=1")
}
