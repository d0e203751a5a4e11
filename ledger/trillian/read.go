package trillian

import (
	"context"
	"fmt"

	"github.com/google/trillian"
	"github.com/lineage-audit/lineage/ledger"
)

// entriesPerCall bounds one GetLeavesByRange call: 512 entries of at most 64 KiB (ingest's
// record limit) stay under the 64 MiB the client accepts (see dial).
const entriesPerCall = 512

// readErr is the common check of every read: after an alarm the tree is not the one our
// checkpoints commit to, so nothing is served from it.
func (l *Log) readErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.alarm
}

// Entries implements ledger.Log with GetLeavesByRange calls of up to entriesPerCall leaves.
func (l *Log) Entries(ctx context.Context, start, count, treeSize uint64) ([][]byte, error) {
	if start+count > treeSize || start+count < start {
		return nil, fmt.Errorf("trillian: entries [%d,+%d) beyond size %d: %w", start, count, treeSize, ledger.ErrNotFound)
	}
	if err := l.readErr(); err != nil {
		return nil, err
	}
	out := make([][]byte, 0, count)
	for next := start; next < start+count; {
		n := min(start+count-next, entriesPerCall)
		rctx, cancel := l.rpcCtx(ctx)
		resp, err := l.client.GetLeavesByRange(rctx, &trillian.GetLeavesByRangeRequest{
			LogId: l.opts.TreeID, StartIndex: int64(next), Count: int64(n),
		})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("trillian: entries [%d,+%d): %w", next, n, err)
		}
		leaves := resp.GetLeaves()
		if len(leaves) == 0 {
			// Trillian returns nothing for starts at or past its root: the tree size asked
			// for is ahead of what the signer has integrated.
			return nil, fmt.Errorf("trillian: entries from %d@%d: Trillian has no leaves there: %w", next, treeSize, ledger.ErrNotFound)
		}
		for _, leaf := range leaves {
			if next == start+count {
				break
			}
			if leaf.GetLeafIndex() != int64(next) {
				return nil, fmt.Errorf("trillian: entries: Trillian returned leaf %d where %d was due", leaf.GetLeafIndex(), next)
			}
			out = append(out, leaf.GetLeafValue())
			next++
		}
	}
	return out, nil
}

// InclusionProof implements ledger.Log. Trillian v1.8.0 answers a tree size ahead of its root
// with its root and no proof (older versions answered with a proof at their own root size); both
// are refused here, because a proof for another size would not verify against the caller's
// checkpoint.
func (l *Log) InclusionProof(ctx context.Context, index, treeSize uint64) ([][]byte, error) {
	if index >= treeSize {
		return nil, fmt.Errorf("trillian: inclusion %d@%d: %w", index, treeSize, ledger.ErrNotFound)
	}
	if err := l.readErr(); err != nil {
		return nil, err
	}
	rctx, cancel := l.rpcCtx(ctx)
	defer cancel()
	resp, err := l.client.GetInclusionProof(rctx, &trillian.GetInclusionProofRequest{
		LogId: l.opts.TreeID, LeafIndex: int64(index), TreeSize: int64(treeSize),
	})
	if err != nil {
		return nil, fmt.Errorf("trillian: inclusion %d@%d: %w", index, treeSize, err)
	}
	if err := l.proofAt(resp.GetProof(), resp.GetSignedLogRoot(), int64(index), treeSize); err != nil {
		return nil, fmt.Errorf("trillian: inclusion %d@%d: %w", index, treeSize, err)
	}
	return resp.GetProof().GetHashes(), nil
}

// ConsistencyProof implements ledger.Log. A proof from size 0, or between equal sizes, is empty
// by definition (RFC 9162 §2.1.4) and needs no call.
func (l *Log) ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	if from > to {
		return nil, fmt.Errorf("trillian: consistency %d→%d: from is larger than to", from, to)
	}
	if err := l.readErr(); err != nil {
		return nil, err
	}
	if from == 0 || from == to {
		return [][]byte{}, nil
	}
	rctx, cancel := l.rpcCtx(ctx)
	defer cancel()
	resp, err := l.client.GetConsistencyProof(rctx, &trillian.GetConsistencyProofRequest{
		LogId: l.opts.TreeID, FirstTreeSize: int64(from), SecondTreeSize: int64(to),
	})
	if err != nil {
		return nil, fmt.Errorf("trillian: consistency %d→%d: %w", from, to, err)
	}
	if err := l.proofAt(resp.GetProof(), resp.GetSignedLogRoot(), 0, to); err != nil {
		return nil, fmt.Errorf("trillian: consistency %d→%d: %w", from, to, err)
	}
	return resp.GetProof().GetHashes(), nil
}

// proofAt checks that Trillian returned a proof at all (it omits it when treeSize is ahead of
// its root) and for the leaf asked for.
func (l *Log) proofAt(p *trillian.Proof, slr *trillian.SignedLogRoot, index int64, treeSize uint64) error {
	if p == nil {
		root, err := decodeRoot(slr)
		if err != nil {
			return err
		}
		return fmt.Errorf("the root is at size %d, behind the requested size %d: %w", root.TreeSize, treeSize, ledger.ErrNotFound)
	}
	if p.GetLeafIndex() != index {
		return fmt.Errorf("got a proof for leaf %d", p.GetLeafIndex())
	}
	return nil
}
