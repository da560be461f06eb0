// Package login is seed steps 3–10: the user signs in at the identity broker
// and the CLI receives the broker's tokens.
//
// Two grants are offered:
//   - the authorization code grant (RFC 6749 §4.1) with PKCE S256, state and
//     nonce, through a loopback listener run by github.com/int128/oauth2cli
//     (RFC 8252, native apps): the browser goes to the broker, the broker
//     redirects back to http://127.0.0.1:PORT/callback;
//   - the device authorization grant (RFC 8628) for hosts without a browser.
//
// Either way the id_token is verified with go-oidc (signature, iss, aud, exp
// and, for the code grant, nonce) before Login returns: a caller that stores
// only what Login returns never stores an unverified token set.
package login

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/distributed-system-analysis/pbench-auth/internal/redact"
	"github.com/distributed-system-analysis/pbench-auth/pkg/discovery"
	"github.com/distributed-system-analysis/pbench-auth/pkg/session"
	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

// DefaultScopes are always requested. "openid" makes the broker return an
// id_token; profile and email give preferred_username and email.
var DefaultScopes = []string{"openid", "profile", "email"}

// DefaultTimeout is how long Login waits for the user by default.
const DefaultTimeout = 5 * time.Minute

// ErrInterrupted is the error of a login whose context was cancelled (^C).
var ErrInterrupted = errors.New("login interrupted")

// ErrInvalidListenAddress marks a --listen-address that cannot be used:
// not HOST:PORT, or not a loopback address.
var ErrInvalidListenAddress = errors.New("invalid listen address")

// DefaultListenAddress is the loopback listener's default: a free port on
// 127.0.0.1 (brokers accept any port for a registered loopback redirect).
const DefaultListenAddress = "127.0.0.1:0"

// CallbackPath is the path of the redirect URI on the loopback listener.
const CallbackPath = "/callback"

// Options configure one login.
type Options struct {
	// Broker is where the user signs in (from discovery). Required.
	Broker *discovery.Broker
	// Server is the Pbench server the tokens are for, recorded in the
	// TokenSet; "" for a direct login against a broker.
	Server string
	// ExtraScopes are requested on top of DefaultScopes (e.g. offline_access).
	ExtraScopes []string

	// Device selects the device authorization grant instead of the browser.
	Device bool
	// ListenAddresses are the loopback addresses tried in order for the
	// callback listener; a busy one falls through to the next. Each must be
	// a loopback IP or localhost (an address reachable from other machines
	// is refused). Default [DefaultListenAddress].
	ListenAddresses []string
	// Browser opens a URL for the user: the broker's authorization URL, or
	// (device grant) the verification URI. nil means do not open anything:
	// the URL is printed on Prompt and Login waits (--no-browser).
	Browser func(url string) error
	// Timeout bounds the wait for the user. Default DefaultTimeout.
	Timeout time.Duration

	// HTTPClient talks to the broker (token endpoint, JWKS). Default
	// http.DefaultClient. The loopback listener never uses it.
	HTTPClient *http.Client
	// Now is the clock for token expiry and id_token checks. Default time.Now.
	Now func() time.Time
	// Prompt receives what the user must read or do (stderr). Default discard.
	Prompt io.Writer
	// Tracef receives the -v trace of each step; it is never given a token,
	// code, code_verifier, state or nonce. Default none.
	Tracef func(format string, args ...any)
}

// Result is a verified login.
type Result struct {
	// Tokens is what to store. It is secret: never print it.
	Tokens *tokenstore.TokenSet
	// User is who logged in, from the verified id_token.
	User Identity
}

// Identity is the user as the id_token names them.
type Identity struct {
	Subject           string `json:"sub"`
	PreferredUsername string `json:"preferred_username"`
	Email             string `json:"email"`
	Name              string `json:"name"`
}

// String is preferred_username, else email, else sub, with the email added
// when it says something more: "alice <alice@example.com>".
func (id Identity) String() string {
	switch {
	case id.PreferredUsername != "" && id.Email != "" && id.Email != id.PreferredUsername:
		return id.PreferredUsername + " <" + id.Email + ">"
	case id.PreferredUsername != "":
		return id.PreferredUsername
	case id.Email != "":
		return id.Email
	}
	return id.Subject
}

// Login runs the grant opts ask for and returns the verified tokens.
func Login(ctx context.Context, opts Options) (*Result, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, o.HTTPClient)

	var res *Result
	if o.Device {
		res, err = deviceLogin(ctx, &o)
	} else {
		res, err = authCodeLogin(ctx, &o)
	}
	switch {
	case err == nil:
		return res, nil
	case parent.Err() != nil:
		return nil, ErrInterrupted
	case errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("login timed out after %s: %s; run the login again (--timeout sets the wait): %w",
			o.Timeout, timeoutHint(o.Device), err)
	}
	return nil, err
}

func timeoutHint(device bool) string {
	if device {
		return "the code was not entered at the verification URI in time"
	}
	return "the browser never came back to the loopback listener (on a host without a browser, use --device)"
}

func (o Options) withDefaults() (Options, error) {
	if o.Broker == nil {
		return o, errors.New("login: no broker")
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if len(o.ListenAddresses) == 0 {
		o.ListenAddresses = []string{DefaultListenAddress}
	}
	for _, a := range o.ListenAddresses {
		if err := checkLoopback(a); err != nil {
			return o, err
		}
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Prompt == nil {
		o.Prompt = io.Discard
	}
	if o.Tracef == nil {
		o.Tracef = func(string, ...any) {}
	}
	return o, nil
}

// oauth2Config is the public client at the broker: no secret, client_id in
// the request body.
func (o *Options) oauth2Config() oauth2.Config {
	ep := o.Broker.Provider.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInParams
	scopes := slices.Clone(DefaultScopes)
	for _, s := range o.ExtraScopes {
		if s != "" && !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	return oauth2.Config{ClientID: o.Broker.ClientID, Endpoint: ep, Scopes: scopes}
}

// result verifies the token response's id_token and builds the TokenSet.
// nonce is "" for the device grant, which has none.
func (o *Options) result(ctx context.Context, tok *oauth2.Token, scopes []string, nonce string) (*Result, error) {
	o.Tracef("token response: access token %s (expires %s), refresh token %s, id_token %s",
		redact.Secret(tok.AccessToken), expiryText(tok, o.Now()), redact.Secret(tok.RefreshToken),
		redact.Secret(idTokenOf(tok)))
	if err := session.CheckTokenType(tok); err != nil {
		return nil, fmt.Errorf("the broker's tokens were refused, nothing was stored: %w", err)
	}
	id, err := verifyIDToken(ctx, o.Broker, tok, nonce, o.Now)
	if err != nil {
		return nil, fmt.Errorf("the broker's tokens were refused, nothing was stored: %w", err)
	}
	checked := "signature, iss, aud, exp"
	if nonce != "" {
		checked += ", nonce"
	}
	o.Tracef("id_token verified (%s): user %s", checked, id)

	md := o.Broker.Metadata
	ts := &tokenstore.TokenSet{
		Server:             o.Server,
		Issuer:             o.Broker.Issuer,
		ClientID:           o.Broker.ClientID,
		TokenEndpoint:      md.TokenEndpoint,
		RevocationEndpoint: md.RevocationEndpoint,
		EndSessionEndpoint: md.EndSessionEndpoint,
		Scope:              strings.Join(scopes, " "),
	}
	session.Apply(ts, tok, o.Now())
	return &Result{Tokens: ts, User: id}, nil
}

func expiryText(tok *oauth2.Token, now time.Time) string {
	if tok.Expiry.IsZero() {
		return "never said"
	}
	return "in " + tok.Expiry.Sub(now).Round(time.Second).String()
}

func idTokenOf(tok *oauth2.Token) string {
	s, _ := tok.Extra("id_token").(string)
	return s
}
