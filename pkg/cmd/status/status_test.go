package status_test

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/clitest"
	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/sessiontest"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/root"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/status"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

const server = "https://pbench.example.com"

type fixture struct {
	f           *cmdutil.Factory
	out, errOut *bytes.Buffer
	broker      *sessiontest.Broker
	store       tokenstore.Store
	now         time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	b := sessiontest.NewBroker(t, "refresh-0")
	now := time.Now().Truncate(time.Second)
	f, out, errOut := clitest.Factory(t, b.Server.Client(), nil)
	f.Now = func() time.Time { return now }
	store, err := f.TokenStore("file")
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{f: f, out: out, errOut: errOut, broker: b, store: store, now: now}
}

// saveAlice stores Keycloak-shaped tokens of alice, expiring in remaining.
func (fx *fixture) saveAlice(t *testing.T, remaining time.Duration) *tokenstore.TokenSet {
	t.Helper()
	ts := fx.broker.TokenSet(server, "refresh-0", fx.now, 5*time.Minute, remaining)
	ts.AccessToken = sessiontest.JWT(map[string]any{
		"iat": fx.now.Add(remaining - 5*time.Minute).Unix(), "sub": "f81d", "preferred_username": "alice-at",
		"realm_access":    map[string]any{"roles": []string{"offline_access", "pbench-user"}},
		"resource_access": map[string]any{"pbench-cli": map[string]any{"roles": []string{"admin", "pbench-user"}}, "other": map[string]any{"roles": []string{"x"}}},
	})
	ts.IDToken = sessiontest.JWT(map[string]any{"sub": "f81d", "preferred_username": "alice", "email": "alice@example.com"})
	if err := fx.store.Save(server, ts); err != nil {
		t.Fatal(err)
	}
	return ts
}

func (fx *fixture) status(args ...string) (int, error) {
	cmd := root.NewCmd(fx.f)
	cmd.SetArgs(append([]string{"status", "--server", server, "--token-store", "file"}, args...))
	err := cmd.Execute()
	return cmdutil.ExitCode(err), err
}

func TestStatusLoggedIn(t *testing.T) {
	fx := newFixture(t)
	ts := fx.saveAlice(t, 4*time.Minute)
	if code, err := fx.status("--json"); code != 0 {
		t.Fatalf("exit %d: %v", code, err)
	}
	var st status.Status
	if err := json.Unmarshal(fx.out.Bytes(), &st); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, fx.out)
	}
	if !st.LoggedIn || st.User != "alice" || st.Email != "alice@example.com" || st.Issuer != fx.broker.URL ||
		!st.AccessExpiry.Equal(ts.Expiry) || !st.RefreshExpiry.Equal(ts.RefreshExpiry) || !st.RefreshToken {
		t.Fatalf("status = %+v", st)
	}
	if want := []string{"offline_access", "pbench-user", "admin"}; !slices.Equal(st.Roles, want) {
		t.Errorf("roles = %v, want %v (realm roles, then the client's, no duplicates, not other clients')", st.Roles, want)
	}
	if st.Store != "file" || st.Location != fx.store.Location(server) || !strings.Contains(st.Warning, "not in the OS keyring") {
		t.Errorf("store %q at %q, warning %q: want the file store, with a warning", st.Store, st.Location, st.Warning)
	}
	if strings.Contains(fx.out.String(), ts.AccessToken) || strings.Contains(fx.out.String(), "refresh-0") {
		t.Fatal("status prints a token")
	}
}

func TestStatusText(t *testing.T) {
	fx := newFixture(t)
	fx.saveAlice(t, 4*time.Minute)
	if code, err := fx.status(); code != 0 {
		t.Fatalf("exit %d: %v", code, err)
	}
	for _, want := range []string{"server:", server, "alice <alice@example.com>", "offline_access, pbench-user, admin", "(in 4m0s)", "(in 1h0m0s)", "file (", "warning:"} {
		if !strings.Contains(fx.out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, fx.out)
		}
	}
}

func TestStatusNotUsable(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, fx *fixture)
		code  int
		check func(st status.Status) bool
	}{
		{"not logged in", nil, cmdutil.ExitNotLoggedIn,
			func(st status.Status) bool { return !st.LoggedIn && !st.SessionExpired && st.User == "" }},
		{"session expired", func(t *testing.T, fx *fixture) { fx.saveAlice(t, -time.Minute); fx.broker.Invalidate() }, cmdutil.ExitSessionExpired,
			func(st status.Status) bool {
				return !st.LoggedIn && st.SessionExpired && st.User == "alice" && strings.Contains(st.Error, "pbench-auth login --server")
			}},
	}
	for _, tt := range tests {
		for _, asJSON := range []bool{true, false} {
			t.Run(tt.name, func(t *testing.T) {
				fx := newFixture(t)
				if tt.setup != nil {
					tt.setup(t, fx)
				}
				args := map[bool][]string{true: {"--json"}}[asJSON]
				code, err := fx.status(args...)
				if code != tt.code {
					t.Fatalf("exit %d (%v), want %d", code, err, tt.code)
				}
				if !asJSON {
					if !strings.Contains(fx.errOut.String(), "pbench-auth login --server "+server) {
						t.Fatalf("stderr %q does not say how to log in", fx.errOut)
					}
					return
				}
				var st status.Status
				if err := json.Unmarshal(fx.out.Bytes(), &st); err != nil || !tt.check(st) {
					t.Fatalf("status %+v (%v)", st, err)
				}
			})
		}
	}
}
