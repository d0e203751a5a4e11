package verify

import (
	"fmt"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ledger/seal"
)

// Opening is a clear value of a sealed field as answers carry it (docs/ERASURE.md): the
// field's JSON pointer, its value and the opening nonce. A verifier checks it against the
// commitment in the leaf (seal.VerifyOpening): no key is needed, and no other value passes.
type Opening struct {
	Path  string `json:"p"`
	Value string `json:"v"`
	Nonce []byte `json:"n"`
}

// Openings converts seal openings to their answer form.
func Openings(os []seal.Opening) []Opening {
	if len(os) == 0 {
		return nil
	}
	out := make([]Opening, len(os))
	for i, o := range os {
		out[i] = Opening{Path: o.Path, Value: o.Value, Nonce: append([]byte(nil), o.Nonce[:]...)}
	}
	return out
}

// SealedField is what a verifier reports about one sealed field of a leaf.
type SealedField struct {
	Path       string
	KeyID      string
	Commitment string
	// Clear is true when the answer carried an opening that matches the commitment; false
	// means the value was not shown: the server reports it erased.
	Clear bool
}

// String describes the field as a verifier shows it.
func (f SealedField) String() string {
	if f.Clear {
		return fmt.Sprintf("%s: clear, checked against commitment %s", f.Path, f.Commitment)
	}
	return fmt.Sprintf("%s: erased (commitment %s)", f.Path, f.Commitment)
}

// LeafRecord decodes a leaf of either version and returns the record it shows: for a v1 leaf
// its record; for a v2 leaf (sealed fields) the redacted record with each field whose opening
// is given put back in clear, after checking the opening against the field's commitment in the
// leaf, and the state of every sealed field. An opening that does not match, or names a field
// the leaf does not seal, fails. A v1 leaf with openings fails too.
func LeafRecord(leaf []byte, openings []Opening) (*lineage.Record, []byte, []SealedField, error) {
	if !seal.IsV2(leaf) {
		if len(openings) > 0 {
			return nil, nil, nil, fmt.Errorf("openings given for a leaf without sealed fields")
		}
		env, err := lineage.DecodeEnvelope(leaf)
		if err != nil {
			return nil, nil, nil, err
		}
		return env.Record, env.Canonical, nil, nil
	}
	env, err := seal.DecodeEnvelopeV2(leaf)
	if err != nil {
		return nil, nil, nil, err
	}
	os := make([]seal.Opening, len(openings))
	for i, o := range openings {
		if len(o.Nonce) != seal.OpeningNonceSize {
			return nil, nil, nil, fmt.Errorf("opening for %s: nonce of %d bytes", o.Path, len(o.Nonce))
		}
		os[i] = seal.Opening{Path: o.Path, Value: o.Value}
		copy(os[i].Nonce[:], o.Nonce)
	}
	clear, status, err := seal.ApplyOpenings(env.Record.Tenant, env.Canonical, env.Sealed, os)
	if err != nil {
		return nil, nil, nil, err
	}
	rec := env.Record
	if len(openings) > 0 {
		if rec, err = lineage.DecodeRecord(clear); err != nil {
			return nil, nil, nil, fmt.Errorf("record with its openings: %w", err)
		}
	}
	fields := make([]SealedField, len(status))
	for i, s := range status {
		fields[i] = SealedField{Path: s.Path, KeyID: s.KeyID.String(), Commitment: s.Commitment.String(), Clear: s.State == seal.Clear}
	}
	return rec, clear, fields, nil
}

// DecodeEntry decodes a ledger entry of either version. A v2 entry's record is the redacted
// one: each sealed field holds its token (no openings are involved: LeafRecord applies them,
// as VerifyBundle does for a bundle's records lines; tlog-proofs carry none), and V is 2.
func DecodeEntry(entry []byte) (*lineage.Envelope, error) {
	if !seal.IsV2(entry) {
		return lineage.DecodeEnvelope(entry)
	}
	env, err := seal.DecodeEnvelopeV2(entry)
	if err != nil {
		return nil, err
	}
	return &lineage.Envelope{V: seal.EnvelopeV2, Record: env.Record, Canonical: env.Canonical,
		ReceivedAt: env.ReceivedAt, SourceVerified: env.SourceVerified}, nil
}
