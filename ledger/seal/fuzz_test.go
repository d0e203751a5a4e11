package seal

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
	"unicode/utf8"
)

// The seed corpora are in testdata/fuzz/<FuzzName>/: valid entries, pointers and keys, and
// near misses. `go test` runs them; `go test -fuzz FuzzX -fuzztime 30s ./ledger/seal` explores.

// FuzzDecodeEnvelopeV2: no input panics; whatever decodes re-encodes to itself, and every
// sealed field's token is where its path says.
func FuzzDecodeEnvelopeV2(f *testing.F) {
	f.Fuzz(func(t *testing.T, entry []byte) {
		e, err := DecodeEnvelopeV2(entry)
		if err != nil {
			if e != nil {
				t.Fatal("non-nil envelope with an error")
			}
			return
		}
		again, err := NewEnvelopeV2(e.Canonical, e.Sealed, e.ReceivedAt, e.SourceVerified)
		if err != nil || !bytes.Equal(again, entry) {
			t.Fatalf("decoded entry does not re-encode to itself: %v", err)
		}
		if !IsV2(entry) {
			t.Fatal("decoded an entry IsV2 rejects")
		}
		for _, fl := range e.Sealed {
			p, err := ParsePointer(fl.Path)
			if err != nil {
				t.Fatal(err)
			}
			_, v, ok, err := p.locateString(e.Canonical)
			if err != nil || !ok || v != fl.Commitment.Token() {
				t.Fatalf("%s: token not in the record", fl.Path)
			}
		}
	})
}

// FuzzPointer: parsing and locating never panic, a located span lies inside the document and
// holds one JSON value, and a parsed pointer prints as its input.
func FuzzPointer(f *testing.F) {
	f.Fuzz(func(t *testing.T, ptr string, doc []byte) {
		p, err := ParsePointer(ptr)
		if err != nil {
			return
		}
		if p.String() != ptr || len(p.tokens) == 0 {
			t.Fatalf("pointer %q parsed as %q", ptr, p.String())
		}
		sp, found, err := p.locate(doc)
		if err != nil || !found {
			return
		}
		if sp.start < 0 || sp.end > len(doc) || sp.start >= sp.end {
			t.Fatalf("span %v outside a document of %d bytes", sp, len(doc))
		}
		_, v, ok, err := p.locateString(doc)
		if err == nil && ok && !utf8.ValidString(v) && utf8.Valid(doc) {
			t.Fatalf("string value %q is not UTF-8", v)
		}
	})
}

// FuzzParseMasterKey: no input panics; an accepted key is 32 bytes with at least 16 distinct
// values, and its hex form parses to the same key.
func FuzzParseMasterKey(f *testing.F) {
	f.Fuzz(func(t *testing.T, text []byte) {
		k, err := ParseMasterKey(text)
		if err != nil {
			return
		}
		var seen [256]bool
		n := 0
		for _, c := range k.key {
			if !seen[c] {
				seen[c] = true
				n++
			}
		}
		if n < minDistinctBytes {
			t.Fatalf("weak key accepted: %d distinct bytes", n)
		}
		k2, err := ParseMasterKey([]byte(hex.EncodeToString(k.key[:])))
		if err != nil || k2.key != k.key {
			t.Fatalf("hex round trip: %v", err)
		}
	})
}

// FuzzDecryptField: no ciphertext forged without the key decrypts, and none panics.
func FuzzDecryptField(f *testing.F) {
	var key Key
	for i := range key {
		key[i] = byte(i + 1)
	}
	f.Fuzz(func(t *testing.T, c, ad []byte) {
		_, _, err := decryptField(&key, ad, c)
		if !errors.Is(err, ErrIntegrity) {
			t.Fatalf("forged ciphertext: err = %v", err)
		}
	})
}
