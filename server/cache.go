package server

import (
	"crypto/sha256"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCacheSize is the default number of verified tokens remembered.
// 100k entries take about 25 MiB.
const DefaultCacheSize = 100_000

const cacheShards = 64

// tokenCache remembers verified tokens so that a client reusing its token
// does not pay the signature check again. It is keyed by the first 128 bits
// of the token's SHA-256 (the token itself is never kept; finding another
// token with the same key is a second-preimage attack on SHA-256), bounded, and split into shards
// each with its own lock, evicting with the CLOCK algorithm (an
// approximation of LRU whose hits only set a bit, under a read lock).
//
// An entry is used only while its token is valid (exp plus leeway) and while
// the key that verified it is still in the broker's key set.
type tokenCache struct {
	shards   [cacheShards]cacheShard
	perShard int
}

type cacheShard struct {
	mu   sync.RWMutex
	m    map[cacheKey]*cacheEntry
	ring []*cacheEntry // CLOCK ring; nil slots are free
	hand int
}

type cacheKey [16]byte

type cacheEntry struct {
	key      cacheKey
	id       Identity
	kid      string // shared with the key set's verifyKey
	deadline int64  // UnixNano after which the token is expired (leeway included)
	slot     int
	ref      atomic.Bool
}

// newTokenCache returns a cache of about size entries; size 0 disables it.
// Each shard holds an eighth more than its even share, so that size tokens
// fit although the hash spreads them a little unevenly: the bound is
// 1.125 × size.
func newTokenCache(size int) *tokenCache {
	even := (size + cacheShards - 1) / cacheShards
	c := &tokenCache{perShard: even + (even+7)/8}
	for i := range c.shards {
		c.shards[i].m = make(map[cacheKey]*cacheEntry)
	}
	return c
}

var keyBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// tokenKey hashes a token without allocating (the string is copied into a
// pooled buffer, since sha256 takes a []byte).
func tokenKey(token string) cacheKey {
	bp := keyBufPool.Get().(*[]byte)
	b := append((*bp)[:0], token...)
	sum := sha256.Sum256(b)
	*bp = b[:0]
	keyBufPool.Put(bp)
	return cacheKey(sum[:16])
}

func (c *tokenCache) shard(key *cacheKey) *cacheShard { return &c.shards[key[0]%cacheShards] }

// get returns the identity of a remembered, still valid token.
func (c *tokenCache) get(key *cacheKey, now int64, keys *keySet) *Identity {
	if c.perShard == 0 {
		return nil
	}
	s := c.shard(key)
	s.mu.RLock()
	e := s.m[*key]
	s.mu.RUnlock()
	if e == nil || now > e.deadline {
		return nil
	}
	if _, ok := keys.byKID[e.kid]; !ok {
		return nil
	}
	if !e.ref.Load() {
		e.ref.Store(true)
	}
	return &e.id
}

// put remembers a verified token until deadline and returns the stored
// identity; now (UnixNano) tells which entries have expired and may be
// evicted first.
func (c *tokenCache) put(key *cacheKey, id Identity, kid string, deadline, now int64) *Identity {
	e := &cacheEntry{key: *key, id: id, kid: kid, deadline: deadline}
	if c.perShard == 0 {
		return &e.id
	}
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.m[*key]; old != nil {
		e.slot = old.slot
		s.ring[e.slot] = e
		s.m[*key] = e
		return &e.id
	}
	if len(s.ring) < c.perShard {
		e.slot = len(s.ring)
		s.ring = append(s.ring, e)
		s.m[*key] = e
		return &e.id
	}
	// Advance the hand to a free slot, an expired entry, or one not used
	// since the hand last passed. Two turns always suffice.
	for {
		v := s.ring[s.hand]
		if v == nil || v.deadline < now {
			break
		}
		if v.ref.Load() {
			v.ref.Store(false)
			s.hand = (s.hand + 1) % len(s.ring)
			continue
		}
		break
	}
	if v := s.ring[s.hand]; v != nil {
		delete(s.m, v.key)
	}
	e.slot = s.hand
	s.ring[s.hand] = e
	s.m[*key] = e
	s.hand = (s.hand + 1) % len(s.ring)
	return &e.id
}

// dropKIDs forgets the tokens verified with keys that left the key set.
func (c *tokenCache) dropKIDs(gone map[string]bool) {
	if len(gone) == 0 {
		return
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, e := range s.m {
			if gone[e.kid] {
				delete(s.m, k)
				s.ring[e.slot] = nil
			}
		}
		s.mu.Unlock()
	}
}

// len returns the number of entries.
func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// internRoles returns a shared copy of a role list: the same few role sets
// recur across every user's tokens, so the cache keeps one copy of each.
// The table stops growing at maxInternedRoleSets.
func internRoles(roles []string) []string {
	if len(roles) == 0 {
		return []string{}
	}
	k := strings.Join(roles, "\x00")
	if v, ok := internedRoles.Load(k); ok {
		return v.([]string)
	}
	if internedCount.Load() >= maxInternedRoleSets {
		return roles
	}
	v, loaded := internedRoles.LoadOrStore(k, roles)
	if !loaded {
		internedCount.Add(1)
	}
	return v.([]string)
}

const maxInternedRoleSets = 4096

var (
	internedRoles sync.Map
	internedCount atomic.Int64
)

// introCache remembers introspection answers (identity or refusal) until
// their deadline, keyed like tokenCache. When full, expired entries go
// first, then arbitrary ones.
type introCache struct {
	mu  sync.Mutex
	max int
	m   map[cacheKey]introEntry
}

type introEntry struct {
	id       *Identity
	err      error
	deadline time.Time
}

func newIntroCache(n int) *introCache {
	return &introCache{max: n, m: make(map[cacheKey]introEntry)}
}

func (c *introCache) get(k cacheKey, now time.Time) (*Identity, error, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return nil, nil, false
	}
	if !now.Before(e.deadline) {
		delete(c.m, k)
		return nil, nil, false
	}
	return e.id, e.err, true
}

func (c *introCache) put(k cacheKey, id *Identity, err error, deadline, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for key, e := range c.m {
			if !now.Before(e.deadline) || len(c.m) >= c.max*9/10 {
				delete(c.m, key)
			}
		}
	}
	c.m[k] = introEntry{id: id, err: err, deadline: deadline}
}
