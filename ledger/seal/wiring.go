package seal

import (
	"errors"
	"fmt"
	"slices"

	"github.com/lineage-audit/lineage/internal/ijson"
)

// ErrKeyStore is wrapped by Seal when the key store failed (not the record): the caller
// should retry rather than reject the record.
var ErrKeyStore = errors.New("seal: key store")

// LocateString returns the string value at the JSON pointer ptr of the JSON document doc, and
// whether it is there. The erasure purge uses it to read, from an index row written while the
// key existed, the clear value an erased field held.
func LocateString(doc []byte, ptr string) (string, bool, error) {
	p, err := ParsePointer(ptr)
	if err != nil {
		return "", false, err
	}
	_, v, found, err := p.locateString(doc)
	return v, found, err
}

// ApplyOpenings is Open without a key store, for verifiers: given a redacted record, its
// sealed fields (from a v2 entry) and the openings a server presented, it checks each opening
// against the commitment of the field with the same path (VerifyOpening) and puts the clear
// value back. A field without an opening keeps its token and is reported Erased (the server
// did not, or could not, show it). An opening for a path that is not sealed, given twice, or
// that does not match its commitment fails the call (wrapping ErrOpening).
func ApplyOpenings(tenant string, redacted []byte, fields []Field, openings []Opening) ([]byte, []FieldStatus, error) {
	byPath := make(map[string]Opening, len(openings))
	for _, o := range openings {
		if _, dup := byPath[o.Path]; dup {
			return nil, nil, fmt.Errorf("seal: opening for %s given twice: %w", o.Path, ErrOpening)
		}
		byPath[o.Path] = o
	}
	type hit struct {
		sp  span
		val []byte
	}
	var hits []hit
	status := make([]FieldStatus, len(fields))
	for i, f := range fields {
		status[i] = FieldStatus{Path: f.Path, KeyID: f.KeyID, Commitment: f.Commitment, State: Erased}
		o, ok := byPath[f.Path]
		if !ok {
			continue
		}
		delete(byPath, f.Path)
		if err := VerifyOpening(tenant, f.Commitment, o); err != nil {
			return nil, nil, fmt.Errorf("seal: %s: %w", f.Path, err)
		}
		ptr, err := ParsePointer(f.Path)
		if err != nil {
			return nil, nil, err
		}
		sp, found, err := ptr.locate(redacted)
		if err != nil {
			return nil, nil, err
		}
		if !found || string(redacted[sp.start:sp.end]) != `"`+f.Commitment.Token()+`"` {
			return nil, nil, fmt.Errorf("seal: %s does not hold its sealed token: %w", f.Path, ErrIntegrity)
		}
		enc, err := ijson.AppendString(nil, o.Value)
		if err != nil {
			return nil, nil, fmt.Errorf("seal: %s: %w", f.Path, ErrOpening)
		}
		status[i].State = Clear
		hits = append(hits, hit{sp, enc})
	}
	for p := range byPath {
		return nil, nil, fmt.Errorf("seal: opening for %s, which is not a sealed field: %w", p, ErrOpening)
	}
	slices.SortFunc(hits, func(a, b hit) int { return a.sp.start - b.sp.start })
	out := make([]byte, 0, len(redacted)+len(hits)*32)
	at := 0
	for _, h := range hits {
		out = append(out, redacted[at:h.sp.start]...)
		out = append(out, h.val...)
		at = h.sp.end
	}
	out = append(out, redacted[at:]...)
	return out, status, nil
}

// ParseKeyID parses a key id as entries carry it (unpadded base64url of 16 bytes).
func ParseKeyID(s string) (KeyID, error) {
	var k KeyID
	b, err := b64.DecodeString(s)
	if err != nil || len(b) != KeyIDSize {
		return k, fmt.Errorf("seal: key id %q: not %d bytes of base64url", s, KeyIDSize)
	}
	copy(k[:], b)
	return k, nil
}

// ParseCommitment parses a commitment as entries carry it.
func ParseCommitment(s string) (Commitment, error) {
	var m Commitment
	b, err := b64.DecodeString(s)
	if err != nil || len(b) != CommitmentSize {
		return m, fmt.Errorf("seal: commitment %q: not %d bytes of base64url", s, CommitmentSize)
	}
	copy(m[:], b)
	return m, nil
}
