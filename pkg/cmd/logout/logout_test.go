package logout_test

import (
	"bytes"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/root"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
	"github.com/distributed-system-analysis/pbench-auth/pkg/session/sessiontest"
	"github.com/distributed-system-analysis/pbench-auth/pkg/testutil/clitest"
	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

const serverA, serverB = "https://a.example.com", "https://b.example.com"

type fixture struct {
	f           *cmdutil.Factory
	out, errOut *bytes.Buffer
	broker      *sessiontest.Broker
	store       tokenstore.Store
}

func newFixture(t *testing.T, profiles ...string) *fixture {
	t.Helper()
	b := sessiontest.NewBroker(t)
	f, out, errOut := clitest.Factory(t, b.Server.Client(), map[string]string{"PBENCH_SERVER": serverA})
	store, err := f.TokenStore("file")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range profiles {
		if err := store.Save(p, b.TokenSet(p, "refresh-"+p, time.Now(), 5*time.Minute, 4*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	return &fixture{f: f, out: out, errOut: errOut, broker: b, store: store}
}

func (fx *fixture) logout(args ...string) (int, error) {
	cmd := root.NewCmd(fx.f)
	cmd.SetArgs(append([]string{"logout", "--token-store", "file"}, args...))
	err := cmd.Execute()
	return cmdutil.ExitCode(err), err
}

func (fx *fixture) stored(t *testing.T, profile string) bool {
	t.Helper()
	_, err := fx.store.Load(profile)
	if err != nil && !errors.Is(err, tokenstore.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func TestLogout(t *testing.T) {
	fx := newFixture(t, serverA, serverB)
	if code, err := fx.logout(); code != 0 { // the server from $PBENCH_SERVER
		t.Fatalf("exit %d: %v", code, err)
	}
	if fx.stored(t, serverA) || !fx.stored(t, serverB) {
		t.Fatal("want a's tokens deleted and b's kept")
	}
	if got := fx.broker.Revoked(); !slices.Equal(got, []string{"refresh_token:refresh-" + serverA}) {
		t.Fatalf("revoked %v", got)
	}
	if !strings.Contains(fx.errOut.String(), "logged out of "+serverA) || fx.out.Len() != 0 {
		t.Fatalf("stdout %q, stderr %q", fx.out, fx.errOut)
	}
}

func TestLogoutAll(t *testing.T) {
	fx := newFixture(t, serverA, serverB)
	if code, err := fx.logout("--all"); code != 0 {
		t.Fatalf("exit %d: %v", code, err)
	}
	if fx.stored(t, serverA) || fx.stored(t, serverB) || len(fx.broker.Revoked()) != 2 {
		t.Fatalf("after --all: a stored %v, b stored %v, revoked %v", fx.stored(t, serverA), fx.stored(t, serverB), fx.broker.Revoked())
	}
}

func TestLogoutRevocationFails(t *testing.T) {
	fx := newFixture(t, serverA)
	fx.broker.RevokeStatus = http.StatusServiceUnavailable
	if code, err := fx.logout("--server", serverA); code != 0 {
		t.Fatalf("exit %d (%v): a failed revocation must not fail the logout", code, err)
	}
	if fx.stored(t, serverA) {
		t.Fatal("tokens kept after a failed revocation; want them deleted")
	}
	if !strings.Contains(fx.errOut.String(), "warning: "+serverA+": tokens not revoked at the broker") ||
		!strings.Contains(fx.errOut.String(), "503") {
		t.Fatalf("stderr %q: want the revocation failure reported", fx.errOut)
	}
}

func TestLogoutNotLoggedIn(t *testing.T) {
	fx := newFixture(t)
	if code, err := fx.logout("--server", serverB); code != 0 {
		t.Fatalf("exit %d: %v", code, err)
	}
	if !strings.Contains(fx.errOut.String(), "not logged in to "+serverB) {
		t.Fatalf("stderr %q", fx.errOut)
	}
}

func TestLogoutUsage(t *testing.T) {
	fx := newFixture(t, serverA)
	if code, _ := fx.logout("--all", "--server", serverA); code != cmdutil.ExitUsage {
		t.Fatalf("exit %d, want %d", code, cmdutil.ExitUsage)
	}
	if !fx.stored(t, serverA) {
		t.Fatal("a usage error deleted tokens")
	}
}
