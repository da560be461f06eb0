package server

// This file: the claim policy that every token goes through, whether the
// verifier checked its signature or the broker introspected it: the claims
// read, the checks on them, and the identity they map to.

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"time"
)

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
