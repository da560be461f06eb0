package token_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/clitest"
	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/sessiontest"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/root"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

const server = "https://pbench.example.com"

type fixture struct {
	f           *cmdutil.Factory
	out, errOut *bytes.Buffer
	broker      *sessiontest.Broker
	store       tokenstore.Store
}

// newFixture is a factory whose file token store lives in a temporary
// XDG_STATE_HOME, selected by PBENCH_AUTH_TOKEN_STORE, with a fake broker.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	b := sessiontest.NewBroker(t, "refresh-0")
	f, out, errOut := clitest.Factory(t, b.Server.Client(), map[string]string{"PBENCH_AUTH_TOKEN_STORE": "file"})
	store, err := f.TokenStore("")
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{f: f, out: out, errOut: errOut, broker: b, store: store}
}

func (fx *fixture) save(t *testing.T, remaining time.Duration) *tokenstore.TokenSet {
	t.Helper()
	ts := fx.broker.TokenSet(server, "refresh-0", time.Now(), 5*time.Minute, remaining)
	if err := fx.store.Save(server, ts); err != nil {
		t.Fatal(err)
	}
	return ts
}

func (fx *fixture) run(args ...string) int {
	cmd := root.NewCmd(fx.f)
	cmd.SetArgs(args)
	return cmdutil.ExitCode(cmd.Execute())
}

func TestToken(t *testing.T) {
	t.Run("valid token, bare", func(t *testing.T) {
		fx := newFixture(t)
		ts := fx.save(t, 4*time.Minute)
		if code := fx.run("token", "--server", server); code != 0 {
			t.Fatalf("exit %d: %s", code, fx.errOut)
		}
		if fx.out.String() != ts.AccessToken+"\n" || fx.errOut.Len() != 0 {
			t.Fatalf("stdout %q, stderr %q; want only the token on stdout", fx.out, fx.errOut)
		}
		if fx.broker.Grants() != 0 {
			t.Fatal("refreshed a token that was still valid")
		}
	})
	t.Run("expiring token, header", func(t *testing.T) {
		fx := newFixture(t)
		old := fx.save(t, 10*time.Second)
		if code := fx.run("token", "--header", "--server", server); code != 0 {
			t.Fatalf("exit %d: %s", code, fx.errOut)
		}
		stored, err := fx.store.Load(server)
		if err != nil {
			t.Fatal(err)
		}
		if stored.AccessToken == old.AccessToken || fx.out.String() != "Authorization: Bearer "+stored.AccessToken+"\n" {
			t.Fatalf("stdout %q; want the refreshed token as a header", fx.out)
		}
	})
}

func TestTokenFailures(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, fx *fixture)
		args    []string
		code    int
		message string
	}{
		{"not logged in", nil, nil, cmdutil.ExitNotLoggedIn, "pbench-auth login --server " + server},
		{"session expired", func(t *testing.T, fx *fixture) { fx.save(t, 0); fx.broker.Invalidate() }, nil,
			cmdutil.ExitSessionExpired, "pbench-auth login --server " + server},
		{"broker unreachable", func(t *testing.T, fx *fixture) { fx.save(t, 0); fx.broker.Server.Close() }, nil,
			cmdutil.ExitNetwork, "127.0.0.1"},
		{"unknown token store", nil, []string{"--token-store", "vault"}, cmdutil.ExitUsage, `"vault"`},
		{"no server", nil, []string{"--server", ""}, cmdutil.ExitUsage, "--server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			if tt.setup != nil {
				tt.setup(t, fx)
			}
			args := []string{"token", "--server", server}
			cmd := root.NewCmd(fx.f)
			cmd.SetArgs(append(args, tt.args...))
			err := cmd.Execute()
			if code := cmdutil.ExitCode(err); code != tt.code || !strings.Contains(err.Error(), tt.message) {
				t.Fatalf("exit %d, error %v; want exit %d and an error saying %q", code, err, tt.code, tt.message)
			}
			if fx.out.Len() != 0 {
				t.Fatalf("stdout %q; want nothing on failure", fx.out)
			}
		})
	}
}
