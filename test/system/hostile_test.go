package system

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

// TestBrokerControlCharactersNeverReachTheTerminal: a broker's error text
// with escape sequences (retitle the window, clear the screen, ring the
// bell) reaches the real binary's stderr as visible escapes.
func TestBrokerControlCharactersNeverReachTheTerminal(t *testing.T) {
	broker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"\u001b]0;pwned\u0007\u001b[2Jinvalid_request\r","error_description":"\u001b[31mred\u009b"}`))
	}))
	defer broker.Close()
	c := newCLI(t)
	const profile = "https://pbench.example.com"
	store, err := tokenstore.Open(tokenstore.Options{Kind: tokenstore.KindFile, Dir: filepath.Join(c.dir, "state", "pbench-auth")})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Save(profile, &tokenstore.TokenSet{
		Server: profile, Issuer: broker.URL, ClientID: "pbench-client", TokenEndpoint: broker.URL + "/token",
		AccessToken: "expired", RefreshToken: "rt", Expiry: time.Now().Add(-time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
	r := c.run("token", "--server", profile, "--token-store", "file")
	if r.code == 0 {
		t.Fatalf("token succeeded against a refusing broker: %s", r.stderr)
	}
	if strings.ContainsAny(r.stderr, "\x1b\x07\r\u009b") {
		t.Errorf("control characters reached stderr: %q", r.stderr)
	}
	if !strings.Contains(r.stderr, `\x1b]0;pwned\x07`) {
		t.Errorf("stderr %q: want the broker's text with visible escapes", r.stderr)
	}
}

// TestPlainHTTPRefusedByDefault: the real binary sends nothing to a server
// named http:// off the machine, unless told to, and then warns.
func TestPlainHTTPRefusedByDefault(t *testing.T) {
	var hits atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "proxy stand-in", http.StatusServiceUnavailable)
	}))
	defer proxy.Close()
	c := newCLI(t, "HTTP_PROXY="+proxy.URL, "http_proxy="+proxy.URL, "NO_PROXY=", "no_proxy=")
	for _, args := range [][]string{
		{"login", "--server", "http://pbench.example.com", "--device", "--timeout", "5s"},
		{"call", "--server", "http://pbench.example.com", "/api/v1/endpoints"},
		{"login", "--issuer", "http://sso.example.com/realms/pbench", "--client-id", "pbench-client", "--device", "--timeout", "5s"},
	} {
		r := c.run(args...)
		if r.code == 0 || !strings.Contains(r.stderr, "refusing plain http") || !strings.Contains(r.stderr, "--allow-insecure-http") {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("%d requests left the CLI", n)
	}
	for _, opt := range [][]string{{"--allow-insecure-http"}, nil} {
		cc := c
		if opt == nil {
			cc = newCLI(t, "HTTP_PROXY="+proxy.URL, "http_proxy="+proxy.URL, "NO_PROXY=", "no_proxy=", "PBENCH_AUTH_ALLOW_INSECURE_HTTP=1")
		}
		before := hits.Load()
		r := cc.run(append([]string{"login", "--server", "http://pbench.example.com", "--device", "--timeout", "5s", "--token-store", "file"}, opt...)...)
		if hits.Load() == before {
			t.Errorf("%v: the request never left: %s", opt, r.stderr)
		}
		if !strings.Contains(r.stderr, "warning: --allow-insecure-http: sending requests to http://pbench.example.com in clear") {
			t.Errorf("%v: no warning: %q", opt, r.stderr)
		}
	}
}
