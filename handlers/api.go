package handlers

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/autopatch/autopatch/internal/config"
)

// bearerAuth guards the read API. Both sides are hashed before the
// constant-time comparison so the token's length does not leak either.
//
// A tenant's API (hidden) answers a missing or wrong token with the 404 of
// an unknown tenant, never a 401 that would confirm to a token of another
// tenant that this one exists.
func bearerAuth(token config.Secret, hidden bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if !bearerMatches(c, token) {
				if hidden {
					return echo.ErrNotFound
				}
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="autopatch"`)
				return NewError(http.StatusUnauthorized, "unauthorized", "a valid bearer token (AUTOPATCH_API_TOKEN) is required")
			}
			return next(c)
		}
	}
}

// bearerMatches reports whether the request's bearer token is token (set),
// compared in constant time: both are hashed first, so the length of
// neither leaks.
func bearerMatches(c echo.Context, token config.Secret) bool {
	got, ok := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer ")
	want := sha256.Sum256([]byte(token.Reveal()))
	sum := sha256.Sum256([]byte(got))
	return ok && token.IsSet() && subtle.ConstantTimeCompare(sum[:], want[:]) == 1
}

// PathParam returns a path parameter decoded. Echo matches on the escaped
// path and leaves parameters escaped, and device, service and schedule names
// may hold spaces, slashes or anything else.
func PathParam(c echo.Context, name string) string {
	v := c.Param(name)
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}
