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

// boundedCache is the one cache implementation of the server, shared by the
// verified-token cache and the introspection cache. It is keyed by the first
// 128 bits of a token's SHA-256 (the token itself is never kept; finding
// another token with the same key is a second-preimage attack on SHA-256),
// bounded, and split into shards each with its own lock, evicting with the
// CLOCK algorithm (an approximation of LRU whose hits only set a bit, under
// a read lock): expired entries and entries not used since the hand last
// passed go first. Hand-written rather than a library LRU because a hit must
// not take a write lock: it sits on every authenticated request.
//
// An entry is returned while now ≤ its deadline (UnixNano).
type boundedCache[V any] struct {
	shards   [cacheShards]cacheShard[V]
	perShard int
}

type cacheShard[V any] struct {
	mu   sync.RWMutex
	m    map[cacheKey]*cacheEntry[V]
	ring []*cacheEntry[V] // CLOCK ring; nil slots are free
	hand int
}

type cacheKey [16]byte

type cacheEntry[V any] struct {
	key      cacheKey
	val      V
	deadline int64 // UnixNano after which the entry is expired
	slot     int
	ref      atomic.Bool
}

// newBoundedCache returns a cache of about size entries; size 0 disables it.
// Each shard holds an eighth more than its even share, so that size tokens
// fit although the hash spreads them a little unevenly: the bound is
// 1.125 × size.
func newBoundedCache[V any](size int) *boundedCache[V] {
	even := (size + cacheShards - 1) / cacheShards
	c := &boundedCache[V]{perShard: even + (even+7)/8}
	for i := range c.shards {
		c.shards[i].m = make(map[cacheKey]*cacheEntry[V])
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

func (c *boundedCache[V]) shard(key *cacheKey) *cacheShard[V] {
	return &c.shards[key[0]%cacheShards]
}

// get returns the value stored under key, or nil when there is none or it
// expired before now (UnixNano). The value is shared: treat it as read-only.
func (c *boundedCache[V]) get(key *cacheKey, now int64) *V {
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
	if !e.ref.Load() {
		e.ref.Store(true)
	}
	return &e.val
}

// put stores v under key until deadline and returns the stored value; now
// (UnixNano) tells which entries have expired and may be evicted first.
func (c *boundedCache[V]) put(key *cacheKey, v V, deadline, now int64) *V {
	e := &cacheEntry[V]{key: *key, val: v, deadline: deadline}
	if c.perShard == 0 {
		return &e.val
	}
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.m[*key]; old != nil {
		e.slot = old.slot
		s.ring[e.slot] = e
		s.m[*key] = e
		return &e.val
	}
	if len(s.ring) < c.perShard {
		e.slot = len(s.ring)
		s.ring = append(s.ring, e)
		s.m[*key] = e
		return &e.val
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
	return &e.val
}

// deleteFunc forgets the entries whose value drop selects.
func (c *boundedCache[V]) deleteFunc(drop func(*V) bool) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, e := range s.m {
			if drop(&e.val) {
				delete(s.m, k)
				s.ring[e.slot] = nil
			}
		}
		s.mu.Unlock()
	}
}

// len returns the number of entries.
func (c *boundedCache[V]) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// tokenCache remembers verified tokens so that a client reusing its token
// does not pay the signature check again. An entry is used only while its
// token is valid (exp plus leeway) and while the key that verified it is
// still in the broker's key set.
type tokenCache struct{ c *boundedCache[verifiedToken] }

type verifiedToken struct {
	id  Identity
	kid string // shared with the key set's verifyKey
}

// newTokenCache returns a cache of about size tokens; size 0 disables it.
func newTokenCache(size int) *tokenCache {
	return &tokenCache{newBoundedCache[verifiedToken](size)}
}

// get returns the identity of a remembered, still valid token.
func (c *tokenCache) get(key *cacheKey, now int64, keys *keySet) *Identity {
	v := c.c.get(key, now)
	if v == nil {
		return nil
	}
	if _, ok := keys.byKID[v.kid]; !ok {
		return nil
	}
	return &v.id
}

// put remembers a verified token until deadline (UnixNano, leeway included)
// and returns the stored identity.
func (c *tokenCache) put(key *cacheKey, id Identity, kid string, deadline, now int64) *Identity {
	return &c.c.put(key, verifiedToken{id, kid}, deadline, now).id
}

// dropKIDs forgets the tokens verified with keys that left the key set.
func (c *tokenCache) dropKIDs(gone map[string]bool) {
	if len(gone) == 0 {
		return
	}
	c.c.deleteFunc(func(v *verifiedToken) bool { return gone[v.kid] })
}

// len returns the number of entries.
func (c *tokenCache) len() int { return c.c.len() }

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
// their deadline, in the same bounded cache as verified tokens.
type introCache struct{ c *boundedCache[introAnswer] }

type introAnswer struct {
	id  *Identity
	err error
}

func newIntroCache(n int) *introCache {
	return &introCache{newBoundedCache[introAnswer](n)}
}

// get returns the answer remembered for k, if it is still valid at now.
func (c *introCache) get(k cacheKey, now time.Time) (*Identity, error, bool) {
	a := c.c.get(&k, now.UnixNano())
	if a == nil {
		return nil, nil, false
	}
	return a.id, a.err, true
}

// put remembers an answer that is valid before deadline.
func (c *introCache) put(k cacheKey, id *Identity, err error, deadline, now time.Time) {
	// boundedCache keeps an entry while now ≤ its deadline; an answer is
	// valid while now < deadline.
	c.c.put(&k, introAnswer{id, err}, deadline.UnixNano()-1, now.UnixNano())
}
