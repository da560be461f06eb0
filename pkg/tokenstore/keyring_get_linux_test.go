package tokenstore

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/zalando/go-keyring"
)

// TestSystemGetMatchesGoKeyring checks the two-call read path against
// go-keyring on the real Secret Service: same value (including one larger
// than a chunk), ErrNotFound for a missing entry, and no confusion between
// services or users that share a prefix.
func TestSystemGetMatchesGoKeyring(t *testing.T) {
	if os.Getenv("PBENCH_AUTH_TEST_KEYRING") != "1" {
		t.Skip("needs the Secret Service: run under scripts/with-keyring.sh")
	}
	service := "pbench-auth-test-systemget"
	value := strings.Repeat("v", 5000)
	entries := map[string]string{"u": value, "u#0": "chunk", "u2": "other"}
	for u, v := range entries {
		if err := keyring.Set(service, u, v); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = keyring.Delete(service, u) })
	}
	for u, want := range entries {
		got, err := systemGet(service, u)
		if err != nil || got != want {
			t.Errorf("systemGet(%q) = %d bytes, %v; want %d bytes", u, len(got), err, len(want))
		}
		viaLib, err := keyring.Get(service, u)
		if err != nil || viaLib != got {
			t.Errorf("go-keyring's Get(%q) differs from systemGet: %v", u, err)
		}
	}
	for _, missing := range [][2]string{{service, "nobody"}, {service + "-other", "u"}} {
		if _, err := systemGet(missing[0], missing[1]); !errors.Is(err, keyring.ErrNotFound) {
			t.Errorf("systemGet(%q, %q): %v, want keyring.ErrNotFound", missing[0], missing[1], err)
		}
	}
}

// TestFastGetAnswersOnGnomeKeyring checks that, on gnome-keyring with its
// login collection, the fast path answers by itself (no go-keyring
// fallback) both for an entry and for a missing one, with go-keyring's
// value, so that the saving of issue 7 does not silently disappear.
func TestFastGetAnswersOnGnomeKeyring(t *testing.T) {
	if os.Getenv("PBENCH_AUTH_TEST_KEYRING") != "1" {
		t.Skip("needs the Secret Service: run under scripts/with-keyring.sh")
	}
	service := "pbench-auth-test-fastget"
	if err := keyring.Set(service, "u", "value"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = keyring.Delete(service, "u") })
	if got, err := fastGet(service, "u"); err != nil || got != "value" {
		t.Errorf("fastGet(u) = %q, %v; want \"value\" from the fast path", got, err)
	}
	if _, err := fastGet(service, "missing"); !errors.Is(err, keyring.ErrNotFound) {
		t.Errorf("fastGet(missing): %v; want keyring.ErrNotFound from the fast path", err)
	}
}
