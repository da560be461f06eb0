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
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"slices"
)

// Server validates tokens and serves the pbench-auth endpoints.
type Server struct {
	cfg      Config
	log      *slog.Logger
	keys     *remoteKeys
	verifier *verifier
	intro    *introspector // nil unless introspection is configured
	cache    *tokenCache
	metrics  *metrics
	rules    []roleRule
	anon     []anonRule
	trusted  []netip.Prefix
	proxy    *httputil.ReverseProxy
	openid   json.RawMessage // the "openid" section of /api/v1/endpoints
	handler  http.Handler
	conns    *connLimiter

	upstreamPath string // the upstream URL's path, without a trailing "/"
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
	anon, _ := parseAnonRules(cfg.Anonymous)
	trusted, _ := parseTrustedProxies(cfg.TrustedProxies)
	s := &Server{cfg: cfg, log: cfg.Logger, rules: rules, anon: anon, trusted: trusted}
	s.cache = newTokenCache(max(cfg.CacheSize, 0))
	s.metrics = newMetrics(s.cache.len)
	s.conns = newConnLimiter(cfg.MaxConnections, cfg.Logger, nil)
	s.metrics.registerConns(s.conns)
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
	if s.openid, err = openIDSection(cfg); err != nil {
		return nil, err
	}
	if cfg.Upstream != "" {
		if s.proxy, err = s.newProxy(); err != nil {
			return nil, err
		}
	}
	s.handler = s.routes()
	go s.keys.run(ctx)
	return s, nil
}

// Handler returns the HTTP handler of every endpoint, logging one line per
// request:
//
//	GET /api/v1/endpoints   public: the client configuration (Pbench-compatible;
//	                        in gateway mode the upstream's, adjusted)
//	GET /api/v1/user        the caller's identity
//	GET /healthz            alive
//	GET /readyz             503 until the broker's keys are loaded
//	GET /metrics            Prometheus
//	/api/v1/key[/{id}]      with Config.APIKeys: create (POST), list (GET), delete (DELETE) API keys
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
	if keys := s.cfg.APIKeys; keys != nil {
		h := s.Middleware(keys.Handler())
		mux.Handle("/api/v1/key", h)
		mux.Handle("/api/v1/key/", h)
	}
	if s.proxy != nil {
		mux.Handle("/api/v1/", http.HandlerFunc(s.gateway))
	}
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeMessage(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
	}))
	return s.logRequests(s.withCORS(mux))
}
