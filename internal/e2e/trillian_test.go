package e2e

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/internal/testenv"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/query"
	"golang.org/x/mod/sumdb/note"

	lineage "github.com/lineage-audit/lineage"
)

// TestEndToEndTrillian runs the ingest → ledger → index → API path on a real Trillian (MariaDB,
// log server, signer): the tree is created with lineagectl, records arrive over NATS, and every
// answer verifies with the public key alone, exactly as on Tessera.
func TestEndToEndTrillian(t *testing.T) {
	tr := testenv.StartTrillian(t)
	treeID := createTree(t, tr.Addr, "e2e")
	ledgerRoundTrip(t, "Trillian", 21, 1000, 1500,
		"--ledger", "trillian", "--trillian-addr", tr.Addr, "--trillian-tree-id", fmt.Sprint(treeID))
}

// createTree creates a Trillian tree named name with `lineagectl trillian create-tree` on the
// admin address addr and returns its id.
func createTree(t *testing.T, addr, name string) int64 {
	t.Helper()
	out, err := ctl("trillian", "create-tree", "--admin-addr", addr, "--name", name)
	if err != nil {
		t.Fatalf("create-tree: %v\n%s", err, out)
	}
	var treeID int64
	if _, err := fmt.Sscanf(out, "created tree %d", &treeID); err != nil {
		t.Fatalf("create-tree printed %q", out)
	}
	return treeID
}

// ledgerRoundTrip runs lineaged with the ledger flags and checks the path from NATS to a
// verified answer: the demo records of seed are published, first the first `first` and then all
// n (the republished overlap must add nothing), every record verifies with the public key alone,
// the two checkpoints are consistent, and after a restart on an index rebuilt from the log alone
// (rebuild-index) the answers are the same. name names the log in failure messages.
func ledgerRoundTrip(t *testing.T, name string, seed, first, n int, flags ...string) {
	t.Helper()
	dataDir := t.TempDir()
	natsAddr, httpAddr := freeAddr(t), freeAddr(t)
	d := startDaemon(t, dataDir, natsAddr, httpAddr, flags...)
	v, err := ledger.ReadVerifierFile(filepath.Join(dataDir, "keys", "log.key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	recs := demo.Generate(demo.Options{Seed: int64(seed), Tenants: 3}, n)
	if out, err := ctl("publish", "--nats-url", "nats://"+natsAddr, "--demo", fmt.Sprint(first), "--seed", fmt.Sprint(seed)); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	d.waitIndexed(t, uint64(first))
	cp1 := mustCheckpoint(t, d, v, uint64(first))
	// Republishing overlaps the first records: only n-first new entries may appear.
	if out, err := ctl("publish", "--nats-url", "nats://"+natsAddr, "--demo", fmt.Sprint(n), "--seed", fmt.Sprint(seed)); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	d.waitIndexed(t, uint64(n))
	cp2 := mustCheckpoint(t, d, v, uint64(n))
	idx := verifyAll(t, d, v, recs)
	if len(idx) != n || cp2.Size != uint64(n) {
		t.Fatalf("%d distinct records, checkpoint %d; want %d", len(idx), cp2.Size, n)
	}
	verifyConsistencyPairs(t, d, []ledger.Checkpoint{cp1, cp2})
	before := checkLineage(t, d, recs)

	// A restart and an index rebuilt from the log alone give the same answers.
	d.stop()
	if out, err := ctl(append([]string{"rebuild-index", "--data-dir", dataDir}, flags...)...); err != nil {
		t.Fatalf("rebuild-index: %v\n%s", err, out)
	}
	d = startDaemon(t, dataDir, natsAddr, httpAddr, flags...)
	defer d.stop()
	d.waitIndexed(t, uint64(n))
	if after := checkLineage(t, d, recs); string(after) != string(before) {
		t.Fatalf("lineage answers differ after rebuilding the index from %s", name)
	}
	if again := verifyAll(t, d, v, recs); !mapsEqual(idx, again) {
		t.Fatal("the rebuilt index maps records to other log indexes")
	}
	if mode, _ := os.ReadFile(filepath.Join(dataDir, "erasure.mode")); strings.TrimSpace(string(mode)) == "on" {
		eraseAndVerify(t, d, v, recs, idx)
	} else if wantErasure(flags) {
		t.Fatalf("erasure mode of a new %s log: %q, want on (the default)", name, mode)
	}
}

// wantErasure reports whether a new log with these flags is sealed by default: the SQLite
// index on one node (docs/ERASURE.md).
func wantErasure(flags []string) bool {
	return !slices.Contains(flags, "tessera-aws") && !slices.Contains(flags, "clickhouse") && !slices.Contains(flags, "--ha")
}

// eraseAndVerify erases the user of the first record with `lineagectl erase` and checks that
// every record still verifies at the same log index, that the user's records no longer show
// the id (the fields are erased, with their commitments), and that another user's records
// still do.
func eraseAndVerify(t *testing.T, d *daemon, v note.Verifier, recs []lineage.Record, idx map[string]uint64) {
	t.Helper()
	tenant, user := recs[0].Tenant, recs[0].User.ID
	out, err := ctl("erase", "--api", d.url(""), "--tenant", tenant, "--subject", user, "--legal-basis", "e2e: data subject request (GDPR Art. 17(1)(a))")
	if err != nil || !strings.Contains(out, "erased in tenant "+tenant) {
		t.Fatalf("lineagectl erase: %v\n%s", err, out)
	}
	d.waitIndexed(t, uint64(len(idx))+1) // the erasure's own decision record
	if again := verifyAll(t, d, v, recs); !mapsEqual(idx, again) {
		t.Fatal("after the erasure, records moved in the log")
	}
	var erased, kept int
	for _, r := range recs {
		if r.Tenant != tenant || (r.User.ID != user && kept >= 50) {
			continue // every record of the erased user, and 50 of others (verifyAll checked all)
		}
		raw, err := getQuiet(d.url("/v1/records/" + url.PathEscape(r.ID) + "?tenant=" + r.Tenant))
		if err != nil {
			t.Fatal(err)
		}
		rp, err := query.DecodeRecordProof(raw)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case r.User.ID == user:
			if strings.Contains(string(raw), user) || !strings.HasPrefix(rp.Record.User.ID, "sealed:") {
				t.Fatalf("record %s of the erased user shows %q", r.ID, rp.Record.User.ID)
			}
			erased++
		case rp.Record.User.ID != r.User.ID:
			t.Fatalf("record %s of another user shows %q, want %q", r.ID, rp.Record.User.ID, r.User.ID)
		default:
			kept++
		}
	}
	if erased == 0 || kept == 0 {
		t.Fatalf("%d records of the erased user and %d of others checked; want some of each", erased, kept)
	}
}
