package login_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/brokertest"
	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/clitest"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/root"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
	"github.com/distributed-system-analysis/pbench-auth/server/devbroker"
	"github.com/distributed-system-analysis/pbench-auth/server/devbroker/devbrowser"
)

// fixture is a Pbench-shaped server: /api/v1/endpoints naming the
// development broker (a real OpenID Provider) mounted at /realms/pbench-server,
// Keycloak-style, on the same loopback test server.
type fixture struct {
	t       *testing.T
	server  string
	issuer  string
	f       *cmdutil.Factory
	errOut  *lockedBuffer
	out     *bytes.Buffer
	opened  []string
	tamper  func(*url.URL) // changes the authorization URL before the browser follows it
	browser func(string) error
}

// lockedBuffer is stderr, written by the login's goroutines.
type lockedBuffer struct {
	testutil.SyncBuffer
	// urls receives each line that is a URL, when not nil.
	urls chan string
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	if l.urls != nil {
		for _, line := range strings.Split(string(p), "\n") {
			if s := strings.TrimSpace(line); strings.HasPrefix(s, "http") {
				l.urls <- s
			}
		}
	}
	return l.SyncBuffer.Write(p)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	fx := &fixture{t: t}
	b := brokertest.Start(t, devbroker.User{Name: "alice", Password: "alice-pw"})
	srv := b.Server
	b.Mux.HandleFunc("GET /api/v1/endpoints", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"identification":"Pbench server","openid":{"server":"`+srv.URL+`","realm":"pbench-server","client":"pbench-client"}}`)
	})
	fx.server, fx.issuer = srv.URL, b.Issuer()

	fx.f, fx.out, _ = clitest.Factory(t, srv.Client(), nil)
	fx.errOut = &lockedBuffer{}
	fx.f.IO.ErrOut = fx.errOut
	fx.browser = fx.follow
	fx.f.OpenBrowser = func(u string) error { fx.opened = append(fx.opened, u); return fx.browser(u) }
	return fx
}

// follow is the browser: it logs alice in at the broker and delivers the
// redirect to the CLI's loopback listener.
func (fx *fixture) follow(authURL string) error {
	u, _ := url.Parse(authURL)
	if fx.tamper != nil {
		fx.tamper(u)
	}
	loc, err := devbrowser.Login(context.Background(), nil, u.String(), "alice", "alice-pw")
	if err != nil {
		fx.t.Errorf("devbrowser: %v", err)
		return nil
	}
	resp, err := http.Get(loc) // #nosec G107 -- the CLI's loopback listener
	if err != nil {
		fx.t.Errorf("callback: %v", err)
		return nil
	}
	_ = resp.Body.Close()
	return nil
}

func (fx *fixture) login(args ...string) (int, error) {
	cmd := root.NewCmd(fx.f)
	cmd.SetArgs(append([]string{"login", "--token-store", "file"}, args...))
	err := cmd.Execute()
	return cmdutil.ExitCode(err), err
}

func (fx *fixture) store() tokenstore.Store {
	s, err := fx.f.TokenStore("file")
	if err != nil {
		fx.t.Fatal(err)
	}
	return s
}

func TestLogin(t *testing.T) {
	fx := newFixture(t)
	if code, err := fx.login("--server", fx.server+"/", "-v"); code != 0 {
		t.Fatalf("exit %d: %v\n%s", code, err, fx.errOut)
	}
	profile := fx.server // normalised: no trailing slash
	ts, err := fx.store().Load(profile)
	if err != nil {
		t.Fatalf("nothing stored for %s: %v", profile, err)
	}
	if ts.Server != profile || ts.Issuer != fx.issuer || ts.ClientID != "pbench-client" || ts.AccessToken == "" || ts.IDToken == "" {
		t.Errorf("stored server %q issuer %q client %q, tokens present %v", ts.Server, ts.Issuer, ts.ClientID, ts.AccessToken != "")
	}
	files, _ := filepath.Glob(filepath.Join(fx.f.StateDir(), "*"))
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil && !fi.IsDir() && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}

	stderr := fx.errOut.String()
	where := fx.store().Location(profile)
	if !strings.Contains(stderr, "Logged in to "+profile+" as alice <alice@example.com>.") ||
		!strings.Contains(stderr, "Tokens are kept in "+where) {
		t.Errorf("stderr does not say who logged in and where the tokens are:\n%s", stderr)
	}
	if fx.out.Len() != 0 {
		t.Errorf("stdout is for data, got %q", fx.out)
	}
	steps := []string{"* GET " + fx.server + "/api/v1/endpoints", "the server names broker " + fx.issuer + " and client pbench-client",
		"* discovery: authorization " + fx.issuer, "* listening on http://127.0.0.1:", "* authorization URL", "* callback received",
		"* exchanging the code", "* token response", "* id_token verified", "* tokens stored for profile " + profile}
	last := -1
	for _, s := range steps {
		i := strings.Index(stderr, s)
		if i < 0 {
			t.Errorf("-v trace lacks %q", s)
			continue
		}
		if i < last {
			t.Errorf("-v step %q is out of order", s)
		}
		last = i
	}
	for name, secret := range map[string]string{"access": ts.AccessToken, "refresh": ts.RefreshToken, "id": ts.IDToken} {
		if secret == "" || strings.Contains(stderr, secret) {
			t.Errorf("%s token missing, or printed on stderr", name)
		}
	}
	if len(fx.opened) != 1 || !strings.HasPrefix(fx.opened[0], fx.issuer+"/protocol/openid-connect/auth?") {
		t.Errorf("browser opened %v, want the broker's authorization URL once", fx.opened)
	}
}

func TestLoginWrongNonceStoresNothing(t *testing.T) {
	fx := newFixture(t)
	fx.tamper = func(u *url.URL) {
		q := u.Query()
		q.Set("nonce", "another-login")
		u.RawQuery = q.Encode()
	}
	code, err := fx.login("--server", fx.server)
	if code != cmdutil.ExitFailure || err == nil || !strings.Contains(err.Error(), "nonce") {
		t.Fatalf("exit %d: %v; want a refused nonce", code, err)
	}
	if profiles, err := fx.store().List(); err != nil || len(profiles) != 0 {
		t.Errorf("stored %v (%v) after a refused login", profiles, err)
	}
}

func TestLoginIssuerDirect(t *testing.T) {
	fx := newFixture(t)
	if code, err := fx.login("--issuer", fx.issuer, "--client-id", "pbench-client"); code != 0 {
		t.Fatalf("exit %d: %v\n%s", code, err, fx.errOut)
	}
	ts, err := fx.store().Load(fx.issuer)
	if err != nil {
		t.Fatalf("no profile named after the issuer: %v", err)
	}
	if ts.Server != "" || ts.Issuer != fx.issuer {
		t.Errorf("server %q issuer %q", ts.Server, ts.Issuer)
	}
}

func TestLoginNoBrowser(t *testing.T) {
	fx := newFixture(t)
	fx.errOut.urls = make(chan string, 4)
	go func() {
		if err := fx.follow(<-fx.errOut.urls); err != nil {
			t.Error(err)
		}
	}()
	if code, err := fx.login("--server", fx.server, "--no-browser"); code != 0 {
		t.Fatalf("exit %d: %v\n%s", code, err, fx.errOut)
	}
	if len(fx.opened) != 0 {
		t.Errorf("--no-browser opened %v", fx.opened)
	}
	if !strings.Contains(fx.errOut.String(), fx.issuer+"/protocol/openid-connect/auth?") {
		t.Errorf("the broker's URL was not printed:\n%s", fx.errOut)
	}
}

func TestLoginServerUnreachable(t *testing.T) {
	fx := newFixture(t)
	code, err := fx.login("--server", "http://"+testutil.ReserveAddr(t)) // nothing listens there
	if code != cmdutil.ExitNetwork {
		t.Fatalf("exit %d (%v), want %d", code, err, cmdutil.ExitNetwork)
	}
	if len(fx.opened) != 0 {
		t.Error("a browser was opened")
	}
}

func TestLoginUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--issuer", "https://sso.example.com/realms/x"}, "--issuer and --client-id go together"},
		{[]string{"--client-id", "c"}, "--issuer and --client-id go together"},
		{[]string{"--issuer", "https://i", "--client-id", "c", "--server", "https://p"}, "either --server or --issuer"},
		{[]string{"--server", "https://p", "--no-browser", "--browser-command", "firefox"}, "contradict"},
		{[]string{"--server", "https://p", "--device", "--listen-address", "127.0.0.1:8000"}, "--device needs no listener"},
		{[]string{"--server", "https://p", "--timeout", "0s"}, "--timeout must be positive"},
		{[]string{"--server", "https://p", "--browser-command", "no-such-browser-xyz"}, "no-such-browser-xyz"},
		{[]string{"--server", "ftp://p"}, "scheme must be http or https"},
		{[]string{}, "no Pbench server given"},
		{[]string{"--server", "https://p", "--timeout", "soon"}, "invalid argument"},
	}
	for _, tt := range tests {
		fx := newFixture(t)
		code, err := fx.login(tt.args...)
		if code != cmdutil.ExitUsage || err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: exit %d, %v; want exit %d and %q", tt.args, code, err, cmdutil.ExitUsage, tt.want)
		}
	}
}
