package devbroker_test

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/distributed-system-analysis/pbench-auth/server/devbroker"
	"github.com/distributed-system-analysis/pbench-auth/server/devbroker/devbrowser"
)

const (
	realm    = "pbench-server"
	clientID = "pbench-client"
	// redirectURL is a loopback listener that never runs: devbrowser.Login
	// stops at the redirect to it.
	redirectURL = "http://127.0.0.1:45678/callback"
)

var testUsers = []devbroker.User{
	{Name: "admin", Password: "admin-pw", Roles: []string{"ADMIN"}},
	{Name: "user", Password: "user-pw"},
}

// testBroker is a broker served by an httptest.Server, mounted like serve --dev mounts it.
type testBroker struct {
	*devbroker.Broker
	srv      *httptest.Server
	provider *oidc.Provider
	ctx      context.Context
}

func newTestBroker(t *testing.T, edit ...func(*devbroker.Options)) *testBroker {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	opts := devbroker.Options{
		Issuer:     srv.URL + "/realms/" + realm,
		Users:      testUsers,
		SigningKey: sharedKey(t),
	}
	for _, e := range edit {
		e(&opts)
	}
	b, err := devbroker.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	mux.Handle("/realms/"+realm, b.Handler())
	mux.Handle("/realms/"+realm+"/", b.Handler())
	ctx := oidc.ClientContext(t.Context(), srv.Client())
	provider, err := oidc.NewProvider(ctx, b.Issuer())
	if err != nil {
		t.Fatalf("go-oidc discovery: %v", err)
	}
	return &testBroker{Broker: b, srv: srv, provider: provider, ctx: ctx}
}

var (
	keyOnce sync.Once
	key     *rsa.PrivateKey
)

// sharedKey saves generating a key per test.
func sharedKey(t *testing.T) *rsa.PrivateKey {
	keyOnce.Do(func() {
		var err error
		key, err = devbroker.LoadOrCreateKey(t.TempDir() + "/key.pem")
		if err != nil {
			panic(err)
		}
	})
	return key
}

func (tb *testBroker) oauth2Config() *oauth2.Config {
	return &oauth2.Config{
		ClientID:    clientID,
		Endpoint:    tb.provider.Endpoint(),
		RedirectURL: redirectURL,
		Scopes:      []string{oidc.ScopeOpenID},
	}
}

// authURL starts a code flow with PKCE, like the CLI does.
func (tb *testBroker) authURL(conf *oauth2.Config, verifier, state, nonce string) string {
	return conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))
}

// login runs the whole code flow for user and returns the tokens.
func (tb *testBroker) login(t *testing.T, user, pass string) *oauth2.Token {
	t.Helper()
	conf := tb.oauth2Config()
	verifier := oauth2.GenerateVerifier()
	redirect, err := devbrowser.Login(tb.ctx, tb.srv.Client(), tb.authURL(conf, verifier, "st4te", "n0nce"), user, pass)
	if err != nil {
		t.Fatalf("login as %s: %v", user, err)
	}
	code := callbackCode(t, redirect, "st4te")
	tok, err := conf.Exchange(tb.ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	return tok
}

func callbackCode(t *testing.T, redirect, state string) string {
	t.Helper()
	u, err := url.Parse(redirect)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Scheme + "://" + u.Host + u.Path; got != redirectURL {
		t.Fatalf("redirected to %s, want %s", got, redirectURL)
	}
	if got := u.Query().Get("state"); got != state {
		t.Fatalf("state = %q, want %q", got, state)
	}
	if u.Query().Get("code") == "" {
		t.Fatalf("no code in the redirect: %s", u.Query().Encode())
	}
	if u.Query().Get("session_state") == "" {
		t.Errorf("no session_state in the redirect, Keycloak sends one")
	}
	return u.Query().Get("code")
}

// refresh posts a refresh grant and returns the decoded JSON answer.
func (tb *testBroker) postForm(t *testing.T, endpoint string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := tb.srv.Client().PostForm(endpoint, form)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(body) > 0 {
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("%s answered %d with non-JSON %q", endpoint, resp.StatusCode, body)
		}
	}
	return resp.StatusCode, m
}

func (tb *testBroker) endpoint(name string) string {
	return tb.Issuer() + "/protocol/openid-connect/" + name
}

func (tb *testBroker) refresh(t *testing.T, refreshToken string) (int, map[string]any) {
	return tb.postForm(t, tb.endpoint("token"), url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}, "client_id": {clientID},
	})
}

func claimsOf(t *testing.T, verifier *oidc.IDTokenVerifier, ctx context.Context, raw string) map[string]any {
	t.Helper()
	tok, err := verifier.Verify(ctx, raw)
	if err != nil {
		t.Fatalf("go-oidc rejects the token: %v", err)
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

func TestDiscoveryIsKeycloakShaped(t *testing.T) {
	tb := newTestBroker(t)
	var d map[string]any
	if err := tb.provider.Claims(&d); err != nil {
		t.Fatal(err)
	}
	oidcBase := tb.Issuer() + "/protocol/openid-connect/"
	want := map[string]string{
		"issuer":                        tb.Issuer(),
		"authorization_endpoint":        oidcBase + "auth",
		"token_endpoint":                oidcBase + "token",
		"userinfo_endpoint":             oidcBase + "userinfo",
		"end_session_endpoint":          oidcBase + "logout",
		"jwks_uri":                      oidcBase + "certs",
		"introspection_endpoint":        oidcBase + "token/introspect",
		"revocation_endpoint":           oidcBase + "revoke",
		"device_authorization_endpoint": oidcBase + "auth/device",
	}
	for k, v := range want {
		if d[k] != v {
			t.Errorf("discovery %s = %v, want %s", k, d[k], v)
		}
	}
	grants, _ := d["grant_types_supported"].([]any)
	for _, g := range []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"} {
		if !slices.Contains(grants, any(g)) {
			t.Errorf("grant_types_supported %v lacks %s", grants, g)
		}
	}
	if methods, _ := d["code_challenge_methods_supported"].([]any); !slices.Contains(methods, any("S256")) {
		t.Errorf("code_challenge_methods_supported = %v, want S256", methods)
	}
}

func TestRealmInfo(t *testing.T) {
	tb := newTestBroker(t)
	resp, err := tb.srv.Client().Get(tb.Issuer()) // no trailing slash, like Pbench's server asks
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET issuer: %s", resp.Status)
	}
	var info struct {
		Realm        string `json:"realm"`
		PublicKey    string `json:"public_key"`
		TokenService string `json:"token-service"`
		Account      string `json:"account-service"`
		NotBefore    *int   `json:"tokens-not-before"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		t.Fatal(err)
	}
	if info.Realm != realm || info.TokenService != tb.Issuer()+"/protocol/openid-connect" ||
		info.Account != tb.Issuer()+"/account" || info.NotBefore == nil {
		t.Errorf("realm info = %+v", info)
	}
	der, err := base64.StdEncoding.DecodeString(info.PublicKey)
	if err != nil {
		t.Fatalf("public_key is not base64: %v", err)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		t.Fatalf("public_key is not DER SPKI: %v", err)
	}
	if !sharedKey(t).PublicKey.Equal(pub) {
		t.Error("public_key is not the signing key's")
	}
}

func TestCodeFlowTokensVerifyWithGoOIDC(t *testing.T) {
	tb := newTestBroker(t)
	tok := tb.login(t, "admin", "admin-pw")

	rawID, _ := tok.Extra("id_token").(string)
	idVerifier := tb.provider.Verifier(&oidc.Config{ClientID: clientID})
	id := claimsOf(t, idVerifier, tb.ctx, rawID)
	if id["nonce"] != "n0nce" || id["typ"] != "ID" || id["at_hash"] == nil || id["preferred_username"] != "admin" {
		t.Errorf("ID token claims = %v", id)
	}
	if aud, _ := id["aud"].([]any); !slices.Equal(aud, []any{clientID}) { // Keycloak: the client id alone
		t.Errorf("ID token aud = %v, want [%s]", id["aud"], clientID)
	}

	// The access token is a JWT a resource server can verify with the JWKS.
	access := claimsOf(t, tb.provider.Verifier(&oidc.Config{ClientID: clientID}), tb.ctx, tok.AccessToken)
	header := jwtHeader(t, tok.AccessToken)
	if header["alg"] != "RS256" || header["kid"] == "" || header["kid"] == nil {
		t.Errorf("access token header = %v, want RS256 with a kid", header)
	}
	for claim, want := range map[string]any{
		"iss":                tb.Issuer(),
		"typ":                "Bearer",
		"azp":                clientID,
		"preferred_username": "admin",
		"email":              "admin@example.com",
		"nonce":              "n0nce",
		"scope":              "openid profile email",
	} {
		if access[claim] != want {
			t.Errorf("access token %s = %v, want %v", claim, access[claim], want)
		}
	}
	for _, claim := range []string{"sub", "sid", "session_state", "jti", "iat", "exp", "auth_time"} {
		if access[claim] == nil || access[claim] == "" {
			t.Errorf("access token lacks %s", claim)
		}
	}
	if access["sid"] != access["session_state"] || access["sid"] != id["sid"] {
		t.Errorf("sid %v, session_state %v, ID token sid %v: want one session", access["sid"], access["session_state"], id["sid"])
	}
	aud, _ := access["aud"].([]any)
	if !slices.Contains(aud, any(clientID)) || !slices.Contains(aud, any("account")) {
		t.Errorf("aud = %v, want %s and account", access["aud"], clientID)
	}
	if got := roles(access, "realm_access"); !slices.Contains(got, "ADMIN") {
		t.Errorf("realm_access.roles = %v, want ADMIN", got)
	}
	if got := roles(access, "resource_access", clientID); !slices.Equal(got, []string{"ADMIN"}) {
		t.Errorf("resource_access.%s.roles = %v, want [ADMIN]", clientID, got)
	}
	if exp, iat := access["exp"].(float64), access["iat"].(float64); exp-iat < 299 || exp-iat > 301 {
		t.Errorf("access lifetime %v s, want the default 300", exp-iat)
	}

	// Keycloak's extra fields in the token response.
	if v, _ := tok.Extra("refresh_expires_in").(float64); v < 1795 || v > 1800 {
		t.Errorf("refresh_expires_in = %v, want about 1800", tok.Extra("refresh_expires_in"))
	}
	if tok.Extra("session_state") != access["sid"] {
		t.Errorf("session_state = %v, want the token's sid %v", tok.Extra("session_state"), access["sid"])
	}
	if tok.Extra("scope") != "openid profile email" {
		t.Errorf("scope = %v, want Keycloak's default \"openid profile email\"", tok.Extra("scope"))
	}
	if _, ok := tok.Extra("not-before-policy").(float64); !ok {
		t.Errorf("not-before-policy missing")
	}
	if tok.RefreshToken == "" || tok.TokenType != "Bearer" {
		t.Errorf("refresh token %t, token_type %q", tok.RefreshToken != "", tok.TokenType)
	}
}

func TestSubjectIsStablePerUser(t *testing.T) {
	tb := newTestBroker(t)
	v := tb.provider.Verifier(&oidc.Config{ClientID: clientID})
	sub := func(user, pass string) string {
		return claimsOf(t, v, tb.ctx, tb.login(t, user, pass).AccessToken)["sub"].(string)
	}
	admin1, admin2, user := sub("admin", "admin-pw"), sub("admin", "admin-pw"), sub("user", "user-pw")
	if admin1 != admin2 || admin1 == user {
		t.Errorf("subs admin %s, admin %s, user %s: want stable and distinct", admin1, admin2, user)
	}
	// Another broker (a restart) gives the same user the same sub.
	tb2 := newTestBroker(t)
	again := claimsOf(t, tb2.provider.Verifier(&oidc.Config{ClientID: clientID}), tb2.ctx, tb2.login(t, "admin", "admin-pw").AccessToken)
	if again["sub"] != admin1 {
		t.Errorf("after a restart admin's sub = %v, want %s", again["sub"], admin1)
	}
}

func TestUserWithoutRolesHasNoClientRoles(t *testing.T) {
	tb := newTestBroker(t)
	access := claimsOf(t, tb.provider.Verifier(&oidc.Config{ClientID: clientID}), tb.ctx, tb.login(t, "user", "user-pw").AccessToken)
	if got := roles(access, "resource_access", clientID); len(got) != 0 {
		t.Errorf("user's client roles = %v, want none", got)
	}
	if got := roles(access, "realm_access"); slices.Contains(got, "ADMIN") {
		t.Errorf("user's realm roles = %v, want no ADMIN", got)
	}
}

func TestRefreshRotationAndRevocation(t *testing.T) {
	tb := newTestBroker(t)
	first := tb.login(t, "user", "user-pw")

	status, second := tb.refresh(t, first.RefreshToken)
	if status != http.StatusOK {
		t.Fatalf("refresh: %d %v", status, second)
	}
	rt2, _ := second["refresh_token"].(string)
	if rt2 == "" || rt2 == first.RefreshToken || second["access_token"] == first.AccessToken {
		t.Fatalf("refresh must rotate both tokens: %v", second)
	}
	tb.checkIDToken(t, second["id_token"])
	if second["session_state"] != first.Extra("session_state") || second["refresh_expires_in"] == nil {
		t.Errorf("refresh answer lacks Keycloak fields of the same session: %v", second)
	}

	// The used refresh token is refused like Keycloak refuses it.
	status, stale := tb.refresh(t, first.RefreshToken)
	if status != http.StatusBadRequest || stale["error"] != "invalid_grant" || stale["error_description"] != "Stale token" {
		t.Errorf("reused refresh token: %d %v, want 400 invalid_grant \"Stale token\"", status, stale)
	}

	// Revocation (RFC 7009) of the current refresh token ends the session.
	status, _ = tb.postForm(t, tb.endpoint("revoke"), url.Values{
		"token": {rt2}, "token_type_hint": {"refresh_token"}, "client_id": {clientID},
	})
	if status != http.StatusOK {
		t.Fatalf("revoke: %d", status)
	}
	status, after := tb.refresh(t, rt2)
	if status != http.StatusBadRequest || after["error"] != "invalid_grant" {
		t.Errorf("refresh after revocation: %d %v, want invalid_grant", status, after)
	}
	if active := tb.introspect(t, second["access_token"].(string)); active {
		t.Error("access token of a revoked session is still active in introspection")
	}
}

func TestConcurrentRefreshesWithOneTokenOnlyOneWins(t *testing.T) {
	tb := newTestBroker(t)
	tok := tb.login(t, "user", "user-pw")
	const n = 8
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Go(func() { codes[i], _ = tb.refresh(t, tok.RefreshToken) })
	}
	wg.Wait()
	if ok := countOf(codes, http.StatusOK); ok != 1 {
		t.Errorf("%d of %d concurrent refreshes with one token succeeded (%v), want exactly 1", ok, n, codes)
	}
}

func countOf(s []int, v int) (n int) {
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

func (tb *testBroker) introspect(t *testing.T, token string) bool {
	t.Helper()
	id, secret := tb.IntrospectionCredentials()
	req, _ := http.NewRequest(http.MethodPost, tb.endpoint("token/introspect"), strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := tb.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("introspection: %d %v", resp.StatusCode, err)
	}
	if m["active"] == true && (m["username"] == nil || m["client_id"] != clientID) {
		t.Errorf("active introspection lacks username or client_id: %v", m)
	}
	return m["active"] == true
}

func TestIntrospection(t *testing.T) {
	tb := newTestBroker(t)
	tok := tb.login(t, "admin", "admin-pw")
	if !tb.introspect(t, tok.AccessToken) {
		t.Fatal("fresh access token is not active")
	}
	if tb.introspect(t, tok.AccessToken+"x") {
		t.Error("a tampered token is active")
	}
	// Revoking the access token (RFC 7009) makes it inactive; the session lives on.
	status, _ := tb.postForm(t, tb.endpoint("revoke"), url.Values{
		"token": {tok.AccessToken}, "token_type_hint": {"access_token"}, "client_id": {clientID},
	})
	if status != http.StatusOK || tb.introspect(t, tok.AccessToken) {
		t.Errorf("revoked access token: revoke %d, still active", status)
	}
	if status, _ := tb.refresh(t, tok.RefreshToken); status != http.StatusOK {
		t.Errorf("refresh after revoking only the access token: %d, want 200", status)
	}
	// The public client may not introspect.
	status, m := tb.postForm(t, tb.endpoint("token/introspect"), url.Values{"token": {tok.AccessToken}, "client_id": {clientID}})
	if status < 400 || m["active"] == true {
		t.Errorf("public client introspection: %d %v, want refused", status, m)
	}
}

func TestUserinfo(t *testing.T) {
	tb := newTestBroker(t)
	tok := tb.login(t, "admin", "admin-pw")
	info, err := tb.provider.UserInfo(tb.ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	if info.Email != "admin@example.com" || info.Subject == "" {
		t.Errorf("userinfo = %+v", info)
	}
}

func TestLogoutWithRefreshTokenEndsSession(t *testing.T) {
	tb := newTestBroker(t)
	tok := tb.login(t, "user", "user-pw")
	resp, err := tb.srv.Client().PostForm(tb.endpoint("logout"), url.Values{"client_id": {clientID}, "refresh_token": {tok.RefreshToken}})
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %s, want 204", resp.Status)
	}
	status, m := tb.refresh(t, tok.RefreshToken)
	if status != http.StatusBadRequest || m["error"] != "invalid_grant" || m["error_description"] != "Session not active" {
		t.Errorf("refresh after logout: %d %v, want invalid_grant \"Session not active\"", status, m)
	}
	if tb.introspect(t, tok.AccessToken) {
		t.Error("access token still active after logout")
	}
}

func TestEndSessionWithIDTokenHint(t *testing.T) {
	tb := newTestBroker(t)
	tok := tb.login(t, "user", "user-pw")
	u := tb.endpoint("logout") + "?" + url.Values{"id_token_hint": {tok.Extra("id_token").(string)}}.Encode()
	client := *tb.srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != tb.Issuer()+"/logged-out" {
		t.Fatalf("end session: %s to %q", resp.Status, loc)
	}
	if status, _ := tb.refresh(t, tok.RefreshToken); status != http.StatusBadRequest {
		t.Errorf("refresh after end session: %d, want 400", status)
	}
}

func TestWrongPasswordShowsErrorAndDoesNotLogIn(t *testing.T) {
	tb := newTestBroker(t)
	conf := tb.oauth2Config()
	authURL := tb.authURL(conf, oauth2.GenerateVerifier(), "s", "n")
	_, err := devbrowser.Login(tb.ctx, tb.srv.Client(), authURL, "admin", "wrong")
	if !errors.Is(err, devbrowser.ErrLoginRefused) || !strings.Contains(err.Error(), "Invalid username or password") {
		t.Fatalf("login with a wrong password: %v, want the form's error", err)
	}
	_, err = devbrowser.Login(tb.ctx, tb.srv.Client(), authURL, "nobody", "admin-pw")
	if !errors.Is(err, devbrowser.ErrLoginRefused) {
		t.Fatalf("login as an unknown user: %v, want refused", err)
	}
	// The same request can still log in with the right password.
	if _, err := devbrowser.Login(tb.ctx, tb.srv.Client(), authURL, "admin", "admin-pw"); err != nil {
		t.Fatalf("retry with the right password: %v", err)
	}
}

func TestLoginPageEscapesWhatItRenders(t *testing.T) {
	tb := newTestBroker(t)
	authURL := tb.authURL(tb.oauth2Config(), oauth2.GenerateVerifier(), "s", "n")
	login := loginPageURL(t, tb, authURL)
	resp, err := tb.srv.Client().PostForm(login.Scheme+"://"+login.Host+login.Path, url.Values{
		"id": {login.Query().Get("id")}, "username": {`<script>alert(1)</script>`}, "password": {"x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if strings.Contains(string(body), "<script>alert(1)") || !strings.Contains(string(body), "&lt;script&gt;") {
		t.Errorf("the user name is not escaped in the page:\n%s", body)
	}
}

// loginPageURL follows the authorization request to the login page's URL.
func loginPageURL(t *testing.T, tb *testBroker, authURL string) *url.URL {
	t.Helper()
	resp, err := tb.srv.Client().Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("authorization request: %s", resp.Status)
	}
	return resp.Request.URL
}

func TestRedirectPolicy(t *testing.T) {
	tb := newTestBroker(t)
	for _, tc := range []struct {
		redirect string
		ok       bool
	}{
		{"http://127.0.0.1:45678/callback", true},
		{"http://127.0.0.1:1/", true},
		{"http://localhost:8000/any/path", true},
		{"http://[::1]:9999/cb", true},
		{"https://example.com/callback", false},
		{"http://example.com:8000/callback", false},
		{"http://127.0.0.1.example.com/callback", false},
		{"http://127.0.0.1:80@evil.example/callback", false},
		{"https://127.0.0.1:8000/callback", false},
		{"myapp://callback", false},
	} {
		t.Run(tc.redirect, func(t *testing.T) {
			conf := tb.oauth2Config()
			conf.RedirectURL = tc.redirect
			client := *tb.srv.Client()
			client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			resp, err := client.Get(tb.authURL(conf, oauth2.GenerateVerifier(), "s", "n"))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			loc := resp.Header.Get("Location")
			toLogin := resp.StatusCode == http.StatusFound && strings.HasPrefix(loc, tb.Issuer()+"/login-actions/")
			if toLogin != tc.ok {
				t.Fatalf("accepted = %v (%s, Location %q, %s), want %v", toLogin, resp.Status, loc, body, tc.ok)
			}
			if !tc.ok {
				if strings.HasPrefix(loc, "http") && !strings.HasPrefix(loc, tb.Issuer()) {
					t.Errorf("refused redirect_uri was redirected to: %s", loc)
				}
				if !strings.Contains(string(body), "loopback") {
					t.Errorf("the refusal does not say what is allowed: %s", body)
				}
			}
		})
	}
}

func TestPKCE(t *testing.T) {
	tb := newTestBroker(t)
	conf := tb.oauth2Config()

	t.Run("wrong verifier", func(t *testing.T) {
		redirect, err := devbrowser.Login(tb.ctx, tb.srv.Client(), tb.authURL(conf, oauth2.GenerateVerifier(), "s", "n"), "user", "user-pw")
		if err != nil {
			t.Fatal(err)
		}
		_, err = conf.Exchange(tb.ctx, callbackCode(t, redirect, "s"), oauth2.VerifierOption(oauth2.GenerateVerifier()))
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
			t.Errorf("exchange with a wrong code_verifier: %v, want invalid_grant", err)
		}
	})
	t.Run("no verifier", func(t *testing.T) {
		redirect, err := devbrowser.Login(tb.ctx, tb.srv.Client(), tb.authURL(conf, oauth2.GenerateVerifier(), "s", "n"), "user", "user-pw")
		if err != nil {
			t.Fatal(err)
		}
		if _, err = conf.Exchange(tb.ctx, callbackCode(t, redirect, "s")); err == nil {
			t.Error("exchange without code_verifier succeeded")
		}
	})
	t.Run("code is single use", func(t *testing.T) {
		v := oauth2.GenerateVerifier()
		redirect, err := devbrowser.Login(tb.ctx, tb.srv.Client(), tb.authURL(conf, v, "s", "n"), "user", "user-pw")
		if err != nil {
			t.Fatal(err)
		}
		code := callbackCode(t, redirect, "s")
		if _, err := conf.Exchange(tb.ctx, code, oauth2.VerifierOption(v)); err != nil {
			t.Fatal(err)
		}
		if _, err := conf.Exchange(tb.ctx, code, oauth2.VerifierOption(v)); err == nil {
			t.Error("a code was exchanged twice")
		}
	})
	t.Run("no challenge: optional by default, as Keycloak's", func(t *testing.T) {
		redirect, err := devbrowser.Login(tb.ctx, tb.srv.Client(), conf.AuthCodeURL("s"), "user", "user-pw")
		if err != nil {
			t.Fatal(err)
		}
		code := callbackCode(t, redirect, "s")
		if _, err := conf.Exchange(tb.ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier())); err == nil {
			t.Error("a code issued without a challenge was exchanged with a verifier")
		}
		redirect, err = devbrowser.Login(tb.ctx, tb.srv.Client(), conf.AuthCodeURL("s"), "user", "user-pw")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conf.Exchange(tb.ctx, callbackCode(t, redirect, "s")); err != nil {
			t.Errorf("exchange of a code issued without PKCE: %v", err)
		}
	})
	required := newTestBroker(t, func(o *devbroker.Options) { o.Client.RequirePKCE = true })
	rconf := required.oauth2Config()
	for name, challenge := range map[string][]oauth2.AuthCodeOption{
		"required, no challenge": nil,
		"required, plain":        {oauth2.SetAuthURLParam("code_challenge", "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrs"), oauth2.SetAuthURLParam("code_challenge_method", "plain")},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := devbrowser.Login(required.ctx, required.srv.Client(), rconf.AuthCodeURL("s", challenge...), "user", "user-pw")
			if err == nil || !strings.Contains(err.Error(), "PKCE") {
				t.Errorf("authorization with %s: %v, want an error about PKCE", name, err)
			}
		})
	}
	t.Run("required, S256", func(t *testing.T) {
		v := oauth2.GenerateVerifier()
		redirect, err := devbrowser.Login(required.ctx, required.srv.Client(), required.authURL(rconf, v, "s", "n"), "user", "user-pw")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rconf.Exchange(required.ctx, callbackCode(t, redirect, "s"), oauth2.VerifierOption(v)); err != nil {
			t.Error(err)
		}
	})
}

func TestDeviceFlow(t *testing.T) {
	tb := newTestBroker(t)
	conf := tb.oauth2Config()
	conf.Endpoint.DeviceAuthURL = tb.endpoint("auth/device")
	da, err := conf.DeviceAuth(tb.ctx)
	if err != nil {
		t.Fatalf("device authorization: %v", err)
	}
	if da.VerificationURI != tb.Issuer()+"/device" || da.UserCode == "" || da.VerificationURIComplete == "" {
		t.Fatalf("device authorization answer = %+v", da)
	}

	// Before approval the client is told to wait.
	status, m := tb.postForm(t, tb.endpoint("token"), url.Values{
		"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}, "client_id": {clientID},
	})
	if status != http.StatusBadRequest || m["error"] != "authorization_pending" {
		t.Fatalf("poll before approval: %d %v, want authorization_pending", status, m)
	}

	// A wrong password on the device page does not approve.
	if err := devbrowser.ApproveDevice(tb.ctx, tb.srv.Client(), da.VerificationURI, da.UserCode, "admin", "wrong"); !errors.Is(err, devbrowser.ErrLoginRefused) {
		t.Fatalf("device approval with a wrong password: %v, want refused", err)
	}
	// Typing the code (lower case, no dash) on the plain verification page works.
	typed := strings.ToLower(strings.ReplaceAll(da.UserCode, "-", ""))
	if err := devbrowser.ApproveDevice(tb.ctx, tb.srv.Client(), da.VerificationURI, typed, "admin", "admin-pw"); err != nil {
		t.Fatalf("device approval: %v", err)
	}

	// Poll once more, by hand: oauth2's DeviceAccessToken would wait the interval.
	status, m = tb.postForm(t, tb.endpoint("token"), url.Values{
		"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}, "client_id": {clientID},
	})
	if status != http.StatusOK {
		t.Fatalf("device token after approval: %d %v", status, m)
	}
	tok := (&oauth2.Token{AccessToken: m["access_token"].(string), RefreshToken: m["refresh_token"].(string)}).WithExtra(m)
	access := claimsOf(t, tb.provider.Verifier(&oidc.Config{ClientID: clientID}), tb.ctx, tok.AccessToken)
	if access["preferred_username"] != "admin" || access["sid"] == nil || access["sid"] != tok.Extra("session_state") {
		t.Errorf("device access token claims = %v (session_state %v)", access, tok.Extra("session_state"))
	}
	if tok.RefreshToken == "" {
		t.Errorf("device grant gave no refresh token")
	}
	tb.checkIDToken(t, tok.Extra("id_token"))
	if status, _ := tb.refresh(t, tok.RefreshToken); status != http.StatusOK {
		t.Errorf("refresh of a device login: %d", status)
	}
	// The device code is single use.
	status, m = tb.postForm(t, tb.endpoint("token"), url.Values{
		"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}, "client_id": {clientID},
	})
	if status == http.StatusOK {
		t.Errorf("device code used twice: %v", m)
	}
}

func TestDeviceDenied(t *testing.T) {
	tb := newTestBroker(t)
	conf := tb.oauth2Config()
	conf.Endpoint.DeviceAuthURL = tb.endpoint("auth/device")
	da, err := conf.DeviceAuth(tb.ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Deny through the pages: log in, then press Deny.
	page := tb.Issuer() + "/device"
	resp, err := tb.srv.Client().PostForm(page, url.Values{"user_code": {da.UserCode}, "username": {"user"}, "password": {"user-pw"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	consent := hiddenValue(string(body), "consent")
	if consent == "" {
		t.Fatalf("no consent form after login:\n%s", body)
	}
	resp, err = tb.srv.Client().PostForm(page+"/consent", url.Values{"user_code": {da.UserCode}, "consent": {consent}, "action": {"deny"}})
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	status, m := tb.postForm(t, tb.endpoint("token"), url.Values{
		"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}, "client_id": {clientID},
	})
	if status != http.StatusBadRequest || m["error"] != "access_denied" {
		t.Errorf("poll after deny: %d %v, want access_denied", status, m)
	}
}

func hiddenValue(body, name string) string {
	marker := `name="` + name + `" value="`
	i := strings.Index(body, marker)
	if i < 0 {
		return ""
	}
	rest := body[i+len(marker):]
	return rest[:strings.IndexByte(rest, '"')]
}

func TestShortLifetimes(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	tb := newTestBroker(t, func(o *devbroker.Options) {
		o.AccessTTL, o.RefreshTTL, o.Now = 30*time.Second, time.Minute, clock
	})
	tok := tb.login(t, "user", "user-pw")
	if tok.Extra("expires_in") != float64(30) || tok.Extra("refresh_expires_in") != float64(60) {
		t.Errorf("expires_in %v, refresh_expires_in %v, want 30 and 60", tok.Extra("expires_in"), tok.Extra("refresh_expires_in"))
	}
	mu.Lock()
	now = now.Add(61 * time.Second)
	mu.Unlock()
	status, m := tb.refresh(t, tok.RefreshToken)
	if status != http.StatusBadRequest || m["error_description"] != "Token is not active" {
		t.Errorf("expired refresh token: %d %v, want invalid_grant \"Token is not active\"", status, m)
	}
}

// checkIDToken verifies an ID token with go-oidc and checks it is the
// client's alone, as Keycloak's.
func (tb *testBroker) checkIDToken(t *testing.T, raw any) {
	t.Helper()
	s, _ := raw.(string)
	if s == "" {
		t.Fatal("no id_token")
	}
	id := claimsOf(t, tb.provider.Verifier(&oidc.Config{ClientID: clientID}), tb.ctx, s)
	if aud, _ := id["aud"].([]any); !slices.Equal(aud, []any{clientID}) || id["sid"] == nil {
		t.Errorf("ID token aud = %v, sid = %v; want [%s] and a sid", id["aud"], id["sid"], clientID)
	}
}

func jwtHeader(t *testing.T, raw string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

// roles reads claims[path...].roles.
func roles(claims map[string]any, path ...string) []string {
	var cur any = claims
	for _, p := range path {
		m, _ := cur.(map[string]any)
		cur = m[p]
	}
	m, _ := cur.(map[string]any)
	list, _ := m["roles"].([]any)
	var out []string
	for _, r := range list {
		s, _ := r.(string)
		out = append(out, s)
	}
	return out
}

func TestFormPagesAllowOnlyGetAndPost(t *testing.T) {
	tb := newTestBroker(t)
	for _, page := range []string{"/login-actions/authenticate", "/device"} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, tb.Issuer()+page, nil)
		resp, err := tb.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, POST" {
			t.Errorf("PUT %s: %s, Allow %q; want 405 allowing GET, POST", page, resp.Status, resp.Header.Get("Allow"))
		}
	}
}
