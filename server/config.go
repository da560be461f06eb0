package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/netutil"
)

// Config is the configuration of the validating server. The yaml tags are
// the keys of `pbench-auth serve --config FILE`; they match the flag names.
type Config struct {
	// Listen is the address `serve` listens on. Default 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// TLSCert and TLSKey are PEM files; when both are set `serve` speaks
	// HTTPS. Without them it speaks plain HTTP: put it behind a TLS proxy.
	TLSCert string `yaml:"tls-cert"`
	TLSKey  string `yaml:"tls-key"`
	// LogFormat is "text" (default) or "json".
	LogFormat string `yaml:"log-format"`
	// Dashboard makes `serve` host the browser dashboard at /dashboard/
	// (package server/dashboard) and redirect / there unless Upstream is
	// set. Default true in `serve`; the Server type itself never serves it.
	Dashboard bool `yaml:"dashboard"`
	// DashboardScope is the scope the dashboard requests at the broker.
	// Default "openid profile email"; Dex issues refresh tokens only with
	// offline_access. DANGER: with Keycloak, offline_access gives the browser
	// an offline token that outlives the logout.
	DashboardScope string `yaml:"dashboard-scope"`

	// Issuer is the broker's OpenID issuer URL, compared exactly with each
	// token's "iss" (Keycloak: <server>/realms/<realm>). Required. It must be
	// https unless its host is a loopback address: the keys fetched from it
	// decide which tokens are trusted.
	Issuer string `yaml:"issuer"`
	// ClientID is the public client that CLIs and dashboards log in with.
	// Default "pbench-client".
	ClientID string `yaml:"client-id"`
	// Audiences: a token is accepted only if its "aud" contains one of
	// these. Default DefaultAudience ("pbench-server", as Pbench's server
	// expects: Keycloak adds it with an audience mapper). With Dex, whose
	// tokens name only the client id, set it to the client id.
	Audiences []string `yaml:"audience"`
	// AllowedClients: a token with an "azp" must name one of these.
	// Default: ClientID.
	AllowedClients []string `yaml:"allowed-client"`
	// Leeway is the clock skew tolerated on exp, nbf and iat. Zero means
	// none; `serve` defaults to 30s. At most 5m.
	Leeway time.Duration `yaml:"leeway"`
	// CACert is a PEM file of CA certificates trusted, in addition to the
	// system's, for the broker's TLS.
	CACert string `yaml:"ca-cert"`
	// Upstream, when set, turns on gateway mode: every other /api/v1/...
	// request is validated and then proxied there with X-Forwarded-User,
	// X-Forwarded-Email and X-Forwarded-Roles set from the token (the
	// client's own values of these headers are always removed first). The
	// Authorization header is passed on, so the upstream may check the token
	// too.
	Upstream string `yaml:"upstream"`
	// UpstreamMaxIdleConns is how many idle (keep-alive) connections to the
	// upstream the gateway keeps for reuse. Size it to the requests in
	// flight at peak: beyond it, a request that finds no idle connection
	// dials a new one and closes it afterwards (Go's default of 2 made the
	// gateway dial for most requests under load). Default
	// DefaultUpstreamMaxIdleConns.
	UpstreamMaxIdleConns int `yaml:"upstream-max-idle-conns"`
	// UpstreamMaxConns caps the connections (idle, active and dialing) to
	// the upstream; requests beyond it wait for one to be free. Default 0:
	// no cap. Set it to protect an upstream that can handle only so many.
	UpstreamMaxConns int `yaml:"upstream-max-conns"`
	// UpstreamIdleTimeout closes an upstream connection idle this long.
	// Keep it below the upstream's own keep-alive timeout, so that the
	// gateway does not reuse a connection that the upstream is closing.
	// Default DefaultUpstreamIdleTimeout.
	UpstreamIdleTimeout time.Duration `yaml:"upstream-idle-timeout"`
	// UpstreamHTTP1Only turns HTTP/2 to a TLS (https) upstream off: by
	// default the gateway offers HTTP/2 there (ALPN) and falls back to
	// HTTP/1.1. Plain http upstreams always get HTTP/1.1 with keep-alive.
	UpstreamHTTP1Only bool `yaml:"upstream-http1-only"`
	// RequireRoles are rules "PATH_PREFIX=ROLE": an authenticated request
	// whose path is PATH_PREFIX or below it (whole path segments: /a/b
	// covers /a/b and /a/b/c, not /a/bc) needs ROLE, else 403. Every
	// matching rule applies, so a request under two prefixes needs both
	// roles. Public endpoints are never restricted. Paths are compared as
	// the path rule says (see pathrule.go and the operator guide): case
	// folded, Unicode normalised, trailing dots and spaces and "//" ignored,
	// "/admin.json" counted as "/admin"; a path that servers could read in
	// several ways (double-encoded, "%2F", "\", ";", control characters,
	// dot segments) is refused with 400 by the middleware and the gateway,
	// whether or not rules are configured.
	RequireRoles []string `yaml:"require-role"`
	// Anonymous are gateway rules "PATH_PREFIX[=METHOD,METHOD]" (default
	// methods GET,HEAD): a request with no credentials at all (no
	// Authorization header, no access_token) whose decoded path is, segment
	// by segment and exactly, PATH_PREFIX or below it, and whose method is
	// listed, is proxied upstream without identity headers (any the client
	// sent are removed). A request with a token is always validated: a bad
	// token is 401, never downgraded to anonymous. A path a RequireRoles
	// rule covers is never anonymous. Danger: the upstream sees these
	// requests with no identity and must decide alone what they may read.
	Anonymous []string `yaml:"anonymous"`
	// CORSOrigins are the browser origins (scheme://host[:port], "*" for
	// any, or a single "*" wildcard in the host as in
	// https://*.example.com) allowed to call serve's endpoints and the
	// gateway from a page (CORS, answered by rs/cors). Preflights are
	// answered by serve and never reach the upstream; the upstream's own
	// Access-Control-* headers are removed. No credentials mode: tokens
	// travel in the Authorization header, never in cookies. Default: none.
	CORSOrigins []string `yaml:"cors-origin"`
	// TrustedProxies are the addresses or CIDRs (e.g. 10.0.0.0/8) of
	// reverse proxies in front of serve whose X-Forwarded-Host,
	// X-Forwarded-Proto and X-Forwarded-For serve believes: they then
	// decide the address in /api/v1/endpoints' uri templates and are passed
	// upstream. From any other peer these headers are ignored and replaced.
	// The proxy must set (not append to) X-Forwarded-Host and -Proto.
	TrustedProxies []string `yaml:"trusted-proxy"`

	// IntrospectionEndpoint is the broker's RFC 7662 endpoint. Default: the
	// introspection_endpoint of its discovery document. Introspection is on
	// when IntrospectionClientID is set: tokens that are not JWTs (opaque)
	// are then checked there, with the same claim policy as JWTs.
	IntrospectionEndpoint string `yaml:"introspection-endpoint"`
	// IntrospectionClientID and IntrospectionClientSecretFile are the
	// broker's confidential client allowed to introspect (HTTP basic auth).
	// The secret is never logged; keep its file 0600.
	IntrospectionClientID         string `yaml:"introspection-client-id"`
	IntrospectionClientSecretFile string `yaml:"introspection-client-secret-file"`
	// IntrospectionCacheTTL bounds how long an answer is reused (it is never
	// reused past the token's expiry): revocation is seen within this time.
	// Default DefaultIntrospectionCacheTTL (60s); refusals are reused 5s.
	IntrospectionCacheTTL time.Duration `yaml:"introspection-cache-ttl"`
	// IntrospectAll introspects JWTs too, after their signature check, for
	// brokers whose revocations must take effect at once. Costs one request
	// to the broker per token per IntrospectionCacheTTL.
	IntrospectAll bool `yaml:"introspect-all"`

	// CacheSize bounds the verified-token cache. Default DefaultCacheSize;
	// -1 disables the cache.
	CacheSize int `yaml:"cache-size"`
	// RefreshInterval is how often the broker's keys are fetched again.
	// Default 5m.
	RefreshInterval time.Duration `yaml:"refresh-interval"`
	// MinRefreshInterval rate-limits the fetch triggered by a token naming an
	// unknown key. Default 10s.
	MinRefreshInterval time.Duration `yaml:"min-refresh-interval"`

	// Database is where `serve` keeps API keys: an SQLite file path
	// (default: apikeys.db in serve's state directory) or a postgres:// URL
	// when several replicas share keys. The server itself reads APIKeys.
	Database string `yaml:"database"`
	// APIKeys, when set, accepts API keys as Bearer credentials and serves
	// /api/v1/key (package server/apikey implements it). Nil: no API keys.
	APIKeys APIKeys `yaml:"-"`
	// ReadTimeout bounds the reading of a whole request (headers within at
	// most 10s of it, then the body) and the writing of its answer, on every
	// endpoint but the gateway's. A client that sends slower is disconnected.
	// Default DefaultReadTimeout (30s).
	ReadTimeout time.Duration `yaml:"read-timeout"`
	// StreamIdleTimeout is the gateway's: a proxied request may take any
	// time, but no read of the client's body and no write of the answer may
	// stall longer than this. Default DefaultStreamIdleTimeout (60s).
	StreamIdleTimeout time.Duration `yaml:"stream-idle-timeout"`
	// MaxConnections caps the client connections open at once. When it is
	// reached, a new connection is still accepted and the least active one
	// (idle, then waiting for its first request, then the oldest) is closed:
	// a flood of slow clients cannot lock out health checks or real clients,
	// nor exhaust the process's file descriptors. Default: the descriptor
	// limit (RLIMIT_NOFILE) less 64 kept for the server's own use, halved in
	// gateway mode (each proxied request holds an upstream connection too).
	MaxConnections int `yaml:"max-connections"`

	// HTTPClient fetches the broker's discovery document and keys. Default:
	// a client with a 15s timeout trusting the system's CAs and CACert.
	HTTPClient *http.Client `yaml:"-"`
	// Logger receives one line per request and the key refresh events.
	// Default: slog.Default().
	Logger *slog.Logger `yaml:"-"`
	// Now is the clock. Default time.Now.
	Now func() time.Time `yaml:"-"`
}

// DefaultConfig returns the defaults of `pbench-auth serve`.
func DefaultConfig() Config {
	return Config{
		Listen:    "127.0.0.1:8080",
		LogFormat: "text",
		ClientID:  "pbench-client",
		Leeway:    30 * time.Second,
		Dashboard: true,
	}
}

// Validate reports every problem of the configuration at once (joined with
// errors.Join), or nil. It reads the files the configuration names.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			add("listen %q: want HOST:PORT, e.g. 127.0.0.1:8080", c.Listen)
		}
	}
	if c.Issuer == "" {
		add("issuer is required: the broker's OpenID issuer URL, e.g. https://sso.example.com/realms/pbench")
	} else if err := checkIssuer(c.Issuer); err != nil {
		errs = append(errs, err)
	}
	if strings.TrimSpace(c.ClientID) != c.ClientID || c.ClientID == "" {
		add("client-id %q: must be non-empty, without surrounding spaces", c.ClientID)
	}
	if c.DashboardScope != "" && !slices.Contains(strings.Fields(c.DashboardScope), "openid") {
		add("dashboard-scope %q: must contain openid (the dashboard logs in with OpenID Connect)", c.DashboardScope)
	}
	for _, a := range c.Audiences {
		if strings.TrimSpace(a) == "" {
			add("audience: empty value")
		}
	}
	for _, a := range c.AllowedClients {
		if strings.TrimSpace(a) == "" {
			add("allowed-client: empty value")
		}
	}
	if c.Leeway < 0 || c.Leeway > 5*time.Minute {
		add("leeway %s: must be between 0 and 5m", c.Leeway)
	}
	if c.CACert != "" {
		if _, err := certPool(c.CACert); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Upstream != "" {
		u, err := url.Parse(c.Upstream)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("upstream %q: want an absolute http(s) URL, e.g. http://127.0.0.1:8001", c.Upstream)
		}
	}
	if c.UpstreamMaxIdleConns < 0 || c.UpstreamMaxConns < 0 {
		add("upstream-max-idle-conns and upstream-max-conns must not be negative")
	}
	if c.UpstreamIdleTimeout < 0 {
		add("upstream-idle-timeout %s: must not be negative", c.UpstreamIdleTimeout)
	}
	errs = append(errs, c.validateIntrospection()...)
	if _, err := parseRoleRules(c.RequireRoles); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseAnonRules(c.Anonymous); err != nil {
		errs = append(errs, err)
	}
	if len(c.Anonymous) > 0 && c.Upstream == "" {
		add("anonymous: the rules apply to the gateway: set upstream too")
	}
	for _, o := range c.CORSOrigins {
		if err := checkOrigin(o); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := parseTrustedProxies(c.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	switch {
	case (c.TLSCert == "") != (c.TLSKey == ""):
		add("tls-cert and tls-key go together: give both or neither")
	case c.TLSCert != "":
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			add("tls-cert/tls-key: %w", err)
		}
	}
	switch c.LogFormat {
	case "", "text", "json":
	default:
		add("log-format %q: want text or json", c.LogFormat)
	}
	if c.CacheSize < -1 {
		add("cache-size %d: want a number of entries, or -1 to disable the cache", c.CacheSize)
	}
	if c.ReadTimeout < 0 || c.StreamIdleTimeout < 0 || c.MaxConnections < 0 {
		add("read-timeout, stream-idle-timeout and max-connections must not be negative (0 means the default)")
	}
	if c.RefreshInterval < 0 || c.MinRefreshInterval < 0 {
		add("refresh-interval and min-refresh-interval must not be negative")
	}
	return errors.Join(errs...)
}

func checkIssuer(issuer string) error {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("issuer %q: want an absolute http(s) URL, e.g. https://sso.example.com/realms/pbench", issuer)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("issuer %q: must not have a query or fragment", issuer)
	}
	if u.Scheme == "http" && !netutil.IsLoopback(u.Hostname()) {
		return fmt.Errorf("issuer %q: must use https (plain http is allowed only for loopback hosts)", issuer)
	}
	return nil
}

// certPool returns the system's CAs plus those in file, refusing a file
// with a CERTIFICATE block that does not parse, as the CLI does.
func certPool(file string) (*x509.CertPool, error) {
	pool, _, err := netutil.CertPool(file)
	if err != nil {
		return nil, fmt.Errorf("ca-cert: %w", err)
	}
	return pool, nil
}

// withDefaults fills in what cfg leaves zero (see Config).
func (c Config) withDefaults() (Config, error) {
	if c.ClientID == "" {
		c.ClientID = DefaultConfig().ClientID
	}
	if len(c.Audiences) == 0 {
		c.Audiences = []string{DefaultAudience}
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
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.StreamIdleTimeout == 0 {
		c.StreamIdleTimeout = DefaultStreamIdleTimeout
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = defaultMaxConnections(c.Upstream != "")
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

// DefaultAudience is the audience a token must have unless Audiences says
// otherwise: Pbench's server's default.
const DefaultAudience = "pbench-server"

// checkOrigin checks a CORSOrigins entry.
func checkOrigin(o string) error {
	if o == "*" {
		return nil
	}
	bad := fmt.Errorf("cors-origin %q: want an origin, scheme://host[:port] (no path), e.g. https://dashboard.example.com, or * for any", o)
	if strings.Count(o, "*") > 1 {
		return bad
	}
	u, err := url.Parse(strings.Replace(o, "*", "wildcard", 1))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(o, "?") || strings.HasSuffix(o, "#") {
		return bad
	}
	return nil
}

// parseTrustedProxies reads TrustedProxies: addresses or CIDRs.
func parseTrustedProxies(specs []string) ([]netip.Prefix, error) {
	var errs []error
	var out []netip.Prefix
	for _, s := range specs {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		errs = append(errs, fmt.Errorf("trusted-proxy %q: want an IP address or a CIDR, e.g. 10.0.0.0/8", s))
	}
	return out, errors.Join(errs...)
}
