package server

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
)

// testIssuer is a Keycloak-shaped OpenID issuer over httptest: discovery,
// a JWKS that tests can rotate, and a signer. It counts JWKS fetches and can
// pretend to be down.
type testIssuer struct {
	t      testing.TB
	srv    *httptest.Server
	issuer string

	mu        sync.Mutex
	published []*testKey

	down        atomic.Bool
	jwksFetches atomic.Int32
}

type testKey struct {
	kid  string
	alg  string
	priv crypto.Signer
}

var (
	rsaKeyOnce sync.Once
	rsaKeys    []*rsa.PrivateKey
)

// testRSAKey returns one of a few RSA-2048 keys generated once per test run.
func testRSAKey(t testing.TB, i int) *rsa.PrivateKey {
	rsaKeyOnce.Do(func() {
		for range 4 {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaKeys = append(rsaKeys, k)
		}
	})
	return rsaKeys[i]
}

func newTestIssuer(t testing.TB) *testIssuer { return newTestIssuerTLS(t, false) }

// newTestIssuerTLS is newTestIssuer, over HTTPS when useTLS.
func newTestIssuerTLS(t testing.TB, useTLS bool) *testIssuer {
	ti := &testIssuer{t: t}
	mux := http.NewServeMux()
	mux.HandleFunc("/realms/pbench/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		if ti.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{
			"issuer":   ti.issuer,
			"jwks_uri": ti.issuer + "/protocol/openid-connect/certs",
		})
	})
	mux.HandleFunc("/realms/pbench/protocol/openid-connect/certs", func(w http.ResponseWriter, _ *http.Request) {
		ti.jwksFetches.Add(1)
		if ti.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		ti.mu.Lock()
		defer ti.mu.Unlock()
		var set jose.JSONWebKeySet
		for _, k := range ti.published {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: k.alg, Use: "sig"})
		}
		// Keycloak also publishes an encryption key: it must be ignored.
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: testRSAKey(t, 3).Public(), KeyID: "enc-key", Algorithm: "RSA-OAEP", Use: "enc"})
		_ = json.NewEncoder(w).Encode(set)
	})
	if useTLS {
		ti.srv = httptest.NewTLSServer(mux)
	} else {
		ti.srv = httptest.NewServer(mux)
	}
	t.Cleanup(ti.srv.Close)
	ti.issuer = ti.srv.URL + "/realms/pbench"
	ti.publish(&testKey{kid: "rsa-1", alg: "RS256", priv: testRSAKey(t, 0)})
	return ti
}

// publish replaces the published keys.
func (ti *testIssuer) publish(keys ...*testKey) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	ti.published = keys
}

func (ti *testIssuer) key(i int) *testKey {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	return ti.published[i]
}

// claims returns the claims of a Keycloak access token for alice, issued at now.
func (ti *testIssuer) claims(now time.Time) map[string]any {
	return map[string]any{
		"iss":                ti.issuer,
		"sub":                "5f0a3b2e-0c4b-4a8e-9d55-0f4f3d2a1b10",
		"aud":                []string{"pbench-server", "account"},
		"azp":                "pbench-client",
		"typ":                "Bearer",
		"exp":                now.Add(5 * time.Minute).Unix(),
		"iat":                now.Unix(),
		"auth_time":          now.Unix(),
		"jti":                "0f8e-jti",
		"scope":              "openid profile email",
		"preferred_username": "alice",
		"email":              "alice@example.com",
		"realm_access":       map[string]any{"roles": []string{"offline_access", "default-roles-pbench"}},
		"resource_access": map[string]any{
			"pbench-client": map[string]any{"roles": []string{"ADMIN"}},
			"account":       map[string]any{"roles": []string{"manage-account"}},
		},
	}
}

// sign makes a compact JWS of claims with k, header typ "JWT" and kid.
func (ti *testIssuer) sign(k *testKey, claims map[string]any) string {
	return signJWS(ti.t, k, map[string]any{"alg": k.alg, "kid": k.kid, "typ": "JWT"}, claims)
}

// token is a valid access token for alice, changed by edit.
func (ti *testIssuer) token(now time.Time, edit func(map[string]any)) string {
	c := ti.claims(now)
	if edit != nil {
		edit(c)
	}
	return ti.sign(ti.key(0), c)
}

func b64(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func signJWS(t testing.TB, k *testKey, header, claims map[string]any) string {
	t.Helper()
	input := b64(header) + "." + b64(claims)
	var sig []byte
	var err error
	switch k.alg {
	case "RS256":
		d := sha256.Sum256([]byte(input))
		sig, err = rsa.SignPKCS1v15(rand.Reader, k.priv.(*rsa.PrivateKey), crypto.SHA256, d[:])
	case "PS256":
		d := sha256.Sum256([]byte(input))
		sig, err = rsa.SignPSS(rand.Reader, k.priv.(*rsa.PrivateKey), crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "ES256":
		d := sha256.Sum256([]byte(input))
		var r, s *big.Int
		r, s, err = ecdsa.Sign(rand.Reader, k.priv.(*ecdsa.PrivateKey), d[:])
		if err == nil {
			sig = append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
		}
	case "EdDSA":
		sig = ed25519.Sign(k.priv.(ed25519.PrivateKey), []byte(input))
	default:
		t.Fatalf("test signer: unsupported alg %s", k.alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// hmacJWS signs with HS256 and secret, as an attacker (or Keycloak's refresh
// token) would.
func hmacJWS(header, claims map[string]any, secret []byte) string {
	input := b64(header) + "." + b64(claims)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func newECKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// harness is a running server in front of a test issuer.
type harness struct {
	ti    *testIssuer
	clock *testutil.Clock
	srv   *Server
	http  *httptest.Server
	log   *testutil.SyncBuffer
}

// newHarness starts a server for ti with Keycloak-like settings (audience
// pbench-server, client pbench-client), edited by edit, and waits until it
// has loaded the keys unless the issuer is down.
func newHarness(t testing.TB, ti *testIssuer, edit func(*Config)) *harness {
	t.Helper()
	h := &harness{ti: ti, clock: testutil.NewClock(time.Now()), log: &testutil.SyncBuffer{}}
	cfg := Config{
		Issuer:    ti.issuer,
		ClientID:  "pbench-client",
		Audiences: []string{"pbench-server"},
		Leeway:    30 * time.Second,
		Now:       h.clock.Now,
		Logger:    slog.New(slog.NewTextHandler(h.log, nil)),
	}
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	h.http = httptest.NewServer(srv.Handler())
	t.Cleanup(h.http.Close)
	if !ti.down.Load() {
		h.waitReady(t)
	}
	return h
}

func (h *harness) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if ok, _ := h.srv.Ready(); ok {
			return
		}
		if time.Now().After(deadline) {
			_, reason := h.srv.Ready()
			t.Fatalf("server never became ready: %s", reason)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// get sends GET path with the token (if any) and returns status, headers and body.
func (h *harness) get(t testing.TB, path, token string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	return do(t, newRequest(t, http.MethodGet, h.http.URL+path, token, hdr...))
}
