package login_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/brokertest"
	"github.com/distributed-system-analysis/pbench-auth/pkg/discovery"
	"github.com/distributed-system-analysis/pbench-auth/pkg/login"
	"github.com/distributed-system-analysis/pbench-auth/server/devbroker"
	"github.com/distributed-system-analysis/pbench-auth/server/devbroker/devbrowser"
)

const (
	user     = "alice"
	password = "alice-pw"
)

// startBroker runs the development broker (a real OpenID Provider, zitadel
// op) on a loopback httptest server and discovers it.
func startBroker(t *testing.T) *discovery.Broker {
	t.Helper()
	b := brokertest.Start(t, devbroker.User{Name: user, Password: password, Roles: []string{"ADMIN"}})
	broker, err := discovery.Discover(context.Background(), b.Server.Client(), b.Issuer(), b.ClientID())
	if err != nil {
		t.Fatal(err)
	}
	return broker
}

// syncBuffer is a Prompt or trace written by the login's goroutines.
type syncBuffer struct{ testutil.SyncBuffer }

func (s *syncBuffer) Tracef(format string, args ...any) {
	_, _ = io.WriteString(s, "* "+strings.TrimSpace(fmt.Sprintf(format, args...))+"\n")
}

// browser is a stand-in that logs in through the broker's form and delivers
// the redirect to the loopback listener, as a real browser would. It records
// what it saw for the assertions. edit, when set, changes the authorization
// URL first (to tamper with the request).
type browser struct {
	t    *testing.T
	edit func(u *url.URL)

	mu       sync.Mutex
	authURL  string
	callback string
	status   int
}

func (b *browser) open(authURL string) error {
	b.mu.Lock()
	b.authURL = authURL
	b.mu.Unlock()
	u, err := url.Parse(authURL)
	if err != nil {
		return err
	}
	if b.edit != nil {
		b.edit(u)
	}
	loc, err := devbrowser.Login(context.Background(), nil, u.String(), user, password)
	if err != nil {
		b.t.Errorf("devbrowser: %v", err)
		return nil
	}
	status := deliver(b.t, loc)
	b.mu.Lock()
	b.callback, b.status = loc, status
	b.mu.Unlock()
	return nil
}

// deliver GETs the redirect on the loopback listener and returns the status.
func deliver(t *testing.T, loc string) int {
	resp, err := http.Get(loc) // #nosec G107 -- the test's own listener
	if err != nil {
		t.Errorf("callback: %v", err)
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

func TestAuthCodeLogin(t *testing.T) {
	broker := startBroker(t)
	br := &browser{t: t}
	prompt, trace := &syncBuffer{}, &syncBuffer{}
	res, err := login.Login(context.Background(), login.Options{
		Broker:      broker,
		Server:      "https://pbench.example.com",
		ExtraScopes: []string{"roles", "email", ""},
		Browser:     br.open,
		Prompt:      prompt,
		Tracef:      trace.Tracef,
	})
	if err != nil {
		t.Fatalf("login: %v\nprompt: %s", err, prompt)
	}

	// The request: PKCE S256, state, nonce, our scopes, a loopback redirect.
	u, _ := url.Parse(br.authURL)
	q := u.Query()
	if got := u.Scheme + "://" + u.Host + u.Path; got != broker.Metadata.AuthorizationEndpoint {
		t.Errorf("browser sent to %s, want the broker's authorization endpoint %s", got, broker.Metadata.AuthorizationEndpoint)
	}
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if len(q.Get(k)) < 20 {
			t.Errorf("%s = %q, want a random value", k, q.Get(k))
		}
	}
	if q.Get("code_challenge_method") != "S256" || q.Get("client_id") != broker.ClientID || q.Get("response_type") != "code" {
		t.Errorf("authorization request %v", q)
	}
	if q.Get("scope") != "openid profile email roles" {
		t.Errorf("scope %q, want the defaults plus roles, each once", q.Get("scope"))
	}
	redirect, _ := url.Parse(q.Get("redirect_uri"))
	host, _, _ := net.SplitHostPort(redirect.Host)
	if host != "127.0.0.1" || redirect.Path != login.CallbackPath {
		t.Errorf("redirect_uri %s, want http://127.0.0.1:PORT%s", redirect, login.CallbackPath)
	}
	if br.status != http.StatusOK {
		t.Errorf("callback answered %d, want 200", br.status)
	}

	// The result: verified user and a complete token set.
	if res.User.PreferredUsername != user || res.User.Email != user+"@example.com" || res.User.Subject == "" {
		t.Errorf("user %+v", res.User)
	}
	ts := res.Tokens
	if ts.AccessToken == "" || ts.RefreshToken == "" || ts.IDToken == "" {
		t.Error("a token is missing from the token set")
	}
	if ts.Server != "https://pbench.example.com" || ts.Issuer != broker.Issuer || ts.ClientID != broker.ClientID ||
		ts.TokenEndpoint != broker.Metadata.TokenEndpoint || ts.RevocationEndpoint != broker.Metadata.RevocationEndpoint ||
		ts.EndSessionEndpoint != broker.Metadata.EndSessionEndpoint {
		t.Errorf("token set addresses: server %q issuer %q client %q token %q revoke %q end %q",
			ts.Server, ts.Issuer, ts.ClientID, ts.TokenEndpoint, ts.RevocationEndpoint, ts.EndSessionEndpoint)
	}
	if until := time.Until(ts.Expiry); until <= 0 || until > devbroker.DefaultAccessTTL {
		t.Errorf("access expiry in %s, want within the broker's %s", until, devbroker.DefaultAccessTTL)
	}
	if until := time.Until(ts.RefreshExpiry); until <= 0 || until > devbroker.DefaultRefreshTTL {
		t.Errorf("refresh expiry in %s: refresh_expires_in was not kept", until)
	}

	// The trace names each step and never a secret.
	out := trace.String()
	for _, step := range []string{"listening on http://127.0.0.1:", "authorization URL", "callback received",
		"exchanging the code", "token response", "id_token verified"} {
		if !strings.Contains(out, step) {
			t.Errorf("trace lacks %q:\n%s", step, out)
		}
	}
	cb, _ := url.Parse(br.callback)
	for name, secret := range map[string]string{
		"access token": ts.AccessToken, "refresh token": ts.RefreshToken, "id token": ts.IDToken,
		"code": cb.Query().Get("code"), "state": q.Get("state"), "nonce": q.Get("nonce"), "code_challenge": q.Get("code_challenge"),
	} {
		if secret == "" {
			t.Errorf("%s is empty: the leak check would prove nothing", name)
		}
		if strings.Contains(out, secret) || strings.Contains(prompt.String(), secret) {
			t.Errorf("the %s appears in the trace or prompt", name)
		}
	}
}

// A callback with another state (a stale tab, another program) must get an
// error page, be reported, and leave the login waiting for its own callback.
func TestWrongStateCallbackIsIgnored(t *testing.T) {
	broker := startBroker(t)
	br := &browser{t: t}
	var forged int
	var forgedBody string
	prompt := &syncBuffer{}
	res, err := login.Login(context.Background(), login.Options{
		Broker: broker,
		Browser: func(authURL string) error {
			u, _ := url.Parse(authURL)
			redirect := u.Query().Get("redirect_uri")
			resp, err := http.Get(redirect + "?code=forged-code&state=not-this-login") // #nosec G107 -- test listener
			if err != nil {
				t.Errorf("forged callback: %v", err)
				return nil
			}
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			forged, forgedBody = resp.StatusCode, string(b)
			return br.open(authURL)
		},
		Prompt: prompt,
	})
	if err != nil {
		t.Fatalf("the real login should still complete: %v", err)
	}
	if res.User.PreferredUsername != user {
		t.Errorf("logged in as %+v", res.User)
	}
	if forged != http.StatusBadRequest || !strings.Contains(forgedBody, "ignored") {
		t.Errorf("forged callback answered %d %q, want 400 with an error page", forged, forgedBody)
	}
	if !strings.Contains(prompt.String(), "wrong state") {
		t.Errorf("the user was not told about the foreign callback: %q", prompt)
	}
}

// The id_token must carry this login's nonce: a broker answering another
// request (here: the browser was sent with a different nonce) is refused.
func TestWrongNonceRefused(t *testing.T) {
	broker := startBroker(t)
	br := &browser{t: t, edit: func(u *url.URL) {
		q := u.Query()
		q.Set("nonce", "nonce-of-another-request")
		u.RawQuery = q.Encode()
	}}
	res, err := login.Login(context.Background(), login.Options{Broker: broker, Browser: br.open})
	if !errors.Is(err, login.ErrNonceMismatch) {
		t.Fatalf("got %v, %v; want ErrNonceMismatch", res, err)
	}
	if res != nil {
		t.Error("a result was returned with the error")
	}
	if !strings.Contains(err.Error(), "nothing was stored") {
		t.Errorf("error %q does not say nothing was stored", err)
	}
}

// The id_token's exp is checked against the injected clock.
func TestExpiredIDTokenRefused(t *testing.T) {
	broker := startBroker(t)
	br := &browser{t: t}
	_, err := login.Login(context.Background(), login.Options{
		Broker:  broker,
		Browser: br.open,
		Now:     func() time.Time { return time.Now().Add(24 * time.Hour) },
	})
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("got %v, want an expired id_token refused", err)
	}
}

func TestTimeout(t *testing.T) {
	broker := startBroker(t)
	_, err := login.Login(context.Background(), login.Options{
		Broker:  broker,
		Browser: func(string) error { return nil }, // the user never finishes
		Timeout: 50 * time.Millisecond,
	})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "login timed out after 50ms") || !strings.Contains(err.Error(), "--device") {
		t.Fatalf("got %v, want a timeout that says what to do", err)
	}
}

func TestInterrupted(t *testing.T) {
	broker := startBroker(t)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := login.Login(ctx, login.Options{
		Broker:  broker,
		Browser: func(string) error { cancel(); return nil }, // Ctrl-C while waiting
	})
	if !errors.Is(err, login.ErrInterrupted) {
		t.Fatalf("got %v, want login.ErrInterrupted (exit 130)", err)
	}
}

// Without a browser, the broker's authorization URL (not the loopback one)
// is printed, and the login waits for it to be used.
func TestNoBrowserPrintsBrokerURL(t *testing.T) {
	broker := startBroker(t)
	prompt := &urlWatcher{found: make(chan string, 1)}
	done := make(chan error, 1)
	go func() {
		_, err := login.Login(context.Background(), login.Options{Broker: broker, Prompt: prompt})
		done <- err
	}()
	printed := <-prompt.found
	if !strings.HasPrefix(printed, broker.Metadata.AuthorizationEndpoint+"?") {
		t.Errorf("printed %q, want the broker's authorization URL", printed)
	}
	(&browser{t: t}).open(printed) //nolint:errcheck // errors are reported through t
	if err := <-done; err != nil {
		t.Fatalf("login: %v", err)
	}
}

// urlWatcher is a Prompt that hands over the first URL printed on its own line.
type urlWatcher struct {
	syncBuffer
	found chan string
	once  sync.Once
}

func (w *urlWatcher) Write(p []byte) (int, error) {
	for _, line := range strings.Split(string(p), "\n") {
		if s := strings.TrimSpace(line); strings.HasPrefix(s, "http") {
			w.once.Do(func() { w.found <- s })
		}
	}
	return w.syncBuffer.Write(p)
}

func TestListenAddressFallsThrough(t *testing.T) {
	broker := startBroker(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = busy.Close() }()

	br := &browser{t: t}
	prompt := &syncBuffer{}
	_, err = login.Login(context.Background(), login.Options{
		Broker:          broker,
		ListenAddresses: []string{busy.Addr().String(), "127.0.0.1:0"},
		Browser:         br.open,
		Prompt:          prompt,
	})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if !strings.Contains(prompt.String(), "cannot listen on "+busy.Addr().String()) {
		t.Errorf("the busy address was not reported: %q", prompt)
	}
	u, _ := url.Parse(br.authURL)
	redirect, _ := url.Parse(u.Query().Get("redirect_uri"))
	if redirect.Host == busy.Addr().String() || !strings.HasPrefix(redirect.Host, "127.0.0.1:") {
		t.Errorf("redirect_uri %s, want another port on 127.0.0.1", redirect)
	}

	_, err = login.Login(context.Background(), login.Options{
		Broker:          broker,
		ListenAddresses: []string{busy.Addr().String()},
		Browser:         br.open,
	})
	if err == nil || !strings.Contains(err.Error(), "cannot listen on any --listen-address") {
		t.Fatalf("got %v, want every address in use reported", err)
	}
}

func TestListenAddressMustBeLoopback(t *testing.T) {
	broker := startBroker(t)
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:8000", "example.com:8000", "127.0.0.1", "127.0.0.1:http"} {
		_, err := login.Login(context.Background(), login.Options{
			Broker:          broker,
			ListenAddresses: []string{addr},
			Browser:         func(string) error { t.Errorf("%s: a browser was opened", addr); return nil },
		})
		if !errors.Is(err, login.ErrInvalidListenAddress) || !strings.Contains(err.Error(), "--listen-address") {
			t.Errorf("%s: got %v, want login.ErrInvalidListenAddress (a usage error, exit 2)", addr, err)
		}
	}
}

// A broker that lists PKCE methods without S256 gets no code_challenge.
func TestNoPKCEWhenBrokerRulesItOut(t *testing.T) {
	broker := startBroker(t)
	broker.Metadata.CodeChallengeMethodsSupported = []string{"plain"}
	ctx, cancel := context.WithCancel(context.Background())
	var authURL string
	_, _ = login.Login(ctx, login.Options{
		Broker:  broker,
		Browser: func(u string) error { authURL = u; cancel(); return nil },
	})
	u, err := url.Parse(authURL)
	if err != nil || u.Query().Get("state") == "" {
		t.Fatalf("no authorization URL seen: %q", authURL)
	}
	if u.Query().Has("code_challenge") || u.Query().Has("code_challenge_method") {
		t.Errorf("PKCE sent to a broker without S256: %s", authURL)
	}
}

func TestDeviceLogin(t *testing.T) {
	broker := startBroker(t)
	prompt, trace := &syncBuffer{}, &syncBuffer{}
	var opened string
	res, err := login.Login(context.Background(), login.Options{
		Broker: broker,
		Device: true,
		Browser: func(uri string) error {
			opened = uri
			go func() {
				if err := devbrowser.ApproveDevice(context.Background(), nil, uri, "", user, password); err != nil {
					t.Errorf("approve: %v", err)
				}
			}()
			return nil
		},
		Prompt: prompt,
		Tracef: trace.Tracef,
	})
	if err != nil {
		t.Fatalf("device login: %v\n%s", err, prompt)
	}
	if res.User.PreferredUsername != user || res.Tokens.RefreshToken == "" {
		t.Errorf("user %+v, refresh token present %v", res.User, res.Tokens.RefreshToken != "")
	}
	if !strings.HasPrefix(opened, broker.Issuer) {
		t.Errorf("opened %q, want the broker's verification URI", opened)
	}
	if !strings.Contains(prompt.String(), "enter the code") {
		t.Errorf("the user code was not shown: %q", prompt)
	}
	if !strings.Contains(trace.String(), "polling") || strings.Contains(trace.String(), res.Tokens.AccessToken) {
		t.Errorf("trace: %s", trace)
	}
}

func TestDeviceNotOffered(t *testing.T) {
	broker := startBroker(t)
	broker.Metadata.DeviceAuthorizationEndpoint = ""
	_, err := login.Login(context.Background(), login.Options{Broker: broker, Device: true})
	if err == nil || !strings.Contains(err.Error(), "does not offer device login") {
		t.Fatalf("got %v", err)
	}
}

func TestIdentityString(t *testing.T) {
	tests := []struct {
		id   login.Identity
		want string
	}{
		{login.Identity{Subject: "s", PreferredUsername: "alice", Email: "alice@example.com"}, "alice <alice@example.com>"},
		{login.Identity{Subject: "s", PreferredUsername: "alice@example.com", Email: "alice@example.com"}, "alice@example.com"},
		{login.Identity{Subject: "s", Email: "bob@example.com"}, "bob@example.com"},
		{login.Identity{Subject: "1234"}, "1234"},
	}
	for _, tt := range tests {
		if got := tt.id.String(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.id, got, tt.want)
		}
	}
}

// The broker's error redirect (here: the dev broker, like Keycloak, answers
// prompt=none without a browser session with login_required) ends the login
// with the broker's words.
func TestBrokerRefusal(t *testing.T) {
	broker := startBroker(t)
	_, err := login.Login(context.Background(), login.Options{
		Broker: broker,
		Browser: func(authURL string) error {
			u, _ := url.Parse(authURL)
			q := u.Query()
			q.Set("prompt", "none")
			u.RawQuery = q.Encode()
			loc, err := devbrowser.Login(context.Background(), nil, u.String(), user, password)
			if err == nil || loc == "" {
				t.Errorf("the broker answered prompt=none without a session with %q, %v; want an error redirect", loc, err)
			}
			if loc != "" {
				deliver(t, loc)
			}
			return nil
		},
		Timeout: time.Minute,
	})
	if err == nil || !strings.HasPrefix(err.Error(), "the broker refused the login: login_required") {
		t.Fatalf("got %v, want the broker's refusal in words", err)
	}
}

// The listener is reachable on loopback only: while the login waits, its
// port answers on 127.0.0.1 and not on this machine's other addresses.
func TestListenerIsLoopbackOnly(t *testing.T) {
	var external net.IP
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			external = n.IP
			break
		}
	}
	broker := startBroker(t)
	br := &browser{t: t}
	_, err := login.Login(context.Background(), login.Options{
		Broker: broker,
		Browser: func(authURL string) error {
			u, _ := url.Parse(authURL)
			redirect, _ := url.Parse(u.Query().Get("redirect_uri"))
			if c, err := net.Dial("tcp", redirect.Host); err != nil {
				t.Errorf("the listener does not answer on %s: %v", redirect.Host, err)
			} else {
				_ = c.Close()
			}
			if external != nil {
				other := net.JoinHostPort(external.String(), redirect.Port())
				if c, err := net.Dial("tcp", other); err == nil {
					_ = c.Close()
					t.Errorf("the listener answers on %s, reachable from other machines", other)
				}
			} else {
				t.Log("no non-loopback IPv4 address here: only the loopback side is checked")
			}
			return br.open(authURL)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
}
