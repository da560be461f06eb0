package tokenstore

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zalando/go-keyring"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
)

// Tests against the real Secret Service (gnome-keyring). Run them with
//
//	scripts/with-keyring.sh go test -race ./pkg/tokenstore/
//
// They skip unless PBENCH_AUTH_TEST_KEYRING=1, which that script sets.

const helperEnv = "PBENCH_AUTH_TOKENSTORE_HELPER"

// TestMain lets a test re-run this binary as a helper process: go-keyring's
// D-Bus connection is made once per process, so a different bus (none, one
// that never answers, a locked keyring) needs a process of its own.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helper())
	}
	os.Exit(m.Run())
}

// helper opens the store the environment asks for and saves one token set,
// printing "kind=<kind> err=<error>" on stdout; the auto warning goes to stderr.
func helper() int {
	if os.Getenv(helperEnv) == "locked" {
		// Lock the login collection; there is no display for the unlock prompt.
		out, err := exec.Command("dbus-send", "--session", "--dest=org.freedesktop.secrets", "--print-reply",
			"/org/freedesktop/secrets", "org.freedesktop.Secret.Service.Lock",
			"array:objpath:/org/freedesktop/secrets/collection/login").CombinedOutput()
		if err != nil {
			fmt.Printf("lock failed: %v: %s\n", err, out)
			return 1
		}
	}
	timeout, _ := time.ParseDuration(os.Getenv("HELPER_TIMEOUT"))
	s, err := Open(Options{Kind: os.Getenv("HELPER_KIND"), Dir: os.Getenv("HELPER_DIR"), Warn: os.Stderr, Timeout: timeout})
	if err != nil {
		fmt.Printf("kind=none err=%v\n", err)
		return 0
	}
	err = s.Save("https://pbench.example.com", tokenSet("x", 3000))
	fmt.Printf("kind=%s err=%v\n", s.Kind(), err)
	return 0
}

// silentBus is a D-Bus address whose socket accepts connections and never
// answers: the "Secret Service that hangs" case.
func silentBus(t *testing.T) string {
	dir, err := os.MkdirTemp("", "bus") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	l, err := net.Listen("unix", filepath.Join(dir, "bus"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	return "unix:path=" + filepath.Join(dir, "bus")
}

func TestKeyringUnavailable(t *testing.T) {
	tests := []struct {
		name, bus, wantErr string
	}{
		{"no Secret Service", "unix:path=/nonexistent/pbench-auth-bus", "the OS keyring is not available"},
		{"Secret Service never answers", silentBus(t), "the OS keyring did not answer within 500ms (locked or no Secret Service?)"},
	}
	for _, tt := range tests {
		t.Run(tt.name+", keyring", func(t *testing.T) {
			out, _ := testutil.RunHelper(t, []string{testutil.Executable(t)}, helperEnv+"=save", "HELPER_KIND=keyring", "HELPER_TIMEOUT=500ms",
				"HELPER_DIR="+t.TempDir(), "DBUS_SESSION_BUS_ADDRESS="+tt.bus)
			if !strings.Contains(out, "kind=keyring") || !strings.Contains(out, tt.wantErr) || !strings.Contains(out, "use --token-store file") {
				t.Fatalf("helper said %q; want a keyring error saying %q and the hint", out, tt.wantErr)
			}
		})
		t.Run(tt.name+", auto", func(t *testing.T) {
			dir := t.TempDir()
			out, warn := testutil.RunHelper(t, []string{testutil.Executable(t)}, helperEnv+"=save", "HELPER_KIND=auto", "HELPER_TIMEOUT=500ms",
				"HELPER_DIR="+dir, "DBUS_SESSION_BUS_ADDRESS="+tt.bus)
			if strings.TrimSpace(out) != "kind=file err=<nil>" {
				t.Fatalf("helper said %q; want a successful save to the file store", out)
			}
			file := filepath.Join(dir, fileName("https://pbench.example.com"))
			if strings.Count(warn, "\n") != 1 || !strings.Contains(warn, "warning: "+tt.wantErr) || !strings.Contains(warn, file) {
				t.Fatalf("warning %q; want one line with the reason and %s", warn, file)
			}
			if _, err := os.Stat(file); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func requireKeyring(t *testing.T) {
	t.Helper()
	if os.Getenv("PBENCH_AUTH_TEST_KEYRING") != "1" {
		t.Skip("needs a Secret Service: run under scripts/with-keyring.sh (sets PBENCH_AUTH_TEST_KEYRING=1)")
	}
}

func TestSystemKeyring(t *testing.T) {
	requireKeyring(t)
	service := fmt.Sprintf("pbench-auth-test-%d", time.Now().UnixNano())
	s, err := Open(Options{Kind: KindKeyring, Service: service, ChunkSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = keyring.DeleteAll(service) })
	const a, b = "https://a.example.com", "https://b.example.com"

	big := tokenSet("big", 10<<10) // 10 KB: ~170 chunks of 64 bytes
	if err := s.Save(a, big); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(b, tokenSet("b", 10)); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(a)
	if err != nil {
		t.Fatal(err)
	}
	equalTokens(t, got, big)
	bigChunks := (len(mustJSON(t, big)) + 63) / 64
	if _, err := keyring.Get(service, chunkKey(a, bigChunks-1)); err != nil {
		t.Fatalf("last chunk of the 10 KB set: %v", err)
	}

	small := tokenSet("small", 10)
	if err := s.Save(a, small); err != nil {
		t.Fatal(err)
	}
	if got, err = s.Load(a); err != nil {
		t.Fatal(err)
	}
	equalTokens(t, got, small)
	smallChunks := (len(mustJSON(t, small)) + 63) / 64
	for _, i := range []int{smallChunks, smallChunks + 1, bigChunks - 1} {
		if _, err := keyring.Get(service, chunkKey(a, i)); !errors.Is(err, keyring.ErrNotFound) {
			t.Fatalf("chunk %d after rewriting with %d chunks: err = %v, want not found", i, smallChunks, err)
		}
	}

	ps, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ps)
	if !slices.Equal(ps, []string{a, b}) {
		t.Fatalf("List = %v", ps)
	}
	for _, p := range []string{a, b} {
		if err := s.Delete(p); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Load(p); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Load after Delete: %v", err)
		}
	}
	// Nothing at all is left under the service: no header, chunk or index.
	if err := keyring.DeleteAll(service); err != nil {
		t.Fatal(err)
	}
	if _, err := keyring.Get(service, chunkKey(a, 0)); !errors.Is(err, keyring.ErrNotFound) {
		t.Fatalf("chunk 0 after delete: %v", err)
	}
}

func TestSystemKeyringLocked(t *testing.T) {
	requireKeyring(t)
	script, err := filepath.Abs("../../scripts/with-keyring.sh")
	if err != nil {
		t.Fatal(err)
	}
	// A session of its own: a locked keyring cannot be unlocked without a prompt.
	out, _ := testutil.RunHelper(t, []string{script, testutil.Executable(t)}, helperEnv+"=locked", "HELPER_KIND=keyring",
		"HELPER_TIMEOUT=3s", "HELPER_DIR="+t.TempDir())
	if !strings.Contains(out, "kind=keyring") || !strings.Contains(out, "the OS keyring") || !strings.Contains(out, "unlock it, or use --token-store file") {
		t.Fatalf("helper said %q; want a clear keyring error with the hint", out)
	}
}
