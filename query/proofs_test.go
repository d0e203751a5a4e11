package query_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/ledgertest"
	"github.com/lineage-audit/lineage/ledger/tessera"
	"github.com/lineage-audit/lineage/query"
)

// onlyLog hides the TileReader of a log, so InclusionProofs asks it one proof at a time.
type onlyLog struct{ ledger.Log }

// TestInclusionProofsMatchLog compares the one-pass proof builder with the log's own
// InclusionProof for many indexes (tile edges, the right border, random ones, repeats, any
// order) at many tree sizes, including sizes the log grew past inside one batch, sizes with
// partial tiles at every level, and a tree of three tile levels (> 65,536 leaves); and the leaf
// hashes the same pass returns (the lineage API checks rebuilt leaves against them) with the
// entries' RFC 6962 leaf hashes.
func TestInclusionProofsMatchLog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	signer, vkey, err := ledger.LoadOrCreateSigner(filepath.Join(dir, "log.key"), "lineage.test/proofs")
	if err != nil {
		t.Fatal(err)
	}
	v, _ := ledger.NewVerifier(vkey)
	o := tessera.DefaultOptions(filepath.Join(dir, "log"), signer, v)
	o.BatchMaxSize = 4096
	lg, err := tessera.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close(context.Background()) })
	const n = 66_000
	entries := make([][]byte, n)
	for i := range entries {
		entries[i] = fmt.Appendf(nil, "entry %d", i)
	}
	// The log's order is the indexes Add returns: Tessera's queue may sequence a batch it
	// flushed on age after the next one it flushed on size (storage/internal/queue.go sends
	// both to its worker after unlocking), so entries[i] need not be at index i.
	at := make([][]byte, n)
	for i := 0; i < n; i += 5000 {
		idx, err := ledgertest.AddAll(ctx, lg, entries[i:min(n, i+5000)])
		if err != nil {
			t.Fatal(err)
		}
		for j, x := range idx {
			if x >= n || at[x] != nil {
				t.Fatalf("entry %d got index %d, out of range or taken", i+j, x)
			}
			at[x] = entries[i+j]
		}
	}
	if _, err := ledgertest.WaitCheckpoint(ctx, lg, v, n); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []uint64{1, 2, 3, 7, 255, 256, 257, 511, 512, 513, 1000, 4097, 65535, 65536, 65537, 65791, 65792, 65793, n - 1, n}
	for range 12 {
		sizes = append(sizes, 1+rng.Uint64N(n))
	}
	for _, size := range sizes {
		idx := []uint64{0, size - 1, size / 2, size - 1, 0}
		for _, x := range []uint64{255, 256, 257, 511, 512, 65535, 65536, 65537} {
			if x < size {
				idx = append(idx, x)
			}
		}
		for range 150 {
			idx = append(idx, rng.Uint64N(size))
		}
		got, err := query.InclusionProofs(ctx, lg, idx, size)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		slow, err := query.InclusionProofs(ctx, onlyLog{lg}, idx, size)
		if err != nil {
			t.Fatalf("size %d, one at a time: %v", size, err)
		}
		// The same pass with the leaves' own hashes, its tiles shared out among goroutines.
		par, hashes, err := query.InclusionProofsAndLeafHashes(ctx, lg, idx, size, 1)
		if err != nil {
			t.Fatalf("size %d, with leaf hashes: %v", size, err)
		}
		if _, noTiles, err := query.InclusionProofsAndLeafHashes(ctx, onlyLog{lg}, idx[:3], size, 1); err != nil || noTiles != nil {
			t.Fatalf("size %d: a log without tiles returned leaf hashes %x (%v)", size, noTiles, err)
		}
		for i, x := range idx {
			want, err := lg.InclusionProof(ctx, x, size)
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d): %v", x, size, err)
			}
			if !equalProofs(got[i], want) || !equalProofs(slow[i], want) || !equalProofs(par[i], want) {
				t.Fatalf("inclusion %d@%d: the proof builder's proof differs from the log's", x, size)
			}
			if !bytes.Equal(hashes[i], ledger.LeafHash(at[x])) {
				t.Fatalf("leaf hash %d@%d from the tiles is %x, want %x", x, size, hashes[i], ledger.LeafHash(at[x]))
			}
		}
	}
	if _, err := query.InclusionProofs(ctx, lg, []uint64{5, n}, n); err == nil {
		t.Fatal("a proof beyond the tree size did not fail")
	}
}

func equalProofs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// TestLeavesOneBundleReadEach reads leaves in any order, with repeats, by one and by several
// readers, through the log's BundleReader (mapped bundle files) and through Entries, and
// compares them with the log's entries.
func TestLeavesOneBundleReadEach(t *testing.T) {
	recs := demo.Generate(demo.Options{Seed: 21, Tenants: 1}, 1300)
	_, lg, _ := apiRig(t, recs)
	ctx := context.Background()
	n := uint64(len(recs))
	all, err := lg.Entries(ctx, 0, n, n)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, size := range []uint64{n, 1000, 513, 256, 1} {
		idx := []uint64{size - 1, 0, size - 1}
		for range 300 {
			idx = append(idx, rng.Uint64N(size))
		}
		for _, c := range []struct {
			lg  ledger.Log
			per int
		}{{lg, 1}, {lg, 2}, {lg, 16}, {onlyLog{lg}, 1}, {onlyLog{lg}, 2}} {
			per := c.per
			got, err := query.Leaves(ctx, c.lg, idx, size, per)
			if err != nil {
				t.Fatalf("size %d, %d bundles per reader: %v", size, per, err)
			}
			for i, x := range idx {
				if !bytes.Equal(got[i], all[x]) {
					t.Fatalf("size %d, %d bundles per reader: leaf %d is not entry %d", size, per, i, x)
				}
			}
		}
	}
}
