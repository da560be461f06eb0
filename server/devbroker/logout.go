package devbroker

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// logout is the end-session endpoint, as Keycloak's:
//
//   - POST with refresh_token (and client_id or basic auth): a public
//     client's logout without a browser; ends the session, 204.
//   - OpenID Connect RP-Initiated Logout 1.0 (GET, or a POSTed form):
//     post_logout_redirect_uri is accepted when it matches the client's
//     post-logout redirect URIs, the client named by client_id or by the
//     azp of id_token_hint. With an id_token_hint the session ends at once;
//     without one the browser is asked "Do you want to log out?" first. The
//     SSO session of the browser (and the hint's) ends with every refresh
//     token of it, and the browser goes to post_logout_redirect_uri (with
//     state) or to the logged-out page.
func (b *Broker) logout(w http.ResponseWriter, r *http.Request) {
	if !parsePage(w, r) {
		return
	}
	if r.Method == http.MethodPost && r.PostForm.Get("refresh_token") != "" {
		b.logoutWithRefreshToken(w, r)
		return
	}
	f := r.Form
	clientID, hint, redirect := f.Get("client_id"), f.Get("id_token_hint"), f.Get("post_logout_redirect_uri")
	var hintSID string
	if hint != "" {
		ctx := op.ContextWithIssuer(r.Context(), b.Issuer())
		claims, err := op.VerifyIDTokenHint[*oidc.IDTokenClaims](ctx, hint, b.server.provider.IDTokenHintVerifier(ctx))
		if err != nil && !errors.As(err, &op.IDTokenHintExpiredError{}) {
			b.render(w, http.StatusBadRequest, page{Title: "Logout", Error: "Invalid parameter: id_token_hint. Log out from the application again."})
			return
		}
		azp := claims.GetAuthorizedParty()
		if azp == "" && len(claims.Audience) > 0 {
			azp = claims.Audience[0]
		}
		if clientID != "" && clientID != azp {
			b.render(w, http.StatusBadRequest, page{Title: "Logout", Error: "Parameter client_id does not match the client of id_token_hint."})
			return
		}
		clientID = azp
		hintSID, _ = claims.Claims["sid"].(string)
	}
	if clientID != "" && clientID != b.clientID {
		b.render(w, http.StatusBadRequest, page{Title: "Logout", Error: "Unknown client " + clientID + ": log out from the application again."})
		return
	}
	if redirect != "" {
		if clientID == "" {
			b.render(w, http.StatusBadRequest, page{Title: "Logout", Error: "Missing parameters: id_token_hint or client_id, needed with post_logout_redirect_uri."})
			return
		}
		if !matchRedirect(b.store.client.postLogout, redirect) {
			b.render(w, http.StatusBadRequest, page{Title: "Logout", Error: "Invalid redirect uri: post_logout_redirect_uri is not a valid post logout redirect URI of client " + clientID + "."})
			return
		}
		if state := f.Get("state"); state != "" {
			u, _ := url.Parse(redirect) // parsed by matchRedirect
			q := u.Query()
			q.Set("state", state)
			u.RawQuery = q.Encode()
			redirect = u.String()
		}
	} else {
		redirect = b.Issuer() + "/logged-out"
	}

	browser := cookieValue(r, identityCookie)
	browserSID, _, _, hasBrowser := b.store.browserSession(browser)
	confirmed := hint != "" || (r.Method == http.MethodPost && (!hasBrowser || hmac.Equal([]byte(f.Get("confirm")), []byte(b.logoutConfirmation(browser)))))
	if !confirmed {
		hidden := map[string]string{}
		for _, k := range []string{"client_id", "post_logout_redirect_uri", "state"} {
			if v := f.Get(k); v != "" {
				hidden[k] = v
			}
		}
		if hasBrowser {
			hidden["confirm"] = b.logoutConfirmation(browser)
		}
		b.render(w, http.StatusOK, page{
			Title:   "Logging out",
			Message: "Do you want to log out?",
			Form:    "logout",
			Action:  b.Issuer() + "/" + oidcPath + "/logout",
			Hidden:  hidden,
		})
		return
	}
	b.store.endSessions(browserSID, hintSID)
	b.clearSessionCookies(w)
	b.log.Info("logout", "client", clientID)
	// The target is this broker's page or a URI the client registered.
	http.Redirect(w, r, redirect, http.StatusFound) //nolint:gosec // G710: checked by matchRedirect above
}

// logoutConfirmation ties the confirmation form to the browser's session,
// so another site cannot post it (CSRF).
func (b *Broker) logoutConfirmation(browser string) string {
	m := hmac.New(sha256.New, b.formKey)
	m.Write([]byte("logout\x00" + browser))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// logoutWithRefreshToken is Keycloak's logout of a public client without a
// browser: POST with client_id and refresh_token ends the session (204).
func (b *Broker) logoutWithRefreshToken(w http.ResponseWriter, r *http.Request) {
	token := r.PostForm.Get("refresh_token")
	clientID := r.PostForm.Get("client_id")
	if clientID == "" {
		if id, _, ok := r.BasicAuth(); ok {
			clientID = id
		}
	}
	if clientID == "" {
		writeJSON(w, http.StatusBadRequest, oauthError{"invalid_request", "client_id is required with refresh_token"})
		return
	}
	if clientID != b.clientID {
		writeJSON(w, http.StatusUnauthorized, oauthError{"invalid_client", "Invalid client or Invalid client credentials"})
		return
	}
	if err := b.store.endSessionByRefreshToken(clientID, token); err != nil {
		writeJSON(w, http.StatusBadRequest, oauthError{"invalid_grant", err.Error()})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}
