package verify

import (
	"bytes"
	"encoding/json"
	"fmt"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ledger"
	"golang.org/x/mod/sumdb/note"
)

// RecordProof is the answer of GET /v1/records/{id}: the record, the exact ledger entry that
// holds it (Leaf), its log index, the signed checkpoint (as published) and the inclusion proof
// of the leaf in that checkpoint's tree. It has the fields of query.RecordProof (query/api.go).
type RecordProof struct {
	Record         *lineage.Record `json:"record"`
	Tenant         string          `json:"tenant"`
	Index          uint64          `json:"index"`
	Leaf           []byte          `json:"leaf"`
	Checkpoint     string          `json:"checkpoint"`
	InclusionProof [][]byte        `json:"inclusion_proof"`
	// Openings are the clear values of the leaf's sealed fields shown in Record (a v2 leaf,
	// docs/ERASURE.md); each is checked against its commitment in the leaf. A sealed field
	// without one is erased: Record holds its token. Absent for a v1 leaf.
	Openings []Opening `json:"openings,omitempty"`
}

// VerifyRecordProof checks an answer of GET /v1/records/{id} offline, trusting nothing but the
// log's public key v:
//  1. the checkpoint is a note signed by v, for v's log origin;
//  2. the leaf is a canonical Lineage envelope whose record is the one presented;
//  3. the inclusion proof places the leaf at the index in the checkpoint's tree.
//
// It returns the verified checkpoint.
func VerifyRecordProof(rp *RecordProof, v note.Verifier) (ledger.Checkpoint, error) {
	cp, err := ledger.OpenCheckpoint([]byte(rp.Checkpoint), v)
	if err != nil {
		return cp, fmt.Errorf("verify: checkpoint signature: %w", err)
	}
	_, canonical, _, err := LeafRecord(rp.Leaf, rp.Openings)
	if err != nil {
		return cp, fmt.Errorf("verify: leaf %d is not a valid ledger entry with the openings given: %w", rp.Index, err)
	}
	if rp.Record != nil {
		presented, err := rp.Record.Canonical()
		if err != nil {
			return cp, fmt.Errorf("verify: presented record: %w", err)
		}
		if !bytes.Equal(presented, canonical) {
			return cp, fmt.Errorf("verify: the record presented differs from the one in leaf %d", rp.Index)
		}
	}
	if err := ledger.VerifyInclusion(rp.Leaf, rp.Index, rp.InclusionProof, cp); err != nil {
		return cp, fmt.Errorf("verify: %w", err)
	}
	return cp, nil
}

// DecodeRecordProof parses a RecordProof strictly (as saved by `lineagectl verify --save`).
func DecodeRecordProof(b []byte) (*RecordProof, error) {
	var rp RecordProof
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&rp); err != nil {
		return nil, fmt.Errorf("verify: record proof: %w", err)
	}
	return &rp, nil
}
