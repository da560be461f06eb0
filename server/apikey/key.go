// Package apikey gives automation (Pbench's agent, CI jobs) long-lived API
// keys: created with a broker token, sent as "Authorization: Bearer KEY",
// carrying the identity their owner had at creation. It implements
// server.APIKeys on a store.Store (SQLite or PostgreSQL).
//
// A key is "pbench_" followed by 256 random bits in base64url (43
// characters): the prefix lets secret scanners find leaked keys. Only the
// key's SHA-256 is stored; a key is shown once, when it is created. Lists
// show a short non-secret prefix ("pbench_" and 4 characters, 24 of the 256
// bits) so that people can tell their keys apart.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// Prefix begins every key this package makes.
const Prefix = "pbench_"

// keyLen is the length of a key: the prefix and 32 bytes in unpadded base64url.
var keyLen = len(Prefix) + base64.RawURLEncoding.EncodedLen(32)

// shownChars is how many characters after Prefix a list shows.
const shownChars = 4

// legacyPrefix begins every API key that Pbench's server made: an HS256
// JWT whose header PyJWT writes as {"alg":"HS256","typ":"JWT"}. Such keys
// come over with `pbench-auth key import`; the token verifier refuses HS256
// anyway, so no broker token is mistaken for one.
const legacyPrefix = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."

// Generate returns a new key: Prefix and 256 bits from crypto/rand.
func Generate() string {
	return Prefix + base64.RawURLEncoding.EncodeToString(randomBytes(32))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics rather than return an error)
	return b
}

// Hash is what the store keeps of a key: its SHA-256. The key has 256
// random bits, so a fast unsalted hash is enough: there is nothing to guess.
func Hash(key string) [32]byte { return sha256.Sum256([]byte(key)) }

// ShownPrefix is the non-secret beginning of key that lists show.
func ShownPrefix(key string) string {
	if strings.HasPrefix(key, Prefix) && len(key) >= len(Prefix)+shownChars {
		return key[:len(Prefix)+shownChars]
	}
	if strings.HasPrefix(key, legacyPrefix) {
		return "pbench-legacy"
	}
	return ""
}

// IsKey reports whether a Bearer credential is an API key: one of ours, or
// one imported from Pbench. Only the shape is checked.
func IsKey(credential string) bool {
	return strings.HasPrefix(credential, Prefix) || strings.HasPrefix(credential, legacyPrefix)
}

// wellFormed reports whether a credential with Prefix has the length and
// alphabet of a key this package makes; others need no database lookup.
func wellFormed(key string) bool {
	if !strings.HasPrefix(key, Prefix) {
		return len(key) <= 4096 // an imported Pbench key (a JWT); bound its size
	}
	if len(key) != keyLen {
		return false
	}
	for i := len(Prefix); i < len(key); i++ {
		if !isBase64URL(key[i]) {
			return false
		}
	}
	return true
}

func isBase64URL(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}
