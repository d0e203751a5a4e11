package ledger

import (
	"fmt"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// LeafHash is the RFC 6962 leaf hash of an entry: SHA-256(0x00 || entry).
func LeafHash(entry []byte) []byte {
	return rfc6962.DefaultHasher.HashLeaf(entry)
}

// OpenCheckpoint verifies a signed checkpoint note with v and parses it. The origin line must
// equal the verifier's key name: a checkpoint signed by the right key for another log is refused.
// When v is a Keyring (a rotated key, rotate.go), a checkpoint signed by any of its keys is
// accepted, the current key tried first.
func OpenCheckpoint(raw []byte, v note.Verifier) (Checkpoint, error) {
	vs := VerifiersOf(v)
	var first error
	for i := len(vs) - 1; i >= 0; i-- {
		cp, _, _, err := log.ParseCheckpoint(raw, vs[i].Name(), vs[i])
		if err == nil {
			return Checkpoint{Origin: cp.Origin, Size: cp.Size, Hash: cp.Hash, Note: raw}, nil
		}
		if first == nil {
			first = err
		}
	}
	return Checkpoint{}, fmt.Errorf("ledger: checkpoint: %w", first)
}

// VerifyInclusion checks that entry is the leaf at index in the tree committed to by cp.
func VerifyInclusion(entry []byte, index uint64, p [][]byte, cp Checkpoint) error {
	if index >= cp.Size {
		return fmt.Errorf("ledger: inclusion %d@%d: index beyond checkpoint", index, cp.Size)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, cp.Size, LeafHash(entry), p, cp.Hash); err != nil {
		return fmt.Errorf("ledger: inclusion %d@%d: %w", index, cp.Size, err)
	}
	return nil
}

// VerifyConsistency checks that the tree committed to by older is a prefix of the one committed
// to by newer, which is what lets a client that trusted older trust newer.
func VerifyConsistency(older, newer Checkpoint, p [][]byte) error {
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, older.Size, newer.Size, p, older.Hash, newer.Hash); err != nil {
		return fmt.Errorf("ledger: consistency %d→%d: %w", older.Size, newer.Size, err)
	}
	return nil
}
