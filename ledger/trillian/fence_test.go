package trillian_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/internal/ha"
	"github.com/lineage-audit/lineage/internal/testenv"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/trillian"
)

// sharedStore is the cluster's checkpoint store (internal/ha) on a real JetStream server.
func sharedStore(t *testing.T, treeID int64) *ha.CheckpointStore {
	t.Helper()
	_, js := testenv.ConnectJetStream(t, testenv.StartJetStream(t))
	cs, err := ha.OpenCheckpointStore(context.Background(), js, 1, ha.TreeKey(treeID))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// TestFencedTakeover is the writer hand-over of a cluster (internal/ha) on a real Trillian: the
// new writer starts from the checkpoint the old one stored in the shared store, so its first
// checkpoint is checked against the old writer's last; an old writer whose fence still passes
// cannot move the shared checkpoint back (compare-and-set) and adopts the new writer's; once
// its fence fails it sends and signs nothing.
func TestFencedTakeover(t *testing.T) {
	e := newEnv(t)
	tree := e.tr.CreateTree(t)
	shared := sharedStore(t, tree)

	var aLost atomic.Bool
	oa := e.options(tree, t.TempDir())
	oa.Checkpoints = shared
	oa.Fence = func() error {
		if aLost.Load() {
			return ha.ErrLeaseLost
		}
		return nil
	}
	a := e.open(t, oa)
	defer a.Close(context.Background())
	mustAdd(t, a, entries(0, 3))
	last := mustCheckpoint(t, a, e.v, 3)

	// b takes over: it opens on the shared checkpoint, not on a state dir of its own.
	ob := e.options(tree, t.TempDir())
	ob.Checkpoints = shared
	b := e.open(t, ob)
	defer mustClose(t, b)
	if cp, err := b.Checkpoint(context.Background()); err != nil || cp.Size != 3 || string(cp.Hash) != string(last.Hash) {
		t.Fatalf("the new writer starts from %+v, %v; want the old writer's last checkpoint (size 3)", cp, err)
	}
	mustAdd(t, b, entries(3, 2))
	first := mustCheckpoint(t, b, e.v, 5)
	p, err := b.ConsistencyProof(context.Background(), last.Size, first.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.VerifyConsistency(last, first, p); err != nil {
		t.Fatalf("the new writer's first checkpoint is not consistent with the old one's last: %v", err)
	}

	// a's fence still passes (a writer paused between its check and its write): the shared
	// checkpoint only moves forward, so a adopts b's newer one instead of going back to its own.
	deadline := time.Now().Add(10 * time.Second)
	for {
		cp, err := a.Checkpoint(context.Background())
		if err != nil {
			t.Fatalf("old writer's checkpoint: %v", err)
		}
		if cp.Size >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the old writer still serves checkpoint %d after the new one stored 5", cp.Size)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Once its fence says the lease is gone, a sends and signs nothing.
	aLost.Store(true)
	if _, err := a.Add(context.Background(), []byte("from the old writer"))(); !errors.Is(err, ledger.ErrFenced) {
		t.Fatalf("old writer's add with its lease gone: %v", err)
	}
	// Nothing of a's reached the log, and the shared checkpoint is b's.
	mustAdd(t, b, entries(5, 1))
	cp := mustCheckpoint(t, b, e.v, 6)
	got, err := b.Entries(context.Background(), 3, 3, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range got {
		if string(g) != string(entries(3+i, 1)[0]) {
			t.Fatalf("entry %d = %q, not the new writer's", 3+i, g)
		}
	}
}

// TestFenceBeforeSend: a writer whose fence fails sends nothing, even an add it had queued.
func TestFenceBeforeSend(t *testing.T) {
	e := newEnv(t)
	tree := e.tr.CreateTree(t)
	var lost atomic.Bool
	o := e.options(tree, t.TempDir())
	o.Fence = func() error {
		if lost.Load() {
			return ha.ErrLeaseLost
		}
		return nil
	}
	l := e.open(t, o)
	defer l.Close(context.Background())
	mustAdd(t, l, entries(0, 2))
	mustCheckpoint(t, l, e.v, 2)
	lost.Store(true)
	if _, err := l.Add(context.Background(), []byte("late"))(); !errors.Is(err, ledger.ErrFenced) {
		t.Fatalf("add with the fence failing: %v", err)
	}
	// A reader of the tree sees the two entries only.
	time.Sleep(300 * time.Millisecond)
	r := e.open(t, e.options(tree, t.TempDir()))
	defer mustClose(t, r)
	if n := size(t, r); n != 2 {
		t.Fatalf("tree holds %d entries after a fenced add, want 2", n)
	}
}

// TestSharedReaders: a read-only node serves the shared checkpoint to many requests at once, and
// follows the writer's newer ones (run with -race: the driver caches the verified checkpoint).
func TestSharedReaders(t *testing.T) {
	e := newEnv(t)
	tree := e.tr.CreateTree(t)
	shared := sharedStore(t, tree)
	ow := e.options(tree, t.TempDir())
	ow.Checkpoints = shared
	w := e.open(t, ow)
	defer mustClose(t, w)
	mustAdd(t, w, entries(0, 3))
	mustCheckpoint(t, w, e.v, 3)
	or := e.options(tree, t.TempDir())
	or.Checkpoints = shared
	r, err := trillian.OpenReadOnly(context.Background(), or)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	read := func(want uint64) {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 20 {
					if cp, err := r.Checkpoint(context.Background()); err != nil || cp.Size < want {
						t.Errorf("reader's checkpoint %d, %v; want at least %d", cp.Size, err, want)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	read(3)
	mustAdd(t, w, entries(3, 2))
	mustCheckpoint(t, w, e.v, 5)
	read(5)
}
