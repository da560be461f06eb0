package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
	"github.com/distributed-system-analysis/pbench-auth/server"
	"github.com/distributed-system-analysis/pbench-auth/server/devbroker/devbrowser"
)

func TestDevFlags(t *testing.T) {
	got := parse(t, "--dev")
	if !slices.Equal(got.DevUsers, []string{"admin:admin:ADMIN", "user:user"}) ||
		got.DevRealm != "pbench-server" || got.DevTokenTTL != 5*time.Minute || got.DevAllowRemote || got.DevKeyFile != "" {
		t.Errorf("dev defaults = %+v", got.devOptions)
	}
	got = parse(t, "--dev", "--dev-user", "ann:pw:ADMIN,OPS", "--dev-user", "bob:pw2", "--dev-realm", "r1",
		"--dev-token-ttl", "30s", "--dev-key", "/tmp/k.pem", "--dev-allow-remote")
	want := devOptions{DevUsers: []string{"ann:pw:ADMIN,OPS", "bob:pw2"}, DevRealm: "r1", DevTokenTTL: 30 * time.Second,
		DevKeyFile: "/tmp/k.pem", DevAllowRemote: true}
	if !slices.Equal(got.DevUsers, want.DevUsers) || got.DevRealm != want.DevRealm || got.DevTokenTTL != want.DevTokenTTL ||
		got.DevKeyFile != want.DevKeyFile || !got.DevAllowRemote {
		t.Errorf("dev flags = %+v, want %+v", got.devOptions, want)
	}
}

func TestDevRefusesRemoteListenWithoutAllowRemote(t *testing.T) {
	remote := &net.TCPAddr{IP: net.ParseIP("192.0.2.10"), Port: 8080}
	opts := parse(t, "--dev")
	_, err := setupDev(t.Context(), opts, remote, http.NewServeMux())
	var ue *cmdutil.UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--dev-allow-remote") {
		t.Fatalf("--dev on %s: %v, want a usage error naming --dev-allow-remote", remote, err)
	}

	opts = parse(t, "--dev", "--dev-allow-remote")
	issuer, err := setupDev(t.Context(), opts, remote, http.NewServeMux())
	if err != nil {
		t.Fatal(err)
	}
	if issuer != "http://192.0.2.10:8080/realms/pbench-server" {
		t.Errorf("issuer = %s", issuer)
	}
}

func TestDevBadFlags(t *testing.T) {
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}
	for name, args := range map[string][]string{
		"user without password": {"--dev-user", "alice"},
		"realm with a slash":    {"--dev-realm", "a/b"},
		"tiny ttl":              {"--dev-token-ttl", "1s"},
		"issuer given":          {"--issuer", "https://sso.example.com/realms/x"},
	} {
		t.Run(name, func(t *testing.T) {
			opts := parse(t, append([]string{"--dev"}, args...)...)
			_, err := setupDev(t.Context(), opts, local, http.NewServeMux())
			var ue *cmdutil.UsageError
			if !errors.As(err, &ue) {
				t.Fatalf("setupDev: %v, want a usage error", err)
			}
		})
	}
	opts := parse(t, "--dev", "--dev-user", "alice:s3cret:A:B")
	_, err := setupDev(t.Context(), opts, local, http.NewServeMux())
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("bad --dev-user: %v, want an error without the password", err)
	}
}

// TestServeDevEndToEnd runs what `serve --dev` runs, on a free loopback
// port: the broker and the validating server on one mux, then a login
// through the broker's form and calls to the server with the token. The
// server is the ordinary package server pointed at the broker's issuer.
func TestServeDevEndToEnd(t *testing.T) {
	base, issuer, stderr := startDev(t, "--dev-token-ttl", "1m")
	if issuer != base+"/realms/pbench-server" {
		t.Fatalf("issuer = %s, want %s/realms/pbench-server", issuer, base)
	}

	banner := stderr.String()
	for _, want := range []string{"DEVELOPMENT BROKER — in-memory, not for production", issuer,
		"admin / password admin (roles ADMIN)", "user / password user (no roles)", "access 1m0s"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}

	// /api/v1/endpoints answers like Pbench + Keycloak.
	var ep struct {
		OpenID struct{ Server, Realm, Client, Issuer string } `json:"openid"`
	}
	getJSON(t, base+"/api/v1/endpoints", "", http.StatusOK, &ep)
	if ep.OpenID.Server != base || ep.OpenID.Realm != "pbench-server" || ep.OpenID.Client != "pbench-client" || ep.OpenID.Issuer != issuer {
		t.Errorf("endpoints openid = %+v", ep.OpenID)
	}

	for _, tc := range []struct {
		user, pass string
		roles      []string
	}{
		{"admin", "admin", []string{"ADMIN"}},
		{"user", "user", nil},
	} {
		token := devLogin(t, issuer, tc.user, tc.pass)
		var id server.Identity
		getJSON(t, base+"/api/v1/user", token, http.StatusOK, &id)
		if id.Username != tc.user || id.Email != tc.user+"@example.com" || id.Subject == "" {
			t.Errorf("identity of %s = %+v", tc.user, id)
		}
		if got := slices.Contains(id.Roles, "ADMIN"); got != slices.Contains(tc.roles, "ADMIN") {
			t.Errorf("%s has roles %v, want ADMIN: %v", tc.user, id.Roles, !got)
		}
	}
	getJSON(t, base+"/api/v1/user", "not-a-token", http.StatusUnauthorized, nil)

	// A plain `serve` elsewhere, pointed at the dev broker's issuer and
	// requiring ADMIN, accepts the same tokens: nothing is special-cased.
	plain := server.DefaultConfig()
	plain.Issuer = issuer
	plain.RequireRoles = []string{"/api/v1/user=ADMIN"}
	plainSrv, err := server.New(t.Context(), plain)
	if err != nil {
		t.Fatal(err)
	}
	other := httptest.NewServer(plainSrv.Handler())
	defer other.Close()
	waitReady(t, plainSrv)
	getJSON(t, other.URL+"/api/v1/user", devLogin(t, issuer, "admin", "admin"), http.StatusOK, nil)
	getJSON(t, other.URL+"/api/v1/user", devLogin(t, issuer, "user", "user"), http.StatusForbidden, nil)
}

// waitReady waits until srv has loaded the broker's keys: New returns
// before the first key fetch ends, and a call before it is a 503.
func waitReady(t *testing.T, srv *server.Server) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ok, reason := srv.Ready()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server never became ready: %s", reason)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startDev runs what `serve --dev ARGS` runs on a free loopback port: the
// broker and the validating server on one mux. It returns the server's base
// URL and the broker's issuer once the server has the broker's keys, and
// what serve printed.
func startDev(t *testing.T, args ...string) (base, issuer string, stderr *testutil.SyncBuffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts := parse(t, append([]string{"--dev"}, args...)...)
	stderr = &testutil.SyncBuffer{}
	opts.IO = &cmdutil.IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: stderr}

	mux := http.NewServeMux()
	issuer, err = setupDev(t.Context(), opts, ln.Addr(), mux)
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.DefaultConfig()
	cfg.Issuer = issuer
	srv, err := server.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/", srv.Handler())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	waitReady(t, srv)
	return "http://" + ln.Addr().String(), issuer, stderr
}

// devLogin runs the code flow with PKCE against the dev broker, as the CLI does.
func devLogin(t *testing.T, issuer, user, pass string) string {
	t.Helper()
	conf := &oauth2.Config{
		ClientID:    "pbench-client",
		Endpoint:    oauth2.Endpoint{AuthURL: issuer + "/protocol/openid-connect/auth", TokenURL: issuer + "/protocol/openid-connect/token"},
		RedirectURL: "http://127.0.0.1:1/callback",
		Scopes:      []string{"openid"},
	}
	verifier := oauth2.GenerateVerifier()
	redirect, err := devbrowser.Login(t.Context(), http.DefaultClient, conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), user, pass)
	if err != nil {
		t.Fatalf("login as %s: %v", user, err)
	}
	u, err := url.Parse(redirect)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := conf.Exchange(t.Context(), u.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	return tok.AccessToken
}

func getJSON(t *testing.T, u, token string, wantStatus int, v any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != wantStatus {
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		t.Fatalf("GET %s: %d %s, want %d", u, resp.StatusCode, body.String(), wantStatus)
	}
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDevFlagsNeedDev(t *testing.T) {
	for _, args := range [][]string{
		{"--dev-user", "ann:pw"},
		{"--dev-realm", "r1"},
		{"--dev-allow-remote"},
	} {
		opts := parse(t, append([]string{"--issuer", "https://sso.example.com/realms/x"}, args...)...)
		err := run(t.Context(), opts)
		var ue *cmdutil.UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), args[0]+" only applies with --dev") {
			t.Errorf("%v without --dev: %v, want a usage error naming the flag", args, err)
		}
	}
}

func TestListenAddressInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = busy.Close() }()
	opts := parse(t, "--dev", "--listen", busy.Addr().String())
	err = run(t.Context(), opts)
	if err == nil || !strings.Contains(err.Error(), "in use by another process") || !strings.Contains(err.Error(), "--listen") {
		t.Fatalf("serve on a busy port: %v, want the in-use message naming --listen", err)
	}
}

// serve --dev registers its own dashboard (<origin>/dashboard/*) as a
// redirect URI and its origin as a web origin of the public client, with the
// flags' and the realm file's on top.
func TestDevClientSettings(t *testing.T) {
	remote := &net.TCPAddr{IP: net.ParseIP("192.0.2.10"), Port: 8080}
	realm := filepath.Join(t.TempDir(), "realm.yaml")
	if err := os.WriteFile(realm, []byte("users:\n  - {username: ann, password: ann-pw, roles: [ADMIN]}\n"+
		"client:\n  redirectUris: [\"https://file.example/*\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := parse(t, "--dev", "--dev-allow-remote", "--dev-realm-file", realm,
		"--dev-redirect-uri", "http://localhost:3000/*", "--dev-web-origin", "http://localhost:3000")
	stderr := &testutil.SyncBuffer{}
	opts.IO = &cmdutil.IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: stderr}
	mux := http.NewServeMux()
	issuer, err := setupDev(t.Context(), opts, remote, mux)
	if err != nil {
		t.Fatal(err)
	}
	banner := stderr.String()
	for _, want := range []string{"http://192.0.2.10:8080/dashboard/*", "http://localhost:3000/*", "https://file.example/*",
		"web origins: http://192.0.2.10:8080, http://localhost:3000", "ann / password ann-pw (roles ADMIN)"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	if strings.Contains(banner, "admin / password") {
		t.Errorf("the realm file's users did not replace the default ones:\n%s", banner)
	}
	for redirect, ok := range map[string]bool{
		"http://192.0.2.10:8080/dashboard/":      true,
		"http://192.0.2.10:8080/dashboard/x?y=1": true,
		"http://192.0.2.10:8080/api/v1/user":     false,
		"http://localhost:3000/app":              true,
		"https://file.example/cb":                true,
		"https://elsewhere.example/cb":           false,
	} {
		q := url.Values{"client_id": {"pbench-client"}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {redirect}}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, issuer+"/protocol/openid-connect/auth?"+q.Encode(), nil))
		accepted := rec.Code == http.StatusFound && strings.Contains(rec.Header().Get("Location"), "/login-actions/")
		if accepted != ok {
			t.Errorf("redirect_uri %s: %d %s, accepted %v, want %v", redirect, rec.Code, rec.Header().Get("Location"), accepted, ok)
		}
	}
	for origin, ok := range map[string]bool{"http://192.0.2.10:8080": true, "http://localhost:3000": true, "http://localhost:3001": false} {
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, issuer+"/protocol/openid-connect/token",
			strings.NewReader("grant_type=refresh_token&client_id=pbench-client&refresh_token=x"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if got := rec.Header().Get("Access-Control-Allow-Origin") == origin; got != ok {
			t.Errorf("CORS for %s: %v, want %v", origin, got, ok)
		}
	}

	both := parse(t, "--dev", "--dev-realm-file", realm, "--dev-user", "bob:pw")
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}
	var ue *cmdutil.UsageError
	if _, err := setupDev(t.Context(), both, local, http.NewServeMux()); !errors.As(err, &ue) {
		t.Errorf("users in the realm file and --dev-user: %v, want a usage error", err)
	}
	bad := parse(t, "--dev", "--dev-redirect-uri", "http://a*b/")
	if _, err := setupDev(t.Context(), bad, local, http.NewServeMux()); !errors.As(err, &ue) {
		t.Errorf("a bad --dev-redirect-uri: %v, want a usage error", err)
	}
	if err := checkDevFlags(parse(t, "--dev-web-origin", "http://localhost:3000")); err == nil {
		t.Error("--dev-web-origin without --dev was accepted")
	}
}
