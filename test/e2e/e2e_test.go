//go:build e2e

// Package e2e runs the seed sequence (third_party_token_management.md) on
// real processes: an identity provider, an identity broker federating to it,
// `pbench-auth serve` as the Pbench server, and the `pbench-auth` CLI logging
// in through headless Chromium, keeping its tokens in the Secret Service and
// calling the server.
//
// Run it under scripts/with-keyring.sh after test/e2e/dex/build.sh; as
// with-keyring.sh gives the test a throw-away HOME, say where Dex is cached:
//
//	test/e2e/dex/build.sh
//	PBENCH_AUTH_CACHE=~/.cache/pbench-auth scripts/with-keyring.sh \
//		go test -tags e2e -count=1 -timeout 20m ./test/e2e/...
//
// Without Chromium, Dex or a keyring the tests skip, saying what is missing;
// with CI=true they fail instead.
package e2e

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

// TestSeedDex: Dex (IdP) -> Dex (broker, oidc connector) -> serve -> CLI.
//
// Dex has no roles claim, so the role rule is checked from the other side:
// serve requires ADMIN below /api/v1/admin, which no Dex user has, and the
// call there must be 403 while /api/v1/user is 200 for the same token.
// Dex has no RFC 7009 revocation endpoint either: `logout --browser` ends
// the broker session in the browser that logged in, which ends pbench-client's
// refresh tokens (refreshTokenLifetime: session).
func TestSeedDex(t *testing.T) {
	bin := prerequisites(t)
	need(t, executable(dexBinary()), "no Dex at %s: run test/e2e/dex/build.sh, or set PBENCH_AUTH_DEX", dexBinary())

	broker := startDexPair(t, "")
	up := newUpstream(t)
	addr := testutil.ReserveAddr(t)
	daemon(t, "serve", nil, bin, "serve", "--listen", addr, "--issuer", broker, "--client-id", "pbench-client", "--audience", "pbench-client",
		"--require-role", "/api/v1/admin=ADMIN", "--upstream", up.srv.URL)
	waitHTTP(t, "serve", "http://"+addr+"/readyz")

	runSeed(t, seed{
		bin:      bin,
		server:   "http://" + addr,
		upstream: up,
		// The upstream IdP's user, as the broker's token carries it.
		wantEmail:    aliceEmail,
		wantUsername: aliceName,
		revokes:      false,
		signIn: func(authURL string) chromedp.Tasks {
			return chromedp.Tasks{
				chromedp.Navigate(authURL),
				// The broker's page: pick the upstream identity provider.
				chromedp.Click(`//a[contains(., "Log in with Upstream IdP")]`, chromedp.BySearch),
				// The upstream IdP's password form.
				chromedp.WaitVisible(`#login`, chromedp.ByID),
				chromedp.SendKeys(`#login`, aliceEmail, chromedp.ByID),
				chromedp.SendKeys(`#password`, alicePassword, chromedp.ByID),
				chromedp.Click(`#submit-login`, chromedp.ByID),
			}
		},
		// Both Dex instances ask to approve their client (the IdP too,
		// despite skipApprovalScreen, as offline_access is requested).
		approve: `//form[input[@name="approval" and @value="approve"]]`,
		// Dex's "Do you want to log out?" and its result.
		confirmLogout: `//form[@method="post"][button[contains(., "Log Out")]]`,
		loggedOut:     `//h2[contains(., "Logged Out")]`,
		// The session's end deleted the refresh token; Dex answers an
		// unknown one with invalid_request.
		refused: "invalid_request",
	})
}

// TestSeedDevBroker: the same sequence against `serve --dev`, whose broker
// issues Keycloak-shaped tokens with realm roles and revokes on logout.
func TestSeedDevBroker(t *testing.T) {
	bin := prerequisites(t)
	up := newUpstream(t)
	addr := testutil.ReserveAddr(t)
	daemon(t, "serve --dev", nil, bin, "serve", "--dev", "--listen", addr,
		"--dev-user", aliceName+":"+alicePassword+":USER", "--dev-token-ttl", "10s",
		"--require-role", "/api/v1/admin=ADMIN", "--upstream", up.srv.URL)
	waitHTTP(t, "serve --dev", "http://"+addr+"/readyz")

	runSeed(t, seed{
		bin:          bin,
		server:       "http://" + addr,
		upstream:     up,
		wantUsername: aliceName,
		revokes:      true,
		signIn: func(authURL string) chromedp.Tasks {
			return chromedp.Tasks{
				chromedp.Navigate(authURL),
				chromedp.WaitVisible(`input[name=username]`, chromedp.ByQuery),
				chromedp.SendKeys(`input[name=username]`, aliceName, chromedp.ByQuery),
				chromedp.SendKeys(`input[name=password]`, alicePassword, chromedp.ByQuery),
				chromedp.Submit(`#login`, chromedp.ByID),
			}
		},
		confirmLogout: `//form[@id="logout"]`,
		loggedOut:     `//h1[contains(., "Logged out")]`,
		refused:       "invalid_grant",
	})
}

// prerequisites checks for Chromium and the Secret Service, and builds the CLI.
func prerequisites(t *testing.T) string {
	t.Helper()
	need(t, executable(chromiumPath()), "no Chromium at %s: apt-get install chromium, or set PBENCH_AUTH_CHROMIUM", chromiumPath())
	need(t, os.Getenv("PBENCH_AUTH_TEST_KEYRING") == "1",
		"no Secret Service: run under scripts/with-keyring.sh (it sets PBENCH_AUTH_TEST_KEYRING=1)")
	bin, err := buildCLI()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// upstream stands for the Pbench API behind serve's gateway: it records the
// identity headers serve forwards, and answers Pbench's API key endpoints
// (keys.go) for the user serve names.
type upstream struct {
	srv *httptest.Server

	mu        sync.Mutex
	forwarded []http.Header
	keys      []pbenchKey
	lastKeyID int
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/endpoints" {
			// Not a Pbench server: no endpoints document of its own, so
			// serve's gateway publishes serve's (the login's first step).
			http.NotFound(w, r)
			return
		}
		if r.URL.Path == "/api/v1/key" || strings.HasPrefix(r.URL.Path, "/api/v1/key/") {
			u.serveKeys(w, r)
			return
		}
		u.mu.Lock()
		u.forwarded = append(u.forwarded, r.Header.Clone())
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"datasets": []}`))
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.forwarded)
}

func (u *upstream) last() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.forwarded) == 0 {
		return nil
	}
	return u.forwarded[len(u.forwarded)-1]
}

// seed is one run of the sequence against one broker.
type seed struct {
	bin      string
	server   string
	upstream *upstream
	// signIn drives the browser from the broker's login URL through the
	// login forms.
	signIn func(authURL string) chromedp.Tasks
	// approve is the XPath of a consent form to submit whenever one shows
	// up before the browser is back at the CLI ("": none expected).
	approve string
	// The identity /api/v1/user must report (empty: not checked).
	wantEmail, wantUsername string
	// revokes: the broker has a revocation endpoint; else logout must say
	// it has none.
	revokes bool
	// confirmLogout is the XPath of the broker's end-session confirmation
	// form, loggedOut of what its page shows once the session has ended.
	confirmLogout, loggedOut string
	// refused is the OAuth error (with 400) the broker answers the refresh
	// token with after logout.
	refused string
}

func runSeed(t *testing.T, s seed) {
	state, config := t.TempDir(), t.TempDir()
	c := &cli{t: t, bin: s.bin, env: []string{
		"XDG_STATE_HOME=" + state, "XDG_CONFIG_HOME=" + config,
		"PBENCH_SERVER=", "PBENCH_AUTH_TOKEN_STORE=",
	}}
	store, err := tokenstore.Open(tokenstore.Options{Kind: tokenstore.KindKeyring, Dir: filepath.Join(state, "pbench-auth")})
	if err != nil {
		t.Fatalf("open the Secret Service as the CLI does: %v", err)
	}
	t.Cleanup(func() { _ = store.Delete(s.server) })

	// Seed steps 1-10: login, its browser being headless Chromium.
	l := c.startLogin("--server", s.server, "--token-store", "keyring", "--scope", "offline_access", "--timeout", "2m")
	authURL, err := url.Parse(l.authURL)
	if err != nil || authURL.Query().Get("code_challenge_method") != "S256" {
		t.Errorf("login URL %q: want PKCE S256", l.authURL)
	}
	ctx := browser(t)
	if err := chromedp.Run(ctx, s.signIn(l.authURL)); err != nil {
		t.Fatalf("sign in with Chromium (at %s): %v", location(ctx), err)
	}
	if err := reached(ctx, authURL.Query().Get("redirect_uri"), s.approve); err != nil {
		t.Fatal(err)
	}
	lr := l.wait(t)
	if lr.code != 0 {
		t.Fatalf("login exited %d: %s", lr.code, lr.stderr)
	}
	atLogin, err := store.Load(s.server)
	if err != nil {
		t.Fatalf("tokens in the Secret Service after login: %v", err)
	}
	if atLogin.RefreshToken == "" {
		t.Fatal("login stored no refresh token (offline_access)")
	}
	if strings.Contains(lr.stdout+lr.stderr, atLogin.AccessToken) || strings.Contains(lr.stdout+lr.stderr, atLogin.RefreshToken) {
		t.Error("login printed a token")
	}
	noTokenOnDisk(t, state, atLogin.RefreshToken)

	// Step 11-13: the identity the server extracted from the token.
	r := c.run("call", "--server", s.server, "--token-store", "keyring", "/api/v1/user")
	if r.code != 0 {
		t.Fatalf("call /api/v1/user exited %d: %s", r.code, r.stderr)
	}
	var id struct{ Sub, Username, Email string }
	if err := json.Unmarshal([]byte(r.stdout), &id); err != nil {
		t.Fatalf("/api/v1/user answered %q: %v", r.stdout, err)
	}
	if id.Sub == "" || (s.wantEmail != "" && id.Email != s.wantEmail) || (s.wantUsername != "" && id.Username != s.wantUsername) {
		t.Errorf("/api/v1/user = %+v, want sub set, email %q, username %q", id, s.wantEmail, s.wantUsername)
	}
	// The access token lives less than the refresh margin, so that call
	// refreshed it at the broker (through the IdP, for Dex) and stored it.
	afterCall, err := store.Load(s.server)
	if err != nil {
		t.Fatal(err)
	}
	if afterCall.AccessToken == atLogin.AccessToken {
		t.Error("call did not refresh an access token that expires within the margin")
	}
	for _, secret := range []string{atLogin.AccessToken, atLogin.RefreshToken, afterCall.AccessToken, afterCall.RefreshToken} {
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Error("call printed a token")
		}
	}

	// Gateway: the request reaches the Pbench API with the identity.
	r = c.run("call", "--server", s.server, "--token-store", "keyring", "/api/v1/datasets?mine=true")
	if r.code != 0 || !strings.Contains(r.stdout, `"datasets"`) {
		t.Errorf("call /api/v1/datasets exited %d with %q, want 0 and the upstream's answer", r.code, r.stdout)
	}
	if h := s.upstream.last(); h == nil || (s.wantEmail != "" && h.Get("X-Forwarded-Email") != s.wantEmail) ||
		(s.wantUsername != "" && h.Get("X-Forwarded-User") != s.wantUsername) {
		t.Errorf("upstream got identity headers %v", h)
	}

	// The role rule: a valid token without ADMIN is refused below /api/v1/admin.
	r = c.run("call", "--server", s.server, "--token-store", "keyring", "/api/v1/admin/users")
	if r.code != 6 || !strings.Contains(r.stdout, "ADMIN") {
		t.Errorf("call /api/v1/admin/users exited %d with %q, want 6 (4xx) and a message naming the role", r.code, r.stdout)
	}
	if n := s.upstream.count(); n != 1 {
		t.Errorf("the upstream API got %d requests, want 1 (the 403 must not reach it)", n)
	}

	// Logout, ending the broker session in the browser that logged in,
	// then nothing works any more.
	beforeLogout, err := store.Load(s.server)
	if err != nil {
		t.Fatal(err)
	}
	browserCommand, caught := urlCatcher(t)
	lo := c.run("logout", "--server", s.server, "--token-store", "keyring", "--browser", "--browser-command", browserCommand)
	if lo.code != 0 {
		t.Fatalf("logout exited %d: %s", lo.code, lo.stderr)
	}
	endURL := caught()
	if u, err := url.Parse(endURL); err != nil || u.Query().Get("client_id") != beforeLogout.ClientID || u.Query().Has("id_token_hint") ||
		!strings.HasPrefix(endURL, beforeLogout.EndSessionEndpoint) {
		t.Errorf("logout --browser opened %q, want %s with client_id and no id_token_hint", endURL, beforeLogout.EndSessionEndpoint)
	}
	for _, secret := range []string{beforeLogout.AccessToken, beforeLogout.RefreshToken, beforeLogout.IDToken} {
		if strings.Contains(endURL+lo.stdout+lo.stderr, secret) {
			t.Error("logout --browser passed or printed a token")
		}
	}
	if err := endSession(ctx, endURL, s.confirmLogout, s.loggedOut); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Load(s.server); !errors.Is(err, tokenstore.ErrNotFound) {
		t.Errorf("tokens still in the Secret Service after logout: %v", err)
	}
	r = c.run("call", "--server", s.server, "--token-store", "keyring", "/api/v1/user")
	if r.code != 3 || !strings.Contains(r.stderr, "pbench-auth login") {
		t.Errorf("call after logout exited %d (%s), want 3 and how to log in", r.code, r.stderr)
	}

	// The broker's side of logout: revoked, or ended with the session.
	if status, oauthErr := refreshGrant(t, beforeLogout); status != http.StatusBadRequest || oauthErr != s.refused {
		t.Errorf("the broker answered %d %q to the logged-out refresh token, want 400 %s", status, oauthErr, s.refused)
	}
	if !s.revokes && !strings.Contains(lo.stderr, "no revocation endpoint") {
		t.Error("logout did not say that the broker has no revocation endpoint")
	}
}

// noTokenOnDisk checks that no file under dir holds secret: with
// --token-store keyring, tokens live only in the Secret Service.
func noTokenOnDisk(t *testing.T, dir, secret string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path) // #nosec G304 -- the test's own temp dir
		if err == nil && strings.Contains(string(b), secret) {
			t.Errorf("%s holds a token, with --token-store keyring", path)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// refreshGrant redeems ts's refresh token at its broker as the public client
// would, and returns the HTTP status and the OAuth error code, if any.
func refreshGrant(t *testing.T, ts *tokenstore.TokenSet) (int, string) {
	t.Helper()
	return refreshAt(t, ts.TokenEndpoint, ts.ClientID, ts.RefreshToken)
}
