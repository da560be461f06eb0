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
	"math"
	"math/big"
	"slices"
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

// claims are the parts of a Keycloak-style access token we read.
type claims struct {
	Iss               string   `json:"iss"`
	Sub               string   `json:"sub"`
	Aud               audience `json:"aud"`
	Azp               string   `json:"azp"`
	Exp               *float64 `json:"exp"`
	Nbf               *float64 `json:"nbf"`
	Iat               *float64 `json:"iat"`
	Typ               string   `json:"typ"`
	PreferredUsername string   `json:"preferred_username"`
	Email             string   `json:"email"`
	RealmAccess       struct {
		Roles []string `json:"roles"`
	} `json:"realm_access"`
	ResourceAccess map[string]struct {
		Roles []string `json:"roles"`
	} `json:"resource_access"`
}

// audience is "aud": a string or an array of strings (RFC 7519 §4.1.3).
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = audience{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return errors.New("aud must be a string or an array of strings")
	}
	*a = l
	return nil
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

// checkClaims applies the claim policy and returns the expiry.
func (v *verifier) checkClaims(c *claims, now time.Time) (time.Time, error) {
	if !typAllowed(c.Typ) {
		return time.Time{}, tokenErrorf("a %q token is not an access token: send the access token", clip(c.Typ))
	}
	if c.Iss != v.issuer {
		return time.Time{}, tokenErrorf("wrong issuer %q: this server accepts tokens from %s", clip(c.Iss), v.issuer)
	}
	if c.Exp == nil {
		return time.Time{}, tokenErrorf("the token has no expiry (exp)")
	}
	exp := unixTime(*c.Exp)
	if now.After(exp.Add(v.leeway)) {
		return time.Time{}, tokenErrorf("token expired %s ago: log in again or refresh it", now.Sub(exp).Round(time.Second))
	}
	if c.Nbf != nil && now.Add(v.leeway).Before(unixTime(*c.Nbf)) {
		return time.Time{}, tokenErrorf("token not valid yet (nbf is %s in the future)", unixTime(*c.Nbf).Sub(now).Round(time.Second))
	}
	if c.Iat != nil && now.Add(v.leeway).Before(unixTime(*c.Iat)) {
		return time.Time{}, tokenErrorf("token issued in the future (iat is %s ahead): check the clocks", unixTime(*c.Iat).Sub(now).Round(time.Second))
	}
	if math.Abs(*c.Exp) > maxNumericDate {
		return time.Time{}, tokenErrorf("the token's expiry (exp %g) is not a plausible date", *c.Exp)
	}
	if !slices.ContainsFunc(c.Aud, func(a string) bool { return slices.Contains(v.aud, a) }) {
		return time.Time{}, tokenErrorf("wrong audience %q: the token is not meant for this server (want one of %q)", clipAll(c.Aud), v.aud)
	}
	if c.Azp != "" && !slices.Contains(v.clients, c.Azp) {
		return time.Time{}, tokenErrorf("the token was issued to client %q (azp), which this server does not allow", clip(c.Azp))
	}
	if c.Sub == "" {
		return time.Time{}, tokenErrorf("the token has no subject (sub)")
	}
	return exp, nil
}

// identity maps the claims to an Identity (roles sorted, deduplicated). Its
// strings share one allocation, as it may live long in the cache.
func (v *verifier) identity(c *claims) Identity {
	packed := c.Sub + c.PreferredUsername + c.Email
	sub, rest := packed[:len(c.Sub)], packed[len(c.Sub):]
	id := Identity{Subject: sub, Username: rest[:len(c.PreferredUsername)], Email: rest[len(c.PreferredUsername):]}
	if id.Username == "" {
		id.Username = sub
	}
	roles := slices.Clone(c.RealmAccess.Roles)
	for _, client := range v.roleClients {
		roles = append(roles, c.ResourceAccess[client].Roles...)
	}
	slices.Sort(roles)
	id.Roles = internRoles(slices.Compact(roles))
	return id
}

// typAllowed accepts the types of an access token: none, "JWT", "at+jwt"
// (RFC 9068) and Keycloak's "Bearer". Keycloak's "ID", "Refresh" and
// "Offline" tokens are refused.
func typAllowed(typ string) bool {
	switch strings.ToLower(typ) {
	case "", "jwt", "at+jwt", "application/at+jwt", "bearer":
		return true
	}
	return false
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

// maxNumericDate bounds the NumericDates the server represents: ±1e12 s
// (year ~33658). An exp beyond it is refused; nbf and iat are clamped.
const maxNumericDate = 1e12

// unixTime converts a NumericDate, clamped to ±maxNumericDate so that absurd
// values cannot overflow.
func unixTime(f float64) time.Time {
	if math.IsNaN(f) {
		return time.Time{}
	}
	f = max(min(f, maxNumericDate), -maxNumericDate)
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9))
}

// clip shortens a value taken from a token before it goes into a message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

func clipAll(l []string) []string {
	if len(l) > 5 {
		l = l[:5]
	}
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = clip(s)
	}
	return out
}
