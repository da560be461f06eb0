package server

import (
	"errors"
	"net/http"
	"slices"
)

// readPath reads the request's path by the path rule; a path it refuses is
// answered 400.
func (s *Server) readPath(w http.ResponseWriter, r *http.Request) (reqPath, bool) {
	p, err := parseReqPath(r.URL.EscapedPath())
	if err != nil {
		record(w, outcomeBadPath, "")
		writeMessage(w, http.StatusBadRequest, err.Error())
		return p, false
	}
	return p, true
}

// gateway is every /api/v1/... request that serve does not answer itself,
// in gateway mode: anonymous when an Anonymous rule lets it through, else
// validated as by Middleware; then proxied upstream.
func (s *Server) gateway(w http.ResponseWriter, r *http.Request) {
	p, ok := s.readPath(w, r)
	if !ok {
		return
	}
	if s.anonymous(r, &p) {
		record(w, outcomeAnonymous, "")
		s.proxyStream(w, r)
		return
	}
	if id := s.authenticatePath(w, r, &p); id != nil {
		s.proxyStream(w, r.WithContext(WithIdentity(r.Context(), id)))
	}
}

// anonymous reports whether the request may reach the upstream without
// credentials: it carries none (no Authorization header, no access_token
// in the query: a client that sends a token has it checked), an Anonymous
// rule grants its method and path, and no RequireRoles rule covers the path.
func (s *Server) anonymous(r *http.Request, p *reqPath) bool {
	if len(s.anon) == 0 || len(r.Header["Authorization"]) > 0 {
		return false
	}
	if _, err := bearerToken(r); !errors.Is(err, errNoToken) {
		return false // access_token in the query: refused by authenticate
	}
	granted := false
	for i := range s.anon {
		if slices.Contains(s.anon[i].methods, r.Method) && s.anon[i].prefix.grants(p) {
			granted = true
			break
		}
	}
	if !granted {
		return false
	}
	for i := range s.rules {
		if s.rules[i].prefix.covers(p) {
			return false
		}
	}
	return true
}
