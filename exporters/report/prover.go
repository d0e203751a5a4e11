package report

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// The exporter builds the bundle's inclusion proofs itself, from the entries it reads, instead
// of asking the log for one proof per record.
//
// Why: the export reads every entry of the pinned tree anyway (to prove completeness), so it
// has every leaf hash, and an RFC 6962 inclusion proof is a deterministic function of the leaf
// hashes: whoever computes it, it is the same bytes and it verifies against the signed root or
// not. Asking the log instead costs a round trip per record (a gRPC call on Trillian) or, on
// Tessera, a fresh proof builder per call that re-hashes the inner nodes of three tiles: about
// 140 µs a proof, most of an export's time. Built here, a proof costs a few hashes, on every
// driver alike. Each proof is still verified against the signed checkpoint before it is
// written, and the leaves it is built from hash to that checkpoint's root, or the export fails.
//
// How, in bounded memory: the tree is cut into aligned blocks of 1024 leaves. While the scan
// runs, each completed block's inner tree (1023 hashes) is built once; its root is kept (32
// bytes per 1024 entries), and for each cited leaf in it the ten sibling hashes on its path
// inside the block are written to a temporary file. After the scan, the levels above the
// blocks are built from the kept roots, and the leaves of the last, partial block are in
// memory. Every node an inclusion proof needs is then one of: a sibling kept for that leaf, a
// node above the blocks, or a node inside the last block (see node).

const (
	blockLevel = 10
	blockSize  = 1 << blockLevel
)

// prover accumulates the tree of the scanned log and builds inclusion proofs for cited leaves.
type prover struct {
	n       uint64 // tree size (the pinned checkpoint's)
	h       hash.Hash
	buf     []byte
	start   uint64   // first index of the current block
	leaves  [][]byte // leaf hashes of the current block
	pending []uint64 // cited indexes in the current block
	levels  [blockLevel + 1][]byte
	roots   [][]byte   // roots of the complete blocks, in order
	upper   [][][]byte // upper[k][i]: node (level blockLevel+k, index i)
	tailAt  uint64     // first index of the last, partial block (n if none)
	tail    [][]byte   // leaf hashes of the last, partial block
	cache   map[compact.NodeID][]byte
	sibs    *bufio.Writer // per cited leaf: index, count, count × 32-byte siblings
	sibFile *os.File
}

func newProver(n uint64, tmpDir string) (*prover, error) {
	f, err := os.CreateTemp(tmpDir, "siblings-*")
	if err != nil {
		return nil, fmt.Errorf("exporters: %w", err)
	}
	p := &prover{n: n, h: sha256.New(), sibFile: f, sibs: bufio.NewWriterSize(f, 256<<10), cache: map[compact.NodeID][]byte{}}
	for l := range p.levels {
		p.levels[l] = make([]byte, (blockSize>>l)*32)
	}
	return p, nil
}

func (p *prover) close() {
	if p.sibFile != nil {
		p.sibFile.Close()
	}
}

// leafHash is rfc6962's leaf hash with a reused digest: this runs once per log entry.
func (p *prover) leafHash(entry []byte) []byte {
	p.h.Reset()
	p.h.Write([]byte{rfc6962.RFC6962LeafHashPrefix})
	p.h.Write(entry)
	return p.h.Sum(nil)
}

// children hashes two nodes into dst (32 bytes).
func (p *prover) children(dst, l, r []byte) {
	p.h.Reset()
	p.h.Write([]byte{rfc6962.RFC6962NodeHashPrefix})
	p.h.Write(l)
	p.h.Write(r)
	p.buf = p.h.Sum(p.buf[:0])
	copy(dst, p.buf)
}

func hashChildren(l, r []byte) []byte { return rfc6962.DefaultHasher.HashChildren(l, r) }

// cite marks index (in the current block, not yet pushed) as cited.
func (p *prover) cite(index uint64) { p.pending = append(p.pending, index) }

// push adds the next leaf hash. Leaves must come in order from 0.
func (p *prover) push(leaf []byte) error {
	p.leaves = append(p.leaves, leaf)
	if len(p.leaves) < blockSize {
		return nil
	}
	return p.completeBlock()
}

// completeBlock builds the inner tree of a full block, keeps its root, and writes the in-block
// path siblings of each cited leaf.
func (p *prover) completeBlock() error {
	for i, l := range p.leaves {
		copy(p.levels[0][i*32:], l)
	}
	for l := 1; l <= blockLevel; l++ {
		below, cur := p.levels[l-1], p.levels[l]
		for i := 0; i < len(cur)/32; i++ {
			p.children(cur[i*32:(i+1)*32], below[2*i*32:(2*i+1)*32], below[(2*i+1)*32:(2*i+2)*32])
		}
	}
	p.roots = append(p.roots, append([]byte(nil), p.levels[blockLevel]...))
	for _, idx := range p.pending {
		off := idx - p.start
		if err := p.writeSiblings(idx, func(yield func([]byte)) {
			for l := 0; l < blockLevel; l++ {
				s := (off >> l) ^ 1
				yield(p.levels[l][s*32 : (s+1)*32])
			}
		}, blockLevel); err != nil {
			return err
		}
	}
	p.start += blockSize
	p.leaves, p.pending = p.leaves[:0], p.pending[:0]
	return nil
}

func (p *prover) writeSiblings(idx uint64, each func(func([]byte)), count int) error {
	var hdr [9]byte
	binary.BigEndian.PutUint64(hdr[:8], idx)
	hdr[8] = byte(count)
	p.sibs.Write(hdr[:])
	each(func(h []byte) { p.sibs.Write(h) })
	return nil
}

// finish ends the scan: it keeps the last partial block, builds the levels above the blocks,
// and returns the tree's root hash.
func (p *prover) finish() ([]byte, error) {
	if p.start+uint64(len(p.leaves)) != p.n {
		return nil, fmt.Errorf("exporters: prover saw %d leaves of %d", p.start+uint64(len(p.leaves)), p.n)
	}
	p.tailAt, p.tail = p.start, p.leaves
	for _, idx := range p.pending { // cited leaves of the last block: their nodes come from p.tail
		p.writeSiblings(idx, func(func([]byte)) {}, 0)
	}
	if err := p.sibs.Flush(); err != nil {
		return nil, fmt.Errorf("exporters: siblings: %w", err)
	}
	if _, err := p.sibFile.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	p.sibs = nil
	p.upper = [][][]byte{p.roots}
	for level := p.roots; len(level) > 1; {
		next := make([][]byte, len(level)/2)
		for i := range next {
			next[i] = hashChildren(level[2*i], level[2*i+1])
		}
		p.upper = append(p.upper, next)
		level = next
	}
	// The root: the blocks' roots as perfect level-10 subtrees, then the tail's leaves.
	f := &compact.RangeFactory{Hash: hashChildren}
	rng := f.NewEmptyRange(0)
	for i, r := range p.roots {
		b, err := f.NewRange(uint64(i)*blockSize, uint64(i+1)*blockSize, [][]byte{r})
		if err != nil {
			return nil, err
		}
		if err := rng.AppendRange(b, nil); err != nil {
			return nil, err
		}
	}
	for _, l := range p.tail {
		if err := rng.Append(l, nil); err != nil {
			return nil, err
		}
	}
	if p.n == 0 {
		return rfc6962.DefaultHasher.EmptyRoot(), nil
	}
	return rng.GetRootHash(nil)
}

// node returns the hash of a perfect node that is not an in-block sibling kept for a leaf.
func (p *prover) node(id compact.NodeID) ([]byte, error) {
	if id.Level >= blockLevel {
		k := id.Level - blockLevel
		if int(k) < len(p.upper) && id.Index < uint64(len(p.upper[k])) {
			return p.upper[k][id.Index], nil
		}
		return nil, fmt.Errorf("exporters: node %d/%d is not in the tree", id.Level, id.Index)
	}
	first := id.Index << id.Level
	if first < p.tailAt || first+(1<<id.Level) > p.n {
		return nil, fmt.Errorf("exporters: node %d/%d is not available", id.Level, id.Index)
	}
	if h, ok := p.cache[id]; ok {
		return h, nil
	}
	var h []byte
	if id.Level == 0 {
		h = p.tail[first-p.tailAt]
	} else {
		l, err := p.node(compact.NewNodeID(id.Level-1, id.Index*2))
		if err != nil {
			return nil, err
		}
		r, err := p.node(compact.NewNodeID(id.Level-1, id.Index*2+1))
		if err != nil {
			return nil, err
		}
		h = hashChildren(l, r)
	}
	p.cache[id] = h
	return h, nil
}

// proofReader yields the proofs of the cited leaves, in citation order, after finish.
type proofReader struct {
	p   *prover
	r   *bufio.Reader
	sib [blockLevel][]byte
}

func (p *prover) proofs() *proofReader {
	pr := &proofReader{p: p, r: bufio.NewReaderSize(p.sibFile, 256<<10)}
	for i := range pr.sib {
		pr.sib[i] = make([]byte, 32)
	}
	return pr
}

// next returns the inclusion proof of the next cited leaf, which must be index.
func (pr *proofReader) next(index uint64) ([][]byte, error) {
	var hdr [9]byte
	if _, err := io.ReadFull(pr.r, hdr[:]); err != nil {
		return nil, fmt.Errorf("exporters: siblings of %d: %w", index, err)
	}
	if got := binary.BigEndian.Uint64(hdr[:8]); got != index {
		return nil, fmt.Errorf("exporters: siblings are for %d, want %d", got, index)
	}
	count := int(hdr[8])
	if count > blockLevel {
		return nil, errors.New("exporters: corrupt siblings file")
	}
	for i := 0; i < count; i++ {
		if _, err := io.ReadFull(pr.r, pr.sib[i]); err != nil {
			return nil, fmt.Errorf("exporters: siblings of %d: %w", index, err)
		}
	}
	nodes, err := proof.Inclusion(index, pr.p.n)
	if err != nil {
		return nil, err
	}
	hashes := make([][]byte, len(nodes.IDs))
	for j, id := range nodes.IDs {
		if id.Level < blockLevel && id.Index<<id.Level < pr.p.tailAt {
			// Inside a complete block: only the leaf's own path siblings are ever needed.
			if int(id.Level) >= count || id.Index != (index>>id.Level)^1 {
				return nil, fmt.Errorf("exporters: proof of %d needs node %d/%d, which was not kept", index, id.Level, id.Index)
			}
			hashes[j] = append([]byte(nil), pr.sib[id.Level]...)
			continue
		}
		if hashes[j], err = pr.p.node(id); err != nil {
			return nil, fmt.Errorf("exporters: proof of %d: %w", index, err)
		}
	}
	return nodes.Rehash(hashes, hashChildren)
}
