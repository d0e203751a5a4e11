package trillian

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/trillian"
	"github.com/lineage-audit/lineage/ledger"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// maxBatchBytes keeps one AddSequencedLeaves request under the 4 MiB a Trillian server accepts
// by default (gRPC's MaxRecvMsgSize, unless the server runs with --max_msg_size_bytes).
const maxBatchBytes = 3 << 20

// pending is one Add waiting for its batch. done is closed once idx/err are final.
type pending struct {
	entry []byte
	added time.Time
	done  chan struct{}
	idx   uint64
	err   error
}

func (p *pending) resolve(idx uint64, err error) {
	p.idx, p.err = idx, err
	close(p.done)
}

func failed(err error) ledger.IndexFuture {
	return func() (uint64, error) { return 0, err }
}

// Add implements ledger.Log. ctx only gates queueing: once queued, the entry is stored or failed
// by the batcher, whatever happens to ctx, because a batch in flight cannot be taken back. The
// entry is copied, so the caller may reuse its buffer.
func (l *Log) Add(ctx context.Context, entry []byte) ledger.IndexFuture {
	switch {
	case l.ro:
		return failed(ledger.ErrReadOnly)
	case len(entry) == 0:
		return failed(errors.New("trillian: add: empty entry (Trillian stores no empty leaves)"))
	case len(entry) > maxBatchBytes/2:
		return failed(fmt.Errorf("trillian: add: entry of %d bytes is over the %d-byte limit", len(entry), maxBatchBytes/2))
	}
	if err := ctx.Err(); err != nil {
		return failed(fmt.Errorf("trillian: add: %w", err))
	}
	p := &pending{entry: bytes.Clone(entry), added: time.Now(), done: make(chan struct{})}
	l.mu.Lock()
	if l.alarm != nil {
		err := l.alarm
		l.mu.Unlock()
		return failed(fmt.Errorf("trillian: add: %w", err))
	}
	if l.closing {
		l.mu.Unlock()
		return failed(errClosed)
	}
	l.queue = append(l.queue, p)
	n := len(l.queue)
	l.mu.Unlock()
	if n == 1 || n >= l.opts.BatchMaxSize {
		l.wake()
	}
	return func() (uint64, error) {
		<-p.done
		return p.idx, p.err
	}
}

func (l *Log) wake() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// batcher is the single goroutine that writes to Trillian; it owns next's advance and the
// rediscover flag. It exits when the log is closing and the queue is empty, or when Close gives
// up (l.bg cancelled), failing what is left.
func (l *Log) batcher() {
	defer close(l.batcherDone)
	rediscover := false
	for {
		batch, wait, done := l.takeBatch()
		if done {
			return
		}
		if batch == nil {
			var timer <-chan time.Time
			var t *time.Timer
			if wait > 0 {
				t = time.NewTimer(wait)
				timer = t.C
			}
			select {
			case <-l.kick:
			case <-timer:
			case <-l.bg.Done():
			}
			if t != nil {
				t.Stop()
			}
			continue
		}
		if rediscover {
			// An earlier batch met another writer's leaves: read where the stored run really
			// ends before choosing indexes again.
			next, err := l.storedSize(l.bg, true)
			if err != nil {
				failAll(batch, fmt.Errorf("trillian: add: re-reading the stored size: %w", err))
				continue
			}
			l.mu.Lock()
			l.next = next
			l.mu.Unlock()
			rediscover = false
		}
		rediscover = l.write(batch)
	}
}

// takeBatch returns the next batch to send, or how long to wait for one (0: until woken), or
// done when the batcher should exit.
func (l *Log) takeBatch() (batch []*pending, wait time.Duration, done bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bg.Err() != nil {
		for _, p := range l.queue {
			p.resolve(0, fmt.Errorf("trillian: add: %w before the entry was sent", errClosed))
		}
		l.queue = nil
		return nil, 0, true
	}
	if len(l.queue) == 0 {
		return nil, 0, l.closing
	}
	if l.alarm != nil {
		return nil, 0, false // raise has failed the queue; wait to be closed
	}
	age := time.Since(l.queue[0].added)
	if len(l.queue) < l.opts.BatchMaxSize && !l.closing && age < l.opts.BatchMaxAge {
		return nil, l.opts.BatchMaxAge - age, false
	}
	n, size := 0, 0
	for n < len(l.queue) && n < l.opts.BatchMaxSize && (n == 0 || size+len(l.queue[n].entry) <= maxBatchBytes) {
		size += len(l.queue[n].entry)
		n++
	}
	batch = l.queue[:n:n]
	l.queue = append([]*pending(nil), l.queue[n:]...)
	return batch, 0, false
}

func failAll(batch []*pending, err error) {
	for _, p := range batch {
		p.resolve(0, err)
	}
}

// write stores one batch at the next indexes with one AddSequencedLeaves call, retrying the
// identical request until Trillian answers or the log is closed. It returns true if some index
// was held by another writer, so the stored size must be re-read before the next batch.
func (l *Log) write(batch []*pending) (rediscover bool) {
	l.mu.Lock()
	first, alarm := l.next, l.alarm
	l.mu.Unlock()
	if alarm != nil {
		failAll(batch, fmt.Errorf("trillian: add: %w", alarm))
		return false
	}
	if err := l.fence(); err != nil {
		failAll(batch, fmt.Errorf("trillian: add: %w", err))
		return false
	}
	if first == 0 {
		// The tree's root is empty, and an empty root hides stored leaves from GetLeavesByRange:
		// keep the index-0 entry on disk until the signer integrates it (see recoverSize).
		if err := l.state.writeLeaf0(l.opts.TreeID, batch[0].entry); err != nil {
			failAll(batch, fmt.Errorf("trillian: add 0: %w", err))
			return false
		}
		l.mu.Lock()
		l.leaf0 = true
		l.mu.Unlock()
	}
	req := &trillian.AddSequencedLeavesRequest{LogId: l.opts.TreeID, Leaves: make([]*trillian.LogLeaf, len(batch))}
	for i, p := range batch {
		idx := first + uint64(i)
		req.Leaves[i] = &trillian.LogLeaf{LeafValue: p.entry, LeafIndex: int64(idx), LeafIdentityHash: identityHash(idx, p.entry)}
	}
	resp, attempts, err := l.addWithRetry(req)
	if err != nil {
		if first == 0 && attempts == 1 && refused(err) {
			// Refused before anything was written: there is no index-0 leaf to account for.
			if rerr := l.state.removeLeaf0(l.opts.TreeID); rerr == nil {
				l.mu.Lock()
				l.leaf0 = false
				l.mu.Unlock()
			}
		}
		failAll(batch, fmt.Errorf("trillian: add %d..%d: %w", first, first+uint64(len(batch))-1, err))
		return false
	}
	// Every index of the batch is now taken, by our entry or by a conflicting one. Advance
	// before resolving, so Size counts an entry as soon as its future can report it.
	l.mu.Lock()
	l.next = first + uint64(len(batch))
	l.mu.Unlock()
	conflicts := 0
	for _, r := range resp.GetResults() {
		if !ours(r.GetStatus().GetCode(), r.GetStatus().GetMessage()) {
			conflicts++
		}
	}
	if conflicts > 0 {
		l.log.Error("trillian: another writer holds indexes this driver chose; those adds failed and the stored size is re-read",
			"first", first, "count", len(batch), "conflicts", conflicts)
		// Re-read before the futures resolve, so a caller that sees ErrConflict and asks Size
		// learns where the other writer's entries end (ingest waits for its index to get there).
		if next, err := l.storedSize(l.bg, true); err == nil {
			l.mu.Lock()
			if next > l.next {
				l.next = next
			}
			l.mu.Unlock()
		}
	}
	for i, r := range resp.GetResults() {
		idx := first + uint64(i)
		if ours(r.GetStatus().GetCode(), r.GetStatus().GetMessage()) {
			batch[i].resolve(idx, nil)
			continue
		}
		batch[i].resolve(0, fmt.Errorf("trillian: add %d: %w (%s)", idx, ErrConflict, r.GetStatus().GetMessage()))
	}
	return conflicts > 0
}

// addWithRetry sends req until Trillian answers it, and reports how many attempts it made.
// Errors that Trillian returns before it opens the storage transaction (bad request, unknown or
// wrong-type tree, no permission: see refused) end the attempts. Anything else (unavailable,
// deadline, a failed commit) leaves the outcome unknown, so the identical request is sent again;
// leaves that did commit come back as identity conflicts, which ours() counts as stored.
func (l *Log) addWithRetry(req *trillian.AddSequencedLeavesRequest) (*trillian.AddSequencedLeavesResponse, int, error) {
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			if err := l.fence(); err != nil {
				return nil, attempt - 1, err
			}
		}
		ctx, cancel := l.rpcCtx(l.bg)
		resp, err := l.client.AddSequencedLeaves(ctx, req)
		cancel()
		if err == nil && len(resp.GetResults()) == len(req.Leaves) {
			return resp, attempt, nil
		}
		if err == nil {
			err = fmt.Errorf("trillian answered %d results for %d leaves", len(resp.GetResults()), len(req.Leaves))
		}
		if refused(err) {
			return nil, attempt, err
		}
		if l.bg.Err() != nil {
			return nil, attempt, fmt.Errorf("log closed before Trillian confirmed the batch, which may or may not be stored: %w", err)
		}
		l.mu.Lock()
		alarm := l.alarm
		l.mu.Unlock()
		if alarm != nil {
			return nil, attempt, alarm
		}
		if attempt == 1 || attempt%10 == 0 {
			l.log.Warn("trillian: batch not confirmed; retrying the same indexes", "first", req.Leaves[0].LeafIndex,
				"count", len(req.Leaves), "attempt", attempt, "err", err)
		}
		if sleepCtx(l.bg, backoff(attempt)) != nil {
			return nil, attempt, fmt.Errorf("log closed before Trillian confirmed the batch, which may or may not be stored: %w", err)
		}
	}
}

// refused reports whether Trillian rejected a write before touching storage, so retrying the
// same request cannot help and nothing was stored.
func refused(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition, codes.PermissionDenied,
		codes.Unauthenticated, codes.Unimplemented, codes.OutOfRange:
		return true
	}
	return false
}

// ours reports whether a per-leaf AddSequencedLeaves status means the leaf is stored at the index
// we asked for. OK is a fresh store. "conflicting LeafIdentityHash" means a leaf with the same
// identity hash exists in the tree; since identityHash binds the index and the leaf hash, and
// Trillian stores a leaf's identity and index in one savepoint, that is this very leaf at this
// very index, stored by an earlier attempt. "conflicting LeafIndex" (or Cloud Spanner's combined
// message, which cannot be told apart) means the index holds something else.
func ours(code int32, msg string) bool {
	if codes.Code(code) == codes.OK {
		return true
	}
	return codes.Code(code) == codes.FailedPrecondition &&
		strings.Contains(msg, "LeafIdentityHash") && !strings.Contains(msg, "LeafIndex")
}

// identityHash is the Trillian leaf identity of entry at index. Trillian's default identity is
// the leaf hash, which would refuse identical entries at two indexes (LeafData's primary key is
// (TreeId, LeafIdentityHash)); binding the index makes every position unique while keeping the
// retry of an identical request recognisable.
func identityHash(index uint64, entry []byte) []byte {
	h := sha256.New()
	h.Write([]byte("lineage/trillian/leaf-identity/v1\x00"))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], index)
	h.Write(b[:])
	h.Write(ledger.LeafHash(entry))
	return h.Sum(nil)
}
