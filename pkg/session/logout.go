package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/distributed-system-analysis/pbench-auth/internal/netutil"
	"github.com/distributed-system-analysis/pbench-auth/internal/redact"
	"github.com/distributed-system-analysis/pbench-auth/pkg/peerurl"
	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

// ErrNoRevocation is the revocation error when the broker advertises no
// revocation endpoint: the tokens are deleted locally but stay valid at
// the broker until they expire.
var ErrNoRevocation = errors.New("the broker has no revocation endpoint: the refresh token stays valid until it expires")

// Logout revokes the profile's refresh token (or, without one, its access
// token) at the broker's RFC 7009 revocation endpoint, then deletes the
// profile's tokens — even if revocation failed. revokeErr reports the
// revocation (ErrNoRevocation, ErrBrokerUnreachable, or the broker's
// answer); err reports what kept the tokens on this machine (including
// ErrNotLoggedIn when there were none).
//
// Stored tokens that cannot be read (damaged, or refused by the file store:
// see tokenstore.ErrCorrupt and ErrUnsafe) never block the logout: they
// cannot be revoked (revokeErr says so), and are deleted where the store
// can do so safely (err says why not otherwise).
func (m *Manager) Logout(ctx context.Context, profile string) (revokeErr, err error) {
	unlock, err := m.lock(ctx, profile)
	if err != nil {
		return nil, err
	}
	defer unlock()
	ts, err := m.load(profile)
	switch {
	case errors.Is(err, tokenstore.ErrCorrupt), errors.Is(err, tokenstore.ErrUnsafe):
		revokeErr = fmt.Errorf("the stored tokens cannot be read, so they were not revoked: %w", err)
		if err := m.Store.Delete(profile); err != nil {
			return revokeErr, fmt.Errorf("delete tokens of %s: %w", profile, err)
		}
		m.trace("deleted the unreadable tokens of %s from %s", profile, m.Store.Location(profile))
		return revokeErr, nil
	case err != nil:
		return nil, err
	}
	token, hint := ts.RefreshToken, "refresh_token"
	if token == "" {
		token, hint = ts.AccessToken, "access_token"
	}
	if ts.RevocationEndpoint == "" {
		revokeErr = ErrNoRevocation
	} else {
		revokeErr = m.revoke(ctx, ts.RevocationEndpoint, ts.ClientID, token, hint)
	}
	if err := m.Store.Delete(profile); err != nil {
		return revokeErr, fmt.Errorf("delete tokens of %s: %w", profile, err)
	}
	m.trace("deleted tokens of %s from %s", profile, m.Store.Location(profile))
	return revokeErr, nil
}

// ErrNoEndSession is EndSessionURL's error when the broker advertises no
// end_session_endpoint: there is no broker page that ends its session.
var ErrNoEndSession = errors.New("the broker has no end-session endpoint")

// EndSessionURL is the broker's OpenID RP-initiated logout page for ts's
// client: ts.EndSessionEndpoint with client_id added. Opened in the browser
// that logged in (it needs the broker's session cookie), it asks the user to
// confirm, then ends the broker session; Dex then also ends the refresh
// tokens of clients configured with refreshTokenLifetime: session, which it
// cannot revoke otherwise. The URL deliberately carries no id_token_hint:
// it goes through a browser command's argv and is printed on stderr, where
// a token must never be.
func EndSessionURL(ts *tokenstore.TokenSet) (string, error) {
	if ts.EndSessionEndpoint == "" {
		return "", ErrNoEndSession
	}
	// Checked at login (pkg/discovery); checked again here because the
	// stored value may come from an older version or an edited store.
	u, err := peerurl.Check(`"end_session_endpoint"`, "the identity broker (as stored at login)", ts.EndSessionEndpoint)
	if err != nil {
		return "", fmt.Errorf("%w; or log in again to refresh the broker's endpoints", err)
	}
	q := u.Query()
	q.Del("id_token_hint")
	q.Set("client_id", ts.ClientID)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// revoke posts an RFC 7009 revocation request as a public client.
func (m *Manager) revoke(ctx context.Context, endpoint, clientID, token, hint string) error {
	m.trace("revoke %s %s at %s", hint, redact.Secret(token), endpoint)
	form := url.Values{"token": {token}, "token_type_hint": {hint}, "client_id": {clientID}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("revocation endpoint %q: %w", endpoint, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := m.httpClient().Do(req)
	if err != nil {
		return fmt.Errorf("%w at %s: %w", ErrBrokerUnreachable, netutil.HostOf(endpoint), netutil.UnwrapURLError(err))
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("revocation at %s answered %s: %s", netutil.HostOf(endpoint), resp.Status, oauthError(body))
	}
	return nil
}

// oauthError extracts "error: error_description" from an OAuth error body
// (never echoing arbitrary content, which could contain the token).
func oauthError(body []byte) string {
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if jsonErr := json.Unmarshal(body, &e); jsonErr != nil || e.Error == "" {
		return "no OAuth error given"
	}
	if e.Description != "" {
		return e.Error + ": " + e.Description
	}
	return e.Error
}
