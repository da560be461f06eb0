package main

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestVariant: each minted token is signed RS256 with the key over the
// template's header, keeps the template's other claims, and has its own
// identity and a fresh expiry.
func TestVariant(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"k1","typ":"JWT"}`))
	template := map[string]any{"iss": "http://127.0.0.1:1/realms/r", "aud": []any{"pbench-client"}, "azp": "pbench-client",
		"sub": "orig", "preferred_username": "user", "exp": 1.0, "typ": "Bearer"}
	seen := map[string]bool{}
	for i := range 3 {
		tok, err := variant(header, template, i, time.Hour, key)
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(tok, ".")
		if len(parts) != 3 || parts[0] != header {
			t.Fatalf("token %d does not keep the template's header", i)
		}
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
			t.Errorf("token %d: signature does not verify: %v", i, err)
		}
		_, claims, err := splitToken(tok)
		if err != nil {
			t.Fatal(err)
		}
		if claims["iss"] != template["iss"] || claims["azp"] != "pbench-client" || claims["typ"] != "Bearer" {
			t.Errorf("token %d lost the template's claims: %v", i, claims)
		}
		if exp := claims["exp"].(float64); exp < float64(time.Now().Add(59*time.Minute).Unix()) {
			t.Errorf("token %d expires at %v, want an hour ahead", i, exp)
		}
		id := claims["sub"].(string) + "|" + claims["preferred_username"].(string) + "|" + claims["jti"].(string)
		if seen[id] || claims["sub"] == "orig" {
			t.Errorf("token %d repeats an identity: %s", i, id)
		}
		seen[id] = true
	}
	if template["sub"] != "orig" {
		t.Error("variant changed the template")
	}
}

func TestWriteTokensOrderAndMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	if err := writeTokens(path, 50, func(i int) (string, error) { return strings.Repeat("t", i+1), nil }); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	for i, l := range lines {
		if len(l) != i+1 {
			t.Fatalf("line %d has %d bytes, want %d: tokens out of order", i, len(l), i+1)
		}
	}
	if len(lines) != 50 {
		t.Errorf("%d lines, want 50", len(lines))
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("tokens file mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestLoadKeyRefusesOtherPEM(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key.pem")
	_ = os.WriteFile(path, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o600)
	if _, err := loadKey(path); err == nil || !strings.Contains(err.Error(), "PKCS #8") {
		t.Errorf("loadKey of a certificate: %v, want an error asking for a PKCS #8 key", err)
	}
	if _, err := loadKey(filepath.Join(t.TempDir(), "missing.pem")); err == nil || !strings.Contains(err.Error(), "--dev-key") {
		t.Errorf("loadKey of a missing file: %v, want an error naming serve --dev-key", err)
	}
}
