// Package apiclient is seed step 11: an HTTP client that calls a Pbench
// server's restricted /api/v1/... endpoints with the profile's Bearer token.
//
// The token goes only to the profile's server — same scheme, host and port
// — never to another origin, including one a redirect points to. An access
// token about to expire is refreshed before the request (session.Manager),
// and a request answered 401 is retried once after a refresh when its body
// can be sent again.
package apiclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/distributed-system-analysis/pbench-auth/internal/redact"
	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

// Sessions hands out a profile's tokens; *session.Manager implements it.
type Sessions interface {
	// Token returns tokens whose access token is valid for a while yet,
	// refreshing them first when needed.
	Token(ctx context.Context, profile string) (*tokenstore.TokenSet, error)
	// Refresh returns tokens with an access token other than rejected.
	Refresh(ctx context.Context, profile, rejected string) (*tokenstore.TokenSet, error)
}

// Transport adds the profile's access token to requests for the profile's
// server and passes every other request on without one.
type Transport struct {
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
	// Sessions provides the tokens. Required.
	Sessions Sessions
	// Profile is the profile's normalised server URL: its origin is the only
	// one that receives the token. Required.
	Profile string
	// Trace, when set, receives one line per step (never a token).
	Trace func(format string, args ...any)
}

// NewClient returns a copy of base (nil: a client without timeout) whose
// requests to profile's server carry the profile's token. Its redirect
// policy also drops any Authorization header on a redirect to another
// origin, so a header the caller set itself does not leak either.
func NewClient(base *http.Client, sessions Sessions, profile string, trace func(string, ...any)) *http.Client {
	c := &http.Client{}
	if base != nil {
		*c = *base
	}
	c.Transport = &Transport{Base: c.Transport, Sessions: sessions, Profile: profile, Trace: trace}
	next := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if !SameOrigin(profile, req.URL) {
			req.Header.Del("Authorization")
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return c
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !SameOrigin(t.Profile, req.URL) {
		t.trace("%s %s: not %s, sending no token", req.Method, redact.RequestURL(req.URL), t.Profile)
		return t.base().RoundTrip(req)
	}
	ctx := req.Context()
	ts, err := t.Sessions.Token(ctx, t.Profile)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	resp, err := t.send(req, ts.AccessToken, req.Body)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	if _, ok := t.Sessions.(APIKey); ok {
		t.trace("401 from %s: the API key was refused (it cannot be refreshed)", t.Profile)
		return resp, nil
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		t.trace("401 from %s: the request body cannot be sent again, so no retry", t.Profile)
		return resp, nil
	}
	// The token was rejected (revoked, or the server's clock is ahead):
	// refresh once and retry once.
	t.trace("401 from %s: refreshing the access token and retrying once", t.Profile)
	ts2, err := t.Sessions.Refresh(ctx, t.Profile, ts.AccessToken)
	if err != nil {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("the server answered 401 and the refresh failed: %w", err)
	}
	body := req.Body
	if req.GetBody != nil {
		if body, err = req.GetBody(); err != nil {
			_ = resp.Body.Close()
			return nil, fmt.Errorf("reopen the request body for the retry: %w", err)
		}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // keep the connection reusable
	_ = resp.Body.Close()
	return t.send(req, ts2.AccessToken, body)
}

// send clones req (a RoundTripper must not modify its request) with the
// token and body, and sends it.
func (t *Transport) send(req *http.Request, token string, body io.ReadCloser) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Body = body
	r.Header.Set("Authorization", "Bearer "+token)
	t.trace("%s %s with the access token", r.Method, redact.RequestURL(r.URL))
	return t.base().RoundTrip(r)
}

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

func (t *Transport) trace(format string, args ...any) {
	if t.Trace != nil {
		t.Trace(format, args...)
	}
}

// SameOrigin says whether u has the scheme, host and port of the server URL
// (a normalised profile name). Default ports compare equal to none.
func SameOrigin(server string, u *url.URL) bool {
	s, err := url.Parse(server)
	if err != nil || u == nil {
		return false
	}
	return origin(s) == origin(u)
}

func origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return scheme + "://" + strings.ToLower(u.Hostname()) + ":" + port
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}
