package session_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/brokertest"
	"github.com/distributed-system-analysis/pbench-auth/pkg/discovery"
	"github.com/distributed-system-analysis/pbench-auth/pkg/login"
	"github.com/distributed-system-analysis/pbench-auth/pkg/session"
	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
	"github.com/distributed-system-analysis/pbench-auth/server/devbroker"
	"github.com/distributed-system-analysis/pbench-auth/server/devbroker/devbrowser"
)

// The session against a real OpenID Provider: the development broker
// (zitadel op), which rotates refresh tokens and implements RFC 7009.

const server = "https://pbench.example.com"

// loggedIn runs the development broker, logs alice in (authorization code)
// and stores her tokens; it returns a manager over that store.
func loggedIn(t *testing.T) (*session.Manager, *tokenstore.TokenSet) {
	t.Helper()
	b := brokertest.Start(t, devbroker.User{Name: "alice", Password: "alice-pw"})
	srv := b.Server
	broker, err := discovery.Discover(context.Background(), srv.Client(), b.Issuer(), b.ClientID())
	if err != nil {
		t.Fatal(err)
	}
	res, err := login.Login(context.Background(), login.Options{
		Broker: broker, Server: server, HTTPClient: srv.Client(),
		Browser: func(authURL string) error {
			// Sign in at the broker, then follow its redirect to the
			// loopback listener, as a browser would.
			callback, err := devbrowser.Login(context.Background(), nil, authURL, "alice", "alice-pw")
			if err != nil {
				return err
			}
			go func() {
				resp, err := http.Get(callback) // #nosec G107 -- login's own loopback listener
				if err != nil {
					t.Errorf("callback: %v", err)
					return
				}
				_ = resp.Body.Close()
			}()
			return nil
		},
	})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if res.Tokens.RefreshToken == "" || res.Tokens.RevocationEndpoint == "" {
		t.Fatalf("login gave no refresh token or revocation endpoint")
	}
	dir := t.TempDir()
	store, err := tokenstore.Open(tokenstore.Options{Kind: tokenstore.KindFile, Dir: filepath.Join(dir, "state")})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Save(server, res.Tokens); err != nil {
		t.Fatal(err)
	}
	return &session.Manager{Store: store, HTTPClient: srv.Client(), LockDir: filepath.Join(dir, "locks")}, res.Tokens
}

func TestDevBrokerRefreshRotation(t *testing.T) {
	m, first := loggedIn(t)
	ctx := context.Background()
	second, err := m.Refresh(ctx, server, first.AccessToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if second.AccessToken == first.AccessToken || second.RefreshToken == first.RefreshToken || second.IDToken == "" {
		t.Fatal("refresh did not store a new access token, a rotated refresh token and an id_token")
	}
	if second.RefreshExpiry.IsZero() {
		t.Error("refresh_expires_in was not kept as RefreshExpiry")
	}

	// Another copy of the old tokens (a process that missed the rotation):
	// the broker refuses the spent refresh token, and that is session expired.
	if err := m.Store.Save(server, first); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Refresh(ctx, server, first.AccessToken); !errors.Is(err, session.ErrSessionExpired) {
		t.Fatalf("refresh with a spent refresh token: err = %v, want ErrSessionExpired", err)
	}
}

func TestDevBrokerLogoutRevokes(t *testing.T) {
	m, ts := loggedIn(t)
	ctx := context.Background()
	revokeErr, err := m.Logout(ctx, server)
	if err != nil || revokeErr != nil {
		t.Fatalf("logout: revoke %v, delete %v", revokeErr, err)
	}
	if _, err := m.Token(ctx, server); !errors.Is(err, session.ErrNotLoggedIn) {
		t.Fatalf("after logout: %v, want ErrNotLoggedIn", err)
	}
	// The revoked refresh token no longer works at the broker.
	if err := m.Store.Save(server, ts); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Refresh(ctx, server, ts.AccessToken); !errors.Is(err, session.ErrSessionExpired) {
		t.Fatalf("refresh with a revoked refresh token: err = %v, want ErrSessionExpired", err)
	}
}
