package server

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"hash"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// attack is one forged or malformed request in TestAttackBattery.
type attack struct {
	name  string
	token string   // sent as "Authorization: Bearer TOKEN" unless hdr or path say otherwise
	hdr   []string // extra header name/value pairs (token is then not sent by itself)
	path  string   // default /api/v1/user
	// code is the RFC 6750 error code expected in the challenge; "" means a
	// bare `Bearer realm="pbench"` challenge (no credentials were offered).
	code string
	// message is expected in the JSON message: the rule that refused it.
	message string
}

// TestAttackBattery sends forged and malformed tokens, and malformed
// Authorization headers, to the real handler (Server.Handler over HTTP).
// Every one must be answered 401 — never 200, never 5xx — with an RFC 6750
// challenge and a JSON message naming the failed rule, and the answer must
// never echo the token.
//
// Decisions where the issue is silent:
//   - the scheme name is matched case-insensitively (RFC 7235 §2.1), so a
//     lowercase "bearer" is accepted: it is checked as a control, not an attack;
//   - duplicate JSON members take the lexically last value (allowed by
//     RFC 7515 §4); the cases check that the last one is what is enforced;
//   - an exp beyond the NumericDate range the server represents (about
//     year 33658) is refused, not clamped into a token valid for ever.
func TestAttackBattery(t *testing.T) {
	ti := newTestIssuer(t)
	ecKey := &testKey{kid: "ec-1", alg: "ES256", priv: newECKey(t)}
	ecNoAlg := &testKey{kid: "ec-noalg", alg: "ES256", priv: newECKey(t)}
	ti.publish(ti.key(0), ecKey)
	ti.mu.Lock()
	// A JWKS entry that does not pin "alg": only the key type can refuse RS256.
	ti.published = append(ti.published, &testKey{kid: ecNoAlg.kid, priv: ecNoAlg.priv})
	ti.mu.Unlock()
	h := newHarness(t, ti, nil)
	now := h.clock.Now()
	good := ti.key(0) // rsa-1, RS256, published
	claims := func(edit func(map[string]any)) map[string]any {
		c := ti.claims(now)
		if edit != nil {
			edit(c)
		}
		return c
	}
	edit := func(f func(map[string]any)) string { return ti.token(now, f) }
	valid := ti.token(now, nil)
	hdr := func(alg, kid string) map[string]any { return map[string]any{"alg": alg, "kid": kid, "typ": "JWT"} }

	// The broker's RSA public key, as an attacker would download it from the
	// JWKS, in the two forms used as an HMAC secret in the wild.
	der, err := x509.MarshalPKIXPublicKey(good.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})

	// The attacker's own key, and a server that would publish it (jku/x5u):
	// the validator must never fetch from it.
	attacker := &testKey{kid: "rsa-1", alg: "RS256", priv: testRSAKey(t, 2)}
	var attackerHits atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		attackerHits.Add(1)
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: attacker.priv.Public(), KeyID: "evil", Algorithm: "RS256", Use: "sig"}}})
	}))
	t.Cleanup(evil.Close)
	attackerJWK, err := json.Marshal(jose.JSONWebKey{Key: attacker.priv.Public(), KeyID: "evil", Algorithm: "RS256", Use: "sig"})
	if err != nil {
		t.Fatal(err)
	}
	withAttackerHeader := func(name string, value any) string {
		h := hdr("RS256", "evil")
		h[name] = value
		return signJWS(t, &testKey{kid: "evil", alg: "RS256", priv: attacker.priv}, h, claims(nil))
	}

	// Another issuer, signing with the very same key and kid as ours: only
	// the iss check can refuse its tokens.
	other := newTestIssuer(t)

	parts := strings.Split(valid, ".")
	tamperedClaims := claims(func(c map[string]any) { c["preferred_username"] = "admin" })
	tamperedHeader := map[string]any{"alg": "RS256", "kid": "rsa-1", "typ": "at+jwt"}
	deep := strings.Repeat("[", 10_000) + strings.Repeat("]", 10_000)
	pad := strings.Repeat("A", 60<<10)

	attacks := []attack{
		// alg none, in any casing, with an empty signature.
		{name: "alg none", token: b64(map[string]any{"alg": "none", "typ": "JWT"}) + "." + b64(claims(nil)) + ".", code: "invalid_token", message: `"none" is not accepted`},
		{name: "alg None", token: b64(map[string]any{"alg": "None", "kid": "rsa-1"}) + "." + b64(claims(nil)) + ".", code: "invalid_token", message: "is not accepted"},
		{name: "alg NONE", token: b64(map[string]any{"alg": "NONE"}) + "." + b64(claims(nil)) + ".", code: "invalid_token", message: "is not accepted"},
		{name: "alg nOnE with a real signature", token: b64(map[string]any{"alg": "nOnE"}) + "." + parts[1] + "." + parts[2], code: "invalid_token", message: "is not accepted"},

		// Algorithm confusion: HMAC keyed with the RSA public key.
		{name: "HS256 keyed with the public key (DER)", token: hmacRaw(sha256.New, jsonOf(hdr("HS256", "rsa-1")), jsonOf(claims(nil)), der), code: "invalid_token", message: `"HS256" is not accepted`},
		{name: "HS384 keyed with the public key (DER)", token: hmacRaw(sha512.New384, jsonOf(hdr("HS384", "rsa-1")), jsonOf(claims(nil)), der), code: "invalid_token", message: `"HS384" is not accepted`},
		{name: "HS512 keyed with the public key (DER)", token: hmacRaw(sha512.New, jsonOf(hdr("HS512", "rsa-1")), jsonOf(claims(nil)), der), code: "invalid_token", message: `"HS512" is not accepted`},
		{name: "HS256 keyed with the public key (PEM)", token: hmacRaw(sha256.New, jsonOf(hdr("HS256", "rsa-1")), jsonOf(claims(nil)), pemKey), code: "invalid_token", message: `"HS256" is not accepted`},

		// Signatures.
		{name: "signature stripped", token: parts[0] + "." + parts[1] + ".", code: "invalid_token", message: "bad signature"},
		{name: "signature by another key with the same kid", token: ti.sign(attacker, claims(nil)), code: "invalid_token", message: "bad signature"},
		{name: "signature of another token", token: parts[0] + "." + parts[1] + "." + strings.Split(edit(func(c map[string]any) { c["jti"] = "x" }), ".")[2], code: "invalid_token", message: "bad signature"},
		{name: "unknown kid", token: ti.sign(&testKey{kid: "nobody-knows", alg: "RS256", priv: good.priv}, claims(nil)), code: "invalid_token", message: "unknown signing key"},
		{name: "kid with a path", token: ti.sign(&testKey{kid: "../../../../../dev/null", alg: "RS256", priv: good.priv}, claims(nil)), code: "invalid_token", message: "unknown signing key"},
		{name: "kid with SQL", token: ti.sign(&testKey{kid: "x' OR '1'='1'; --", alg: "RS256", priv: good.priv}, claims(nil)), code: "invalid_token", message: "unknown signing key"},

		// Keys offered by the token itself.
		{name: "attacker jwk header", token: withAttackerHeader("jwk", json.RawMessage(attackerJWK)), code: "invalid_token", message: "unknown signing key"},
		{name: "attacker jku header", token: withAttackerHeader("jku", evil.URL+"/jwks"), code: "invalid_token", message: "unknown signing key"},
		{name: "attacker x5u header", token: withAttackerHeader("x5u", evil.URL+"/cert.pem"), code: "invalid_token", message: "unknown signing key"},
		{name: "unknown crit", token: signJWS(t, good, map[string]any{"alg": "RS256", "kid": "rsa-1", "crit": []string{"x-pbench"}, "x-pbench": true}, claims(nil)), code: "invalid_token", message: "critical"},

		// Changed after signing.
		{name: "payload changed after signing", token: parts[0] + "." + b64(tamperedClaims) + "." + parts[2], code: "invalid_token", message: "bad signature"},
		{name: "header changed after signing", token: b64(tamperedHeader) + "." + parts[1] + "." + parts[2], code: "invalid_token", message: "bad signature"},

		// Shapes.
		{name: "2 segments", token: parts[0] + "." + parts[1], code: "invalid_token", message: "malformed token"},
		{name: "4 segments", token: valid + "." + parts[2], code: "invalid_token", message: "malformed token"},
		{name: "5 segments (JWE)", token: parts[0] + ".." + parts[1] + "." + parts[2] + ".", code: "invalid_token", message: "malformed token"},
		{name: "header not base64url", token: "eyJ!bad*." + parts[1] + "." + parts[2], code: "invalid_token", message: "malformed token header"},
		{name: "payload not base64url (signed)", token: signRaw(t, good, jsonOf(hdr("RS256", "rsa-1")), "", "%%%not-base64%%%"), code: "invalid_token", message: "malformed token claims"},
		{name: "signature not base64url", token: parts[0] + "." + parts[1] + ".sig+with/std=base64", code: "invalid_token", message: "malformed token signature"},
		{name: "empty", hdr: []string{"Authorization", "Bearer "}, code: "invalid_token", message: "empty Bearer token"},
		{name: "whitespace", hdr: []string{"Authorization", "Bearer \t \t"}, code: "invalid_token", message: "empty Bearer token"},
		{name: "60 KiB token", token: parts[0] + "." + b64(claims(func(c map[string]any) { c["pad"] = pad })) + "." + parts[2], code: "invalid_token", message: "bad signature"},
		{name: "10k-deep JSON header (signed)", token: signRaw(t, good, `{"alg":"RS256","kid":"rsa-1","x":`+deep+`}`, jsonOf(claims(nil)), ""), code: "invalid_token", message: "malformed token header"},
		{name: "10k-deep JSON claims (signed)", token: signRaw(t, good, jsonOf(hdr("RS256", "rsa-1")), `{"sub":"x","x":`+deep+`}`, ""), code: "invalid_token", message: "malformed token claims"},
		{name: "duplicate alg, last is none", token: signRaw(t, good, `{"alg":"RS256","kid":"rsa-1","alg":"none"}`, jsonOf(claims(nil)), ""), code: "invalid_token", message: `"none" is not accepted`},
		{name: "duplicate kid, last is unknown", token: signRaw(t, good, `{"alg":"RS256","kid":"rsa-1","kid":"other"}`, jsonOf(claims(nil)), ""), code: "invalid_token", message: "unknown signing key"},

		// exp, nbf, iat.
		{name: "exp missing", token: edit(func(c map[string]any) { delete(c, "exp") }), code: "invalid_token", message: "no expiry"},
		{name: "exp past", token: edit(func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() }), code: "invalid_token", message: "expired"},
		{name: "exp a string", token: edit(func(c map[string]any) { c["exp"] = "2099-01-01T00:00:00Z" }), code: "invalid_token", message: "malformed token claims"},
		{name: "exp huge", token: edit(func(c map[string]any) { c["exp"] = 1e300 }), code: "invalid_token", message: "exp"},
		{name: "exp negative", token: edit(func(c map[string]any) { c["exp"] = -1 }), code: "invalid_token", message: "expired"},
		{name: "nbf in the future", token: edit(func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() }), code: "invalid_token", message: "not valid yet"},
		{name: "iat in the future", token: edit(func(c map[string]any) { c["iat"] = now.Add(time.Hour).Unix() }), code: "invalid_token", message: "issued in the future"},

		// iss, aud, azp.
		{name: "wrong iss", token: edit(func(c map[string]any) { c["iss"] = "https://evil.example.com/realms/pbench" }), code: "invalid_token", message: "wrong issuer"},
		{name: "empty iss", token: edit(func(c map[string]any) { c["iss"] = "" }), code: "invalid_token", message: "wrong issuer"},
		{name: "iss with a trailing slash", token: edit(func(c map[string]any) { c["iss"] = ti.issuer + "/" }), code: "invalid_token", message: "wrong issuer"},
		{name: "valid signature, another issuer", token: other.token(now, nil), code: "invalid_token", message: "wrong issuer"},
		{name: "wrong aud", token: edit(func(c map[string]any) { c["aud"] = []string{"account", "other-server"} }), code: "invalid_token", message: "wrong audience"},
		{name: "missing aud", token: edit(func(c map[string]any) { delete(c, "aud") }), code: "invalid_token", message: "wrong audience"},
		{name: "empty aud string", token: edit(func(c map[string]any) { c["aud"] = "" }), code: "invalid_token", message: "wrong audience"},
		{name: "empty aud array", token: edit(func(c map[string]any) { c["aud"] = []string{} }), code: "invalid_token", message: "wrong audience"},
		{name: "another client's azp", token: edit(func(c map[string]any) { c["azp"] = "pbench-dashboard" }), code: "invalid_token", message: "azp"},

		// Key type versus header algorithm.
		{name: "ES key with RS256 header (JWKS pins ES256)", token: signJWS(t, ecKey, hdr("RS256", "ec-1"), claims(nil)), code: "invalid_token", message: "cannot be used with algorithm RS256"},
		{name: "ES key with RS256 header (JWKS without alg)", token: signJWS(t, ecNoAlg, hdr("RS256", "ec-noalg"), claims(nil)), code: "invalid_token", message: "cannot be used with algorithm RS256"},

		// Header forms.
		{name: "Bearer alone", hdr: []string{"Authorization", "Bearer"}, code: "invalid_token", message: "empty Bearer token"},
		{name: "Basic", hdr: []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:"+valid))}, message: "Bearer scheme"},
		{name: "two Authorization headers", hdr: []string{"Authorization", "Bearer " + valid, "Authorization", "Bearer " + valid}, code: "invalid_request", message: "exactly one"},
		{name: "token in the query string", path: "/api/v1/user?access_token=" + valid, code: "invalid_request", message: "not accepted"},
		{name: "token in the query string, name percent-encoded, with a header", path: "/api/v1/user?access%5Ftoken=" + valid,
			hdr: []string{"Authorization", "Bearer " + valid}, code: "invalid_request", message: "not accepted"},
	}
	if len(attacks) < 40 {
		t.Fatalf("the battery has %d cases, the issue asks for at least 40", len(attacks))
	}

	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			path := a.path
			if path == "" {
				path = "/api/v1/user"
			}
			token := a.token
			if a.hdr != nil {
				token = ""
			}
			status, header, body := h.get(t, path, token, a.hdr...)
			if status != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401; body %s", status, body)
			}
			var msg struct{ Message string }
			if err := json.Unmarshal([]byte(body), &msg); err != nil || msg.Message == "" {
				t.Fatalf("body is not a JSON message: %s", body)
			}
			if !strings.Contains(msg.Message, a.message) {
				t.Errorf("message %q, want it to name %q", msg.Message, a.message)
			}
			challenge := header.Get("WWW-Authenticate")
			want := `Bearer realm="pbench"`
			if a.code != "" {
				want += `, error="` + a.code + `", error_description="`
				if !strings.HasPrefix(challenge, want) {
					t.Errorf("WWW-Authenticate = %q, want it to start with %q", challenge, want)
				}
			} else if challenge != want {
				t.Errorf("WWW-Authenticate = %q, want %q", challenge, want)
			}
			for _, secret := range secretsOf(a.token, a.hdr, valid) {
				if strings.Contains(body, secret) || strings.Contains(challenge, secret) {
					t.Fatalf("the answer echoes (part of) the token: %s / %s", body, challenge)
				}
			}
		})
	}
	if n := attackerHits.Load(); n != 0 {
		t.Errorf("the server fetched %d times from the attacker's jku/x5u server, want never", n)
	}

	t.Run("control: the valid token, lowercase scheme", func(t *testing.T) {
		// Proves the battery's 401s come from the attacks, not a broken setup.
		if status, _, body := h.get(t, "/api/v1/user", "", "Authorization", "bearer "+valid); status != http.StatusOK {
			t.Fatalf("status %d, body %s", status, body)
		}
	})
}

// secretsOf lists what an answer must not contain: the token sent, its
// payload and signature segments when long enough to be meaningful, and the
// valid token (part of some attacks).
func secretsOf(token string, hdr []string, valid string) []string {
	var out []string
	add := func(s string) {
		if len(s) >= 16 {
			out = append(out, s)
		}
	}
	add(token)
	add(valid)
	for _, p := range strings.Split(token, ".") {
		add(p)
	}
	for _, p := range strings.Split(valid, ".") {
		add(p)
	}
	for i := 1; i < len(hdr); i += 2 {
		_, cred, _ := strings.Cut(hdr[i], " ")
		add(strings.TrimSpace(cred))
	}
	return out
}

func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// signRaw signs raw JSON texts (duplicate members, deep nesting) with an RSA
// key and RS256. A non-empty rawPayload is used as the payload segment as is
// (not encoded), to sign segments that are not base64url.
func signRaw(t testing.TB, k *testKey, header, claims, rawPayload string) string {
	t.Helper()
	payload := rawPayload
	if payload == "" {
		payload = base64.RawURLEncoding.EncodeToString([]byte(claims))
	}
	input := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + payload
	d := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k.priv.(*rsa.PrivateKey), crypto.SHA256, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// hmacRaw makes an HS256/384/512 JWS of raw JSON texts with secret.
func hmacRaw(h func() hash.Hash, header, claims string, secret []byte) string {
	input := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(claims))
	m := hmac.New(h, secret)
	m.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
