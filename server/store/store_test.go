package store_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/pgtest"
	"github.com/distributed-system-analysis/pbench-auth/server/store"
)

// stores opens one store of each kind: an SQLite file and a real PostgreSQL.
func stores(t *testing.T) map[string]*store.Store {
	t.Helper()
	ctx := context.Background()
	lite, err := store.Open(ctx, filepath.Join(t.TempDir(), "sub", "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lite.Close() })
	pg := pgtest.Start(t)
	pgs, err := store.Open(ctx, pg.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pgs.Close() })
	return map[string]*store.Store{"sqlite": lite, "postgres": pgs}
}

func newKey(n int, subject string) *store.Key {
	h := sha256.Sum256(fmt.Appendf(nil, "key-%d", n))
	return &store.Key{
		Hash: h[:], Prefix: "pbench_ab", Label: fmt.Sprintf("label %d", n),
		Subject: subject, Username: "u-" + subject, Email: subject + "@example.com",
		Roles: []string{"ADMIN"}, Created: time.UnixMilli(1_700_000_000_000).UTC(),
	}
}

func TestStoreRoundTrip(t *testing.T) {
	for kind, s := range stores(t) {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			if s.Kind() != kind {
				t.Fatalf("Kind = %q", s.Kind())
			}
			k := newKey(1, "alice")
			k.Expires = k.Created.Add(time.Hour)
			if err := s.Insert(ctx, k); err != nil {
				t.Fatal(err)
			}
			if err := s.Insert(ctx, newKey(1, "bob")); err == nil {
				t.Fatal("a second key with the same hash was stored")
			}
			got, err := s.ByHash(ctx, k.Hash)
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != k.ID || got.Username != "u-alice" || got.Roles[0] != "ADMIN" || !got.Expires.Equal(k.Expires) || !got.LastUsed.IsZero() {
				t.Fatalf("ByHash = %+v, want %+v", got, k)
			}
			used := k.Created.Add(time.Minute)
			if err := s.TouchLastUsed(ctx, k.ID, used); err != nil {
				t.Fatal(err)
			}
			if err := s.TouchLastUsed(ctx, k.ID, k.Created); err != nil { // older: ignored
				t.Fatal(err)
			}
			if got, _ := s.ByID(ctx, k.ID); !got.LastUsed.Equal(used) {
				t.Fatalf("LastUsed = %v, want %v", got.LastUsed, used)
			}
			if err := s.Insert(ctx, newKey(2, "bob")); err != nil {
				t.Fatal(err)
			}
			list, err := s.List(ctx, "alice")
			if err != nil || len(list) != 1 || list[0].ID != k.ID {
				t.Fatalf("List(alice) = %+v, %v", list, err)
			}
			if err := s.Delete(ctx, k.ID); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(ctx, k.ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("second Delete = %v, want ErrNotFound", err)
			}
			if _, err := s.ByHash(ctx, k.Hash); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("ByHash after Delete = %v", err)
			}
			// Ids are never reused.
			k3 := newKey(3, "alice")
			if err := s.Insert(ctx, k3); err != nil || k3.ID <= k.ID {
				t.Fatalf("new id %d after deleting %d (%v)", k3.ID, k.ID, err)
			}
		})
	}
}

func TestConcurrentInserts(t *testing.T) {
	for kind, s := range stores(t) {
		t.Run(kind, func(t *testing.T) {
			var wg sync.WaitGroup
			errs := make(chan error, 40)
			for i := range 40 {
				wg.Go(func() { errs <- s.Insert(context.Background(), newKey(100+i, "carol")) })
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			list, err := s.List(context.Background(), "carol")
			if err != nil || len(list) != 40 {
				t.Fatalf("List = %d keys, %v; want 40", len(list), err)
			}
		})
	}
}

func TestSQLiteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.db")
	s, err := store.Open(context.Background(), "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("database file mode %v (%v), want 0600", st.Mode().Perm(), err)
	}
	link := filepath.Join(dir, "link.db")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(context.Background(), link); err == nil {
		t.Fatal("a symbolic link was opened as the database")
	}
	if _, err := store.Open(context.Background(), "mysql://x/y"); err == nil {
		t.Fatal("mysql:// accepted")
	}
}

func TestOpenHidesPassword(t *testing.T) {
	for _, dsn := range []string{
		"postgres://u:s3cret@127.0.0.1:1/db?connect_timeout=1",
		"postgres://u@127.0.0.1:1/db?connect_timeout=1&password=s3cret",
		"postgresql://u@127.0.0.1:1/db?connect_timeout=1&sslpassword=s3cret",
	} {
		_, err := store.Open(context.Background(), dsn)
		if err == nil {
			t.Fatal("connected to nothing")
		}
		if s := err.Error(); strings.Contains(s, "s3cret") {
			t.Errorf("error shows the password: %s", s)
		}
		if loc := store.Location(dsn); strings.Contains(loc, "s3cret") || !strings.Contains(loc, "127.0.0.1:1/db") {
			t.Errorf("Location(%q) = %q, want the address without the password", dsn, loc)
		}
	}
}

// TestWatchSeesDeletions: a deletion through one store is announced to the
// LISTEN session of another on the same database, and Synced follows it.
func TestWatchSeesDeletions(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = a.Close() }()
	b, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	deleted := make(chan int64, 1)
	synced := make(chan time.Time, 100)
	go b.Watch(ctx, store.Events{
		Deleted: func(id int64) { deleted <- id },
		Synced: func(t time.Time) {
			select {
			case synced <- t:
			default:
			}
		},
		Lost: func(error) {},
	})
	<-synced // listening
	k := newKey(1, "dave")
	if err := a.Insert(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if id := <-deleted; id != k.ID {
		t.Fatalf("notified of %d, want %d", id, k.ID)
	}
}
