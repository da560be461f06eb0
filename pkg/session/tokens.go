package session

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/distributed-system-analysis/pbench-auth/internal/redact"
	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

// ErrTokenType is the refusal of a token response whose token_type is not
// Bearer: the CLI only sends Bearer tokens (RFC 6750), and a DPoP- or
// MAC-bound token sent as Bearer would fail or leak.
var ErrTokenType = errors.New("the broker issued a token that is not a Bearer token")

// CheckTokenType refuses a token response whose token_type is anything but
// Bearer (compared case-insensitively, RFC 6749 §5.1). A response without
// one is taken as Bearer, as golang.org/x/oauth2 does.
func CheckTokenType(tok *oauth2.Token) error {
	if tok.TokenType == "" || strings.EqualFold(tok.TokenType, "Bearer") {
		return nil
	}
	return fmt.Errorf("%w (token_type %q): pbench-auth supports Bearer tokens only; ask the broker's administrator to issue Bearer tokens to this client",
		ErrTokenType, redact.Printable(tok.TokenType, 40))
}

// Apply copies a verified token endpoint response (from a code exchange or
// device flow whose id_token was verified, see package login) into ts, as
// received at now:
//   - the access token, its type (always "Bearer": see CheckTokenType, which
//     the caller must have called) and expiry;
//   - the refresh token, when one was returned (rotation); otherwise the
//     previous one stays;
//   - the id_token, when one was returned; otherwise the previous one stays;
//   - Keycloak's refresh_expires_in as RefreshExpiry (0 means an offline
//     token that does not expire: RefreshExpiry is then cleared);
//   - scope, when returned.
func Apply(ts *tokenstore.TokenSet, tok *oauth2.Token, now time.Time) {
	apply(ts, tok, now, true)
}

// apply is Apply; keepIDToken false ignores the response's id_token (a
// refresh answer's, which nothing verified).
func apply(ts *tokenstore.TokenSet, tok *oauth2.Token, now time.Time, keepIDToken bool) {
	ts.AccessToken = tok.AccessToken
	ts.TokenType = "Bearer"
	// expires_in counts from now on our clock (oauth2 computes Expiry with
	// the real one, which an injected clock would disagree with).
	ts.Expiry = tok.Expiry
	if tok.ExpiresIn > 0 {
		ts.Expiry = now.Add(time.Duration(tok.ExpiresIn) * time.Second)
	}
	if tok.RefreshToken != "" {
		ts.RefreshToken = tok.RefreshToken
	}
	if id, ok := tok.Extra("id_token").(string); ok && id != "" && keepIDToken {
		ts.IDToken = id
	}
	if secs, ok := extraSeconds(tok.Extra("refresh_expires_in")); ok {
		ts.RefreshExpiry = time.Time{}
		if secs > 0 {
			ts.RefreshExpiry = now.Add(time.Duration(secs) * time.Second)
		}
	} else if tok.RefreshToken != "" {
		ts.RefreshExpiry = time.Time{} // a new refresh token whose lifetime was not given
	}
	if scope, ok := tok.Extra("scope").(string); ok && scope != "" {
		ts.Scope = scope
	}
}

// extraSeconds reads a number of seconds from a token response field: a
// JSON number, or a string in a form-encoded response.
func extraSeconds(v any) (int64, bool) {
	switch v := v.(type) {
	case float64:
		return int64(v), true
	case json.Number:
		n, err := v.Int64()
		return n, err == nil
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	}
	return 0, false
}

// Claims decodes a JWT's payload WITHOUT verifying its signature. Use it
// only to show or schedule things about a token this process already holds
// (the user's name, its iat); never to decide whether to trust it.
func Claims(jwt string) (map[string]any, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("JWT payload: %w", err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("JWT payload: %w", err)
	}
	return c, nil
}

// issuedAt is the (unverified) iat of a JWT access token, or zero.
func issuedAt(jwt string) time.Time {
	c, err := Claims(jwt)
	if err != nil {
		return time.Time{}
	}
	if iat, ok := c["iat"].(float64); ok && iat > 0 {
		return time.Unix(int64(iat), 0)
	}
	return time.Time{}
}
