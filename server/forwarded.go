package server

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/rs/cors"
)

// trustedPeer reports whether the request's peer (the address that
// connected to serve) is one of the configured trusted proxies.
func (s *Server) trustedPeer(r *http.Request) bool {
	if len(s.trusted) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	addr := ap.Addr().Unmap()
	for _, p := range s.trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// externalBase is the address the client used to reach serve, as
// scheme://host[:port]: the request's Host and whether serve terminated
// TLS, or, from a trusted proxy, its X-Forwarded-Host and X-Forwarded-Proto
// (the first value of each, when it is well-formed).
func (s *Server) externalBase(r *http.Request) (scheme, host string) {
	scheme, host = "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if !s.trustedPeer(r) {
		return scheme, host
	}
	if v := firstValue(r.Header.Get("X-Forwarded-Proto")); strings.EqualFold(v, "http") || strings.EqualFold(v, "https") {
		scheme = strings.ToLower(v)
	}
	if v := firstValue(r.Header.Get("X-Forwarded-Host")); validHost(v) {
		host = v
	}
	return scheme, host
}

// firstValue is the first element of a comma-separated header value.
func firstValue(v string) string {
	v, _, _ = strings.Cut(v, ",")
	return strings.TrimSpace(v)
}

// validHost accepts host[:port] with a DNS name, an IPv4 address or a
// bracketed IPv6 address: nothing that could add a path, user or scheme to
// the URLs built from it.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '-', c == '_', c == ':', c == '[', c == ']':
		default:
			return false
		}
	}
	return true
}

// setForwarded sets the X-Forwarded-* headers of a request to the upstream:
// X-Forwarded-Host and -Proto say the address the client used (what
// externalBase says); X-Forwarded-For is the peer's address, after the
// chain a trusted proxy sent. SetXForwarded has already replaced the
// client's values; the proxy removed RFC 7239's Forwarded header (which
// some upstreams, Pbench among them, prefer to these).
func (s *Server) setForwarded(in *http.Request, out http.Header) {
	scheme, host := s.externalBase(in)
	out.Set("X-Forwarded-Host", host)
	out.Set("X-Forwarded-Proto", scheme)
	if prior := in.Header.Values("X-Forwarded-For"); len(prior) > 0 && s.trustedPeer(in) {
		if peer := out.Get("X-Forwarded-For"); peer != "" {
			out.Set("X-Forwarded-For", strings.Join(prior, ", ")+", "+peer)
		}
	}
}

// withCORS answers CORS preflights for the configured origins and adds the
// CORS headers to the answers to them; without origins it returns next.
func (s *Server) withCORS(next http.Handler) http.Handler {
	if len(s.cfg.CORSOrigins) == 0 {
		return next
	}
	return cors.New(cors.Options{
		AllowedOrigins: s.cfg.CORSOrigins,
		AllowedMethods: []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
			http.MethodPatch, http.MethodDelete},
		// Any request header: the origin check is what restricts, and Pbench's
		// clients send Authorization, Content-Type and Content-MD5.
		AllowedHeaders: []string{"*"},
		ExposedHeaders: []string{"WWW-Authenticate", "Retry-After", "Content-Disposition"},
		MaxAge:         600,
		// Tokens travel in Authorization, set by the page's code; cookies
		// and TLS client certificates are never honoured cross-origin.
		AllowCredentials: false,
	}).Handler(next)
}

// stripCORSHeaders removes the upstream's Access-Control-* answers: serve
// alone decides which origins may read.
func stripCORSHeaders(h http.Header) {
	for name := range h {
		if strings.HasPrefix(name, "Access-Control-") {
			delete(h, name)
		}
	}
}
