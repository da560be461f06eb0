package server

// This file: gateway mode, the reverse proxy to the upstream API that
// passes the identity on in X-Forwarded-* headers.

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
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
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.log.Warn("upstream request failed", "path", r.URL.Path, "err", err)
			if ue := (*errUpstreamEndpoints)(nil); errors.As(err, &ue) {
				writeMessage(w, http.StatusBadGateway, ue.Error())
				return
			}
			writeMessage(w, http.StatusBadGateway, "the upstream server cannot be reached")
		},
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
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
