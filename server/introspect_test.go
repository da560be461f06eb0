package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
)

// introspectionEndpoint is an RFC 7662 endpoint over httptest: it knows a few
// opaque tokens, checks the caller's basic auth and counts the questions.
type introspectionEndpoint struct {
	srv            *httptest.Server
	id, secret     string
	calls          atomic.Int32
	status         atomic.Int32 // answer this status instead, when set
	mu             sync.Mutex
	tokens         map[string]map[string]any
	lastForm       map[string][]string
	sawSecretInURL atomic.Bool
}

func newIntrospectionEndpoint(t *testing.T) *introspectionEndpoint {
	e := &introspectionEndpoint{id: "pbench-server", secret: "s3cret:with/odd chars", tokens: map[string]map[string]any{}}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.calls.Add(1)
		if s := e.status.Load(); s != 0 {
			http.Error(w, "unavailable", int(s))
			return
		}
		if strings.Contains(r.URL.RawQuery, "token") {
			e.sawSecretInURL.Store(true)
		}
		id, secret, ok := r.BasicAuth()
		// RFC 6749 §2.3.1: both are form-encoded before basic auth.
		if !ok || id != e.id || secret != "s3cret%3Awith%2Fodd+chars" || r.Method != http.MethodPost {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		e.mu.Lock()
		e.lastForm = r.PostForm
		ans, known := e.tokens[r.PostForm.Get("token")]
		e.mu.Unlock()
		if !known {
			ans = map[string]any{"active": false}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(ans)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

// add makes token known with the claims of ti's access token (as Keycloak
// answers), active, changed by edit.
func (e *introspectionEndpoint) add(ti *testIssuer, now time.Time, token string, edit func(map[string]any)) {
	c := ti.claims(now)
	c["active"] = true
	c["client_id"] = "pbench-client"
	c["username"] = "alice"
	if edit != nil {
		edit(c)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tokens[token] = c
}

func (e *introspectionEndpoint) revoke(token string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.tokens, token)
}

func writeSecret(t *testing.T, secret string, perm os.FileMode) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte(secret+"\n"), perm); err != nil {
		t.Fatal(err)
	}
	return file
}

func introspectionHarness(t *testing.T, edit func(*Config)) (*harness, *introspectionEndpoint) {
	t.Helper()
	e := newIntrospectionEndpoint(t)
	secretFile := writeSecret(t, e.secret, 0o600)
	h := newHarness(t, newTestIssuer(t), func(c *Config) {
		c.IntrospectionEndpoint = e.srv.URL
		c.IntrospectionClientID = e.id
		c.IntrospectionClientSecretFile = secretFile
		if edit != nil {
			edit(c)
		}
	})
	return h, e
}

func TestOpaqueTokenIntrospected(t *testing.T) {
	h, e := introspectionHarness(t, nil)
	e.add(h.ti, h.clock.Now(), "opaque-alice", nil)

	status, _, body := h.get(t, "/api/v1/user", "opaque-alice")
	if status != http.StatusOK {
		t.Fatalf("status %d, body %s", status, body)
	}
	var id Identity
	if err := json.Unmarshal([]byte(body), &id); err != nil {
		t.Fatal(err)
	}
	if id.Username != "alice" || id.Email != "alice@example.com" || id.Subject == "" ||
		!slices.Equal(id.Roles, []string{"ADMIN", "default-roles-pbench", "offline_access"}) {
		t.Errorf("identity = %+v", id)
	}
	e.mu.Lock()
	form := e.lastForm
	e.mu.Unlock()
	if form["token"][0] != "opaque-alice" || form["token_type_hint"][0] != "access_token" {
		t.Errorf("introspection form = %v", form)
	}
	if e.sawSecretInURL.Load() {
		t.Error("the token travelled in the URL")
	}
	// JWTs are still verified locally: no introspection for them.
	before := e.calls.Load()
	if status, _, body := h.get(t, "/api/v1/user", h.ti.token(h.clock.Now(), nil)); status != http.StatusOK {
		t.Fatalf("JWT: status %d, body %s", status, body)
	}
	if e.calls.Load() != before {
		t.Error("a JWT was introspected without introspect-all")
	}
}

func TestOpaqueTokenClaimPolicy(t *testing.T) {
	h, e := introspectionHarness(t, nil)
	now := h.clock.Now()
	for _, tc := range []struct {
		name string
		edit func(map[string]any)
		want string
	}{
		{"inactive", func(c map[string]any) { c["active"] = false }, "not active"},
		{"wrong issuer", func(c map[string]any) { c["iss"] = "https://evil.example.com/realms/x" }, "wrong issuer"},
		{"wrong audience", func(c map[string]any) { c["aud"] = "other-service" }, "wrong audience"},
		{"wrong client", func(c map[string]any) { c["azp"] = "other-client" }, "issued to client"},
		{"expired", func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() }, "expired"},
		{"no expiry", func(c map[string]any) { delete(c, "exp") }, "no expiry"},
		{"refresh token", func(c map[string]any) { c["typ"] = "Refresh" }, "not an access token"},
		{"no aud: client_id must be an audience", func(c map[string]any) {
			delete(c, "aud")
			delete(c, "azp")
			c["client_id"] = "someone-else"
		}, "wrong audience"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token := "opaque-" + strings.ReplaceAll(tc.name, " ", "-")
			e.add(h.ti, now, token, tc.edit)
			status, hdr, body := h.get(t, "/api/v1/user", token)
			if status != http.StatusUnauthorized || !strings.Contains(body, tc.want) {
				t.Fatalf("status %d body %s, want 401 saying %q", status, body, tc.want)
			}
			if !strings.Contains(hdr.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Errorf("challenge = %q", hdr.Get("WWW-Authenticate"))
			}
		})
	}
}

func TestIntrospectionCache(t *testing.T) {
	h, e := introspectionHarness(t, func(c *Config) { c.IntrospectionCacheTTL = 30 * time.Second })
	now := h.clock.Now()
	e.add(h.ti, now, "opaque-a", nil)

	for range 3 {
		if status, _, body := h.get(t, "/api/v1/user", "opaque-a"); status != http.StatusOK {
			t.Fatalf("status %d, body %s", status, body)
		}
	}
	if n := e.calls.Load(); n != 1 {
		t.Fatalf("%d introspections for one token, want 1 (cached)", n)
	}
	// Revoked at the broker: still accepted from the cache within the TTL,
	// refused once it has passed.
	e.revoke("opaque-a")
	h.clock.Advance(29 * time.Second)
	if status, _, _ := h.get(t, "/api/v1/user", "opaque-a"); status != http.StatusOK {
		t.Fatalf("within the TTL: status %d, want 200 from the cache", status)
	}
	h.clock.Advance(2 * time.Second)
	if status, _, _ := h.get(t, "/api/v1/user", "opaque-a"); status != http.StatusUnauthorized {
		t.Fatalf("after the TTL: status %d, want 401 (revoked)", status)
	}

	// Refusals are cached briefly: a flood of one bad token asks once per 5s.
	calls := e.calls.Load()
	for range 5 {
		if status, _, _ := h.get(t, "/api/v1/user", "opaque-unknown"); status != http.StatusUnauthorized {
			t.Fatalf("unknown token: status %d", status)
		}
	}
	if n := e.calls.Load() - calls; n != 1 {
		t.Fatalf("%d introspections for 5 requests with one bad token, want 1", n)
	}
	h.clock.Advance(6 * time.Second)
	h.get(t, "/api/v1/user", "opaque-unknown")
	if n := e.calls.Load() - calls; n != 2 {
		t.Fatalf("the refusal was cached past 5s (%d introspections)", n)
	}
}

func TestIntrospectionCacheBoundedByExpiry(t *testing.T) {
	h, e := introspectionHarness(t, func(c *Config) {
		c.IntrospectionCacheTTL = time.Hour
		c.Leeway = 0
	})
	now := h.clock.Now()
	e.add(h.ti, now, "opaque-short", func(c map[string]any) { c["exp"] = now.Add(20 * time.Second).Unix() })
	h.get(t, "/api/v1/user", "opaque-short")
	e.revoke("opaque-short")
	h.clock.Advance(15 * time.Second)
	if status, _, _ := h.get(t, "/api/v1/user", "opaque-short"); status != http.StatusOK {
		t.Fatalf("before exp: %d, want 200 from the cache", status)
	}
	h.clock.Advance(10 * time.Second)
	if status, _, _ := h.get(t, "/api/v1/user", "opaque-short"); status != http.StatusUnauthorized {
		t.Fatalf("after exp: %d, want 401: the answer must not outlive the token", status)
	}
	if n := e.calls.Load(); n != 2 {
		t.Fatalf("%d introspections, want 2", n)
	}
}

func TestIntrospectionBrokerDownIs503(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(*introspectionEndpoint)
		want   string
	}{
		{"5xx", func(e *introspectionEndpoint) { e.status.Store(http.StatusBadGateway) }, "502"},
		{"unreachable", nil, "POST"}, // an endpoint where nothing listens, below
		{"credentials refused", func(e *introspectionEndpoint) { e.id = "someone-else" }, "check introspection-client-id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var edit func(*Config)
			if tc.break_ == nil {
				down := "http://" + testutil.ReserveAddr(t) + "/introspect"
				edit = func(c *Config) { c.IntrospectionEndpoint = down }
				tc.break_ = func(*introspectionEndpoint) {}
			}
			h, e := introspectionHarness(t, edit)
			e.add(h.ti, h.clock.Now(), "opaque-a", nil)
			tc.break_(e)
			status, hdr, body := h.get(t, "/api/v1/user", "opaque-a")
			if status != http.StatusServiceUnavailable || !strings.Contains(body, tc.want) {
				t.Fatalf("status %d body %s, want 503 saying %q", status, body, tc.want)
			}
			if hdr.Get("Retry-After") == "" {
				t.Error("no Retry-After")
			}
			if strings.Contains(body, e.secret) || strings.Contains(h.log.String(), "s3cret") {
				t.Error("the client secret leaked")
			}
			// Not cached: once the broker is back, the token is accepted.
			if tc.name == "5xx" {
				e.status.Store(0)
				if status, _, body := h.get(t, "/api/v1/user", "opaque-a"); status != http.StatusOK {
					t.Fatalf("after recovery: %d %s", status, body)
				}
			}
		})
	}
}

func TestIntrospectAllChecksJWTs(t *testing.T) {
	h, e := introspectionHarness(t, func(c *Config) { c.IntrospectAll = true })
	token := h.ti.token(h.clock.Now(), nil)
	e.add(h.ti, h.clock.Now(), token, nil)
	if status, _, body := h.get(t, "/api/v1/user", token); status != http.StatusOK {
		t.Fatalf("status %d, body %s", status, body)
	}
	if e.calls.Load() != 1 {
		t.Fatalf("%d introspections, want 1", e.calls.Load())
	}
	// A JWT with a bad signature is refused before the broker is asked.
	bad := token[:len(token)-4] + "AAAA"
	if status, _, _ := h.get(t, "/api/v1/user", bad); status != http.StatusUnauthorized {
		t.Fatalf("bad signature: %d", status)
	}
	if e.calls.Load() != 1 {
		t.Fatal("a JWT with a bad signature was sent to the broker")
	}
	e.revoke(token)
	h.clock.Advance(DefaultIntrospectionCacheTTL + time.Second)
	status, _, body := h.get(t, "/api/v1/user", token)
	if status != http.StatusUnauthorized || !strings.Contains(body, "not active") {
		t.Fatalf("revoked JWT: %d %s, want 401 not active", status, body)
	}
}

func TestIntrospectionConfigValidation(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	base := func() Config {
		c := DefaultConfig()
		c.Issuer = "https://sso.example.com/realms/pbench"
		return c
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // "" = valid
	}{
		{"off", func(*Config) {}, ""},
		{"on", func(c *Config) {
			c.IntrospectionClientID, c.IntrospectionClientSecretFile = "pbench-server", writeSecret(t, "x", 0o600)
		}, ""},
		{"no client id", func(c *Config) { c.IntrospectAll = true }, "needs introspection-client-id"},
		{"missing secret file", func(c *Config) {
			c.IntrospectionClientID, c.IntrospectionClientSecretFile = "pbench-server", filepath.Join(dir, "nope")
		}, "no such file"},
		{"empty secret file", func(c *Config) {
			c.IntrospectionClientID, c.IntrospectionClientSecretFile = "pbench-server", empty
		}, "is empty"},
		{"plain http endpoint", func(c *Config) {
			c.IntrospectionClientID, c.IntrospectionClientSecretFile = "pbench-server", writeSecret(t, "x", 0o600)
			c.IntrospectionEndpoint = "http://sso.example.com/introspect"
		}, "must use https"},
		{"ttl too long", func(c *Config) {
			c.IntrospectionClientID, c.IntrospectionClientSecretFile = "pbench-server", writeSecret(t, "x", 0o600)
			c.IntrospectionCacheTTL = 2 * time.Hour
		}, "introspection-cache-ttl"},
		{"ttl without introspection", func(c *Config) { c.IntrospectionCacheTTL = time.Minute }, "introspection is not"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestIntrospectionSecretFilePermissionWarning(t *testing.T) {
	e := newIntrospectionEndpoint(t)
	h := newHarness(t, newTestIssuer(t), func(c *Config) {
		c.IntrospectionEndpoint = e.srv.URL
		c.IntrospectionClientID = e.id
		c.IntrospectionClientSecretFile = writeSecret(t, e.secret, 0o644)
	})
	log := h.log.String()
	if !strings.Contains(log, "readable by group or others") {
		t.Errorf("no permission warning in the log:\n%s", log)
	}
	if strings.Contains(log, "s3cret") {
		t.Error("the secret is in the log")
	}
}
