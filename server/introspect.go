package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/netutil"
	"golang.org/x/sync/singleflight"
)

// This file: RFC 7662 token introspection, for brokers whose access tokens
// are opaque (not JWTs), and for --introspect-all (revocation seen at once).

// DefaultIntrospectionCacheTTL bounds how long an introspection answer is
// reused: revocation at the broker is seen within this time.
const DefaultIntrospectionCacheTTL = 60 * time.Second

// inactiveCacheTTL is how long a refusal (inactive token) is reused, so that
// a flood of bad tokens does not become a flood of introspection requests.
const inactiveCacheTTL = 5 * time.Second

// ErrIntrospectionUnavailable means the broker's introspection endpoint could
// not give an answer (unreachable, 5xx, our credentials refused): 503.
var ErrIntrospectionUnavailable = errors.New("the identity broker cannot introspect tokens now")

// introspectionEnabled reports whether introspection is configured.
func (c *Config) introspectionEnabled() bool {
	return c.IntrospectionClientID != "" || c.IntrospectionEndpoint != "" ||
		c.IntrospectionClientSecretFile != "" || c.IntrospectAll
}

// validateIntrospection is the introspection part of Validate.
func (c *Config) validateIntrospection() []error {
	if !c.introspectionEnabled() {
		if c.IntrospectionCacheTTL != 0 {
			return []error{errors.New("introspection-cache-ttl is set but introspection is not: give introspection-client-id and introspection-client-secret-file")}
		}
		return nil
	}
	var errs []error
	if c.IntrospectionEndpoint != "" {
		u, err := url.Parse(c.IntrospectionEndpoint)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
			errs = append(errs, fmt.Errorf("introspection-endpoint %q: want an absolute https URL", c.IntrospectionEndpoint))
		case u.Scheme == "http" && !netutil.IsLoopback(u.Hostname()):
			errs = append(errs, fmt.Errorf("introspection-endpoint %q: must use https (the client secret and the tokens travel there)", c.IntrospectionEndpoint))
		}
	}
	if c.IntrospectionClientID == "" || c.IntrospectionClientSecretFile == "" {
		errs = append(errs, errors.New("introspection needs introspection-client-id and introspection-client-secret-file (the broker's confidential client allowed to introspect)"))
	} else if _, _, err := readSecretFile(c.IntrospectionClientSecretFile); err != nil {
		errs = append(errs, err)
	}
	if c.IntrospectionCacheTTL < 0 || c.IntrospectionCacheTTL > time.Hour {
		errs = append(errs, fmt.Errorf("introspection-cache-ttl %s: must be between 0 (default 60s) and 1h", c.IntrospectionCacheTTL))
	}
	return errs
}

// readSecretFile reads a client secret (surrounding white space removed) and
// says whether the file is readable by group or others.
func readSecretFile(file string) (secret string, exposed bool, err error) {
	b, err := os.ReadFile(file) // #nosec G304 -- the operator's own secret file
	if err != nil {
		return "", false, fmt.Errorf("introspection-client-secret-file: %w", err)
	}
	secret = strings.TrimSpace(string(b))
	if secret == "" {
		return "", false, fmt.Errorf("introspection-client-secret-file %s is empty", file)
	}
	if fi, err := os.Stat(file); err == nil && fi.Mode().Perm()&0o077 != 0 {
		exposed = true
	}
	return secret, exposed, nil
}

// introspector checks tokens at the broker's RFC 7662 endpoint and applies
// the verifier's claim policy to the answer.
type introspector struct {
	v        *verifier
	client   *http.Client
	endpoint func() (string, error)
	clientID string
	secret   string
	ttl      time.Duration
	// all introspects JWTs too, after their signature check.
	all bool

	group singleflight.Group
	cache *introCache
}

// newIntrospector returns nil when cfg does not configure introspection.
// discovered gives the broker's advertised endpoint once discovery ran.
func newIntrospector(cfg *Config, v *verifier, discovered func() (string, bool)) (*introspector, error) {
	if !cfg.introspectionEnabled() {
		return nil, nil
	}
	secret, exposed, err := readSecretFile(cfg.IntrospectionClientSecretFile)
	if err != nil {
		return nil, err
	}
	if exposed {
		cfg.Logger.Warn("the introspection client secret file is readable by group or others: chmod 600 it",
			"file", cfg.IntrospectionClientSecretFile)
	}
	ttl := cfg.IntrospectionCacheTTL
	if ttl == 0 {
		ttl = DefaultIntrospectionCacheTTL
	}
	endpoint := func() (string, error) {
		if cfg.IntrospectionEndpoint != "" {
			return cfg.IntrospectionEndpoint, nil
		}
		ep, done := discovered()
		switch {
		case !done:
			return "", fmt.Errorf("%w: the broker's discovery document has not been fetched yet", ErrIntrospectionUnavailable)
		case ep == "":
			return "", fmt.Errorf("%w: the broker advertises no introspection_endpoint: set --introspection-endpoint", ErrIntrospectionUnavailable)
		}
		return ep, nil
	}
	return &introspector{
		v: v, client: cfg.HTTPClient, endpoint: endpoint,
		clientID: cfg.IntrospectionClientID, secret: secret, ttl: ttl, all: cfg.IntrospectAll,
		cache: newIntroCache(max(cfg.CacheSize, 1024)),
	}, nil
}

// introspection is the part of an RFC 7662 answer read besides the claims
// (Keycloak answers with the token's claims: iss, aud, azp, typ, roles...).
type introspection struct {
	Active   bool   `json:"active"`
	ClientID string `json:"client_id"`
	Username string `json:"username"`
}

// check returns the identity of token according to the broker.
// Errors are *TokenError (401) or wrap ErrIntrospectionUnavailable (503).
func (in *introspector) check(ctx context.Context, token string) (*Identity, error) {
	key := tokenKey(token)
	now := in.v.now()
	if id, err, ok := in.cache.get(key, now); ok {
		return id, err
	}
	// Concurrent requests with one token share one introspection.
	res, err, _ := in.group.Do(string(key[:]), func() (any, error) {
		id, deadline, err := in.introspect(context.WithoutCancel(ctx), token, now)
		if err != nil && !isTokenError(err) {
			return nil, err // not cached: the next request asks again
		}
		in.cache.put(key, id, err, deadline, now)
		return id, err
	})
	if err != nil {
		return nil, err
	}
	return res.(*Identity), nil
}

func isTokenError(err error) bool {
	var te *TokenError
	return errors.As(err, &te)
}

// introspect asks the broker, and returns the identity or the refusal with
// the time until which the answer may be reused.
func (in *introspector) introspect(ctx context.Context, token string, now time.Time) (*Identity, time.Time, error) {
	refused := now.Add(min(inactiveCacheTTL, in.ttl))
	endpoint, err := in.endpoint()
	if err != nil {
		return nil, time.Time{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: %w", ErrIntrospectionUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: form-encode the credentials before basic auth.
	req.SetBasicAuth(url.QueryEscape(in.clientID), url.QueryEscape(in.secret))
	resp, err := in.client.Do(req)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: POST %s: %w", ErrIntrospectionUnavailable, endpoint, netutil.UnwrapURLError(err))
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBrokerResponse))
	switch {
	case err != nil:
		return nil, time.Time{}, fmt.Errorf("%w: read the answer of %s: %w", ErrIntrospectionUnavailable, endpoint, err)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, time.Time{}, fmt.Errorf("%w: %s refused this server's client %q (%s): check introspection-client-id and the secret file",
			ErrIntrospectionUnavailable, endpoint, in.clientID, resp.Status)
	case resp.StatusCode != http.StatusOK:
		return nil, time.Time{}, fmt.Errorf("%w: POST %s: %s", ErrIntrospectionUnavailable, endpoint, resp.Status)
	}
	var ans introspection
	var c claims
	if err := json.Unmarshal(body, &ans); err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: %s answered something other than an RFC 7662 JSON object", ErrIntrospectionUnavailable, endpoint)
	}
	if !ans.Active {
		return nil, refused, tokenErrorf("the token is not active: the broker says it is revoked, expired or unknown; log in again")
	}
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, refused, tokenErrorf("the broker's introspection of the token has malformed claims: %v", err)
	}
	// Fill in what RFC 7662 leaves optional from what it does say; the
	// policy below is the one JWTs go through.
	if c.Iss == "" {
		c.Iss = in.v.issuer // the answer comes from this issuer's broker
	}
	if c.Azp == "" {
		c.Azp = ans.ClientID
	}
	if len(c.Aud) == 0 && ans.ClientID != "" {
		c.Aud = audience{ans.ClientID}
	}
	if c.PreferredUsername == "" {
		c.PreferredUsername = ans.Username
	}
	exp, err := in.v.checkClaims(&c, now)
	if err != nil {
		return nil, refused, err
	}
	id := in.v.identity(&c)
	deadline := now.Add(in.ttl)
	if end := exp.Add(in.v.leeway); end.Before(deadline) {
		deadline = end
	}
	return &id, deadline, nil
}
