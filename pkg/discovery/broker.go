package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/distributed-system-analysis/pbench-auth/internal/errmark"
	"github.com/distributed-system-analysis/pbench-auth/pkg/peerurl"
)

// Broker is an identity broker as its OpenID discovery document describes it.
type Broker struct {
	// Issuer is exactly the discovery document's "issuer" (go-oidc checks
	// that it equals the URL discovery started from).
	Issuer string
	// ClientID is the client the CLI is at this broker.
	ClientID string
	// Provider verifies id_tokens against the broker's JWKS. It keeps the
	// HTTP client Discover was given.
	Provider *oidc.Provider
	Metadata Metadata
}

// Metadata holds the discovery fields the client uses beyond go-oidc's.
type Metadata struct {
	AuthorizationEndpoint         string   `json:"authorization_endpoint"`
	TokenEndpoint                 string   `json:"token_endpoint"`
	UserinfoEndpoint              string   `json:"userinfo_endpoint"`
	DeviceAuthorizationEndpoint   string   `json:"device_authorization_endpoint"`
	RevocationEndpoint            string   `json:"revocation_endpoint"`
	EndSessionEndpoint            string   `json:"end_session_endpoint"`
	IntrospectionEndpoint         string   `json:"introspection_endpoint"`
	JWKSURI                       string   `json:"jwks_uri"`
	CodeChallengeMethodsSupported []string `json:"code_challenge_methods_supported"`
}

// checkURLs refuses any endpoint that is present and not an absolute http(s)
// URL (peerurl.Check): each is used as is, for a request or a browser.
func (md *Metadata) checkURLs(source string) error {
	for _, f := range []struct{ name, value string }{
		{"authorization_endpoint", md.AuthorizationEndpoint},
		{"token_endpoint", md.TokenEndpoint},
		{"userinfo_endpoint", md.UserinfoEndpoint},
		{"device_authorization_endpoint", md.DeviceAuthorizationEndpoint},
		{"revocation_endpoint", md.RevocationEndpoint},
		{"end_session_endpoint", md.EndSessionEndpoint},
		{"introspection_endpoint", md.IntrospectionEndpoint},
		{"jwks_uri", md.JWKSURI},
	} {
		if f.value == "" {
			continue
		}
		if _, err := peerurl.Check(`"`+f.name+`"`, source, f.value); err != nil {
			return err
		}
	}
	return nil
}

// SupportsPKCES256 is false only when the broker lists the PKCE methods it
// supports and S256 is not among them. A broker that says nothing gets S256:
// servers ignore parameters they do not know.
func (b *Broker) SupportsPKCES256() bool {
	m := b.Metadata.CodeChallengeMethodsSupported
	return len(m) == 0 || slices.Contains(m, "S256")
}

// Discover is OpenID discovery at issuer (issuer + /.well-known/openid-configuration)
// with go-oidc, which insists that the document names exactly this issuer:
// tokens carry it in "iss", and would not verify otherwise.
//
// hc is kept by the returned Provider (JWKS fetches). Response bodies are
// bounded to MaxBodyBytes. A broker that cannot be reached, or answers 5xx,
// gives an error marked ErrUnreachable; missing arguments, ErrInvalidInput.
func Discover(ctx context.Context, hc *http.Client, issuer, clientID string) (*Broker, error) {
	if issuer == "" || clientID == "" {
		return nil, errmark.With(ErrInvalidInput, errors.New("an issuer URL and a client id are both needed to log in"))
	}
	rec := &recorder{base: hc.Transport}
	bounded := *hc
	bounded.Transport = rec
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, &bounded), issuer)
	wellKnown := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	if err != nil {
		var mismatch *oidc.IssuerMismatchError
		switch status := rec.status.Load(); {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.As(err, &mismatch):
			return nil, &IssuerMismatchError{WellKnown: wellKnown, Expected: mismatch.Provided, Discovered: mismatch.Discovered}
		case status == 0 && rec.transportErr.Load():
			return nil, errmark.With(ErrUnreachable, fmt.Errorf("cannot reach the identity broker: %w", err))
		case status >= 500:
			return nil, errmark.With(ErrUnreachable,
				fmt.Errorf("the identity broker is not available: GET %s answered %d; try again later", wellKnown, status))
		case status != 0 && status != http.StatusOK:
			// go-oidc's error would carry the whole body (an HTML page, typically).
			return nil, fmt.Errorf("no OpenID discovery document at %s (it answered %d %s): check the issuer URL",
				wellKnown, status, http.StatusText(int(status)))
		case rec.tooLarge.Load():
			return nil, fmt.Errorf("OpenID discovery at %s: %w", wellKnown, errTooLarge)
		default:
			return nil, fmt.Errorf("OpenID discovery at %s: %w", wellKnown, err)
		}
	}
	var md Metadata
	if err := provider.Claims(&md); err != nil {
		return nil, fmt.Errorf("OpenID discovery at %s: %w", wellKnown, err)
	}
	if md.AuthorizationEndpoint == "" || md.TokenEndpoint == "" {
		return nil, fmt.Errorf("OpenID discovery at %s: no authorization_endpoint or token_endpoint: this broker cannot log users in", wellKnown)
	}
	if err := md.checkURLs("the identity broker's discovery document " + wellKnown); err != nil {
		return nil, err
	}
	return &Broker{Issuer: issuer, ClientID: clientID, Provider: provider, Metadata: md}, nil
}

// recorder bounds response bodies and remembers the last status (or that the
// transport failed), so that Discover can word go-oidc's errors for people.
type recorder struct {
	base         http.RoundTripper
	status       atomic.Int32
	transportErr atomic.Bool
	tooLarge     atomic.Bool
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	base := r.base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		r.transportErr.Store(true)
		return nil, err
	}
	r.status.Store(int32(resp.StatusCode)) // #nosec G115 -- HTTP status codes fit
	resp.Body = &boundedBody{rc: resp.Body, left: MaxBodyBytes, tooLarge: &r.tooLarge}
	return resp, nil
}

// boundedBody fails a read past its limit instead of truncating silently.
type boundedBody struct {
	rc       io.ReadCloser
	left     int64
	tooLarge *atomic.Bool
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			b.tooLarge.Store(true)
			return 0, errTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *boundedBody) Close() error { return b.rc.Close() }
