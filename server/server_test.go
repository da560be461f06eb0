package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
)

func TestValidKeycloakTokenGivesIdentity(t *testing.T) {
	h := newHarness(t, newTestIssuer(t), nil)
	token := h.ti.token(h.clock.Now(), nil)

	status, _, body := h.get(t, "/api/v1/user", token)
	if status != http.StatusOK {
		t.Fatalf("status %d, body %s", status, body)
	}
	var id Identity
	if err := json.Unmarshal([]byte(body), &id); err != nil {
		t.Fatal(err)
	}
	want := Identity{
		Subject:  "5f0a3b2e-0c4b-4a8e-9d55-0f4f3d2a1b10",
		Username: "alice",
		Email:    "alice@example.com",
		// realm roles and pbench-client's, not the "account" client's.
		Roles: []string{"ADMIN", "default-roles-pbench", "offline_access"},
	}
	if id.Subject != want.Subject || id.Username != want.Username || id.Email != want.Email || !slices.Equal(id.Roles, want.Roles) {
		t.Errorf("identity = %+v, want %+v", id, want)
	}
}

func TestIdentityMapping(t *testing.T) {
	h := newHarness(t, newTestIssuer(t), func(c *Config) {
		c.Audiences = []string{"pbench-server", "pbench-dashboard"}
	})
	token := h.ti.token(h.clock.Now(), func(c map[string]any) {
		delete(c, "preferred_username")
		delete(c, "email")
		c["realm_access"] = map[string]any{"roles": []string{"b", "a", "b"}}
		c["resource_access"] = map[string]any{
			"pbench-dashboard": map[string]any{"roles": []string{"c", "a"}},
			"other":            map[string]any{"roles": []string{"z"}},
		}
	})
	status, _, body := h.get(t, "/api/v1/user", token)
	if status != http.StatusOK {
		t.Fatalf("status %d, body %s", status, body)
	}
	var id Identity
	_ = json.Unmarshal([]byte(body), &id)
	if id.Username != id.Subject || id.Subject == "" {
		t.Errorf("username %q should fall back to sub %q", id.Username, id.Subject)
	}
	if !slices.Equal(id.Roles, []string{"a", "b", "c"}) {
		t.Errorf("roles = %q, want [a b c] (audience client's roles, deduplicated, sorted)", id.Roles)
	}
}

func TestOtherAlgorithmsAndKeys(t *testing.T) {
	ti := newTestIssuer(t)
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := []*testKey{
		{kid: "rsa-1", alg: "RS256", priv: testRSAKey(t, 0)},
		{kid: "ps-1", alg: "PS256", priv: testRSAKey(t, 1)},
		{kid: "ec-1", alg: "ES256", priv: newECKey(t)},
		{kid: "ed-1", alg: "EdDSA", priv: edPriv},
	}
	ti.publish(keys...)
	h := newHarness(t, ti, nil)
	for _, k := range keys {
		t.Run(k.alg, func(t *testing.T) {
			if status, _, body := h.get(t, "/api/v1/user", ti.sign(k, ti.claims(h.clock.Now()))); status != http.StatusOK {
				t.Errorf("status %d, body %s", status, body)
			}
		})
	}
	t.Run("no kid", func(t *testing.T) {
		token := signJWS(t, keys[2], map[string]any{"alg": "ES256"}, ti.claims(h.clock.Now()))
		if status, _, body := h.get(t, "/api/v1/user", token); status != http.StatusOK {
			t.Errorf("status %d, body %s", status, body)
		}
	})
	t.Run("RSA key named with ES256", func(t *testing.T) {
		token := signJWS(t, keys[2], map[string]any{"alg": "ES256", "kid": "rsa-1"}, ti.claims(h.clock.Now()))
		status, _, body := h.get(t, "/api/v1/user", token)
		if status != http.StatusUnauthorized || !strings.Contains(body, "cannot be used with algorithm") {
			t.Errorf("status %d, body %s", status, body)
		}
	})
}

func TestBadTokensAre401(t *testing.T) {
	ti := newTestIssuer(t)
	h := newHarness(t, ti, nil)
	now := h.clock.Now()
	rsaPub, err := x509.MarshalPKIXPublicKey(testRSAKey(t, 0).Public())
	if err != nil {
		t.Fatal(err)
	}
	otherKey := &testKey{kid: "rsa-1", alg: "RS256", priv: testRSAKey(t, 2)}
	unknownKid := &testKey{kid: "nobody-knows", alg: "RS256", priv: testRSAKey(t, 2)}
	edit := func(f func(map[string]any)) string { return ti.token(now, f) }
	idClaims := ti.claims(now)
	idClaims["typ"], idClaims["aud"] = "ID", "pbench-client"

	tests := []struct {
		name    string
		token   string
		message string // expected in the JSON message
	}{
		{"expired", edit(func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() }), "expired"},
		{"expired beyond leeway", edit(func(c map[string]any) { c["exp"] = now.Add(-31 * time.Second).Unix() }), "expired"},
		{"nbf in the future", edit(func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() }), "not valid yet"},
		{"iat in the future", edit(func(c map[string]any) { c["iat"] = now.Add(time.Hour).Unix() }), "issued in the future"},
		{"no exp", edit(func(c map[string]any) { delete(c, "exp") }), "no expiry"},
		{"wrong iss", edit(func(c map[string]any) { c["iss"] = "https://evil.example.com/realms/pbench" }), "wrong issuer"},
		{"iss with trailing slash", edit(func(c map[string]any) { c["iss"] = ti.issuer + "/" }), "wrong issuer"},
		{"wrong aud", edit(func(c map[string]any) { c["aud"] = []string{"account", "other-server"} }), "wrong audience"},
		{"wrong aud string", edit(func(c map[string]any) { c["aud"] = "other-server" }), "wrong audience"},
		{"no aud", edit(func(c map[string]any) { delete(c, "aud") }), "wrong audience"},
		{"wrong azp", edit(func(c map[string]any) { c["azp"] = "some-other-client" }), "azp"},
		{"no sub", edit(func(c map[string]any) { delete(c, "sub") }), "no subject"},
		{"exp not a number", edit(func(c map[string]any) { c["exp"] = "tomorrow" }), "malformed token claims"},
		{"exp absurdly far", edit(func(c map[string]any) { c["exp"] = 1e300; c["nbf"] = 1e300 }), "not valid yet"},
		{"bad signature", ti.sign(otherKey, ti.claims(now)), "bad signature"},
		{"unknown kid", ti.sign(unknownKid, ti.claims(now)), "unknown signing key"},
		{"alg none", b64(map[string]any{"alg": "none", "typ": "JWT"}) + "." + b64(ti.claims(now)) + ".", `"none" is not accepted`},
		{"HS256 with the public key", hmacJWS(map[string]any{"alg": "HS256", "kid": "rsa-1"}, ti.claims(now), rsaPub), `"HS256" is not accepted`},
		{"malformed", "not-a-jwt", "malformed token"},
		{"four parts", "a.b.c.d", "malformed token"},
		{"header not JSON", "bm9wZQ." + b64(ti.claims(now)) + ".c2ln", "malformed token header"},
		{"signature not base64", strings.TrimRight(edit(nil), "=") + "!!", "malformed token signature"},
		{"critical header", signJWS(t, ti.key(0), map[string]any{"alg": "RS256", "kid": "rsa-1", "crit": []string{"exp"}}, ti.claims(now)), "critical"},
		{"Keycloak ID token", ti.sign(ti.key(0), idClaims), `"ID" token is not an access token`},
		{"Keycloak refresh token", hmacJWS(map[string]any{"alg": "HS256", "typ": "JWT", "kid": "hmac"},
			map[string]any{"iss": ti.issuer, "typ": "Refresh", "aud": ti.issuer, "exp": now.Add(time.Hour).Unix()}, []byte("realm-secret")), "not accepted"},
		{"refresh token signed RS256", edit(func(c map[string]any) { c["typ"] = "Refresh" }), "not an access token"},
		{"header typ ID", signJWS(t, ti.key(0), map[string]any{"alg": "RS256", "kid": "rsa-1", "typ": "ID"}, ti.claims(now)), "not an access token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, hdr, body := h.get(t, "/api/v1/user", tt.token)
			if status != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401; body %s", status, body)
			}
			var msg struct{ Message string }
			if err := json.Unmarshal([]byte(body), &msg); err != nil {
				t.Fatalf("body is not JSON: %s", body)
			}
			if !strings.Contains(msg.Message, tt.message) {
				t.Errorf("message %q, want it to contain %q", msg.Message, tt.message)
			}
			ch := hdr.Get("WWW-Authenticate")
			if !strings.HasPrefix(ch, `Bearer realm="pbench", error="invalid_token", error_description="`) {
				t.Errorf("WWW-Authenticate = %q", ch)
			}
			if len(tt.token) > 20 && (strings.Contains(body, tt.token) || strings.Contains(ch, tt.token)) {
				t.Error("the answer echoes the token")
			}
		})
	}
}

func TestRequestShapeErrors(t *testing.T) {
	h := newHarness(t, newTestIssuer(t), nil)
	token := h.ti.token(h.clock.Now(), nil)
	tests := []struct {
		name      string
		path      string
		hdr       []string
		challenge string
		message   string
	}{
		{"no header", "/api/v1/user", nil, `Bearer realm="pbench"`, "authentication required"},
		{"basic auth", "/api/v1/user", []string{"Authorization", "Basic YWxpY2U6c2VjcmV0"}, `Bearer realm="pbench"`, "Bearer scheme"},
		{"two headers", "/api/v1/user", []string{"Authorization", "Bearer " + token, "Authorization", "Bearer " + token},
			`Bearer realm="pbench", error="invalid_request"`, "exactly one"},
		{"token in query", "/api/v1/user?access_token=" + token, nil, `Bearer realm="pbench", error="invalid_request"`, "URL"},
		{"token in query and header", "/api/v1/user?access_token=" + token, []string{"Authorization", "Bearer " + token},
			`Bearer realm="pbench", error="invalid_request"`, "URL"},
		{"empty bearer", "/api/v1/user", []string{"Authorization", "Bearer "}, `Bearer realm="pbench", error="invalid_token"`, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, hdr, body := h.get(t, tt.path, "", tt.hdr...)
			if status != http.StatusUnauthorized {
				t.Fatalf("status %d, body %s", status, body)
			}
			if ch := hdr.Get("WWW-Authenticate"); !strings.HasPrefix(ch, tt.challenge) || (tt.challenge == `Bearer realm="pbench"` && ch != tt.challenge) {
				t.Errorf("WWW-Authenticate = %q, want %q...", ch, tt.challenge)
			}
			if !strings.Contains(body, tt.message) {
				t.Errorf("body %s, want %q", body, tt.message)
			}
		})
	}
	t.Run("scheme is case-insensitive", func(t *testing.T) {
		if status, _, body := h.get(t, "/api/v1/user", "", "Authorization", "bEaReR "+token); status != http.StatusOK {
			t.Errorf("status %d, body %s", status, body)
		}
	})
}

func TestLeewayAcceptsSmallSkew(t *testing.T) {
	h := newHarness(t, newTestIssuer(t), nil)
	now := h.clock.Now()
	token := h.ti.token(now, func(c map[string]any) {
		c["exp"] = now.Add(-20 * time.Second).Unix()
		c["nbf"] = now.Add(20 * time.Second).Unix()
		c["iat"] = now.Add(20 * time.Second).Unix()
	})
	if status, _, body := h.get(t, "/api/v1/user", token); status != http.StatusOK {
		t.Errorf("status %d, body %s", status, body)
	}
}

func TestCachedTokenExpires(t *testing.T) {
	h := newHarness(t, newTestIssuer(t), nil)
	token := h.ti.token(h.clock.Now(), nil) // exp = now+5m, leeway 30s
	for range 2 {
		if status, _, _ := h.get(t, "/api/v1/user", token); status != http.StatusOK {
			t.Fatalf("status %d", status)
		}
	}
	if h.srv.cache.len() != 1 {
		t.Fatalf("cache has %d entries, want 1", h.srv.cache.len())
	}
	h.clock.Advance(5*time.Minute + 31*time.Second)
	status, _, body := h.get(t, "/api/v1/user", token)
	if status != http.StatusUnauthorized || !strings.Contains(body, "expired") {
		t.Errorf("cached token past exp+leeway: status %d, body %s", status, body)
	}
}

func TestRequireRole(t *testing.T) {
	ti := newTestIssuer(t)
	h := newHarness(t, ti, func(c *Config) {
		c.RequireRoles = []string{"/api/v1/user=ADMIN", "/api/v1/us=NOBODY"}
	})
	now := h.clock.Now()
	admin := ti.token(now, nil)
	plain := ti.token(now, func(c map[string]any) { delete(c, "resource_access") })

	if status, _, body := h.get(t, "/api/v1/user", admin); status != http.StatusOK {
		t.Errorf("admin: status %d, body %s (the /api/v1/us rule must not match /api/v1/user)", status, body)
	}
	status, _, body := h.get(t, "/api/v1/user", plain)
	if status != http.StatusForbidden || !strings.Contains(body, `lacks the role \"ADMIN\"`) {
		t.Errorf("without ADMIN: status %d, body %s", status, body)
	}
	// An embedder's handler sees raw paths: merged slashes still match, dot
	// segments are refused (servers resolve them differently).
	api := h.srv.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for p, want := range map[string]int{"/api/v1//user": 403, "/api/v1/x/../user/": 400, "/api/v1/user/.": 400} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL.Path = p
		req.Header.Set("Authorization", "Bearer "+plain)
		api.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("%s without ADMIN: status %d, want %d", p, rec.Code, want)
		}
	}
}

func TestBrokerDownAtStartThenRecovers(t *testing.T) {
	ti := newTestIssuer(t)
	ti.down.Store(true)
	h := newHarness(t, ti, nil)
	token := ti.token(h.clock.Now(), nil)

	// Wait for the first failed attempt so that readyz has a reason.
	deadline := time.Now().Add(time.Minute)
	for ti.jwksFetches.Load() == 0 && !strings.Contains(h.log.String(), "cannot refresh") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	status, _, body := h.get(t, "/readyz", "")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "503 Service Unavailable") {
		t.Errorf("readyz while the broker is down: status %d, body %s (want 503 with the reason)", status, body)
	}
	status, hdr, body := h.get(t, "/api/v1/user", token)
	if status != http.StatusServiceUnavailable || hdr.Get("WWW-Authenticate") != "" {
		t.Errorf("token while the broker is down: status %d, body %s, want 503 without a challenge", status, body)
	}
	if status, _, _ := h.get(t, "/api/v1/user", ""); status != http.StatusUnauthorized {
		t.Errorf("no token while the broker is down: status %d, want 401", status)
	}

	ti.down.Store(false)
	h.waitReady(t) // the retry loop recovers by itself
	if status, _, body := h.get(t, "/readyz", ""); status != http.StatusOK {
		t.Errorf("readyz after recovery: status %d, body %s", status, body)
	}
	if status, _, body := h.get(t, "/api/v1/user", token); status != http.StatusOK {
		t.Errorf("token after recovery: status %d, body %s", status, body)
	}
}

func TestBrokerUnreachableReason(t *testing.T) {
	ti := &testIssuer{t: t, issuer: "http://" + testutil.ReserveAddr(t) + "/realms/pbench"} // nothing listens there
	ti.down.Store(true)
	h := newHarness(t, ti, nil)
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(h.log.String(), "cannot refresh") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	status, _, body := h.get(t, "/readyz", "")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "openid discovery") || !strings.Contains(body, "refused") {
		t.Errorf("status %d, body %s", status, body)
	}
}

func TestKeepsKeysWhenBrokerGoesAway(t *testing.T) {
	ti := newTestIssuer(t)
	h := newHarness(t, ti, nil)
	ti.down.Store(true)
	if _, err := h.srv.keys.refresh(context.Background()); err == nil {
		t.Fatal("refresh with the broker down should fail")
	}
	if status, _, body := h.get(t, "/api/v1/user", ti.token(h.clock.Now(), nil)); status != http.StatusOK {
		t.Errorf("status %d, body %s: known keys must keep working", status, body)
	}
	if status, _, _ := h.get(t, "/readyz", ""); status != http.StatusOK {
		t.Errorf("readyz %d, want 200 while keys are known", status)
	}
}

func TestKeyRotation(t *testing.T) {
	ti := newTestIssuer(t)
	h := newHarness(t, ti, nil)
	oldKey := ti.key(0)
	oldToken := ti.token(h.clock.Now(), nil)
	if status, _, _ := h.get(t, "/api/v1/user", oldToken); status != http.StatusOK {
		t.Fatalf("old token before rotation: %d", status)
	}

	newKey := &testKey{kid: "rsa-2", alg: "RS256", priv: testRSAKey(t, 1)}
	ti.publish(newKey)
	h.clock.Advance(11 * time.Second) // past the unknown-kid rate limit
	newToken := ti.sign(newKey, ti.claims(h.clock.Now()))
	if status, _, body := h.get(t, "/api/v1/user", newToken); status != http.StatusOK {
		t.Fatalf("token under the new key: status %d, body %s", status, body)
	}
	// The old key left the JWKS: its cached token is no longer trusted, nor a new one.
	status, _, body := h.get(t, "/api/v1/user", oldToken)
	if status != http.StatusUnauthorized || !strings.Contains(body, "unknown signing key") {
		t.Errorf("cached token of the removed key: status %d, body %s", status, body)
	}
	if status, _, _ := h.get(t, "/api/v1/user", ti.sign(oldKey, ti.claims(h.clock.Now()))); status != http.StatusUnauthorized {
		t.Errorf("fresh token of the removed key: status %d", status)
	}
	if n := h.srv.cache.len(); n != 1 {
		t.Errorf("cache has %d entries, want 1 (the removed key's entry dropped)", n)
	}
}

func TestUnknownKidFloodIsBounded(t *testing.T) {
	ti := newTestIssuer(t)
	h := newHarness(t, ti, nil)
	h.clock.Advance(11 * time.Second)
	before := ti.jwksFetches.Load()
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := &testKey{kid: fmt.Sprintf("flood-%d", i), alg: "RS256", priv: testRSAKey(t, 2)}
			if status, _, _ := h.get(t, "/api/v1/user", ti.sign(k, ti.claims(h.clock.Now()))); status != http.StatusUnauthorized {
				t.Errorf("status %d", status)
			}
		}()
	}
	wg.Wait()
	if n := ti.jwksFetches.Load() - before; n < 1 || n > 1 {
		t.Errorf("200 unknown kids caused %d JWKS fetches, want exactly 1", n)
	}
}

func TestGatewayStripsSpoofedHeaders(t *testing.T) {
	var mu sync.Mutex
	var got http.Header
	var gotPath string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got, gotPath = r.Header.Clone(), r.URL.Path
		mu.Unlock()
		_, _ = w.Write([]byte("upstream says hi"))
	}))
	defer upstream.Close()
	ti := newTestIssuer(t)
	h := newHarness(t, ti, func(c *Config) { c.Upstream = upstream.URL + "/base" })

	spoof := []string{"X-Forwarded-User", "root", "X-Forwarded-Roles", "ADMIN", "X_Forwarded_Email", "root@evil", "x-forwarded-user", "again"}
	status, _, body := h.get(t, "/api/v1/datasets", ti.token(h.clock.Now(), func(c map[string]any) { delete(c, "resource_access") }), spoof...)
	if status != http.StatusOK || body != "upstream says hi" {
		t.Fatalf("status %d, body %s", status, body)
	}
	mu.Lock()
	hdr, path := got, gotPath
	got = nil
	mu.Unlock()
	if path != "/base/api/v1/datasets" {
		t.Errorf("upstream path %q", path)
	}
	if v := hdr.Values("X-Forwarded-User"); !slices.Equal(v, []string{"alice"}) {
		t.Errorf("X-Forwarded-User = %q, want [alice]", v)
	}
	if v := hdr.Values("X-Forwarded-Roles"); !slices.Equal(v, []string{"default-roles-pbench,offline_access"}) {
		t.Errorf("X-Forwarded-Roles = %q", v)
	}
	if v := hdr.Values("X-Forwarded-Email"); !slices.Equal(v, []string{"alice@example.com"}) {
		t.Errorf("X-Forwarded-Email = %q", v)
	}
	if _, ok := hdr["X_forwarded_email"]; ok {
		t.Error("underscore spelling of X-Forwarded-Email reached the upstream")
	}

	// Without a token the upstream is never called.
	status, _, _ = h.get(t, "/api/v1/datasets", "", spoof...)
	mu.Lock()
	called := got != nil
	mu.Unlock()
	if status != http.StatusUnauthorized || called {
		t.Errorf("no token: status %d, upstream called: %v", status, called)
	}
}

func TestEndpointsAndPublicRoutes(t *testing.T) {
	h := newHarness(t, newTestIssuer(t), nil)
	status, _, body := h.get(t, "/api/v1/endpoints", "")
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	var ep struct {
		Identification string
		OpenID         map[string]string `json:"openid"`
	}
	if err := json.Unmarshal([]byte(body), &ep); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"server": h.ti.srv.URL, "realm": "pbench", "client": "pbench-client", "issuer": h.ti.issuer}
	if !strings.HasPrefix(ep.Identification, "pbench-auth ") || fmt.Sprint(ep.OpenID) != fmt.Sprint(want) {
		t.Errorf("endpoints = %s", body)
	}

	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/nope": 404, "/api/v1/nope": 404} {
		if status, _, body := h.get(t, path, ""); status != want || !json.Valid([]byte(body)) {
			t.Errorf("%s: status %d, body %s; want %d and JSON", path, status, body, want)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, h.http.URL+"/api/v1/user", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /api/v1/user: %d", resp.StatusCode)
	}
}

func TestEndpointsForOtherBrokers(t *testing.T) {
	for issuer, want := range map[string][2]string{
		"https://sso.example.com/realms/pbench":      {"https://sso.example.com", "pbench"},
		"https://sso.example.com/auth/realms/pbench": {"https://sso.example.com/auth", "pbench"},
		"https://dex.example.com/dex":                {"https://dex.example.com/dex", ""},
	} {
		b, err := openIDSection(Config{Issuer: issuer, ClientID: "c"})
		if err != nil {
			t.Fatal(err)
		}
		var openid map[string]string
		_ = json.Unmarshal(b, &openid)
		if openid["server"] != want[0] || openid["realm"] != want[1] || openid["issuer"] != issuer || openid["client"] != "c" {
			t.Errorf("%s: %s", issuer, b)
		}
	}
}

func TestMetrics(t *testing.T) {
	h := newHarness(t, newTestIssuer(t), nil)
	token := h.ti.token(h.clock.Now(), nil)
	h.get(t, "/api/v1/user", token)
	h.get(t, "/api/v1/user", token)
	h.get(t, "/api/v1/user", "")
	_, _, body := h.get(t, "/metrics", "")
	for _, want := range []string{
		`pbench_auth_requests_total{outcome="ok"} 2`,
		`pbench_auth_requests_total{outcome="no_token"} 1`,
		`pbench_auth_token_cache_hits_total 1`,
		`pbench_auth_token_cache_misses_total 1`,
		`pbench_auth_key_refreshes_total{result="ok"} 1`,
		`pbench_auth_token_validation_seconds_count 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// The whole exposition parses as Prometheus' text format, with the
	// types a scraper expects.
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics is not Prometheus' text format: %v\n%s", err, body)
	}
	for name, typ := range map[string]dto.MetricType{
		"pbench_auth_requests_total":           dto.MetricType_COUNTER,
		"pbench_auth_key_refreshes_total":      dto.MetricType_COUNTER,
		"pbench_auth_token_cache_hits_total":   dto.MetricType_COUNTER,
		"pbench_auth_token_cache_misses_total": dto.MetricType_COUNTER,
		"pbench_auth_token_cache_entries":      dto.MetricType_GAUGE,
		"pbench_auth_token_validation_seconds": dto.MetricType_HISTOGRAM,
		"go_goroutines":                        dto.MetricType_GAUGE,
		"process_resident_memory_bytes":        dto.MetricType_GAUGE,
	} {
		f := families[name]
		if f == nil || f.GetType() != typ {
			t.Errorf("metric %s: %v, want type %v", name, f, typ)
		}
	}
	if f := families["pbench_auth_token_cache_entries"]; f != nil && f.GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Errorf("pbench_auth_token_cache_entries = %v, want 1", f.GetMetric()[0].GetGauge().GetValue())
	}
	if f := families["pbench_auth_token_validation_seconds"]; f != nil {
		if n := len(f.GetMetric()[0].GetHistogram().GetBucket()); n < len(latencyBuckets) {
			t.Errorf("pbench_auth_token_validation_seconds has %d buckets, want %d", n, len(latencyBuckets))
		}
	}
}

func TestLogNeverHoldsTheToken(t *testing.T) {
	h := newHarness(t, newTestIssuer(t), nil)
	good := h.ti.token(h.clock.Now(), nil)
	expired := h.ti.token(h.clock.Now(), func(c map[string]any) { c["exp"] = 1 })
	h.get(t, "/api/v1/user", good)
	h.get(t, "/api/v1/user", expired)
	h.get(t, "/api/v1/user?access_token="+good, "")
	h.get(t, "/api/v1/user", "", "Authorization", "Basic "+good)

	log := h.log.String()
	for _, tok := range []string{good, expired} {
		sig := tok[strings.LastIndexByte(tok, '.')+1:]
		payload := strings.Split(tok, ".")[1]
		if strings.Contains(log, sig) || strings.Contains(log, payload) {
			t.Fatalf("the log holds a token:\n%s", log)
		}
	}
	for _, want := range []string{
		"method=GET path=/api/v1/user status=200 outcome=ok user=alice",
		"status=401 outcome=invalid",
		"status=401 outcome=no_token",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if n := strings.Count(log, "msg=request"); n != 4 {
		t.Errorf("%d request lines, want 4", n)
	}
}

func TestMiddlewareForEmbedders(t *testing.T) {
	h := newHarness(t, newTestIssuer(t), nil)
	api := h.srv.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := IdentityFrom(r.Context())
		if !ok {
			t.Error("no identity in the context")
			return
		}
		_, _ = fmt.Fprintf(w, "hello %s", id.Username)
	}))
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/mine", nil)
	req.Header.Set("Authorization", "Bearer "+h.ti.token(h.clock.Now(), nil))
	api.ServeHTTP(rec, req)
	if rec.Code != 200 || rec.Body.String() != "hello alice" {
		t.Errorf("status %d, body %s", rec.Code, rec.Body)
	}
	if _, ok := IdentityFrom(context.Background()); ok {
		t.Error("IdentityFrom found an identity in an empty context")
	}
}

func TestWithCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	h := newHarness(t, newTestIssuer(t), nil)
	token := h.ti.token(h.clock.Now(), nil)
	run := func(args ...string) string {
		out, err := exec.Command(curl, append([]string{"-sS", "-w", "\n%{http_code}"}, args...)...).Output() // #nosec G204 -- test
		if err != nil {
			t.Fatalf("curl: %v", err)
		}
		return string(out)
	}
	if out := run("-H", "Authorization: Bearer "+token, h.http.URL+"/api/v1/user"); !strings.HasSuffix(out, "\n200") || !strings.Contains(out, `"username":"alice"`) {
		t.Errorf("curl with token: %s", out)
	}
	out := run("-i", h.http.URL+"/api/v1/user")
	if !strings.HasSuffix(out, "\n401") || !strings.Contains(strings.ToLower(out), `www-authenticate: bearer realm="pbench"`) {
		t.Errorf("curl without token: %s", out)
	}
}

func TestConfigValidateReportsEverything(t *testing.T) {
	c := Config{
		Listen:       "8080",
		Issuer:       "http://sso.example.com/realms/pbench",
		ClientID:     "pbench-client",
		Leeway:       -time.Second,
		CACert:       "/nonexistent/ca.pem",
		Upstream:     "localhost:9000",
		RequireRoles: []string{"api=ADMIN", "/x"},
		TLSCert:      "cert.pem",
		LogFormat:    "xml",
	}
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("not a joined error: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"listen", "must use https", "leeway", "ca-cert", "upstream", `"api=ADMIN"`, `"/x"`, "tls-cert and tls-key", "log-format"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}

	ok := DefaultConfig()
	ok.Issuer = "http://127.0.0.1:5556/dex"
	if err := ok.Validate(); err != nil {
		t.Errorf("default config with a loopback issuer: %v", err)
	}
	if def := DefaultConfig(); def.Validate() == nil || !strings.Contains(def.Validate().Error(), "issuer is required") {
		t.Errorf("missing issuer not reported")
	}
}

// With the default audience (the client id), a Keycloak ID token has the
// right aud: only its typ tells it apart from an access token.
// TestDefaultAudienceIsPbenchServers: with no audience configured, a token
// must name pbench-server, as Pbench's server expects.
func TestDefaultAudienceIsPbenchServers(t *testing.T) {
	ti := newTestIssuer(t)
	h := newHarness(t, ti, func(c *Config) { c.Audiences = nil })
	clientOnly := ti.token(h.clock.Now(), func(c map[string]any) { c["aud"] = "pbench-client" })
	if status, _, body := h.get(t, "/api/v1/user", clientOnly); status != http.StatusUnauthorized || !strings.Contains(body, `want one of [\"pbench-server\"]`) {
		t.Errorf("aud pbench-client only: status %d, body %s", status, body)
	}
	server := ti.token(h.clock.Now(), func(c map[string]any) { c["aud"] = []string{"account", "pbench-server"} })
	if status, _, body := h.get(t, "/api/v1/user", server); status != http.StatusOK {
		t.Errorf("aud pbench-server: status %d, body %s", status, body)
	}
}

// TestIDTokenRefusedWhenAudienceIsClientID: with Dex, the audience is the
// client id, as is an ID token's: the token type tells them apart.
func TestIDTokenRefusedWhenAudienceIsClientID(t *testing.T) {
	ti := newTestIssuer(t)
	h := newHarness(t, ti, func(c *Config) { c.Audiences = []string{"pbench-client"} })
	access := ti.token(h.clock.Now(), func(c map[string]any) { c["aud"] = "pbench-client" })
	if status, _, body := h.get(t, "/api/v1/user", access); status != http.StatusOK {
		t.Fatalf("access token: status %d, body %s", status, body)
	}
	id := ti.token(h.clock.Now(), func(c map[string]any) { c["aud"], c["typ"], c["at_hash"] = "pbench-client", "ID", "x" })
	status, _, body := h.get(t, "/api/v1/user", id)
	if status != http.StatusUnauthorized || !strings.Contains(body, "not an access token") {
		t.Errorf("ID token: status %d, body %s", status, body)
	}
}

func TestBrokerTLSWithCACert(t *testing.T) {
	ti := newTestIssuerTLS(t, true)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ti.srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemCert, 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, ti, func(c *Config) { c.CACert = caFile }) // waits until the keys are loaded
	if status, _, body := h.get(t, "/api/v1/user", ti.token(h.clock.Now(), nil)); status != http.StatusOK {
		t.Errorf("status %d, body %s", status, body)
	}

	// Without the CA the broker's certificate is not trusted.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := New(ctx, Config{Issuer: ti.issuer, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.keys.refresh(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("refresh without the CA: %v", err)
	}
}

func TestPeriodicRefreshDropsRemovedKey(t *testing.T) {
	ti := newTestIssuer(t)
	h := newHarness(t, ti, func(c *Config) { c.RefreshInterval = 20 * time.Millisecond })
	token := ti.token(h.clock.Now(), nil)
	if status, _, _ := h.get(t, "/api/v1/user", token); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	ti.publish(&testKey{kid: "rsa-2", alg: "RS256", priv: testRSAKey(t, 1)})
	// No request names the new key: only the periodic refresh can notice.
	deadline := time.Now().Add(time.Minute)
	for h.srv.keys.current().byKID["rsa-1"] != nil {
		if time.Now().After(deadline) {
			t.Fatal("the periodic refresh never picked up the rotation")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if status, _, body := h.get(t, "/api/v1/user", token); status != http.StatusUnauthorized {
		t.Errorf("cached token of the removed key: status %d, body %s", status, body)
	}
	if n := h.srv.cache.len(); n != 0 {
		t.Errorf("cache has %d entries after its key left the JWKS, want 0", n)
	}
}

// TestRelativeJWKSURIRefused: a jwks_uri that is not an absolute http(s) URL
// is refused with a message naming the field and the document, not fetched
// relative to anything.
func TestRelativeJWKSURIRefused(t *testing.T) {
	var issuer string
	mux := http.NewServeMux()
	mux.HandleFunc("/realms/pbench/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": issuer, "jwks_uri": "/realms/pbench/certs"})
	})
	bs := httptest.NewServer(mux)
	t.Cleanup(bs.Close)
	issuer = bs.URL + "/realms/pbench"
	ti := &testIssuer{t: t, issuer: issuer}
	ti.down.Store(true) // newHarness must not wait for keys that never come
	h := newHarness(t, ti, nil)
	_, err := h.srv.keys.refresh(t.Context())
	want := `the identity broker's discovery document ` + issuer + `/.well-known/openid-configuration sent "jwks_uri" "/realms/pbench/certs": not an absolute http(s) URL`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("refresh: %v, want an error containing %q", err, want)
	}
}
