//go:build unix

package tokenstore

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// newFileStore opens a file store in a fresh directory dir/tokens.
func newTestFileStore(t *testing.T) (Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tokens")
	s, err := open(Options{Kind: KindFile, Dir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestFileStoreTightensALooseDirectory(t *testing.T) {
	for _, loose := range []os.FileMode{0o755, 0o777, 0o1777, 0o710} {
		s, dir := newTestFileStore(t)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, loose); err != nil {
			t.Fatal(err)
		}
		if err := s.Save("https://a.example.com", tokenSet("a", 10)); err != nil {
			t.Fatal(err)
		}
		if m := mode(t, dir); m != 0o700 {
			t.Errorf("directory of mode %04o is %04o after Save, want 0700", loose, m)
		}
		// Reading tightens too (a directory loosened since).
		if err := os.Chmod(dir, loose); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Load("https://a.example.com"); err != nil {
			t.Fatal(err)
		}
		if m := mode(t, dir); m != 0o700 {
			t.Errorf("directory of mode %04o is %04o after Load, want 0700", loose, m)
		}
	}
}

func TestFileStoreNeverFollowsALinkedDirectory(t *testing.T) {
	s, dir := newTestFileStore(t)
	target := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, dir); err != nil {
		t.Fatal(err)
	}
	err := s.Save("https://a.example.com", tokenSet("a", 10))
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Save through a linked directory: %v", err)
	}
	if _, err := s.Load("https://a.example.com"); !errors.Is(err, ErrUnsafe) {
		t.Errorf("Load through a linked directory: %v", err)
	}
	if entries, _ := os.ReadDir(target); len(entries) != 0 {
		t.Errorf("tokens written through the link: %v", entries)
	}
}

// TestFileStoreNeverFollowsALinkedFile: a token file that is a symbolic
// link is never read, written through, nor deleted.
func TestFileStoreNeverFollowsALinkedFile(t *testing.T) {
	s, _ := newTestFileStore(t)
	const profile = "https://a.example.com"
	if err := s.Save(profile, tokenSet("mine", 10)); err != nil {
		t.Fatal(err)
	}
	// Someone else's token file, in their directory, linked into ours.
	elsewhere := filepath.Join(t.TempDir(), "planted.json")
	planted := mustJSON(t, fileRecord{Profile: profile, Tokens: tokenSet("planted", 10)})
	if err := os.WriteFile(elsewhere, planted, 0o600); err != nil {
		t.Fatal(err)
	}
	link := s.Location(profile)
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, link); err != nil {
		t.Fatal(err)
	}

	ts, err := s.Load(profile)
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("Load through a link: %v, %v", ts, err)
	}
	if l, err := s.List(); err != nil || len(l) != 0 {
		t.Errorf("List through a link: %v, %v", l, err)
	}
	bad, err := s.(UnreadableLister).Unreadable()
	if err != nil || len(bad) != 1 || bad[0].Location != link || !errors.Is(bad[0].Err, ErrUnsafe) {
		t.Errorf("Unreadable: %v, %v", bad, err)
	}
	err = s.Delete(profile)
	if !errors.Is(err, ErrUnsafe) {
		t.Errorf("Delete of a link: %v", err)
	}
	if _, err := os.Lstat(link); err != nil {
		t.Errorf("the link was removed (%v) though the refusal says to check it", err)
	}
	if err := s.(UnreadableLister).DeleteUnreadable(link); !errors.Is(err, ErrUnsafe) {
		t.Errorf("DeleteUnreadable of a link: %v", err)
	}
	// Save replaces the link itself: the target keeps its content.
	if err := s.Save(profile, tokenSet("new", 10)); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(elsewhere); string(b) != string(planted) {
		t.Error("Save wrote through the link")
	}
	if got, err := s.Load(profile); err != nil || got.AccessToken != tokenSet("new", 10).AccessToken {
		t.Errorf("after Save: %v", err)
	}
	if m := mode(t, link); m != 0o600 {
		t.Errorf("saved file mode %04o", m)
	}
}

func TestFileStoreRefusesAFIFO(t *testing.T) {
	s, dir := newTestFileStore(t)
	const profile = "https://a.example.com"
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(s.Location(profile), 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	// O_NONBLOCK: this returns instead of waiting for a writer.
	if _, err := s.Load(profile); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Load of a FIFO: %v", err)
	}
}

// TestFileStoreRefusesAnotherUsersFiles needs root, to give files away (CI
// runs as root).
func TestFileStoreRefusesAnotherUsersFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown a file to another user")
	}
	const nobody = 65534
	const profile = "https://a.example.com"

	// A token file planted in a shared directory: a session of someone else.
	s, dir := newTestFileStore(t)
	if err := s.Save(profile, tokenSet("planted", 10)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(s.Location(profile), nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(profile); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "belongs to user id 65534") {
		t.Errorf("Load of another user's file: %v", err)
	}
	if err := s.Delete(profile); !errors.Is(err, ErrUnsafe) {
		t.Errorf("Delete of another user's file: %v", err)
	}
	if l, _ := s.List(); len(l) != 0 {
		t.Errorf("List shows another user's file: %v", l)
	}

	// A token directory of another user.
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(profile, tokenSet("x", 10)); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "token directory") {
		t.Errorf("Save into another user's directory: %v", err)
	}
}

// TestFileStoreDamagedFile: a damaged file is ErrCorrupt, skipped by List
// and named by Unreadable, and removable.
func TestFileStoreDamagedFile(t *testing.T) {
	s, _ := newTestFileStore(t)
	for _, p := range []string{"https://a.example.com", "https://b.example.com"} {
		if err := s.Save(p, tokenSet(p, 10)); err != nil {
			t.Fatal(err)
		}
	}
	bad := s.Location("https://a.example.com")
	b, _ := os.ReadFile(bad)
	if err := os.WriteFile(bad, b[:len(b)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load("https://a.example.com"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Load of a truncated file: %v", err)
	}
	l, err := s.List()
	if err != nil || !slices.Equal(l, []string{"https://b.example.com"}) {
		t.Errorf("List: %v, %v", l, err)
	}
	u, err := s.(UnreadableLister).Unreadable()
	if err != nil || len(u) != 1 || u[0].Location != bad || !errors.Is(u[0].Err, ErrCorrupt) {
		t.Fatalf("Unreadable: %v, %v", u, err)
	}
	if err := s.(UnreadableLister).DeleteUnreadable(u[0].Location); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bad); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("damaged file still there: %v", err)
	}
	if err := s.(UnreadableLister).DeleteUnreadable("/etc/passwd"); err == nil {
		t.Error("DeleteUnreadable accepted a path outside the store")
	}
}
