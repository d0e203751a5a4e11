package witness

import (
	"bytes"
	"strconv"
	"testing"
	"unicode/utf8"
)

// The decoders of what witnesses and operators hand lineaged: a 409 size, a 200 answer of
// signature lines, a policy file. Seed corpora are in testdata/fuzz/.

func FuzzParseTreeSize(f *testing.F) {
	f.Add([]byte("0\n"))
	f.Add([]byte("1234\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ParseTreeSize(b)
		if err != nil {
			return
		}
		// Only the canonical decimal form is accepted: it must round-trip byte for byte.
		if want := strconv.FormatUint(n, 10) + "\n"; string(b) != want {
			t.Fatalf("ParseTreeSize(%q) = %d, whose form is %q", b, n, want)
		}
	})
}

func FuzzParseSignatureLines(f *testing.F) {
	f.Add([]byte("— w.test/1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"))
	f.Add([]byte("— a AAAAAAA=\n— b AAAAAAA=\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		lines, err := ParseSignatureLines(b)
		if err != nil {
			return
		}
		// Accepted lines are the whole answer, each one signature line, and valid UTF-8.
		if !bytes.Equal(bytes.Join(lines, nil), b) || !utf8.Valid(b) || len(lines) > MaxSignatureLines {
			t.Fatalf("lines %q do not make up %q", lines, b)
		}
		for _, l := range lines {
			if !bytes.HasPrefix(l, []byte(sigPrefix)) || bytes.Count(l, []byte("\n")) != 1 || l[len(l)-1] != '\n' {
				t.Fatalf("bad line %q accepted", l)
			}
		}
		// What VerifyCosignatures does with it must not panic either.
		_, v, _ := cosignerOnce(t)
		_, _ = VerifyCosignatures([]byte("o\n1\nAAAA\n\n— o AAAAAAA=\n"), b, v)
	})
}

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte("quorum none\n")) // the keyed seeds are in testdata/fuzz/FuzzParsePolicy
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePolicy(b)
		if err != nil {
			return
		}
		if p.Quorum.N <= 0 || len(p.Witnesses) == 0 || len(p.Witnesses) > MaxWitnesses {
			t.Fatalf("policy accepted with threshold %d and %d witnesses", p.Quorum.N, len(p.Witnesses))
		}
		seen := map[string]bool{}
		for _, w := range p.Witnesses {
			if w.Verifier == nil || seen[w.URL] {
				t.Fatalf("witness %+v accepted", w)
			}
			seen[w.URL] = true
		}
	})
}
