package lineage

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/lineage-audit/lineage/internal/ijson"
)

// EnvelopeV1 is the envelope version NewEnvelope writes and DecodeEnvelope accepts.
const EnvelopeV1 = 1

// maxEnvelopeSize bounds a ledger entry: a maximal canonical record plus the envelope's own
// members, with room to spare.
const maxEnvelopeSize = MaxRecordSize + 256

// ErrNotCanonical is returned (wrapped) by DecodeEnvelope for an entry that is not byte for byte
// what NewEnvelope would have written. Lineage only ever appends canonical entries, so such an
// entry was not written by Lineage: an auditor should treat it as tampering, not as a parse error.
var ErrNotCanonical = errors.New("entry is not canonical")

// Envelope is a decoded ledger entry: a record plus what ingest knew when it sequenced it.
type Envelope struct {
	// V is the envelope version, EnvelopeV1.
	V int
	// Record is the decoded record.
	Record *Record
	// Canonical is the record's canonical bytes, sliced from the entry (not copied), so hashing
	// or re-verifying it costs nothing extra. It aliases the entry passed to DecodeEnvelope.
	Canonical []byte
	// ReceivedAt is when ingest received the record, in UTC. It is Lineage's clock, not the
	// publisher's: compare it with Record.Time to spot late or back-dated records.
	ReceivedAt time.Time
	// SourceVerified says whether ingest verified a per-source signature on the record.
	SourceVerified bool
}

// NewEnvelope returns the ledger entry for a canonical record: the RFC 8785 canonical JSON
//
//	{"received_at":"<RFC 3339, UTC, nanoseconds>","record":<record>,"source_verified":<bool>,"v":1}
//
// It is built by appending, with the members already in canonical order, because it runs once per
// record on the ingest hot path. canonicalRecord must be the output of Record.Canonical; it is
// copied, not checked. receivedAt must lie in years 0000–9999 (RFC 3339's range).
func NewEnvelope(canonicalRecord []byte, receivedAt time.Time, sourceVerified bool) []byte {
	b := make([]byte, 0, len(canonicalRecord)+96)
	b = append(b, `{"received_at":"`...)
	b = receivedAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","record":`...)
	b = append(b, canonicalRecord...)
	b = append(b, `,"source_verified":`...)
	b = strconv.AppendBool(b, sourceVerified)
	b = append(b, `,"v":`...)
	b = strconv.AppendInt(b, EnvelopeV1, 10)
	return append(b, '}')
}

// DecodeEnvelope decodes and verifies one ledger entry. It is strict because its input is
// evidence: members other than v, record, received_at and source_verified are rejected, the
// record must pass DecodeRecord, and the entry must be exactly the canonical bytes NewEnvelope
// writes for that record (otherwise the error wraps ErrNotCanonical), so that an entry has one
// and only one byte representation and its leaf hash identifies it.
func DecodeEnvelope(entry []byte) (*Envelope, error) {
	if len(entry) > maxEnvelopeSize {
		return nil, fmt.Errorf("lineage: envelope: %d bytes exceeds the limit of %d", len(entry), maxEnvelopeSize)
	}
	e, err := parseEnvelope(entry)
	if err != nil {
		return nil, fmt.Errorf("lineage: envelope: %w", err)
	}
	if e.Record, err = decodeLogged(e.Canonical); err != nil {
		return nil, fmt.Errorf("lineage: envelope: record: %w", err)
	}
	canon, err := e.Record.Canonical()
	if err != nil {
		return nil, fmt.Errorf("lineage: envelope: record: %w", err)
	}
	if !bytes.Equal(canon, e.Canonical) {
		return nil, fmt.Errorf("lineage: envelope: record %q: %w", e.Record.ID, ErrNotCanonical)
	}
	if !bytes.Equal(NewEnvelope(e.Canonical, e.ReceivedAt, e.SourceVerified), entry) {
		return nil, fmt.Errorf("lineage: envelope: record %q: %w", e.Record.ID, ErrNotCanonical)
	}
	return e, nil
}

// parseEnvelope reads the four members of an entry; DecodeEnvelope then checks that the bytes
// are canonical.
func parseEnvelope(entry []byte) (*Envelope, error) {
	l := ijson.Lexer{Data: entry}
	if err := l.Expect('{', "'{'"); err != nil {
		return nil, err
	}
	e := new(Envelope)
	var seen [4]bool // received_at, record, source_verified, v
	names := [4]string{"received_at", "record", "source_verified", "v"}
	for {
		if l.Next() != '"' {
			return nil, l.Unexpected("a member name")
		}
		raw, escaped, err := l.ScanString()
		if err != nil {
			return nil, err
		}
		if escaped { // NewEnvelope never escapes a member name
			return nil, fmt.Errorf("member name %q: %w", raw, ErrNotCanonical)
		}
		i := 0
		for i < len(names) && string(raw) != names[i] {
			i++
		}
		if i == len(names) {
			return nil, fmt.Errorf("unknown member %q", raw)
		}
		if seen[i] {
			return nil, fmt.Errorf("duplicate member %q", raw)
		}
		seen[i] = true
		if err := l.Expect(':', "':'"); err != nil {
			return nil, err
		}
		l.Next()
		if err := e.member(&l, names[i]); err != nil {
			return nil, fmt.Errorf("%s: %w", names[i], err)
		}
		switch l.Next() {
		case ',':
			l.Pos++
			continue
		case '}':
			l.Pos++
		default:
			return nil, l.Unexpected("',' or '}'")
		}
		break
	}
	if l.More() {
		return nil, l.Errorf("unexpected data after the envelope")
	}
	for i, ok := range seen {
		if !ok {
			return nil, fmt.Errorf("missing member %q", names[i])
		}
	}
	return e, nil
}

// member decodes the value of one envelope member at the cursor.
func (e *Envelope) member(l *ijson.Lexer, name string) error {
	switch name {
	case "received_at":
		raw, escaped, err := l.ScanString()
		if err != nil {
			return err
		}
		if escaped {
			return ErrNotCanonical
		}
		t, err := time.Parse(time.RFC3339Nano, string(raw))
		if err != nil {
			return err
		}
		e.ReceivedAt = t.UTC()
	case "record":
		if l.Next() != '{' {
			return l.Unexpected("an object")
		}
		start := l.Pos
		s := ijson.Checker{Lexer: *l, MaxDepth: MaxDepth}
		if err := s.Value(0); err != nil {
			return checkError(err)
		}
		l.Pos = s.Pos
		e.Canonical = l.Data[start:l.Pos]
	case "source_verified":
		start := l.Pos
		if err := l.Literal(); err != nil {
			return err
		}
		switch string(l.Data[start:l.Pos]) {
		case "true":
			e.SourceVerified = true
		case "false":
		default:
			return l.Errorf("want true or false")
		}
	case "v":
		lit, err := l.ScanNumber()
		if err != nil {
			return err
		}
		if string(lit) != strconv.Itoa(EnvelopeV1) {
			return fmt.Errorf("unsupported envelope version %s", ijson.Clip(lit))
		}
		e.V = EnvelopeV1
	}
	return nil
}
