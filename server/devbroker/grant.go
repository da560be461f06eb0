package devbroker

import (
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// grant is what tokens are minted for: an authorization request (before and
// after login), a refresh, or an approved device authorization. One type
// serves all three so the op library treats them alike; the store hands out
// copies, never its own records.
type grant struct {
	ID           string // auth request id; empty for refresh and device grants
	ClientID     string
	RedirectURI  string
	State        string
	Nonce        string
	ResponseType oidc.ResponseType
	ResponseMode oidc.ResponseMode
	Challenge    *oidc.CodeChallenge
	Scopes       []string       // granted scopes, as the client sees them
	Audience     []string       // access token audience
	Prompt       []string       // prompt values of the authorization request
	MaxAge       *time.Duration // max_age of the authorization request
	Subject      string         // empty until the user logged in
	SessionID    string
	AuthTime     time.Time
	Created      time.Time
	done         bool
}

var (
	_ op.AuthRequest             = (*grant)(nil)
	_ op.RefreshTokenRequest     = (*grant)(nil)
	_ op.AuthRequestSessionState = (*grant)(nil)
)

func (g *grant) GetID() string                         { return g.ID }
func (g *grant) GetACR() string                        { return "1" }
func (g *grant) GetAMR() []string                      { return []string{"pwd"} }
func (g *grant) GetAudience() []string                 { return g.Audience }
func (g *grant) GetAuthTime() time.Time                { return g.AuthTime }
func (g *grant) GetClientID() string                   { return g.ClientID }
func (g *grant) GetCodeChallenge() *oidc.CodeChallenge { return g.Challenge }
func (g *grant) GetNonce() string                      { return g.Nonce }
func (g *grant) GetRedirectURI() string                { return g.RedirectURI }
func (g *grant) GetResponseType() oidc.ResponseType    { return g.ResponseType }
func (g *grant) GetResponseMode() oidc.ResponseMode    { return g.ResponseMode }
func (g *grant) GetState() string                      { return g.State }
func (g *grant) GetSubject() string                    { return g.Subject }
func (g *grant) Done() bool                            { return g.done }
func (g *grant) GetSessionState() string               { return g.SessionID }

// GetScopes reports offline_access on top of the granted scopes. The op
// library issues a refresh token for a code or device grant only when
// offline_access was granted, while Keycloak issues one on every grant; the
// token response and the access token's scope claim show Scopes, the real
// grant.
func (g *grant) GetScopes() []string {
	if slices.Contains(g.Scopes, oidc.ScopeOfflineAccess) {
		return g.Scopes
	}
	return append(slices.Clip(g.Scopes), oidc.ScopeOfflineAccess)
}

// SetCurrentScopes narrows a refresh to the requested scopes.
func (g *grant) SetCurrentScopes(scopes []string) {
	g.Scopes = slices.DeleteFunc(slices.Clone(scopes), func(s string) bool {
		return s == oidc.ScopeOfflineAccess && !slices.Contains(g.Scopes, s)
	})
}

// grantScopes is what a request for requested is granted: the requested
// scopes, plus, like Keycloak's default client scopes, profile and email
// when openid is asked for. Unknown scopes are kept (the client may use them).
func grantScopes(requested []string) []string {
	var out []string
	for _, s := range requested {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if slices.Contains(out, oidc.ScopeOpenID) {
		for _, s := range []string{oidc.ScopeProfile, oidc.ScopeEmail} {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}
