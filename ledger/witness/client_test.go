package witness

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"github.com/lineage-audit/lineage/verify/witnesstest"
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
	text := "log.test/a\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
	signed, err := note.Sign(&note.Note{Text: text}, witnesstest.NewLogKey(t, "log.test/a").Signer)
	if err != nil {
		t.Fatal(err)
	}
	w1 := witnesstest.New(t, "witness.test/w1")
	ws, wv := w1.Signer, w1.Verifier
	other := witnesstest.New(t, "witness.test/w2").Signer
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
	k1 := witnesstest.New(t, "w1.test").VKey
	k2 := witnesstest.New(t, "w2.test").VKey
	k3 := witnesstest.New(t, "w3.test").VKey
	k4 := witnesstest.New(t, "w4.test").VKey
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
	fuzzVerifier.once.Do(func() { fuzzVerifier.v = witnesstest.New(t, "fuzz.test/w").Verifier })
	return nil, fuzzVerifier.v, ""
}
