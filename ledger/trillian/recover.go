package trillian

import (
	"context"
	"fmt"
	"time"

	"github.com/google/trillian"
)

// probeCount is how many leaves one GetLeavesByRange call may return while looking for the end
// of the stored run. The signer integrates up to its batch size every sequencer interval, so the
// run past the root is normally far shorter; if it is not, the read waits for the signer.
const probeCount = 256

// recoverSize finds the number of leaves durably stored in the tree when the driver opens: the
// integrated root plus any leaves stored after it that the signer has not integrated yet (a
// crash or a stopped signer leaves such a run).
//
// With a non-empty root the run can be read directly (storedSize). An empty root hides it:
// Trillian answers GetLeavesByRange only for starts below the root size. So before the first
// batch of a fresh tree, write keeps a copy of the entry for index 0 in the state dir. At Open,
// an empty root with no copy means nothing was ever sent; with a copy, the driver sends that
// entry again at index 0 — a no-op if it was stored (Trillian answers with an identity
// conflict), otherwise it is stored now, like an add whose answer was lost in the crash — so
// index 0 is certainly taken, the signer will integrate it, and the run becomes readable.
func (l *Log) recoverSize(ctx context.Context) (uint64, error) {
	root, err := l.latestRoot(ctx)
	if err != nil {
		return 0, err
	}
	if root.TreeSize > 0 {
		return l.storedSize(ctx, true)
	}
	entry, ok, err := l.state.readLeaf0(l.opts.TreeID)
	if err != nil || !ok {
		return 0, err
	}
	l.leaf0 = true
	l.log.Info("trillian: empty root but an index-0 copy exists: re-sending it so the stored size can be read")
	req := &trillian.AddSequencedLeavesRequest{LogId: l.opts.TreeID, Leaves: []*trillian.LogLeaf{{
		LeafValue: entry, LeafIndex: 0, LeafIdentityHash: identityHash(0, entry),
	}}}
	rctx, cancel := l.rpcCtx(ctx)
	defer cancel()
	if _, err := l.client.AddSequencedLeaves(rctx, req); err != nil {
		// Any per-leaf answer (stored, identity or index conflict) means index 0 is taken.
		return 0, fmt.Errorf("trillian: re-send index 0: %w", err)
	}
	return l.storedSize(ctx, true)
}

// storedSize returns the root size plus the contiguous run of stored leaves after it, read with
// GetLeavesByRange from the root's last leaf: on a PREORDERED_LOG tree Trillian's MySQL storage
// returns stored leaves past the root (it clips ranges to the root only for normal logs) and
// stops at the first missing index, which is exactly where the signer would stop integrating.
// With mustExist it waits while the root is empty (a leaf is known to be stored, so the signer
// will integrate it); otherwise an empty root means size 0. Transient errors are retried until
// ctx ends.
func (l *Log) storedSize(ctx context.Context, mustExist bool) (uint64, error) {
	waiting := false
	for attempt := 1; ; attempt++ {
		n, done, err := l.readStoredRun(ctx, mustExist)
		if done {
			return n, nil
		}
		if err != nil && attempt%20 == 1 {
			l.log.Warn("trillian: reading the stored size", "attempt", attempt, "err", err)
		} else if err == nil && !waiting {
			waiting = true
			l.log.Info("trillian: waiting for Trillian's signer to integrate stored leaves before the stored size can be read")
		}
		if serr := sleepCtx(ctx, min(backoff(attempt), 500*time.Millisecond)); serr != nil {
			if err == nil {
				err = serr
			}
			return 0, fmt.Errorf("trillian: stored size: %w", err)
		}
	}
}

// readStoredRun makes one attempt of storedSize; done is false when it must wait or retry.
func (l *Log) readStoredRun(ctx context.Context, mustExist bool) (n uint64, done bool, err error) {
	root, err := l.latestRoot(ctx)
	if err != nil {
		return 0, false, err
	}
	if root.TreeSize == 0 {
		return 0, !mustExist, nil
	}
	start := root.TreeSize - 1
	rctx, cancel := l.rpcCtx(ctx)
	defer cancel()
	resp, err := l.client.GetLeavesByRange(rctx, &trillian.GetLeavesByRangeRequest{
		LogId: l.opts.TreeID, StartIndex: int64(start), Count: probeCount,
	})
	if err != nil {
		return 0, false, fmt.Errorf("trillian: leaves from %d: %w", start, err)
	}
	run := uint64(0)
	for _, leaf := range resp.GetLeaves() {
		if leaf.GetLeafIndex() != int64(start+run) {
			break
		}
		run++
	}
	if run == 0 {
		return 0, false, fmt.Errorf("trillian: leaf %d below root %d is missing", start, root.TreeSize)
	}
	if run == probeCount {
		return 0, false, nil // a long run: let the signer integrate some of it first
	}
	return start + run, true, nil
}
