package sqlitekeys

import (
	"context"
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
