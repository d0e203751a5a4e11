package sqlitekeys

import (
	"container/list"
	"sync"

	"github.com/lineage-audit/lineage/ledger/seal"
)

// DefaultCacheSize is how many unwrapped subject keys a store keeps in memory unless
// SQLiteOptions.CacheSize says otherwise: about 200 bytes each.
const DefaultCacheSize = 65536

// keyCache keeps unwrapped subject keys in memory, so that sealing and opening a record skip
// the SQLite read and the unwrap (most of the cost of erasure, docs/ERASURE.md "Cost"). It is
// found by (tenant, subject MAC) for KeyFor and by key id for Open, evicts the least recently
// used entry beyond its size, and hands out copies (callers clear the keys they get).
//
// Erasures must never be undone by the cache: Erase and EraseKeys drop the keys they destroyed
// after their transaction commits, and bump gen; a key read from the file is cached only if gen
// did not move while it was read (an erasure that committed meanwhile would otherwise be
// undone by a stale read). The cache sees erasures made through this *SQLiteStore only: the
// store file belongs to one lineaged process (erasures go through its API), and the tools
// that open it otherwise (rebuild-index) run beside no eraser.
type keyCache struct {
	mu     sync.Mutex
	max    int
	closed bool // the store is closed: nothing is cached any more
	gen    uint64
	subj   map[subjectRef]*list.Element
	byKID  map[seal.KeyID]*list.Element
	lru    list.List // front: most recently used; values *cached
}

type subjectRef struct {
	tenant string
	mac    [32]byte
}

type cached struct {
	ref      subjectRef
	kid      seal.KeyID
	key      seal.Key
	lastSeen int64
}

func newKeyCache(size int) *keyCache {
	if size == 0 {
		size = DefaultCacheSize
	}
	if size < 0 {
		return nil
	}
	return &keyCache{max: size, subj: map[subjectRef]*list.Element{}, byKID: map[seal.KeyID]*list.Element{}}
}

func refOf(tenant string, mac []byte) (subjectRef, bool) {
	r := subjectRef{tenant: tenant}
	if len(mac) != len(r.mac) {
		return r, false
	}
	copy(r.mac[:], mac)
	return r, true
}

// generation is read before a key is read from the file, and passed to put.
func (c *keyCache) generation() uint64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// bySubject returns a copy of the cached key of (tenant, mac).
func (c *keyCache) bySubject(tenant string, mac []byte) (seal.KeyID, *seal.Key, int64, bool) {
	if c == nil {
		return seal.KeyID{}, nil, 0, false
	}
	ref, ok := refOf(tenant, mac)
	if !ok {
		return seal.KeyID{}, nil, 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.subj[ref]
	if !ok {
		return seal.KeyID{}, nil, 0, false
	}
	c.lru.MoveToFront(e)
	v := e.Value.(*cached)
	k := v.key
	return v.kid, &k, v.lastSeen, true
}

// byID returns a copy of the cached key kid of tenant.
func (c *keyCache) byID(tenant string, kid seal.KeyID) (*seal.Key, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKID[kid]
	if !ok || e.Value.(*cached).ref.tenant != tenant {
		return nil, false
	}
	c.lru.MoveToFront(e)
	k := e.Value.(*cached).key
	return &k, true
}

// put caches a copy of key unless an erasure happened since gen was read.
func (c *keyCache) put(gen uint64, tenant string, mac []byte, kid seal.KeyID, key *seal.Key, lastSeen int64) {
	if c == nil || key == nil {
		return
	}
	ref, ok := refOf(tenant, mac)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen || c.closed {
		return
	}
	if e, ok := c.byKID[kid]; ok {
		v := e.Value.(*cached)
		v.lastSeen = max(v.lastSeen, lastSeen)
		c.lru.MoveToFront(e)
		return
	}
	v := &cached{ref: ref, kid: kid, key: *key, lastSeen: lastSeen}
	e := c.lru.PushFront(v)
	c.subj[ref], c.byKID[kid] = e, e
	for c.lru.Len() > c.max {
		c.remove(c.lru.Back())
	}
}

// seen records that kid's last_seen was written as t.
func (c *keyCache) seen(kid seal.KeyID, t int64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKID[kid]; ok {
		v := e.Value.(*cached)
		v.lastSeen = max(v.lastSeen, t)
	}
}

// drop forgets kids (destroyed by an erasure that committed) and bumps the generation, so that
// no read that started before the erasure is cached after it.
func (c *keyCache) drop(kids []seal.KeyID) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, kid := range kids {
		if e, ok := c.byKID[kid]; ok {
			c.remove(e)
		}
	}
}

// close forgets and zeroes every cached key and caches nothing more: a closed store serves
// no key.
func (c *keyCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.gen++
	for c.lru.Len() > 0 {
		c.remove(c.lru.Back())
	}
}

func (c *keyCache) remove(e *list.Element) {
	v := c.lru.Remove(e).(*cached)
	delete(c.subj, v.ref)
	delete(c.byKID, v.kid)
	clear(v.key[:])
}

// len is the number of cached keys (tests).
func (c *keyCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
