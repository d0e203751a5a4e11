package seal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lineage-audit/lineage"
)

func TestEnvelopeV2RoundTrip(t *testing.T) {
	s, _, _ := testStore(t)
	_, reviewed := demoRecords(t)
	entry, env := sealEntry(t, s, reviewed, mustPaths(t, Path{Pointer: "/action/target", Subject: "/user/id"}))
	if env.V != EnvelopeV2 || !env.SourceVerified || !env.ReceivedAt.Equal(testTime) || len(env.Sealed) != 3 {
		t.Fatalf("decoded %+v", env)
	}
	if !IsV2(entry) {
		t.Fatal("IsV2 = false")
	}
	for _, want := range []string{`{"received_at":"2026-11-01T00:00:01.123456789Z","record":{`, `},"sealed":[{"c":"`, `","p":"/action/target"},{"c":"`, `}],"source_verified":true,"v":2}`} {
		if !bytes.Contains(entry, []byte(want)) {
			t.Errorf("entry lacks %s", want)
		}
	}
	// The entry is RFC 8785 canonical JSON.
	canon, err := lineage.Canonicalize(entry)
	if err != nil || !bytes.Equal(canon, entry) {
		t.Fatalf("entry is not canonical JSON: %v", err)
	}
	// v1 and v2 decoders refuse each other's entries.
	if _, err := lineage.DecodeEnvelope(entry); err == nil {
		t.Error("lineage.DecodeEnvelope accepted a v2 entry")
	}
	v1 := lineage.NewEnvelope(reviewed, testTime, false)
	if IsV2(v1) {
		t.Error("IsV2(v1 entry)")
	}
	if _, err := DecodeEnvelopeV2(v1); err == nil {
		t.Error("DecodeEnvelopeV2 accepted a v1 entry")
	}
	// An empty list of sealed fields is a valid v2 entry.
	empty, err := NewEnvelopeV2(reviewed, nil, testTime, false)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := DecodeEnvelopeV2(empty); err != nil || len(e.Sealed) != 0 {
		t.Fatalf("empty sealed list: %v", err)
	}
}

func TestEnvelopeV2Strict(t *testing.T) {
	s, _, _ := testStore(t)
	_, reviewed := demoRecords(t)
	entry, env := sealEntry(t, s, reviewed, mustPaths(t, Path{Pointer: "/action/target", Subject: "/user/id"}))
	e := string(entry)
	f0 := env.Sealed[0]
	c0 := f0.Ciphertext
	m0 := f0.Commitment.String()
	k0 := f0.KeyID.String()
	swapped := func() string {
		fs := []Field{env.Sealed[1], env.Sealed[0], env.Sealed[2]}
		b, _ := NewEnvelopeV2(env.Canonical, fs, testTime, true)
		return string(b)
	}()
	repeated := func() string {
		fs := []Field{env.Sealed[0], env.Sealed[0], env.Sealed[1], env.Sealed[2]}
		b, _ := NewEnvelopeV2(env.Canonical, fs, testTime, true)
		return string(b)
	}()
	dropped := func() string { // the field is listed, but the record no longer holds its token
		b, _ := NewEnvelopeV2(bytes.Replace(env.Canonical, []byte(f0.Commitment.Token()), []byte("x"), 1), env.Sealed, testTime, true)
		return string(b)
	}()
	cases := map[string]string{
		"whitespace":       strings.Replace(e, `,"v":2}`, `, "v":2}`, 1),
		"v3":               strings.Replace(e, `,"v":2}`, `,"v":3}`, 1),
		"extra member":     strings.Replace(e, `,"v":2}`, `,"v":2,"x":1}`, 1),
		"missing sealed":   strings.Replace(e, e[strings.Index(e, `,"sealed":`):strings.Index(e, `,"source_verified"`)], "", 1),
		"member order":     strings.Replace(e, `"source_verified":true,"v":2}`, `"v":2,"source_verified":true}`, 1),
		"padded base64":    strings.Replace(e, `"m":"`+m0+`"`, `"m":"`+m0+`="`, 1),
		"std alphabet":     strings.Replace(e, `"k":"`+k0+`"`, `"k":"+`+k0[1:]+`"`, 1),
		"short key id":     strings.Replace(e, `"k":"`+k0+`"`, `"k":"`+k0[:20]+`"`, 1),
		"escaped base64":   strings.Replace(e, `"k":"`+k0+`"`, `"k":"\u0041`+k0[1:]+`"`, 1),
		"short ciphertext": strings.Replace(e, b64.EncodeToString(c0), b64.EncodeToString(c0[:10]), 1),
		"field member order": strings.Replace(e, `{"c":"`+b64.EncodeToString(c0)+`","k":"`+k0+`"`,
			`{"k":"`+k0+`","c":"`+b64.EncodeToString(c0)+`"`, 1),
		"unsorted fields":  swapped,
		"repeated field":   repeated,
		"token missing":    dropped,
		"token of another": strings.Replace(e, `"m":"`+m0+`"`, `"m":"`+env.Sealed[1].Commitment.String()+`"`, 1),
		"bad pointer":      strings.Replace(e, `"p":"/action/target"`, `"p":"action/target"`, 1),
		"escaped pointer":  strings.Replace(e, `"p":"/action/target"`, `"p":"\/action/target"`, 1),
		"trailing data":    e + " ",
		"time not UTC":     strings.Replace(e, `"2026-11-01T00:00:01.123456789Z"`, `"2026-11-01T01:00:01.123456789+01:00"`, 1),
		"sealed not array": strings.Replace(e, `"sealed":[`, `"sealed":{`, 1),
		"record not canon": strings.Replace(e, `"record":{"action":{`, `"record":{ "action":{`, 1),
	}
	for name, c := range cases {
		if c == e {
			t.Errorf("%s: mutation did not apply", name)
			continue
		}
		if _, err := DecodeEnvelopeV2([]byte(c)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Non-canonical spellings are reported as such.
	if _, err := DecodeEnvelopeV2([]byte(cases["unsorted fields"])); !errors.Is(err, ErrNotCanonical) || !errors.Is(err, lineage.ErrNotCanonical) {
		t.Errorf("unsorted fields: %v", err)
	}
	if _, err := DecodeEnvelopeV2(bytes.Repeat([]byte{' '}, MaxEnvelopeV2Size+1)); err == nil {
		t.Error("oversized entry accepted")
	}
}

// TestFuzzSeedsDecode keeps the fuzz corpus useful: its valid-* entries decode, so the fuzzer
// starts from the success path.
func TestFuzzSeedsDecode(t *testing.T) {
	matches, err := filepath.Glob("testdata/fuzz/FuzzDecodeEnvelopeV2/valid-*")
	if err != nil || len(matches) != 3 {
		t.Fatalf("seeds %v, %v", matches, err)
	}
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitN(string(b), "\n", 3)
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeEnvelopeV2([]byte(s)); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
}
