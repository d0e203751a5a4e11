package lineage

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

var decodeCodes = map[string]bool{
	CodeTooLarge: true, CodeTooDeep: true, CodeInvalidJSON: true, CodeDuplicateKey: true,
	CodeUnknownField: true, CodeWrongType: true, CodeMissingField: true, CodeInvalidValue: true, CodeControlCharacter: true,
}

// FuzzDecodeRecord checks that DecodeRecord never panics, fails only with a *DecodeError carrying
// a known code, and that everything it accepts is valid and survives the trip through the ledger:
// the canonical form is JCS, decodes to the same record, and makes a decodable envelope.
// The corpus in testdata/fuzz/FuzzDecodeRecord holds the example records and malformed variants.
// The canonicalizer has its own fuzzer, FuzzCanonicalize in internal/ijson/fuzz_test.go.
func FuzzDecodeRecord(f *testing.F) {
	for _, data := range loadRecords(f) {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRecord(data)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || !decodeCodes[de.Code] {
				t.Fatalf("DecodeRecord error %v (%T) is not a *DecodeError with a known code", err, err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("accepted record fails Validate: %v", err)
		}
		c1, err := r.Canonical()
		if err != nil {
			t.Fatalf("accepted record has no canonical form: %v", err)
		}
		r2, err := DecodeRecord(c1)
		if err != nil {
			t.Fatalf("canonical form rejected: %v\n%s", err, c1)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("record changed through its canonical form:\n%+v\n%+v", r, r2)
		}
		c2, err := r2.Canonical()
		if err != nil || !bytes.Equal(c1, c2) {
			t.Fatalf("canonical form not stable (%v):\n%s\n%s", err, c1, c2)
		}
		if c3, err := Canonicalize(c1); err != nil || !bytes.Equal(c1, c3) {
			t.Fatalf("Canonical is not JCS (%v):\n%s\n%s", err, c1, c3)
		}
		entry := NewEnvelope(c1, time.Unix(1772442847, 5), true)
		if e, err := DecodeEnvelope(entry); err != nil || !bytes.Equal(e.Canonical, c1) {
			t.Fatalf("envelope of an accepted record rejected: %v", err)
		}
	})
}
