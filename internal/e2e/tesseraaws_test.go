package e2e

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/internal/testenv"
	"github.com/lineage-audit/lineage/ledger"
)

// TestEndToEndTesseraAWS runs lineaged on --ledger tessera-aws: Tessera's AWS driver on MariaDB
// and an S3-compatible server (internal/testenv: gofakes3 by default). Records arrive over NATS,
// every answer verifies with the public key alone, a republished overlap adds nothing, and after
// a restart and an index rebuilt from the log alone the answers are the same.
func TestEndToEndTesseraAWS(t *testing.T) {
	sl := testenv.StartSharedLog(t)
	dsn, bucket, prefix := sl.NewLog(t, "e2e")
	flags := []string{"--ledger", "tessera-aws", "--tessera-aws-dsn", dsn, "--s3-bucket", bucket, "--s3-prefix", prefix,
		"--s3-endpoint", sl.S3.Endpoint, "--s3-region", sl.Region, "--s3-access-key-id", sl.KeyID,
		"--s3-secret-access-key", sl.Secret, "--s3-path-style"}
	dataDir := t.TempDir()
	natsAddr, httpAddr := freeAddr(t), freeAddr(t)
	d := startDaemon(t, dataDir, natsAddr, httpAddr, flags...)
	v, err := ledger.ReadVerifierFile(filepath.Join(dataDir, "keys", "log.key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 1200
	recs := demo.Generate(demo.Options{Seed: 23, Tenants: 3}, n)
	if out, err := ctl("publish", "--nats-url", "nats://"+natsAddr, "--demo", "800", "--seed", "23"); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	d.waitIndexed(t, 800)
	cp1 := mustCheckpoint(t, d, v, 800)
	if out, err := ctl("publish", "--nats-url", "nats://"+natsAddr, "--demo", fmt.Sprint(n), "--seed", "23"); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	d.waitIndexed(t, n)
	cp2 := mustCheckpoint(t, d, v, n)
	idx := verifyAll(t, d, v, recs)
	if len(idx) != n || cp2.Size != n {
		t.Fatalf("%d distinct records, checkpoint %d; want %d", len(idx), cp2.Size, n)
	}
	verifyConsistencyPairs(t, d, []ledger.Checkpoint{cp1, cp2})
	before := checkLineage(t, d, recs)

	d.stop()
	if out, err := ctl(append([]string{"rebuild-index", "--data-dir", dataDir}, flags...)...); err != nil {
		t.Fatalf("rebuild-index: %v\n%s", err, out)
	}
	d = startDaemon(t, dataDir, natsAddr, httpAddr, flags...)
	defer d.stop()
	d.waitIndexed(t, n)
	if after := checkLineage(t, d, recs); string(after) != string(before) {
		t.Fatal("lineage answers differ after rebuilding the index from the Tessera AWS log")
	}
	if again := verifyAll(t, d, v, recs); !mapsEqual(idx, again) {
		t.Fatal("the rebuilt index maps records to other log indexes")
	}
}
