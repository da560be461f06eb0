package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
	"github.com/distributed-system-analysis/pbench-auth/pkg/config"
	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

// now is the fake clock of every test; the fake server's Date header is
// derived from it, so skew is exactly what a test sets.
var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fixture is a Pbench server and a Keycloak-shaped broker discovery
// document on one httptest server. Zero fields mean a healthy setup.
type fixture struct {
	srv *httptest.Server

	mu         sync.Mutex
	announce   string        // issuer in /api/v1/endpoints; default the broker's
	discovered string        // issuer in the discovery document; default the broker's
	methods    []string      // code_challenge_methods_supported; nil = S256, plain
	noDevice   bool          // omit device_authorization_endpoint
	skew       time.Duration // server clock minus ours
	endpoints  string        // raw /api/v1/endpoints body, overriding the default
}

func newFixture(t *testing.T) *fixture {
	fx := &fixture{}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/endpoints", func(w http.ResponseWriter, _ *http.Request) {
		fx.mu.Lock()
		defer fx.mu.Unlock()
		w.Header().Set("Date", now.Add(fx.skew).UTC().Format(http.TimeFormat))
		if fx.endpoints != "" {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte(fx.endpoints))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"identification": "Pbench server",
			"openid":         map[string]string{"client": "pbench-client", "issuer": fx.or(fx.announce)},
		})
	})
	mux.HandleFunc("/realms/pbench/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		fx.mu.Lock()
		defer fx.mu.Unlock()
		base := fx.issuer() + "/protocol/openid-connect"
		doc := map[string]any{
			"issuer":                                fx.or(fx.discovered),
			"authorization_endpoint":                base + "/auth",
			"token_endpoint":                        base + "/token",
			"jwks_uri":                              base + "/certs",
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"code_challenge_methods_supported":      []string{"S256", "plain"},
		}
		if fx.methods != nil {
			doc["code_challenge_methods_supported"] = fx.methods
		}
		if !fx.noDevice {
			doc["device_authorization_endpoint"] = base + "/auth/device"
		}
		_ = json.NewEncoder(w).Encode(doc)
	})
	fx.srv = httptest.NewServer(mux)
	t.Cleanup(fx.srv.Close)
	return fx
}

func (fx *fixture) issuer() string { return fx.srv.URL + "/realms/pbench" }

func (fx *fixture) or(s string) string {
	if s == "" {
		return fx.issuer()
	}
	return s
}

func (fx *fixture) set(edit func(*fixture)) {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	edit(fx)
}

// newOptions returns options for doctoring server with a working keyring
// probe, a file store in a temporary directory and the given environment.
func newOptions(t *testing.T, server string, env map[string]string) *Options {
	t.Helper()
	ios, _, _, _ := cmdutil.Test()
	dir := t.TempDir()
	return &Options{
		IO:         ios,
		Now:        func() time.Time { return now },
		Getenv:     func(k string) string { return env[k] },
		HTTPClient: func(string) (*http.Client, error) { return &http.Client{}, nil },
		Server: func(flag string) (string, error) {
			if flag == "" {
				flag = server
			}
			return config.NormalizeServer(flag)
		},
		ProbeKeyring: func() error { return nil },
		OpenStore: func(string) (tokenstore.Store, error) {
			return tokenstore.Open(tokenstore.Options{Kind: tokenstore.KindFile, Dir: dir})
		},
		StateDir: func() string { return dir },
		Flags:    cmdutil.ClientFlags{TokenStore: tokenstore.KindFile},
		JSON:     true,
		Timeout:  5 * time.Second,
	}
}

// saveTokens stores ts for profile in the options' store.
func saveTokens(t *testing.T, opts *Options, profile string, ts *tokenstore.TokenSet) {
	t.Helper()
	s, err := opts.OpenStore(tokenstore.KindFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(profile, ts); err != nil {
		t.Fatal(err)
	}
}

// validTokens are tokens from fx's broker, valid for 5 more minutes.
func validTokens(fx *fixture) *tokenstore.TokenSet {
	return &tokenstore.TokenSet{
		Server: fx.srv.URL, Issuer: fx.issuer(), ClientID: "pbench-client",
		TokenEndpoint: fx.issuer() + "/protocol/openid-connect/token",
		AccessToken:   "access-SECRET-a1", RefreshToken: "refresh-SECRET-r1",
		Expiry: now.Add(5 * time.Minute), RefreshExpiry: now.Add(30 * time.Minute),
	}
}

// doctorRun runs doctor and returns its JSON report, its exit code and the
// raw output.
func doctorRun(t *testing.T, opts *Options) (*Report, int, string) {
	t.Helper()
	err := run(context.Background(), opts)
	out := opts.IO.Out.(*bytes.Buffer).String()
	var rep Report
	if jerr := json.Unmarshal([]byte(out), &rep); jerr != nil {
		t.Fatalf("output is not a JSON report: %v\n%s", jerr, out)
	}
	if err != nil && !errors.Is(err, cmdutil.ErrSilent) {
		t.Fatalf("doctor failed by itself instead of reporting: %v", err)
	}
	return &rep, cmdutil.ExitCode(err), out
}

func check(t *testing.T, rep *Report, name string) Result {
	t.Helper()
	for _, r := range rep.Checks {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no %q check in %+v", name, rep.Checks)
	return Result{}
}

// want asserts a check's status, that its message holds every fragment,
// and that failures and warnings come with a fix.
func want(t *testing.T, rep *Report, name string, status Status, fragments ...string) Result {
	t.Helper()
	r := check(t, rep, name)
	if r.Status != status {
		t.Fatalf("%s: status %s, want %s: %s", name, r.Status, status, r.Message)
	}
	for _, f := range fragments {
		if !strings.Contains(r.Message, f) {
			t.Errorf("%s: message %q lacks %q", name, r.Message, f)
		}
	}
	if (status == StatusFail || status == StatusWarn) && r.Fix == "" {
		t.Errorf("%s: %s without a fix", name, status)
	}
	return r
}

func TestHealthy(t *testing.T) {
	fx := newFixture(t)
	opts := newOptions(t, fx.srv.URL, nil)
	saveTokens(t, opts, fx.srv.URL, validTokens(fx))
	rep, code, out := doctorRun(t, opts)
	for _, r := range rep.Checks {
		if r.Status != StatusOK {
			t.Errorf("%s: %s: %s", r.Name, r.Status, r.Message)
		}
	}
	if code != 0 || !rep.OK || rep.Server != fx.srv.URL {
		t.Fatalf("exit %d, ok %v, server %q; want 0, true, %q", code, rep.OK, rep.Server, fx.srv.URL)
	}
	want(t, rep, "tokens", StatusOK, "valid until", "refresh token valid until")
	if strings.Contains(out, "SECRET") {
		t.Fatalf("the report shows a token:\n%s", out)
	}
}

func TestServerDownBehindProxy(t *testing.T) {
	// The proxy is down: the request fails there, without any DNS lookup.
	proxy := "http://" + testutil.ReserveAddr(t) // nothing listens there
	proxyURL, _ := url.Parse(proxy)
	opts := newOptions(t, "http://pbench.example.com", map[string]string{"HTTP_PROXY": proxy})
	opts.HTTPClient = func(string) (*http.Client, error) {
		return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}, nil
	}
	rep, code, _ := doctorRun(t, opts)
	if code != cmdutil.ExitFailure || rep.OK {
		t.Fatalf("exit %d ok %v, want %d false", code, rep.OK, cmdutil.ExitFailure)
	}
	r := want(t, rep, "server", StatusFail, "cannot reach the Pbench server")
	if !strings.Contains(r.Fix, "through proxy "+proxyURL.Host) {
		t.Errorf("fix %q does not say the request goes through the proxy", r.Fix)
	}
	for _, name := range []string{"clock", "issuer", "pkce", "device"} {
		want(t, rep, name, StatusSkip)
	}
	want(t, rep, "proxy", StatusOK, "server through proxy "+proxyURL.Host)
}

func TestServerUnreachableDirect(t *testing.T) {
	down := "http://" + testutil.ReserveAddr(t) // nothing listens there
	rep, code, _ := doctorRun(t, newOptions(t, down, nil))
	r := want(t, rep, "server", StatusFail, "cannot reach the Pbench server")
	if code != cmdutil.ExitFailure || !strings.Contains(r.Fix, "curl -sS "+down+"/api/v1/endpoints") {
		t.Fatalf("exit %d, fix %q", code, r.Fix)
	}
}

func TestNoServerGiven(t *testing.T) {
	opts := newOptions(t, "", nil)
	opts.Server = func(string) (string, error) {
		return "", cmdutil.Usagef("no Pbench server given: use --server URL")
	}
	rep, code, _ := doctorRun(t, opts)
	want(t, rep, "server", StatusFail, "no Pbench server given")
	want(t, rep, "tokens", StatusSkip)
	want(t, rep, "keyring", StatusOK) // local checks still run
	if code != cmdutil.ExitFailure {
		t.Fatalf("exit %d", code)
	}
}

func TestNotAPbenchServer(t *testing.T) {
	fx := newFixture(t)
	fx.set(func(fx *fixture) { fx.endpoints = "<html>Welcome to the dashboard</html>" })
	rep, code, _ := doctorRun(t, newOptions(t, fx.srv.URL, nil))
	r := want(t, rep, "server", StatusFail, "is not a Pbench server's endpoints document", "not JSON")
	if !strings.Contains(r.Fix, "base URL") || code != cmdutil.ExitFailure {
		t.Fatalf("exit %d, fix %q", code, r.Fix)
	}
	want(t, rep, "issuer", StatusSkip)
	// The answer still had a Date: the clock is checked anyway.
	want(t, rep, "clock", StatusOK)
}

func TestIssuerMismatch(t *testing.T) {
	cases := []struct {
		name       string
		edit       func(fx *fixture)
		difference string
	}{
		{"announced with a trailing slash", func(fx *fixture) { fx.announce = fx.issuer() + "/" },
			"differ only by the announced issuer's trailing slash"},
		{"discovered with a trailing slash", func(fx *fixture) { fx.discovered = fx.issuer() + "/" },
			"differ only by the discovered issuer's trailing slash"},
		{"other host", func(fx *fixture) {
			fx.discovered = strings.Replace(fx.issuer(), "127.0.0.1", "localhost", 1)
		}, "host 127.0.0.1 vs localhost"},
		{"Keycloak 16 path", func(fx *fixture) {
			fx.discovered = fx.srv.URL + "/auth/realms/pbench"
		}, "/auth before /realms"},
		{"https vs http", func(fx *fixture) {
			fx.discovered = strings.Replace(fx.issuer(), "http://", "https://", 1)
		}, "scheme http vs https"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fx := newFixture(t)
			fx.set(c.edit)
			rep, code, _ := doctorRun(t, newOptions(t, fx.srv.URL, nil))
			r := want(t, rep, "issuer", StatusFail, c.difference)
			if !strings.Contains(r.Fix, "announce exactly") || code != cmdutil.ExitFailure {
				t.Fatalf("exit %d, fix %q", code, r.Fix)
			}
			want(t, rep, "pkce", StatusSkip)
		})
	}
}

func TestPKCE(t *testing.T) {
	cases := []struct {
		methods []string
		status  Status
		code    int
	}{
		{[]string{"plain"}, StatusFail, cmdutil.ExitFailure},
		{[]string{}, StatusWarn, 0},
		{[]string{"plain", "S256"}, StatusOK, 0},
	}
	for _, c := range cases {
		fx := newFixture(t)
		fx.set(func(fx *fixture) { fx.methods = c.methods })
		opts := newOptions(t, fx.srv.URL, nil)
		saveTokens(t, opts, fx.srv.URL, validTokens(fx))
		rep, code, _ := doctorRun(t, opts)
		want(t, rep, "pkce", c.status)
		if code != c.code {
			t.Errorf("methods %v: exit %d, want %d", c.methods, code, c.code)
		}
	}
}

func TestNoDeviceGrantIsAWarning(t *testing.T) {
	fx := newFixture(t)
	fx.set(func(fx *fixture) { fx.noDevice = true })
	opts := newOptions(t, fx.srv.URL, nil)
	saveTokens(t, opts, fx.srv.URL, validTokens(fx))
	rep, code, _ := doctorRun(t, opts)
	r := want(t, rep, "device", StatusWarn, "login --device will not work")
	if code != 0 || !rep.OK || !strings.Contains(r.Fix, "--no-browser") {
		t.Fatalf("exit %d ok %v fix %q: a warning alone must exit 0", code, rep.OK, r.Fix)
	}
}

func TestClockSkew(t *testing.T) {
	cases := []struct {
		skew      time.Duration // server minus local
		status    Status
		direction string
	}{
		{10 * time.Second, StatusOK, "within"},
		{-45 * time.Second, StatusWarn, "at least 44s ahead"},
		{45 * time.Second, StatusWarn, "at least 45s behind"},
		{-10 * time.Minute, StatusFail, "9m59s ahead"},
		{10 * time.Minute, StatusFail, "10m0s behind"},
	}
	for _, c := range cases {
		fx := newFixture(t)
		fx.set(func(fx *fixture) { fx.skew = c.skew })
		opts := newOptions(t, fx.srv.URL, nil)
		saveTokens(t, opts, fx.srv.URL, validTokens(fx))
		rep, code, _ := doctorRun(t, opts)
		want(t, rep, "clock", c.status, c.direction)
		if (c.status == StatusFail) != (code == cmdutil.ExitFailure) {
			t.Errorf("skew %s: exit %d", c.skew, code)
		}
	}
}

func TestSkewUncertainty(t *testing.T) {
	// The server truncates Date to the second and stamps it somewhere
	// between our request and its answer: only offsets beyond that count.
	date := now
	cases := []struct {
		sent, received time.Time
		want           time.Duration
	}{
		{date.Add(500 * time.Millisecond), date.Add(600 * time.Millisecond), 0},
		{date.Add(-2 * time.Second), date.Add(3 * time.Second), 0},
		{date.Add(40 * time.Second), date.Add(41 * time.Second), 39 * time.Second},
		{date.Add(-40 * time.Second), date.Add(-39 * time.Second), -39 * time.Second},
	}
	for _, c := range cases {
		p := &clockProbe{sent: c.sent, received: c.received, date: date}
		if got := p.skew(); got != c.want {
			t.Errorf("sent %s received %s: skew %s, want %s", c.sent.Sub(date), c.received.Sub(date), got, c.want)
		}
	}
}

func TestKeyring(t *testing.T) {
	unavailable := func() error {
		return errors.Join(tokenstore.ErrKeyringUnavailable, errors.New("no Secret Service"))
	}
	cases := []struct {
		kind   string
		probe  func() error
		status Status
		msg    string
		tokens Status
	}{
		{tokenstore.KindAuto, func() error { return nil }, StatusOK, "auto keeps tokens there", StatusOK},
		{tokenstore.KindKeyring, unavailable, StatusFail, "cannot hold tokens", StatusSkip},
		{tokenstore.KindAuto, unavailable, StatusWarn, "auto falls back to files", StatusOK},
		{tokenstore.KindFile, unavailable, StatusOK, "not needed", StatusOK},
	}
	for _, c := range cases {
		fx := newFixture(t)
		opts := newOptions(t, fx.srv.URL, nil)
		opts.Flags.TokenStore = c.kind
		opts.ProbeKeyring = c.probe
		// The probe is faked here (the real keyring is in keyring_test.go);
		// the store is the real file store, whatever kind is asked for,
		// and the kinds asked for are recorded.
		file, err := opts.OpenStore(tokenstore.KindFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := file.Save(fx.srv.URL, validTokens(fx)); err != nil {
			t.Fatal(err)
		}
		var opened []string
		opts.OpenStore = func(kind string) (tokenstore.Store, error) {
			opened = append(opened, kind)
			return file, nil
		}
		rep, code, _ := doctorRun(t, opts)
		want(t, rep, "keyring", c.status, c.msg)
		want(t, rep, "tokens", c.tokens)
		wantOpened := map[string]string{tokenstore.KindAuto: "keyring", tokenstore.KindKeyring: "", tokenstore.KindFile: "file"}[c.kind]
		if c.kind == tokenstore.KindAuto && c.probe() != nil {
			wantOpened = "file"
		}
		if strings.Join(opened, ",") != wantOpened {
			t.Errorf("--token-store %s: opened %v, want %q", c.kind, opened, wantOpened)
		}
		if (c.status == StatusFail) != (code == cmdutil.ExitFailure) {
			t.Errorf("--token-store %s: exit %d", c.kind, code)
		}
	}
}

func TestTokenStates(t *testing.T) {
	cases := []struct {
		name   string
		edit   func(ts *tokenstore.TokenSet) // nil: nothing stored
		status Status
		msg    string
	}{
		{"none", nil, StatusFail, "not logged in"},
		{"valid", func(*tokenstore.TokenSet) {}, StatusOK, "logged in: access token valid until"},
		{"refreshable", func(ts *tokenstore.TokenSet) { ts.Expiry = now.Add(-time.Minute) }, StatusOK, "the next command refreshes it"},
		{"refreshable, no stated expiry", func(ts *tokenstore.TokenSet) {
			ts.Expiry, ts.RefreshExpiry = now.Add(-time.Minute), time.Time{}
		}, StatusOK, "no stated expiry"},
		{"refresh expired", func(ts *tokenstore.TokenSet) {
			ts.Expiry, ts.RefreshExpiry = now.Add(-time.Hour), now.Add(-time.Minute)
		}, StatusFail, "session expired"},
		{"expired without refresh token", func(ts *tokenstore.TokenSet) {
			ts.Expiry, ts.RefreshToken = now.Add(-time.Minute), ""
		}, StatusFail, "no refresh token"},
		{"issued by another broker", func(ts *tokenstore.TokenSet) {
			ts.Issuer = "https://old-sso.example.com/realms/pbench"
		}, StatusFail, "server now announces"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fx := newFixture(t)
			opts := newOptions(t, fx.srv.URL, nil)
			if c.edit != nil {
				ts := validTokens(fx)
				c.edit(ts)
				saveTokens(t, opts, fx.srv.URL, ts)
			}
			rep, code, out := doctorRun(t, opts)
			r := want(t, rep, "tokens", c.status, c.msg)
			if c.status == StatusFail && (code != cmdutil.ExitFailure || !strings.Contains(r.Fix, "pbench-auth login --server "+fx.srv.URL)) {
				t.Errorf("exit %d, fix %q", code, r.Fix)
			}
			if c.status == StatusOK && code != 0 {
				t.Errorf("exit %d", code)
			}
			if strings.Contains(out, "SECRET") {
				t.Fatalf("the report shows a token:\n%s", out)
			}
		})
	}
}

func TestProxy(t *testing.T) {
	fx := newFixture(t)
	env := map[string]string{
		"HTTPS_PROXY": "http://bob:hunter2@proxy.example.com:3128",
		"http_proxy":  "http://proxy.example.com:3128",
		"NO_PROXY":    "internal.example.com",
	}
	r := checkProxy(func(k string) string { return env[k] }, "https://pbench.example.com", "https://sso.internal.example.com/realms/x", fx.srv.URL)
	if r.Status != StatusOK || strings.Contains(r.Message, "hunter2") {
		t.Fatalf("%s %q: want ok without the proxy password", r.Status, r.Message)
	}
	for _, f := range []string{"HTTPS_PROXY=http://bob:xxxxx@proxy.example.com:3128", "http_proxy=", "server through proxy proxy.example.com:3128", "broker direct"} {
		if !strings.Contains(r.Message, f) {
			t.Errorf("message %q lacks %q", r.Message, f)
		}
	}

	env = map[string]string{"HTTPS_PROXY": "%zz"}
	r = checkProxy(func(k string) string { return env[k] }, "https://pbench.example.com")
	if r.Status != StatusWarn || r.Fix == "" || !strings.Contains(r.Message, "connects directly") {
		t.Fatalf("invalid proxy: %s %q, want a warning that Go ignores it", r.Status, r.Message)
	}
	r = checkProxy(func(string) string { return "" }, "https://pbench.example.com")
	if r.Status != StatusOK || !strings.Contains(r.Message, "direct") {
		t.Fatalf("no proxy: %s %q", r.Status, r.Message)
	}
}

func TestCustomCA(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "ca.pem")
	fx := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(fx.Close)
	writePEM(t, good, fx.Certificate().Raw)
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		env    map[string]string
		status Status
		msg    string
	}{
		{nil, StatusOK, "system's CA certificates"},
		{map[string]string{"SSL_CERT_FILE": good}, StatusOK, "1 certificates"},
		{map[string]string{"SSL_CERT_FILE": filepath.Join(dir, "missing.pem")}, StatusFail, "no such file"},
		{map[string]string{"SSL_CERT_FILE": empty}, StatusFail, "no PEM certificate"},
		{map[string]string{"SSL_CERT_DIR": good}, StatusFail, "not a directory"},
	}
	for _, c := range cases {
		r := checkCA(func(k string) string { return c.env[k] })
		if r.Status != c.status || !strings.Contains(r.Message, c.msg) {
			t.Errorf("%v: %s %q, want %s with %q", c.env, r.Status, r.Message, c.status, c.msg)
		}
	}
}

func TestUntrustedServerCertificate(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	srv.StartTLS()
	t.Cleanup(srv.Close)
	rep, _, _ := doctorRun(t, newOptions(t, srv.URL, nil))
	r := want(t, rep, "server", StatusFail)
	if !strings.Contains(r.Fix, "--ca-cert FILE") {
		t.Fatalf("fix %q does not point at --ca-cert", r.Fix)
	}
}

func writePEM(t *testing.T, path string, der []byte) {
	t.Helper()
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTextOutput(t *testing.T) {
	fx := newFixture(t)
	fx.set(func(fx *fixture) { fx.noDevice = true })
	for _, tty := range []bool{false, true} {
		opts := newOptions(t, fx.srv.URL, nil)
		opts.JSON = false
		opts.IO.OutTTY = tty
		err := run(context.Background(), opts)
		out := opts.IO.Out.(*bytes.Buffer).String()
		if cmdutil.ExitCode(err) != cmdutil.ExitFailure {
			t.Fatalf("exit %d (not logged in is a failure)", cmdutil.ExitCode(err))
		}
		ok, warn, fail := "ok   server", "warn device", "FAIL tokens"
		if tty {
			ok, warn, fail = "✓ server", "! device", "✗ tokens"
		}
		for _, f := range []string{ok, warn, fail, "fix: run `pbench-auth login --server " + fx.srv.URL + "`", "1 failure, 1 warning"} {
			if !strings.Contains(out, f) {
				t.Errorf("tty=%v: output lacks %q:\n%s", tty, f, out)
			}
		}
	}
}
