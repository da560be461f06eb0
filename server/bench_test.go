package server

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Per-token check cost (issue 7). Compare, in one run:
//
//	go test -run '^$' -bench 'Verify|RSAFloor' ./server
//
// BenchmarkVerifyFirstSeen / BenchmarkRSAFloor must stay ≤ 2, and
// BenchmarkVerifyCached is the cost of a token seen before.

func benchHarness(b *testing.B, cacheSize int) (*harness, string) {
	ti := newTestIssuer(b)
	h := newHarness(b, ti, func(c *Config) {
		c.CacheSize = cacheSize
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	})
	return h, ti.token(h.clock.Now(), nil)
}

// BenchmarkVerifyFirstSeen checks a Keycloak-shaped RS256 token with the
// cache off, so every iteration parses, verifies the signature and applies
// the claim policy, as for a token never seen before.
func BenchmarkVerifyFirstSeen(b *testing.B) {
	h, token := benchHarness(b, -1)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.srv.verifier.verify(ctx, token); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCached checks a token already in the cache.
func BenchmarkVerifyCached(b *testing.B) {
	h, token := benchHarness(b, 0)
	ctx := context.Background()
	if _, err := h.srv.verifier.verify(ctx, token); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := h.srv.verifier.verify(ctx, token); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRSAFloor is the raw RSA-2048 PKCS#1 v1.5 verification of the same
// token's signature over its precomputed digest: the floor of any check.
func BenchmarkRSAFloor(b *testing.B) {
	h, token := benchHarness(b, -1)
	dot := strings.LastIndexByte(token, '.')
	digest := sha256.Sum256([]byte(token[:dot]))
	sig := mustB64(b, token[dot+1:])
	pub := h.ti.key(0).priv.Public().(*rsa.PublicKey)
	b.ReportAllocs()
	for b.Loop() {
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandlerCached is /api/v1/user with a repeated token, against
// BenchmarkHandlerHealthz, through the whole handler (logging to io.Discard).
func BenchmarkHandlerCached(b *testing.B) {
	h, token := benchHarness(b, 0)
	benchHandler(b, h.srv.Handler(), "/api/v1/user", token)
}

func BenchmarkHandlerHealthz(b *testing.B) {
	h, _ := benchHarness(b, 0)
	benchHandler(b, h.srv.Handler(), "/healthz", "")
}

// BenchmarkHandlerGateway is a proxied request with a repeated token: the
// whole handler, then the upstream (a loopback HTTP server) and back.
func BenchmarkHandlerGateway(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"datasets":[]}`))
	}))
	defer up.Close()
	ti := newTestIssuer(b)
	h := newHarness(b, ti, func(c *Config) {
		c.Upstream = up.URL
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	})
	benchHandler(b, h.srv.Handler(), "/api/v1/datasets", ti.token(h.clock.Now(), nil))
}

func benchHandler(b *testing.B, hd http.Handler, path, token string) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for pb.Next() {
			w := &discardWriter{h: http.Header{}}
			hd.ServeHTTP(w, req)
			if w.status != http.StatusOK {
				b.Errorf("status %d", w.status)
				return
			}
		}
	})
}

type discardWriter struct {
	h      http.Header
	status int
}

func (d *discardWriter) Header() http.Header { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) {
	if d.status == 0 {
		d.status = 200
	}
	return len(p), nil
}
func (d *discardWriter) WriteHeader(s int) { d.status = s }

func mustB64(b *testing.B, s string) []byte {
	out, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// TestCacheMemory100k fills the cache with 100k distinct Keycloak-like
// identities and checks the heap they take: the whole process must stay
// well within 64 MiB of resident memory with a full cache.
func TestCacheMemory100k(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a 100k-entry cache")
	}
	c := newTokenCache(DefaultCacheSize)
	v := &verifier{roleClients: []string{"pbench-client"}}
	deadline := time.Now().Add(time.Hour).UnixNano()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range DefaultCacheSize {
		key := tokenKey(fmt.Sprintf("token-%d", i))
		cl := &claims{
			Sub:               fmt.Sprintf("5f0a3b2e-0c4b-4a8e-9d55-%012d", i),
			PreferredUsername: fmt.Sprintf("user%06d", i),
			Email:             fmt.Sprintf("user%06d@example.com", i),
		}
		cl.RealmAccess.Roles = []string{"default-roles-pbench", "offline_access", "uma_authorization"}
		c.put(&key, v.identity(cl), "rsa-1", deadline, 0)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := c.len(); n != DefaultCacheSize {
		t.Fatalf("cache holds %d entries, want %d", n, DefaultCacheSize)
	}
	used := float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
	t.Logf("100k cached tokens take %.1f MiB of heap", used)
	if used > 32 {
		t.Errorf("100k cached tokens take %.1f MiB of heap, want ≤ 32 MiB", used)
	}
	runtime.KeepAlive(c)
}

func TestCacheIsBounded(t *testing.T) {
	c := newTokenCache(cacheShards * 8) // 9 per shard
	deadline := time.Now().Add(time.Hour).UnixNano()
	keys := make([]cacheKey, 2000)
	for i := range keys {
		keys[i] = tokenKey(fmt.Sprint(i))
		c.put(&keys[i], Identity{Subject: fmt.Sprint(i)}, "k", deadline, 0)
	}
	if n := c.len(); n != cacheShards*9 {
		t.Errorf("cache holds %d entries, want its bound %d", n, cacheShards*9)
	}
	ks := &keySet{byKID: map[string]*verifyKey{"k": {}}}
	if id := c.get(&keys[len(keys)-1], 0, ks); id == nil || id.Subject != fmt.Sprint(len(keys)-1) {
		t.Errorf("the newest entry was evicted: %v", id)
	}
	// Expired entries are not returned.
	if id := c.get(&keys[len(keys)-1], deadline+1, ks); id != nil {
		t.Error("an expired entry was returned")
	}
}

func TestCacheClockKeepsHotEntries(t *testing.T) {
	c := newTokenCache(cacheShards * 3) // 4 per shard
	ks := &keySet{byKID: map[string]*verifyKey{"k": {}}}
	deadline := time.Now().Add(time.Hour).UnixNano()
	// Fill one shard, touch one entry, then insert more into the same shard.
	var sameShard []cacheKey
	for i := 0; len(sameShard) < 12; i++ {
		k := tokenKey(fmt.Sprint("t", i))
		if k[0]%cacheShards == 0 {
			sameShard = append(sameShard, k)
		}
	}
	for i := range 4 {
		c.put(&sameShard[i], Identity{Subject: fmt.Sprint(i)}, "k", deadline, 0)
	}
	for i := 4; i < 12; i++ {
		if c.get(&sameShard[0], 0, ks) == nil {
			t.Fatalf("hot entry evicted after %d inserts", i-4)
		}
		c.put(&sameShard[i], Identity{Subject: fmt.Sprint(i)}, "k", deadline, 0)
	}
	if c.get(&sameShard[1], 0, ks) != nil {
		t.Error("a cold entry survived while the shard turned over twice")
	}
}
