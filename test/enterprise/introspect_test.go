package enterprise

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
	"github.com/distributed-system-analysis/pbench-auth/server"
)

// TestIntrospectAllSeesRevocation: with --introspect-all, serve asks the
// development broker (at the introspection_endpoint its discovery document
// advertises, as its confidential client) about each JWT; a token revoked
// at the broker is refused once the cached answer is older than the TTL.
func TestIntrospectAllSeesRevocation(t *testing.T) {
	c := testutil.NewClock(time.Now())
	e := newEnv(t, envOptions{edit: func(e *env, cfg *server.Config) {
		id, secret := e.broker.IntrospectionCredentials()
		file := filepath.Join(t.TempDir(), "introspection-secret")
		if err := os.WriteFile(file, []byte(secret), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.IntrospectionClientID, cfg.IntrospectionClientSecretFile = id, file
		cfg.IntrospectAll = true
		cfg.Now = c.Now
	}})
	e.waitReady(t)

	if r := e.cli(t, cliOptions{browser: e.browser(t, "")}, "login", "--server", e.url, "--ca-cert", e.caFile); r.code != 0 {
		t.Fatalf("login: exit %d\n%s", r.code, r.stderr)
	}
	r := e.cli(t, cliOptions{}, "token", "--server", e.url, "--ca-cert", e.caFile)
	token := strings.TrimSpace(r.stdout)
	if r.code != 0 || token == "" {
		t.Fatalf("token: exit %d\n%s", r.code, r.stderr)
	}

	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.ca.Pool(), MinVersion: tls.VersionTLS12}}}
	user := func() (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.url+"/api/v1/user", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := user(); status != http.StatusOK || !strings.Contains(body, `"username":"alice"`) {
		t.Fatalf("before revocation: %d %s", status, body)
	}

	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}, "client_id": {"pbench-client"}}
	resp, err := hc.PostForm(e.issuer+"/protocol/openid-connect/revoke", form)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %s", resp.Status)
	}

	// Within the TTL the cached answer stands; after it, the broker's.
	if status, body := user(); status != http.StatusOK {
		t.Fatalf("revoked, within the cache TTL: %d %s, want 200 (cached)", status, body)
	}
	c.Advance(server.DefaultIntrospectionCacheTTL + time.Second)
	if status, body := user(); status != http.StatusUnauthorized || !strings.Contains(body, "not active") {
		t.Fatalf("revoked, after the cache TTL: %d %s, want 401 not active", status, body)
	}
	if strings.Contains(e.stderr.String(), token) {
		t.Error("the token is in the server's log")
	}
}
