package devbroker

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/go-jose/go-jose/v4"
)

// refreshKey signs refresh tokens, which are JWTs as Keycloak's are (HS512
// with the realm's HMAC key): Keycloak's own JavaScript adapter decodes
// them, and Pbench's dashboard reads their exp. A careful client treats them
// as opaque. The key is new on every start, like the refresh tokens' records,
// which live in memory.
type refreshKey struct {
	id     string
	secret []byte
	signer jose.Signer
}

func newRefreshKey() (*refreshKey, error) {
	secret := make([]byte, 64)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("refresh token key: %w", err)
	}
	sum := sha256.Sum256(secret)
	id := base64.RawURLEncoding.EncodeToString(sum[:16])
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS512, Key: secret},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", id))
	if err != nil {
		return nil, fmt.Errorf("refresh token signer: %w", err)
	}
	return &refreshKey{id: id, secret: secret, signer: signer}, nil
}

// refreshClaims are the claims of Keycloak's refresh tokens.
type refreshClaims struct {
	Expiry       int64  `json:"exp,omitempty"` // none for offline tokens
	IssuedAt     int64  `json:"iat"`
	JTI          string `json:"jti"`
	Issuer       string `json:"iss"`
	Audience     string `json:"aud"` // the issuer: the token is for the broker itself
	Subject      string `json:"sub"`
	Type         string `json:"typ"` // "Refresh" or "Offline"
	AZP          string `json:"azp"`
	Nonce        string `json:"nonce,omitempty"`
	SessionState string `json:"session_state"`
	SID          string `json:"sid"`
	Scope        string `json:"scope"`
}

func (k *refreshKey) sign(c *refreshClaims) (string, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	jws, err := k.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign refresh token: %w", err)
	}
	return jws.CompactSerialize()
}

// jti verifies a refresh token's signature and returns its id; ok is false
// for anything this broker did not sign.
func (k *refreshKey) jti(token string) (string, bool) {
	if len(token) > 8<<10 {
		return "", false
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.HS512})
	if err != nil {
		return "", false
	}
	payload, err := jws.Verify(k.secret)
	if err != nil {
		return "", false
	}
	var c refreshClaims
	if err := json.Unmarshal(payload, &c); err != nil || c.JTI == "" {
		return "", false
	}
	return c.JTI, true
}
