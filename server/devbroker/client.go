package devbroker

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/netutil"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// LoopbackRedirectURIs are the public client's default redirect URIs: a
// loopback listener of a CLI, on any port (Keycloak ignores the port of
// loopback redirect URIs, RFC 8252 §7.3) and any path.
var LoopbackRedirectURIs = []string{"http://127.0.0.1/*", "http://localhost/*", "http://[::1]/*"}

// ClientSettings are the settings of the public client that Keycloak's
// admin console calls by the same names. The zero value is Keycloak's
// default for a new public client, with the loopback redirect URIs a CLI
// needs and direct access grants on (as Pbench's own Keycloak setup has).
type ClientSettings struct {
	// RedirectURIs are Keycloak's "Valid redirect URIs", added to
	// LoopbackRedirectURIs: exact URIs, or prefixes ending in "*"
	// ("http://localhost:3000/*"). A loopback URI matches on any port.
	// DANGER: a pattern such as "https://*" or "http://host*" lets the
	// broker send codes to addresses you do not control.
	RedirectURIs []string
	// PostLogoutRedirectURIs are Keycloak's "Valid post logout redirect
	// URIs", with the same patterns; "+" (the default) means the redirect
	// URIs.
	PostLogoutRedirectURIs []string
	// WebOrigins are the origins (scheme://host[:port]) a browser page may
	// call the token, userinfo, logout and revocation endpoints from (CORS);
	// "+" (the default) means the origins of the redirect URIs as written
	// (the loopback ones without a port: a CLI needs no CORS), "*" any
	// origin (DANGER: any web page may then use tokens it got hold of).
	WebOrigins []string
	// RequirePKCE refuses an authorization request without an S256
	// code_challenge (Keycloak's "Proof Key for Code Exchange Code Challenge
	// Method" set to S256). Default off, as in Keycloak; a code issued with a
	// challenge always needs its verifier.
	RequirePKCE bool
	// DisableDirectAccessGrants refuses the password grant (Keycloak's
	// "Direct access grants" switched off).
	DisableDirectAccessGrants bool
}

// clientConfig is a ClientSettings resolved for use.
type clientConfig struct {
	redirects   []string // patterns
	postLogout  []string // patterns
	origins     []string // exact origins, "*" for any
	requirePKCE bool
	password    bool
}

func newClientConfig(cs ClientSettings) (*clientConfig, error) {
	c := &clientConfig{requirePKCE: cs.RequirePKCE, password: !cs.DisableDirectAccessGrants}
	for _, p := range append(slices.Clone(LoopbackRedirectURIs), cs.RedirectURIs...) {
		if err := checkPattern(p); err != nil {
			return nil, fmt.Errorf("redirect URI %q: %w", p, err)
		}
		if !slices.Contains(c.redirects, p) {
			c.redirects = append(c.redirects, p)
		}
	}
	post := cs.PostLogoutRedirectURIs
	if len(post) == 0 {
		post = []string{"+"}
	}
	for _, p := range post {
		if p == "+" {
			c.postLogout = append(c.postLogout, c.redirects...)
			continue
		}
		if err := checkPattern(p); err != nil {
			return nil, fmt.Errorf("post-logout redirect URI %q: %w", p, err)
		}
		c.postLogout = append(c.postLogout, p)
	}
	origins := cs.WebOrigins
	if len(origins) == 0 {
		origins = []string{"+"}
	}
	for _, o := range origins {
		switch o {
		case "*":
			c.origins = append(c.origins, o)
		case "+":
			for _, p := range c.redirects {
				u, err := url.Parse(strings.TrimSuffix(p, "*"))
				if err != nil || u.Host == "" {
					continue
				}
				// As Keycloak: the origin as written, so a loopback
				// redirect on any port gives no origin on any port.
				c.origins = append(c.origins, u.Scheme+"://"+u.Host)
			}
		default:
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") ||
				u.RawQuery != "" || u.Fragment != "" || u.User != nil {
				return nil, fmt.Errorf("web origin %q: want scheme://host[:port], \"+\" or \"*\"", o)
			}
			c.origins = append(c.origins, u.Scheme+"://"+u.Host)
		}
	}
	slices.Sort(c.origins)
	c.origins = slices.Compact(c.origins)
	return c, nil
}

// checkPattern accepts an absolute http(s) URI, optionally ending in "*".
func checkPattern(p string) error {
	u, err := url.Parse(strings.TrimSuffix(p, "*"))
	switch {
	case err != nil:
		return errors.New("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("want an http:// or https:// URL")
	case u.Host == "" || u.User != nil || u.Fragment != "":
		return errors.New("want scheme://host[:port]/path without user or fragment")
	case strings.Contains(strings.TrimSuffix(p, "*"), "*"):
		return errors.New(`"*" is allowed only at the end`)
	}
	return nil
}

// matchRedirect reports whether raw matches one of patterns as Keycloak
// matches redirect URIs: equal, or starting with a pattern's text before its
// trailing "*"; loopback addresses match on any port. raw must be an
// absolute http(s) URL without user info, fragment or dot segments.
func matchRedirect(patterns []string, raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.Fragment != "" || u.Opaque != "" || hasDotSegment(u.Path) {
		return false
	}
	for _, p := range patterns {
		wildcard := strings.HasSuffix(p, "*")
		pu, err := url.Parse(strings.TrimSuffix(p, "*"))
		if err != nil {
			continue
		}
		target, prefix := u.String(), pu.String()
		if isLoopbackHTTP(pu) && isLoopbackHTTP(u) && pu.Hostname() == u.Hostname() {
			target, prefix = withoutPort(u), withoutPort(pu)
		}
		if target == prefix || (wildcard && (strings.HasPrefix(target, prefix) || target+"/" == prefix)) {
			return true
		}
	}
	return false
}

// hasDotSegment is true if p has a "." or ".." segment, which a browser
// would resolve out of the prefix a pattern allows.
func hasDotSegment(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

func isLoopbackHTTP(u *url.URL) bool {
	if u.Scheme != "http" {
		return false
	}
	return netutil.IsLoopback(u.Hostname())
}

func withoutPort(u *url.URL) string {
	c := *u
	c.Host = c.Hostname()
	if strings.Contains(c.Host, ":") {
		c.Host = "[" + c.Host + "]"
	}
	return c.String()
}

// allowsOrigin reports whether a page of origin may call the client's CORS
// endpoints.
func (c *clientConfig) allowsOrigin(origin string) bool {
	if origin == "" || origin == "null" {
		return false
	}
	return slices.Contains(c.origins, "*") || slices.Contains(c.origins, origin)
}

// describeRedirects says which redirects the client accepts, for errors.
func (c *clientConfig) describeRedirects() string {
	return "the development broker redirects only to a loopback listener of a CLI (http://127.0.0.1:PORT/..., " +
		"http://localhost:PORT/... or http://[::1]:PORT/...) or to the client's registered redirect URIs " +
		"(add one with --dev-redirect-uri or a realm file)"
}

// publicClient is the public client (pbench-client): no secret, code,
// refresh, device and password grants, redirects as its settings say.
type publicClient struct {
	id       string
	loginURL string        // {issuer}/login-actions/authenticate
	idTTL    time.Duration // ID token lifetime: Keycloak uses the access token's
	config   *clientConfig
	// redirectURI is the redirect of the current authorization request,
	// once VerifyAuthRequest accepted it.
	redirectURI string
}

func (c *publicClient) GetID() string { return c.id }
func (c *publicClient) RedirectURIs() []string {
	if c.redirectURI == "" {
		return nil
	}
	return []string{c.redirectURI}
}
func (c *publicClient) PostLogoutRedirectURIs() []string    { return nil }
func (c *publicClient) ApplicationType() op.ApplicationType { return op.ApplicationTypeNative }
func (c *publicClient) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodNone }
func (c *publicClient) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *publicClient) LoginURL(requestID string) string {
	return c.loginURL + "?client_id=" + url.QueryEscape(c.id) + "&id=" + url.QueryEscape(requestID)
}
func (c *publicClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }
func (c *publicClient) IDTokenLifetime() time.Duration      { return c.idTTL }

// DevMode lets the library accept any redirect VerifyAuthRequest accepted
// (it would refuse plain http off loopback, which a dashboard in
// development uses); VerifyAuthRequest applies the client's patterns.
func (c *publicClient) DevMode() bool                        { return true }
func (c *publicClient) IsScopeAllowed(string) bool           { return true }
func (c *publicClient) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *publicClient) ClockSkew() time.Duration             { return 0 }
func (c *publicClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *publicClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *publicClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken, oidc.GrantTypeDeviceCode}
}

// introspectionClient is the resource server's confidential client: it may
// only authenticate to the introspection endpoint.
type introspectionClient struct{ publicClient }

func (c *introspectionClient) GetID() string                       { return DefaultIntrospectionClientID }
func (c *introspectionClient) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c *introspectionClient) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodBasic }
func (c *introspectionClient) GrantTypes() []oidc.GrantType        { return nil }
func (c *introspectionClient) ResponseTypes() []oidc.ResponseType  { return nil }
