package seal

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/ijson"
)

// Path is one personal field of a tenant's records: the JSON pointer of the value to seal, and
// the JSON pointer of the identifier of the person it belongs to (the subject), whose key
// encrypts it. An empty Subject means the value is itself the subject's identifier, as for
// /user/id.
type Path struct {
	Pointer string
	Subject string
}

// DefaultPaths are sealed for every erasure-enabled tenant: the user and the human reviewer.
var DefaultPaths = []Path{
	{Pointer: "/human_oversight/reviewer/id"},
	{Pointer: "/user/id"},
}

// MaxSealedFields bounds the fields one entry seals.
const MaxSealedFields = 32

// unsealable are the members that identify and order records; sealing them would break
// idempotency, lineage and the index, so a configuration naming them (or anything below them)
// is refused.
var unsealable = []string{"/schema", "/id", "/tenant", "/time", "/parent_id"}

// Paths is a validated set of personal fields, sorted by pointer.
type Paths struct {
	fields []pathSpec
}

type pathSpec struct {
	ptr     Pointer
	subject Pointer // zero when the field is its own subject
}

// NewPaths validates DefaultPaths plus the tenant's configured paths: each pointer parses,
// none is repeated, none names (or lies below) an identifying member (/schema, /id, /tenant,
// /time, /parent_id), each subject pointer parses, and there are at most MaxSealedFields.
func NewPaths(configured ...Path) (*Paths, error) {
	all := append(slices.Clone(DefaultPaths), configured...)
	if len(all) > MaxSealedFields {
		return nil, fmt.Errorf("seal: %d sealed paths, the limit is %d", len(all), MaxSealedFields)
	}
	ps := &Paths{}
	seen := map[string]bool{}
	for _, p := range all {
		ptr, err := ParsePointer(p.Pointer)
		if err != nil {
			return nil, fmt.Errorf("seal: path: %w", err)
		}
		for _, u := range unsealable {
			if p.Pointer == u || strings.HasPrefix(p.Pointer, u+"/") {
				return nil, fmt.Errorf("seal: path %s: %s identifies the record and cannot be sealed", p.Pointer, u)
			}
		}
		if seen[p.Pointer] {
			return nil, fmt.Errorf("seal: path %s: configured twice", p.Pointer)
		}
		seen[p.Pointer] = true
		spec := pathSpec{ptr: ptr}
		if p.Subject != "" && p.Subject != p.Pointer {
			if spec.subject, err = ParsePointer(p.Subject); err != nil {
				return nil, fmt.Errorf("seal: path %s: subject: %w", p.Pointer, err)
			}
		}
		ps.fields = append(ps.fields, spec)
	}
	slices.SortFunc(ps.fields, func(a, b pathSpec) int { return strings.Compare(a.ptr.raw, b.ptr.raw) })
	return ps, nil
}

// Field is one sealed field as the entry carries it.
type Field struct {
	// Path is the field's JSON pointer in the record.
	Path string
	// KeyID names the subject key that encrypts it.
	KeyID KeyID
	// Commitment is m; the redacted record holds m.Token() at Path.
	Commitment Commitment
	// Ciphertext is AEAD nonce ‖ key-commitment tag ‖ XChaCha20-Poly1305(opening nonce ‖
	// value length ‖ value ‖ padding).
	Ciphertext []byte
}

// State says what Open could do with a sealed field.
type State int

const (
	// Clear: decrypted, checked against its commitment, and put back in the record.
	Clear State = iota + 1
	// Erased: the key was erased; the record keeps the sealed token.
	Erased
)

func (s State) String() string {
	switch s {
	case Clear:
		return "clear"
	case Erased:
		return "erased"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// FieldStatus is Open's verdict on one field, in the order of the fields given.
type FieldStatus struct {
	Path       string
	KeyID      KeyID
	Commitment Commitment
	State      State
}

// Seal replaces each personal field of the canonical record with its sealed token and returns
// the redacted canonical record and the sealed fields, sorted by path. A configured field the
// record does not have is skipped; one that is not a string fails, as does a subject pointer
// that names no string. The redacted record must still decode as a valid record (a path whose
// value the schema constrains, such as an enumeration, cannot be sealed): Seal checks it, so
// that NewEnvelopeV2 never writes an entry DecodeEnvelopeV2 refuses.
func Seal(ctx context.Context, store KeyStore, tenant, recordID string, canonical []byte, paths *Paths) ([]byte, []Field, error) {
	if paths == nil {
		return nil, nil, errors.New("seal: no paths")
	}
	type hit struct {
		sp    span
		field Field
	}
	hits := make([]hit, 0, len(paths.fields))
	keys := map[string]struct {
		kid KeyID
		key *Key
	}{}
	for _, ps := range paths.fields {
		sp, value, found, err := ps.ptr.locateString(canonical)
		if err != nil {
			return nil, nil, fmt.Errorf("seal: record %q: %w", recordID, err)
		}
		if !found {
			continue
		}
		if len(value) > MaxValueSize {
			return nil, nil, fmt.Errorf("seal: record %q: %s: value of %d bytes exceeds %d", recordID, ps.ptr.raw, len(value), MaxValueSize)
		}
		subject := value
		if ps.subject.raw != "" {
			_, sv, ok, err := ps.subject.locateString(canonical)
			if err != nil {
				return nil, nil, fmt.Errorf("seal: record %q: %s: subject: %w", recordID, ps.ptr.raw, err)
			}
			if !ok {
				return nil, nil, fmt.Errorf("seal: record %q: %s: subject %s is absent", recordID, ps.ptr.raw, ps.subject.raw)
			}
			subject = sv
		}
		k, ok := keys[subject]
		if !ok {
			kid, key, err := store.KeyFor(ctx, tenant, subject)
			if err != nil {
				return nil, nil, fmt.Errorf("seal: record %q: %s: %w: %w", recordID, ps.ptr.raw, ErrKeyStore, err)
			}
			k.kid, k.key = kid, key
			keys[subject] = k
		}
		var nonce [OpeningNonceSize]byte
		if _, err := rand.Read(nonce[:]); err != nil {
			return nil, nil, fmt.Errorf("seal: opening nonce: %w", err)
		}
		m := commit(tenant, ps.ptr.raw, &nonce, value)
		c, err := encryptField(k.key, fieldAD(tenant, recordID, ps.ptr.raw, k.kid, m), &nonce, value)
		clear(nonce[:])
		if err != nil {
			return nil, nil, fmt.Errorf("seal: record %q: %s: %w", recordID, ps.ptr.raw, err)
		}
		hits = append(hits, hit{sp, Field{Path: ps.ptr.raw, KeyID: k.kid, Commitment: m, Ciphertext: c}})
	}
	for _, k := range keys {
		clear(k.key[:])
	}
	// Splice the tokens in, in document order.
	byPos := slices.Clone(hits)
	slices.SortFunc(byPos, func(a, b hit) int { return a.sp.start - b.sp.start })
	out := make([]byte, 0, len(canonical)+len(hits)*64)
	at := 0
	for i, h := range byPos {
		if i > 0 && h.sp.start < byPos[i-1].sp.end {
			return nil, nil, fmt.Errorf("seal: record %q: sealed fields overlap", recordID)
		}
		out = append(out, canonical[at:h.sp.start]...)
		out = append(out, '"')
		out = append(out, h.field.Commitment.Token()...)
		out = append(out, '"')
		at = h.sp.end
	}
	out = append(out, canonical[at:]...)
	if _, err := lineage.DecodeRecord(out); err != nil {
		return nil, nil, fmt.Errorf("seal: record %q: the redacted record is not a valid record (is a sealed path constrained by the schema?): %w", recordID, err)
	}
	fields := make([]Field, len(hits))
	for i, h := range hits {
		fields[i] = h.field
	}
	return out, fields, nil
}

// Open restores the clear record from a redacted record and its sealed fields: each field
// whose key exists is decrypted, checked against its commitment and put back; a field whose
// key was erased keeps its token and is reported Erased. When every field is clear the result
// is byte for byte the canonical record Seal was given. A key missing from the store without a
// tombstone fails the whole call with an error wrapping ErrKeyMissing (never shown as erased);
// a field that fails a cryptographic check fails it with ErrIntegrity.
func Open(ctx context.Context, store KeyStore, tenant, recordID string, redacted []byte, fields []Field) ([]byte, []Opening, []FieldStatus, error) {
	type hit struct {
		sp  span
		val []byte // canonical JSON string of the clear value, or nil when erased
	}
	hits := make([]hit, 0, len(fields))
	var openings []Opening
	status := make([]FieldStatus, len(fields))
	keys := map[KeyID]*Key{}
	defer func() {
		for _, k := range keys {
			if k != nil {
				clear(k[:])
			}
		}
	}()
	for i, f := range fields {
		ptr, err := ParsePointer(f.Path)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("seal: open record %q: %w", recordID, err)
		}
		sp, found, err := ptr.locate(redacted)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("seal: open record %q: %w", recordID, err)
		}
		token := f.Commitment.Token()
		if !found || string(redacted[sp.start:sp.end]) != `"`+token+`"` {
			return nil, nil, nil, fmt.Errorf("seal: open record %q: %s does not hold its sealed token: %w", recordID, f.Path, ErrIntegrity)
		}
		status[i] = FieldStatus{Path: f.Path, KeyID: f.KeyID, Commitment: f.Commitment}
		key, ok := keys[f.KeyID]
		if !ok {
			key, err = store.Open(ctx, tenant, f.KeyID)
			switch {
			case errors.Is(err, ErrErased):
				key = nil
			case err != nil:
				return nil, nil, nil, fmt.Errorf("seal: open record %q: %s: %w", recordID, f.Path, err)
			}
			keys[f.KeyID] = key
		}
		if key == nil {
			status[i].State = Erased
			continue
		}
		nonce, value, err := decryptField(key, fieldAD(tenant, recordID, f.Path, f.KeyID, f.Commitment), f.Ciphertext)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("seal: open record %q: %s: %w", recordID, f.Path, err)
		}
		o := Opening{Path: f.Path, Value: value, Nonce: nonce}
		if err := VerifyOpening(tenant, f.Commitment, o); err != nil {
			return nil, nil, nil, fmt.Errorf("seal: open record %q: %w: %w", recordID, err, ErrIntegrity)
		}
		enc, err := ijson.AppendString(nil, value)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("seal: open record %q: %s: %w", recordID, f.Path, ErrIntegrity)
		}
		status[i].State = Clear
		openings = append(openings, o)
		hits = append(hits, hit{sp, enc})
	}
	slices.SortFunc(hits, func(a, b hit) int { return a.sp.start - b.sp.start })
	out := make([]byte, 0, len(redacted)+len(hits)*32)
	at := 0
	for i, h := range hits {
		if i > 0 && h.sp.start < hits[i-1].sp.end {
			return nil, nil, nil, fmt.Errorf("seal: open record %q: sealed fields overlap: %w", recordID, ErrIntegrity)
		}
		out = append(out, redacted[at:h.sp.start]...)
		out = append(out, h.val...)
		at = h.sp.end
	}
	out = append(out, redacted[at:]...)
	return out, openings, status, nil
}

// ErasedPrefix starts the placeholder that replaces an erased subject's clear value in the
// findings (internal/service/erasure.go): "erased:" followed by the key id.
const ErasedPrefix = "erased:"

// IsErasedPlaceholder reports whether s has the form "erased:<key id>".
func IsErasedPlaceholder(s string) bool {
	if !strings.HasPrefix(s, ErasedPrefix) {
		return false
	}
	b, err := b64.DecodeString(s[len(ErasedPrefix):])
	return err == nil && len(b) == KeyIDSize
}

// IsSealedToken reports whether s has the form of a sealed token. A record may contain such a
// string in a field that was not sealed: only the entry's list of sealed fields says which are.
func IsSealedToken(s string) bool {
	if !strings.HasPrefix(s, SealedPrefix) {
		return false
	}
	b, err := b64.DecodeString(s[len(SealedPrefix):])
	return err == nil && len(b) == CommitmentSize
}
