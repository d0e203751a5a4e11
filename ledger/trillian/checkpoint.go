package trillian

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/types"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// publisher runs a checkpoint pass every CheckpointInterval until Close. It owns no state of
// its own: every pass goes through publish, which serializes with Open and Close.
func (l *Log) publisher() {
	defer close(l.publisherDone)
	t := time.NewTicker(l.opts.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-l.bg.Done():
			return
		case <-t.C:
		}
		ctx, cancel := l.rpcCtx(l.bg)
		err := l.publish(ctx)
		cancel()
		switch {
		case err != nil && errors.Is(err, ErrInconsistentRoot):
			// Already logged loudly by raise; nothing more will be signed.
		case err != nil && !l.pubFailing && l.bg.Err() == nil:
			l.pubFailing = true
			l.log.Warn("trillian: checkpoint pass failed; retrying every interval", "err", err)
		case err == nil && l.pubFailing:
			l.pubFailing = false
			l.log.Info("trillian: checkpoint passes work again")
		}
	}
}

// publish is one checkpoint pass: it fetches Trillian's latest root together with a consistency
// proof from the last signed checkpoint (one RPC, one storage snapshot), verifies the proof, and
// if the root grew signs it, persists it, and only then makes it the published checkpoint.
//
// Persisting before publishing matters: if the driver published checkpoint N and crashed before
// writing it, the restarted driver would check new roots against N-1 only, and could sign a
// root that extends N-1 but not the N a client has already seen — a split view.
func (l *Log) publish(ctx context.Context) error {
	l.pubMu.Lock()
	defer l.pubMu.Unlock()
	l.mu.Lock()
	old, haveOld, alarm := l.cp, l.haveCP, l.alarm
	l.mu.Unlock()
	if alarm != nil {
		return alarm
	}

	root, hashes, err := l.rootSince(ctx, old.Size)
	if err != nil {
		return err
	}
	if haveOld {
		if root.TreeSize < old.Size {
			return l.raise(fmt.Errorf("%w: Trillian's root has %d leaves, fewer than the %d of checkpoint %x",
				ErrInconsistentRoot, root.TreeSize, old.Size, old.Hash))
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old.Size, root.TreeSize, hashes, old.Hash, root.RootHash); err != nil {
			return l.raise(fmt.Errorf("%w: root %d (%x) against checkpoint %d (%x): %v",
				ErrInconsistentRoot, root.TreeSize, root.RootHash, old.Size, old.Hash, err))
		}
		if root.TreeSize == old.Size {
			return nil // nothing new to sign
		}
	} else if root.TreeSize == 0 && !bytes.Equal(root.RootHash, rfc6962.DefaultHasher.EmptyRoot()) {
		return l.raise(fmt.Errorf("%w: empty tree with root hash %x", ErrInconsistentRoot, root.RootHash))
	}

	if err := l.fence(); err != nil {
		return err
	}
	body := log.Checkpoint{Origin: l.opts.Signer.Name(), Size: root.TreeSize, Hash: root.RootHash}.Marshal()
	signed, err := note.Sign(&note.Note{Text: string(body)}, l.opts.Signer)
	if err != nil {
		return fmt.Errorf("trillian: sign checkpoint %d: %w", root.TreeSize, err)
	}
	cp, err := ledger.OpenCheckpoint(signed, l.opts.Verifier)
	if err != nil {
		return fmt.Errorf("trillian: signed checkpoint %d does not verify: %w", root.TreeSize, err)
	}
	if err := l.state.writeCheckpoint(ctx, signed); err != nil {
		if errors.Is(err, ErrCheckpointMoved) {
			// Another node stored a checkpoint since ours (a writer that was paused past its
			// lease can sign once more before its fence notices). Adopt the stored one if it
			// extends ours; the next pass signs from there. Whether this node may still write
			// is the fence's call, not the store's.
			return l.adoptShared(ctx, old, haveOld)
		}
		return err
	}
	l.mu.Lock()
	l.cp, l.haveCP = cp, true
	leaf0 := l.leaf0 && cp.Size > 0
	l.mu.Unlock()
	if leaf0 {
		// The first leaf is integrated: an empty root can no longer hide stored leaves. The
		// batcher writes the copy only before sending index 0, which is now behind us.
		if err := l.state.removeLeaf0(l.opts.TreeID); err != nil {
			l.log.Warn("trillian: remove index-0 copy", "err", err)
		} else {
			l.mu.Lock()
			l.leaf0 = false
			l.mu.Unlock()
		}
	}
	return nil
}

// adoptShared makes the shared store's checkpoint this driver's last signed one, after checking
// that it extends old with a consistency proof from Trillian. One that does not raises the alarm.
func (l *Log) adoptShared(ctx context.Context, old ledger.Checkpoint, haveOld bool) error {
	cp, ok, err := l.state.readCheckpoint(ctx)
	if err != nil || !ok {
		return fmt.Errorf("trillian: re-read the shared checkpoint: %v (found %v)", err, ok)
	}
	if haveOld {
		if cp.Size < old.Size {
			return l.raise(fmt.Errorf("%w: the shared checkpoint went back from %d to %d", ErrInconsistentRoot, old.Size, cp.Size))
		}
		p, err := l.ConsistencyProof(ctx, old.Size, cp.Size)
		if err != nil {
			return fmt.Errorf("trillian: shared checkpoint %d: %w", cp.Size, err)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old.Size, cp.Size, p, old.Hash, cp.Hash); err != nil {
			return l.raise(fmt.Errorf("%w: shared checkpoint %d (%x) against %d (%x): %v", ErrInconsistentRoot, cp.Size, cp.Hash, old.Size, old.Hash, err))
		}
	}
	l.mu.Lock()
	l.cp, l.haveCP = cp, true
	l.mu.Unlock()
	l.log.Warn("trillian: another node stored a newer checkpoint; adopted it", "size", cp.Size)
	return nil
}

// rootSince returns Trillian's latest root and, when from > 0, the consistency proof from size
// from to it, read in the same storage snapshot.
func (l *Log) rootSince(ctx context.Context, from uint64) (types.LogRootV1, [][]byte, error) {
	rctx, cancel := l.rpcCtx(ctx)
	defer cancel()
	resp, err := l.client.GetLatestSignedLogRoot(rctx, &trillian.GetLatestSignedLogRootRequest{
		LogId: l.opts.TreeID, FirstTreeSize: int64(from),
	})
	if status.Code(err) == codes.InvalidArgument && from > 0 {
		// Trillian refuses a proof from a size beyond its root: read the root alone, and the
		// caller sees that it shrank.
		root, rerr := l.latestRoot(ctx)
		if rerr == nil && root.TreeSize < from {
			return root, nil, nil
		}
	}
	if err != nil {
		return types.LogRootV1{}, nil, fmt.Errorf("trillian: latest root since %d: %w", from, err)
	}
	root, err := decodeRoot(resp.GetSignedLogRoot())
	if err != nil {
		return types.LogRootV1{}, nil, err
	}
	return root, resp.GetProof().GetHashes(), nil
}

// latestRoot returns Trillian's latest integrated root.
func (l *Log) latestRoot(ctx context.Context) (types.LogRootV1, error) {
	rctx, cancel := l.rpcCtx(ctx)
	defer cancel()
	resp, err := l.client.GetLatestSignedLogRoot(rctx, &trillian.GetLatestSignedLogRootRequest{LogId: l.opts.TreeID})
	if err != nil {
		return types.LogRootV1{}, fmt.Errorf("trillian: latest root: %w", err)
	}
	return decodeRoot(resp.GetSignedLogRoot())
}

func decodeRoot(slr *trillian.SignedLogRoot) (types.LogRootV1, error) {
	var root types.LogRootV1
	if err := root.UnmarshalBinary(slr.GetLogRoot()); err != nil {
		return root, fmt.Errorf("trillian: decode log root: %w", err)
	}
	if len(root.RootHash) != rfc6962.DefaultHasher.Size() {
		return root, fmt.Errorf("trillian: log root hash has %d bytes; is the tree RFC 6962 SHA-256?", len(root.RootHash))
	}
	return root, nil
}

// raise records the alarm (the first one sticks), fails every queued add, and logs it loudly.
// The old checkpoint stays published; nothing is signed or added until restart.
func (l *Log) raise(err error) error {
	if first, cpSize := l.setAlarm(err); first {
		l.log.Error("trillian: ALARM: refusing to sign a root that does not extend the last signed checkpoint; "+
			"the log may have been rolled back, swapped or forked. Adds and checkpoints are stopped until an operator investigates and restarts.",
			"checkpoint_size", cpSize, "err", err)
	}
	return err
}

// setAlarm makes err the sticky alarm unless one is already set, and fails every queued add
// with it: the stop that raise and halt share. It reports whether err is the alarm now (the
// caller logs it once) and the size of the last signed checkpoint.
func (l *Log) setAlarm(err error) (first bool, cpSize uint64) {
	l.mu.Lock()
	first = l.alarm == nil
	if first {
		l.alarm = err
	}
	queued := l.queue
	l.queue = nil
	cpSize = l.cp.Size
	l.mu.Unlock()
	for _, p := range queued {
		p.resolve(0, fmt.Errorf("trillian: add: %w", err))
	}
	return first, cpSize
}
