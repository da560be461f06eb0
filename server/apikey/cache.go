package apikey

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/server"
)

// maxStaleness is how old the last confirmation that every deletion is
// known (store.Events.Synced) may be for the cache to answer: a key deleted
// on any replica is refused everywhere within it plus the time to deliver
// the notification. Above it, every key is looked up in the database.
const maxStaleness = 700 * time.Millisecond

// entry is a key that the cache vouches for.
type entry struct {
	id       int64
	hash     [32]byte
	identity *server.Identity
	expires  int64 // Unix ns; 0: never
	// lastUsed is the last use recorded in (or sent to) the database, Unix ns.
	lastUsed atomic.Int64
}

// cache remembers the keys seen, so that a repeated key costs no database
// round trip. It is bounded, and emptied of a key as soon as any replica
// deletes it (see maxStaleness).
//
// Hand-written rather than a library LRU: it needs an index by id for
// invalidation, an epoch against the lookup/delete race, and the
// staleness gate; eviction of an arbitrary entry is enough for a bound.
type cache struct {
	max int

	mu     sync.RWMutex
	byHash map[[32]byte]*entry
	byID   map[int64]*entry
	// epoch counts invalidations: a lookup started before one must not
	// store what it read (the deleted key could come back).
	epoch uint64

	// synced is when every deletion was last known to be seen (Unix ns);
	// MaxInt64 when this process is the only writer (SQLite).
	synced atomic.Int64
}

func newCache(size int) *cache {
	return &cache{max: size, byHash: map[[32]byte]*entry{}, byID: map[int64]*entry{}}
}

// get returns the entry of hash, if the cache may answer at now.
func (c *cache) get(hash *[32]byte, now int64) *entry {
	if s := c.synced.Load(); s != math.MaxInt64 && now-s > int64(maxStaleness) {
		return nil
	}
	c.mu.RLock()
	e := c.byHash[*hash]
	c.mu.RUnlock()
	return e
}

// currentEpoch is read before a database lookup and given back to put.
func (c *cache) currentEpoch() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.epoch
}

// put remembers e unless something was invalidated since epoch.
func (c *cache) put(e *entry, epoch uint64) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch != epoch {
		return
	}
	if _, ok := c.byHash[e.hash]; !ok && len(c.byHash) >= c.max {
		for _, old := range c.byHash { // evict an arbitrary entry
			delete(c.byHash, old.hash)
			delete(c.byID, old.id)
			break
		}
	}
	c.byHash[e.hash] = e
	c.byID[e.id] = e
}

// drop forgets key id.
func (c *cache) drop(id int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	if e := c.byID[id]; e != nil {
		delete(c.byID, id)
		delete(c.byHash, e.hash)
	}
}

// clear forgets every key (deletions may have been missed).
func (c *cache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	clear(c.byHash)
	clear(c.byID)
}

func (c *cache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.byHash)
}
