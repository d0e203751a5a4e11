package ledgertest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/ledger"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// The proofs of every older tree size must be served, not only those of the latest checkpoint:
// clients keep old checkpoints and ask for proofs against them. A driver that builds
// proofs from stored tiles must then cope with the partial tiles of sizes it never integrated
// at, or has since deleted or outgrown.

// growSteps are the batch sizes of the every-pair log (cut short at its size): each batch is
// followed by a checkpoint, so the log integrates at sizes inside tiles, on a tile edge (256)
// and just past it, and grows past the rest in one batch.
var growSteps = []int{1, 2, 5, 120, 128, 1, 43}

const (
	// defaultEveryPairSize is the sum of growSteps.
	defaultEveryPairSize = 300
	// defaultLargeSize crosses the first level-1 tile edge (65,536 leaves, one full level-1 tile).
	defaultLargeSize = 70_000
)

// randomPairs is the number of random inclusion and of random consistency pairs on the large log.
const randomPairs = 300

// rootsAt computes, independently of the driver, the RFC 6962 root of the first s leaves of
// entries for every s in sizes (0 included). It walks the leaves once with a compact range.
func rootsAt(t *testing.T, entries [][]byte, sizes []uint64) map[uint64][]byte {
	t.Helper()
	sorted := append([]uint64(nil), sizes...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	out := make(map[uint64][]byte, len(sorted))
	for _, s := range sorted {
		for r.End() < s {
			if err := r.Append(ledger.LeafHash(entries[r.End()]), nil); err != nil {
				t.Fatal(err)
			}
		}
		if s == 0 {
			out[0] = rfc6962.DefaultHasher.EmptyRoot()
			continue
		}
		h, err := r.GetRootHash(nil)
		if err != nil {
			t.Fatal(err)
		}
		out[s] = h
	}
	return out
}

// parallel runs check(i) for i in [0,n) on a few goroutines and reports the first failure.
// Proof serving is concurrent in lineaged too (one API request per goroutine).
func parallel(t *testing.T, n int, check func(i int) error) {
	t.Helper()
	const workers = 8
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  int
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if first != nil || next >= n {
					mu.Unlock()
					return
				}
				i := next
				next++
				mu.Unlock()
				if err := check(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

// checkInclusion asks for the inclusion proof of index at size and verifies it against root.
func checkInclusion(ctx context.Context, l ledger.Log, entries [][]byte, index, size uint64, root []byte) error {
	p, err := l.InclusionProof(ctx, index, size)
	if err != nil {
		return fmt.Errorf("InclusionProof(%d, %d): %w", index, size, err)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, ledger.LeafHash(entries[index]), p, root); err != nil {
		return fmt.Errorf("inclusion %d@%d does not verify: %w", index, size, err)
	}
	return nil
}

// checkConsistency asks for the consistency proof from→to and verifies it against the roots.
func checkConsistency(ctx context.Context, l ledger.Log, from, to uint64, roots map[uint64][]byte) error {
	p, err := l.ConsistencyProof(ctx, from, to)
	if err != nil {
		return fmt.Errorf("ConsistencyProof(%d, %d): %w", from, to, err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, from, to, p, roots[from], roots[to]); err != nil {
		return fmt.Errorf("consistency %d→%d does not verify: %w", from, to, err)
	}
	return nil
}

// checkLatest checks that the latest checkpoint commits to the independently computed root.
func checkLatest(t *testing.T, cp ledger.Checkpoint, roots map[uint64][]byte) {
	t.Helper()
	if want := roots[cp.Size]; !bytes.Equal(cp.Hash, want) {
		t.Fatalf("checkpoint %d has root %x, the leaves give %x", cp.Size, cp.Hash, want)
	}
}

// testProofsEveryPair grows a log of size entries through several checkpoints, then checks
// every inclusion pair (index < s ≤ size) and every consistency pair (from ≤ to ≤ size).
func testProofsEveryPair(t *testing.T, v note.Verifier, open Opener, size int) {
	l := open(t, t.TempDir())
	defer closeLog(t, l)
	var all [][]byte
	var cp ledger.Checkpoint
	for k := 0; len(all) < size; k++ {
		step := size - len(all)
		if k < len(growSteps) {
			step = min(step, growSteps[k])
		}
		batch := make([][]byte, step)
		for i := range batch {
			batch[i] = entry(len(all) + i)
		}
		all = append(all, batch...)
		mustAdd(t, l, batch)
		cp = mustCheckpoint(t, l, v, uint64(len(all)))
	}
	n := uint64(len(all))
	if cp.Size != n {
		t.Fatalf("checkpoint size %d, want %d", cp.Size, n)
	}
	sizes := make([]uint64, n+1)
	for s := range sizes {
		sizes[s] = uint64(s)
	}
	roots := rootsAt(t, all, sizes)
	checkLatest(t, cp, roots)
	ctx := context.Background()

	// Inclusion: pair k enumerates (index, size) size by size, so a driver that caches per size
	// sees the sizes in order.
	var incl, cons []pair
	for size := uint64(1); size <= n; size++ {
		for index := uint64(0); index < size; index++ {
			incl = append(incl, pair{index, size})
		}
	}
	for to := uint64(0); to <= n; to++ {
		for from := uint64(0); from <= to; from++ {
			cons = append(cons, pair{from, to})
		}
	}
	checkPairs(t, ctx, l, all, incl, cons, roots, n)
}

// testProofsLargeLog appends size entries in large add calls (so the log integrates and
// checkpoints at many sizes, by default across a level-1 tile edge), then checks edge and
// random pairs.
func testProofsLargeLog(t *testing.T, v note.Verifier, open Opener, size int) {
	if testing.Short() {
		t.Skip("large log skipped in -short mode")
	}
	l := open(t, t.TempDir())
	defer closeLog(t, l)
	// Several add calls with a checkpoint after some of them: old partial tiles are outgrown,
	// overwritten or deleted on the way. A driver may sequence the entries of one large add
	// call in another order than they were added, so leaves are placed by the returned index.
	all := make([][]byte, size)
	chunk := max(size/20, 1)
	for start, k := 0, 0; start < len(all); k++ {
		end := min(start+chunk+k*chunk/4, len(all))
		batch := make([][]byte, end-start)
		for i := range batch {
			batch[i] = entry(start + i)
		}
		for i, idx := range mustAdd(t, l, batch) {
			if idx >= uint64(len(all)) || all[idx] != nil {
				t.Fatalf("entry %d got index %d, out of range or taken", start+i, idx)
			}
			all[idx] = batch[i]
		}
		if k%3 == 0 {
			mustCheckpoint(t, l, v, uint64(end))
		}
		start = end
	}
	cp := mustCheckpoint(t, l, v, uint64(size))
	n := cp.Size
	rng := rand.New(rand.NewPCG(13, uint64(n)))
	var incl, cons []pair
	// Edges: the first and last leaf of sizes around tile and level-1 tile boundaries.
	for _, s := range []uint64{1, 2, 255, 256, 257, 511, 512, 513, 65535, 65536, 65537, n - 1, n} {
		if s > n {
			continue
		}
		incl = append(incl, pair{0, s}, pair{s - 1, s}, pair{s / 2, s})
		cons = append(cons, pair{0, s}, pair{s, s}, pair{1, s}, pair{s - 1, s}, pair{s, n})
	}
	for range randomPairs {
		size := 1 + rng.Uint64N(n)
		incl = append(incl, pair{rng.Uint64N(size), size})
		to := rng.Uint64N(n + 1)
		cons = append(cons, pair{rng.Uint64N(to + 1), to})
	}
	var sizes []uint64
	for _, p := range incl {
		sizes = append(sizes, p.b)
	}
	for _, p := range cons {
		sizes = append(sizes, p.a, p.b)
	}
	roots := rootsAt(t, all, append(sizes, n))
	checkLatest(t, cp, roots)
	ctx := context.Background()
	checkPairs(t, ctx, l, all, incl, cons, roots, n)
}

// pair is an inclusion pair (index, size) or a consistency pair (from, to).
type pair struct{ a, b uint64 }

// checkPairs checks every inclusion pair (index, size) and consistency pair (from, to) against
// the roots computed from the leaves, in parallel, and logs how long each kind took.
func checkPairs(t *testing.T, ctx context.Context, l ledger.Log, all [][]byte, incl, cons []pair, roots map[uint64][]byte, n uint64) {
	t.Helper()
	start := time.Now()
	parallel(t, len(incl), func(k int) error {
		return checkInclusion(ctx, l, all, incl[k].a, incl[k].b, roots[incl[k].b])
	})
	mid := time.Now()
	parallel(t, len(cons), func(k int) error {
		return checkConsistency(ctx, l, cons[k].a, cons[k].b, roots)
	})
	t.Logf("inclusion %v, consistency %v", mid.Sub(start), time.Since(mid))
	t.Logf("%d inclusion and %d consistency pairs verified on a %d-entry log", len(incl), len(cons), n)
}
