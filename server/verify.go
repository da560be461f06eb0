package server

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	_ "crypto/sha256" // register the hashes used by RS*, PS* and ES*
	_ "crypto/sha512"
)

// TokenError says why a token was refused. Its message is meant for the
// client (it goes into the 401 answer) and never contains the token.
type TokenError struct{ Reason string }

func (e *TokenError) Error() string { return e.Reason }

func tokenErrorf(format string, args ...any) error {
	return &TokenError{Reason: fmt.Sprintf(format, args...)}
}

// algHash maps the accepted JWS algorithms to their hash. Only asymmetric
// algorithms are here: "none" and the HMAC family (HS*) are always refused,
// so a public key can never be used as an HMAC secret.
var algHash = map[string]crypto.Hash{
	"RS256": crypto.SHA256, "RS384": crypto.SHA384, "RS512": crypto.SHA512,
	"PS256": crypto.SHA256, "PS384": crypto.SHA384, "PS512": crypto.SHA512,
	"ES256": crypto.SHA256, "ES384": crypto.SHA384, "ES512": crypto.SHA512,
	"EdDSA": 0,
}

// verifier checks access tokens: one parse, one signature check, then the
// claim policy. Verified tokens are remembered in cache.
type verifier struct {
	keys    *remoteKeys
	cache   *tokenCache
	now     func() time.Time
	issuer  string
	aud     []string
	clients []string
	leeway  time.Duration
	onCache func(hit bool)
	// roleClients are the resource_access entries whose roles count: the
	// client id and the audiences, without duplicates.
	roleClients []string
}

type jwsHeader struct {
	Alg  string   `json:"alg"`
	Kid  string   `json:"kid"`
	Typ  string   `json:"typ"`
	Crit []string `json:"crit"`
}

// verify returns the identity in token, from the cache when the same token
// was verified before. Errors are *TokenError (401) or wrap
// ErrKeysUnavailable (503).
func (v *verifier) verify(ctx context.Context, token string) (*Identity, error) {
	key := tokenKey(token)
	now := v.now()
	keys := v.keys.current()
	if keys != nil {
		if id := v.cache.get(&key, now.UnixNano(), keys); id != nil {
			v.onCache(true)
			return id, nil
		}
	}
	v.onCache(false)
	id, kid, deadline, err := v.verifySlow(ctx, token, now, keys)
	if err != nil {
		return nil, err
	}
	if kid == "" {
		// A key without a kid cannot be tracked when it leaves the JWKS: do
		// not remember what it verified.
		return &id, nil
	}
	return v.cache.put(&key, id, kid, deadline, now.UnixNano()), nil
}

func (v *verifier) verifySlow(ctx context.Context, token string, now time.Time, keys *keySet) (id Identity, kid string, deadline int64, err error) {
	dot1 := strings.IndexByte(token, '.')
	dot2 := strings.LastIndexByte(token, '.')
	if dot1 <= 0 || dot2 == dot1 || strings.IndexByte(token[dot1+1:dot2], '.') >= 0 {
		return id, "", 0, tokenErrorf("malformed token: want a JWS in compact form (header.payload.signature)")
	}
	var h jwsHeader
	if err := decodeSegment(token[:dot1], &h); err != nil {
		return id, "", 0, tokenErrorf("malformed token header: %v", err)
	}
	hash, ok := algHash[h.Alg]
	if !ok {
		return id, "", 0, tokenErrorf("token algorithm %q is not accepted: want an asymmetric one (RS*, PS*, ES*, EdDSA)", clip(h.Alg))
	}
	if len(h.Crit) > 0 {
		return id, "", 0, tokenErrorf("token header has critical extensions %q that this server does not understand", h.Crit)
	}
	if !typAllowed(h.Typ) {
		return id, "", 0, tokenErrorf("a token of type %q (header typ) is not an access token", clip(h.Typ))
	}
	sig, err := base64.RawURLEncoding.DecodeString(token[dot2+1:])
	if err != nil {
		return id, "", 0, tokenErrorf("malformed token signature: not base64url")
	}
	if keys == nil {
		return id, "", 0, fmt.Errorf("%w: %s", ErrKeysUnavailable, v.keys.notReadyReason())
	}
	signed := token[:dot2]
	k, err := v.findKey(ctx, keys, &h, signed, hash, sig)
	if err != nil {
		return id, "", 0, err
	}

	var c claims
	if err := decodeSegment(token[dot1+1:dot2], &c); err != nil {
		return id, "", 0, tokenErrorf("malformed token claims: %v", err)
	}
	exp, err := v.checkClaims(&c, now)
	if err != nil {
		return id, "", 0, err
	}
	return v.identity(&c), k.kid, exp.Add(v.leeway).UnixNano(), nil
}

// findKey picks the key named by the header's kid (refreshing the keys once
// if it is unknown) and checks the signature with it. Without a kid, every
// key compatible with alg is tried.
func (v *verifier) findKey(ctx context.Context, keys *keySet, h *jwsHeader, signed string, hash crypto.Hash, sig []byte) (*verifyKey, error) {
	if h.Kid == "" {
		for _, k := range keys.all {
			if k.compatible(h.Alg) && verifySignature(k.pub, h.Alg, hash, signed, sig) == nil {
				return k, nil
			}
		}
		return nil, tokenErrorf("bad signature: no key of the broker verifies this token (it has no kid)")
	}
	k := keys.byKID[h.Kid]
	if k == nil {
		keys = v.keys.refreshForUnknownKID(ctx)
		if keys != nil {
			k = keys.byKID[h.Kid]
		}
		if k == nil {
			return nil, tokenErrorf("unknown signing key %q: the broker does not publish it", clip(h.Kid))
		}
	}
	if !k.compatible(h.Alg) {
		return nil, tokenErrorf("signing key %q cannot be used with algorithm %s", clip(h.Kid), h.Alg)
	}
	if err := verifySignature(k.pub, h.Alg, hash, signed, sig); err != nil {
		return nil, tokenErrorf("bad signature: the token was not signed by the broker's key %q", clip(h.Kid))
	}
	return k, nil
}

// verifySignature checks sig over signed with pub; alg is already known to be
// compatible with pub's type.
func verifySignature(pub any, alg string, hash crypto.Hash, signed string, sig []byte) error {
	if alg == "EdDSA" {
		if !ed25519.Verify(pub.(ed25519.PublicKey), []byte(signed), sig) {
			return errors.New("invalid signature")
		}
		return nil
	}
	hh := hash.New()
	_, _ = hh.Write([]byte(signed))
	digest := hh.Sum(make([]byte, 0, 64))
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if alg[0] == 'P' {
			return rsa.VerifyPSS(p, hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
		return rsa.VerifyPKCS1v15(p, hash, digest, sig)
	case *ecdsa.PublicKey:
		size := (p.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return errors.New("invalid signature length")
		}
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		if !ecdsa.Verify(p, digest, r, s) {
			return errors.New("invalid signature")
		}
		return nil
	}
	return errors.New("unsupported key type")
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return errors.New("not base64url")
	}
	if err := json.Unmarshal(b, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("%s has the wrong type", te.Field)
		}
		return errors.New("not a JSON object")
	}
	return nil
}

// verify dispatches a token: a JWT goes to the verifier (then, with
// introspect-all, to the broker too); anything else to introspection when
// it is configured.
func (s *Server) verify(ctx context.Context, token string) (*Identity, error) {
	if keys := s.cfg.APIKeys; keys != nil && keys.IsKey(token) {
		return keys.Authenticate(ctx, token)
	}
	in := s.intro
	if in == nil {
		return s.verifier.verify(ctx, token)
	}
	if strings.Count(token, ".") != 2 {
		return in.check(ctx, token)
	}
	id, err := s.verifier.verify(ctx, token)
	if err != nil || !in.all {
		return id, err
	}
	if _, err := in.check(ctx, token); err != nil {
		return nil, err
	}
	return id, nil
}
