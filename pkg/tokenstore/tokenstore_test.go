package tokenstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeKeyring is an in-memory keyring. block, when set, makes every call
// wait on it (a keyring that never answers); fail makes every call fail.
type fakeKeyring struct {
	mu    sync.Mutex
	items map[string]string // service + "\x00" + user
	block chan struct{}
	fail  error
	// afterGet, when set, runs after every Get (as another process would).
	afterGet func(user string)
}

func newFakeKeyring() *fakeKeyring { return &fakeKeyring{items: map[string]string{}} }

func (k *fakeKeyring) wait() error {
	if k.block != nil {
		<-k.block
	}
	return k.fail
}

func (k *fakeKeyring) Get(service, user string) (string, error) {
	if err := k.wait(); err != nil {
		return "", err
	}
	if k.afterGet != nil {
		defer k.afterGet(user)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.items[service+"\x00"+user]
	if !ok {
		return "", errKeyringMissing
	}
	return v, nil
}

func (k *fakeKeyring) Set(service, user, password string) error {
	if err := k.wait(); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.items[service+"\x00"+user] = password
	return nil
}

func (k *fakeKeyring) Delete(service, user string) error {
	if err := k.wait(); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.items[service+"\x00"+user]; !ok {
		return errKeyringMissing
	}
	delete(k.items, service+"\x00"+user)
	return nil
}

// users lists the keyring users of service, sorted.
func (k *fakeKeyring) users(service string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var us []string
	for key := range k.items {
		if s, u, _ := strings.Cut(key, "\x00"); s == service {
			us = append(us, u)
		}
	}
	slices.Sort(us)
	return us
}

// tokenSet returns a token set whose JSON is at least size bytes.
func tokenSet(tag string, size int) *TokenSet {
	return &TokenSet{
		Server:        "https://pbench.example.com",
		Issuer:        "https://broker.example.com/realms/pbench",
		ClientID:      "pbench-cli",
		TokenEndpoint: "https://broker.example.com/realms/pbench/protocol/openid-connect/token",
		AccessToken:   tag + strings.Repeat("a", size),
		RefreshToken:  "refresh-" + tag,
		IDToken:       "id-" + tag,
		Expiry:        time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
		RefreshExpiry: time.Date(2030, 1, 3, 3, 4, 5, 0, time.UTC),
	}
}

func equalTokens(t *testing.T, got, want *TokenSet) {
	t.Helper()
	if got.AccessToken != want.AccessToken || got.RefreshToken != want.RefreshToken || got.IDToken != want.IDToken ||
		!got.Expiry.Equal(want.Expiry) || !got.RefreshExpiry.Equal(want.RefreshExpiry) ||
		got.TokenEndpoint != want.TokenEndpoint || got.ClientID != want.ClientID {
		t.Fatalf("loaded token set differs from the saved one (access %d vs %d bytes)", len(got.AccessToken), len(want.AccessToken))
	}
}

func TestKeyringChunking(t *testing.T) {
	const profile = "https://pbench.example.com"
	tests := []struct {
		name        string
		chunk, size int
	}{
		{"fits in one chunk", 2000, 10},
		{"tiny chunks", 64, 1000},
		{"10 KB token set", 64, 10 << 10},
		{"default chunk size, 10 KB", 0, 10 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr := newFakeKeyring()
			s, err := open(Options{Kind: KindKeyring, ChunkSize: tt.chunk}, kr)
			if err != nil {
				t.Fatal(err)
			}
			want := tokenSet("x", tt.size)
			if err := s.Save(profile, want); err != nil {
				t.Fatal(err)
			}
			got, err := s.Load(profile)
			if err != nil {
				t.Fatal(err)
			}
			equalTokens(t, got, want)
			limit := tt.chunk
			if limit == 0 {
				limit = DefaultChunkSize
			}
			chunks := 0
			for _, u := range kr.users(DefaultService) {
				v, _ := kr.Get(DefaultService, u)
				isChunk := strings.Contains(u[1:], "#")
				switch {
				case isChunk && len(v) > limit:
					t.Errorf("chunk %q holds %d bytes, more than the chunk size %d", u, len(v), limit)
				case !isChunk && len(v) > maxHeader:
					t.Errorf("header %q holds %d bytes", u, len(v))
				}
				if isChunk && strings.HasPrefix(u, profile) {
					chunks++
				}
			}
			if wantChunks := (len(mustJSON(t, want)) + limit - 1) / limit; chunks != wantChunks {
				t.Errorf("token set stored in %d chunks, want %d", chunks, wantChunks)
			}
		})
	}
}

func TestKeyringRewriteAndDeleteLeaveNoStaleChunk(t *testing.T) {
	const profile = "https://pbench.example.com"
	kr := newFakeKeyring()
	s, err := open(Options{Kind: KindKeyring, ChunkSize: 64}, kr)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(profile, tokenSet("big", 5000)); err != nil {
		t.Fatal(err)
	}
	bigEntries := len(kr.users(DefaultService))
	small := tokenSet("small", 10)
	if err := s.Save(profile, small); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(profile)
	if err != nil {
		t.Fatal(err)
	}
	equalTokens(t, got, small)
	var profileEntries []string
	for _, u := range kr.users(DefaultService) {
		if strings.HasPrefix(u, profile) {
			profileEntries = append(profileEntries, u)
		}
	}
	var h chunkHeader
	raw, _ := kr.Get(DefaultService, profile)
	if err := jsonUnmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	if len(profileEntries) != h.Chunks+1 || len(profileEntries) >= bigEntries {
		t.Fatalf("after rewriting with fewer chunks, entries = %v; want the header and %d chunks", profileEntries, h.Chunks)
	}

	if err := s.Delete(profile); err != nil {
		t.Fatal(err)
	}
	if left := kr.users(DefaultService); len(left) != 0 {
		t.Fatalf("after delete, keyring still holds %v", left)
	}
	if _, err := s.Load(profile); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Load after Delete: err = %v, want ErrNotFound", err)
	}
	if err := s.Delete(profile); err != nil {
		t.Fatalf("deleting a missing profile: %v", err)
	}
}

func TestKeyringList(t *testing.T) {
	s, err := open(Options{Kind: KindKeyring, ChunkSize: 32}, newFakeKeyring())
	if err != nil {
		t.Fatal(err)
	}
	profiles := []string{"https://a.example.com", "https://b.example.com", "https://broker.example.com/realms/x"}
	for _, p := range profiles {
		if err := s.Save(p, tokenSet(p, 100)); err != nil {
			t.Fatal(err)
		}
		if err := s.Save(p, tokenSet(p, 50)); err != nil { // saving again must not duplicate
			t.Fatal(err)
		}
	}
	if err := s.Delete(profiles[1]); err != nil {
		t.Fatal(err)
	}
	got, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{profiles[0], profiles[2]}; !slices.Equal(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
}

func TestKeyringDetectsDamage(t *testing.T) {
	const profile = "https://pbench.example.com"
	kr := newFakeKeyring()
	s, _ := open(Options{Kind: KindKeyring, ChunkSize: 64}, kr)
	if err := s.Save(profile, tokenSet("x", 500)); err != nil {
		t.Fatal(err)
	}
	if err := kr.Set(DefaultService, profile+"#2", "tampered"); err != nil {
		t.Fatal(err)
	}
	_, err := s.Load(profile)
	if err == nil || !strings.Contains(err.Error(), "log in again") {
		t.Fatalf("Load of a damaged value: err = %v, want an error telling to log in again", err)
	}
	if err := kr.Delete(DefaultService, profile+"#1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(profile); err == nil || !strings.Contains(err.Error(), "lacks chunk 1") {
		t.Fatalf("Load with a missing chunk: err = %v", err)
	}
}

func TestKeyringTimeout(t *testing.T) {
	kr := newFakeKeyring()
	kr.block = make(chan struct{})
	defer close(kr.block)
	s, _ := open(Options{Kind: KindKeyring, Timeout: 20 * time.Millisecond}, kr)
	for name, call := range map[string]func() error{
		"load":   func() error { _, err := s.Load("https://p.example.com"); return err },
		"save":   func() error { return s.Save("https://p.example.com", tokenSet("x", 1)) },
		"delete": func() error { return s.Delete("https://p.example.com") },
		"list":   func() error { _, err := s.List(); return err },
	} {
		err := call()
		if !errors.Is(err, ErrKeyringUnavailable) {
			t.Fatalf("%s: err = %v, want ErrKeyringUnavailable", name, err)
		}
		for _, want := range []string{"did not answer within 20ms", "--token-store file"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q does not say %q", name, err, want)
			}
		}
	}
}

func TestKeyringErrorIsClear(t *testing.T) {
	kr := newFakeKeyring()
	kr.fail = errors.New("org.freedesktop.DBus.Error.ServiceUnknown")
	s, _ := open(Options{Kind: KindKeyring}, kr)
	_, err := s.Load("https://p.example.com")
	if !errors.Is(err, ErrKeyringUnavailable) || !strings.Contains(err.Error(), "ServiceUnknown") ||
		!strings.Contains(err.Error(), "--token-store file") {
		t.Fatalf("err = %v, want the keyring's error and the hint", err)
	}
}

func TestAuto(t *testing.T) {
	const profile = "https://pbench.example.com"
	t.Run("keyring answers", func(t *testing.T) {
		var warn bytes.Buffer
		s, err := open(Options{Kind: KindAuto, Dir: t.TempDir(), Warn: &warn}, newFakeKeyring())
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Save(profile, tokenSet("x", 10)); err != nil {
			t.Fatal(err)
		}
		if s.Kind() != KindKeyring || warn.Len() != 0 {
			t.Fatalf("kind %q, warning %q; want the keyring, silently", s.Kind(), warn.String())
		}
	})
	for name, kr := range map[string]*fakeKeyring{
		"keyring fails":         {items: map[string]string{}, fail: errors.New("no such interface")},
		"keyring never answers": {items: map[string]string{}, block: make(chan struct{})},
	} {
		t.Run(name, func(t *testing.T) {
			var warn bytes.Buffer
			dir := t.TempDir()
			s, err := open(Options{Kind: KindAuto, Dir: dir, Warn: &warn, Timeout: 20 * time.Millisecond}, kr)
			if err != nil {
				t.Fatal(err)
			}
			if s.Kind() != KindFile {
				t.Fatalf("kind = %q, want file", s.Kind())
			}
			for range 2 {
				if err := s.Save(profile, tokenSet("x", 10)); err != nil {
					t.Fatal(err)
				}
			}
			lines := strings.Split(strings.TrimSpace(warn.String()), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "warning:") || !strings.Contains(lines[0], s.Location(profile)) {
				t.Fatalf("warning = %q; want one line naming %s", warn.String(), s.Location(profile))
			}
			if _, err := os.Stat(s.Location(profile)); err != nil {
				t.Fatalf("the file named by the warning: %v", err)
			}
		})
	}
}

func TestOpenRejectsUnknownKind(t *testing.T) {
	_, err := Open(Options{Kind: "vault"})
	if err == nil || !strings.Contains(err.Error(), `"vault"`) || !strings.Contains(err.Error(), "auto, keyring or file") {
		t.Fatalf("err = %v", err)
	}
}

func TestFileStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "pbench-auth")
	s, err := open(Options{Kind: KindFile, Dir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	profiles := []string{"https://a.example.com", "https://a.example.com:8443", "http://a.example.com", "https://broker/realms/x?y"}
	for i, p := range profiles {
		if _, err := s.Load(p); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Load before Save: %v", err)
		}
		if err := s.Save(p, tokenSet(fmt.Sprint(i), 10)); err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range profiles {
		got, err := s.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		equalTokens(t, got, tokenSet(fmt.Sprint(i), 10))
		fi, err := os.Stat(s.Location(p))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", s.Location(p), fi.Mode().Perm())
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("directory mode: %v %v, want 0700", fi.Mode().Perm(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(profiles) {
		t.Fatalf("directory holds %d entries, want one file per profile (no temp files left)", len(entries))
	}
	got, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(profiles))
	if !slices.Equal(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
	if err := s.Delete(profiles[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(profiles[0]); err != nil {
		t.Fatalf("deleting a missing profile: %v", err)
	}
	if _, err := s.Load(profiles[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Load after Delete: %v", err)
	}
}

func TestFileStoreRefusesReadableFile(t *testing.T) {
	s, _ := open(Options{Kind: KindFile, Dir: t.TempDir()}, nil)
	const profile = "https://pbench.example.com"
	if err := s.Save(profile, tokenSet("x", 10)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(s.Location(profile), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := s.Load(profile)
	if err == nil || !strings.Contains(err.Error(), "chmod 600") || !strings.Contains(err.Error(), "0644") {
		t.Fatalf("Load of a 0644 file: err = %v, want a refusal with the fix", err)
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// maxHeader bounds a header entry: far below every OS keyring's limit.
const maxHeader = 200

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A reader that meets a value half rewritten by another process reads again
// instead of reporting damage.
func TestKeyringTornReadIsRetried(t *testing.T) {
	const profile = "https://pbench.example.com"
	kr := newFakeKeyring()
	s, _ := open(Options{Kind: KindKeyring, ChunkSize: 64}, kr)
	newer, older := tokenSet("new", 500), tokenSet("old", 500)
	if err := s.Save(profile, newer); err != nil {
		t.Fatal(err)
	}
	snapshot := map[string]string{}
	for _, u := range kr.users(DefaultService) {
		snapshot[u], _ = kr.Get(DefaultService, u)
	}
	if err := s.Save(profile, older); err != nil {
		t.Fatal(err)
	}
	// The writer has replaced the header; it finishes the chunks while the
	// reader is half-way through them.
	_ = kr.Set(DefaultService, profile, snapshot[profile])
	var once sync.Once
	kr.afterGet = func(user string) {
		if user == chunkKey(profile, 5) { // chunks 0-5 were the old ones
			once.Do(func() {
				for u, v := range snapshot {
					_ = kr.Set(DefaultService, u, v)
				}
			})
		}
	}
	got, err := s.Load(profile)
	if err != nil {
		t.Fatalf("Load during a rewrite: %v", err)
	}
	equalTokens(t, got, newer)
}
