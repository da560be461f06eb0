package apikey

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/server"
	"github.com/distributed-system-analysis/pbench-auth/server/store"
)

// DefaultCacheSize bounds the keys remembered by a Service.
const DefaultCacheSize = 10000

// lastUsedGranularity: a key's last use is written to the database at most
// once per this period, off the request path.
const lastUsedGranularity = time.Minute

// Options configure a Service.
type Options struct {
	// Database is an SQLite file path or a postgres:// URL (see store.Open).
	// Required.
	Database string
	// AdminRole may delete anyone's key. Default "ADMIN" (Pbench's).
	AdminRole string
	// CacheSize bounds the keys remembered. Default DefaultCacheSize; -1
	// disables the cache (every use is a database lookup).
	CacheSize int
	// Logger receives the database's state changes (never a key or hash).
	// Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Service is a server.APIKeys on a database, safe for concurrent use.
type Service struct {
	opts   Options
	st     atomic.Pointer[store.Store] // nil until the database is open
	cache  *cache
	touch  chan touch
	reason atomic.Pointer[string] // why the database is not open
	// lost: the watcher lost its connection; the cache is emptied at the next
	// sync, as deletions may have been missed meanwhile.
	lost atomic.Bool
}

type touch struct {
	id int64
	at time.Time
}

var _ server.APIKeys = (*Service)(nil)

// New returns a Service; Start opens its database.
func New(opts Options) *Service {
	if opts.AdminRole == "" {
		opts.AdminRole = "ADMIN"
	}
	switch opts.CacheSize {
	case 0:
		opts.CacheSize = DefaultCacheSize
	case -1:
		opts.CacheSize = 0
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Service{opts: opts, cache: newCache(opts.CacheSize), touch: make(chan touch, 1024)}
	reason := "opening"
	s.reason.Store(&reason)
	s.lost.Store(true)
	return s
}

// Start opens the database in the background, retrying until it answers
// (key requests get 503 meanwhile; broker tokens are unaffected), then
// follows the deletions of other replicas until ctx is done. Start returns
// at once; Ready tells when the database is open.
func (s *Service) Start(ctx context.Context) {
	go s.run(ctx)
}

// Ready reports whether the database is open, and why not.
func (s *Service) Ready() (bool, string) {
	if s.st.Load() != nil {
		return true, ""
	}
	return false, *s.reason.Load()
}

func (s *Service) run(ctx context.Context) {
	log := s.opts.Logger.With("database", store.Location(s.opts.Database))
	st := s.open(ctx, log)
	if st == nil {
		return
	}
	defer func() { _ = st.Close() }()
	if st.Kind() != store.KindPostgres {
		s.cache.synced.Store(math.MaxInt64) // only this process writes
		s.lost.Store(false)
	}
	s.st.Store(st)
	log.Info("API key database open", "kind", st.Kind())
	go s.writeLastUsed(ctx, st, log)
	st.Watch(ctx, store.Events{
		Deleted: s.cache.drop,
		Synced: func(t time.Time) {
			if s.lost.Swap(false) {
				s.cache.clear()
				log.Info("API key database: following deletions of other replicas")
			}
			s.cache.synced.Store(t.UnixNano())
		},
		Lost: func(err error) {
			if !s.lost.Swap(true) {
				log.Warn("API key database: connection lost; keys are checked in the database until it is back", "err", err)
			}
		},
	})
	<-ctx.Done() // Watch returns at once on SQLite
}

// open opens the database, retrying with backoff until ctx is done.
func (s *Service) open(ctx context.Context, log *slog.Logger) *store.Store {
	backoff := 250 * time.Millisecond
	for {
		st, err := store.Open(ctx, s.opts.Database)
		if err == nil {
			return st
		}
		reason := err.Error()
		if old := s.reason.Swap(&reason); *old != reason {
			log.Warn("API key database unavailable: key requests get 503 until it answers; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// writeLastUsed records last uses off the request path.
func (s *Service) writeLastUsed(ctx context.Context, st *store.Store, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case t := <-s.touch:
			if err := st.TouchLastUsed(ctx, t.id, t.at); err != nil && ctx.Err() == nil {
				log.Debug("API key last use not recorded", "id", t.id, "err", err)
			}
		}
	}
}

// store returns the open database, or an error wrapping
// server.ErrAPIKeysUnavailable.
func (s *Service) store() (*store.Store, error) {
	if st := s.st.Load(); st != nil {
		return st, nil
	}
	return nil, server.ErrAPIKeysUnavailable
}

// unavailable wraps a database error for the client: the cause is logged,
// the answer says only that the database cannot be reached.
func (s *Service) unavailable(op string, err error) error {
	s.opts.Logger.Warn("API key database error", "op", op, "err", err)
	return server.ErrAPIKeysUnavailable
}

// IsKey implements server.APIKeys.
func (s *Service) IsKey(credential string) bool { return IsKey(credential) }

var errBadKey = &server.TokenError{Reason: "invalid API key: it does not exist or was deleted (create one with pbench-auth key create)"}

// Authenticate implements server.APIKeys. A key the cache holds costs no
// database round trip.
func (s *Service) Authenticate(ctx context.Context, key string) (*server.Identity, error) {
	if !wellFormed(key) {
		return nil, errBadKey
	}
	hash := Hash(key)
	now := s.opts.Now()
	e := s.cache.get(&hash, now.UnixNano())
	if e == nil {
		st, err := s.store()
		if err != nil {
			return nil, err
		}
		epoch := s.cache.currentEpoch()
		k, err := st.ByHash(ctx, hash[:])
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, errBadKey
		case err != nil:
			return nil, s.unavailable("authenticate", err)
		}
		// The lookup was by hash; compare again in constant time so that
		// nothing about the stored value leaks through timing.
		if subtle.ConstantTimeCompare(k.Hash, hash[:]) != 1 {
			return nil, errBadKey
		}
		e = newEntry(k)
		s.cache.put(e, epoch)
	}
	if e.expires != 0 && now.UnixNano() >= e.expires {
		return nil, &server.TokenError{Reason: "API key expired: create a new one with pbench-auth key create"}
	}
	if last := e.lastUsed.Load(); now.UnixNano()-last >= int64(lastUsedGranularity) && e.lastUsed.CompareAndSwap(last, now.UnixNano()) {
		select {
		case s.touch <- touch{e.id, now}:
		default: // busy: the next use records it
		}
	}
	return e.identity, nil
}

func newEntry(k *store.Key) *entry {
	roles := slices.Clone(k.Roles)
	slices.Sort(roles)
	roles = slices.Compact(roles)
	if roles == nil {
		roles = []string{}
	}
	e := &entry{id: k.ID, identity: &server.Identity{
		Subject: k.Subject, Username: k.Username, Email: k.Email, Roles: roles, APIKeyID: k.ID,
	}}
	copy(e.hash[:], k.Hash)
	if !k.Expires.IsZero() {
		e.expires = k.Expires.UnixNano()
	}
	if !k.LastUsed.IsZero() {
		e.lastUsed.Store(k.LastUsed.UnixNano())
	}
	return e
}

// Created is a new key as POST /api/v1/key answers it (Pbench's shape): the
// only time the key itself is shown.
type Created struct {
	ID       int64     `json:"id"`
	Label    *string   `json:"label"`
	Key      string    `json:"key"`
	Username string    `json:"username"`
	Created  time.Time `json:"created"`
}

// Info describes a key without the key: what lists show.
type Info struct {
	ID       int64      `json:"id"`
	Label    *string    `json:"label"`
	Username string     `json:"username"`
	Created  time.Time  `json:"created"`
	LastUsed *time.Time `json:"last_used"`
	Expires  *time.Time `json:"expires"`
	Prefix   string     `json:"prefix"`
}

func info(k *store.Key) Info {
	i := Info{ID: k.ID, Label: label(k.Label), Username: k.Username, Created: k.Created, Prefix: k.Prefix}
	if !k.LastUsed.IsZero() {
		t := k.LastUsed
		i.LastUsed = &t
	}
	if !k.Expires.IsZero() {
		t := k.Expires
		i.Expires = &t
	}
	return i
}

func label(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// ErrNotFound: no such key among the caller's.
var ErrNotFound = errors.New("API key not found")

// Create makes a key for owner. ttl 0 means it never expires.
func (s *Service) Create(ctx context.Context, owner *server.Identity, lbl string, ttl time.Duration) (*Created, error) {
	st, err := s.store()
	if err != nil {
		return nil, err
	}
	key := Generate()
	hash := Hash(key)
	now := s.opts.Now().UTC().Truncate(time.Millisecond)
	k := &store.Key{
		Hash: hash[:], Prefix: ShownPrefix(key), Label: lbl,
		Subject: owner.Subject, Username: owner.Username, Email: owner.Email, Roles: owner.Roles,
		Created: now,
	}
	if ttl > 0 {
		k.Expires = now.Add(ttl)
	}
	if err := st.Insert(ctx, k); err != nil {
		return nil, s.unavailable("create", err)
	}
	return &Created{ID: k.ID, Label: label(lbl), Key: key, Username: k.Username, Created: k.Created}, nil
}

// List returns owner's keys, oldest first.
func (s *Service) List(ctx context.Context, owner *server.Identity) ([]Info, error) {
	st, err := s.store()
	if err != nil {
		return nil, err
	}
	keys, err := st.List(ctx, owner.Subject)
	if err != nil {
		return nil, s.unavailable("list", err)
	}
	out := make([]Info, 0, len(keys))
	for i := range keys {
		out = append(out, info(&keys[i]))
	}
	return out, nil
}

// Get returns owner's key id, or ErrNotFound (also for another's key).
func (s *Service) Get(ctx context.Context, owner *server.Identity, id int64) (*Info, error) {
	st, err := s.store()
	if err != nil {
		return nil, err
	}
	k, err := st.ByID(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, ErrNotFound
	case err != nil:
		return nil, s.unavailable("get", err)
	case k.Subject != owner.Subject:
		return nil, ErrNotFound
	}
	i := info(k)
	return &i, nil
}

// Delete removes key id: the caller's own, or anyone's for an identity with
// the admin role. Another's key is ErrNotFound, as if it did not exist.
// Every replica refuses the key within about a second.
func (s *Service) Delete(ctx context.Context, caller *server.Identity, id int64) error {
	st, err := s.store()
	if err != nil {
		return err
	}
	k, err := st.ByID(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return ErrNotFound
	case err != nil:
		return s.unavailable("delete", err)
	case k.Subject != caller.Subject && !caller.HasRole(s.opts.AdminRole):
		return ErrNotFound
	}
	err = st.Delete(ctx, id)
	s.cache.drop(id) // this replica at once; the others through the notification
	switch {
	case errors.Is(err, store.ErrNotFound):
		return ErrNotFound
	case err != nil:
		return s.unavailable("delete", err)
	}
	return nil
}
