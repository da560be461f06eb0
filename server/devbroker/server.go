package devbroker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// legacyServer is the op library's server with the Keycloak differences
// layered on: the client's redirect URI patterns, PKCE as the client
// requires it, codes redeemed once under concurrency, and Keycloak's token
// response fields and refresh errors.
type legacyServer struct {
	*op.LegacyServer
	provider *op.Provider
	store    *store
	handler  http.Handler
}

func newLegacyServer(issuer string, st *store) (*legacyServer, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	var cryptoKey [32]byte // encrypts authorization codes; new on every start
	if _, err := rand.Read(cryptoKey[:]); err != nil {
		return nil, fmt.Errorf("code key: %w", err)
	}
	ep := endpoints()
	config := &op.Config{
		CryptoKey:                cryptoKey,
		CodeMethodS256:           true,
		GrantTypeRefreshToken:    true,
		DefaultLogoutRedirectURI: issuer + "/logged-out",
		DeviceAuthorization: op.DeviceAuthorizationConfig{
			Lifetime:     deviceCodeTTL,
			PollInterval: devicePollRate,
			UserFormPath: u.Path + "/device", // Keycloak's verification_uri
			UserCode:     op.UserCodeBase20,
		},
	}
	provider, err := op.NewProvider(config, st, op.StaticIssuer(issuer),
		op.WithAllowInsecure(), // loopback http is the point of a dev broker
		op.WithCustomEndpoints(ep.Authorization, ep.Token, ep.Userinfo, ep.Revocation, ep.EndSession, ep.JwksURI),
		op.WithCustomIntrospectionEndpoint(ep.Introspection),
		op.WithCustomDeviceAuthorizationEndpoint(ep.DeviceAuthorization),
	)
	if err != nil {
		return nil, fmt.Errorf("openid provider: %w", err)
	}
	s := &legacyServer{LegacyServer: op.NewLegacyServer(provider, ep), provider: provider, store: st}
	// The library's CORS policy (every origin, with credentials) is off:
	// Broker.routes applies Keycloak's, per client.
	s.handler = op.RegisterLegacyServer(s, op.AuthorizeCallbackHandler(provider), op.WithServerCORSOptions(nil))
	return s, nil
}

// VerifyAuthRequest accepts, for the public client, a redirect matching its
// redirect URI patterns (loopback on any port by default), and refuses
// every other one without redirecting.
func (s *legacyServer) VerifyAuthRequest(ctx context.Context, r *op.Request[oidc.AuthRequest]) (*op.ClientRequest[oidc.AuthRequest], error) {
	cr, err := s.LegacyServer.VerifyAuthRequest(ctx, r)
	if err != nil {
		return nil, err
	}
	pc, ok := cr.Client.(*publicClient)
	if !ok {
		return nil, oidc.ErrInvalidRequestRedirectURI().WithDescription("this client cannot log users in")
	}
	if !matchRedirect(pc.config.redirects, r.Data.RedirectURI) {
		// Not echoed: error_description allows only a few characters (RFC 6749 §5.2).
		return nil, oidc.ErrInvalidRequestRedirectURI().WithDescription("Invalid parameter: redirect_uri: %s", pc.config.describeRedirects())
	}
	pc.redirectURI = r.Data.RedirectURI
	return cr, nil
}

// Authorize requires PKCE S256 when the client requires it (Keycloak's
// default is optional). The redirect_uri is valid here, so the error goes
// back to the client.
func (s *legacyServer) Authorize(ctx context.Context, r *op.ClientRequest[oidc.AuthRequest]) (*op.Redirect, error) {
	if pc, ok := r.Client.(*publicClient); ok && pc.config.requirePKCE &&
		(r.Data.CodeChallenge == "" || r.Data.CodeChallengeMethod != oidc.CodeChallengeMethodS256) {
		return nil, oidc.ErrInvalidRequest().WithDescription("Missing parameter: code_challenge_method (PKCE S256 is required for this client)")
	}
	return s.LegacyServer.Authorize(ctx, r)
}

// CodeExchange redeems a code once: the first request to present it claims
// it, and any other, concurrent or later, gets invalid_grant.
func (s *legacyServer) CodeExchange(ctx context.Context, r *op.ClientRequest[oidc.AccessTokenRequest]) (*op.Response, error) {
	ctx, ok := s.store.claimCode(ctx, r.Data.Code)
	if !ok {
		return nil, oidc.ErrInvalidGrant().WithDescription("Code not valid")
	}
	req, _ := s.store.AuthRequestByCode(ctx, r.Data.Code) // read before the library consumes the code
	resp, err := s.LegacyServer.CodeExchange(ctx, r)
	if err == nil {
		g, _ := req.(*grant)
		err = s.clientIDToken(ctx, resp, g, r.Client, r.Data.Code)
	}
	return s.keycloakTokens(resp, err)
}

func (s *legacyServer) RefreshToken(ctx context.Context, r *op.ClientRequest[oidc.RefreshTokenRequest]) (*op.Response, error) {
	resp, err := s.LegacyServer.RefreshToken(ctx, r)
	if at, ok := tokensOf(resp); err == nil && ok {
		req, _ := s.store.TokenRequestByRefreshToken(ctx, at.RefreshToken)
		g, _ := req.(*grant)
		err = s.clientIDToken(ctx, resp, g, r.Client, "")
	}
	return s.keycloakTokens(resp, err)
}

func tokensOf(resp *op.Response) (*oidc.AccessTokenResponse, bool) {
	if resp == nil {
		return nil, false
	}
	at, ok := resp.Data.(*oidc.AccessTokenResponse)
	return at, ok
}

// clientIDToken mints the response's ID token again with aud = the client
// id alone, as Keycloak's is. The library gives the ID token the access
// token's audience (here also "account" and the configured ones), because
// both come from one request object.
func (s *legacyServer) clientIDToken(ctx context.Context, resp *op.Response, g *grant, client op.Client, code string) error {
	at, ok := tokensOf(resp)
	if !ok || at.IDToken == "" || g == nil {
		return nil
	}
	idg := *g
	idg.Audience = []string{g.ClientID}
	id, err := op.CreateIDToken(ctx, op.IssuerFromContext(ctx), &idg, client.IDTokenLifetime(), at.AccessToken, code, s.store, client)
	if err != nil {
		return fmt.Errorf("id token: %w", err)
	}
	at.IDToken = id
	return nil
}

// DeviceToken is the library's device grant, with the approved
// authorization consumed once (a second poll gets invalid_grant) and the
// session the user opened on the device page attached to the tokens.
func (s *legacyServer) DeviceToken(ctx context.Context, r *op.ClientRequest[oidc.DeviceAccessTokenRequest]) (*op.Response, error) {
	if _, err := op.CheckDeviceAuthorizationState(ctx, r.Client.GetID(), r.Data.DeviceCode, s.provider); err != nil {
		return nil, err
	}
	g, err := s.store.takeDeviceGrant(r.Client.GetID(), r.Data.DeviceCode)
	if err != nil {
		return nil, err
	}
	tokens, err := op.CreateDeviceTokenResponse(ctx, g, s.provider, r.Client)
	if err != nil {
		return nil, err
	}
	resp := op.NewResponse(tokens)
	return s.keycloakTokens(resp, s.clientIDToken(ctx, resp, g, r.Client, ""))
}

// tokenResponse is a token response with Keycloak's extra fields.
type tokenResponse struct {
	*oidc.AccessTokenResponse
	RefreshExpiresIn int64  `json:"refresh_expires_in"`
	NotBeforePolicy  int    `json:"not-before-policy"`
	SessionState     string `json:"session_state,omitempty"`
	Scope            string `json:"scope"` // the grant, without the internal offline_access
}

func (s *legacyServer) keycloakTokens(resp *op.Response, err error) (*op.Response, error) {
	if err != nil {
		var ge grantError
		if errors.As(err, &ge) {
			return nil, oidc.ErrInvalidGrant().WithDescription("%s", string(ge))
		}
		return nil, err
	}
	at, ok := tokensOf(resp)
	if !ok {
		return resp, nil
	}
	at.ExpiresIn = uint64(s.store.accessTTL.Seconds())
	out := &tokenResponse{AccessTokenResponse: at, Scope: strings.Join(at.Scope, " ")}
	if sid, ttl, scopes, ok := s.store.refreshInfo(at.RefreshToken); ok {
		out.SessionState = sid
		out.RefreshExpiresIn = int64(ttl.Seconds() + 0.5)
		out.Scope = strings.Join(scopes, " ")
	}
	resp.Data = out
	return resp, nil
}

// callbackURL is where the login page sends the browser once the user is
// authenticated; the library answers it with the code.
func (s *legacyServer) callbackURL(ctx context.Context, issuer, requestID string) string {
	return s.AuthCallbackURL()(op.ContextWithIssuer(ctx, issuer), requestID)
}
