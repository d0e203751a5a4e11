package tessera_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/ledgertest"
	"github.com/lineage-audit/lineage/ledger/tessera"
)

func TestConformance(t *testing.T) {
	keyDir := t.TempDir()
	signer, vkey, err := ledger.LoadOrCreateSigner(filepath.Join(keyDir, "log.key"), "lineage.test/conformance")
	if err != nil {
		t.Fatal(err)
	}
	v, err := ledger.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	ledgertest.Run(t, v, func(t *testing.T, dir string) ledger.Log {
		o := tessera.DefaultOptions(dir, signer, v)
		o.CheckpointInterval = 100e6
		l, err := tessera.Open(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
}

func TestReadOnlyMatchesWriter(t *testing.T) {
	dir := t.TempDir()
	signer, vkey, err := ledger.LoadOrCreateSigner(filepath.Join(t.TempDir(), "log.key"), "lineage.test/ro")
	if err != nil {
		t.Fatal(err)
	}
	v, _ := ledger.NewVerifier(vkey)
	w, err := tessera.Open(context.Background(), tessera.DefaultOptions(dir, signer, v))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(context.Background())
	if _, err := ledgertest.AddAll(context.Background(), w, [][]byte{[]byte("a"), []byte("b"), []byte("c")}); err != nil {
		t.Fatal(err)
	}
	cp, err := ledgertest.WaitCheckpoint(context.Background(), w, v, 3)
	if err != nil {
		t.Fatal(err)
	}
	r, err := tessera.OpenReadOnly(dir, v)
	if err != nil {
		t.Fatal(err)
	}
	rcp, err := r.Checkpoint(context.Background())
	if err != nil || rcp.Size != cp.Size {
		t.Fatalf("read-only checkpoint %d, %v; want %d", rcp.Size, err, cp.Size)
	}
	if n, err := r.Size(context.Background()); err != nil || n != 3 {
		t.Fatalf("read-only size %d, %v", n, err)
	}
	es, err := r.Entries(context.Background(), 0, 3, rcp.Size)
	if err != nil || string(es[2]) != "c" {
		t.Fatalf("read-only entries %q, %v", es, err)
	}
	if _, err := r.Add(context.Background(), []byte("x"))(); err == nil {
		t.Fatal("Add on a read-only log succeeded")
	}
}

func TestKeyRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k", "log.key")
	s1, v1, err := ledger.LoadOrCreateSigner(path, "lineage.test/keys")
	if err != nil {
		t.Fatal(err)
	}
	s2, v2, err := ledger.LoadOrCreateSigner(path, "ignored-on-reload")
	if err != nil {
		t.Fatal(err)
	}
	if v1 != v2 || s1.KeyHash() != s2.KeyHash() || s2.Name() != "lineage.test/keys" {
		t.Fatalf("reloaded key differs: %q vs %q", v1, v2)
	}
	pv, err := ledger.ReadVerifierFile(path + ".pub")
	if err != nil || pv.KeyHash() != s1.KeyHash() {
		t.Fatalf("pub file verifier: %v", err)
	}
}

// BenchmarkAppend measures durable appends of 1.5 KB entries (a typical canonical envelope) in
// batches: each batch is added, then every future resolved, as the ingester does. On a disk
// where fsync costs milliseconds, the batch size sets the throughput (docs/PERFORMANCE.md).
func BenchmarkAppend(b *testing.B) {
	for _, batch := range []int{1000, 4000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) { benchAppend(b, batch) })
	}
}

func benchAppend(b *testing.B, batch int) {
	signer, vkey, err := ledger.LoadOrCreateSigner(filepath.Join(b.TempDir(), "log.key"), "lineage.bench/tessera")
	if err != nil {
		b.Fatal(err)
	}
	v, _ := ledger.NewVerifier(vkey)
	o := tessera.DefaultOptions(b.TempDir(), signer, v)
	o.BatchMaxSize = uint(batch)
	l, err := tessera.Open(context.Background(), o)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close(context.Background())
	entries := make([][]byte, batch)
	for i := range entries {
		entries[i] = make([]byte, 1500)
	}
	b.SetBytes(int64(1500 * batch))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range entries {
			entries[j][0], entries[j][1], entries[j][2], entries[j][3] = byte(i), byte(i>>8), byte(j), byte(j>>8)
		}
		if _, err := ledgertest.AddAll(context.Background(), l, entries); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "entries/s")
}
