// Package server is the Pbench server side of the third-party token sequence
// (seed steps 1–2 and 12–13): it publishes the client configuration
// (/api/v1/endpoints), validates the Bearer tokens that the identity broker
// issued, extracts the identity and answers 200, 401, 403 or 503 — for its
// own endpoints, in front of an upstream API (gateway mode), or as a
// middleware that a Go service embeds:
//
//	srv, err := server.New(ctx, cfg)     // starts fetching the broker's keys
//	mux.Handle("/api/v1/", srv.Middleware(myAPI))
//	// in myAPI: id, _ := server.IdentityFrom(r.Context())
package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/pkg/buildinfo"
)

// Server validates tokens and serves the pbench-auth endpoints.
type Server struct {
	cfg       Config
	log       *slog.Logger
	keys      *remoteKeys
	verifier  *verifier
	intro     *introspector // nil unless introspection is configured
	cache     *tokenCache
	metrics   *metrics
	rules     []roleRule
	proxy     *httputil.ReverseProxy
	endpoints []byte
	handler   http.Handler
}

// New checks cfg, applies its defaults, and starts fetching the broker's
// keys in the background until ctx is done. It does not wait for the broker:
// until the keys are loaded, /readyz and token checks answer 503.
func New(ctx context.Context, cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	rules, _ := parseRoleRules(cfg.RequireRoles)
	s := &Server{cfg: cfg, log: cfg.Logger, rules: rules}
	s.cache = newTokenCache(max(cfg.CacheSize, 0))
	s.metrics = newMetrics(s.cache.len)
	s.keys = &remoteKeys{
		issuer:      cfg.Issuer,
		client:      cfg.HTTPClient,
		now:         cfg.Now,
		log:         cfg.Logger,
		period:      cfg.RefreshInterval,
		minInterval: cfg.MinRefreshInterval,
		onRefresh:   s.metrics.refresh,
		onChange: func(old, cur *keySet) {
			if old == nil {
				return
			}
			gone := map[string]bool{}
			for kid := range old.byKID {
				if cur.byKID[kid] == nil {
					gone[kid] = true
				}
			}
			s.cache.dropKIDs(gone)
		},
	}
	roleClients := []string{cfg.ClientID}
	for _, a := range cfg.Audiences {
		if !slices.Contains(roleClients, a) {
			roleClients = append(roleClients, a)
		}
	}
	s.verifier = &verifier{
		keys: s.keys, cache: s.cache, now: cfg.Now, issuer: cfg.Issuer,
		aud: cfg.Audiences, clients: cfg.AllowedClients, leeway: cfg.Leeway,
		onCache: s.metrics.cache, roleClients: roleClients,
	}
	if s.intro, err = newIntrospector(&cfg, s.verifier, s.keys.introspectionEndpoint); err != nil {
		return nil, err
	}
	if s.endpoints, err = endpointsJSON(cfg); err != nil {
		return nil, err
	}
	if cfg.Upstream != "" {
		s.proxy = s.newProxy()
	}
	s.handler = s.routes()
	go s.keys.run(ctx)
	return s, nil
}

// withDefaults fills in what cfg leaves zero (see Config).
func (c Config) withDefaults() (Config, error) {
	if c.ClientID == "" {
		c.ClientID = DefaultConfig().ClientID
	}
	if len(c.Audiences) == 0 {
		c.Audiences = []string{c.ClientID}
	}
	if len(c.AllowedClients) == 0 {
		c.AllowedClients = []string{c.ClientID}
	}
	switch c.CacheSize {
	case 0:
		c.CacheSize = DefaultCacheSize
	case -1:
		c.CacheSize = 0
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = 5 * time.Minute
	}
	if c.MinRefreshInterval == 0 {
		c.MinRefreshInterval = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.HTTPClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if c.CACert != "" {
			pool, err := certPool(c.CACert)
			if err != nil {
				return c, err
			}
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		c.HTTPClient = &http.Client{Transport: tr, Timeout: 15 * time.Second}
	}
	return c, nil
}

// Handler returns the HTTP handler of every endpoint, logging one line per
// request:
//
//	GET /api/v1/endpoints   public: the client configuration (Pbench-compatible)
//	GET /api/v1/user        the caller's identity
//	GET /healthz            alive
//	GET /readyz             503 until the broker's keys are loaded
//	GET /metrics            Prometheus
//	/api/v1/...             gateway mode only: validated, then proxied upstream
//
// Anything else is 404.
func (s *Server) Handler() http.Handler { return s.handler }

// Ready reports whether the broker's keys are loaded, and why not.
func (s *Server) Ready() (bool, string) {
	if s.keys.current() != nil {
		return true, ""
	}
	return false, s.keys.notReadyReason()
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/api/v1/endpoints", get(http.HandlerFunc(s.serveEndpoints)))
	mux.Handle("/api/v1/user", get(http.HandlerFunc(s.serveUser)))
	mux.Handle("/healthz", get(http.HandlerFunc(serveHealthz)))
	mux.Handle("/readyz", get(http.HandlerFunc(s.serveReadyz)))
	mux.Handle("/metrics", get(s.metrics.handler()))
	if s.proxy != nil {
		mux.Handle("/api/v1/", s.Middleware(s.proxy))
	}
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeMessage(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
	}))
	return s.logRequests(mux)
}

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

// Middleware lets a request through to next only with a valid Bearer token
// whose identity has the roles that the RequireRoles rules demand for the
// path; next finds the identity with IdentityFrom. Otherwise it answers:
//
//	401 no token, or a token that is malformed, expired or invalid
//	    (JSON {"message": ...} and an RFC 6750 WWW-Authenticate challenge)
//	403 a valid token lacking a required role
//	503 the broker's keys cannot be had (broker unreachable since start-up)
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
	token, err := bearerToken(r)
	if err != nil {
		s.deny(w, http.StatusUnauthorized, err)
		return nil
	}
	start := time.Now()
	id, err := s.verify(r.Context(), token)
	s.metrics.latency.Observe(time.Since(start).Seconds())
	if err != nil {
		status := http.StatusUnauthorized
		if errors.Is(err, ErrKeysUnavailable) || errors.Is(err, ErrIntrospectionUnavailable) {
			status = http.StatusServiceUnavailable
		}
		s.deny(w, status, err)
		return nil
	}
	for _, rule := range s.rules {
		// path.Clean: "/api/v1//admin/." must not escape "/api/v1/admin".
		if rule.matches(path.Clean("/"+r.URL.Path)) && !id.HasRole(rule.role) {
			record(w, outcomeForbidden, id.Username)
			w.Header().Set("WWW-Authenticate", `Bearer realm="pbench", error="insufficient_scope"`)
			writeMessage(w, http.StatusForbidden, fmt.Sprintf("user %q lacks the role %q needed for %s", id.Username, rule.role, rule.prefix))
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

func (s *Server) serveEndpoints(w http.ResponseWriter, _ *http.Request) {
	w.Header()["Content-Type"] = jsonContentType
	_, _ = w.Write(s.endpoints)
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

// keycloakIssuer matches <server>/realms/<realm>.
var keycloakIssuer = regexp.MustCompile(`^(.+)/realms/([^/]+)/?$`)

// endpointsJSON is the body of /api/v1/endpoints, in Pbench's shape.
func endpointsJSON(cfg Config) ([]byte, error) {
	server, realm := cfg.Issuer, ""
	if m := keycloakIssuer.FindStringSubmatch(cfg.Issuer); m != nil {
		server, realm = m[1], m[2]
	}
	type openid struct {
		Server string `json:"server"`
		Realm  string `json:"realm"`
		Client string `json:"client"`
		Issuer string `json:"issuer"`
	}
	b, err := json.Marshal(struct {
		Identification string `json:"identification"`
		OpenID         openid `json:"openid"`
	}{"pbench-auth " + buildinfo.Version(), openid{server, realm, cfg.ClientID, cfg.Issuer}})
	return append(b, '\n'), err
}

// identityHeaders are set by the gateway from the token, and always removed
// from what the client sent.
var identityHeaders = []string{"X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Roles"}

func (s *Server) newProxy() *httputil.ReverseProxy {
	target, _ := url.Parse(s.cfg.Upstream) // checked by Validate
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			stripIdentityHeaders(pr.Out.Header)
			if id, ok := IdentityFrom(pr.In.Context()); ok {
				pr.Out.Header.Set("X-Forwarded-User", id.Username)
				pr.Out.Header.Set("X-Forwarded-Email", id.Email)
				pr.Out.Header.Set("X-Forwarded-Roles", strings.Join(id.Roles, ","))
			}
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.log.Warn("upstream request failed", "path", r.URL.Path, "err", err)
			writeMessage(w, http.StatusBadGateway, "the upstream server cannot be reached")
		},
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// stripIdentityHeaders removes the identity headers, including spellings
// with underscores that some upstreams (WSGI, CGI) treat as the same header.
func stripIdentityHeaders(h http.Header) {
	for name := range h {
		canon := http.CanonicalHeaderKey(strings.ReplaceAll(name, "_", "-"))
		if slices.Contains(identityHeaders, canon) {
			delete(h, name)
		}
	}
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
