package server

// This file: the middleware — the Bearer token taken from the request,
// verified, the role rules applied, and the 401/403/503 answers.

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// Middleware lets a request through to next only with a valid Bearer token
// whose identity has the roles that the RequireRoles rules demand for the
// path; next finds the identity with IdentityFrom. Otherwise it answers:
//
//	400 a path that servers read in different ways (see Config.RequireRoles)
//	401 no token, or a token that is malformed, expired or invalid
//	    (JSON {"message": ...} and an RFC 6750 WWW-Authenticate challenge)
//	403 a valid token lacking a required role
//	503 the broker's keys cannot be had (broker unreachable since start-up),
//	    or an API key came while the key database cannot be reached
//
// With Config.APIKeys set, an API key in place of the token is accepted too
// and carries its owner's identity (see APIKeys).
//
// The token must come in exactly one "Authorization: Bearer TOKEN" header
// (the scheme name is matched case-insensitively, RFC 7235 §2.1); a token in
// the query string (access_token=) is refused, as it ends up in logs.
func (s *Server) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := s.authenticate(w, r); id != nil {
			next.ServeHTTP(w, r.WithContext(WithIdentity(r.Context(), id)))
		}
	})
}

// authenticate returns the identity of a request that Middleware lets
// through, or answers it and returns nil.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) *Identity {
	p, ok := s.readPath(w, r)
	if !ok {
		return nil
	}
	return s.authenticatePath(w, r, &p)
}

// authenticatePath is authenticate for a path already read.
func (s *Server) authenticatePath(w http.ResponseWriter, r *http.Request, p *reqPath) *Identity {
	token, err := bearerToken(r)
	if err != nil {
		s.deny(w, http.StatusUnauthorized, err)
		return nil
	}
	start := time.Now()
	id, err := s.verify(r.Context(), token)
	s.metrics.latency.UpdateDuration(start)
	if err != nil {
		status := http.StatusUnauthorized
		if errors.Is(err, ErrKeysUnavailable) || errors.Is(err, ErrIntrospectionUnavailable) || errors.Is(err, ErrAPIKeysUnavailable) {
			status = http.StatusServiceUnavailable
		}
		s.deny(w, status, err)
		return nil
	}
	for _, rule := range s.rules {
		if !id.HasRole(rule.role) && rule.prefix.covers(p) {
			record(w, outcomeForbidden, id.Username)
			w.Header().Set("WWW-Authenticate", `Bearer realm="pbench", error="insufficient_scope"`)
			writeMessage(w, http.StatusForbidden, fmt.Sprintf("user %q lacks the role %q needed for %s", id.Username, rule.role, rule.prefix.raw))
			return nil
		}
	}
	record(w, outcomeOK, id.Username)
	return id
}

// authError is a refusal before any token was verified.
type authError struct {
	msg   string
	code  string // RFC 6750 error code, "" when no token was sent
	noTok bool
}

func (e *authError) Error() string { return e.msg }

var errNoToken = &authError{msg: "authentication required: send the access token in an Authorization: Bearer header (get one with pbench-auth login, then pbench-auth token)", noTok: true}

func bearerToken(r *http.Request) (string, error) {
	// The fast path skips parsing queries that cannot name access_token,
	// even percent-encoded ("access%5Ftoken").
	if q := r.URL.RawQuery; (strings.Contains(q, "access_token") || strings.Contains(q, "%")) && r.URL.Query().Has("access_token") {
		return "", &authError{msg: "tokens in the URL are not accepted: send them in an Authorization: Bearer header", code: "invalid_request"}
	}
	vals := r.Header["Authorization"]
	switch len(vals) {
	case 0:
		return "", errNoToken
	case 1:
	default:
		return "", &authError{msg: "send exactly one Authorization header", code: "invalid_request"}
	}
	scheme, token, _ := strings.Cut(vals[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", &authError{msg: "the Authorization header must use the Bearer scheme", noTok: true}
	}
	if token == "" {
		return "", &authError{msg: "empty Bearer token", code: "invalid_token"}
	}
	return token, nil
}

var unsafeInQuoted = regexp.MustCompile(`[^\x20-\x21\x23-\x5B\x5D-\x7E]`)

// deny answers a refused request.
func (s *Server) deny(w http.ResponseWriter, status int, err error) {
	challenge := `Bearer realm="pbench"`
	outcome := outcomeInvalid
	var ae *authError
	switch {
	case status == http.StatusServiceUnavailable:
		outcome = outcomeUnavailable
		w.Header().Set("Retry-After", "10")
	case errors.As(err, &ae) && ae.noTok:
		outcome = outcomeNoToken
	default:
		code := "invalid_token"
		if ae != nil && ae.code != "" {
			code = ae.code
		}
		challenge += `, error="` + code + `", error_description="` + unsafeInQuoted.ReplaceAllString(err.Error(), "'") + `"`
	}
	record(w, outcome, "")
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", challenge)
	}
	writeMessage(w, status, err.Error())
}
