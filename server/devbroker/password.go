package devbroker

import (
	"errors"
	"net/http"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// token is the token endpoint: the password grant here, every other grant
// in the op library (which has no password grant).
func (b *Broker) token(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && r.PostForm.Get("grant_type") == "password" {
		b.passwordGrant(w, r)
		return
	}
	b.server.handler.ServeHTTP(w, r)
}

// passwordGrant is Keycloak's "direct access grant" (OAuth 2.0 resource
// owner password credentials), which Pbench's functional tests log in with:
// client_id, username and password give tokens of a new session.
func (b *Broker) passwordGrant(w http.ResponseWriter, r *http.Request) {
	ctx := op.ContextWithIssuer(r.Context(), b.Issuer())
	clientID := b.requestClient(r)
	client, err := b.store.GetClientByClientID(ctx, clientID)
	if err != nil {
		writeOAuthError(w, r, http.StatusUnauthorized, err)
		return
	}
	pc, ok := client.(*publicClient)
	if !ok || !pc.config.password {
		writeOAuthError(w, r, http.StatusBadRequest, oidc.ErrUnauthorizedClient().WithDescription("Client not allowed for direct access grants"))
		return
	}
	name := strings.TrimSpace(r.PostForm.Get("username"))
	a, ok := b.store.users.authenticate(name, r.PostForm.Get("password"))
	if !ok {
		b.log.Warn("password grant refused: invalid username or password", "username", name, "client", clientID)
		writeOAuthError(w, r, http.StatusUnauthorized, oidc.ErrInvalidGrant().WithDescription("Invalid user credentials"))
		return
	}
	g := b.store.passwordSession(a, clientID, strings.Fields(r.PostForm.Get("scope")))
	tokens, err := op.CreateDeviceTokenResponse(ctx, g, b.server.provider, client) // any grant of a ready token request
	resp := op.NewResponse(tokens)
	if err == nil {
		err = b.server.clientIDToken(ctx, resp, g, client, "")
	}
	resp, err = b.server.keycloakTokens(resp, err)
	if err != nil {
		writeOAuthError(w, r, http.StatusBadRequest, err)
		return
	}
	b.log.Info("login", "username", a.Name, "client", clientID, "grant", "password")
	writeJSON(w, http.StatusOK, resp.Data)
}

// writeOAuthError answers an OAuth error as JSON: status for an oidc.Error,
// 500 for anything else (whose text is logged, not sent).
func writeOAuthError(w http.ResponseWriter, r *http.Request, status int, err error) {
	var e *oidc.Error
	if !errors.As(err, &e) {
		op.WriteError(w, r, err, nil)
		return
	}
	writeJSON(w, status, oauthError{string(e.ErrorType), e.Description})
}
