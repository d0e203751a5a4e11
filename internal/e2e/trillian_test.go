package e2e

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/internal/testenv"
	"github.com/lineage-audit/lineage/ledger"
)

// TestEndToEndTrillian runs the ingest → ledger → index → API path on a real Trillian (MariaDB,
// log server, signer): the tree is created with lineagectl, records arrive over NATS, and every
// answer verifies with the public key alone, exactly as on Tessera.
func TestEndToEndTrillian(t *testing.T) {
	tr := testenv.StartTrillian(t)
	out, err := ctl("trillian", "create-tree", "--admin-addr", tr.Addr, "--name", "e2e")
	if err != nil {
		t.Fatalf("create-tree: %v\n%s", err, out)
	}
	var treeID int64
	if _, err := fmt.Sscanf(out, "created tree %d", &treeID); err != nil {
		t.Fatalf("create-tree printed %q", out)
	}
	dataDir := t.TempDir()
	natsAddr, httpAddr := freeAddr(t), freeAddr(t)
	flags := []string{"--ledger", "trillian", "--trillian-addr", tr.Addr, "--trillian-tree-id", fmt.Sprint(treeID)}
	d := startDaemon(t, dataDir, natsAddr, httpAddr, flags...)
	v, err := ledger.ReadVerifierFile(filepath.Join(dataDir, "keys", "log.key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 1500
	recs := demo.Generate(demo.Options{Seed: 21, Tenants: 3}, n)
	if out, err := ctl("publish", "--nats-url", "nats://"+natsAddr, "--demo", "1000", "--seed", "21"); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	d.waitIndexed(t, 1000)
	cp1 := mustCheckpoint(t, d, v, 1000)
	// Republishing overlaps the first 1000: only 500 new entries may appear.
	if out, err := ctl("publish", "--nats-url", "nats://"+natsAddr, "--demo", fmt.Sprint(n), "--seed", "21"); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	d.waitIndexed(t, n)
	cp2 := mustCheckpoint(t, d, v, n)
	idx := verifyAll(t, d, v, recs)
	if len(idx) != n {
		t.Fatalf("%d distinct records in the log, want %d", len(idx), n)
	}
	verifyConsistencyPairs(t, d, []ledger.Checkpoint{cp1, cp2})
	before := checkLineage(t, d, recs)

	// A restart and an index rebuilt from Trillian alone give the same answers.
	d.stop()
	if out, err := ctl(append([]string{"rebuild-index", "--data-dir", dataDir}, flags...)...); err != nil {
		t.Fatalf("rebuild-index: %v\n%s", err, out)
	}
	d = startDaemon(t, dataDir, natsAddr, httpAddr, flags...)
	defer d.stop()
	d.waitIndexed(t, n)
	if after := checkLineage(t, d, recs); string(after) != string(before) {
		t.Fatal("lineage answers differ after rebuilding the index from Trillian")
	}
	if again := verifyAll(t, d, v, recs); !mapsEqual(idx, again) {
		t.Fatal("the rebuilt index maps records to other log indexes")
	}
}
