// Package tesseralog is what the ledger drivers on Tessera share (ledger/tessera on a directory,
// ledger/tesseraaws on a MySQL database and a bucket): the read side (Reader: the checkpoint,
// entries and inclusion and consistency proofs of a C2SP tlog-tiles log, read through each
// driver's own reads of its tiles, entry bundles and checkpoint) and the write side (Writer:
// Add and Close on Tessera's appender).
//
// Serving proofs and entries at an older tree size: Tessera writes the partial tile
// "tile/L/N.p/W" (and entry bundle "tile/entries/N.p/W") only for the tree sizes it integrates
// at, and deletes a tile's partials once the tile is full (or garbage-collects them). So the
// partial that a tree size older than the latest needs may never have existed (the log grew
// past that size inside one batch) or may be gone. Its own fallback, the full tile, does not
// exist either while the tile is still filling (tile/1/000 needs 65,536 entries). The first W
// hashes of any wider version of the tile are the same hashes, though: a tile's bottom row
// holds hashes of complete subtrees, which never change as the log grows. So a missing partial
// of width W is read from the full tile or the narrowest wider partial, and cut to W. The
// version of the latest integrated size always exists, so some wider version exists for every
// size up to it.
package tesseralog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"

	"github.com/lineage-audit/lineage/ledger"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"
)

const (
	// HashSize is the size of one hash in a tile (SHA-256, RFC 6962).
	HashSize = 32
	// EntryBundleWidth is the number of entries in a full C2SP tlog-tiles entry bundle.
	EntryBundleWidth = 256
)

// Reader serves a driver's ledger.Log reads. Its function fields are the driver's raw reads;
// every one of them reports a missing resource as fs.ErrNotExist. A Reader must not be copied
// after first use.
type Reader struct {
	// Name prefixes the errors the Reader makes ("tessera", "tesseraaws").
	Name string
	// Verifier checks the checkpoint on every read.
	Verifier note.Verifier
	// ReadCheckpoint reads the checkpoint as published.
	ReadCheckpoint func(ctx context.Context) ([]byte, error)
	// ReadTile reads hash tile (level, index) at partial width w (0: full) as stored.
	ReadTile func(ctx context.Context, level, index uint64, w uint8) ([]byte, error)
	// ReadEntryBundle reads entry bundle index at partial width w (0: full) as stored.
	ReadEntryBundle func(ctx context.Context, index uint64, w uint8) ([]byte, error)
	// Partials lists the widths above p of the partial versions that exist of the resource
	// whose full version is at path full (layout.TilePath or layout.EntriesPath with width 0),
	// narrowest first.
	Partials func(ctx context.Context, full string, p uint8) ([]uint8, error)

	// pb builds inclusion proofs for the tree size pbSize and caches the tiles it reads, so
	// the proofs of one answer (often hundreds, all against one checkpoint) read each tile once.
	// ProofBuilder is not safe for concurrent use: pbMu serializes it. It is replaced when a
	// proof for another size is asked for (each new checkpoint), which bounds its cache to one
	// tree's tiles.
	pbMu   sync.Mutex
	pb     *client.ProofBuilder
	pbSize uint64
}

// Checkpoint is ledger.Log's Checkpoint: the checkpoint is verified on every read, so one
// altered in storage is reported, never served as if it were ours.
func (r *Reader) Checkpoint(ctx context.Context) (ledger.Checkpoint, error) {
	raw, err := r.ReadCheckpoint(ctx)
	if errors.Is(err, fs.ErrNotExist) {
		return ledger.Checkpoint{}, ledger.ErrNotFound
	}
	if err != nil {
		return ledger.Checkpoint{}, fmt.Errorf("%s: read checkpoint: %w", r.Name, err)
	}
	return ledger.OpenCheckpoint(raw, r.Verifier)
}

// Entries is ledger.Log's Entries.
func (r *Reader) Entries(ctx context.Context, start, count, treeSize uint64) ([][]byte, error) {
	if start+count > treeSize || start+count < start {
		return nil, fmt.Errorf("%s: entries [%d,+%d) beyond size %d: %w", r.Name, start, count, treeSize, ledger.ErrNotFound)
	}
	out := make([][]byte, 0, count)
	for i := start; i < start+count; {
		bundleIdx := i / EntryBundleWidth
		b, err := client.GetEntryBundle(ctx, r.EntryBundle, bundleIdx, treeSize)
		if err != nil {
			return nil, fmt.Errorf("%s: entry bundle %d@%d: %w", r.Name, bundleIdx, treeSize, err)
		}
		off := i % EntryBundleWidth
		for ; off < uint64(len(b.Entries)) && i < start+count; off, i = off+1, i+1 {
			out = append(out, b.Entries[off])
		}
		if off < EntryBundleWidth && i < start+count {
			return nil, fmt.Errorf("%s: entry bundle %d@%d is short (%d entries)", r.Name, bundleIdx, treeSize, len(b.Entries))
		}
	}
	return out, nil
}

// BundleEntries returns copies of the entries at offsets offs (ascending, below 256) of entry
// bundle `bundle`, all below treeSize, read with Entries: the query API's batch read
// (query/lineage_api.go), for drivers without a faster path.
func (r *Reader) BundleEntries(ctx context.Context, bundle uint64, offs []uint64, treeSize uint64) ([][]byte, error) {
	if len(offs) == 0 {
		return nil, nil
	}
	start := bundle * EntryBundleWidth
	if start >= treeSize {
		return nil, fmt.Errorf("%s: entry bundle %d@%d: %w", r.Name, bundle, treeSize, ledger.ErrNotFound)
	}
	all, err := r.Entries(ctx, start, min(EntryBundleWidth, treeSize-start), treeSize)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(offs))
	for i, o := range offs {
		if o >= uint64(len(all)) {
			return nil, fmt.Errorf("%s: entry %d of bundle %d@%d: %w", r.Name, o, bundle, treeSize, ledger.ErrNotFound)
		}
		out[i] = append([]byte(nil), all[o]...)
	}
	return out, nil
}

// InclusionProof is ledger.Log's InclusionProof, for any treeSize up to the integrated size,
// also one whose partial tiles are not stored (Tile).
func (r *Reader) InclusionProof(ctx context.Context, index, treeSize uint64) ([][]byte, error) {
	if index >= treeSize {
		return nil, fmt.Errorf("%s: inclusion %d@%d: %w", r.Name, index, treeSize, ledger.ErrNotFound)
	}
	r.pbMu.Lock()
	defer r.pbMu.Unlock()
	if r.pb == nil || r.pbSize != treeSize {
		pb, err := client.NewProofBuilder(ctx, treeSize, r.Tile)
		if err != nil {
			return nil, fmt.Errorf("%s: inclusion %d@%d: %w", r.Name, index, treeSize, err)
		}
		r.pb, r.pbSize = pb, treeSize
	}
	p, err := r.pb.InclusionProof(ctx, index)
	if err != nil {
		return nil, fmt.Errorf("%s: inclusion %d@%d: %w", r.Name, index, treeSize, err)
	}
	return p, nil
}

// ConsistencyProof is ledger.Log's ConsistencyProof, for any from ≤ to ≤ the integrated size
// (Tile). A proof from size 0, or between equal sizes, is empty.
func (r *Reader) ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	if from > to {
		return nil, fmt.Errorf("%s: consistency %d→%d: from is larger than to", r.Name, from, to)
	}
	pb, err := client.NewProofBuilder(ctx, to, r.Tile)
	if err != nil {
		return nil, fmt.Errorf("%s: consistency %d→%d: %w", r.Name, from, to, err)
	}
	p, err := pb.ConsistencyProof(ctx, from, to)
	if err != nil {
		return nil, fmt.Errorf("%s: consistency %d→%d: %w", r.Name, from, to, err)
	}
	return p, nil
}

// Tile is the client.TileFetcherFunc of the proof builders: hash tile (level, index) as it is
// in a tree whose partial width for that tile is p (0: full), the raw concatenated hashes of
// its bottom row. A missing partial is cut from a wider version (the package comment).
func (r *Reader) Tile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	raw, err := r.wider(ctx, p, layout.TilePath(level, index, 0), func(ctx context.Context, w uint8) ([]byte, error) {
		return r.ReadTile(ctx, level, index, w)
	})
	if err != nil {
		return nil, err
	}
	if p == 0 {
		return raw, nil
	}
	if len(raw) < int(p)*HashSize {
		return nil, fmt.Errorf("tile %s holds %d bytes, fewer than %d hashes", layout.TilePath(level, index, p), len(raw), p)
	}
	return raw[:int(p)*HashSize], nil
}

// EntryBundle is the client.EntryBundleFetcherFunc of Entries. A wider bundle is returned as it
// is: the entries below the requested width are the same, and Entries reads no further.
func (r *Reader) EntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error) {
	return r.wider(ctx, p, layout.EntriesPath(index, 0), func(ctx context.Context, w uint8) ([]byte, error) {
		return r.ReadEntryBundle(ctx, index, w)
	})
}

// wider reads the resource whose full version is at full at width p with read: the partial,
// else the full version, else the narrowest wider partial. The driver may delete partials
// while they are listed (the resource became full), so it looks again a few times.
func (r *Reader) wider(ctx context.Context, p uint8, full string, read func(context.Context, uint8) ([]byte, error)) ([]byte, error) {
	raw, err := read(ctx, p)
	if err == nil || p == 0 || !errors.Is(err, fs.ErrNotExist) {
		return raw, err
	}
	for range 3 {
		if raw, err = read(ctx, 0); err == nil || !errors.Is(err, fs.ErrNotExist) {
			return raw, err
		}
		widths, lerr := r.Partials(ctx, full, p)
		if lerr != nil {
			return nil, fmt.Errorf("%w; list wider partials: %w", err, lerr)
		}
		for _, w := range widths {
			raw, werr := read(ctx, w)
			if werr == nil {
				return raw, nil
			}
			if !errors.Is(werr, fs.ErrNotExist) {
				return nil, werr
			}
		}
	}
	return nil, fmt.Errorf("%s at width %d: %w", full, p, err)
}
