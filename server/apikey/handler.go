package apikey

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/distributed-system-analysis/pbench-auth/server"
)

// maxLabel is the longest label, in characters (Pbench's column is 128).
const maxLabel = 128

// maxTTL bounds expires_in: ten years.
const maxTTL = 10 * 365 * 24 * time.Hour

// Handler implements server.APIKeys: Pbench's key endpoints, for a caller
// that server.Middleware has authenticated.
//
//	POST   /api/v1/key?label=L[&expires_in=SECONDS]  201 {"id","label","key","username","created"}; broker tokens only
//	GET    /api/v1/key                               200 [{"id","label","username","created","last_used","expires","prefix"}, ...]
//	GET    /api/v1/key/{id}                          200 {...}; 404 for another user's key
//	DELETE /api/v1/key/{id}                          200 "deleted"; an admin may delete anyone's
//
// Errors are {"message": ...}; 503 (with Retry-After) while the database
// cannot be reached.
func (s *Service) Handler() http.Handler {
	return http.HandlerFunc(s.serveHTTP)
}

func (s *Service) serveHTTP(w http.ResponseWriter, r *http.Request) {
	caller, ok := server.IdentityFrom(r.Context())
	if !ok {
		message(w, http.StatusUnauthorized, "authentication required")
		return
	}
	rest := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/api/v1/key"), "/")
	if rest == "" {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			s.list(w, r, caller)
		case http.MethodPost:
			s.create(w, r, caller)
		default:
			methodNotAllowed(w, r, "GET, HEAD, POST")
		}
		return
	}
	id, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || id <= 0 {
		message(w, http.StatusNotFound, fmt.Sprintf("no API key %q: ids are positive numbers (see GET /api/v1/key)", clip(rest)))
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		k, err := s.Get(r.Context(), caller, id)
		if err != nil {
			fail(w, id, err)
			return
		}
		writeJSON(w, http.StatusOK, k)
	case http.MethodDelete:
		if err := s.Delete(r.Context(), caller, id); err != nil {
			fail(w, id, err)
			return
		}
		writeJSON(w, http.StatusOK, "deleted")
	case http.MethodPost:
		message(w, http.StatusBadRequest, "a key cannot be specified by the user: POST /api/v1/key?label=LABEL")
	default:
		methodNotAllowed(w, r, "GET, HEAD, DELETE")
	}
}

func (s *Service) create(w http.ResponseWriter, r *http.Request, caller *server.Identity) {
	if caller.APIKeyID != 0 {
		message(w, http.StatusForbidden, "an API key cannot create API keys: use a token from the broker (pbench-auth login)")
		return
	}
	q := r.URL.Query()
	lbl := q.Get("label")
	if n := utf8.RuneCountInString(lbl); n > maxLabel || !utf8.ValidString(lbl) || strings.ContainsFunc(lbl, isControl) {
		message(w, http.StatusBadRequest, fmt.Sprintf("label: at most %d printable characters", maxLabel))
		return
	}
	var ttl time.Duration
	if v := q.Get("expires_in"); v != "" {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs <= 0 || secs > int64(maxTTL/time.Second) {
			message(w, http.StatusBadRequest, "expires_in: a number of seconds, between 1 and ten years")
			return
		}
		ttl = time.Duration(secs) * time.Second
	}
	c, err := s.Create(r.Context(), caller, lbl, ttl)
	if err != nil {
		fail(w, 0, err)
		return
	}
	writeJSON(w, http.StatusCreated, c)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func (s *Service) list(w http.ResponseWriter, r *http.Request, caller *server.Identity) {
	keys, err := s.List(r.Context(), caller)
	if err != nil {
		fail(w, 0, err)
		return
	}
	writeJSON(w, http.StatusOK, keys)
}

func fail(w http.ResponseWriter, id int64, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		message(w, http.StatusNotFound, fmt.Sprintf("no API key %d among yours (see GET /api/v1/key)", id))
	case errors.Is(err, server.ErrAPIKeysUnavailable):
		w.Header().Set("Retry-After", "10")
		message(w, http.StatusServiceUnavailable, err.Error())
	default:
		message(w, http.StatusInternalServerError, "internal error")
	}
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	message(w, http.StatusMethodNotAllowed, r.Method+" is not allowed here: use "+allow)
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func message(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, struct {
		Message string `json:"message"`
	}{msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"message":"cannot encode the answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
