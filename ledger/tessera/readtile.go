package tessera

import "context"

// ReadTile returns the hash tile (level, index) as it is in a tree whose partial width for that
// tile is p (0: a full tile): the raw concatenated 32-byte hashes of the tile's bottom row. A
// missing partial is cut from a wider version (tiles.go). The query API's proof builder uses it
// to serve every inclusion proof of an answer from one pass over the tiles (query/proofs.go).
func (l *Log) ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	return l.readTile(ctx, level, index, p)
}
