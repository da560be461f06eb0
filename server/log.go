package server

import (
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// recorder captures what the request log line and the metrics need.
type recorder struct {
	http.ResponseWriter
	status  int
	outcome string
	user    string
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController (used by the reverse proxy) reach the
// connection's writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// record notes the outcome of authentication for the log line, when w comes
// from logRequests (an embedder's own writer is left alone).
func record(w http.ResponseWriter, outcome, user string) {
	if rec, ok := w.(*recorder); ok {
		rec.outcome, rec.user = outcome, user
	}
}

// recorderPool spares an allocation per request: a recorder is not used
// once the handler it was given to has returned.
var recorderPool = sync.Pool{New: func() any { return new(recorder) }}

// logRequests logs one line per request — method, path (never the query,
// which could hold a token), status, outcome, user, duration — and counts it.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := recorderPool.Get().(*recorder)
		*rec = recorder{ResponseWriter: w}
		defer func() {
			*rec = recorder{}
			recorderPool.Put(rec)
		}()
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		if rec.outcome == "" {
			rec.outcome = outcomePublic
			if rec.status == http.StatusNotFound {
				rec.outcome = outcomeNotFound
			}
		}
		s.metrics.requests[rec.outcome].Inc()
		// "request": serve buffers the lines with this message (pkg/cmd/serve).
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", rec.status),
			slog.String("outcome", rec.outcome),
			slog.String("user", rec.user),
			slog.Duration("duration", time.Since(start)),
		)
	})
}
