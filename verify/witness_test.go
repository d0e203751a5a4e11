package verify

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/verify/witnesstest"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"
)

// testLog is a small Merkle log of real Lineage entries with a real ledger key, for the
// checkpoint and proof tests of this package.
type testLog struct {
	signer  note.Signer
	v       note.Verifier
	vkey    string
	entries [][]byte
	tree    *testonly.Tree
}

func newTestLog(t testing.TB, n int) *testLog {
	t.Helper()
	k := witnesstest.NewLogKey(t, "lineage.test/verify")
	l := &testLog{signer: k.Signer, v: k.Verifier, vkey: k.VKey, tree: testonly.New(rfc6962.DefaultHasher)}
	for _, r := range demo.Generate(demo.Options{Seed: 7, Tenants: 1}, n) {
		c, err := r.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		e := lineage.NewEnvelope(c, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), false)
		l.entries = append(l.entries, e)
		l.tree.AppendData(e)
	}
	return l
}

// checkpoint signs the log's checkpoint at its full size.
func (l *testLog) checkpoint(t testing.TB) []byte {
	t.Helper()
	cp := log.Checkpoint{Origin: l.v.Name(), Size: l.tree.Size(), Hash: l.tree.Hash()}
	b, err := note.Sign(&note.Note{Text: string(cp.Marshal())}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// recordProof is the JSON answer of GET /v1/records/{id} for entry i against checkpoint cp.
func (l *testLog) recordProof(t testing.TB, i uint64, cp []byte) *RecordProof {
	t.Helper()
	p, err := l.tree.InclusionProof(i, l.tree.Size())
	if err != nil {
		t.Fatal(err)
	}
	env, err := lineage.DecodeEnvelope(l.entries[i])
	if err != nil {
		t.Fatal(err)
	}
	return &RecordProof{Record: env.Record, Tenant: env.Record.Tenant, Index: i, Leaf: l.entries[i], Checkpoint: string(cp), InclusionProof: p}
}

func TestWitnessPolicyQuorum(t *testing.T) {
	l := newTestLog(t, 5)
	w1, w2, w3 := witnesstest.New(t, "w1.example"), witnesstest.New(t, "w2.example"), witnesstest.New(t, "w3.example")
	stranger := witnesstest.New(t, "stranger.example")
	pol, err := ParseWitnessPolicy(witnesstest.Policy("2", w1, w2, w3))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(pol.Witnesses(), " "); got != "w1.example w2.example w3.example" {
		t.Fatalf("witnesses %q", got)
	}
	if q := pol.Quorum(); q != "group q: 2 of w1.example w2.example w3.example" {
		t.Fatalf("quorum %q", q)
	}
	cp := l.checkpoint(t)

	// No cosignature at all.
	err = pol.Check(cp)
	if !errors.Is(err, ErrWitnessQuorum) || !strings.Contains(err.Error(), "cosigned by none") || !strings.Contains(err.Error(), "missing w1.example, w2.example, w3.example") {
		t.Fatalf("uncosigned: %v", err)
	}
	// One of two needed, plus a stranger's cosignature, which counts for nothing.
	one := witnesstest.Cosign(t, cp, l.v, w2, stranger)
	err = pol.Check(one)
	if !errors.Is(err, ErrWitnessQuorum) || !strings.Contains(err.Error(), "cosigned by w2.example (") || !strings.Contains(err.Error(), "missing w1.example, w3.example") {
		t.Fatalf("one of two: %v", err)
	}
	// Two of three: satisfied; the log's signature still verifies on the cosigned note.
	two := witnesstest.Cosign(t, one, l.v, w3)
	if err := pol.Check(two); err != nil {
		t.Fatalf("two of three: %v", err)
	}
	if _, err := OpenCheckpoint(two, l.v); err != nil {
		t.Fatalf("the cosigned note no longer opens with the log's key: %v", err)
	}
	st, err := pol.Status(two)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Cosigned) != 2 || st.Cosigned[0].Witness != "w2.example" || st.Cosigned[1].Witness != "w3.example" || !st.Satisfied {
		t.Fatalf("status %+v", st)
	}
	if age := time.Since(st.Cosigned[0].Time); age < -time.Minute || age > time.Minute {
		t.Fatalf("cosignature time %v is not now", st.Cosigned[0].Time)
	}
	if others, err := OtherSignatures(two, l.v); err != nil || len(others) != 3 {
		t.Fatalf("other signatures: %d, %v", len(others), err)
	}
	// A corrupted cosignature from a known key is an error even though the quorum is met
	// without it; a corrupted stranger's line is ignored.
	bad := witnesstest.CorruptSig(t, witnesstest.Cosign(t, two, l.v, w1), "w1.example")
	if err := pol.Check(bad); err == nil || errors.Is(err, ErrWitnessQuorum) || !strings.Contains(err.Error(), "witness w1.example") || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("corrupted known cosignature: %v", err)
	}
	if err := pol.Check(witnesstest.CorruptSig(t, two, "stranger.example")); err != nil {
		t.Fatalf("corrupted stranger's cosignature: %v", err)
	}
	// A cosignature is over the whole checkpoint: the same lines on another tree do not verify.
	other := newTestLog(t, 6)
	otherCP := other.checkpoint(t)
	moved := append(bytes.TrimSuffix(otherCP, []byte("\n")), []byte("\n"+sigLines(two, "w2.example", "w3.example"))...)
	if err := pol.Check(moved); err == nil || errors.Is(err, ErrWitnessQuorum) {
		t.Fatalf("cosignatures moved to another checkpoint: %v", err)
	}
	// "any", "all", nested groups and "quorum none".
	for _, c := range []struct {
		policy string
		note   []byte
		ok     bool
	}{
		{string(witnesstest.Policy("any", w1, w2)), one, true},
		{string(witnesstest.Policy("all", w1, w2, w3)), two, false},
		{string(witnesstest.Policy("all", w2, w3)), two, true},
		{"witness a " + w1.VKey + " https://a/\nwitness b " + w2.VKey + " https://b/\nwitness c " + w3.VKey + " https://c/\n" +
			"group ab any a b\ngroup top all ab c\nquorum top\n", two, true},
		{"witness a " + w1.VKey + " https://a/\nquorum a\n", two, false},
		{"quorum none\n", cp, true},
	} {
		p, err := ParseWitnessPolicy([]byte(c.policy))
		if err != nil {
			t.Fatalf("%q: %v", c.policy, err)
		}
		if err := p.Check(c.note); (err == nil) != c.ok {
			t.Errorf("%q: %v, want ok=%v", c.policy, err, c.ok)
		}
	}
}

// sigLines returns the note's signature lines by the named keys.
func sigLines(n []byte, names ...string) string {
	var out string
	for _, line := range strings.Split(string(n), "\n") {
		for _, name := range names {
			if strings.HasPrefix(line, "— "+name+" ") {
				out += line + "\n"
			}
		}
	}
	return out
}

func TestWitnessPolicyParse(t *testing.T) {
	w := witnesstest.New(t, "w.example")
	_, logVKey, err := note.GenerateKey(rand.Reader, "w.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, policy, err string }{
		{"no quorum", "witness w " + w.VKey + " https://w/\n", "quorum"},
		{"unknown keyword", "witnesses w " + w.VKey + " https://w/\nquorum w\n", "unknown keyword"},
		{"missing url", "witness w " + w.VKey + "\nquorum w\n", "invalid witness definition"},
		{"bad key", "witness w w.example+00000000+AAAA https://w/\nquorum w\n", "witness"},
		{"threshold above members", "witness w " + w.VKey + " https://w/\ngroup g 2 w\nquorum g\n", "threshold"},
		{"unknown member", "witness w " + w.VKey + " https://w/\ngroup g any v\nquorum g\n", "unknown component"},
		{"unknown quorum", "witness w " + w.VKey + " https://w/\nquorum v\n", "not found"},
		{"duplicate name", "witness w " + w.VKey + " https://w/\nwitness w " + w.VKey + " https://w/\nquorum w\n", "duplicate"},
		{"not utf-8", "witness w " + w.VKey + " https://w/\nquorum w # \xff\n", "UTF-8"},
		{"too large", "# " + strings.Repeat("x", MaxWitnessPolicySize) + "\nquorum none\n", "more than"},
	} {
		if _, err := ParseWitnessPolicy([]byte(c.policy)); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.err)
		}
	}
	// A plain Ed25519 note key (type 0x01) is read as the cosignature/v1 key of the same
	// Ed25519 key, as transparency-dev/formats does.
	if _, err := ParseWitnessPolicy([]byte("witness w " + logVKey + " https://w/\nquorum w\n")); err != nil {
		t.Errorf("Ed25519 vkey: %v", err)
	}
	// Comments, blank lines and "log" lines are accepted.
	p, err := ParseWitnessPolicy([]byte("# x\n\nlog " + logVKey + "\nwitness w " + w.VKey + " https://w/ # the one\nquorum w\n"))
	if err != nil || p.Quorum() != "witness w" {
		t.Fatalf("comments: %v %v", p, err)
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "policy")
	if err := os.WriteFile(f, witnesstest.Policy("any", w), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadWitnessPolicy(f); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadWitnessPolicy(filepath.Join(dir, "none")); err == nil {
		t.Fatal("loaded a missing file")
	}
}

// FuzzWitnessPolicy: ParseWitnessPolicy never panics, bounds its input, and a policy it accepts
// describes its quorum and checks any note without panicking.
func FuzzWitnessPolicy(f *testing.F) {
	w1, w2 := witnesstest.New(f, "w1.example"), witnesstest.New(f, "w2.example")
	f.Add(witnesstest.Policy("any", w1, w2), []byte("x\n1\nAAAA\n\n— x AAAAAA==\n"))
	f.Add([]byte("witness a "+w1.VKey+" https://a/\ngroup g 1 a a\ngroup h all g a\nquorum h\n"), []byte{})
	f.Add([]byte("quorum none\n"), []byte("\n\n"))
	f.Add([]byte("group g 0\nquorum g\n"), []byte("a\n\n— a AAAAAAAAAAAA\n"))
	f.Fuzz(func(t *testing.T, policy, cp []byte) {
		p, err := ParseWitnessPolicy(policy)
		if err != nil {
			return
		}
		if len(policy) > MaxWitnessPolicySize {
			t.Fatalf("accepted %d bytes", len(policy))
		}
		if p.Quorum() == "" {
			t.Fatal("no quorum description")
		}
		st, err := p.Status(cp)
		if err == nil && st.Satisfied != (p.Check(cp) == nil) {
			t.Fatalf("Status says satisfied=%v, Check disagrees", st.Satisfied)
		}
	})
}
