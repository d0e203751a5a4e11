package sqlitekeys

import (
	"context"
	"crypto/hmac"
	"path/filepath"
	"slices"
	"testing"

	"github.com/lineage-audit/lineage/ledger/seal"
)

func TestTenants(t *testing.T) {
	ctx := context.Background()
	mk, _, err := seal.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "keys.db"), mk, SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ts, err := s.Tenants(ctx); err != nil || len(ts) != 0 {
		t.Fatalf("empty store: %v %v", ts, err)
	}
	for _, p := range [][2]string{{"zeta", "u1"}, {"acme", "u1"}, {"acme", "u2"}} {
		if _, _, err := s.KeyFor(ctx, p[0], p[1]); err != nil {
			t.Fatal(err)
		}
	}
	ts, err := s.Tenants(ctx)
	if err != nil || !slices.Equal(ts, []string{"acme", "zeta"}) {
		t.Fatalf("tenants %v %v, want [acme zeta]", ts, err)
	}
	// A tenant whose every key is erased has nothing left for retention to look at.
	if _, err := s.Erase(ctx, "zeta", "u1", "test erasure"); err != nil {
		t.Fatal(err)
	}
	if ts, err := s.Tenants(ctx); err != nil || !slices.Equal(ts, []string{"acme"}) {
		t.Fatalf("after erasing zeta's only subject: %v %v", ts, err)
	}
}

func TestErasureTag(t *testing.T) {
	ctx := context.Background()
	mk, _, err := seal.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keys.db")
	s, err := OpenSQLite(ctx, path, mk, SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kids := []seal.KeyID{{1}, {2}}
	tag, err := s.ErasureTag(ctx, "acme", kids)
	if err != nil || len(tag) != 32 {
		t.Fatalf("tag %x %v", tag, err)
	}
	for name, other := range map[string]func() ([]byte, error){
		"another tenant":   func() ([]byte, error) { return s.ErasureTag(ctx, "zeta", kids) },
		"other key ids":    func() ([]byte, error) { return s.ErasureTag(ctx, "acme", kids[:1]) },
		"another order":    func() ([]byte, error) { return s.ErasureTag(ctx, "acme", []seal.KeyID{{2}, {1}}) },
		"tenant/id splice": func() ([]byte, error) { return s.ErasureTag(ctx, "acm", []seal.KeyID{{'e'}}) },
	} {
		o, err := other()
		if err != nil || hmac.Equal(o, tag) {
			t.Errorf("%s: same tag (%v)", name, err)
		}
	}
	s.Close()
	// The same store reopened (a restore keeps the pepper) computes the same tag; another
	// store (another pepper) does not.
	s, err = OpenSQLite(ctx, path, mk, SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if again, err := s.ErasureTag(ctx, "acme", kids); err != nil || !hmac.Equal(again, tag) {
		t.Fatalf("reopened: %x %v", again, err)
	}
	s2, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "keys.db"), mk, SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if o, err := s2.ErasureTag(ctx, "acme", kids); err != nil || hmac.Equal(o, tag) {
		t.Fatalf("another store computes the same tag (%v)", err)
	}
	kid, _, err := s.KeyFor(ctx, "acme", "u1")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.HasKey(ctx, "acme", kid); !ok || err != nil {
		t.Fatalf("HasKey of a live key: %v %v", ok, err)
	}
	if ok, _ := s.HasKey(ctx, "zeta", kid); ok {
		t.Fatal("HasKey across tenants")
	}
	if _, err := s.Erase(ctx, "acme", "u1", "test erasure"); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.HasKey(ctx, "acme", kid); ok || err != nil {
		t.Fatalf("HasKey of an erased key: %v %v", ok, err)
	}
}
