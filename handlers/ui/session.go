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
// secret. The HMAC key is derived from the API token and the console's
// base, so rotating the token ends every session, and a session of one
// tenant's console is none of another's; signing out deletes the cookie
// from the browser. The zero value (a stranger's) accepts nothing.
type sessionKeys struct {
	key       []byte
	tokenHash [32]byte
	tokenSet  bool
}

func newSessionKeys(token config.Secret, base string) sessionKeys {
	mac := hmac.New(sha256.New, []byte(token.Reveal()))
	mac.Write([]byte("autopatch console session v1"))
	if base != "" {
		// The tenant is bound even though tenants.Load refuses two tenants
		// one token: the cookie's path alone would not stop a session sent
		// by hand to another tenant's console. The default console's key
		// stays what it was, so upgrading signs nobody out.
		mac.Write([]byte("\x00tenant console " + base))
	}
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
		Name: SessionCookie, Value: value, Path: c.href(""), MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure(ctx),
	})
}

// requireSession sends a request without a valid session to the sign-in
// page, remembering where it was going. A stranger has no session to give.
func requireSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(ctx echo.Context) error {
		c := ctx.Get(consoleKey).(*console)
		if ck, err := ctx.Cookie(SessionCookie); err == nil && !c.stranger && c.sessions.valid(ck.Value, c.opts.Now()) {
			return next(ctx)
		}
		target := c.href("/login")
		if ctx.Request().Method == http.MethodGet {
			target += "?next=" + url.QueryEscape(c.sent(ctx.Request().URL.RequestURI()))
		}
		return ctx.Redirect(http.StatusSeeOther, target)
	}
}

type loginData struct {
	Next    string
	Message string
}

// safeNext keeps a post-login redirect inside the console at base: a path
// under base+"/ui/" with no dot segment (which a browser would resolve
// out of it, to another tenant's console), or the calendar.
func safeNext(next, base string) string {
	home := href(base, "/calendar")
	if !strings.HasPrefix(next, href(base, "/")) || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return home
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" || !strings.HasPrefix(u.Path, href(base, "/")) {
		return home
	}
	for seg := range strings.SplitSeq(u.Path, "/") {
		if seg == "." || seg == ".." {
			return home
		}
	}
	return next
}

func (c *console) loginForm(ctx echo.Context) error {
	d := loginData{Next: safeNext(ctx.QueryParam("next"), c.opts.Base)}
	if ctx.QueryParam("signed_out") != "" {
		d.Message = "You are signed out."
	}
	return c.render(ctx, http.StatusOK, "login", page{Title: "Sign in", Data: d})
}

func (c *console) login(ctx echo.Context) error {
	next := safeNext(ctx.FormValue("next"), c.opts.Base)
	if !c.sessions.checkToken(ctx.FormValue("token")) {
		if c.stranger {
			c.opts.Logger.WarnContext(ctx.Request().Context(), "ui: sign-in to an unknown tenant refused", "remote", ctx.RealIP(), "path", c.opts.Base)
		} else {
			c.opts.Logger.WarnContext(ctx.Request().Context(), "ui: sign-in refused", "remote", ctx.RealIP())
		}
		// A tenant's console and a stranger say the same.
		msg := "That is not the API token (AUTOPATCH_API_TOKEN)."
		if c.opts.Base != "" {
			msg = "That is not this tenant's API token."
		}
		return c.render(ctx, http.StatusUnauthorized, "login", page{Title: "Sign in", Data: loginData{Next: next, Message: msg}})
	}
	expiry := c.opts.Now().Add(c.opts.SessionTTL)
	c.setCookie(ctx, c.sessions.sign(expiry.Unix()), int(c.opts.SessionTTL.Seconds()))
	return ctx.Redirect(http.StatusSeeOther, next)
}

func (c *console) logout(ctx echo.Context) error {
	c.setCookie(ctx, "", -1)
	return ctx.Redirect(http.StatusSeeOther, c.href("/login?signed_out=1"))
}
