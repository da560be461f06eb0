// Package session keeps a profile's tokens usable over time: it refreshes
// the access token before it expires, under a cross-process lock so that
// many pbench-auth processes cause one refresh grant (brokers rotate refresh
// tokens, and a second use of an old one fails), and it revokes tokens on
// logout.
package session

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"golang.org/x/oauth2"

	"github.com/distributed-system-analysis/pbench-auth/internal/netutil"
	"github.com/distributed-system-analysis/pbench-auth/internal/redact"
	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

// Errors a caller branches on (errors.Is). Their wrapped messages tell the
// user which login command to run.
var (
	// ErrNotLoggedIn: the store holds no tokens for the profile.
	ErrNotLoggedIn = errors.New("not logged in")
	// ErrSessionExpired: the refresh token was refused (expired, revoked,
	// already used) or there is none and the access token has expired.
	ErrSessionExpired = errors.New("session expired")
	// ErrBrokerUnreachable: the broker's token or revocation endpoint could
	// not be reached.
	ErrBrokerUnreachable = errors.New("cannot reach the identity broker")
)

// MinMargin is the smallest refresh margin: an access token expiring within
// max(MinMargin, 10% of its lifetime) is refreshed before use.
const MinMargin = 30 * time.Second

// Manager hands out a profile's tokens, refreshing them when needed. The
// zero value is not usable: Store is required.
type Manager struct {
	// Store holds the token sets. Required.
	Store tokenstore.Store
	// HTTPClient talks to the broker. nil means http.DefaultClient (no
	// timeout: callers should pass one with a timeout).
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// LockDir holds one lock file per profile (created 0700). Required for
	// refresh and logout: without it they fail rather than race.
	LockDir string
	// Trace, when set, receives one line per step (never a token).
	Trace func(format string, args ...any)
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Manager) trace(format string, args ...any) {
	if m.Trace != nil {
		m.Trace(format, args...)
	}
}

func (m *Manager) httpClient() *http.Client {
	if m.HTTPClient != nil {
		return m.HTTPClient
	}
	return http.DefaultClient
}

// Token returns the profile's token set with an access token that is valid
// for at least the refresh margin, refreshing it first when needed.
func (m *Manager) Token(ctx context.Context, profile string) (*tokenstore.TokenSet, error) {
	ts, err := m.load(profile)
	if err != nil {
		return nil, err
	}
	if !m.NeedsRefresh(ts) {
		m.trace("tokens of %s from %s: access token valid until %s", profile, m.Store.Location(profile), ts.Expiry.Format(time.RFC3339))
		return ts, nil
	}
	m.trace("access token of %s expires at %s: refreshing", profile, ts.Expiry.Format(time.RFC3339))
	return m.refreshLocked(ctx, profile, func(cur *tokenstore.TokenSet) bool { return m.NeedsRefresh(cur) })
}

// Refresh is for a caller whose request was answered 401 with the access
// token rejected: it refreshes unless the stored access token already
// differs from rejected (another process refreshed meanwhile), and returns
// the token set to retry with.
func (m *Manager) Refresh(ctx context.Context, profile, rejected string) (*tokenstore.TokenSet, error) {
	return m.refreshLocked(ctx, profile, func(cur *tokenstore.TokenSet) bool { return cur.AccessToken == rejected })
}

// NeedsRefresh says whether ts's access token expires within the margin:
// max(30s, 10% of its lifetime). The lifetime comes from the access token's
// iat claim when it is a JWT; otherwise the margin is 30s.
func (m *Manager) NeedsRefresh(ts *tokenstore.TokenSet) bool {
	if ts.AccessToken == "" {
		return true
	}
	if ts.Expiry.IsZero() {
		return false // the broker gave no expiry: use it until a 401 says otherwise
	}
	margin := MinMargin
	if iat := issuedAt(ts.AccessToken); !iat.IsZero() && ts.Expiry.After(iat) {
		margin = max(margin, ts.Expiry.Sub(iat)/10)
	}
	return !m.now().Add(margin).Before(ts.Expiry)
}

func (m *Manager) load(profile string) (*tokenstore.TokenSet, error) {
	ts, err := m.Store.Load(profile)
	if errors.Is(err, tokenstore.ErrNotFound) {
		return nil, fmt.Errorf("%w to %s: run `%s`", ErrNotLoggedIn, profile, LoginCommand(profile, nil))
	}
	if err != nil {
		return nil, err
	}
	return ts, nil
}

// LoginCommand is the command that logs in to profile again, for messages.
func LoginCommand(profile string, ts *tokenstore.TokenSet) string {
	if ts != nil && ts.Server == "" && ts.Issuer != "" {
		return fmt.Sprintf("pbench-auth login --issuer %s --client-id %s", ts.Issuer, ts.ClientID)
	}
	return "pbench-auth login --server " + profile
}

// lockAndLoad takes the profile's lock and then reads its tokens, so that
// what it returns is current while the lock is held. On success the caller
// must call unlock; on an error the lock is already released.
func (m *Manager) lockAndLoad(ctx context.Context, profile string) (ts *tokenstore.TokenSet, unlock func(), err error) {
	unlock, err = m.lock(ctx, profile)
	if err != nil {
		return nil, nil, err
	}
	if ts, err = m.load(profile); err != nil {
		unlock()
		return nil, nil, err
	}
	return ts, unlock, nil
}

// refreshLocked takes the profile's lock, re-reads the store (another
// process may have refreshed while this one waited), and refreshes only if
// still needed.
func (m *Manager) refreshLocked(ctx context.Context, profile string, needed func(*tokenstore.TokenSet) bool) (*tokenstore.TokenSet, error) {
	ts, unlock, err := m.lockAndLoad(ctx, profile)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if !needed(ts) {
		m.trace("tokens of %s were refreshed by another process", profile)
		return ts, nil
	}
	if err := m.refresh(ctx, profile, ts); err != nil {
		return nil, err
	}
	if err := m.Store.Save(profile, ts); err != nil {
		return nil, fmt.Errorf("store refreshed tokens: %w", err)
	}
	m.trace("stored refreshed tokens of %s in %s", profile, m.Store.Location(profile))
	return ts, nil
}

// refresh runs the refresh grant and updates ts in place.
func (m *Manager) refresh(ctx context.Context, profile string, ts *tokenstore.TokenSet) error {
	expired := func(why string) error {
		return fmt.Errorf("%w for %s: %s: run `%s`", ErrSessionExpired, profile, why, LoginCommand(profile, ts))
	}
	if ts.RefreshToken == "" {
		return expired("the access token has expired and the broker issued no refresh token")
	}
	if !ts.RefreshExpiry.IsZero() && !m.now().Before(ts.RefreshExpiry) {
		return expired("the refresh token expired at " + ts.RefreshExpiry.Format(time.RFC3339))
	}
	if ts.TokenEndpoint == "" {
		return expired("no token endpoint is stored")
	}
	conf := &oauth2.Config{
		ClientID: ts.ClientID,
		Endpoint: oauth2.Endpoint{TokenURL: ts.TokenEndpoint, AuthStyle: oauth2.AuthStyleInParams},
	}
	m.trace("refresh grant at %s (refresh token %s)", ts.TokenEndpoint, redact.Secret(ts.RefreshToken))
	ctx = context.WithValue(ctx, oauth2.HTTPClient, m.httpClient())
	tok, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: ts.RefreshToken}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		switch {
		case errors.As(err, &re) && re.ErrorCode == "invalid_grant":
			return expired("the broker refused the refresh token (" + re.ErrorCode + ")")
		case errors.As(err, &re):
			return fmt.Errorf("refresh tokens of %s at %s: the broker answered %s %s", profile, netutil.HostOf(ts.TokenEndpoint), re.Response.Status, re.ErrorCode)
		case ctx.Err() != nil:
			return fmt.Errorf("refresh tokens of %s: %w", profile, ctx.Err())
		default:
			return fmt.Errorf("%w at %s: %w", ErrBrokerUnreachable, netutil.HostOf(ts.TokenEndpoint), netutil.UnwrapURLError(err))
		}
	}
	if err := CheckTokenType(tok); err != nil {
		return fmt.Errorf("refresh tokens of %s at %s: %w; nothing was stored", profile, netutil.HostOf(ts.TokenEndpoint), err)
	}
	// An id_token in a refresh answer is not stored: nothing here verifies
	// it (that takes the broker's keys), and status would show the name it
	// claims. The one verified at login stays.
	apply(ts, tok, m.now(), false)
	m.trace("refreshed: access token %s valid until %s", redact.Secret(ts.AccessToken), ts.Expiry.Format(time.RFC3339))
	return nil
}

// lock takes the profile's cross-process lock, waiting as long as ctx allows.
func (m *Manager) lock(ctx context.Context, profile string) (func(), error) {
	if m.LockDir == "" {
		return nil, errors.New("session: no lock directory configured")
	}
	if err := os.MkdirAll(m.LockDir, 0o700); err != nil {
		return nil, fmt.Errorf("create lock directory: %w", err)
	}
	path := lockPath(m.LockDir, profile)
	waitCtx, cancel := context.WithTimeout(ctx, LockWait)
	defer cancel()
	unlock, err := lockFile(waitCtx, path)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("another pbench-auth process has held the lock %s for %s: wait for it to finish, or end it", path, LockWait)
	}
	return unlock, err
}

// LockWait bounds the wait for another process's refresh or logout of the
// same profile (a refresh waits at most for the broker and the keyring).
const LockWait = 2 * time.Minute
