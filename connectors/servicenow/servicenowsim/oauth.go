package servicenowsim

import (
	"crypto/subtle"
	"encoding/json"
	"mime"
	"net/http"
	"strings"
	"time"
)

// handleToken serves POST /oauth_token.do: the password and refresh_token
// grants of an instance's OAuth provider, form-encoded.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mediaType != "application/x-www-form-urlencoded" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	grant := r.PostForm.Get("grant_type")
	if rec, ok := w.(*statusRecorder); ok {
		rec.grant = grant
	}
	if s.opts.OAuthClientID == "" ||
		!equal(r.PostForm.Get("client_id"), s.opts.OAuthClientID) ||
		!equal(r.PostForm.Get("client_secret"), s.opts.OAuthClientSecret) {
		writeOAuthError(w, http.StatusUnauthorized, "access_denied")
		return
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch grant {
	case "password":
		if !s.validUser(r.PostForm.Get("username"), r.PostForm.Get("password")) {
			writeOAuthError(w, http.StatusUnauthorized, "access_denied")
			return
		}
		refresh := newToken()
		s.refresh[refresh] = now.Add(s.opts.RefreshTokenTTL)
		s.issue(w, now, refresh)
	case "refresh_token":
		refresh := r.PostForm.Get("refresh_token")
		expiry, ok := s.refresh[refresh]
		if !ok || !now.Before(expiry) {
			delete(s.refresh, refresh)
			writeOAuthError(w, http.StatusUnauthorized, "access_denied")
			return
		}
		s.issue(w, now, refresh)
	default:
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type")
	}
}

// issue answers with a new access token next to the refresh token, as an
// instance does for both grants. Callers hold s.mu.
func (s *Server) issue(w http.ResponseWriter, now time.Time, refresh string) {
	access := newToken()
	s.access[access] = now.Add(s.opts.TokenTTL)
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token":  access,
		"refresh_token": refresh,
		"scope":         "useraccount",
		"token_type":    "Bearer",
		"expires_in":    int(s.opts.TokenTTL / time.Second),
	})
}

// writeOAuthError answers as an instance's OAuth provider does: a small JSON
// object, not the Table API error body.
func writeOAuthError(w http.ResponseWriter, status int, description string) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error_description": description, "error": "server_error"})
}

// authenticate accepts Basic credentials of the configured user, or a live
// bearer token when OAuth is enabled, and returns the user name.
func (s *Server) authenticate(r *http.Request) (string, bool) {
	if user, pass, ok := r.BasicAuth(); ok {
		s.mu.Lock()
		defer s.mu.Unlock()
		return user, s.validUser(user, pass)
	}
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || s.opts.OAuthClientID == "" {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	expiry, ok := s.access[token]
	if !ok || !s.now().Before(expiry) {
		return "", false
	}
	return s.opts.User, true
}

// validUser checks credentials in constant time. Callers hold s.mu.
func (s *Server) validUser(user, pass string) bool {
	if s.opts.User == "" {
		return false
	}
	return equal(user, s.opts.User) && equal(pass, s.opts.Password)
}

func equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func newToken() string {
	// An instance's tokens are long opaque strings; two sys_ids will do.
	return newSysID() + newSysID()
}
