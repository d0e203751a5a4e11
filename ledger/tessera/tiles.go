package tessera

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/lineage-audit/lineage/ledger/internal/tesseralog"
	"golang.org/x/mod/sumdb/note"
)

// Serving proofs and entries at an older tree size: the partial tile or entry bundle that a
// tree size older than the latest needs may be missing from the directory; it is cut from a
// wider version (ledger/internal/tesseralog/read.go explains why that is sound), which
// partialWidths finds on disk.

// newLog sets l's read side: the shared reads of ledger/internal/tesseralog on l.reader, with
// wider partials looked for in l.dir.
func newLog(l *Log, v note.Verifier) *Log {
	l.read = &tesseralog.Reader{
		Name:            "tessera",
		Verifier:        v,
		ReadCheckpoint:  l.reader.ReadCheckpoint,
		ReadTile:        l.reader.ReadTile,
		ReadEntryBundle: l.reader.ReadEntryBundle,
		Partials: func(_ context.Context, full string, p uint8) ([]uint8, error) {
			return partialWidths(filepath.Join(l.dir, filepath.FromSlash(full)+".p"), p)
		},
	}
	return l
}

// readTile is tile (level, index) as it is in the tree whose partial width for that tile is p
// (0: full), a missing partial cut from a wider version.
func (l *Log) readTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	return l.read.Tile(ctx, level, index, p)
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
