package seal

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/ijson"
)

// EnvelopeV2 is the version of a ledger entry with sealed fields.
const EnvelopeV2 = 2

// maxFieldJSON bounds one sealed field's JSON: its members' names and punctuation, a key id, a
// commitment, a pointer of up to 256 bytes (escaped, up to 6 bytes a byte), and the base64 of
// the largest ciphertext.
const maxFieldJSON = 64 + 22 + 43 + 6*maxPointerLen + (maxCiphertextSize*4+2)/3

// MaxEnvelopeV2Size bounds a v2 entry: a maximal record, the envelope's own members and the
// largest list of sealed fields.
const MaxEnvelopeV2Size = lineage.MaxRecordSize + 256 + MaxSealedFields*maxFieldJSON

// ErrNotCanonical is wrapped by DecodeEnvelopeV2 for an entry that is not byte for byte what
// NewEnvelopeV2 writes (see lineage.ErrNotCanonical, which it wraps too, so callers that test
// for the v1 error catch both).
var ErrNotCanonical = fmt.Errorf("v2 %w", lineage.ErrNotCanonical)

// Envelope is a decoded v2 ledger entry.
type Envelope struct {
	// V is EnvelopeV2.
	V int
	// Record is the decoded redacted record: each sealed field holds its token.
	Record *lineage.Record
	// Canonical is the redacted record's canonical bytes, sliced from the entry.
	Canonical []byte
	// Sealed lists the sealed fields, sorted by path.
	Sealed []Field
	// ReceivedAt is when ingest received the record, in UTC.
	ReceivedAt time.Time
	// SourceVerified says whether ingest verified a per-source signature on the record.
	SourceVerified bool
}

// NewEnvelopeV2 returns the v2 ledger entry, RFC 8785 canonical JSON with members in order:
//
//	{"received_at":"<RFC 3339>","record":<redacted record>,
//	 "sealed":[{"c":"<ciphertext>","k":"<key id>","m":"<commitment>","p":"<pointer>"},…],
//	 "source_verified":<bool>,"v":2}
//
// (on one line), binary values in unpadded base64url. redacted and fields are what Seal
// returned; fields must be sorted by path, as Seal returns them. Like lineage.NewEnvelope it
// copies, it does not check; unlike it, it can fail, on a path that is not valid UTF-8.
func NewEnvelopeV2(redacted []byte, fields []Field, receivedAt time.Time, sourceVerified bool) ([]byte, error) {
	n := len(redacted) + 128
	for _, f := range fields {
		n += 96 + len(f.Path) + b64.EncodedLen(len(f.Ciphertext))
	}
	b := make([]byte, 0, n)
	b = append(b, `{"received_at":"`...)
	b = receivedAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","record":`...)
	b = append(b, redacted...)
	b = append(b, `,"sealed":[`...)
	for i, f := range fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"c":"`...)
		b = b64.AppendEncode(b, f.Ciphertext)
		b = append(b, `","k":"`...)
		b = b64.AppendEncode(b, f.KeyID[:])
		b = append(b, `","m":"`...)
		b = b64.AppendEncode(b, f.Commitment[:])
		b = append(b, `","p":`...)
		var err error
		if b, err = ijson.AppendString(b, f.Path); err != nil {
			return nil, fmt.Errorf("seal: envelope: path: %w", err)
		}
		b = append(b, '}')
	}
	b = append(b, `],"source_verified":`...)
	b = strconv.AppendBool(b, sourceVerified)
	b = append(b, `,"v":`...)
	b = strconv.AppendInt(b, EnvelopeV2, 10)
	return append(b, '}'), nil
}

// v2Suffix ends every v2 entry: "v" is the last member in canonical order.
var v2Suffix = []byte(`,"v":2}`)

// IsV2 reports whether entry claims to be a v2 entry (ends with `,"v":2}`), for a decoder
// dispatching between lineage.DecodeEnvelope and DecodeEnvelopeV2. Both decoders are strict,
// so a wrong claim fails there.
func IsV2(entry []byte) bool { return bytes.HasSuffix(entry, v2Suffix) }

// DecodeEnvelopeV2 decodes and verifies one v2 entry, as strictly as lineage.DecodeEnvelope
// does v1: unknown or missing members are refused; the redacted record must pass
// lineage.DecodeRecord and be canonical; the sealed fields must be sorted by path without
// repeats, each pointer valid and naming, in the record, a string equal to the field's token;
// sizes must be exact (key id 16 bytes, commitment 32, ciphertext within bounds); and the
// entry must be exactly the bytes NewEnvelopeV2 writes (else the error wraps ErrNotCanonical).
// It checks no ciphertext: that needs the key (Open).
func DecodeEnvelopeV2(entry []byte) (*Envelope, error) {
	if len(entry) > MaxEnvelopeV2Size {
		return nil, fmt.Errorf("seal: envelope v2: %d bytes exceeds the limit of %d", len(entry), MaxEnvelopeV2Size)
	}
	e, err := parseEnvelopeV2(entry)
	if err != nil {
		return nil, fmt.Errorf("seal: envelope v2: %w", err)
	}
	if e.Record, err = lineage.DecodeRecord(e.Canonical); err != nil {
		return nil, fmt.Errorf("seal: envelope v2: record: %w", err)
	}
	canon, err := e.Record.Canonical()
	if err != nil {
		return nil, fmt.Errorf("seal: envelope v2: record: %w", err)
	}
	if !bytes.Equal(canon, e.Canonical) {
		return nil, fmt.Errorf("seal: envelope v2: record %q: %w", e.Record.ID, ErrNotCanonical)
	}
	for i, f := range e.Sealed {
		if i > 0 && f.Path <= e.Sealed[i-1].Path {
			return nil, fmt.Errorf("seal: envelope v2: record %q: sealed fields not sorted by path or repeated at %s: %w",
				e.Record.ID, f.Path, ErrNotCanonical)
		}
		ptr, err := ParsePointer(f.Path)
		if err != nil {
			return nil, fmt.Errorf("seal: envelope v2: record %q: %w", e.Record.ID, err)
		}
		sp, found, err := ptr.locate(e.Canonical)
		if err != nil {
			return nil, fmt.Errorf("seal: envelope v2: record %q: %w", e.Record.ID, err)
		}
		if !found || string(e.Canonical[sp.start:sp.end]) != `"`+f.Commitment.Token()+`"` {
			return nil, fmt.Errorf("seal: envelope v2: record %q: %s does not hold the field's sealed token", e.Record.ID, f.Path)
		}
	}
	again, err := NewEnvelopeV2(e.Canonical, e.Sealed, e.ReceivedAt, e.SourceVerified)
	if err != nil || !bytes.Equal(again, entry) {
		return nil, fmt.Errorf("seal: envelope v2: record %q: %w", e.Record.ID, ErrNotCanonical)
	}
	return e, nil
}

// object reads the members of the JSON object at the cursor, calling member for each name
// (which must be one of names, at most once, all present); member decodes the value.
func object(l *ijson.Lexer, names []string, member func(name string) error) error {
	if err := l.Expect('{', "'{'"); err != nil {
		return err
	}
	seen := make([]bool, len(names))
	for {
		if l.Next() != '"' {
			return l.Unexpected("a member name")
		}
		raw, escaped, err := l.ScanString()
		if err != nil {
			return err
		}
		if escaped {
			return fmt.Errorf("member name %q: %w", raw, ErrNotCanonical)
		}
		i := 0
		for i < len(names) && string(raw) != names[i] {
			i++
		}
		if i == len(names) {
			return fmt.Errorf("unknown member %q", ijson.Clip(raw))
		}
		if seen[i] {
			return fmt.Errorf("duplicate member %q", raw)
		}
		seen[i] = true
		if err := l.Expect(':', "':'"); err != nil {
			return err
		}
		l.Next()
		if err := member(names[i]); err != nil {
			return fmt.Errorf("%s: %w", names[i], err)
		}
		switch l.Next() {
		case ',':
			l.Pos++
			continue
		case '}':
			l.Pos++
		default:
			return l.Unexpected("',' or '}'")
		}
		break
	}
	for i, ok := range seen {
		if !ok {
			return fmt.Errorf("missing member %q", names[i])
		}
	}
	return nil
}

var envelopeNames = []string{"received_at", "record", "sealed", "source_verified", "v"}
var fieldNames = []string{"c", "k", "m", "p"}

func parseEnvelopeV2(entry []byte) (*Envelope, error) {
	l := ijson.Lexer{Data: entry}
	e := new(Envelope)
	err := object(&l, envelopeNames, func(name string) error {
		switch name {
		case "received_at":
			raw, err := unescapedString(&l)
			if err != nil {
				return err
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
			s := ijson.Checker{Lexer: l, MaxDepth: lineage.MaxDepth}
			if err := s.Value(0); err != nil {
				return err
			}
			l.Pos = s.Pos
			e.Canonical = l.Data[start:l.Pos]
		case "sealed":
			return e.parseSealed(&l)
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
			if string(lit) != strconv.Itoa(EnvelopeV2) {
				return fmt.Errorf("unsupported envelope version %s", ijson.Clip(lit))
			}
			e.V = EnvelopeV2
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if l.More() {
		return nil, l.Errorf("unexpected data after the envelope")
	}
	return e, nil
}

// unescapedString scans a string NewEnvelopeV2 writes without escapes (times, base64url).
func unescapedString(l *ijson.Lexer) ([]byte, error) {
	raw, escaped, err := l.ScanString()
	if err != nil {
		return nil, err
	}
	if escaped {
		return nil, ErrNotCanonical
	}
	return raw, nil
}

// parseSealed reads the sealed array.
func (e *Envelope) parseSealed(l *ijson.Lexer) error {
	if err := l.Expect('[', "'['"); err != nil {
		return err
	}
	e.Sealed = []Field{}
	if l.Next() == ']' {
		l.Pos++
		return nil
	}
	for {
		if len(e.Sealed) == MaxSealedFields {
			return fmt.Errorf("more than %d sealed fields", MaxSealedFields)
		}
		var f Field
		err := object(l, fieldNames, func(name string) error {
			if name == "p" {
				if l.Next() != '"' {
					return l.Unexpected("a string")
				}
				raw, _, err := l.ScanString()
				if err != nil {
					return err
				}
				if len(raw) > 6*maxPointerLen {
					return errors.New("pointer too long")
				}
				f.Path = string(ijson.Unescape(nil, raw))
				return nil
			}
			raw, err := unescapedString(l)
			if err != nil {
				return err
			}
			switch name {
			case "c":
				if len(raw) > b64.EncodedLen(maxCiphertextSize) || len(raw) < b64.EncodedLen(minCiphertextSize) {
					return fmt.Errorf("ciphertext of %d base64 characters, want %d to %d", len(raw),
						b64.EncodedLen(minCiphertextSize), b64.EncodedLen(maxCiphertextSize))
				}
				c, err := b64.AppendDecode(nil, raw)
				if err != nil {
					return fmt.Errorf("ciphertext: %w", err)
				}
				if !validCiphertextSize(len(c)) {
					return fmt.Errorf("ciphertext of %d bytes is not a padded field", len(c))
				}
				f.Ciphertext = c
			case "k":
				return decodeFixed(f.KeyID[:], raw)
			case "m":
				return decodeFixed(f.Commitment[:], raw)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("[%d]: %w", len(e.Sealed), err)
		}
		e.Sealed = append(e.Sealed, f)
		switch l.Next() {
		case ',':
			l.Pos++
		case ']':
			l.Pos++
			return nil
		default:
			return l.Unexpected("',' or ']'")
		}
	}
}

// decodeFixed decodes base64url of exactly len(dst) bytes into dst.
func decodeFixed(dst, raw []byte) error {
	if len(raw) != b64.EncodedLen(len(dst)) {
		return fmt.Errorf("%d base64 characters, want %d", len(raw), b64.EncodedLen(len(dst)))
	}
	n, err := b64.Decode(dst, raw)
	if err != nil {
		return err
	}
	if n != len(dst) {
		return fmt.Errorf("%d bytes, want %d", n, len(dst))
	}
	return nil
}
