package ijson

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/lineage-audit/lineage/internal/ijson/ijsontest"
)

func TestCanonicalizeRFC8785Examples(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{
			// RFC 8785 §3.2.2: values, numbers and string escaping.
			name: "rfc8785 section 3.2.2",
			in: `{
  "numbers": [333333333.33333329, 1E30, 4.50,
              2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`,
			want: `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],` +
				`"string":"€$\u000f\nA'B\"\\\\\"/"}`,
		},
		{
			// RFC 8785 §3.2.3: member names sorted by UTF-16 code units; U+1F600 (a surrogate
			// pair) sorts before U+FB33 although its code point is larger.
			name: "rfc8785 section 3.2.3",
			in: `{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}`,
			want: "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\"," +
				"\"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\"," +
				"\"😀\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}",
		},
		{
			name: "nested structures",
			in:   `{"1": {"f": {"f": "hi","F": 5} ,"\n": 56.0}, "10": { }, "": "empty", "a": { }, "111": [ { } ], "A": { }}`,
			want: `{"":"empty","1":{"\n":56,"f":{"F":5,"f":"hi"}},"10":{},"111":[{}],"A":{},"a":{}}`,
		},
		{
			name: "html and line separators stay literal",
			in:   `{"</script>": "\u2028\u2029\u007f", "a": "<&>"}`,
			want: "{\"</script>\":\"\u2028\u2029\u007f\",\"a\":\"<&>\"}",
		},
		{
			name: "every control character",
			in:   `"\u0000\u0001\u0007\b\t\n\u000b\f\r\u000e\u001f\u0020"`,
			want: `"\u0000\u0001\u0007\b\t\n\u000b\f\r\u000e\u001f "`,
		},
		{
			name: "supplementary characters and escapes",
			in:   `["\uD834\uDD1E", "𝄞", "\/", "\u00E9", "é"]`,
			want: `["𝄞","𝄞","/","é","é"]`,
		},
		{
			name: "UTF-16 order of BMP private use and supplementary",
			in:   `{"\ue000": 1, "\ud800\udc00": 2, "\ud7ff": 3}`,
			want: "{\"\ud7ff\":3,\"\U00010000\":2,\"\ue000\":1}",
		},
		{
			name: "scalars at top level",
			in:   ` 1.0 `,
			want: `1`,
		},
		{name: "true", in: `true`, want: `true`},
		{name: "empty string", in: `""`, want: `""`},
		{name: "prefix keys", in: `{"ab":1,"a":2,"":3}`, want: `{"":3,"a":2,"ab":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonicalize([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestNumberSerializationRFC8785AppendixB checks every sample of RFC 8785 Appendix B: the IEEE 754
// bit pattern and the expected ECMAScript rendering.
func TestNumberSerializationRFC8785AppendixB(t *testing.T) {
	tests := []struct {
		bits uint64
		want string // "" means an error (NaN, Infinity)
	}{
		{0x0000000000000000, "0"},
		{0x8000000000000000, "0"},
		{0x0000000000000001, "5e-324"},
		{0x8000000000000001, "-5e-324"},
		{0x7fefffffffffffff, "1.7976931348623157e+308"},
		{0xffefffffffffffff, "-1.7976931348623157e+308"},
		{0x4340000000000000, "9007199254740992"},
		{0xc340000000000000, "-9007199254740992"},
		{0x4430000000000000, "295147905179352830000"},
		{0x7fffffffffffffff, ""},
		{0x7ff0000000000000, ""},
		{0x44b52d02c7e14af5, "9.999999999999997e+22"},
		{0x44b52d02c7e14af6, "1e+23"},
		{0x44b52d02c7e14af7, "1.0000000000000001e+23"},
		{0x444b1ae4d6e2ef4e, "999999999999999700000"},
		{0x444b1ae4d6e2ef4f, "999999999999999900000"},
		{0x444b1ae4d6e2ef50, "1e+21"},
		{0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
		{0x3eb0c6f7a0b5ed8d, "0.000001"},
		{0x41b3de4355555553, "333333333.3333332"},
		{0x41b3de4355555554, "333333333.33333325"},
		{0x41b3de4355555555, "333333333.3333333"},
		{0x41b3de4355555556, "333333333.3333334"},
		{0x41b3de4355555557, "333333333.33333343"},
		{0xbecbf647612f3696, "-0.0000033333333333333333"},
		{0x43143ff3c1cb0959, "1424953923781206.2"},
	}
	for _, tt := range tests {
		f := math.Float64frombits(tt.bits)
		got, err := appendNumber(nil, f)
		if tt.want == "" {
			if err == nil {
				t.Errorf("%016x: got %s, want an error", tt.bits, got)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("%016x: got %s (%v), want %s", tt.bits, got, err, tt.want)
			continue
		}
		// The same through Canonicalize, from Go's own (different) spelling of the number, and
		// from the canonical spelling itself.
		for _, lit := range []string{strconv.FormatFloat(f, 'g', -1, 64), strconv.FormatFloat(f, 'E', 20, 64), tt.want} {
			out, err := Canonicalize([]byte(lit))
			if err != nil || string(out) != tt.want {
				t.Errorf("Canonicalize(%s) = %s (%v), want %s", lit, out, err, tt.want)
			}
		}
	}
}

func TestCanonicalizeNumbers(t *testing.T) {
	tests := []struct{ in, want string }{
		{"1.0", "1"}, {"-1.0", "-1"}, {"1e21", "1e+21"}, {"1e20", "100000000000000000000"},
		{"1e-7", "1e-7"}, {"0.000001", "0.000001"}, {"1E-6", "0.000001"}, {"-0", "0"}, {"-0.0e-5", "0"},
		{"0.1", "0.1"}, {"100", "100"}, {"123e-2", "1.23"}, {"1.5e300", "1.5e+300"},
		{"12345678901234567890", "12345678901234567000"}, {"1e-400", "0"}, {"4.9e-324", "5e-324"},
		{"0.30000000000000004", "0.30000000000000004"}, {"123456789012345680000", "123456789012345680000"},
	}
	for _, tt := range tests {
		got, err := Canonicalize([]byte(tt.in))
		if err != nil || string(got) != tt.want {
			t.Errorf("Canonicalize(%s) = %s (%v), want %s", tt.in, got, err, tt.want)
		}
	}
}

func TestCanonicalizeRejects(t *testing.T) {
	for _, in := range []string{
		``, ` `, `{`, `}`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `{"a":1}}`, `{} {}`, `[] x`,
		`01`, `1.`, `.5`, `+1`, `1e`, `1e+`, `-`, `NaN`, `Infinity`, `1e400`, `-1e400`,
		`tru`, `nul`, `"abc`, `"\x"`, `"\u12"`, `"\u12G4"`, "\"\x01\"", "\"\xff\"", "\"\xc3\"",
		`"\ud800"`, `"\udc00"`, `"\ud800\u0041"`, `"\ud800x"`, `{"a":1,"a":2}`, `{"a":1,"\u0061":2}`,
		`[{"b":{"c":1,"c":1}}]`, strings.Repeat("[", maxCanonicalDepth+1) + strings.Repeat("]", maxCanonicalDepth+1),
		"\xef\xbb\xbf{}", "0\x00", "{}\x00", "\x00", "[\x00]", // NUL is not end of input (found by FuzzCanonicalize)
	} {
		if out, err := Canonicalize([]byte(in)); err == nil {
			t.Errorf("Canonicalize(%q) = %s, want an error", in, out)
		} else if se := (*SyntaxError)(nil); !errors.As(err, &se) {
			t.Errorf("error %v is %T, not a *SyntaxError", err, err)
		}
	}
}

func TestCompareUTF16(t *testing.T) {
	ordered := []string{"", "\x00", "\r", "1", "A", "a", "ab", "\u0080", "ö", "\u20ac", "\ud7ff",
		"\U00010000", "\U0001F600", "\U0010FFFF", "\ue000", "\ufb33", "\uffff"}
	for i := range ordered {
		for j := range ordered {
			got := compareUTF16([]byte(ordered[i]), []byte(ordered[j]))
			if sign(got) != sign(i-j) {
				t.Errorf("compareUTF16(%q, %q) = %d, want sign %d", ordered[i], ordered[j], got, sign(i-j))
			}
		}
	}
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

// TestCanonicalizeProperties checks, on random documents: idempotence; that the output is valid
// JSON with the same meaning as the input (per encoding/json); and that re-rendering the same
// value with other whitespace, member order, escapes and number spellings gives the same bytes.
func TestCanonicalizeProperties(t *testing.T) {
	g := ijsontest.Gen{R: rand.New(rand.NewPCG(1, 2))}
	for i := 0; i < 3000; i++ {
		in := g.WS() + g.Value(0) + g.WS()
		out, err := Canonicalize([]byte(in))
		if err != nil {
			t.Fatalf("Canonicalize(%s): %v", in, err)
		}
		again, err := Canonicalize(out)
		if err != nil || !bytes.Equal(out, again) {
			t.Fatalf("not idempotent (%v):\n%s\n%s", err, out, again)
		}
		var a, b any
		if err := json.Unmarshal([]byte(in), &a); err != nil {
			t.Fatalf("encoding/json rejects %s: %v", in, err)
		}
		if err := json.Unmarshal(out, &b); err != nil {
			t.Fatalf("encoding/json rejects canonical %s: %v", out, err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("meaning changed:\n%s\n%s", in, out)
		}
		// encoding/json re-renders with sorted (by bytes) keys, different escapes and number
		// spellings; canonicalizing that must land on the same bytes.
		remarshaled, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if other, err := Canonicalize(remarshaled); err != nil || !bytes.Equal(out, other) {
			t.Fatalf("rendering changed the canonical form (%v):\n%s\n%s\n%s", err, in, out, other)
		}
	}
}

// TestCanonicalizeAgreesWithJSONText compares Canonicalize with a second, independent RFC 8785
// implementation, jsontext.Value.Canonicalize, on random documents and on the RFC 8785 Appendix B
// numbers; FuzzCanonicalize (fuzz_test.go) explains where the two are defined to agree.
func TestCanonicalizeAgreesWithJSONText(t *testing.T) {
	g := ijsontest.Gen{R: rand.New(rand.NewPCG(5, 6))}
	docs := []string{"333333333.33333329", "1E30", "4.50", "2e-3", "0.000000000000000000000000001",
		"-0.0", "1e21", "1e-7", "9007199254740993", "5e-324", "1.7976931348623157e308", "1e-400"}
	for i := 0; i < 3000; i++ {
		docs = append(docs, g.WS()+g.Value(0)+g.WS())
	}
	for _, in := range docs {
		out, err := Canonicalize([]byte(in))
		if err != nil {
			t.Fatalf("Canonicalize(%s): %v", in, err)
		}
		other := jsontext.Value(in)
		if err := other.Canonicalize(); err != nil || !bytes.Equal(out, other) {
			t.Fatalf("jsontext disagrees (%v) on %q:\nours     %q\njsontext %q", err, in, out, []byte(other))
		}
	}
}

func TestCanonicalizeDeepButAllowed(t *testing.T) {
	in := strings.Repeat(`{"a":[`, maxCanonicalDepth/2) + strings.Repeat(`]}`, maxCanonicalDepth/2)
	if _, err := Canonicalize([]byte(in)); err != nil {
		t.Fatal(err)
	}
}
