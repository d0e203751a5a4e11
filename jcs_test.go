package lineage

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/lineage-audit/lineage/internal/ijson"
	"github.com/lineage-audit/lineage/internal/ijson/ijsontest"
)

// The canonicalizer itself is tested in internal/ijson (jcs_test.go, fuzz_test.go); these tests
// cover the package's entry point to it and its use for the free-form members of a record.

// TestCanonicalizeErrorContext checks that Canonicalize's errors say where they come from and
// still carry the offset of the fault.
func TestCanonicalizeErrorContext(t *testing.T) {
	for _, in := range []string{``, `{"a":1,"a":2}`, `[1,]`, "\"\xff\"", `1e400`, `{} {}`} {
		out, err := Canonicalize([]byte(in))
		if err == nil {
			t.Errorf("Canonicalize(%q) = %s, want an error", in, out)
			continue
		}
		var se *ijson.SyntaxError
		if !strings.HasPrefix(err.Error(), "lineage: canonicalize: offset ") || !errors.As(err, &se) {
			t.Errorf("Canonicalize(%q): error %q lacks context", in, err)
		}
	}
	out, err := Canonicalize([]byte(` {"b":[1.0, "\u0041"], "a":true} `))
	if err != nil || string(out) != `{"a":true,"b":[1,"A"]}` {
		t.Errorf("Canonicalize = %s (%v)", out, err)
	}
}

// TestDecodeRecordFreeFormProperties embeds random JSON objects, with random whitespace, order,
// escapes and number spellings, in the free-form members of a valid record. Byte-level fuzzing
// rarely produces a valid record; this drives the canonical-form invariants through the decoder.
func TestDecodeRecordFreeFormProperties(t *testing.T) {
	g := ijsontest.Gen{R: rand.New(rand.NewPCG(3, 4))}
	accepted := 0
	for i := 0; i < 2000; i++ {
		obj := g.Value(0)
		if !strings.HasPrefix(obj, "{") {
			continue
		}
		in := with(`"policy_context":` + obj + `,"identity_object":` + g.Value(4))
		r, err := DecodeRecord([]byte(in))
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("%v is not a *DecodeError", err)
			}
			continue
		}
		accepted++
		assertStable(t, r)
		want, err := Canonicalize([]byte(obj))
		if err != nil || !bytes.Equal(r.PolicyContext, want) {
			t.Fatalf("policy_context not stored canonically (%v):\n%s\n%s", err, r.PolicyContext, want)
		}
	}
	if accepted < 100 {
		t.Errorf("only %d of the generated records were accepted", accepted)
	}
}
