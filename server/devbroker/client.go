package devbroker

import (
	"errors"
	"net/url"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/netutil"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// publicClient is the CLI's client: no secret, PKCE S256, loopback redirects
// on any port and path (RFC 8252 §7.3), code, refresh and device grants.
type publicClient struct {
	id       string
	loginURL string        // {issuer}/login-actions/authenticate
	idTTL    time.Duration // ID token lifetime: Keycloak uses the access token's
	// redirectURI is the one loopback redirect of the current authorization
	// request, once checkLoopbackRedirect accepted it.
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
func (c *publicClient) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeJWT }
func (c *publicClient) IDTokenLifetime() time.Duration       { return c.idTTL }
func (c *publicClient) DevMode() bool                        { return false }
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

// checkLoopbackRedirect accepts http redirects to 127.0.0.1, [::1] or
// localhost, on any port and path, and nothing else.
func checkLoopbackRedirect(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("redirect_uri is not a URL")
	}
	host := u.Hostname()
	if u.Scheme != "http" || !netutil.IsLoopback(host) || u.User != nil || u.Fragment != "" || u.Opaque != "" {
		// Not echoed: error_description allows only a few characters (RFC 6749 §5.2).
		return errors.New("redirect_uri refused: the development broker redirects only to " +
			"http://127.0.0.1:PORT/..., http://localhost:PORT/... or http://[::1]:PORT/... (a loopback listener of a CLI)")
	}
	return nil
}
