package service

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/internal/testenv"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/seal/sqlitekeys"
	"github.com/lineage-audit/lineage/verify"
)

// TestLostKeysDeclared: a key store restored from a backup older than a subject's first record
// lacks its key. LostKeys finds it (and only it) from the log, rebuild-index refuses to show its
// fields as erased on its own, and once the key is declared lost (a tombstone with the basis)
// the index rebuilds, the record reads as erased with its proof intact, and other subjects are
// still clear.
func TestLostKeysDeclared(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	logs := new(testenv.SyncBuffer)
	c := erasureConfig(t, dir, logs)
	addr, stop := startRun(t, c)
	base := "http://" + addr
	now := time.Now()
	publishRecords(t, base, erRecord("a-1", erasedUser, erasedTarget, now))
	waitRecord(t, base, "a-1")
	stop()

	backup := t.TempDir()
	keysDir := filepath.Dir(ErasureKeyStorePath(dir))
	copyFiles(t, keysDir, backup, "erasure.sqlite")

	addr, stop = startRun(t, c)
	base = "http://" + addr
	publishRecords(t, base, erRecord("b-1", keptUser, "case-kept-1", now))
	b1 := waitRecord(t, base, "b-1")
	stop()
	copyFiles(t, backup, keysDir, "erasure.sqlite") // the restore: bob's key is not in it

	v, err := ledger.ReadVerifierFile(filepath.Join(dir, "keys", "log.key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	lost, err := LostKeys(ctx, c, v, false, "", nil)
	if err != nil || len(lost) != 1 || lost[0].Tenant != erTenant || lost[0].First != b1.Index || lost[0].Entries != 1 {
		t.Fatalf("lost keys: %+v, %v; want bob's key, first at %d", lost, err, b1.Index)
	}
	if _, err := RebuildIndex(ctx, c, v, nil); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("rebuild-index with a lost key: %v, want it refused (key missing)", err)
	}
	if _, err := LostKeys(ctx, c, v, true, "", nil); err == nil {
		t.Fatal("declaring keys lost without a basis was accepted")
	}
	const basis = "key store restored from the backup of 2026-12-01"
	if got, err := LostKeys(ctx, c, v, true, basis, nil); err != nil || len(got) != 1 || got[0].KeyID != lost[0].KeyID {
		t.Fatalf("declare: %+v %v", got, err)
	}
	if again, err := LostKeys(ctx, c, v, false, "", nil); err != nil || len(again) != 0 {
		t.Fatalf("lost keys after the declaration: %+v %v, want none", again, err)
	}
	ks := openKeyStore(t, dir)
	tomb, ok, err := ks.Tombstone(ctx, erTenant, lost[0].KeyID)
	ks.Close()
	if err != nil || !ok || tomb.Basis != sqlitekeys.LostBasisPrefix+basis {
		t.Fatalf("tombstone of the lost key: %+v %v %v", tomb, ok, err)
	}
	if _, err := RebuildIndex(ctx, c, v, nil); err != nil {
		t.Fatalf("rebuild-index after the declaration: %v", err)
	}

	addr, stop = startRun(t, c)
	defer stop()
	base = "http://" + addr
	after := waitRecord(t, base, "b-1")
	if after.Index != b1.Index || !bytes.Equal(after.Leaf, b1.Leaf) || !strings.HasPrefix(after.Record.User.ID, "sealed:") {
		t.Fatalf("b-1 after the declaration: index %d, user %q; want the same leaf, the user erased", after.Index, after.Record.User.ID)
	}
	if _, err := verify.VerifyRecordProof(after, v); err != nil {
		t.Fatalf("b-1's proof after the declaration: %v", err)
	}
	if a := waitRecord(t, base, "a-1"); a.Record.User.ID != erasedUser {
		t.Fatalf("a-1 after the declaration shows %q, want the clear user", a.Record.User.ID)
	}
}
