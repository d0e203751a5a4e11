package tessera

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/lineage-audit/lineage/ledger/internal/tesseralog"
	"github.com/transparency-dev/tessera/api/layout"
)

// Read-side helpers for the query API's lineage answers (query/proofs.go, query/lineage_api.go),
// which prove thousands of entries against one checkpoint at once.

// ReadTile returns the hash tile (level, index) as it is in a tree whose partial width for that
// tile is p (0: a full tile): the raw concatenated 32-byte hashes of the tile's bottom row. A
// missing partial is cut from a wider version (tiles.go). The query API's proof builder uses it
// to serve every inclusion proof of an answer from one pass over the tiles (query/proofs.go).
func (l *Log) ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	return l.readTile(ctx, level, index, p)
}

// fullTileBytes is the size of a full hash tile: 256 hashes of 32 bytes.
const fullTileBytes = layout.TileWidth * tesseralog.HashSize

// ReadTileInto is ReadTile reading into buf's storage (reused from call to call; the result is
// valid until buf is reused) when buf can hold a full tile. A full tile (p == 0) of a log on disk
// is read with one open, one read and one close, without allocating, which matters to an answer
// that reads thousands of tiles (query/proofs.go); anything else (a partial tile, a tile not on
// disk as a full file, a log without a directory) is read by ReadTile.
func (l *Log) ReadTileInto(ctx context.Context, level, index uint64, p uint8, buf []byte) ([]byte, error) {
	if p != 0 || l.dir == "" || cap(buf) < fullTileBytes {
		return l.readTile(ctx, level, index, p)
	}
	path := filepath.Join(l.dir, filepath.FromSlash(layout.TilePath(level, index, 0)))
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return l.readTile(ctx, level, index, p)
	}
	if err != nil {
		return nil, fmt.Errorf("tessera: read tile: %w", err)
	}
	defer f.Close()
	// One byte more than a full tile, to notice a longer file (which is not a tile).
	buf = buf[:min(cap(buf), fullTileBytes+1)]
	n, err := io.ReadFull(f, buf)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
	case err != nil:
		return nil, fmt.Errorf("tessera: read tile %s: %w", path, err)
	}
	if n != fullTileBytes {
		return nil, fmt.Errorf("tessera: tile %s holds %d bytes, not a full tile's %d", path, n, fullTileBytes)
	}
	return buf[:n], nil
}

// BundleEntries returns copies of the entries at offsets offs (ascending, below 256) of entry
// bundle `bundle`, all below treeSize. A full bundle is read into a pooled buffer, and only its length
// prefixes up to the last wanted entry are read, so an answer that needs a few entries of each
// of thousands of bundles does not copy whole bundles (about 440 KB each for 1.7 KB entries).
// A bundle that is partial at treeSize, or not on disk as a full file, is read with Entries.
func (l *Log) BundleEntries(ctx context.Context, bundle uint64, offs []uint64, treeSize uint64) ([][]byte, error) {
	if len(offs) == 0 {
		return nil, nil
	}
	if start := bundle * tesseralog.EntryBundleWidth; l.dir != "" && start+tesseralog.EntryBundleWidth <= treeSize {
		out, err := l.readEntries(bundle, offs)
		if err == nil {
			return out, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return l.read.BundleEntries(ctx, bundle, offs, treeSize)
}

// bundleBufs are the read buffers of readEntries, one full bundle's worth each.
var bundleBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512<<10); return &b }}

// bundleChunk is how much of a bundle file readEntries reads at a time.
const bundleChunk = 64 << 10

// readEntries reads entries offs of the full bundle file, reading the file only up to the
// end of the last wanted entry, into a pooled buffer (no allocation per bundle).
func (l *Log) readEntries(bundle uint64, offs []uint64) ([][]byte, error) {
	path := filepath.Join(l.dir, filepath.FromSlash(layout.EntriesPath(bundle, 0)))
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	bp := bundleBufs.Get().(*[]byte)
	defer bundleBufs.Put(bp)
	data := (*bp)[:0]
	eof := false
	// have makes data hold at least n bytes, unless the file is shorter.
	have := func(n int) (bool, error) {
		for len(data) < n && !eof {
			if cap(data)-len(data) < bundleChunk {
				data = append(data[:cap(data)], make([]byte, bundleChunk)...)[:len(data)]
			}
			m, err := f.ReadAt(data[len(data):len(data)+bundleChunk], int64(len(data)))
			data = data[:len(data)+m]
			if errors.Is(err, io.EOF) {
				eof = true
			} else if err != nil {
				return false, err
			}
		}
		return len(data) >= n, nil
	}
	defer func() { *bp = data[:0] }()
	out := make([][]byte, 0, len(offs))
	pos, next := 0, 0
	for k := uint64(0); next < len(offs); k++ {
		if ok, err := have(pos + 2); err != nil {
			return nil, fmt.Errorf("tessera: read entry bundle %s: %w", path, err)
		} else if !ok {
			return nil, fmt.Errorf("tessera: entry bundle %s holds %d entries, fewer than %d", path, k, offs[next]+1)
		}
		n := int(binary.BigEndian.Uint16(data[pos:]))
		end := pos + 2 + n
		if k == offs[next] {
			if ok, err := have(end); err != nil {
				return nil, fmt.Errorf("tessera: read entry bundle %s: %w", path, err)
			} else if !ok {
				return nil, fmt.Errorf("tessera: entry bundle %s: entry %d runs past the end", path, k)
			}
			out = append(out, append([]byte(nil), data[pos+2:end]...))
			for next++; next < len(offs) && offs[next] == k; next++ {
				out = append(out, out[len(out)-1])
			}
			if next < len(offs) && offs[next] < k {
				return nil, fmt.Errorf("tessera: entry bundle offsets are not ascending")
			}
		}
		pos = end
	}
	return out, nil
}
