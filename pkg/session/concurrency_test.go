package session

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/sessiontest"
	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

const helperEnv = "PBENCH_AUTH_SESSION_HELPER"

// TestMain lets TestConcurrentProcessesRefreshOnce re-run this binary as
// independent pbench-auth-like processes.
func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		os.Exit(helper(dir))
	}
	os.Exit(m.Run())
}

// helper asks for a token the way `pbench-auth token` does, with the store
// from openStore and the locks under dir, and prints it.
func helper(dir string) int {
	store, err := openStore(dir, os.Getenv("HELPER_KIND"), os.Getenv("HELPER_SERVICE"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	m := &Manager{Store: store, LockDir: filepath.Join(dir, "locks")}
	ts, err := m.Token(context.Background(), profile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(ts.AccessToken)
	return 0
}

func openStore(dir, kind, service string) (tokenstore.Store, error) {
	return tokenstore.Open(tokenstore.Options{Kind: kind, Dir: filepath.Join(dir, "state"), Service: service, ChunkSize: 256})
}

// TestConcurrentProcessesRefreshOnce starts 20 processes at once, each
// needing a refresh, against a broker that rotates refresh tokens: one
// refresh grant must serve them all. With the real Secret Service (see
// scripts/with-keyring.sh) it runs on the keyring too, in small chunks.
func TestConcurrentProcessesRefreshOnce(t *testing.T) {
	kinds := []string{tokenstore.KindFile}
	if os.Getenv("PBENCH_AUTH_TEST_KEYRING") == "1" {
		kinds = append(kinds, tokenstore.KindKeyring)
	}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) { testConcurrentRefresh(t, kind) })
	}
}

func testConcurrentRefresh(t *testing.T, kind string) {
	const n = 20
	dir := t.TempDir()
	service := fmt.Sprintf("pbench-auth-test-%d", time.Now().UnixNano())
	b := sessiontest.NewBroker(t, "refresh-0") // rotates: a second use of refresh-0 is invalid_grant
	store, err := openStore(dir, kind, service)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Delete(profile) })
	// 10s left of 5m: inside the 30s margin, so every process wants a refresh.
	old := b.TokenSet(profile, "refresh-0", time.Now(), 5*time.Minute, 10*time.Second)
	if err := store.Save(profile, old); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmds := make([]*exec.Cmd, n)
	outs := make([]*bytes.Buffer, n)
	errs := make([]*bytes.Buffer, n)
	for i := range cmds {
		cmds[i] = exec.Command(exe) // #nosec G204 -- the test binary itself
		cmds[i].Env = append(os.Environ(), helperEnv+"="+dir, "HELPER_KIND="+kind, "HELPER_SERVICE="+service)
		outs[i], errs[i] = &bytes.Buffer{}, &bytes.Buffer{}
		cmds[i].Stdout, cmds[i].Stderr = outs[i], errs[i]
	}
	for _, c := range cmds {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	failed := 0
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			failed++
			t.Errorf("process %d: %v: %s", i, err, errs[i])
		}
	}
	stored, err := store.Load(profile)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Grants(); got != 1 {
		t.Errorf("%d refresh grants for %d processes, want exactly 1", got, n)
	}
	if stored.RefreshToken != "refresh-1" || stored.AccessToken == old.AccessToken {
		t.Fatalf("stored refresh token %q: want the rotated refresh-1 and a new access token", stored.RefreshToken)
	}
	for i, out := range outs {
		if got := strings.TrimSpace(out.String()); failed == 0 && got != stored.AccessToken {
			t.Errorf("process %d printed a token other than the refreshed one", i)
		}
	}
}
