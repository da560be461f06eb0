package server

// This file: gateway mode, the reverse proxy to the upstream API that
// passes the identity on in X-Forwarded-* headers.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// identityHeaders are set by the gateway from the token, and always removed
// from what the client sent.
var identityHeaders = []string{"X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Roles"}

func (s *Server) newProxy() (*httputil.ReverseProxy, error) {
	target, _ := url.Parse(s.cfg.Upstream) // checked by Validate
	s.upstreamPath = strings.TrimSuffix(target.Path, "/")
	tr, err := newUpstreamTransport(s.cfg)
	if err != nil {
		return nil, err
	}
	return &httputil.ReverseProxy{
		Transport:  tr,
		BufferPool: &proxyBuffers{},
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			s.setForwarded(pr.In, pr.Out.Header)
			stripIdentityHeaders(pr.Out.Header)
			if isEndpointsFetch(pr.In) {
				rewriteEndpointsRequest(pr.Out, s.upstreamPath)
			} else if id, ok := IdentityFrom(pr.In.Context()); ok {
				pr.Out.Header.Set("X-Forwarded-User", id.Username)
				pr.Out.Header.Set("X-Forwarded-Email", id.Email)
				pr.Out.Header.Set("X-Forwarded-Roles", strings.Join(id.Roles, ","))
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			stripCORSHeaders(resp.Header)
			if isEndpointsFetch(resp.Request) {
				return s.gatewayEndpoints(resp)
			}
			return nil
		},
		ErrorHandler: s.proxyError,
		ErrorLog:     slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}, nil
}

// stripIdentityHeaders removes the identity headers, including spellings
// with underscores that some upstreams (WSGI, CGI) treat as the same header.
func stripIdentityHeaders(h http.Header) {
	for name := range h {
		if isIdentityHeader(name) {
			delete(h, name)
		}
	}
}

// isIdentityHeader reports whether name is one of identityHeaders, compared
// case-insensitively with '_' standing for '-'. Hand-written so that the
// check of every forwarded header allocates nothing (canonicalising each
// name allocated per header and request).
func isIdentityHeader(name string) bool {
	for _, id := range identityHeaders {
		if len(name) != len(id) {
			continue
		}
		same := true
		for i := 0; i < len(name) && same; i++ {
			c, d := name[i], id[i]
			if c == '_' {
				c = '-'
			}
			same = c == d || ('a' <= c && c <= 'z' && c-'a'+'A' == d) || ('A' <= c && c <= 'Z' && c-'A'+'a' == d)
		}
		if same {
			return true
		}
	}
	return false
}

// streamDeadlines is the gateway's idle timeout: instead of the server's
// ReadTimeout and WriteTimeout over the whole request, every read of the
// client's body and every write of the answer must progress within idle.
// Between them (the upstream thinking) the client's connection has no read
// deadline, so a long-running answer is not cut.
func streamDeadlines(w http.ResponseWriter, r *http.Request, idle time.Duration) (http.ResponseWriter, *http.Request) {
	rc := http.NewResponseController(w)
	// The server's WriteTimeout would cut an upstream that thinks longer
	// (HTTP/2 resets the stream when it fires): each write gets its own.
	_ = rc.SetWriteDeadline(time.Time{})
	if r.Body == nil || r.Body == http.NoBody {
		_ = rc.SetReadDeadline(time.Time{})
	} else {
		b := &idleBody{ReadCloser: r.Body, rc: rc, idle: idle}
		r = r.WithContext(context.WithValue(r.Context(), idleBodyKey{}, b))
		r.Body = b
	}
	return &idleWriter{ResponseWriter: w, rc: rc, idle: idle}, r
}

type idleBodyKey struct{}

// idleBody is the client's request body under the gateway's idle timeout.
// It remembers why a read failed, so that the gateway answers the client's
// own failure (a malformed chunked body, a stall) with a 4xx, not a 502.
type idleBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration

	mu  sync.Mutex
	err error
}

func (b *idleBody) Read(p []byte) (int, error) {
	_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		// The body is complete: no deadline while the upstream answers.
		_ = b.rc.SetReadDeadline(time.Time{})
	case err != nil:
		b.mu.Lock()
		b.err = err
		b.mu.Unlock()
	}
	return n, err
}

// readErr is the error a read of the body failed with, or nil.
func (b *idleBody) readErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// clientBodyError is why the client's body of r could not be read, or nil
// when it was read (or not yet) without error.
// (The reverse proxy hands its error handler the outgoing request, whose
// body is not the one streamDeadlines set: the context carries it.)
func clientBodyError(r *http.Request) error {
	if b, ok := r.Context().Value(idleBodyKey{}).(*idleBody); ok {
		return b.readErr()
	}
	return nil
}

// idleWriter gives every write of the answer its own deadline: a client that
// stops reading is dropped after idle, one that keeps reading is not cut.
type idleWriter struct {
	http.ResponseWriter
	rc   *http.ResponseController
	idle time.Duration
}

func (w *idleWriter) Write(p []byte) (int, error) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.idle))
	return w.ResponseWriter.Write(p)
}

func (w *idleWriter) WriteHeader(status int) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.idle))
	w.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach Flush and Hijack.
func (w *idleWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// proxyStream proxies r upstream under the stream idle timeout.
func (s *Server) proxyStream(w http.ResponseWriter, r *http.Request) {
	w, r = streamDeadlines(w, r, s.cfg.StreamIdleTimeout)
	s.proxy.ServeHTTP(w, r)
}

// proxyError answers a proxied request that failed: the client's own
// failure to send its body is its 4xx (400 malformed, 408 too slow, 413 too
// large), anything else the upstream's 502.
func (s *Server) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if berr := clientBodyError(r); berr != nil {
		status, msg := http.StatusBadRequest, "the request body is malformed: "+berr.Error()
		var mbe *http.MaxBytesError
		var ne net.Error
		switch {
		case errors.As(berr, &mbe):
			status, msg = http.StatusRequestEntityTooLarge, "the request body is too large"
		case errors.As(berr, &ne) && ne.Timeout():
			status, msg = http.StatusRequestTimeout, fmt.Sprintf("the request body stalled for %s: send it without pauses", s.cfg.StreamIdleTimeout)
		}
		s.log.Info("client request body failed", "path", r.URL.Path, "status", status, "err", berr)
		w.Header().Set("Connection", "close")
		writeMessage(w, status, msg)
		return
	}
	s.log.Warn("upstream request failed", "path", r.URL.Path, "err", err)
	if ue := (*errUpstreamEndpoints)(nil); errors.As(err, &ue) {
		writeMessage(w, http.StatusBadGateway, ue.Error())
		return
	}
	writeMessage(w, http.StatusBadGateway, "the upstream server cannot be reached")
}
