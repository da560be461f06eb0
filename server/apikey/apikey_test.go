package apikey

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/server"
)

func TestGenerate(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		k := Generate()
		if !strings.HasPrefix(k, Prefix) || len(k) != keyLen || !wellFormed(k) || !IsKey(k) || seen[k] {
			t.Fatalf("bad or repeated key %q...", k[:11])
		}
		seen[k] = true
		if p := ShownPrefix(k); p != k[:11] {
			t.Fatalf("ShownPrefix = %q", p)
		}
	}
	for _, bad := range []string{"pbench_", "pbench_short", Prefix + strings.Repeat("A", 42) + "!", Prefix + strings.Repeat("A", 44)} {
		if wellFormed(bad) {
			t.Errorf("wellFormed(%q) = true", bad)
		}
	}
	if IsKey("eyJhbGciOiJSUzI1NiJ9.e30.sig") {
		t.Error("an RS256 JWT taken for an API key")
	}
	if !IsKey(legacyPrefix + "e30.sig") {
		t.Error("a Pbench (HS256) key not taken for an API key")
	}
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// openService starts a Service on a fresh SQLite file and waits until it
// is open. Its log goes to logBuf.
func openService(t *testing.T) (*Service, *fakeClock, *bytes.Buffer) {
	t.Helper()
	clock := &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	logBuf := &bytes.Buffer{}
	var mu sync.Mutex
	s := New(Options{
		Database: filepath.Join(t.TempDir(), "keys.db"),
		Logger:   slog.New(slog.NewTextHandler(&lockedWriter{w: logBuf, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:      clock.Now,
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s.Start(ctx)
	deadline := time.Now().Add(time.Minute)
	for ok, _ := s.Ready(); !ok; ok, _ = s.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("the SQLite database did not open")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return s, clock, logBuf
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

var (
	alice = &server.Identity{Subject: "a-1", Username: "alice", Email: "alice@example.com", Roles: []string{"b", "a"}}
	bob   = &server.Identity{Subject: "b-2", Username: "bob", Roles: []string{}}
	admin = &server.Identity{Subject: "c-3", Username: "root", Roles: []string{"ADMIN"}}
)

func TestAuthenticateOnSQLite(t *testing.T) {
	s, clock, logBuf := openService(t)
	ctx := context.Background()
	c, err := s.Create(ctx, alice, "ci", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.Authenticate(ctx, c.Key)
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "a-1" || id.Username != "alice" || id.Email != "alice@example.com" || strings.Join(id.Roles, ",") != "a,b" || id.APIKeyID != c.ID {
		t.Fatalf("identity %+v", id)
	}
	// A near miss: the same prefix, one character changed.
	last := "A"
	if strings.HasSuffix(c.Key, "A") {
		last = "B"
	}
	other := c.Key[:len(c.Key)-1] + last
	var te *server.TokenError
	if _, err := s.Authenticate(ctx, other); !errors.As(err, &te) {
		t.Fatalf("a different key: %v, want a TokenError", err)
	}
	// Expiry, also for a cached key.
	clock.Add(time.Hour)
	if _, err := s.Authenticate(ctx, c.Key); !errors.As(err, &te) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired key: %v", err)
	}
	// Deletion, with the key in the cache.
	c2, _ := s.Create(ctx, alice, "", 0)
	if _, err := s.Authenticate(ctx, c2.Key); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, bob, c2.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bob deletes alice's key: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, alice, c2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, c2.Key); !errors.As(err, &te) {
		t.Fatalf("deleted key: %v", err)
	}
	if strings.Contains(logBuf.String(), c.Key[len(Prefix):]) || strings.Contains(logBuf.String(), c2.Key[len(Prefix):]) {
		t.Fatalf("a key in the log:\n%s", logBuf)
	}
}

func TestLastUsedIsRecorded(t *testing.T) {
	s, clock, _ := openService(t)
	ctx := context.Background()
	c, _ := s.Create(ctx, alice, "x", 0)
	if _, err := s.Authenticate(ctx, c.Key); err != nil {
		t.Fatal(err)
	}
	used := clock.Now()
	deadline := time.Now().Add(time.Minute)
	for {
		k, err := s.Get(ctx, alice, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if k.LastUsed != nil {
			if !k.LastUsed.Equal(used.Truncate(time.Millisecond)) {
				t.Fatalf("last used %v, want %v", k.LastUsed, used)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the last use was never recorded")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestUnavailableBeforeTheDatabaseOpens(t *testing.T) {
	s := New(Options{Database: filepath.Join(t.TempDir(), "keys.db")}) // never started
	if _, err := s.Authenticate(context.Background(), Generate()); !errors.Is(err, server.ErrAPIKeysUnavailable) {
		t.Errorf("Authenticate: %v", err)
	}
	if _, err := s.Create(context.Background(), alice, "", 0); !errors.Is(err, server.ErrAPIKeysUnavailable) {
		t.Errorf("Create: %v", err)
	}
	// A malformed key needs no database: 401, not 503.
	var te *server.TokenError
	if _, err := s.Authenticate(context.Background(), "pbench_nope"); !errors.As(err, &te) {
		t.Errorf("malformed key: %v", err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/api/v1/key", nil).WithContext(server.WithIdentity(context.Background(), alice))
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
		t.Errorf("GET /api/v1/key: %d %v", rec.Code, rec.Header())
	}
}

// TestCacheRace: a lookup that started before a deletion must not put the
// deleted key back into the cache.
func TestCacheRace(t *testing.T) {
	c := newCache(10)
	c.synced.Store(time.Now().UnixNano())
	e := &entry{id: 7, hash: [32]byte{7}}
	epoch := c.currentEpoch()
	c.drop(7) // the deletion lands while the lookup runs
	c.put(e, epoch)
	if c.get(&e.hash, time.Now().UnixNano()) != nil {
		t.Fatal("a key deleted during its lookup was cached")
	}
	c.put(e, c.currentEpoch())
	if c.get(&e.hash, time.Now().UnixNano()) == nil {
		t.Fatal("not cached")
	}
	// Stale: the cache does not answer.
	if c.get(&e.hash, time.Now().Add(time.Second).UnixNano()) != nil {
		t.Fatal("the cache answered while deletions may have gone unseen")
	}
	// Bounded.
	for i := range 100 {
		c.put(&entry{id: int64(100 + i), hash: [32]byte{byte(i), 1}}, c.currentEpoch())
	}
	if n := c.len(); n > 10 {
		t.Fatalf("%d entries, bound 10", n)
	}
}

func do(t *testing.T, s *Service, method, target string, who *server.Identity) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(method, target, nil).WithContext(server.WithIdentity(context.Background(), who))
	s.Handler().ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func TestHandler(t *testing.T) {
	s, _, _ := openService(t)
	status, body := do(t, s, "POST", "/api/v1/key?label=my%20key&expires_in=3600", alice)
	var c map[string]any
	if status != 201 || json.Unmarshal([]byte(body), &c) != nil || len(c) != 5 || c["label"] != "my key" || c["username"] != "alice" {
		t.Fatalf("POST: %d %s", status, body)
	}
	key := c["key"].(string)
	id := int64(c["id"].(float64))

	status, body = do(t, s, "GET", "/api/v1/key", alice)
	var list []Info
	if status != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list) != 1 || strings.Contains(body, key[len(Prefix):]) {
		t.Fatalf("GET list: %d %s", status, body)
	}
	if list[0].Expires == nil || list[0].Prefix != key[:11] || list[0].LastUsed != nil {
		t.Errorf("list entry %+v", list[0])
	}
	if status, body := do(t, s, "GET", "/api/v1/key", bob); status != 200 || strings.TrimSpace(body) != "[]" {
		t.Errorf("bob's list: %d %s", status, body)
	}

	one := "/api/v1/key/" + itoa(id)
	for _, tc := range []struct {
		method, target string
		who            *server.Identity
		want           int
	}{
		{"GET", one, bob, 404},
		{"GET", one, alice, 200},
		{"DELETE", one, bob, 404},
		{"POST", one, alice, 400},
		{"PUT", "/api/v1/key", alice, 405},
		{"GET", "/api/v1/key/abc", alice, 404},
		{"POST", "/api/v1/key?label=" + strings.Repeat("x", 129), alice, 400},
		{"POST", "/api/v1/key?label=a%0Ab", alice, 400},
		{"POST", "/api/v1/key?expires_in=-1", alice, 400},
		{"POST", "/api/v1/key", &server.Identity{Subject: "a-1", Username: "alice", APIKeyID: id}, 403},
		{"DELETE", one, admin, 200},
		{"GET", one, alice, 404},
	} {
		if status, body := do(t, s, tc.method, tc.target, tc.who); status != tc.want {
			t.Errorf("%s %s as %s: %d %s, want %d", tc.method, tc.target, tc.who.Username, status, body, tc.want)
		}
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestRequiresAnIdentity(t *testing.T) {
	s := New(Options{Database: filepath.Join(t.TempDir(), "keys.db")})
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/key", nil))
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("no identity: %d", rec.Code)
	}
}
