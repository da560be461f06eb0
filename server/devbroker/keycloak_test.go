package devbroker_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/distributed-system-analysis/pbench-auth/server/devbroker"
	"github.com/distributed-system-analysis/pbench-auth/server/devbroker/devbrowser"
)

// payload decodes a JWT's claims without checking it.
func payload(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// Refresh tokens are signed JWTs with Keycloak's claims, as keycloak-js
// decodes them (and 21 compares their nonce).
func TestRefreshTokenIsKeycloakJWT(t *testing.T) {
	tb := newTestBroker(t)
	tok := tb.login(t, "admin", "admin-pw")
	if h := jwtHeader(t, tok.RefreshToken); h["alg"] != "HS512" || h["typ"] != "JWT" || h["kid"] == "" {
		t.Errorf("refresh token header = %v, want HS512 JWT with a kid", h)
	}
	c := payload(t, tok.RefreshToken)
	access := payload(t, tok.AccessToken)
	want := map[string]any{"typ": "Refresh", "iss": tb.Issuer(), "aud": tb.Issuer(), "azp": clientID,
		"nonce": "n0nce", "sub": access["sub"], "sid": access["sid"], "session_state": access["sid"]}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("refresh token %s = %v, want %v", k, c[k], v)
		}
	}
	exp, _ := c["exp"].(float64)
	iat, _ := c["iat"].(float64)
	if exp-iat != devbroker.DefaultRefreshTTL.Seconds() || c["jti"] == "" || !strings.Contains(c["scope"].(string), "openid") {
		t.Errorf("refresh token exp-iat %v, jti %v, scope %v", exp-iat, c["jti"], c["scope"])
	}
	// The nonce survives a refresh, in the refresh and access tokens.
	status, next := tb.refresh(t, tok.RefreshToken)
	if status != http.StatusOK {
		t.Fatalf("refresh: %d %v", status, next)
	}
	if n := payload(t, next["refresh_token"].(string))["nonce"]; n != "n0nce" {
		t.Errorf("refreshed refresh token nonce = %v", n)
	}

	// A forged or altered token is not one of the broker's.
	parts := strings.Split(next["refresh_token"].(string), ".")
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"jti":"x","typ":"Refresh"}`)) + "." + parts[2]
	if status, m := tb.refresh(t, forged); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("forged refresh token: %d %v, want invalid_grant", status, m)
	}
}

func TestOfflineToken(t *testing.T) {
	tb := newTestBroker(t)
	status, m := tb.postForm(t, tb.endpoint("token"), url.Values{"grant_type": {"password"}, "client_id": {clientID},
		"username": {"user"}, "password": {"user-pw"}, "scope": {"openid offline_access"}})
	if status != http.StatusOK {
		t.Fatalf("password grant with offline_access: %d %v", status, m)
	}
	c := payload(t, m["refresh_token"].(string))
	if c["typ"] != "Offline" || c["exp"] != nil || m["refresh_expires_in"] != float64(0) {
		t.Errorf("offline token: typ %v, exp %v, refresh_expires_in %v; want Offline, none, 0", c["typ"], c["exp"], m["refresh_expires_in"])
	}
	if status, _ := tb.refresh(t, m["refresh_token"].(string)); status != http.StatusOK {
		t.Errorf("refresh with an offline token: %d", status)
	}
}

// Tokens as Pbench's server reads them: aud has pbench-server, and the
// user's roles are client roles of pbench-server too.
func TestAudienceAndRolesForPbench(t *testing.T) {
	tb := newTestBroker(t)
	c := payload(t, tb.login(t, "admin", "admin-pw").AccessToken)
	aud, _ := c["aud"].([]any)
	if !slices.Contains(aud, any(devbroker.DefaultResourceServer)) || !slices.Contains(aud, any(clientID)) {
		t.Errorf("aud = %v, want %s and %s", c["aud"], devbroker.DefaultResourceServer, clientID)
	}
	for _, client := range []string{devbroker.DefaultResourceServer, clientID} {
		if got := roles(c, "resource_access", client); !slices.Contains(got, "ADMIN") {
			t.Errorf("resource_access[%s].roles = %v, want ADMIN", client, got)
		}
	}
	u := payload(t, tb.login(t, "user", "user-pw").AccessToken)
	if got := roles(u, "resource_access", devbroker.DefaultResourceServer); len(got) != 0 {
		t.Errorf("a user without roles has pbench-server roles %v", got)
	}
}

// browserClient is an HTTP client with a cookie jar, stopping at the first
// redirect off the broker, like a browser tab for devbrowser.
func browserClient(t *testing.T, tb *testBroker) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := *tb.srv.Client()
	c.Jar = jar
	return &c
}

// authorize starts an authorization request in the browser and returns
// where it ended: the client's redirect (with the code or error) or "" if
// the broker showed its login form.
func authorize(t *testing.T, tb *testBroker, c *http.Client, extra ...oauth2.AuthCodeOption) string {
	t.Helper()
	nc := *c
	nc.CheckRedirect = func(r *http.Request, _ []*http.Request) error {
		if !strings.HasPrefix(r.URL.String(), tb.Issuer()) {
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := nc.Get(tb.oauth2Config().AuthCodeURL("st", extra...))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 {
		return loc
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `id="login"`) {
		t.Fatalf("authorization: %s, neither a redirect nor the login form:\n%s", resp.Status, body)
	}
	return ""
}

func TestBrowserSessionSSO(t *testing.T) {
	tb := newTestBroker(t)
	browser := browserClient(t, tb)
	none := oauth2.SetAuthURLParam("prompt", "none")

	// prompt=none without a session: error=login_required, with the state.
	loc := authorize(t, tb, browser, none)
	u, _ := url.Parse(loc)
	if !strings.HasPrefix(loc, redirectURL) || u.Query().Get("error") != "login_required" || u.Query().Get("state") != "st" {
		t.Fatalf("prompt=none without a session: %q, want the client with error=login_required", loc)
	}

	// Log in once through the form, in this browser.
	redirect, err := devbrowser.Login(tb.ctx, browser, tb.oauth2Config().AuthCodeURL("st"), "user", "user-pw")
	if err != nil {
		t.Fatal(err)
	}
	first, _ := url.Parse(redirect)
	sid := first.Query().Get("session_state")

	// Within the session: a code without the form, also with prompt=none.
	for name, opts := range map[string][]oauth2.AuthCodeOption{"plain": nil, "prompt=none": {none},
		"max_age=3600": {oauth2.SetAuthURLParam("max_age", "3600")}} {
		loc := authorize(t, tb, browser, opts...)
		u, _ := url.Parse(loc)
		if loc == "" || u.Query().Get("code") == "" || u.Query().Get("session_state") != sid {
			t.Errorf("%s within the session: %q, want a code of session %s", name, loc, sid)
			continue
		}
		tok, err := tb.oauth2Config().Exchange(tb.ctx, u.Query().Get("code"))
		if err != nil || tok.Extra("session_state") != sid {
			t.Errorf("%s: exchange: %v, session %v", name, err, tok)
		}
	}
	// prompt=login and max_age=0 ask for the password again; prompt=none
	// with max_age=0 cannot.
	for name, opts := range map[string][]oauth2.AuthCodeOption{
		"prompt=login": {oauth2.SetAuthURLParam("prompt", "login")},
		"max_age=0":    {oauth2.SetAuthURLParam("max_age", "0")},
	} {
		if loc := authorize(t, tb, browser, opts...); loc != "" {
			t.Errorf("%s within the session went to %q, want the login form", name, loc)
		}
	}
	loc = authorize(t, tb, browser, none, oauth2.SetAuthURLParam("max_age", "0"))
	if u, _ := url.Parse(loc); u == nil || u.Query().Get("error") != "login_required" {
		t.Errorf("prompt=none with max_age=0: %q, want login_required", loc)
	}
	// Another browser has no session.
	if loc := authorize(t, tb, browserClient(t, tb)); loc != "" {
		t.Errorf("another browser went to %q, want the login form", loc)
	}
}

func TestThirdPartyCookieCheck(t *testing.T) {
	tb := newTestBroker(t)
	step1 := tb.endpoint("3p-cookies/step1.html")
	status, body := getPage(t, browserClient(t, tb), step1)
	if status != http.StatusOK || !strings.Contains(body, `window.parent.postMessage("supported", "*")`) {
		t.Errorf("step1 -> step2 with cookies: %d\n%s", status, body)
	}
	// A browser that does not keep the cookie is told "unsupported".
	status, body = getPage(t, tb.srv.Client(), step1)
	if status != http.StatusOK || !strings.Contains(body, `window.parent.postMessage("unsupported", "*")`) {
		t.Errorf("step1 -> step2 without cookies: %d\n%s", status, body)
	}
}

func TestLoginStatusIframe(t *testing.T) {
	const dashboard = "http://localhost:3000"
	tb := newTestBroker(t, func(o *devbroker.Options) { o.Client.WebOrigins = []string{dashboard} })
	status, body := getPage(t, tb.srv.Client(), tb.endpoint("login-status-iframe.html"))
	if status != http.StatusOK || !strings.Contains(body, `"KEYCLOAK_SESSION"`) || !strings.Contains(body, "unchanged") {
		t.Errorf("login-status-iframe.html: %d\n%s", status, body)
	}
	for _, tc := range []struct {
		client, origin string
		want           int
	}{
		{clientID, dashboard, http.StatusNoContent},
		{clientID, "http://evil.example", http.StatusForbidden},
		{"other", dashboard, http.StatusForbidden},
	} {
		q := url.Values{"client_id": {tc.client}, "origin": {tc.origin}}
		if status, _ := getPage(t, tb.srv.Client(), tb.endpoint("login-status-iframe.html/init")+"?"+q.Encode()); status != tc.want {
			t.Errorf("init %s %s: %d, want %d", tc.client, tc.origin, status, tc.want)
		}
	}
}

// RP-initiated logout from a browser page, as keycloak-js's logout() does.
func TestRPInitiatedLogout(t *testing.T) {
	const dashboard = "http://dashboard.example:3000"
	tb := newTestBroker(t, func(o *devbroker.Options) { o.Client.RedirectURIs = []string{dashboard + "/app/*"} })
	browser := browserClient(t, tb)
	noFollow := *browser
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	login := func() *oauth2.Token {
		verifier := oauth2.GenerateVerifier()
		conf := tb.oauth2Config()
		redirect, err := devbrowser.Login(tb.ctx, browser, tb.authURL(conf, verifier, "s", "n"), "user", "user-pw")
		if err != nil {
			t.Fatal(err)
		}
		tok, err := conf.Exchange(tb.ctx, callbackCode(t, redirect, "s"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	get := func(q url.Values) *http.Response {
		resp, err := noFollow.Get(tb.endpoint("logout") + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp
	}

	tok := login()
	for name, q := range map[string]url.Values{
		"unregistered uri":   {"client_id": {clientID}, "post_logout_redirect_uri": {"https://evil.example/"}},
		"escaping the path":  {"client_id": {clientID}, "post_logout_redirect_uri": {dashboard + "/app/../x"}},
		"no client":          {"post_logout_redirect_uri": {dashboard + "/app/"}},
		"hint of a mismatch": {"client_id": {"other"}, "id_token_hint": {tok.Extra("id_token").(string)}},
		"bad hint":           {"id_token_hint": {"e30.e30.e30"}},
	} {
		if resp := get(q); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("logout with %s: %s, want 400", name, resp.Status)
		}
	}
	status, m := tb.refresh(t, tok.RefreshToken)
	if status != http.StatusOK {
		t.Fatalf("a refused logout ended the session (refresh: %d)", status)
	}
	current := m["refresh_token"].(string)

	// keycloak-js: client_id, post_logout_redirect_uri and id_token_hint.
	resp := get(url.Values{"client_id": {clientID}, "post_logout_redirect_uri": {dashboard + "/app/?x=1"},
		"id_token_hint": {tok.Extra("id_token").(string)}, "state": {"s1"}})
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != dashboard+"/app/?state=s1&x=1" {
		t.Fatalf("logout: %s to %q, want 302 to the dashboard with the state", resp.Status, loc)
	}
	for _, rt := range []string{current, tok.RefreshToken} { // the current one, and a rotated one
		if status, m := tb.refresh(t, rt); status != http.StatusBadRequest || m["error_description"] != "Session not active" {
			t.Errorf("refresh after logout: %d %v, want Session not active", status, m)
		}
	}
	if loc := authorize(t, tb, browser, oauth2.SetAuthURLParam("prompt", "none")); !strings.Contains(loc, "error=login_required") {
		t.Errorf("prompt=none after logout: %q, want login_required (the browser's session ended)", loc)
	}

	// Without id_token_hint: confirm first; the confirmation is tied to the
	// browser's session, so a form posted from elsewhere does not log out.
	tok = login()
	var body string
	q := url.Values{"client_id": {clientID}, "post_logout_redirect_uri": {dashboard + "/app/"}}
	status, body = getPage(t, &noFollow, tb.endpoint("logout")+"?"+q.Encode())
	confirm := hiddenValue(body, "confirm")
	if status != http.StatusOK || !strings.Contains(body, "Do you want to log out?") || confirm == "" {
		t.Fatalf("logout without a hint: %d\n%s\nwant the question with a confirmation", status, body)
	}
	forged, err := noFollow.PostForm(tb.endpoint("logout"), q)
	if err != nil {
		t.Fatal(err)
	}
	_ = forged.Body.Close()
	if forged.StatusCode != http.StatusOK {
		t.Errorf("a logout posted without the confirmation: %s, want the question again", forged.Status)
	}
	if status, _ := tb.refresh(t, tok.RefreshToken); status != http.StatusOK {
		t.Fatalf("an unconfirmed logout ended the session (refresh: %d)", status)
	}
	q.Set("confirm", confirm)
	resp, err = noFollow.PostForm(tb.endpoint("logout"), q)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != dashboard+"/app/" {
		t.Errorf("confirmed logout: %s to %q", resp.Status, loc)
	}
	if status, _ := tb.refresh(t, tok.RefreshToken); status != http.StatusBadRequest {
		t.Errorf("refresh after the confirmed logout: %d, want 400", status)
	}
}

func TestRedirectURIPatterns(t *testing.T) {
	tb := newTestBroker(t, func(o *devbroker.Options) {
		o.Client.RedirectURIs = []string{"http://localhost:3000/*", "https://pbench.example.com/dashboard/*", "https://exact.example/cb"}
	})
	for redirect, ok := range map[string]bool{
		"http://localhost:3000/":                         true,
		"http://localhost:3000/a/b?c=d":                  true,
		"http://localhost:3001/a":                        true, // loopback: any port
		"https://pbench.example.com/dashboard/":          true,
		"https://pbench.example.com/dashboard":           true,
		"https://pbench.example.com/dashboard/x?y=z":     true,
		"https://pbench.example.com/dashboard/../admin":  false,
		"https://pbench.example.com/dashboardx":          false,
		"https://pbench.example.com/other":               false,
		"http://pbench.example.com/dashboard/":           false,
		"https://pbench.example.com.evil/dashboard/":     false,
		"https://user@pbench.example.com/dashboard/":     false,
		"https://exact.example/cb":                       true,
		"https://exact.example/cb2":                      false,
		"https://pbench.example.com/dashboard/#fragment": false,
	} {
		conf := tb.oauth2Config()
		conf.RedirectURL = redirect
		c := *tb.srv.Client()
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := c.Get(conf.AuthCodeURL("s"))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		loc := resp.Header.Get("Location")
		accepted := resp.StatusCode == http.StatusFound && strings.HasPrefix(loc, tb.Issuer()+"/login-actions/")
		if accepted != ok {
			t.Errorf("redirect_uri %s: %s to %q, accepted %v, want %v", redirect, resp.Status, loc, accepted, ok)
		}
		if !ok && strings.HasPrefix(loc, "http") && !strings.HasPrefix(loc, tb.Issuer()) {
			t.Errorf("refused %s was redirected to %s", redirect, loc)
		}
	}
}

func TestCORSOnlyForWebOrigins(t *testing.T) {
	const allowed = "http://localhost:3000"
	tb := newTestBroker(t, func(o *devbroker.Options) {
		o.Client.RedirectURIs = []string{allowed + "/*"} // "+" makes it a web origin
	})
	tok := tb.login(t, "user", "user-pw")
	do := func(method, endpoint, origin string, form url.Values, bearer string) http.Header {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), method, endpoint, strings.NewReader(form.Encode()))
		req.Header.Set("Origin", origin)
		if method == http.MethodPost {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if method == http.MethodOptions {
			req.Header.Set("Access-Control-Request-Method", "POST")
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := tb.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.Header
	}
	badGrant := url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID}, "refresh_token": {"x"}}
	for _, origin := range []string{allowed, "http://evil.example", "http://localhost:3001"} {
		want := ""
		if origin == allowed {
			want = allowed
		}
		for name, h := range map[string]http.Header{
			"token":     do(http.MethodPost, tb.endpoint("token"), origin, badGrant, ""),
			"preflight": do(http.MethodOptions, tb.endpoint("token"), origin, nil, ""),
			"userinfo":  do(http.MethodGet, tb.endpoint("userinfo"), origin, nil, tok.AccessToken),
			"revoke":    do(http.MethodPost, tb.endpoint("revoke"), origin, url.Values{"token": {"x"}, "client_id": {clientID}}, ""),
			"logout":    do(http.MethodPost, tb.endpoint("logout"), origin, url.Values{"refresh_token": {"x"}, "client_id": {clientID}}, ""),
		} {
			if got := h.Get("Access-Control-Allow-Origin"); got != want {
				t.Errorf("%s from %s: Access-Control-Allow-Origin %q, want %q", name, origin, got, want)
			}
			if want != "" && h.Get("Access-Control-Allow-Credentials") != "true" {
				t.Errorf("%s from %s: no Access-Control-Allow-Credentials", name, origin)
			}
		}
	}
	// A request for another client gets no CORS, even from the origin.
	if h := do(http.MethodPost, tb.endpoint("token"), allowed, url.Values{"grant_type": {"refresh_token"}, "client_id": {"other"}}, ""); h.Get("Access-Control-Allow-Origin") != "" {
		t.Error("CORS answered for an unknown client")
	}
	// The public documents answer any origin, without credentials.
	h := do(http.MethodGet, tb.Issuer()+"/.well-known/openid-configuration", "http://evil.example", nil, "")
	if h.Get("Access-Control-Allow-Origin") != "*" || h.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("discovery CORS: %v", h)
	}
}

func TestPasswordGrant(t *testing.T) {
	tb := newTestBroker(t)
	form := url.Values{"grant_type": {"password"}, "client_id": {clientID}, "username": {"admin"}, "password": {"admin-pw"}, "scope": {"openid"}}
	status, m := tb.postForm(t, tb.endpoint("token"), form)
	if status != http.StatusOK || m["token_type"] != "Bearer" || m["session_state"] == "" || m["id_token"] == nil {
		t.Fatalf("password grant: %d %v", status, m)
	}
	claimsOf(t, tb.provider.Verifier(&oidc.Config{ClientID: clientID}), tb.ctx, m["id_token"].(string))
	if status, _ := tb.refresh(t, m["refresh_token"].(string)); status != http.StatusOK {
		t.Errorf("refresh of a password grant: %d", status)
	}

	form.Set("password", "wrong")
	if status, m := tb.postForm(t, tb.endpoint("token"), form); status != http.StatusUnauthorized || m["error"] != "invalid_grant" {
		t.Errorf("wrong password: %d %v, want 401 invalid_grant", status, m)
	}
	off := newTestBroker(t, func(o *devbroker.Options) { o.Client.DisableDirectAccessGrants = true })
	form.Set("password", "admin-pw")
	if status, m := off.postForm(t, off.endpoint("token"), form); status != http.StatusBadRequest || m["error"] != "unauthorized_client" {
		t.Errorf("password grant switched off: %d %v, want 400 unauthorized_client", status, m)
	}
}

// An unknown client_id is an OAuth error (400/401) on every endpoint, never
// a server error.
func TestUnknownClient(t *testing.T) {
	tb := newTestBroker(t)
	conf := tb.oauth2Config()
	conf.ClientID = "no-such-client"
	c := *tb.srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(conf.AuthCodeURL("s"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(string(body), "invalid_client") {
		t.Errorf("authorization for an unknown client: %s %s, want 400 invalid_client without a redirect", resp.Status, body)
	}
	tok := tb.login(t, "user", "user-pw")
	for name, form := range map[string]url.Values{
		"code":     {"grant_type": {"authorization_code"}, "code": {"x"}, "redirect_uri": {redirectURL}},
		"refresh":  {"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}},
		"password": {"grant_type": {"password"}, "username": {"user"}, "password": {"user-pw"}},
		"device":   {"scope": {"openid"}},
		"revoke":   {"token": {tok.RefreshToken}},
		"logout":   {"refresh_token": {tok.RefreshToken}},
	} {
		form.Set("client_id", "no-such-client")
		endpoint := map[string]string{"device": "auth/device", "revoke": "revoke", "logout": "logout"}[name]
		if endpoint == "" {
			endpoint = "token"
		}
		status, m := tb.postForm(t, tb.endpoint(endpoint), form)
		if (status != http.StatusBadRequest && status != http.StatusUnauthorized) || m["error"] != "invalid_client" {
			t.Errorf("%s with an unknown client: %d %v, want 400/401 invalid_client", name, status, m)
		}
	}
	if status, _ := tb.refresh(t, tok.RefreshToken); status != http.StatusOK {
		t.Errorf("the unknown client's requests harmed the session: refresh %d", status)
	}
}

// One authorization code redeemed by concurrent requests yields tokens once.
func TestConcurrentCodeRedemption(t *testing.T) {
	tb := newTestBroker(t)
	conf := tb.oauth2Config()
	verifier := oauth2.GenerateVerifier()
	redirect, err := devbrowser.Login(tb.ctx, tb.srv.Client(), tb.authURL(conf, verifier, "s", "n"), "user", "user-pw")
	if err != nil {
		t.Fatal(err)
	}
	code := callbackCode(t, redirect, "s")
	const n = 16
	var wg sync.WaitGroup
	statuses := make([]int, n)
	answers := make([]map[string]any, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			statuses[i], answers[i] = tb.postForm(t, tb.endpoint("token"), url.Values{"grant_type": {"authorization_code"},
				"code": {code}, "redirect_uri": {redirectURL}, "client_id": {clientID}, "code_verifier": {verifier}})
		})
	}
	close(start)
	wg.Wait()
	if ok := countOf(statuses, http.StatusOK); ok != 1 {
		t.Fatalf("%d of %d concurrent redemptions of one code got tokens (%v), want exactly 1", ok, n, statuses)
	}
	for i, s := range statuses {
		if s != http.StatusOK && (s != http.StatusBadRequest || answers[i]["error"] != "invalid_grant") {
			t.Errorf("a losing redemption: %d %v, want 400 invalid_grant", s, answers[i])
		}
	}
}

func TestRealmFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "realm.yaml")
	writeFile(t, good, []byte(`users:
  - username: ann
    password: ann-pw
    roles: [ADMIN]
client:
  redirectUris: ["http://localhost:3000/*"]
  webOrigins: ["http://localhost:3000"]
  pkceRequired: true
  directAccessGrantsEnabled: false
`), 0o600)
	rf, err := devbroker.LoadRealmFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(rf.Users) != 1 || rf.Users[0].Name != "ann" || !slices.Equal(rf.Users[0].Roles, []string{"ADMIN"}) ||
		!rf.Client.RequirePKCE || !rf.Client.DisableDirectAccessGrants ||
		!slices.Equal(rf.Client.WebOrigins, []string{"http://localhost:3000"}) {
		t.Errorf("realm file = %+v", rf)
	}
	for name, content := range map[string]string{
		"unknown key":     "client:\n  redirectUri: [x]\n",
		"bad pattern":     "client:\n  redirectUris: [\"http://a*b/\"]\n",
		"bad origin":      "client:\n  webOrigins: [\"http://a/path\"]\n",
		"no password":     "users:\n  - username: bob\n",
		"not yaml at all": "users: [",
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".yaml")
		writeFile(t, p, []byte(content), 0o600)
		if _, err := devbroker.LoadRealmFile(p); err == nil {
			t.Errorf("realm file with %s was accepted", name)
		}
	}
	if _, err := devbroker.LoadRealmFile(filepath.Join(dir, "missing.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing realm file: %v", err)
	}
}

// A session ended without the browser (logout with the refresh token) is
// not resumed by its cookies, which the next authorization request clears.
func TestEndedSessionCookiesAreCleared(t *testing.T) {
	tb := newTestBroker(t)
	browser := browserClient(t, tb)
	conf := tb.oauth2Config()
	redirect, err := devbrowser.Login(tb.ctx, browser, conf.AuthCodeURL("st"), "user", "user-pw")
	if err != nil {
		t.Fatal(err)
	}
	code, _ := url.Parse(redirect)
	tok, err := conf.Exchange(tb.ctx, code.Query().Get("code"))
	if err != nil {
		t.Fatal(err)
	}
	issuer, _ := url.Parse(tb.Issuer() + "/")
	if len(browser.Jar.Cookies(issuer)) != 2 {
		t.Fatalf("cookies after the login: %v, want KEYCLOAK_IDENTITY and KEYCLOAK_SESSION", browser.Jar.Cookies(issuer))
	}
	status, _ := tb.postForm(t, tb.endpoint("logout"), url.Values{"client_id": {clientID}, "refresh_token": {tok.RefreshToken}})
	if status != http.StatusNoContent {
		t.Fatalf("logout: %d", status)
	}
	if loc := authorize(t, tb, browser, oauth2.SetAuthURLParam("prompt", "none")); !strings.Contains(loc, "error=login_required") {
		t.Errorf("prompt=none with the cookies of an ended session: %q, want login_required", loc)
	}
	if c := browser.Jar.Cookies(issuer); len(c) != 0 {
		t.Errorf("cookies of the ended session kept: %v", c)
	}
}
