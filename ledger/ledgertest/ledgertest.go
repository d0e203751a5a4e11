// Package ledgertest is the conformance suite every ledger.Log driver runs: the same appends,
// reads, proofs and restarts must behave the same on Tessera POSIX and on Trillian.
package ledgertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/ledger"
	"golang.org/x/mod/sumdb/note"
)

// Opener opens the driver's log stored under dir (the same dir again reopens the same log).
type Opener func(t *testing.T, dir string) ledger.Log

// Options sizes the suite's proof checks for a driver's speed. Zero fields take the defaults.
type Options struct {
	// EveryPairSize is the size of the log on which every inclusion pair (index < size) and
	// every consistency pair (from ≤ to) is checked: about EveryPairSize² proofs in all.
	// Default 300, which crosses the first tile edge (256).
	EveryPairSize int
	// LargeSize is the size of the log on which edge and random pairs are checked. Default
	// 70,000, which crosses the first level-1 tile edge (65,536).
	LargeSize int
}

// Run runs the suite. v verifies the checkpoints the driver signs. At most one Options may be
// given.
func Run(t *testing.T, v note.Verifier, open Opener, opts ...Options) {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.EveryPairSize <= 0 {
		o.EveryPairSize = defaultEveryPairSize
	}
	if o.LargeSize <= 0 {
		o.LargeSize = defaultLargeSize
	}
	t.Run("AppendAndRead", func(t *testing.T) { testAppendAndRead(t, v, open) })
	t.Run("Proofs", func(t *testing.T) { testProofs(t, v, open) })
	t.Run("ProofsEveryPair", func(t *testing.T) { testProofsEveryPair(t, v, open, o.EveryPairSize) })
	t.Run("ProofsLargeLog", func(t *testing.T) { testProofsLargeLog(t, v, open, o.LargeSize) })
	t.Run("DuplicateBytes", func(t *testing.T) { testDuplicateBytes(t, v, open) })
	t.Run("ConcurrentAdds", func(t *testing.T) { testConcurrent(t, v, open) })
	t.Run("Restart", func(t *testing.T) { testRestart(t, v, open) })
	t.Run("Bounds", func(t *testing.T) { testBounds(t, v, open) })
}

func entry(i int) []byte { return []byte(fmt.Sprintf(`{"entry":%d,"pad":"%0100d"}`, i, i)) }

// AddAll adds the entries in order, resolves every future and returns the indexes.
func AddAll(ctx context.Context, l ledger.Log, entries [][]byte) ([]uint64, error) {
	fs := make([]ledger.IndexFuture, len(entries))
	for i, e := range entries {
		fs[i] = l.Add(ctx, e)
	}
	out := make([]uint64, len(entries))
	for i, f := range fs {
		idx, err := f()
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		out[i] = idx
	}
	return out, nil
}

// WaitCheckpoint waits until the log publishes a checkpoint of at least size and verifies it.
func WaitCheckpoint(ctx context.Context, l ledger.Log, v note.Verifier, size uint64) (ledger.Checkpoint, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		cp, err := l.Checkpoint(ctx)
		if err == nil && cp.Size >= size {
			if _, err := ledger.OpenCheckpoint(cp.Note, v); err != nil {
				return cp, err
			}
			return cp, nil
		}
		if err != nil && !errors.Is(err, ledger.ErrNotFound) {
			return cp, err
		}
		select {
		case <-ctx.Done():
			return cp, fmt.Errorf("checkpoint never reached size %d: %w", size, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func mustAdd(t *testing.T, l ledger.Log, entries [][]byte) []uint64 {
	t.Helper()
	idx, err := AddAll(context.Background(), l, entries)
	if err != nil {
		t.Fatalf("add: %v", err)
	}
	return idx
}

func mustCheckpoint(t *testing.T, l ledger.Log, v note.Verifier, size uint64) ledger.Checkpoint {
	t.Helper()
	cp, err := WaitCheckpoint(context.Background(), l, v, size)
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	return cp
}

func closeLog(t *testing.T, l ledger.Log) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		t.Errorf("close: %v", err)
	}
}

func testAppendAndRead(t *testing.T, v note.Verifier, open Opener) {
	l := open(t, t.TempDir())
	defer closeLog(t, l)
	var entries [][]byte
	for i := 0; i < 700; i++ { // spans two full entry bundles and a partial one
		entries = append(entries, entry(i))
	}
	idx := mustAdd(t, l, entries)
	for i, x := range idx {
		if x != uint64(i) {
			t.Fatalf("entry %d got index %d; a fresh log assigns indexes in add order from 0", i, x)
		}
	}
	if n, err := l.Size(context.Background()); err != nil || n != 700 {
		t.Fatalf("Size = %d, %v; want 700", n, err)
	}
	cp := mustCheckpoint(t, l, v, 700)
	if cp.Origin != v.Name() {
		t.Fatalf("checkpoint origin %q, want %q", cp.Origin, v.Name())
	}
	for _, r := range [][2]uint64{{0, 700}, {0, 1}, {255, 2}, {256, 256}, {511, 189}, {699, 1}} {
		got, err := l.Entries(context.Background(), r[0], r[1], cp.Size)
		if err != nil {
			t.Fatalf("Entries(%d,%d): %v", r[0], r[1], err)
		}
		if uint64(len(got)) != r[1] {
			t.Fatalf("Entries(%d,%d) returned %d", r[0], r[1], len(got))
		}
		for j, e := range got {
			if !bytes.Equal(e, entries[r[0]+uint64(j)]) {
				t.Fatalf("Entries(%d,%d)[%d] = %q", r[0], r[1], j, e)
			}
		}
	}
	// A signature by another key, or a changed byte, must not verify.
	bad := bytes.Replace(cp.Note, []byte(fmt.Sprint(cp.Size)), []byte(fmt.Sprint(cp.Size+1)), 1)
	if _, err := ledger.OpenCheckpoint(bad, v); err == nil {
		t.Fatal("a checkpoint with a changed size verified")
	}
}

func testProofs(t *testing.T, v note.Verifier, open Opener) {
	l := open(t, t.TempDir())
	defer closeLog(t, l)
	var all [][]byte
	var cps []ledger.Checkpoint
	// Grow the log in uneven steps so proofs are checked at many tree sizes, including sizes
	// that end inside and on the edge of tiles.
	for _, step := range []int{1, 2, 5, 248, 1, 255, 300, 13} {
		var batch [][]byte
		for i := 0; i < step; i++ {
			batch = append(batch, entry(len(all)+i))
		}
		all = append(all, batch...)
		mustAdd(t, l, batch)
		cps = append(cps, mustCheckpoint(t, l, v, uint64(len(all))))
	}
	ctx := context.Background()
	for _, cp := range cps {
		for _, i := range []uint64{0, cp.Size / 2, cp.Size - 1} {
			p, err := l.InclusionProof(ctx, i, cp.Size)
			if err != nil {
				t.Fatalf("InclusionProof(%d,%d): %v", i, cp.Size, err)
			}
			if err := ledger.VerifyInclusion(all[i], i, p, cp); err != nil {
				t.Fatalf("verify inclusion %d@%d: %v", i, cp.Size, err)
			}
			if i+1 < cp.Size {
				if err := ledger.VerifyInclusion(all[i+1], i, p, cp); err == nil {
					t.Fatalf("inclusion %d@%d verified for the wrong entry", i, cp.Size)
				}
			}
		}
	}
	for a := 0; a < len(cps); a++ {
		for b := a; b < len(cps); b++ {
			p, err := l.ConsistencyProof(ctx, cps[a].Size, cps[b].Size)
			if err != nil {
				t.Fatalf("ConsistencyProof(%d,%d): %v", cps[a].Size, cps[b].Size, err)
			}
			if err := ledger.VerifyConsistency(cps[a], cps[b], p); err != nil {
				t.Fatalf("verify consistency %d→%d: %v", cps[a].Size, cps[b].Size, err)
			}
		}
	}
	// A forged older root must fail consistency.
	forged := cps[1]
	forged.Hash = append([]byte(nil), forged.Hash...)
	forged.Hash[0] ^= 1
	p, err := l.ConsistencyProof(ctx, forged.Size, cps[len(cps)-1].Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.VerifyConsistency(forged, cps[len(cps)-1], p); err == nil {
		t.Fatal("consistency verified from a forged root")
	}
}

func testDuplicateBytes(t *testing.T, v note.Verifier, open Opener) {
	l := open(t, t.TempDir())
	defer closeLog(t, l)
	e := entry(42)
	idx := mustAdd(t, l, [][]byte{e, entry(1), e})
	cp := mustCheckpoint(t, l, v, 1)
	// Deduplication by record id is the ingester's job; a driver may store identical bytes
	// twice or return the earlier index, but must never lose an add or return a wrong index.
	for _, i := range []uint64{idx[0], idx[2]} {
		cp = mustCheckpoint(t, l, v, i+1)
		got, err := l.Entries(context.Background(), i, 1, cp.Size)
		if err != nil || !bytes.Equal(got[0], e) {
			t.Fatalf("index %d holds %q, %v; want %q", i, got, err, e)
		}
	}
}

func testConcurrent(t *testing.T, v note.Verifier, open Opener) {
	l := open(t, t.TempDir())
	defer closeLog(t, l)
	const workers, per = 8, 150
	var wg sync.WaitGroup
	idx := make([][]uint64, workers)
	errs := make([]error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var es [][]byte
			for i := 0; i < per; i++ {
				es = append(es, entry(w*per+i))
			}
			idx[w], errs[w] = AddAll(context.Background(), l, es)
		}(w)
	}
	wg.Wait()
	seen := map[uint64]int{}
	for w := 0; w < workers; w++ {
		if errs[w] != nil {
			t.Fatalf("worker %d: %v", w, errs[w])
		}
		for i, x := range idx[w] {
			if i > 0 && x <= idx[w][i-1] {
				t.Fatalf("worker %d: index %d after %d; one goroutine's adds must keep their order", w, x, idx[w][i-1])
			}
			if prev, dup := seen[x]; dup {
				t.Fatalf("index %d assigned to entries %d and %d", x, prev, w*per+i)
			}
			seen[x] = w*per + i
		}
	}
	cp := mustCheckpoint(t, l, v, workers*per)
	got, err := l.Entries(context.Background(), 0, workers*per, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	for x, e := range got {
		if want := entry(seen[uint64(x)]); !bytes.Equal(e, want) {
			t.Fatalf("index %d holds %q, want %q", x, e, want)
		}
	}
}

func testRestart(t *testing.T, v note.Verifier, open Opener) {
	dir := t.TempDir()
	l := open(t, dir)
	mustAdd(t, l, [][]byte{entry(0), entry(1), entry(2)})
	cp1 := mustCheckpoint(t, l, v, 3)
	closeLog(t, l)

	l = open(t, dir)
	defer closeLog(t, l)
	if n, err := l.Size(context.Background()); err != nil || n != 3 {
		t.Fatalf("after reopen Size = %d, %v; want 3", n, err)
	}
	idx := mustAdd(t, l, [][]byte{entry(3)})
	if idx[0] != 3 {
		t.Fatalf("after reopen the next index is %d, want 3", idx[0])
	}
	cp2 := mustCheckpoint(t, l, v, 4)
	p, err := l.ConsistencyProof(context.Background(), cp1.Size, cp2.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.VerifyConsistency(cp1, cp2, p); err != nil {
		t.Fatalf("the reopened log is not an extension of the old one: %v", err)
	}
	got, err := l.Entries(context.Background(), 0, 4, cp2.Size)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range got {
		if !bytes.Equal(e, entry(i)) {
			t.Fatalf("after reopen index %d holds %q", i, e)
		}
	}
}

func testBounds(t *testing.T, v note.Verifier, open Opener) {
	l := open(t, t.TempDir())
	defer closeLog(t, l)
	if _, err := l.Checkpoint(context.Background()); err == nil {
		// Some drivers publish an empty checkpoint at start; it must then be size 0.
		cp, _ := l.Checkpoint(context.Background())
		if cp.Size != 0 {
			t.Fatalf("empty log checkpoint size %d", cp.Size)
		}
	}
	mustAdd(t, l, [][]byte{entry(0), entry(1)})
	cp := mustCheckpoint(t, l, v, 2)
	if _, err := l.Entries(context.Background(), 1, 5, cp.Size); err == nil {
		t.Fatal("Entries beyond the tree size succeeded")
	}
	if _, err := l.InclusionProof(context.Background(), 2, cp.Size); err == nil {
		t.Fatal("InclusionProof beyond the tree size succeeded")
	}
	if _, err := l.ConsistencyProof(context.Background(), 3, 2); err == nil {
		t.Fatal("ConsistencyProof with from > to succeeded")
	}
}
