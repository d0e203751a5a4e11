package ijson

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

// FuzzCanonicalize checks that Canonicalize never panics, is idempotent, produces JSON with the
// same meaning as its input (per encoding/json), gives the same bytes as a second, independent
// RFC 8785 implementation (jsontext.Value.Canonicalize from github.com/go-json-experiment/json),
// and that the pre-scan (Check) and Canonicalize agree on what is well-formed. The corpus in
// testdata/fuzz/FuzzCanonicalize holds the RFC 8785 examples, example records and malformed
// variants.
func FuzzCanonicalize(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := Canonicalize(data)
		checkErr := Check(data, "", 0, maxCanonicalDepth)
		if err != nil {
			// Check rejects everything Canonicalize rejects: same lexer, same duplicate rule,
			// same depth limit, and numbers beyond the double range are a FaultNumber.
			if checkErr == nil {
				t.Fatalf("Check accepted what Canonicalize rejects (%v): %q", err, data)
			}
			return
		}
		// Canonicalize accepts everything Check accepts, and more: numbers that lose precision.
		if checkErr != nil && checkErr.Fault != FaultNumber {
			t.Fatalf("Check rejects what Canonicalize accepts (%v): %q", checkErr, data)
		}
		again, err := Canonicalize(out)
		if err != nil || !bytes.Equal(out, again) {
			t.Fatalf("not idempotent (%v):\n%q\n%q", err, out, again)
		}
		if !json.Valid(out) {
			t.Fatalf("output is not JSON: %q", out)
		}
		// encoding/json is the oracle: it accepts a superset of what Canonicalize does (duplicate
		// names, invalid UTF-8 and deeper nesting), so whatever Canonicalize accepts, it must too.
		var a, b any
		if err := json.Unmarshal(data, &a); err != nil {
			t.Fatalf("Canonicalize accepted what encoding/json rejects (%v): %q", err, data)
		}
		if err := json.Unmarshal(out, &b); err != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("meaning changed (%v):\n%q\n%q", err, data, out)
		}
		// jsontext is the second opinion on the bytes. With its default options it rejects
		// what Canonicalize rejects for having no canonical form (invalid UTF-8, unpaired
		// surrogates, duplicate names after unescaping) and allows nesting to 10000, deeper than
		// maxCanonicalDepth, so on every input Canonicalize accepts it must succeed and agree.
		// The one place the two are not defined to agree is a number beyond the double range
		// (1e400): jsontext writes ±1.7976931348623157e+308, Canonicalize rejects it, so such
		// input never gets here.
		other := jsontext.Value(bytes.Clone(data))
		if err := other.Canonicalize(); err != nil {
			t.Fatalf("jsontext rejects what Canonicalize accepts (%v): %q", err, data)
		}
		if !bytes.Equal(out, other) {
			t.Fatalf("jsontext disagrees on %q:\nours     %q\njsontext %q", data, out, []byte(other))
		}
	})
}
