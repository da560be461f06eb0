package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"

	"github.com/distributed-system-analysis/pbench-auth/pkg/peerurl"
)

// maxBrokerResponse bounds what we read from the broker's discovery and JWKS
// documents (a real JWKS is a few KiB).
const maxBrokerResponse = 1 << 20

// ErrKeysUnavailable means the broker's signing keys have never been loaded:
// the broker was unreachable or answered garbage. Requests then get 503.
var ErrKeysUnavailable = errors.New("the identity broker's signing keys are not available")

// verifyKey is one public signing key of the broker.
type verifyKey struct {
	kid string
	alg string // the JWK's "alg", or "" when the JWK does not pin one
	pub any    // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// keySet is an immutable snapshot of the broker's JWKS.
type keySet struct {
	byKID map[string]*verifyKey
	all   []*verifyKey
}

// parseJWKS keeps the asymmetric signing keys of a JWKS document. Keys of
// other kinds (encryption keys, symmetric keys, unknown types) are skipped so
// that one odd key does not make the whole set unusable.
func parseJWKS(data []byte) (*keySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("decode JWKS: %w", err)
	}
	ks := &keySet{byKID: make(map[string]*verifyKey, len(doc.Keys))}
	for _, raw := range doc.Keys {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(raw); err != nil || !jwk.Valid() || !jwk.IsPublic() {
			continue
		}
		if jwk.Use != "" && jwk.Use != "sig" {
			continue
		}
		switch jwk.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			continue
		}
		k := &verifyKey{kid: jwk.KeyID, alg: jwk.Algorithm, pub: jwk.Key}
		ks.all = append(ks.all, k)
		if k.kid != "" {
			ks.byKID[k.kid] = k
		}
	}
	if len(ks.all) == 0 {
		return nil, errors.New("the JWKS has no usable signing key (RSA, EC or Ed25519 with use \"sig\")")
	}
	return ks, nil
}

// compatible reports whether key k may verify a signature made with alg.
func (k *verifyKey) compatible(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch pub := k.pub.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return pub.Curve == elliptic.P256()
		case "ES384":
			return pub.Curve == elliptic.P384()
		case "ES512":
			return pub.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// remoteKeys fetches the broker's keys through OpenID discovery and keeps
// them fresh: periodically, and on demand when a token names an unknown key
// (at most once per minInterval, and one fetch for any number of concurrent
// callers).
type remoteKeys struct {
	issuer      string
	client      *http.Client
	now         func() time.Time
	log         *slog.Logger
	period      time.Duration
	minInterval time.Duration
	onRefresh   func(ok bool)          // metrics hook
	onChange    func(old, new *keySet) // cache invalidation hook

	keys    atomic.Pointer[keySet]
	lastErr atomic.Pointer[string]
	group   singleflight.Group

	mu          sync.Mutex
	jwksURL     string
	lastAttempt time.Time
	// introspectionURL is the discovery document's introspection_endpoint.
	introspectionURL string
}

// introspectionEndpoint is the broker's advertised introspection endpoint
// ("" if none), and whether discovery has run yet.
func (r *remoteKeys) introspectionEndpoint() (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.introspectionURL, r.jwksURL != ""
}

// current returns the loaded keys, or nil.
func (r *remoteKeys) current() *keySet { return r.keys.Load() }

// notReadyReason says why no keys are loaded yet.
func (r *remoteKeys) notReadyReason() string {
	if p := r.lastErr.Load(); p != nil {
		return *p
	}
	return "the first fetch of the broker's keys has not finished yet"
}

// run loads the keys and refreshes them until ctx is done. While no key set
// could ever be loaded it retries with exponential backoff (1s doubling to
// 30s); after that it refreshes every period, and keeps the keys it has when
// the broker cannot be reached.
func (r *remoteKeys) run(ctx context.Context) {
	const minBackoff, maxBackoff = time.Second, 30 * time.Second
	backoff := minBackoff
	for {
		var delay time.Duration
		if _, err := r.refresh(ctx); err != nil {
			delay = backoff
			backoff = min(2*backoff, maxBackoff)
			if r.current() != nil {
				delay = min(r.period, maxBackoff)
			}
		} else {
			delay, backoff = r.period, minBackoff
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// refreshForUnknownKID fetches the keys again because a token named a key we
// do not have, unless a fetch was attempted less than minInterval ago. It
// returns the key set to use (possibly unchanged).
func (r *remoteKeys) refreshForUnknownKID(ctx context.Context) *keySet {
	r.mu.Lock()
	recent := !r.lastAttempt.IsZero() && r.now().Sub(r.lastAttempt) < r.minInterval
	r.mu.Unlock()
	if recent {
		return r.current()
	}
	ks, _ := r.refresh(ctx)
	if ks == nil {
		return r.current()
	}
	return ks
}

// refresh fetches discovery (once) and the JWKS. Concurrent callers share one
// fetch.
func (r *remoteKeys) refresh(ctx context.Context) (*keySet, error) {
	v, err, _ := r.group.Do("jwks", func() (any, error) {
		r.mu.Lock()
		r.lastAttempt = r.now()
		r.mu.Unlock()
		// A request's context must not cancel a fetch other callers share.
		ks, err := r.fetch(context.WithoutCancel(ctx))
		if r.onRefresh != nil {
			r.onRefresh(err == nil)
		}
		if err != nil {
			msg := err.Error()
			r.lastErr.Store(&msg)
			r.log.Warn("cannot refresh the broker's signing keys", "issuer", r.issuer, "err", err)
			return nil, err
		}
		r.lastErr.Store(nil)
		old := r.keys.Swap(ks)
		if r.onChange != nil {
			r.onChange(old, ks)
		}
		if old == nil {
			r.log.Info("loaded the broker's signing keys", "issuer", r.issuer, "keys", len(ks.all))
		}
		return ks, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*keySet), nil
}

func (r *remoteKeys) fetch(ctx context.Context) (*keySet, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	r.mu.Lock()
	jwksURL := r.jwksURL
	r.mu.Unlock()
	if jwksURL == "" {
		var doc struct {
			Issuer        string `json:"issuer"`
			JWKSURI       string `json:"jwks_uri"`
			Introspection string `json:"introspection_endpoint"`
		}
		wellKnown := strings.TrimSuffix(r.issuer, "/") + "/.well-known/openid-configuration"
		if err := r.getJSON(ctx, wellKnown, &doc); err != nil {
			return nil, fmt.Errorf("openid discovery: %w", err)
		}
		if doc.Issuer != r.issuer {
			return nil, fmt.Errorf("openid discovery: the broker says its issuer is %q, not %q: fix --issuer", doc.Issuer, r.issuer)
		}
		if doc.JWKSURI == "" {
			return nil, errors.New("openid discovery: no jwks_uri in " + wellKnown)
		}
		// Both are fetched as given (the introspection endpoint with the
		// client secret): a relative or non-http(s) URL is refused here.
		source := "the identity broker's discovery document " + wellKnown
		if _, err := peerurl.Check(`"jwks_uri"`, source, doc.JWKSURI); err != nil {
			return nil, fmt.Errorf("openid discovery: %w", err)
		}
		if doc.Introspection != "" {
			if _, err := peerurl.Check(`"introspection_endpoint"`, source, doc.Introspection); err != nil {
				return nil, fmt.Errorf("openid discovery: %w", err)
			}
		}
		jwksURL = doc.JWKSURI
		r.mu.Lock()
		r.jwksURL = jwksURL
		r.introspectionURL = doc.Introspection
		r.mu.Unlock()
	}
	body, err := r.get(ctx, jwksURL)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	ks, err := parseJWKS(body)
	if err != nil {
		return nil, fmt.Errorf("JWKS at %s: %w", jwksURL, err)
	}
	return ks, nil
}

func (r *remoteKeys) getJSON(ctx context.Context, url string, v any) error {
	body, err := r.get(ctx, url)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode %s: %w", url, err)
	}
	return nil
}

func (r *remoteKeys) get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBrokerResponse))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, nil
}
