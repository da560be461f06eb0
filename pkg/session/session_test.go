package session

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/sessiontest"
	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

const profile = "https://pbench.example.com"

// env is a Manager over a real file store, a fake clock and a broker.
type env struct {
	m      *Manager
	b      *sessiontest.Broker
	clock  *testutil.Clock
	store  tokenstore.Store
	traced *strings.Builder
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	store, err := tokenstore.Open(tokenstore.Options{Kind: tokenstore.KindFile, Dir: filepath.Join(dir, "state")})
	if err != nil {
		t.Fatal(err)
	}
	c := testutil.NewClock(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
	b := sessiontest.NewBroker(t, "refresh-0")
	b.Now = c.Now
	var mu sync.Mutex
	traced := &strings.Builder{}
	m := &Manager{
		Store:      store,
		HTTPClient: b.Server.Client(),
		Now:        c.Now,
		LockDir:    filepath.Join(dir, "locks"),
		Trace: func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(traced, format+"\n", args...)
		},
	}
	return &env{m: m, b: b, clock: c, store: store, traced: traced}
}

// save stores a token set against the broker: see Broker.TokenSet.
func (e *env) save(t *testing.T, lifetime, remaining time.Duration) *tokenstore.TokenSet {
	t.Helper()
	ts := e.b.TokenSet(profile, "refresh-0", e.clock.Now(), lifetime, remaining)
	if err := e.store.Save(profile, ts); err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestTokenRefreshMargin(t *testing.T) {
	tests := []struct {
		name                string
		lifetime, remaining time.Duration
		refresh             bool
	}{
		{"5m token, 31s left: outside the 30s floor", 5 * time.Minute, 31 * time.Second, false},
		{"5m token, 29s left: inside the 30s floor", 5 * time.Minute, 29 * time.Second, true},
		{"1h token, 7m left: outside 10%", time.Hour, 7 * time.Minute, false},
		{"1h token, 5m left: inside 10%", time.Hour, 5 * time.Minute, true},
		{"expired", 5 * time.Minute, -time.Minute, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			stored := e.save(t, tt.lifetime, tt.remaining)
			ts, err := e.m.Token(context.Background(), profile)
			if err != nil {
				t.Fatal(err)
			}
			refreshed := ts.AccessToken != stored.AccessToken
			if refreshed != tt.refresh || e.b.Grants() != map[bool]int{false: 0, true: 1}[tt.refresh] {
				t.Fatalf("refreshed = %v (%d grants), want %v", refreshed, e.b.Grants(), tt.refresh)
			}
		})
	}
}

func TestRefreshStoresRotatedTokens(t *testing.T) {
	for _, withID := range []bool{false, true} {
		t.Run(fmt.Sprintf("id_token in response: %v", withID), func(t *testing.T) {
			e := newEnv(t)
			e.b.IDToken = withID
			e.b.RefreshExpiresIn = 10 * time.Minute
			e.save(t, 5*time.Minute, 0)
			ts, err := e.m.Token(context.Background(), profile)
			if err != nil {
				t.Fatal(err)
			}
			stored, err := e.store.Load(profile)
			if err != nil {
				t.Fatal(err)
			}
			if stored.AccessToken != ts.AccessToken || stored.RefreshToken != "refresh-1" {
				t.Fatalf("stored refresh token %q; want the rotated refresh-1 and the returned access token", stored.RefreshToken)
			}
			// A refresh answer's id_token is unverified: the one of the
			// login (id-0) stays.
			if stored.IDToken != "id-0" {
				t.Errorf("id_token = %q, want the login's id-0", stored.IDToken)
			}
			now := e.clock.Now()
			if !stored.Expiry.Equal(now.Add(5*time.Minute)) || !stored.RefreshExpiry.Equal(now.Add(10*time.Minute)) {
				t.Errorf("expiry %v, refresh expiry %v; want now+5m and now+10m (refresh_expires_in)", stored.Expiry, stored.RefreshExpiry)
			}
		})
	}
}

func TestRefreshFailures(t *testing.T) {
	t.Run("invalid_grant", func(t *testing.T) {
		e := newEnv(t)
		e.b.Invalidate() // a broker-side logout
		e.save(t, 5*time.Minute, 0)
		_, err := e.m.Token(context.Background(), profile)
		if !errors.Is(err, ErrSessionExpired) || !strings.Contains(err.Error(), "pbench-auth login --server "+profile) {
			t.Fatalf("err = %v; want ErrSessionExpired telling to log in", err)
		}
	})
	t.Run("refresh token expired", func(t *testing.T) {
		e := newEnv(t)
		ts := e.save(t, 5*time.Minute, 0)
		ts.RefreshExpiry = e.clock.Now().Add(-time.Second)
		if err := e.store.Save(profile, ts); err != nil {
			t.Fatal(err)
		}
		e.b.Server.Close() // it must not be asked
		_, err := e.m.Token(context.Background(), profile)
		if !errors.Is(err, ErrSessionExpired) {
			t.Fatalf("err = %v; want ErrSessionExpired without asking the broker", err)
		}
	})
	t.Run("no refresh token", func(t *testing.T) {
		e := newEnv(t)
		ts := e.save(t, 5*time.Minute, 0)
		ts.RefreshToken = ""
		_ = e.store.Save(profile, ts)
		if _, err := e.m.Token(context.Background(), profile); !errors.Is(err, ErrSessionExpired) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("broker unreachable", func(t *testing.T) {
		e := newEnv(t)
		e.save(t, 5*time.Minute, 0)
		host := strings.TrimPrefix(e.b.URL, "http://")
		e.b.Server.Close()
		_, err := e.m.Token(context.Background(), profile)
		if !errors.Is(err, ErrBrokerUnreachable) || !strings.Contains(err.Error(), host) {
			t.Fatalf("err = %v; want ErrBrokerUnreachable naming %s", err, host)
		}
	})
	t.Run("not logged in", func(t *testing.T) {
		e := newEnv(t)
		_, err := e.m.Token(context.Background(), profile)
		if !errors.Is(err, ErrNotLoggedIn) || !strings.Contains(err.Error(), "pbench-auth login --server "+profile) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestRefreshAfter401(t *testing.T) {
	e := newEnv(t)
	stored := e.save(t, 5*time.Minute, 4*time.Minute)
	// Another process already replaced the token the caller had: no grant.
	ts, err := e.m.Refresh(context.Background(), profile, "an older access token")
	if err != nil || ts.AccessToken != stored.AccessToken || e.b.Grants() != 0 {
		t.Fatalf("err %v, %d grants; want the stored token back without a grant", err, e.b.Grants())
	}
	// The stored token itself was rejected: refresh although it looks valid.
	ts, err = e.m.Refresh(context.Background(), profile, stored.AccessToken)
	if err != nil || ts.AccessToken == stored.AccessToken || e.b.Grants() != 1 {
		t.Fatalf("err %v, %d grants; want one refresh and a new token", err, e.b.Grants())
	}
}

func TestLogout(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(e *env, ts *tokenstore.TokenSet)
		wantRevoke func(e *env, err error) bool
	}{
		{"revoked", nil, func(e *env, err error) bool {
			return err == nil && slices.Equal(e.b.Revoked(), []string{"refresh_token:refresh-0"})
		}},
		{"revocation fails", func(e *env, _ *tokenstore.TokenSet) { e.b.RevokeStatus = http.StatusInternalServerError },
			func(_ *env, err error) bool {
				return err != nil && strings.Contains(err.Error(), "500") && strings.Contains(err.Error(), "server_error")
			}},
		{"broker unreachable", func(e *env, _ *tokenstore.TokenSet) { e.b.Server.Close() },
			func(_ *env, err error) bool { return errors.Is(err, ErrBrokerUnreachable) }},
		{"no revocation endpoint", func(e *env, ts *tokenstore.TokenSet) {
			ts.RevocationEndpoint = ""
			_ = e.store.Save(profile, ts)
		}, func(e *env, err error) bool { return errors.Is(err, ErrNoRevocation) && len(e.b.Revoked()) == 0 }},
		{"no refresh token: revoke the access token", func(e *env, ts *tokenstore.TokenSet) {
			ts.RefreshToken = ""
			_ = e.store.Save(profile, ts)
		}, func(e *env, err error) bool {
			return err == nil && len(e.b.Revoked()) == 1 && strings.HasPrefix(e.b.Revoked()[0], "access_token:")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ts := e.save(t, 5*time.Minute, 4*time.Minute)
			if tt.setup != nil {
				tt.setup(e, ts)
			}
			revokeErr, err := e.m.Logout(context.Background(), profile)
			if err != nil {
				t.Fatalf("local deletion failed: %v", err)
			}
			if !tt.wantRevoke(e, revokeErr) {
				t.Errorf("revocation: err = %v, revoked %v", revokeErr, e.b.Revoked())
			}
			if _, err := e.store.Load(profile); !errors.Is(err, tokenstore.ErrNotFound) {
				t.Fatalf("tokens still stored after logout: %v", err)
			}
		})
	}
	t.Run("not logged in", func(t *testing.T) {
		e := newEnv(t)
		if _, err := e.m.Logout(context.Background(), profile); !errors.Is(err, ErrNotLoggedIn) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestTraceNeverShowsTokens(t *testing.T) {
	e := newEnv(t)
	e.b.IDToken = true
	old := e.save(t, 5*time.Minute, 0)
	ts, err := e.m.Token(context.Background(), profile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Logout(context.Background(), profile); err != nil {
		t.Fatal(err)
	}
	out := e.traced.String()
	if !strings.Contains(out, "refresh grant at") || !strings.Contains(out, "revoke") {
		t.Fatalf("trace lacks the steps:\n%s", out)
	}
	for _, secret := range []string{old.AccessToken, old.RefreshToken, ts.AccessToken, ts.RefreshToken, ts.IDToken} {
		if strings.Contains(out, secret) {
			t.Fatalf("trace shows a token (%q):\n%s", secret, out)
		}
	}
}

// A caller's cancellation ends the wait for another process's lock.
func TestLockWaitEndsWithContext(t *testing.T) {
	e := newEnv(t)
	e.save(t, 5*time.Minute, 0)
	if err := os.MkdirAll(e.m.LockDir, 0o700); err != nil {
		t.Fatal(err)
	}
	unlock, err := lockFile(context.Background(), lockPath(e.m.LockDir, profile))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.m.Token(ctx, profile); !errors.Is(err, context.Canceled) || e.b.Grants() != 0 {
		t.Fatalf("err = %v with %d grants; want context.Canceled while another process holds the lock", err, e.b.Grants())
	}
}

// A refresh answer whose token_type is not Bearer is refused, and nothing is
// stored; Bearer is matched case-insensitively.
func TestRefreshRefusesOtherTokenTypes(t *testing.T) {
	for _, tt := range []struct {
		typ string
		ok  bool
	}{{"Bearer", true}, {"bearer", true}, {"BEARER", true}, {"mac", false}, {"DPoP", false}, {"N_A", false}, {"Bearer\x1b[31m", false}} {
		e := newEnv(t)
		e.b.TokenType = tt.typ
		e.save(t, 5*time.Minute, 0)
		before, _ := e.store.Load(profile)
		ts, err := e.m.Token(context.Background(), profile)
		stored, _ := e.store.Load(profile)
		if tt.ok {
			if err != nil || ts.TokenType != "Bearer" || stored.TokenType != "Bearer" {
				t.Errorf("%q: %v, type %q stored %q", tt.typ, err, ts.TokenType, stored.TokenType)
			}
			continue
		}
		if !errors.Is(err, ErrTokenType) || strings.ContainsAny(err.Error(), "\x1b") {
			t.Errorf("%q: %v, want ErrTokenType with a printable message", tt.typ, err)
		}
		if stored.AccessToken != before.AccessToken || stored.RefreshToken != before.RefreshToken {
			t.Errorf("%q: the refused tokens were stored", tt.typ)
		}
	}
}
