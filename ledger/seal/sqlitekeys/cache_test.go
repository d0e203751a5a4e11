package sqlitekeys

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/ledger/seal"
)

// TestKeyCache: with the cache, KeyFor and Open give the same keys as the file, as copies the
// caller may clear; an erasure is never undone by the cache (Open then fails with ErrErased and
// KeyFor makes a new key); last_seen is still written hourly; the cache stays within its size.
func TestKeyCache(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	mk, _, err := seal.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keys.db")
	s, err := OpenSQLite(ctx, path, mk, SQLiteOptions{Now: clock, CacheSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	kid, key, err := s.KeyFor(ctx, "acme", "alice")
	if err != nil {
		t.Fatal(err)
	}
	want := *key
	clear(key[:]) // callers clear the keys they get: the cache keeps its own copy
	kid2, key2, err := s.KeyFor(ctx, "acme", "alice")
	if err != nil || kid2 != kid || *key2 != want {
		t.Fatalf("KeyFor again: %s %v, want the same key", kid2, err)
	}
	if s.cache.len() != 1 {
		t.Fatalf("%d keys cached, want 1", s.cache.len())
	}
	if k, err := s.Open(ctx, "acme", kid); err != nil || *k != want {
		t.Fatalf("Open from the cache: %v", err)
	}
	if _, err := s.Open(ctx, "other-tenant", kid); !errors.Is(err, seal.ErrKeyMissing) {
		t.Fatalf("Open in another tenant: %v, want key missing", err)
	}
	// The file agrees with the cache.
	raw, err := OpenSQLite(ctx, path, mk, SQLiteOptions{CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if k, err := raw.Open(ctx, "acme", kid); err != nil || *k != want {
		t.Fatalf("Open without a cache: %v", err)
	}

	// last_seen is written when an hour has passed, cache or not.
	mu.Lock()
	now = now.Add(3 * time.Hour)
	mu.Unlock()
	if _, _, err := s.KeyFor(ctx, "acme", "alice"); err != nil {
		t.Fatal(err)
	}
	if idle, err := raw.IdleKeys(ctx, "acme", now.Add(-time.Hour)); err != nil || len(idle) != 0 {
		t.Fatalf("idle keys after a cached KeyFor: %v %v, want none (last_seen written)", idle, err)
	}

	// Erasure: the cached key is gone with the file's.
	if _, err := s.Erase(ctx, "acme", "alice", "test: data subject request"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, "acme", kid); !errors.Is(err, seal.ErrErased) {
		t.Fatalf("Open after the erasure: %v, want erased", err)
	}
	kid3, _, err := s.KeyFor(ctx, "acme", "alice")
	if err != nil || kid3 == kid {
		t.Fatalf("KeyFor after the erasure: %s %v, want a new key", kid3, err)
	}
	// EraseKeys too.
	if _, err := s.EraseKeys(ctx, "acme", []seal.KeyID{kid3}, "test: retention"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, "acme", kid3); !errors.Is(err, seal.ErrErased) {
		t.Fatalf("Open after EraseKeys: %v, want erased", err)
	}

	// Bounded: three subjects in a cache of two.
	for _, u := range []string{"bob", "carol", "dave"} {
		if _, _, err := s.KeyFor(ctx, "acme", u); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.cache.len(); n != 2 {
		t.Fatalf("%d keys cached, want 2 (the size)", n)
	}

	// A closed store serves no key, cached or not.
	kid4, _, err := s.KeyFor(ctx, "acme", "dave")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.Open(ctx, "acme", kid4); err == nil {
		t.Fatal("Open on a closed store served a cached key")
	}
	if s.cache.len() != 0 {
		t.Fatalf("%d keys cached after Close", s.cache.len())
	}
}

// TestKeyCacheStaleRead: a key read from the file before an erasure committed is not cached
// after it (the generation check), so the erasure cannot be undone by a slow reader.
func TestKeyCacheStaleRead(t *testing.T) {
	c := newKeyCache(8)
	var kid seal.KeyID
	kid[0] = 1
	key := &seal.Key{1, 2, 3}
	mac := make([]byte, 32)
	gen := c.generation() // a reader starts, reads the key from the file…
	c.drop([]seal.KeyID{kid})
	c.put(gen, "acme", mac, kid, key, 0) // …and would cache it after the erasure
	if _, ok := c.byID("acme", kid); ok {
		t.Fatal("a key read before an erasure was cached after it")
	}
	c.put(c.generation(), "acme", mac, kid, key, 0)
	got, ok := c.byID("acme", kid)
	if !ok || *got != *key {
		t.Fatal("a fresh read was not cached")
	}
	clear(got[:])
	if again, _ := c.byID("acme", kid); *again != *key {
		t.Fatal("clearing a returned key cleared the cached one")
	}
	if newKeyCache(-1) != nil {
		t.Fatal("CacheSize < 0 should mean no cache")
	}
}
