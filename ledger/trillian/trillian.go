// Package trillian is the ledger.Log driver for Google Trillian (github.com/google/trillian): the
// log lives in a Trillian log server (trillian_log_server + trillian_log_signer on MariaDB, its
// production storage), which many organizations already operate, and Lineage talks to it over
// gRPC. It is the scale-out alternative to the embedded Tessera POSIX driver (ledger/tessera);
// `lineaged serve --ledger trillian` uses it, and both pass the same conformance suite
// (ledger/ledgertest).
//
// # Tree type: PREORDERED_LOG
//
// Trillian offers two log tree types, and this driver requires PREORDERED_LOG (CreateTree makes
// one). The choice follows from reading Trillian v1.8.0's server and MySQL storage:
//
//   - A normal LOG takes leaves through QueueLeaves; the signer later dequeues them ordered by
//     (queue timestamp, leaf identity hash) and assigns indexes. Every leaf of one QueueLeaves
//     call carries the same timestamp, so a batch is integrated in hash order, not in the order
//     of the Add calls, which breaks ledger.Log's per-goroutine ordering. The index is only
//     known after the signer's next pass, so a future would have to wait a sequencer interval
//     and then look its leaf up by hash, which is ambiguous for identical entries. QueueLeaves
//     also dedupes identical leaf identities by returning the earlier leaf.
//   - A PREORDERED_LOG takes AddSequencedLeaves: the caller names each leaf's index, and the
//     server stores value and index in one MariaDB transaction (rows in LeafData and
//     SequencedLeafData). The signer then integrates the contiguous run of stored leaves after
//     the current root into the Merkle tree (RFC 6962 hashing, as with Tessera) and writes the
//     new root. Lineage runs exactly one ingester per log (the single writer, docs/ARCHITECTURE.md "Scale-out"), so the
//     driver can assign consecutive indexes itself: a future resolves as soon as the commit
//     returns, which is when the leaf is durable at its index — no wait for the signer.
//
// # Durability and the single writer
//
// Adds are grouped: concurrent and serial Add calls become one AddSequencedLeaves call per batch
// (BatchMaxSize entries or BatchMaxAge, whichever comes first), and the batch is one MariaDB
// transaction, so one commit (one redo-log fsync with innodb_flush_log_at_trx_commit=1) covers
// the whole batch: the group commit of docs/ARCHITECTURE.md "Performance principles". Exactly one batch is in flight at a time.
// That is deliberate: with two in flight, the second could commit while the first fails, and a
// crash then leaves stored leaves after a hole that the signer never integrates and that a
// restarted driver cannot account for. It also costs nothing: Trillian's MySQL storage spends
// three statements per leaf (savepoint and two inserts) and serializes writers of one tree, so
// on the 2-core development machines a tree takes ~2,400 leaves/s with one, two or three
// batches in flight alike (separate trees do scale). A failed batch is retried with the same indexes and the
// same bytes until it succeeds or the log is closed; each leaf's identity hash binds its index
// and its leaf hash, so a retry of a batch that had in fact committed is recognised (Trillian
// answers "conflicting LeafIdentityHash" for exactly that leaf at exactly that index) and counts
// as success, never as a second copy.
//
// Size is the number of durably stored leaves, which can be ahead of Trillian's integrated root
// (the signer integrates every sequencer interval). Open recovers it exactly after a crash: the
// signer only ever integrates the contiguous run after the root, and GetLeavesByRange on a
// preordered tree returns stored leaves past the root, so Open reads the run that follows the
// root. While a tree's root is still empty that read is impossible, so before the first batch
// of a fresh tree the driver keeps a copy of the entry for index 0 in the state dir; if it finds
// one at Open with an empty root it re-submits it (a no-op if it was stored) and waits for the
// signer to integrate, after which the run can be read. If another writer uses the same tree
// anyway, Trillian refuses the indexes it took ("conflicting LeafIndex"): those adds fail with
// ErrConflict, the driver re-reads the stored size, and nothing is overwritten.
//
// # Checkpoints
//
// Trillian v1.8.0 does not sign its roots. The driver publishes C2SP signed-note checkpoints
// (https://c2sp.org/tlog-checkpoint) over Trillian's latest root every CheckpointInterval, signed
// with Options.Signer, and never signs a root it has not checked against the previously signed
// checkpoint with a consistency proof. The latest signed checkpoint is persisted in StateDir
// (written to a temporary file, fsynced, renamed, directory fsynced) before anyone can see it, so
// the check survives restarts: a client that saw checkpoint N can never be shown a later
// checkpoint that does not extend it. A root that fails the check (a rolled-back database, a
// tree swapped under the driver, a forked log) raises an alarm: it is logged at error level,
// the old checkpoint stays, and every call returns ErrInconsistentRoot until the operator
// investigates: a restart checks the same root against the same persisted checkpoint and refuses
// again. The first checkpoint a state dir ever signs is taken on trust (there is nothing earlier
// to check it against); an operator who deliberately moves Lineage to another tree moves the
// state dir's "checkpoint" file aside, which makes the next one such a first checkpoint.
package trillian

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/trillian"
	"github.com/lineage-audit/lineage/ledger"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrInconsistentRoot is the alarm: Trillian served a root that is not an extension of the last
// checkpoint this driver signed. Once raised it is returned by every call until restart.
var ErrInconsistentRoot = errors.New("trillian: root is inconsistent with the last signed checkpoint")

// ErrConflict is returned for an add whose index Trillian had already given to a different
// entry, which means something else writes to the tree (Lineage allows one writer per log).
// The add did not happen; the caller may retry it.
var ErrConflict = fmt.Errorf("trillian: %w", ledger.ErrConflict)

// ErrCheckpointMoved is what a CheckpointStore returns when another node stored a checkpoint
// since the version this driver read or wrote last.
var ErrCheckpointMoved = errors.New("trillian: the shared checkpoint moved on")

// errClosed fails adds made after Close started.
var errClosed = errors.New("trillian: log is closed")

// Options configures the driver. Zero fields take the defaults of DefaultOptions.
type Options struct {
	// Addr is the gRPC address (host:port) of trillian_log_server.
	Addr string
	// TreeID is the PREORDERED_LOG tree holding this log (see CreateTree).
	TreeID int64
	// Signer signs checkpoints; its name is the log origin. Not needed by OpenReadOnly.
	Signer note.Signer
	// Verifier checks the persisted checkpoint and every checkpoint the driver signs.
	Verifier note.Verifier
	// StateDir holds the latest signed checkpoint (and, on a fresh tree, the index-0 copy). It
	// is the driver's memory of what it has committed to; keep it with the signing key.
	StateDir string
	// BatchMaxSize and BatchMaxAge bound one AddSequencedLeaves call (one MariaDB commit): it
	// carries up to BatchMaxSize entries, and an entry waits at most BatchMaxAge for its batch
	// to fill while no call is in flight.
	BatchMaxSize int
	BatchMaxAge  time.Duration
	// CheckpointInterval is how often Trillian's root is checked and, if it grew, signed.
	CheckpointInterval time.Duration
	// RPCTimeout bounds one gRPC call; failed writes are retried, so it is no give-up time.
	RPCTimeout time.Duration
	// TLS, when set, is used for the connection. Without it the connection is plaintext, which
	// is refused for non-loopback addresses unless Insecure is set (fail closed, docs/ARCHITECTURE.md "Security").
	TLS      *tls.Config
	Insecure bool
	// DialOptions are added to the gRPC dial (per-RPC credentials, interceptors, …).
	DialOptions []grpc.DialOption
	// Logger receives one line per event (batch retries, alarms); slog.Default() if nil.
	Logger *slog.Logger

	// Checkpoints, when set, keeps the latest signed checkpoint instead of StateDir's
	// "checkpoint" file: the nodes of a cluster share it (internal/ha), so a new writer checks
	// its first checkpoint against the last one the previous writer signed, and read-only nodes
	// serve it. StateDir still holds the index-0 copy.
	Checkpoints CheckpointStore
	// Fence, when set, is asked before every AddSequencedLeaves call and every checkpoint
	// signature; an error (the writer lease is lost, internal/ha) stops this driver for good:
	// nothing more is sent or signed, and pending and later adds fail with that error, which
	// should wrap ledger.ErrFenced. A call already on the wire is fenced by Trillian itself: the
	// next writer's adds at the same indexes make it fail as a conflict.
	Fence func() error
}

// CheckpointStore keeps a signed checkpoint where several nodes see it (Options.Checkpoints).
type CheckpointStore interface {
	// Load returns the stored signed note (nil when there is none) and its version.
	Load(ctx context.Context) (signed []byte, version uint64, err error)
	// Store replaces the note stored at version (0: none) and returns the new version; if the
	// stored note moved on since, it writes nothing and returns an error wrapping
	// ErrCheckpointMoved.
	Store(ctx context.Context, signed []byte, version uint64) (uint64, error)
}

// DefaultOptions returns options tuned for the ingest path: batches of up to 1000 entries (one
// MariaDB commit each, docs/ARCHITECTURE.md "Performance principles"), 10 ms for a batch to fill, and a checkpoint check every
// 250 ms, which with the signer's sequencer interval bounds publish→queryable latency.
func DefaultOptions(addr string, treeID int64, stateDir string, s note.Signer, v note.Verifier) Options {
	return Options{
		Addr:               addr,
		TreeID:             treeID,
		Signer:             s,
		Verifier:           v,
		StateDir:           stateDir,
		BatchMaxSize:       1000,
		BatchMaxAge:        10 * time.Millisecond,
		CheckpointInterval: 250 * time.Millisecond,
		RPCTimeout:         30 * time.Second,
	}
}

func (o *Options) defaults() {
	d := DefaultOptions("", 0, "", nil, nil)
	if o.BatchMaxSize <= 0 {
		o.BatchMaxSize = d.BatchMaxSize
	}
	if o.BatchMaxAge <= 0 {
		o.BatchMaxAge = d.BatchMaxAge
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = d.CheckpointInterval
	}
	if o.RPCTimeout <= 0 {
		o.RPCTimeout = d.RPCTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// fence asks Options.Fence; a refusal halts the driver.
func (l *Log) fence() error {
	if l.opts.Fence == nil {
		return nil
	}
	if err := l.opts.Fence(); err != nil {
		l.halt(err)
		return err
	}
	return nil
}

// halt makes a fencing error the sticky alarm (logged once, without raise's talk of a forked
// log): the driver sends and signs nothing more, and fails what is queued.
func (l *Log) halt(err error) {
	if first, _ := l.setAlarm(err); first {
		l.log.Error("trillian: fenced: this node may no longer write the log; nothing more is added or signed", "err", err)
	}
}

// Log is a ledger.Log on a Trillian PREORDERED_LOG tree.
type Log struct {
	opts   Options
	log    *slog.Logger
	client trillian.TrillianLogClient
	conn   *grpc.ClientConn
	state  *stateDir
	ro     bool

	// bg is the context of the background goroutines (batcher, publisher); cancel stops them.
	bg     context.Context
	cancel context.CancelFunc

	// mu protects the fields below it. It is never held across an RPC or a file write.
	mu      sync.Mutex
	queue   []*pending // adds not yet sent, in Add order
	oldest  time.Time  // when queue[0] was added
	next    uint64     // index of the next add = durably stored leaves (Size)
	cp      ledger.Checkpoint
	haveCP  bool
	alarm   error // sticky ErrInconsistentRoot
	closing bool

	kick          chan struct{} // wakes the batcher (buffered 1)
	batcherDone   chan struct{}
	publisherDone chan struct{}
	// pubMu serializes checkpoint passes (publisher goroutine, Open, Close).
	pubMu sync.Mutex
	// pubFailing remembers that the last pass failed, so a long outage logs once, not per tick.
	pubFailing bool
	// leaf0 is true while a copy of the index-0 entry may sit in the state dir.
	leaf0 bool
}

var _ ledger.Log = (*Log)(nil)

// Open connects to Trillian and opens the tree for appending. It checks Trillian's root against
// the checkpoint persisted in StateDir (refusing with ErrInconsistentRoot if it does not extend
// it), recovers the stored size, publishes a checkpoint and starts batching and checkpointing.
// Only one driver may use a state dir at a time (a file lock enforces it), and Lineage runs one
// writer per tree. RPCs wait for the server to become reachable until ctx ends.
func Open(ctx context.Context, o Options) (*Log, error) {
	if o.Signer == nil || o.Verifier == nil {
		return nil, errors.New("trillian: signer and verifier are required")
	}
	if o.Signer.Name() != o.Verifier.Name() || o.Signer.KeyHash() != o.Verifier.KeyHash() {
		return nil, fmt.Errorf("trillian: signer %q and verifier %q are not one key pair", o.Signer.Name(), o.Verifier.Name())
	}
	l, err := newLog(o, false)
	if err != nil {
		return nil, err
	}
	if err := l.start(ctx); err != nil {
		l.release()
		return nil, err
	}
	return l, nil
}

// OpenReadOnly opens the tree for reading only (rebuild-index, offline tools, query nodes that
// share the writer's state dir): Checkpoint re-reads and verifies StateDir's checkpoint on every
// call, Size is that checkpoint's size, and Add fails with ledger.ErrReadOnly. It signs nothing,
// takes no lock and can run beside the writer. Signer may be nil.
func OpenReadOnly(ctx context.Context, o Options) (*Log, error) {
	if o.Verifier == nil {
		return nil, errors.New("trillian: verifier is required")
	}
	l, err := newLog(o, true)
	if err != nil {
		return nil, err
	}
	return l, nil
}

func newLog(o Options, ro bool) (*Log, error) {
	o.defaults()
	if o.Addr == "" || o.TreeID == 0 || o.StateDir == "" {
		return nil, errors.New("trillian: Addr, TreeID and StateDir are required")
	}
	conn, err := dial(o.Addr, o.TLS, o.Insecure, o.DialOptions)
	if err != nil {
		return nil, err
	}
	st, err := openStateDir(o.StateDir, o.Verifier, !ro)
	if err == nil {
		st.shared = o.Checkpoints
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	bg, cancel := context.WithCancel(context.Background())
	return &Log{
		opts:   o,
		log:    o.Logger.With("component", "ledger/trillian", "tree_id", o.TreeID),
		client: trillian.NewTrillianLogClient(conn),
		conn:   conn,
		state:  st,
		ro:     ro,
		bg:     bg,
		cancel: cancel,
		kick:   make(chan struct{}, 1),
	}, nil
}

// start runs the checks of Open in order: the persisted checkpoint must verify, Trillian's root
// must extend it (checked before anything is written), then the stored size is recovered.
func (l *Log) start(ctx context.Context) error {
	cp, ok, err := l.state.readCheckpoint(ctx)
	if err != nil {
		return err
	}
	l.cp, l.haveCP = cp, ok
	if err := l.checkTreeType(ctx); err != nil {
		return err
	}
	if err := l.publish(ctx); err != nil {
		return fmt.Errorf("trillian: open tree %d: %w", l.opts.TreeID, err)
	}
	next, err := l.recoverSize(ctx)
	if err != nil {
		return fmt.Errorf("trillian: open tree %d: %w", l.opts.TreeID, err)
	}
	l.next = next
	l.batcherDone = make(chan struct{})
	l.publisherDone = make(chan struct{})
	go l.batcher()
	go l.publisher()
	l.log.Info("trillian: log open", "addr", l.opts.Addr, "size", next, "checkpoint", l.cp.Size)
	return nil
}

// checkTreeType refuses a tree that is not a PREORDERED_LOG with a clear message, rather than
// letting the first add fail. trillian_log_server serves the admin API beside the log API; if a
// deployment does not expose it there, the check is skipped and a wrong tree still fails on add.
func (l *Log) checkTreeType(ctx context.Context) error {
	rctx, cancel := l.rpcCtx(ctx)
	defer cancel()
	tree, err := trillian.NewTrillianAdminClient(l.conn).GetTree(rctx, &trillian.GetTreeRequest{TreeId: l.opts.TreeID})
	switch {
	case status.Code(err) == codes.Unimplemented:
		return nil
	case err != nil:
		return fmt.Errorf("trillian: tree %d: %w", l.opts.TreeID, err)
	case tree.GetTreeType() != trillian.TreeType_PREORDERED_LOG:
		return fmt.Errorf("trillian: tree %d is a %v; Lineage needs a PREORDERED_LOG tree (see CreateTree)", l.opts.TreeID, tree.GetTreeType())
	case tree.GetTreeState() != trillian.TreeState_ACTIVE:
		return fmt.Errorf("trillian: tree %d is %v, not ACTIVE", l.opts.TreeID, tree.GetTreeState())
	}
	return nil
}

// Size implements ledger.Log: the number of leaves durably stored in Trillian, which may be ahead
// of its integrated root and of the latest checkpoint. A read-only log reports its checkpoint.
func (l *Log) Size(ctx context.Context) (uint64, error) {
	if l.ro {
		cp, err := l.Checkpoint(ctx)
		if errors.Is(err, ledger.ErrNotFound) {
			return 0, nil
		}
		return cp.Size, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.alarm != nil {
		return 0, l.alarm
	}
	return l.next, nil
}

// Checkpoint implements ledger.Log. After an alarm it returns the last good checkpoint together
// with ErrInconsistentRoot, so callers notice and can still show what was committed before.
func (l *Log) Checkpoint(ctx context.Context) (ledger.Checkpoint, error) {
	if l.ro {
		cp, ok, err := l.state.readCheckpoint(ctx)
		if err != nil {
			return ledger.Checkpoint{}, err
		}
		if !ok {
			return ledger.Checkpoint{}, ledger.ErrNotFound
		}
		return cp, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.alarm != nil {
		return l.cp, l.alarm
	}
	if !l.haveCP {
		return ledger.Checkpoint{}, ledger.ErrNotFound
	}
	return l.cp, nil
}

// Close implements ledger.Log: it stops taking adds, waits until every added entry is stored
// (or ctx ends, which fails the rest), then waits for a signed checkpoint that covers them and
// stops the background goroutines. If the signer is behind when ctx ends the entries are still
// durable; the next Open signs the checkpoint, and Close reports the wait that timed out.
func (l *Log) Close(ctx context.Context) error {
	if l.ro {
		l.release()
		return nil
	}
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return nil
	}
	l.closing = true
	l.mu.Unlock()
	l.wake()

	var err error
	select {
	case <-l.batcherDone:
	case <-ctx.Done():
		// Abort the retry loop; the batch in flight resolves with an error.
		l.cancel()
		<-l.batcherDone
		err = fmt.Errorf("trillian: close: entries still unstored: %w", ctx.Err())
	}
	if err == nil {
		err = l.waitCovered(ctx)
	}
	l.cancel()
	<-l.publisherDone
	l.release()
	return err
}

// waitCovered runs checkpoint passes until the signed checkpoint covers every stored entry.
func (l *Log) waitCovered(ctx context.Context) error {
	l.mu.Lock()
	target := l.next
	l.mu.Unlock()
	for {
		err := l.publish(ctx)
		l.mu.Lock()
		done, alarm := l.haveCP && l.cp.Size >= target, l.alarm
		l.mu.Unlock()
		if alarm != nil {
			return alarm
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
			return fmt.Errorf("trillian: close: %d entries are stored but Trillian has not integrated them yet; the next Open signs the checkpoint: %w", target, err)
		case <-time.After(25 * time.Millisecond):
		}
	}
}

func (l *Log) release() {
	l.cancel()
	l.conn.Close()
	l.state.close()
}

// rpcCtx bounds one gRPC call.
func (l *Log) rpcCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, l.opts.RPCTimeout)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// backoff returns the wait before retry attempt n (n ≥ 1): 50 ms doubling up to 2 s.
func backoff(n int) time.Duration {
	d := 50 * time.Millisecond << min(n-1, 6)
	return min(d, 2*time.Second)
}
