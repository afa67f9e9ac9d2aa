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
	want := sha256.Sum256([]byte(token.Reveal()))
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Request().Header.Get(echo.HeaderAuthorization)
			got, ok := strings.CutPrefix(h, "Bearer ")
			sum := sha256.Sum256([]byte(got))
			if !ok || !token.IsSet() || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
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
