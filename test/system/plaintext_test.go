package system

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

// TestNoPlaintextTokenOnDisk logs in with the real binary and searches the
// CLI's HOME, XDG directories and TMPDIR, the system temporary directory
// (files changed since the test started) and the keyring daemon's own files
// for the tokens:
//
//   - file store (a control that proves the search finds them): the tokens
//     are in exactly one file, the documented one, mode 0600; after logout,
//     nowhere;
//   - keyring store (real Secret Service, PBENCH_AUTH_TEST_KEYRING=1, as
//     scripts/with-keyring.sh provides): nowhere.
func TestNoPlaintextTokenOnDisk(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		start := time.Now()
		c, _, _, _ := loggedIn(t, "file", nil)
		tokens := c.storedTokens()
		found := scanForSecrets(t, tokens, start, c.dir)
		want := c.tokenFile()
		if len(found) != 1 || found[0] != want {
			t.Fatalf("tokens found in %q, want only in the file store's %s", found, want)
		}
		if fi, err := os.Stat(want); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("token file mode %v (%v), want 0600", fi.Mode().Perm(), err)
		}
		if r := c.run("logout"); r.code != 0 {
			t.Fatalf("logout: exit %d: %s", r.code, r.stderr)
		}
		if found := scanForSecrets(t, tokens, start, c.dir); len(found) != 0 {
			t.Errorf("after logout, tokens remain in %q", found)
		}
	})
	t.Run("keyring", func(t *testing.T) {
		if os.Getenv("PBENCH_AUTH_TEST_KEYRING") != "1" {
			t.Skip("needs a Secret Service: run under scripts/with-keyring.sh with PBENCH_AUTH_TEST_KEYRING=1")
		}
		start := time.Now()
		c, base, _, _ := loggedIn(t, "keyring", nil)

		store, err := tokenstore.Open(tokenstore.Options{Kind: tokenstore.KindKeyring})
		if err != nil {
			t.Fatal(err)
		}
		// The profile is the server's URL. Looked up by name, not through the
		// profile index (List), which other tests' processes sharing this
		// Secret Service may rewrite at the same time.
		ts, err := store.Load(base)
		if err != nil || !strings.HasPrefix(ts.Issuer, base) {
			t.Fatalf("the login's tokens are not in the keyring under %s: %+v, %v", base, ts != nil, err)
		}
		t.Cleanup(func() { _ = store.Delete(base) })
		tokens := []string{ts.AccessToken, ts.RefreshToken, ts.IDToken}
		dirs := []string{c.dir}
		if home, err := os.UserHomeDir(); err == nil {
			dirs = append(dirs, filepath.Join(home, ".local", "share", "keyrings"))
		}
		if found := scanForSecrets(t, tokens, start, dirs...); len(found) != 0 {
			t.Errorf("with the keyring store, tokens are in plaintext in %q", found)
		}
		if r := c.run("logout"); r.code != 0 {
			t.Errorf("logout: exit %d: %s", r.code, r.stderr)
		}
	})
}

// scanForSecrets returns the files under dirs, and the files of the system
// temporary directory changed since start, that contain any of secrets.
func scanForSecrets(t *testing.T, secrets []string, start time.Time, dirs ...string) []string {
	t.Helper()
	var found []string
	check := func(path string, d fs.DirEntry, recentOnly bool) {
		info, err := d.Info()
		if err != nil || !info.Mode().IsRegular() || info.Size() > 16<<20 || (recentOnly && info.ModTime().Before(start)) {
			return
		}
		b, err := os.ReadFile(path) // #nosec G304 -- a scan of the test's own directories
		if err != nil {
			return
		}
		for _, s := range secrets {
			if len(s) >= 16 && bytes.Contains(b, []byte(s)) {
				found = append(found, path)
				return
			}
		}
	}
	walk := func(root string, recentOnly bool, maxDepth int) {
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			switch {
			case err != nil && d != nil && d.IsDir():
				return filepath.SkipDir // unreadable: not ours
			case err != nil:
				return nil //nolint:nilerr // an unreadable file is not ours: keep scanning
			}
			if d.IsDir() {
				if rel, _ := filepath.Rel(root, path); rel != "." && strings.Count(rel, string(filepath.Separator)) >= maxDepth {
					return filepath.SkipDir
				}
				return nil
			}
			check(path, d, recentOnly)
			return nil
		})
	}
	for _, d := range dirs {
		walk(d, false, 64)
	}
	walk(os.TempDir(), true, 4)
	return dedupe(found)
}

func dedupe(l []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range l {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
