package server

// This file: the server's own endpoints (/api/v1/endpoints, /api/v1/user,
// /healthz, /readyz) and the JSON answers they share.

import (
	"encoding/json"
	"net/http"
	"sync"
)

// get answers 405 to methods other than GET and HEAD.
func get(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeMessage(w, http.StatusMethodNotAllowed, r.Method+" is not allowed here: use GET")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// serveUser is Middleware in front of writing the identity, without the
// copy of the request that handing the identity on would take.
func (s *Server) serveUser(w http.ResponseWriter, r *http.Request) {
	id := s.authenticate(w, r)
	if id == nil {
		return
	}
	bp := userBufPool.Get().(*[]byte)
	b, ok := appendIdentityJSON((*bp)[:0], id)
	if !ok {
		writeJSON(w, http.StatusOK, id)
	} else {
		h := w.Header()
		h["Content-Type"] = jsonContentType
		h["Cache-Control"] = noStore
		// #nosec G705 -- JSON whose strings hold no byte that JSON or HTML escapes, served as application/json
		_, _ = w.Write(append(b, '\n'))
	}
	*bp = b[:0]
	userBufPool.Put(bp)
}

var userBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// appendIdentityJSON appends what json.Marshal(id) returns, without
// reflection, when every string is printable ASCII that JSON writes as is;
// otherwise it reports false and the caller uses json.Marshal.
func appendIdentityJSON(b []byte, id *Identity) ([]byte, bool) {
	b = append(b, `{"sub":`...)
	b, ok1 := appendPlainJSONString(b, id.Subject)
	b = append(b, `,"username":`...)
	b, ok2 := appendPlainJSONString(b, id.Username)
	b = append(b, `,"email":`...)
	b, ok3 := appendPlainJSONString(b, id.Email)
	if !ok1 || !ok2 || !ok3 {
		return b, false
	}
	if id.Roles == nil {
		b = append(b, `,"roles":null}`...)
		return b, true
	}
	b = append(b, `,"roles":[`...)
	for i, role := range id.Roles {
		if i > 0 {
			b = append(b, ',')
		}
		var ok bool
		if b, ok = appendPlainJSONString(b, role); !ok {
			return b, false
		}
	}
	return append(b, "]}"...), true
}

// appendPlainJSONString appends s quoted, and reports false if JSON (with
// encoding/json's HTML escaping) would have to escape any of its bytes.
func appendPlainJSONString(b []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return b, false
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), true
}

func serveHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header()["Content-Type"] = jsonContentType
	_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
}

func (s *Server) serveReadyz(w http.ResponseWriter, _ *http.Request) {
	if ok, reason := s.Ready(); !ok {
		writeMessage(w, http.StatusServiceUnavailable, "not ready: "+reason)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func writeMessage(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, struct {
		Message string `json:"message"`
	}{msg})
}

// Shared header values: assigning them directly spares a canonicalisation
// and an allocation per response. net/http never modifies them.
var (
	jsonContentType = []string{"application/json"}
	noStore         = []string{"no-store"}
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"message":"cannot encode the answer"}`)
	}
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Cache-Control"] = noStore
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
