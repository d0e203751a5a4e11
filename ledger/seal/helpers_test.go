package seal

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/demo"
)

// testStore returns an in-memory key store (the SQLite store and its tests are in package
// sqlitekeys), a path that is not used, and a master key.
func testStore(t testing.TB) (*memKeys, string, *MasterKey) {
	t.Helper()
	mk, _, err := GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	return newMemKeys(), "", mk
}

// demoRecords returns demo records: the first one, and one with a human reviewer (so both
// default paths are present), in canonical form.
func demoRecords(t testing.TB) (plain, reviewed []byte) {
	t.Helper()
	g := demo.New(demo.Options{})
	for i := 0; i < 20000 && (plain == nil || reviewed == nil); i++ {
		r := g.Next()
		c, err := r.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		if plain == nil {
			plain = c
		}
		if r.HumanOversight != nil && reviewed == nil {
			reviewed = c
		}
	}
	if plain == nil || reviewed == nil {
		t.Fatal("demo generator yielded no reviewed record")
	}
	return plain, reviewed
}

func decodeRec(t testing.TB, canonical []byte) *lineage.Record {
	t.Helper()
	r, err := lineage.DecodeRecord(canonical)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var testTime = time.Date(2026, 11, 1, 0, 0, 1, 123456789, time.UTC)

// readAll returns the bytes of every file under dir (the key store and any journal).
func readAll(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
