package tessera

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/transparency-dev/tessera/api/layout"
)

// Serving proofs and entries at an older tree size.
//
// Tessera writes the partial tile "tile/L/N.p/W" (and entry bundle "tile/entries/N.p/W") only
// for the tree sizes it integrates at, and deletes a tile's partials once the tile is full. So
// the partial that a tree size older than the latest needs may never have existed (the log grew
// past that size inside one batch) or may be gone. Its own fallback, the full tile, does not
// exist either while the tile is still filling (tile/1/000 needs 65,536 entries). The first W
// hashes of any wider version of the tile are the same hashes, though: a tile's bottom row holds
// hashes of complete subtrees, which never change as the log grows. So a missing partial of
// width W is read from the narrowest wider partial on disk, or the full tile, and cut to W.
// The version of the latest integrated size is always on disk, so some wider version exists for
// every size up to it.

// hashSize is the size of one hash in a tile (SHA-256, RFC 6962).
const hashSize = 32

// readTile is the client.TileFetcherFunc of the proof builders: tile (level, index) as it is
// in the tree whose partial width for that tile is p (0: full).
func (l *Log) readTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	raw, err := l.readWider(ctx, p, layout.TilePath(level, index, 0), func(ctx context.Context, w uint8) ([]byte, error) {
		return l.reader.ReadTile(ctx, level, index, w)
	})
	if err != nil {
		return nil, err
	}
	if p == 0 {
		return raw, nil
	}
	if len(raw) < int(p)*hashSize {
		return nil, fmt.Errorf("tile %s holds %d bytes, fewer than %d hashes", layout.TilePath(level, index, p), len(raw), p)
	}
	return raw[:int(p)*hashSize], nil
}

// readEntryBundle is the client.EntryBundleFetcherFunc of Entries. A wider bundle is returned
// as it is: the entries below the requested width are the same, and Entries reads no further.
func (l *Log) readEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error) {
	return l.readWider(ctx, p, layout.EntriesPath(index, 0), func(ctx context.Context, w uint8) ([]byte, error) {
		return l.reader.ReadEntryBundle(ctx, index, w)
	})
}

// readWider reads the resource whose full version is at path (relative to the log directory)
// at width p with read (which itself falls back from a missing partial to the full version).
// If neither is there it reads the narrowest partial wider than p. Tessera may delete the
// partials (the resource became full) while they are listed, so it looks again a few times.
func (l *Log) readWider(ctx context.Context, p uint8, path string, read func(context.Context, uint8) ([]byte, error)) ([]byte, error) {
	raw, err := read(ctx, p)
	if err == nil || p == 0 || !errors.Is(err, fs.ErrNotExist) || l.dir == "" {
		return raw, err
	}
	for range 3 {
		widths, lerr := partialWidths(filepath.Join(l.dir, filepath.FromSlash(path)+".p"), p)
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
		// No wider partial left: the resource may have become full since the first read.
		if raw, err = read(ctx, 0); err == nil || !errors.Is(err, fs.ErrNotExist) {
			return raw, err
		}
	}
	return nil, fmt.Errorf("%s at width %d: %w", path, p, err)
}

// partialWidths lists the widths above p of the partials in dir ("N.p/"), narrowest first.
// A missing dir is no partial at all.
func partialWidths(dir string, p uint8) ([]uint8, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []uint8
	for _, de := range des {
		w, err := strconv.ParseUint(de.Name(), 10, 8)
		if err != nil || uint8(w) <= p {
			continue // not a partial (e.g. a temporary file) or not wider
		}
		out = append(out, uint8(w))
	}
	slices.Sort(out)
	return out, nil
}
