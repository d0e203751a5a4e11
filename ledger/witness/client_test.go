package witness

import (
	"bytes"
	"crypto/rand"
	"strings"
	"sync"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

func TestParseTreeSize(t *testing.T) {
	good := map[string]uint64{"0\n": 0, "1\n": 1, "42\n": 42, "18446744073709551615\n": 1<<64 - 1}
	for in, want := range good {
		got, err := ParseTreeSize([]byte(in))
		if err != nil || got != want {
			t.Errorf("ParseTreeSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "\n", "1", "01\n", "+1\n", "-1\n", "1 \n", " 1\n", "1\n\n", "18446744073709551616\n", "0x1\n", "1\r\n"} {
		if n, err := ParseTreeSize([]byte(in)); err == nil {
			t.Errorf("ParseTreeSize(%q) = %d, want an error", in, n)
		}
	}
}

// cosigner is a cosignature/v1 key pair made for the tests, with the verifier key string.
func cosigner(t testing.TB, name string) (note.Signer, note.Verifier, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	cvkey, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := fnote.NewVerifierForCosignatureV1(cvkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v, cvkey
}

// sigLines returns the signature lines note.Sign adds to text with s.
func sigLines(t testing.TB, text string, s note.Signer) []byte {
	t.Helper()
	b, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		t.Fatal(err)
	}
	return b[len(text)+1:]
}

func TestVerifyCosignatures(t *testing.T) {
	logS, _ := cosignerPlain(t, "log.test/a")
	text := "log.test/a\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
	signed, err := note.Sign(&note.Note{Text: text}, logS)
	if err != nil {
		t.Fatal(err)
	}
	ws, wv, _ := cosigner(t, "witness.test/w1")
	other, _, _ := cosigner(t, "witness.test/w2")
	good := sigLines(t, text, ws)
	foreign := sigLines(t, text, other)
	wrongText := sigLines(t, "log.test/a\n6\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", ws)

	cs, err := VerifyCosignatures(signed, good, wv)
	if err != nil || !bytes.Equal(cs.Lines, good) || cs.Ignored != 0 || cs.Time.IsZero() {
		t.Fatalf("good answer: %+v, %v", cs, err)
	}
	// Lines of another key are dropped and counted; the witness's line is kept.
	cs, err = VerifyCosignatures(signed, append(append([]byte{}, foreign...), good...), wv)
	if err != nil || !bytes.Equal(cs.Lines, good) || cs.Ignored != 1 {
		t.Fatalf("foreign+good: %+v, %v", cs, err)
	}
	// The witness's key over another checkpoint: no line verifies.
	if _, err := VerifyCosignatures(signed, wrongText, wv); err == nil {
		t.Fatal("a cosignature over another checkpoint was accepted")
	}
	if _, err := VerifyCosignatures(signed, foreign, wv); err == nil {
		t.Fatal("an answer with only another key's cosignature was accepted")
	}
	for _, bad := range []string{"", "\n", string(good[:len(good)-1]), "hello\n", "— name\n", "— name !!!\n", "— a+b AAAAAAAA\n", string(good) + "x\n"} {
		if _, err := VerifyCosignatures(signed, []byte(bad), wv); err == nil {
			t.Errorf("answer %q was accepted", bad)
		}
	}
}

// cosignerPlain is an ordinary Ed25519 note key pair (the log's kind).
func cosignerPlain(t testing.TB, name string) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func TestRequestBody(t *testing.T) {
	got := RequestBody(3, [][]byte{bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)}, []byte("o\n4\nh\n\n— o sig\n"))
	want := "old 3\nAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\nAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\n\no\n4\nh\n\n— o sig\n"
	if string(got) != want {
		t.Fatalf("body:\n%q\nwant\n%q", got, want)
	}
	if got := RequestBody(0, nil, []byte("n\n")); string(got) != "old 0\n\nn\n" {
		t.Fatalf("body from 0: %q", got)
	}
}

func TestParsePolicy(t *testing.T) {
	_, _, k1 := cosigner(t, "w1.test")
	_, _, k2 := cosigner(t, "w2.test")
	_, _, k3 := cosigner(t, "w3.test")
	_, _, k4 := cosigner(t, "w4.test")
	vk := func(k string) string { return k }
	v1, v2, v3 := k1, k2, k3
	pol := "# comment\nlog x.test/log AAAA\n" +
		"witness a " + vk(v1) + " http://127.0.0.1:1\n" +
		"witness b " + vk(v2) + " https://w2.example/base/\n" +
		"witness c " + vk(v3) + " http://127.0.0.1:3\n" +
		"witness unused " + k4 + " http://127.0.0.1:4\n" +
		"group g 2 a b c\nquorum g\n"
	p, err := ParsePolicy([]byte(pol))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, w := range p.Witnesses {
		names = append(names, w.Name+"="+w.URL)
	}
	if got, want := strings.Join(names, " "), "a=http://127.0.0.1:1/add-checkpoint b=https://w2.example/base/add-checkpoint c=http://127.0.0.1:3/add-checkpoint"; got != want {
		t.Fatalf("witnesses %q, want %q", got, want)
	}
	if p.Quorum.N != 2 {
		t.Fatalf("threshold %d", p.Quorum.N)
	}
	bad := map[string]string{
		"no quorum":      "witness a " + vk(v1) + " http://127.0.0.1:1\n",
		"quorum none":    "witness a " + vk(v1) + " http://127.0.0.1:1\nquorum none\n",
		"zero threshold": "witness a " + vk(v1) + " http://127.0.0.1:1\ngroup g 0 a\nquorum g\n",
		"ftp URL":        "witness a " + vk(v1) + " ftp://127.0.0.1:1\nquorum a\n",
		"no host":        "witness a " + vk(v1) + " http:///x\nquorum a\n",
		"credentials":    "witness a " + vk(v1) + " http://u:p@127.0.0.1:1\nquorum a\n",
		"same URL":       "witness a " + vk(v1) + " http://127.0.0.1:1\nwitness b " + vk(v2) + " http://127.0.0.1:1\ngroup g all a b\nquorum g\n",
		"same key":       "witness a " + vk(v1) + " http://127.0.0.1:1\nwitness b " + vk(v1) + " http://127.0.0.1:2\ngroup g all a b\nquorum g\n",
		"bad key":        "witness a AAAA http://127.0.0.1:1\nquorum a\n",
		"unknown word":   "witness a " + vk(v1) + " http://127.0.0.1:1\nfoo bar\nquorum a\n",
		"control char":   "witness a " + vk(v1) + " http://127.0.0.1:1\x00\nquorum a\n",
		"too large":      strings.Repeat("#", MaxPolicySize+1),
	}
	for name, pol := range bad {
		if _, err := ParsePolicy([]byte(pol)); err == nil {
			t.Errorf("%s: policy accepted", name)
		}
	}
}

var fuzzVerifier struct {
	once sync.Once
	v    note.Verifier
}

// cosignerOnce is one witness verifier shared by a fuzz run.
func cosignerOnce(t testing.TB) (note.Signer, note.Verifier, string) {
	fuzzVerifier.once.Do(func() { _, fuzzVerifier.v, _ = cosigner(t, "fuzz.test/w") })
	return nil, fuzzVerifier.v, ""
}
