package query

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/lineage-audit/lineage/ledger"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/tessera/api/layout"
)

// TileReader is implemented by logs whose Merkle tree is stored as C2SP tlog tiles
// (ledger/tessera): ReadTile returns the bottom row of hash tile (level, index), cut to width p
// (0: a full tile), as concatenated 32-byte hashes.
type TileReader interface {
	ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error)
}

// tileIntoReader is implemented by logs that read a tile into the caller's buffer
// (ledger/tessera ReadTileInto): the result is valid until buf is reused.
type tileIntoReader interface {
	ReadTileInto(ctx context.Context, level, index uint64, p uint8, buf []byte) ([]byte, error)
}

// InclusionProofs returns the inclusion proofs of the leaves at idx (any order, repeats
// allowed) in the tree of size treeSize: proofs[i] is exactly what lg.InclusionProof(idx[i],
// treeSize) returns. A log that is a TileReader is read in one pass: the proofs' node ids are
// collected first, each tile holding one is read once, and each node is hashed once, also when
// many proofs share it (the nodes above a tile, and the nodes inside a tile several leaves of the
// answer fall in). Other logs are asked one proof at a time.
func InclusionProofs(ctx context.Context, lg ledger.Log, idx []uint64, treeSize uint64) ([][][]byte, error) {
	proofs, _, err := inclusionProofs(ctx, lg, idx, treeSize, false)
	return proofs, err
}

// inclusionProofs is InclusionProofs; with leafHashes, a log that is a TileReader also returns
// the leaf hash of every idx[i] as its level-0 tile holds it (RFC 6962's SHA-256(0x00 || entry),
// what the proofs commit to), read in the same pass. Other logs return nil leaf hashes.
func inclusionProofs(ctx context.Context, lg ledger.Log, idx []uint64, treeSize uint64, leafHashes bool) ([][][]byte, [][]byte, error) {
	tr, ok := lg.(TileReader)
	if !ok {
		out := make([][][]byte, len(idx))
		for i, x := range idx {
			p, err := lg.InclusionProof(ctx, x, treeSize)
			if err != nil {
				return nil, nil, err
			}
			out[i] = p
		}
		return out, nil, nil
	}
	return tileProofs(ctx, tr, idx, treeSize, leafHashes)
}

// maxTileProofSize bounds the trees tileProofs serves: node indexes then fit in 58 bits and
// levels in 6, the packed keys of its slot map.
const maxTileProofSize = 1 << 58

// tilesPerWorker is how many tiles justify one more goroutine reading and hashing them.
var tilesPerWorker = 64

// tileAddr names one hash tile.
type tileAddr struct{ level, index uint64 }

// tileProofs builds the proofs from tiles (see inclusionProofs). The tiles are independent (each
// holds its own bottom row), so they are shared out among up to GOMAXPROCS goroutines, each with
// its own memo, writing disjoint slots of the arena.
func tileProofs(ctx context.Context, tr TileReader, idx []uint64, treeSize uint64, leafHashes bool) ([][][]byte, [][]byte, error) {
	// Each distinct node gets a 32-byte slot in one arena; offs[i] are proof i's slots, and
	// leafOffs[i] the slot of leaf idx[i] itself when leaf hashes are wanted.
	if treeSize > maxTileProofSize {
		return nil, nil, fmt.Errorf("tree size %d: too large for the proof builder", treeSize)
	}
	specs := make([]proof.Nodes, len(idx))
	offs := make([][]int, len(idx))
	// Keys are node ids packed into one word (level in the top 6 bits), which map lookups hash
	// faster than compact.NodeID; maxTileProofSize keeps every id of the tree representable.
	slot := make(map[uint64]int, 4*len(idx)) // about the distinct nodes of scattered leaves
	type want struct {
		id  compact.NodeID
		off int
	}
	need := map[tileAddr][]want{}
	slotOf := func(id compact.NodeID) int {
		key := uint64(id.Level)<<58 | id.Index
		off, ok := slot[key]
		if !ok {
			off = len(slot) * sha256.Size
			slot[key] = off
			tl, ti, _, _ := layout.NodeCoordsToTileAddress(uint64(id.Level), id.Index)
			k := tileAddr{tl, ti}
			need[k] = append(need[k], want{id, off})
		}
		return off
	}
	var leafOffs []int
	if leafHashes {
		leafOffs = make([]int, len(idx))
	}
	for i, x := range idx {
		if x >= treeSize {
			return nil, nil, fmt.Errorf("inclusion %d@%d: %w", x, treeSize, ledger.ErrNotFound)
		}
		n, err := proof.Inclusion(x, treeSize)
		if err != nil {
			return nil, nil, fmt.Errorf("inclusion %d@%d: %w", x, treeSize, err)
		}
		specs[i] = n
		offs[i] = make([]int, len(n.IDs))
		for j, id := range n.IDs {
			offs[i][j] = slotOf(id)
		}
		if leafHashes {
			leafOffs[i] = slotOf(compact.NewNodeID(0, x))
		}
	}
	// Tiles in tree order, so a log on disk is read front to back.
	order := make([]tileAddr, 0, len(need))
	for k := range need {
		order = append(order, k)
	}
	slices.SortFunc(order, func(a, b tileAddr) int {
		if a.level != b.level {
			return cmp.Compare(a.level, b.level)
		}
		return cmp.Compare(a.index, b.index)
	})
	arena := make([]byte, len(slot)*sha256.Size)
	into, _ := tr.(tileIntoReader)
	fill := func(tiles []tileAddr) error {
		var (
			memo tileMemo
			buf  []byte
		)
		if into != nil {
			buf = make([]byte, 0, layout.TileWidth*sha256.Size+1)
		}
		for _, k := range tiles {
			p := layout.PartialTileSize(k.level, k.index, treeSize)
			var (
				raw []byte
				err error
			)
			if into != nil {
				raw, err = into.ReadTileInto(ctx, k.level, k.index, p, buf)
			} else {
				raw, err = tr.ReadTile(ctx, k.level, k.index, p)
			}
			if err != nil {
				return fmt.Errorf("tile %d/%d@%d: %w", k.level, k.index, treeSize, err)
			}
			width := int(p)
			if width == 0 {
				width = layout.TileWidth
			}
			if len(raw) < width*sha256.Size {
				return fmt.Errorf("tile %d/%d@%d holds %d bytes, fewer than %d hashes", k.level, k.index, treeSize, len(raw), width)
			}
			memo.reset(raw[:width*sha256.Size])
			for _, w := range need[k] {
				_, _, nl, ni := layout.NodeCoordsToTileAddress(uint64(w.id.Level), w.id.Index)
				h, ok := memo.node(nl, ni)
				if !ok {
					return fmt.Errorf("node %d/%d is not complete in tile %d/%d@%d", w.id.Level, w.id.Index, k.level, k.index, treeSize)
				}
				copy(arena[w.off:], h)
			}
		}
		return nil
	}
	workers := min(runtime.GOMAXPROCS(0), (len(order)+tilesPerWorker-1)/tilesPerWorker)
	if workers <= 1 {
		if err := fill(order); err != nil {
			return nil, nil, err
		}
	} else {
		errs := make([]error, workers)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[w] = fill(order[w*len(order)/workers : (w+1)*len(order)/workers])
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, nil, err
		}
	}
	// The proofs share the hashes in the arena (a proof's hashes are never written to). Nodes
	// past the right border of the tree are folded into one ephemeral hash (Rehash); proofs
	// that fold into the same ephemeral node fold the same run, so each is hashed once.
	ephemeral := map[compact.NodeID][]byte{}
	out := make([][][]byte, len(idx))
	for i, n := range specs {
		p := make([][]byte, len(n.IDs))
		for j, off := range offs[i] {
			p[j] = arena[off : off+sha256.Size : off+sha256.Size]
		}
		if key, begin, end := n.Ephem(); end-begin > 1 {
			e, ok := ephemeral[key]
			if !ok {
				var err error
				if p, err = n.Rehash(p, hashChildren); err != nil {
					return nil, nil, err
				}
				ephemeral[key] = p[begin]
			} else {
				p = append(p[:begin+1], p[end:]...)
				p[begin] = e
			}
		}
		out[i] = p
	}
	var leaves [][]byte
	if leafHashes {
		leaves = make([][]byte, len(idx))
		for i, off := range leafOffs {
			leaves[i] = arena[off : off+sha256.Size : off+sha256.Size]
		}
	}
	return out, leaves, nil
}

// hashChildren is RFC 6962's interior node hash: SHA-256(0x01 || left || right).
func hashChildren(l, r []byte) []byte {
	var buf [1 + 2*sha256.Size]byte
	buf[0] = 1
	copy(buf[1:], l)
	copy(buf[1+sha256.Size:], r)
	h := sha256.Sum256(buf[:])
	return h[:]
}

// tileMemo computes the nodes inside one tile from its bottom row, hashing each at most once.
type tileMemo struct {
	row []byte // the tile's bottom row, 32 bytes per hash
	// levels[l-1] holds the nodes of level l (1..7) inside the tile; done marks the computed ones.
	levels [layout.TileHeight - 1][]byte
	done   [layout.TileHeight - 1][]bool
}

func (m *tileMemo) reset(row []byte) {
	m.row = row
	for l := range m.levels {
		n := layout.TileWidth >> (l + 1)
		if m.levels[l] == nil {
			m.levels[l] = make([]byte, n*sha256.Size)
			m.done[l] = make([]bool, n)
		} else {
			clear(m.done[l])
		}
	}
}

// node returns the hash of node (level, index) inside the tile, or false if the tile's row does
// not hold all of its leaves (a partial tile).
func (m *tileMemo) node(level uint, index uint64) ([]byte, bool) {
	if level == 0 {
		off := int(index) * sha256.Size
		if off+sha256.Size > len(m.row) {
			return nil, false
		}
		return m.row[off : off+sha256.Size], true
	}
	slot := m.levels[level-1][int(index)*sha256.Size : int(index+1)*sha256.Size]
	if m.done[level-1][index] {
		return slot, true
	}
	l, ok := m.node(level-1, 2*index)
	if !ok {
		return nil, false
	}
	r, ok := m.node(level-1, 2*index+1)
	if !ok {
		return nil, false
	}
	var buf [1 + 2*sha256.Size]byte
	buf[0] = 1
	copy(buf[1:], l)
	copy(buf[1+sha256.Size:], r)
	h := sha256.Sum256(buf[:])
	copy(slot, h[:])
	m.done[level-1][index] = true
	return slot, true
}
