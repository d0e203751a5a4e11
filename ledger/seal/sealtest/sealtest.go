// Package sealtest holds test support shared by the tests of package seal and of its key
// stores (ledger/seal/sqlitekeys). It does not import package seal, so that seal's own tests can
// use it.
package sealtest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/demo"
)

// Time is a fixed received_at for test entries, with nanoseconds.
var Time = time.Date(2026, 11, 1, 0, 0, 1, 123456789, time.UTC)

// DemoRecords returns demo records: the first one, and one with a human reviewer (so both
// default paths are present), in canonical form.
func DemoRecords(t testing.TB) (plain, reviewed []byte) {
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

// DecodeRecord decodes a canonical record, failing the test on an error.
func DecodeRecord(t testing.TB, canonical []byte) *lineage.Record {
	t.Helper()
	r, err := lineage.DecodeRecord(canonical)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// ReadAll returns the bytes of every file under dir (the key store and any journal).
func ReadAll(t testing.TB, dir string) map[string][]byte {
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
