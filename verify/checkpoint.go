package verify

import (
	"encoding/json"
	"fmt"

	"github.com/lineage-audit/lineage/ledger"
	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is a signed checkpoint of the log, opened: origin, tree size and root hash.
type Checkpoint = ledger.Checkpoint

// OpenCheckpoint checks that raw (a checkpoint as GET /v1/checkpoint publishes it) is a note
// signed by v for v's log origin, and returns it parsed.
func OpenCheckpoint(raw []byte, v note.Verifier) (Checkpoint, error) {
	return ledger.OpenCheckpoint(raw, v)
}

// ConsistencyProof is the answer of GET /v1/proofs/consistency?from=M&to=N.
type ConsistencyProof struct {
	Proof [][]byte `json:"proof"`
}

// DecodeConsistencyProof parses an answer of GET /v1/proofs/consistency.
func DecodeConsistencyProof(b []byte) ([][]byte, error) {
	var p ConsistencyProof
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("verify: consistency proof: %w", err)
	}
	return p.Proof, nil
}

// VerifyConsistency checks that the tree of checkpoint newer extends the tree of older (the
// log was only appended to between them), given the consistency proof between their sizes.
// Both checkpoints must have been opened with OpenCheckpoint.
func VerifyConsistency(older, newer Checkpoint, proof [][]byte) error {
	return ledger.VerifyConsistency(older, newer, proof)
}
