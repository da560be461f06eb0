package devbroker

import (
	"net/http"
	"slices"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

const invalidCredentials = "Invalid username or password." // Keycloak's wording

// login serves the login form of an authorization request (GET) and checks
// the credentials posted to it (POST). On success it opens a session, sets
// the browser's SSO cookies, and sends the browser to the library's
// callback, which redirects to the client with the code.
//
// A GET within a browser session completes at once, without the form
// (single sign-on), unless the request says prompt=login or its max_age is
// older than the session's login; prompt=none without such a session
// answers the client error=login_required, as Keycloak does.
func (b *Broker) login(w http.ResponseWriter, r *http.Request) {
	if !parsePage(w, r) {
		return
	}
	id := r.Form.Get("id")
	g, ok := b.store.loginRequest(id)
	if !ok {
		b.render(w, http.StatusBadRequest, page{
			Title: "Login expired",
			Error: "This login request is unknown, already used or expired. Start the login again from your client.",
		})
		return
	}
	if r.Method == http.MethodGet {
		if _, _, _, active := b.store.browserSession(cookieValue(r, identityCookie)); !active && cookieValue(r, identityCookie) != "" {
			b.clearSessionCookies(w) // of a session that ended: the login status iframe then says "changed"
		}
		if sid, ok := b.ssoSession(r, g); ok {
			if err := b.store.completeLoginInSession(id, sid); err == nil {
				b.log.Info("login", "session", "existing", "client", g.ClientID)
				b.toCallback(w, r, id)
				return
			}
		}
		if slices.Contains(g.Prompt, oidc.PromptNone) {
			b.store.abandonRequest(id)
			op.AuthRequestError(w, r, g, oidc.ErrLoginRequired(), b.server.provider)
			return
		}
	}
	form := page{
		Title:   "Sign in",
		Message: "Sign in to continue to " + g.ClientID + ".",
		Form:    "login",
		Action:  b.Issuer() + "/login-actions/authenticate",
		Hidden:  map[string]string{"id": id},
	}
	a, ok := b.signIn(w, r, form, "login", g.ClientID)
	if !ok {
		return
	}
	sid, browser, err := b.store.completeLogin(id, a)
	if err != nil {
		b.render(w, http.StatusBadRequest, page{Title: "Login expired", Error: err.Error()})
		return
	}
	b.setSessionCookies(w, sid, browser)
	b.log.Info("login", "username", a.Name, "client", g.ClientID)
	b.toCallback(w, r, id)
}

// toCallback sends the browser to the library's callback for auth request
// id, which redirects to the client with the code.
func (b *Broker) toCallback(w http.ResponseWriter, r *http.Request, id string) {
	// The target is this broker's own callback (id is query-escaped in it).
	http.Redirect(w, r, b.server.callbackURL(r.Context(), b.Issuer(), id), http.StatusSeeOther) //nolint:gosec // G710: see above
}

// ssoSession is the browser's session that may complete g without a
// password: none when g says prompt=login, or when the session's login is
// older than g's max_age.
func (b *Broker) ssoSession(r *http.Request, g *grant) (string, bool) {
	if slices.Contains(g.Prompt, oidc.PromptLogin) {
		return "", false
	}
	sid, _, authTime, ok := b.store.browserSession(cookieValue(r, identityCookie))
	if !ok {
		return "", false
	}
	if g.MaxAge != nil && b.store.now().Sub(authTime) >= *g.MaxAge {
		return "", false
	}
	return sid, true
}

// signIn answers the sign-in form: a GET shows it; a POST checks the
// username and password, and when they are wrong logs the refusal (flow
// names the login, e.g. "device login"; never the password) and shows the
// form again with the error and the name typed, with status 200 as
// Keycloak does. It returns the account only when the user signed in; when
// ok is false the response is written.
func (b *Broker) signIn(w http.ResponseWriter, r *http.Request, form page, flow, clientID string) (a *account, ok bool) {
	if r.Method == http.MethodGet {
		b.render(w, http.StatusOK, form)
		return nil, false
	}
	name := strings.TrimSpace(r.PostForm.Get("username"))
	a, ok = b.store.users.authenticate(name, r.PostForm.Get("password"))
	if !ok {
		b.log.Warn(flow+" refused: invalid username or password", "username", name, "client", clientID)
		form.Error, form.Username = invalidCredentials, name
		b.render(w, http.StatusOK, form)
		return nil, false
	}
	return a, true
}

// device is the device flow's verification page: enter the user code (GET),
// then sign in (POST), then approve or deny (deviceConsent).
func (b *Broker) device(w http.ResponseWriter, r *http.Request) {
	if !parsePage(w, r) {
		return
	}
	action := b.Issuer() + "/device"
	codeForm := page{Title: "Device login", Form: "usercode", Action: action,
		Message: "Enter the code shown by your device."}
	code := strings.TrimSpace(r.Form.Get("user_code"))
	if code == "" && r.Method == http.MethodGet {
		b.render(w, http.StatusOK, codeForm)
		return
	}
	clientID, scopes, ok := b.store.pendingDevice(code)
	if !ok {
		codeForm.Error = "Invalid or expired code. Check the code shown by your device, or start again there."
		b.render(w, http.StatusBadRequest, codeForm)
		return
	}
	form := page{
		Title:   "Sign in",
		Message: "Sign in to let a device use " + clientID + " (scopes: " + strings.Join(scopes, " ") + ").",
		Form:    "login",
		Action:  action,
		Hidden:  map[string]string{"user_code": code},
	}
	a, ok := b.signIn(w, r, form, "device login", clientID)
	if !ok {
		return
	}
	consent, err := b.store.deviceLogin(code, a)
	if err != nil {
		codeForm.Error = "Invalid or expired code. Start again on your device."
		b.render(w, http.StatusBadRequest, codeForm)
		return
	}
	b.render(w, http.StatusOK, page{
		Title:   "Grant access",
		Message: "Let the device use " + clientID + " as " + a.Name + "?",
		Form:    "consent",
		Action:  b.Issuer() + "/device/consent",
		Hidden:  map[string]string{"user_code": code, "consent": consent},
	})
}

func (b *Broker) deviceConsent(w http.ResponseWriter, r *http.Request) {
	if !parseForm(w, r) {
		return
	}
	approve := r.PostForm.Get("action") == "approve"
	if err := b.store.deviceDecide(r.PostForm.Get("user_code"), r.PostForm.Get("consent"), approve); err != nil {
		b.render(w, http.StatusBadRequest, page{Title: "Device login", Form: "usercode", Action: b.Issuer() + "/device",
			Error: "Invalid, expired or already used code. Start again on your device."})
		return
	}
	if !approve {
		b.render(w, http.StatusOK, page{Title: "Access denied", Message: "The device was denied access. You can close this page."})
		return
	}
	b.render(w, http.StatusOK, page{Title: "Device approved", Message: "The device is logged in. You can close this page and return to it."})
}

func (b *Broker) loggedOut(w http.ResponseWriter, _ *http.Request) {
	b.render(w, http.StatusOK, page{Title: "Logged out", Message: "You are logged out."})
}
