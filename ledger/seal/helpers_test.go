package seal

import (
	"testing"

	"github.com/lineage-audit/lineage/ledger/seal/sealtest"
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

// The helpers shared with the key stores' tests (ledger/seal/sealtest), by the names this
// package's tests use.
var (
	demoRecords = sealtest.DemoRecords
	decodeRec   = sealtest.DecodeRecord
	testTime    = sealtest.Time
)
