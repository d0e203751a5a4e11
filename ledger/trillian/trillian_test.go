package trillian_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	trillianpb "github.com/google/trillian"
	"github.com/lineage-audit/lineage/internal/testenv"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/ledgertest"
	"github.com/lineage-audit/lineage/ledger/trillian"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"
)

// env is one Trillian stack and one signing key shared by a test's logs.
type env struct {
	tr     *testenv.Trillian
	signer note.Signer
	v      note.Verifier
}

func newEnv(t testing.TB) *env {
	t.Helper()
	signer, vkey, err := ledger.LoadOrCreateSigner(filepath.Join(t.TempDir(), "log.key"), "lineage.test/trillian")
	if err != nil {
		t.Fatal(err)
	}
	v, err := ledger.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return &env{tr: testenv.StartTrillian(t), signer: signer, v: v}
}

// options are the driver options of the tests: the defaults, with a checkpoint pass every 50 ms
// so the suite's waits stay short.
func (e *env) options(treeID int64, stateDir string) trillian.Options {
	o := trillian.DefaultOptions(e.tr.Addr, treeID, stateDir, e.signer, e.v)
	o.CheckpointInterval = 50 * time.Millisecond
	o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return o
}

func (e *env) open(t testing.TB, o trillian.Options) *trillian.Log {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := trillian.Open(ctx, o)
	if err != nil {
		t.Fatalf("open tree %d: %v", o.TreeID, err)
	}
	return l
}

// opener gives every fresh dir its own tree and reopens the same tree for the same dir: the
// tree id is kept in the dir beside the driver's state dir.
func (e *env) opener() ledgertest.Opener {
	return func(t *testing.T, dir string) ledger.Log {
		idFile := filepath.Join(dir, "tree-id")
		var id int64
		if b, err := os.ReadFile(idFile); err == nil {
			if id, err = strconv.ParseInt(string(b), 10, 64); err != nil {
				t.Fatal(err)
			}
		} else {
			id = e.tr.CreateTree(t)
			if err := os.WriteFile(idFile, []byte(strconv.FormatInt(id, 10)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return e.open(t, e.options(id, filepath.Join(dir, "state")))
	}
}

// The conformance suite's proof log sizes on Trillian (see TestConformance).
const (
	trillianEveryPair = 100
	trillianLarge     = 3000
)

func TestConformance(t *testing.T) {
	e := newEnv(t)
	// Every Trillian proof is an RPC and a database read, about 100 times slower than
	// reading a Tessera tile from disk: the proof pairs are checked on smaller logs than the
	// defaults so the suite stays under a minute.
	ledgertest.Run(t, e.v, e.opener(), ledgertest.Options{EveryPairSize: trillianEveryPair, LargeSize: trillianLarge})
}

func entries(from, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(fmt.Sprintf(`{"record":%d,"pad":"%0600d"}`, from+i, from+i))
	}
	return out
}

func mustAdd(t testing.TB, l ledger.Log, es [][]byte) []uint64 {
	t.Helper()
	idx, err := ledgertest.AddAll(context.Background(), l, es)
	if err != nil {
		t.Fatalf("add: %v", err)
	}
	return idx
}

func mustCheckpoint(t testing.TB, l ledger.Log, v note.Verifier, size uint64) ledger.Checkpoint {
	t.Helper()
	cp, err := ledgertest.WaitCheckpoint(context.Background(), l, v, size)
	if err != nil {
		t.Fatalf("checkpoint %d: %v", size, err)
	}
	return cp
}

func mustClose(t testing.TB, l ledger.Log) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func size(t testing.TB, l ledger.Log) uint64 {
	t.Helper()
	n, err := l.Size(context.Background())
	if err != nil {
		t.Fatalf("size: %v", err)
	}
	return n
}

// TestRefusesInconsistentRoot points a driver whose state dir holds a checkpoint of tree A at
// other trees: one with different leaves and one with fewer. Neither root extends the signed
// checkpoint, so Open must refuse and the persisted checkpoint must stay as it was.
func TestRefusesInconsistentRoot(t *testing.T) {
	e := newEnv(t)
	stateA := t.TempDir()
	treeA := e.tr.CreateTree(t)
	a := e.open(t, e.options(treeA, stateA))
	mustAdd(t, a, entries(0, 3))
	mustCheckpoint(t, a, e.v, 3)
	mustClose(t, a)
	before, err := os.ReadFile(filepath.Join(stateA, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}

	// Tree B: five other entries, so a consistency proof from size 3 exists but cannot match.
	treeB := e.tr.CreateTree(t)
	b := e.open(t, e.options(treeB, t.TempDir()))
	mustAdd(t, b, entries(100, 5))
	mustCheckpoint(t, b, e.v, 5)
	mustClose(t, b)
	// Tree C: empty, smaller than the signed checkpoint.
	treeC := e.tr.CreateTree(t)

	for _, tree := range []int64{treeB, treeC} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		l, err := trillian.Open(ctx, e.options(tree, stateA))
		cancel()
		if err == nil {
			l.Close(context.Background())
			t.Fatalf("tree %d opened with the checkpoint of another tree", tree)
		}
		if !errors.Is(err, trillian.ErrInconsistentRoot) {
			t.Fatalf("tree %d: err = %v, want ErrInconsistentRoot", tree, err)
		}
	}
	after, err := os.ReadFile(filepath.Join(stateA, "checkpoint"))
	if err != nil || !bytes.Equal(before, after) {
		t.Fatalf("the persisted checkpoint changed after a refused root (%v)", err)
	}
	// The right tree still opens and extends the old checkpoint.
	a = e.open(t, e.options(treeA, stateA))
	mustClose(t, a)
}

// TestAlarmOnTamperedRoot changes the latest root hash in MariaDB under a running driver (the
// signer stopped, so nothing overwrites it): the next checkpoint pass must refuse it, keep the
// old checkpoint, and fail adds and reads with ErrInconsistentRoot.
func TestAlarmOnTamperedRoot(t *testing.T) {
	e := newEnv(t)
	tree := e.tr.CreateTree(t)
	state := t.TempDir()
	l := e.open(t, e.options(tree, state))
	mustAdd(t, l, entries(0, 10))
	cp := mustCheckpoint(t, l, e.v, 10)
	e.tr.StopSigner(t)
	e.tr.SQL(t, fmt.Sprintf("UPDATE TreeHead SET RootHash = UNHEX(REPEAT('ab', 32)) WHERE TreeId = %d ORDER BY TreeHeadTimestamp DESC LIMIT 1", tree))

	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := l.Checkpoint(context.Background())
		if errors.Is(err, trillian.ErrInconsistentRoot) {
			if !bytes.Equal(got.Note, cp.Note) {
				t.Fatalf("after the alarm Checkpoint returned %q, want the last good one", got.Note)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no alarm for a tampered root: checkpoint %d, %v", got.Size, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := l.Add(context.Background(), []byte("after the alarm"))(); !errors.Is(err, trillian.ErrInconsistentRoot) {
		t.Fatalf("add after the alarm: %v", err)
	}
	if _, err := l.InclusionProof(context.Background(), 0, cp.Size); !errors.Is(err, trillian.ErrInconsistentRoot) {
		t.Fatalf("proof after the alarm: %v", err)
	}
	if err := l.Close(context.Background()); !errors.Is(err, trillian.ErrInconsistentRoot) {
		t.Fatalf("close after the alarm: %v", err)
	}
	persisted, err := os.ReadFile(filepath.Join(state, "checkpoint"))
	if err != nil || !bytes.Equal(persisted, cp.Note) {
		t.Fatalf("persisted checkpoint changed: %v", err)
	}
	// A restart checks the same root against the persisted checkpoint and refuses again.
	if _, err := trillian.Open(context.Background(), e.options(tree, state)); !errors.Is(err, trillian.ErrInconsistentRoot) {
		t.Fatalf("reopen on the tampered root: %v", err)
	}
}

// rpcCounter counts the driver's gRPC calls by method.
type rpcCounter struct {
	mu    sync.Mutex
	calls map[string]int
}

func (c *rpcCounter) interceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	c.mu.Lock()
	c.calls[method]++
	c.mu.Unlock()
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (c *rpcCounter) get(method string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls["/trillian.TrillianLog/"+method]
}

// TestBatching checks that adds are grouped: 2,500 adds made without waiting become three
// AddSequencedLeaves calls of at most 1,000 (one MariaDB commit each), and 1,000 adds from 50 goroutines that each wait
// for every add become far fewer calls than adds.
func TestBatching(t *testing.T) {
	e := newEnv(t)
	c := &rpcCounter{calls: map[string]int{}}
	o := e.options(e.tr.CreateTree(t), t.TempDir())
	o.BatchMaxAge = 100 * time.Millisecond // time enough to queue the first 1,000 even under -race
	o.DialOptions = []grpc.DialOption{grpc.WithChainUnaryInterceptor(c.interceptor)}
	l := e.open(t, o)
	defer mustClose(t, l)

	idx := mustAdd(t, l, entries(0, 2500))
	if idx[2499] != 2499 {
		t.Fatalf("last index %d", idx[2499])
	}
	// 1000+1000+500 normally; a slow machine may cut the first batch short by its age.
	if n := c.get("AddSequencedLeaves"); n > 4 {
		t.Fatalf("2500 adds took %d AddSequencedLeaves calls, want 3", n)
	}
	serial := c.get("AddSequencedLeaves")

	const workers, per = 50, 20
	var wg sync.WaitGroup
	var failures atomic.Int32
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i, es := range entries(10000+w*per, per) {
				if _, err := l.Add(context.Background(), es)(); err != nil {
					t.Errorf("worker %d add %d: %v", w, i, err)
					failures.Add(1)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	calls := c.get("AddSequencedLeaves") - serial
	t.Logf("%d waiting adds from %d goroutines took %d calls", workers*per, workers, calls)
	if failures.Load() == 0 && calls > workers*per/5 {
		t.Fatalf("%d waiting adds from %d goroutines took %d calls; batching should group them", workers*per, workers, calls)
	}
	if got := size(t, l); got != 2500+workers*per {
		t.Fatalf("size %d, want %d", got, 2500+workers*per)
	}
}

// TestRestartWithUnintegratedLeaves stops the signer so that added leaves are stored but not
// integrated, restarts the driver, and checks that Size counts them and the next add follows
// them; once the signer runs again the checkpoint covers everything and extends the old one.
func TestRestartWithUnintegratedLeaves(t *testing.T) {
	e := newEnv(t)
	tree := e.tr.CreateTree(t)
	state := t.TempDir()
	all := entries(0, 8)

	l := e.open(t, e.options(tree, state))
	mustAdd(t, l, all[:3])
	cp3 := mustCheckpoint(t, l, e.v, 3)
	e.tr.StopSigner(t)
	mustAdd(t, l, all[3:7])
	if got := size(t, l); got != 7 {
		t.Fatalf("size %d with the signer stopped, want 7", got)
	}
	closeUncovered(t, l)

	l = e.open(t, e.options(tree, state))
	if got := size(t, l); got != 7 {
		t.Fatalf("after restart Size = %d, want 7 (3 integrated + 4 stored)", got)
	}
	if cp, err := l.Checkpoint(context.Background()); err != nil || cp.Size != 3 {
		t.Fatalf("after restart checkpoint %d, %v; want the persisted 3", cp.Size, err)
	}
	if idx := mustAdd(t, l, all[7:]); idx[0] != 7 {
		t.Fatalf("after restart the next index is %d, want 7", idx[0])
	}
	e.tr.StartSigner(t)
	cp8 := mustCheckpoint(t, l, e.v, 8)
	checkLog(t, l, all, cp3, cp8)
	mustClose(t, l)
}

// TestRestartFreshTreeUnintegrated is the case an empty root hides: the first leaves of a fresh
// tree are stored but the signer never integrated them. Open must wait for the signer instead
// of assuming an empty log, and then count them.
func TestRestartFreshTreeUnintegrated(t *testing.T) {
	e := newEnv(t)
	tree := e.tr.CreateTree(t)
	state := t.TempDir()
	all := entries(0, 6)

	e.tr.StopSigner(t)
	l := e.open(t, e.options(tree, state))
	mustAdd(t, l, all[:5])
	closeUncovered(t, l)

	// Open must wait for the signer, which comes back only after Open has started.
	type opened struct {
		l   *trillian.Log
		err error
	}
	ch := make(chan opened, 1)
	start := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		l, err := trillian.Open(ctx, e.options(tree, state))
		ch <- opened{l, err}
	}()
	time.Sleep(500 * time.Millisecond)
	select {
	case o := <-ch:
		t.Fatalf("Open returned before the signer integrated the stored leaves: %v", o.err)
	default:
	}
	e.tr.StartSigner(t)
	o := <-ch
	if o.err != nil {
		t.Fatal(o.err)
	}
	l = o.l
	t.Logf("Open waited %v for the signer", time.Since(start).Round(time.Millisecond))
	if got := size(t, l); got != 5 {
		t.Fatalf("after restart Size = %d, want 5", got)
	}
	if idx := mustAdd(t, l, all[5:]); idx[0] != 5 {
		t.Fatalf("next index %d, want 5", idx[0])
	}
	cp := mustCheckpoint(t, l, e.v, 6)
	checkLog(t, l, all, ledger.Checkpoint{}, cp)
	mustClose(t, l)
	if _, err := os.Stat(filepath.Join(state, fmt.Sprintf("tree-%d.leaf0", tree))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the index-0 copy outlived the first checkpoint: %v", err)
	}
}

// closeUncovered closes a log while the signer is stopped: the entries are stored, but no
// checkpoint can cover them, which Close reports once its context ends.
func closeUncovered(t *testing.T, l ledger.Log) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := l.Close(ctx); err == nil {
		t.Fatal("Close reported a covering checkpoint while the signer was stopped")
	}
}

// checkLog verifies that the log holds want, that inclusion proofs verify against cp, and that
// cp extends old.
func checkLog(t *testing.T, l ledger.Log, want [][]byte, old, cp ledger.Checkpoint) {
	t.Helper()
	ctx := context.Background()
	got, err := l.Entries(ctx, 0, uint64(len(want)), cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("index %d holds %q, want %q", i, got[i], want[i])
		}
		p, err := l.InclusionProof(ctx, uint64(i), cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := ledger.VerifyInclusion(want[i], uint64(i), p, cp); err != nil {
			t.Fatal(err)
		}
	}
	p, err := l.ConsistencyProof(ctx, old.Size, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	if old.Size > 0 {
		if err := ledger.VerifyConsistency(old, cp, p); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSecondWriterConflict opens two drivers (two state dirs) on one tree, which Lineage never
// does on purpose. The stale one must not overwrite: its add fails with ErrConflict, and its
// next add lands after everything stored.
func TestSecondWriterConflict(t *testing.T) {
	e := newEnv(t)
	tree := e.tr.CreateTree(t)
	a := e.open(t, e.options(tree, t.TempDir()))
	defer mustClose(t, a)
	mustAdd(t, a, entries(0, 3))
	mustCheckpoint(t, a, e.v, 3)
	b := e.open(t, e.options(tree, t.TempDir()))
	defer mustClose(t, b)
	if got := size(t, b); got != 3 {
		t.Fatalf("second driver size %d, want 3", got)
	}
	mustAdd(t, a, entries(3, 2)) // indexes 3 and 4, unknown to b
	if _, err := b.Add(context.Background(), []byte("stale writer"))(); !errors.Is(err, trillian.ErrConflict) {
		t.Fatalf("stale writer's add: %v, want ErrConflict", err)
	}
	idx, err := b.Add(context.Background(), []byte("after re-reading"))()
	if err != nil || idx != 5 {
		t.Fatalf("add after the conflict: %d, %v; want index 5", idx, err)
	}
	cp := mustCheckpoint(t, a, e.v, 6)
	got, err := a.Entries(context.Background(), 3, 3, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[0], entries(3, 1)[0]) || string(got[2]) != "after re-reading" {
		t.Fatalf("entries 3..5 = %q", got)
	}
}

// TestReadOnly reads the writer's checkpoint and entries through OpenReadOnly.
func TestReadOnly(t *testing.T) {
	e := newEnv(t)
	tree := e.tr.CreateTree(t)
	state := t.TempDir()
	w := e.open(t, e.options(tree, state))
	defer mustClose(t, w)
	mustAdd(t, w, entries(0, 4))
	cp := mustCheckpoint(t, w, e.v, 4)
	o := e.options(tree, state)
	o.Signer = nil
	r, err := trillian.OpenReadOnly(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	rcp, err := r.Checkpoint(context.Background())
	if err != nil || rcp.Size < cp.Size {
		t.Fatalf("read-only checkpoint %d, %v; want ≥ %d", rcp.Size, err, cp.Size)
	}
	if n := size(t, r); n != rcp.Size {
		t.Fatalf("read-only size %d, want %d", n, rcp.Size)
	}
	es, err := r.Entries(context.Background(), 0, 4, rcp.Size)
	if err != nil || !bytes.Equal(es[3], entries(3, 1)[0]) {
		t.Fatalf("read-only entries: %v", err)
	}
	if _, err := r.Add(context.Background(), []byte("x"))(); !errors.Is(err, ledger.ErrReadOnly) {
		t.Fatalf("read-only add: %v", err)
	}
}

// TestRefusesLogTree opens a normal LOG tree: the driver needs PREORDERED_LOG and says so at
// Open instead of failing on the first add.
func TestRefusesLogTree(t *testing.T) {
	e := newEnv(t)
	conn, err := grpc.NewClient(e.tr.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tree, err := trillianpb.NewTrillianAdminClient(conn).CreateTree(context.Background(), &trillianpb.CreateTreeRequest{
		Tree: &trillianpb.Tree{TreeState: trillianpb.TreeState_ACTIVE, TreeType: trillianpb.TreeType_LOG, MaxRootDuration: durationpb.New(0)},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = trillian.Open(context.Background(), e.options(tree.GetTreeId(), t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), "PREORDERED_LOG") {
		t.Fatalf("Open on a LOG tree: %v", err)
	}
}

// TestCreateTree makes trees as `lineagectl trillian create-tree` does, with the default and
// with a disabled max root duration, and checks what Trillian stored.
func TestCreateTree(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		d      time.Duration
		millis string
	}{{0, "3600000"}, {-1, "0"}, {time.Minute, "60000"}} {
		id, err := trillian.CreateTree(context.Background(), e.tr.Addr, trillian.TreeOptions{MaxRootDuration: c.d})
		if err != nil {
			t.Fatalf("CreateTree(%v): %v", c.d, err)
		}
		got := strings.Fields(e.tr.SQL(t, fmt.Sprintf("SELECT TreeType, TreeState, HashStrategy, MaxRootDurationMillis FROM Trees WHERE TreeId = %d", id)))
		if want := []string{"PREORDERED_LOG", "ACTIVE", "RFC6962_SHA256", c.millis}; strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("tree %d: %v, want %v", id, got, want)
		}
	}
	if _, err := trillian.CreateTree(context.Background(), "203.0.113.1:8090", trillian.TreeOptions{}); err == nil {
		t.Fatal("CreateTree used plaintext to a non-loopback address")
	}
}
