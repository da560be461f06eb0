package apikey

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/pgtest"
)

// BenchmarkFirstSeenKey is the cost of a key the cache does not hold: one
// lookup by hash in the database (bench/run.sh reports it in µs). The cache
// is off, so every iteration is a first sight.
func BenchmarkFirstSeenKey(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		benchFirstSeen(b, filepath.Join(b.TempDir(), "keys.db"))
	})
	b.Run("postgres", func(b *testing.B) {
		benchFirstSeen(b, pgtest.Start(b).NewDatabase(b))
	})
}

// BenchmarkRepeatedKey is the cost of a key the cache holds.
func BenchmarkRepeatedKey(b *testing.B) {
	s := startBench(b, filepath.Join(b.TempDir(), "keys.db"), 0)
	c, err := s.Create(context.Background(), alice, "bench", 0)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Authenticate(ctx, c.Key); err != nil {
			b.Fatal(err)
		}
	}
}

func benchFirstSeen(b *testing.B, dsn string) {
	s := startBench(b, dsn, -1)
	ctx := context.Background()
	c, err := s.Create(ctx, alice, "bench", 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Authenticate(ctx, c.Key); err != nil {
			b.Fatal(err)
		}
	}
}

func startBench(b *testing.B, dsn string, cacheSize int) *Service {
	s := New(Options{Database: dsn, CacheSize: cacheSize, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	s.Start(ctx)
	for deadline := time.Now().Add(time.Minute); ; {
		if ok, _ := s.Ready(); ok {
			return s
		}
		if time.Now().After(deadline) {
			b.Fatal("the database did not open")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
