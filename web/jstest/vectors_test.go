package jstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/ledgertest"
	"github.com/lineage-audit/lineage/ledger/seal"
	"github.com/lineage-audit/lineage/ledger/seal/sqlitekeys"
	"github.com/lineage-audit/lineage/ledger/tessera"
	"github.com/lineage-audit/lineage/verify"
	"golang.org/x/mod/sumdb/note"
)

// The vectors, as the page web/static/test/verify-test.js reads them. Byte fields are base64, as
// encoding/json writes []byte; tree sizes and indexes are decimal strings (the page's BigInts).
// Expect is "ok" or "fail"; Reason, when set, is the VerifyError reason the page must give.
type vectors struct {
	Origin      string          `json:"origin"`
	VKey        string          `json:"vkey"`
	Fingerprint string          `json:"fingerprint"`
	Keys        []keyVector     `json:"keys"`
	Checkpoints []cpVector      `json:"checkpoints"`
	Inclusion   []inclVector    `json:"inclusion"`
	Consistency []consVector    `json:"consistency"`
	Records     []recordVector  `json:"records"`
	Answers     []answerVector  `json:"answers"`
	Monitor     []monitorVector `json:"monitor"`
}

type keyVector struct {
	Name   string `json:"name"`
	VKey   string `json:"vkey"`
	Expect string `json:"expect"`
}

type cpVector struct {
	Name string `json:"name"`
	VKey string `json:"vkey"`
	Note []byte `json:"note"`
	// Bytes passes the note to verifyCheckpoint as a Uint8Array rather than a string.
	Bytes     bool     `json:"bytes"`
	Expect    string   `json:"expect"`
	Reason    string   `json:"reason,omitempty"`
	Size      string   `json:"size,omitempty"`
	Root      []byte   `json:"root,omitempty"`
	Cosigners []string `json:"cosigners,omitempty"`
}

type inclVector struct {
	Name   string   `json:"name"`
	Index  string   `json:"index"`
	Size   string   `json:"size"`
	Leaf   []byte   `json:"leaf"`
	Proof  [][]byte `json:"proof"`
	Root   []byte   `json:"root"`
	Expect string   `json:"expect"`
	Reason string   `json:"reason,omitempty"`
}

type consVector struct {
	Name   string   `json:"name"`
	Size1  string   `json:"size1"`
	Size2  string   `json:"size2"`
	Proof  [][]byte `json:"proof"`
	Root1  []byte   `json:"root1"`
	Root2  []byte   `json:"root2"`
	Expect string   `json:"expect"`
	Reason string   `json:"reason,omitempty"`
}

type recordVector struct {
	Name   string          `json:"name"`
	VKey   string          `json:"vkey"`
	Answer json.RawMessage `json:"answer"`
	Expect string          `json:"expect"`
	Reason string          `json:"reason,omitempty"`
}

// answerVector is a lineage answer. Expect "fail" means verifyAnswerActions throws (the
// checkpoint); otherwise Actions gives each action's outcome, "ok" or the failure reason.
type answerVector struct {
	Name    string            `json:"name"`
	VKey    string            `json:"vkey"`
	Kind    string            `json:"kind"`
	Subject string            `json:"subject"`
	Answer  json.RawMessage   `json:"answer"`
	Expect  string            `json:"expect"`
	Reason  string            `json:"reason,omitempty"`
	Actions map[string]string `json:"actions,omitempty"`
}

// monitorVector feeds checkpoints in turn to a CheckpointMonitor (a new one each step, over the
// same storage); each step's Expect is the status observe returns or the reason it throws.
type monitorVector struct {
	Name  string        `json:"name"`
	VKey  string        `json:"vkey"`
	Steps []monitorStep `json:"steps"`
}

type monitorStep struct {
	Note        string   `json:"note"`
	Consistency [][]byte `json:"consistency"`
	Expect      string   `json:"expect"`
}

const origin = "lineage.test/jstest"

// key is a note key pair.
type key struct {
	signer note.Signer
	v      note.Verifier
	vkey   string
	pub    []byte // 0x01 || Ed25519 public key
}

func newKey(t testing.TB, name string) key {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ledger.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(vkey, "+")
	_, key64, _ := strings.Cut(rest, "+")
	pub, err := base64.StdEncoding.DecodeString(key64)
	if err != nil {
		t.Fatal(err)
	}
	return key{s, v, vkey, pub}
}

// sigLine is one note signature line by k over body.
func sigLine(t testing.TB, k key, body string) string {
	t.Helper()
	sig, err := k.signer.Sign([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return rawSigLine(k.signer.Name(), k.signer.KeyHash(), sig)
}

func rawSigLine(name string, hash uint32, sig []byte) string {
	b := binary.BigEndian.AppendUint32(nil, hash)
	return "— " + name + " " + base64.StdEncoding.EncodeToString(append(b, sig...)) + "\n"
}

// signNote signs body with each key in turn, without note.Sign's checks of the text.
func signNote(t testing.TB, body string, keys ...key) string {
	t.Helper()
	s := body + "\n"
	for _, k := range keys {
		s += sigLine(t, k, body)
	}
	return s
}

// testLog is a Tessera log holding Lineage envelopes, with the checkpoint of every size it was
// grown to.
type testLog struct {
	key     key
	log     *tessera.Log
	leaves  [][]byte
	records []*lineage.Record
	cps     map[uint64]ledger.Checkpoint
}

// templates are the example records of testdata/records.
func templates(t testing.TB) [][]byte {
	t.Helper()
	files, err := filepath.Glob("../../testdata/records/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example records in testdata/records: %v", err)
	}
	sort.Strings(files)
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// entry makes ledger entry i: example record i%3 under a fresh id, in its canonical envelope.
func entry(t testing.TB, tmpl [][]byte, i int) ([]byte, *lineage.Record) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(tmpl[i%len(tmpl)], &m); err != nil {
		t.Fatal(err)
	}
	m["id"] = fmt.Sprintf("rec-jstest-%06d", i)
	b, _ := json.Marshal(m)
	r, err := lineage.DecodeRecord(b)
	if err != nil {
		t.Fatalf("record %d: %v", i, err)
	}
	canon, err := r.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC).Add(time.Duration(i)*time.Second + time.Duration(i%7)*time.Millisecond)
	return lineage.NewEnvelope(canon, at, i%2 == 0), r
}

// buildLog grows a Tessera log through the given sizes (increasing), waiting at each for the
// signed checkpoint of exactly that size.
func buildLog(t testing.TB, sizes []uint64) *testLog {
	t.Helper()
	ctx := context.Background()
	k := newKey(t, origin)
	o := tessera.DefaultOptions(t.TempDir(), k.signer, k.v)
	o.CheckpointInterval = 100 * time.Millisecond
	l, err := tessera.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	tl := &testLog{key: k, log: l, cps: map[uint64]ledger.Checkpoint{}}
	tmpl := templates(t)
	for _, size := range sizes {
		var batch [][]byte
		for i := uint64(len(tl.leaves)); i < size; i++ {
			leaf, r := entry(t, tmpl, int(i))
			tl.leaves = append(tl.leaves, leaf)
			tl.records = append(tl.records, r)
			batch = append(batch, leaf)
		}
		if _, err := ledgertest.AddAll(ctx, l, batch); err != nil {
			t.Fatal(err)
		}
		cp, err := ledgertest.WaitCheckpoint(ctx, l, k.v, size)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size != size {
			t.Fatalf("checkpoint of size %d, want %d", cp.Size, size)
		}
		tl.cps[size] = cp
	}
	return tl
}

func (tl *testLog) inclusion(t testing.TB, index, size uint64) [][]byte {
	t.Helper()
	p, err := tl.log.InclusionProof(context.Background(), index, size)
	if err != nil {
		t.Fatalf("inclusion proof %d@%d: %v", index, size, err)
	}
	return p
}

func (tl *testLog) consistency(t testing.TB, from, to uint64) [][]byte {
	t.Helper()
	if from == 0 || from == to {
		return [][]byte{}
	}
	p, err := tl.log.ConsistencyProof(context.Background(), from, to)
	if err != nil {
		t.Fatalf("consistency proof %d→%d: %v", from, to, err)
	}
	return p
}

// recordProof is the answer of GET /v1/records/{id} for entry index at the checkpoint of size.
func (tl *testLog) recordProof(t testing.TB, index, size uint64) *verify.RecordProof {
	return &verify.RecordProof{
		Record:         tl.records[index],
		Tenant:         tl.records[index].Tenant,
		Index:          index,
		Leaf:           tl.leaves[index],
		Checkpoint:     string(tl.cps[size].Note),
		InclusionProof: tl.inclusion(t, index, size),
	}
}

// actionNode is an action of a lineage answer, as the query API builds it.
func (tl *testLog) actionNode(t testing.TB, index, size uint64) *verify.ActionNode {
	r := tl.records[index]
	return &verify.ActionNode{ID: r.ID, LogIndex: index, Time: r.Time, Action: r.Action, Decision: r.Decision,
		ParentID: r.ParentID, Role: r.Role, HumanOversight: r.HumanOversight, Agent: r.Agent.ID, User: r.User,
		Tenant: r.Tenant, Proof: &verify.Proof{Leaf: tl.leaves[index], InclusionProof: tl.inclusion(t, index, size)}}
}

// The sizes the log is grown through: 1, powers of two and their neighbours, odd sizes.
var stageSizes = []uint64{1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 50}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

func cloneProof(p [][]byte) [][]byte {
	out := make([][]byte, len(p))
	for i, h := range p {
		out[i] = bytes.Clone(h)
	}
	return out
}

func outcome(err error) string {
	if err != nil {
		return "fail"
	}
	return "ok"
}

func u(n uint64) string { return strconv.FormatUint(n, 10) }

// makeVectors builds the log and every vector, asserting each expectation against the Go verifier.
func makeVectors(t testing.TB) *vectors {
	t.Helper()
	tl := buildLog(t, stageSizes)
	k := tl.key
	raw := k.pub[1:]
	fp := sha256.Sum256(raw)
	hx := hex.EncodeToString(fp[:16])
	var groups []string
	for i := 0; i < len(hx); i += 4 {
		groups = append(groups, hx[i:i+4])
	}
	vs := &vectors{Origin: origin, VKey: k.vkey, Fingerprint: strings.Join(groups, " ")}
	keyVectors(t, vs, k)
	checkpointVectors(t, vs, tl)
	inclusionVectors(t, vs, tl)
	consistencyVectors(t, vs, tl)
	recordVectors(t, vs, tl)
	answerVectors(t, vs, tl)
	monitorVectors(t, vs, tl)
	return vs
}

func keyVectors(t testing.TB, vs *vectors, k key) {
	name, rest, _ := strings.Cut(k.vkey, "+")
	hash16, key64, _ := strings.Cut(rest, "+")
	withKey := func(name string, pub []byte) string { // a correctly hashed key string
		h := sha256.Sum256(append([]byte(name+"\n"), pub...))
		return fmt.Sprintf("%s+%08x+%s", name, h[:4], base64.StdEncoding.EncodeToString(pub))
	}
	other := newKey(t, "witness.example/w1")
	cases := []keyVector{
		{"valid", k.vkey, "ok"},
		{"another log's key", other.vkey, "ok"},
		{"surrounding space", "  " + k.vkey + "\n", "ok"},
		{"upper-case hash", name + "+" + strings.ToUpper(hash16) + "+" + key64, "ok"},
		{"hash of another key", name + "+" + "00000000" + "+" + key64, "fail"},
		{"renamed", "lineage.test/other+" + hash16 + "+" + key64, "fail"},
		{"short hash", name + "+" + hash16[1:] + "+" + key64, "fail"},
		{"missing key", name + "+" + hash16, "fail"},
		{"bad base64", name + "+" + hash16 + "+" + key64[:len(key64)-1], "fail"},
		{"unknown algorithm", withKey(name, append([]byte{2}, k.pub[1:]...)), "fail"},
		{"31-byte key", withKey(name, k.pub[:32]), "fail"},
		{"33-byte key", withKey(name, append(bytes.Clone(k.pub), 0)), "fail"},
		{"empty name", withKey("", k.pub), "fail"},
		{"name with a space", withKey("a b", k.pub), "fail"},
		{"name with a no-break space", withKey("a\u00a0b", k.pub), "fail"},
	}
	for _, c := range cases {
		_, err := ledger.NewVerifier(c.VKey)
		if outcome(err) != c.Expect {
			t.Fatalf("key vector %q: Go says %v, want %s", c.Name, err, c.Expect)
		}
		vs.Keys = append(vs.Keys, c)
	}
}

func checkpointVectors(t testing.TB, vs *vectors, tl *testLog) {
	k := tl.key
	add := func(c cpVector) {
		if c.VKey == "" {
			c.VKey = k.vkey
		}
		v, err := ledger.NewVerifier(c.VKey)
		if err != nil {
			t.Fatal(err)
		}
		cp, err := ledger.OpenCheckpoint(c.Note, v)
		if c.Expect == "" {
			c.Expect = outcome(err)
		}
		if outcome(err) != c.Expect {
			t.Fatalf("checkpoint vector %q: Go says %v, want %s", c.Name, err, c.Expect)
		}
		if err == nil {
			c.Size, c.Root = u(cp.Size), cp.Hash
		}
		vs.Checkpoints = append(vs.Checkpoints, c)
	}
	for _, size := range stageSizes {
		add(cpVector{Name: fmt.Sprintf("valid size %d", size), Note: tl.cps[size].Note, Expect: "ok"})
	}
	note7 := string(tl.cps[7].Note)
	body, sigs, _ := strings.Cut(note7, "\n\n")
	body += "\n"
	if strings.Count(sigs, "\n") != 1 {
		t.Fatalf("Tessera's checkpoint has %d signatures, want 1:\n%s", strings.Count(sigs, "\n"), note7)
	}
	add(cpVector{Name: "valid as bytes", Note: []byte(note7), Bytes: true, Expect: "ok"})

	// Every byte of the signature (key hash, then Ed25519 signature) flipped.
	line := strings.TrimSuffix(sigs, "\n")
	b64 := line[strings.LastIndex(line, " ")+1:]
	sig, _ := base64.StdEncoding.DecodeString(b64)
	for i := range sig {
		reason := "bad-signature"
		if i < 4 {
			reason = "no-signature" // another key's line: ignored
		}
		n := body + "\n— " + origin + " " + base64.StdEncoding.EncodeToString(flip(sig, i)) + "\n"
		add(cpVector{Name: fmt.Sprintf("signature byte %d flipped", i), Note: []byte(n), Expect: "fail", Reason: reason})
	}
	// Every byte of the body flipped: the signature no longer matches.
	for i := range len(body) {
		reason := "bad-signature"
		if body[i] == '\n' {
			reason = "malformed" // a vertical tab
		}
		n := string(flip([]byte(body), i)) + "\n" + sigs
		add(cpVector{Name: fmt.Sprintf("body byte %d flipped", i), Note: []byte(n), Expect: "fail", Reason: reason})
	}
	// Every byte of the whole note flipped, with the Go verifier's outcome (a flip of a base64
	// padding bit changes nothing, for one).
	for i := range len(note7) {
		add(cpVector{Name: fmt.Sprintf("note byte %d flipped", i), Note: flip([]byte(note7), i), Bytes: i%2 == 0})
	}

	other := newKey(t, origin) // same name, another key
	w1, w2 := newKey(t, "witness.example/w1"), newKey(t, "witness.example/w2")
	add(cpVector{Name: "wrong key, same name", VKey: other.vkey, Note: []byte(note7), Expect: "fail", Reason: "no-signature"})
	elsewhere := newKey(t, "lineage.test/elsewhere")
	add(cpVector{Name: "wrong origin", VKey: elsewhere.vkey, Note: []byte(signNote(t, body, elsewhere)), Expect: "fail", Reason: "wrong-origin"})
	add(cpVector{Name: "only a foreign signature", Note: []byte(signNote(t, body, w1)), Expect: "fail", Reason: "no-signature"})
	add(cpVector{Name: "only a same-name foreign signature", Note: []byte(signNote(t, body, other)), Expect: "fail", Reason: "no-signature"})
	garbage := make([]byte, 64)
	rand.Read(garbage)
	cos := sigLine(t, w1, body) + rawSigLine(w2.signer.Name(), w2.signer.KeyHash(), garbage)
	add(cpVector{Name: "cosignatures after", Note: []byte(note7 + cos), Expect: "ok", Cosigners: []string{"witness.example/w1", "witness.example/w2"}})
	add(cpVector{Name: "cosignatures before", Note: []byte(body + "\n" + cos + sigs), Expect: "ok", Cosigners: []string{"witness.example/w1", "witness.example/w2"}})
	add(cpVector{Name: "same-name line of another key", Note: []byte(body + "\n" + sigLine(t, other, body) + sigs), Expect: "ok", Cosigners: []string{origin}})
	bad := rawSigLine(origin, k.signer.KeyHash(), garbage)
	add(cpVector{Name: "repeated log line, bad one second", Note: []byte(note7 + bad), Expect: "ok"})
	add(cpVector{Name: "repeated log line, bad one first", Note: []byte(body + "\n" + bad + sigs), Expect: "fail", Reason: "bad-signature"})
	add(cpVector{Name: "short signature", Note: []byte(body + "\n" + rawSigLine(origin, k.signer.KeyHash(), garbage[:63])), Expect: "fail", Reason: "bad-signature"})
	var many strings.Builder
	for i := range 98 {
		many.WriteString(rawSigLine(fmt.Sprintf("witness.example/%d", i), 7, garbage))
	}
	add(cpVector{Name: "100 signatures", Note: []byte(note7 + cos[:strings.Index(cos, "\n")+1] + many.String()), Expect: "ok"})
	add(cpVector{Name: "101 signatures", Note: []byte(note7 + cos + many.String()), Expect: "fail", Reason: "malformed"})
	// base64: Go accepts non-zero padding bits, refuses missing padding.
	last := strings.IndexByte(B64alphabet, b64[len(b64)-2])
	loose := b64[:len(b64)-2] + string(B64alphabet[last|1]) + "="
	if loose == b64 {
		loose = b64[:len(b64)-2] + string(B64alphabet[last&^1]) + "="
	}
	add(cpVector{Name: "non-zero base64 padding bits", Note: []byte(body + "\n— " + origin + " " + loose + "\n"), Expect: "ok"})
	add(cpVector{Name: "base64 without padding", Note: []byte(body + "\n— " + origin + " " + strings.TrimRight(b64, "=") + "\n"), Expect: "fail", Reason: "malformed"})
	add(cpVector{Name: "no signature block", Note: []byte(body), Expect: "fail", Reason: "malformed"})
	add(cpVector{Name: "no final newline", Note: []byte(strings.TrimSuffix(note7, "\n")), Expect: "fail", Reason: "malformed"})
	add(cpVector{Name: "hyphen for em dash", Note: []byte(strings.Replace(note7, "—", "-", 1)), Expect: "fail", Reason: "malformed"})
	add(cpVector{Name: "invalid UTF-8", Note: append([]byte(note7[:3]+"\xff"), note7[4:]...), Bytes: true, Expect: "fail", Reason: "malformed"})

	// Bodies signed by the log key: extension lines are allowed, the three lines are not optional.
	lines := strings.SplitN(body, "\n", 4)
	root := lines[2]
	signed := func(name, b, expect, reason string) {
		add(cpVector{Name: name, Note: []byte(signNote(t, b, k)), Expect: expect, Reason: reason})
	}
	signed("extension lines", body+"timestamp 1700000000\nanother extension\n", "ok", "")
	signed("leading zeros in size", origin+"\n007\n"+root+"\n", "ok", "")
	signed("largest size", origin+"\n18446744073709551615\n"+root+"\n", "ok", "")
	signed("size overflow", origin+"\n18446744073709551616\n"+root+"\n", "fail", "malformed")
	signed("signed size", origin+"\n+7\n"+root+"\n", "fail", "malformed")
	signed("empty size", origin+"\n\n"+root+"\n", "fail", "malformed")
	signed("hex size", origin+"\n0x7\n"+root+"\n", "fail", "malformed")
	signed("root not base64", origin+"\n7\n"+root[1:]+"\n", "fail", "malformed")
	signed("empty root", origin+"\n7\n\n", "ok", "")
	signed("two lines", origin+"\n7\n", "fail", "malformed")
	signed("tab in an extension", body+"a\tb\n", "fail", "malformed")
	signed("origin with a suffix", origin+"x\n7\n"+root+"\n", "fail", "wrong-origin")
}

// B64alphabet is the standard base64 alphabet.
const B64alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

func inclusionVectors(t testing.TB, vs *vectors, tl *testLog) {
	add := func(c inclVector, index, size uint64) {
		err := ledger.VerifyInclusion(c.Leaf, index, c.Proof, ledger.Checkpoint{Size: size, Hash: c.Root})
		if c.Expect == "" {
			c.Expect = outcome(err)
		}
		if outcome(err) != c.Expect {
			t.Fatalf("inclusion vector %q: Go says %v, want %s", c.Name, err, c.Expect)
		}
		c.Index, c.Size = u(index), u(size)
		vs.Inclusion = append(vs.Inclusion, c)
	}
	for _, size := range stageSizes {
		root := tl.cps[size].Hash
		idxs := map[uint64]bool{0: true, size - 1: true, size / 2: true, size / 3: true}
		for index := range idxs {
			p := tl.inclusion(t, index, size)
			leaf := tl.leaves[index]
			name := fmt.Sprintf("%d@%d", index, size)
			add(inclVector{Name: name + " valid", Leaf: leaf, Proof: p, Root: root, Expect: "ok"}, index, size)
			for i := range p {
				for j := range p[i] {
					q := cloneProof(p)
					q[i][j] ^= 1
					add(inclVector{Name: fmt.Sprintf("%s proof[%d] byte %d flipped", name, i, j), Leaf: leaf, Proof: q, Root: root, Expect: "fail", Reason: "root-mismatch"}, index, size)
				}
			}
			for j := range root {
				add(inclVector{Name: fmt.Sprintf("%s root byte %d flipped", name, j), Leaf: leaf, Proof: p, Root: flip(root, j), Expect: "fail", Reason: "root-mismatch"}, index, size)
			}
			// Every leaf byte for two proofs, the first, middle and last byte for the others.
			every := (index == 0 && size == 1) || (index == size/2 && size == 33)
			for j := range leaf {
				if every || j == 0 || j == len(leaf)/2 || j == len(leaf)-1 {
					add(inclVector{Name: fmt.Sprintf("%s leaf byte %d flipped", name, j), Leaf: flip(leaf, j), Proof: p, Root: root, Expect: "fail", Reason: "root-mismatch"}, index, size)
				}
			}
			if len(p) > 0 {
				add(inclVector{Name: name + " truncated", Leaf: leaf, Proof: p[:len(p)-1], Root: root, Expect: "fail", Reason: "bad-proof-length"}, index, size)
				add(inclVector{Name: name + " first hash dropped", Leaf: leaf, Proof: p[1:], Root: root, Expect: "fail", Reason: "bad-proof-length"}, index, size)
			}
			add(inclVector{Name: name + " extended", Leaf: leaf, Proof: append(cloneProof(p), make([]byte, 32)), Root: root, Expect: "fail", Reason: "bad-proof-length"}, index, size)
			add(inclVector{Name: name + " index = size", Leaf: leaf, Proof: p, Root: root, Expect: "fail", Reason: "index-beyond-size"}, size, size)
			if index+1 < size {
				add(inclVector{Name: name + " next index", Leaf: leaf, Proof: p, Root: root, Expect: "fail"}, index+1, size)
				add(inclVector{Name: name + " next leaf", Leaf: tl.leaves[index+1], Proof: p, Root: root, Expect: "fail", Reason: "root-mismatch"}, index, size)
			}
			add(inclVector{Name: name + " larger size", Leaf: leaf, Proof: p, Root: root}, index, size+1) // may hold: 0@3 and 0@4 chain alike
		}
	}
}

func consistencyVectors(t testing.TB, vs *vectors, tl *testLog) {
	add := func(c consVector, s1, s2 uint64) {
		err := ledger.VerifyConsistency(ledger.Checkpoint{Size: s1, Hash: c.Root1}, ledger.Checkpoint{Size: s2, Hash: c.Root2}, c.Proof)
		if c.Expect == "" {
			c.Expect = outcome(err)
		}
		if outcome(err) != c.Expect {
			t.Fatalf("consistency vector %q: Go says %v, want %s", c.Name, err, c.Expect)
		}
		c.Size1, c.Size2 = u(s1), u(s2)
		vs.Consistency = append(vs.Consistency, c)
	}
	every := map[[2]uint64]bool{{3, 7}: true, {4, 8}: true, {5, 17}: true, {1, 33}: true, {15, 50}: true, {32, 33}: true}
	empty := sha256.Sum256(nil)
	for _, s2 := range stageSizes {
		r2 := tl.cps[s2].Hash
		add(consVector{Name: fmt.Sprintf("0→%d", s2), Proof: [][]byte{}, Root1: empty[:], Root2: r2, Expect: "ok"}, 0, s2)
		for _, s1 := range stageSizes {
			if s1 > s2 {
				continue
			}
			r1 := tl.cps[s1].Hash
			p := tl.consistency(t, s1, s2)
			name := fmt.Sprintf("%d→%d", s1, s2)
			add(consVector{Name: name + " valid", Proof: p, Root1: r1, Root2: r2, Expect: "ok"}, s1, s2)
			all := every[[2]uint64{s1, s2}]
			for i := range p {
				for j := range p[i] {
					if all || j == 0 {
						q := cloneProof(p)
						q[i][j] ^= 1
						add(consVector{Name: fmt.Sprintf("%s proof[%d] byte %d flipped", name, i, j), Proof: q, Root1: r1, Root2: r2, Expect: "fail", Reason: "root-mismatch"}, s1, s2)
					}
				}
			}
			for j := range r1 {
				if all || j == 0 || j == 31 {
					add(consVector{Name: fmt.Sprintf("%s root1 byte %d flipped", name, j), Proof: p, Root1: flip(r1, j), Root2: r2, Expect: "fail", Reason: "root-mismatch"}, s1, s2)
					add(consVector{Name: fmt.Sprintf("%s root2 byte %d flipped", name, j), Proof: p, Root1: r1, Root2: flip(r2, j), Expect: "fail", Reason: "root-mismatch"}, s1, s2)
				}
			}
			add(consVector{Name: name + " extended", Proof: append(cloneProof(p), make([]byte, 32)), Root1: r1, Root2: r2, Expect: "fail", Reason: "bad-proof-length"}, s1, s2)
			if len(p) > 0 {
				add(consVector{Name: name + " truncated", Proof: p[:len(p)-1], Root1: r1, Root2: r2, Expect: "fail", Reason: "bad-proof-length"}, s1, s2)
			}
			if s1 < s2 {
				add(consVector{Name: name + " reversed", Proof: p, Root1: r2, Root2: r1, Expect: "fail", Reason: "bad-size"}, s2, s1)
				add(consVector{Name: name + " roots swapped", Proof: p, Root1: r2, Root2: r1, Expect: "fail", Reason: "root-mismatch"}, s1, s2)
			}
		}
	}
}

func recordVectors(t testing.TB, vs *vectors, tl *testLog) {
	k := tl.key
	add := func(name string, vkey string, rp any, expect, reason string) {
		raw, err := json.Marshal(rp)
		if err != nil {
			t.Fatal(err)
		}
		if vkey == "" {
			vkey = k.vkey
		}
		v, _ := ledger.NewVerifier(vkey)
		var parsed verify.RecordProof
		if err = json.Unmarshal(raw, &parsed); err == nil {
			_, err = verify.VerifyRecordProof(&parsed, v)
		}
		if expect == "" {
			expect = outcome(err)
		}
		if outcome(err) != expect {
			t.Fatalf("record vector %q: Go says %v, want %s", name, err, expect)
		}
		vs.Records = append(vs.Records, recordVector{Name: name, VKey: vkey, Answer: raw, Expect: expect, Reason: reason})
	}
	for _, c := range [][2]uint64{{0, 1}, {3, 8}, {4, 5}, {16, 17}, {32, 33}, {49, 50}} {
		add(fmt.Sprintf("record %d@%d", c[0], c[1]), "", tl.recordProof(t, c[0], c[1]), "ok", "")
	}
	rp := tl.recordProof(t, 10, 31)
	add("record 10@31", "", rp, "ok", "")
	// The answer's record re-serialized with other key order and spacing is the same record.
	asMap := func(rp *verify.RecordProof) map[string]any {
		var m map[string]any
		b, _ := json.Marshal(rp)
		json.Unmarshal(b, &m)
		return m
	}
	add("record null", "", func() any { m := asMap(rp); m["record"] = nil; return m }(), "ok", "")
	for j := range rp.Leaf {
		c := *rp
		c.Leaf = flip(rp.Leaf, j)
		add(fmt.Sprintf("leaf byte %d flipped", j), "", &c, "fail", "")
	}
	tampered := func(name string, change func(r *lineage.Record), reason string) {
		c := *rp
		r := *rp.Record
		change(&r)
		c.Record = &r
		add(name, "", &c, "fail", reason)
	}
	tampered("record target changed", func(r *lineage.Record) { r.Action.Target += "x" }, "leaf-mismatch")
	tampered("record effect changed", func(r *lineage.Record) { r.Decision.Effect = "allow" }, "leaf-mismatch")
	tampered("record tenant changed", func(r *lineage.Record) { r.Tenant = "other-bank" }, "leaf-mismatch")
	tampered("record of another leaf", func(r *lineage.Record) { *r = *tl.records[11] }, "leaf-mismatch")
	{
		c := *rp
		c.Index = 11
		add("index changed", "", &c, "fail", "root-mismatch")
		c.Index = 31
		add("index = size", "", &c, "fail", "index-beyond-size")
		c = *rp
		c.InclusionProof = rp.InclusionProof[:len(rp.InclusionProof)-1]
		add("proof truncated", "", &c, "fail", "bad-proof-length")
		c.InclusionProof = append(cloneProof(rp.InclusionProof), make([]byte, 32))
		add("proof extended", "", &c, "fail", "bad-proof-length")
		c = *rp
		c.Checkpoint = string(tl.cps[32].Note)
		add("newer checkpoint, old proof", "", &c, "fail", "")
		c.InclusionProof = tl.inclusion(t, 10, 32)
		add("newer checkpoint, its proof", "", &c, "ok", "")
		c = *rp
		c.Leaf = tl.leaves[11]
		c.Record = tl.records[11]
		add("another leaf, its record", "", &c, "fail", "root-mismatch")
	}
	add("wrong key", newKey(t, origin).vkey, rp, "fail", "no-signature")

	// Leaves that are not canonical envelopes, each the single leaf of a log of size 1 whose
	// checkpoint the log key signs: only the envelope check can refuse them.
	canon, _ := tl.records[0].Canonical()
	good := string(tl.leaves[0])
	for _, c := range []struct{ name, leaf, expect string }{
		{"canonical", good, "ok"},
		{"space", strings.Replace(good, `"record":`, `"record": `, 1), "fail"},
		{"member order", `{"record":` + string(canon) + `,"received_at":"2026-03-02T09:00:00Z","source_verified":true,"v":1}`, "fail"},
		{"version 2", strings.Replace(good, `"v":1}`, `"v":2}`, 1), "fail"},
		{"extra member", strings.Replace(good, `"v":1}`, `"v":1,"x":1}`, 1), "fail"},
		{"offset time", strings.Replace(good, `T09:00:00Z"`, `T09:00:00+00:00"`, 1), "fail"},
		{"escaped slash", strings.Replace(good, `https://`, `https:\/\/`, 1), "fail"},
		{"not JSON", good[:len(good)-1], "fail"},
	} {
		leaf := []byte(c.leaf)
		if c.expect == "ok" && !bytes.Equal(leaf, tl.leaves[0]) {
			t.Fatal("canonical leaf mismatch")
		}
		body := fmt.Sprintf("%s\n1\n%s\n", origin, base64.StdEncoding.EncodeToString(ledger.LeafHash(leaf)))
		reason := "bad-leaf"
		if c.expect == "ok" {
			reason = ""
		}
		add("single leaf, "+c.name, "", &verify.RecordProof{Leaf: leaf, Checkpoint: signNote(t, body, k), InclusionProof: [][]byte{}}, c.expect, reason)
	}
	sealedVectors(t, add, k, canon)
}

// sealedVectors are record proofs of a v2 leaf (an erasure-enabled log, docs/ERASURE.md): the
// user id and the action target sealed under the user's key, each the single leaf of a log of
// size 1. With openings the record shows the clear values, each checked against its commitment
// in the leaf; without, the tokens (erased). A forged opening, a clear record without openings,
// an opening for a field that is not sealed, and a leaf whose token was changed fail.
func sealedVectors(t testing.TB, add func(name, vkey string, rp any, expect, reason string), k key, canon []byte) {
	ctx := context.Background()
	mk, _, err := seal.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	ks, err := sqlitekeys.OpenSQLite(ctx, filepath.Join(t.TempDir(), "keys.sqlite"), mk, sqlitekeys.SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	paths, err := seal.NewPaths(seal.Path{Pointer: "/action/target", Subject: "/user/id"})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := lineage.DecodeRecord(canon)
	if err != nil {
		t.Fatal(err)
	}
	red, fields, err := seal.Seal(ctx, ks, rec.Tenant, rec.ID, canon, paths)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := seal.NewEnvelopeV2(red, fields, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), false)
	if err != nil {
		t.Fatal(err)
	}
	_, openings, _, err := seal.Open(ctx, ks, rec.Tenant, rec.ID, red, fields)
	if err != nil || len(openings) != 2 {
		t.Fatalf("open: %v (%d openings)", err, len(openings))
	}
	redacted, err := lineage.DecodeRecord(red)
	if err != nil {
		t.Fatal(err)
	}
	single := func(leaf []byte, r *lineage.Record, os []verify.Opening) *verify.RecordProof {
		body := fmt.Sprintf("%s\n1\n%s\n", origin, base64.StdEncoding.EncodeToString(ledger.LeafHash(leaf)))
		return &verify.RecordProof{Record: r, Tenant: rec.Tenant, Leaf: leaf, Checkpoint: signNote(t, body, k), InclusionProof: [][]byte{}, Openings: os}
	}
	all := verify.Openings(openings)
	add("sealed leaf, clear with openings", "", single(leaf, rec, all), "ok", "")
	add("sealed leaf, erased (no openings)", "", single(leaf, redacted, nil), "ok", "")
	add("sealed leaf, no record", "", single(leaf, nil, nil), "ok", "")
	forged := append([]verify.Opening(nil), all...)
	forged[1].Value = "mallory@example.org"
	forgedRec := *rec
	forgedRec.User.ID = "mallory@example.org"
	add("sealed leaf, forged opening", "", single(leaf, &forgedRec, forged), "fail", "bad-opening")
	add("sealed leaf, clear record without openings", "", single(leaf, rec, nil), "fail", "leaf-mismatch")
	extra := append(append([]verify.Opening(nil), all...), verify.Opening{Path: "/agent/id", Value: rec.Agent.ID, Nonce: all[0].Nonce})
	add("sealed leaf, opening of a field not sealed", "", single(leaf, rec, extra), "fail", "bad-opening")
	swapped := []byte(strings.Replace(string(leaf), fields[0].Commitment.Token(), "sealed:"+strings.Repeat("A", 43), 1))
	add("sealed leaf, token changed", "", single(swapped, redacted, nil), "fail", "bad-leaf")
}

func answerVectors(t testing.TB, vs *vectors, tl *testLog) {
	k := tl.key
	const size = 50
	cp := tl.cps[size]
	add := func(c answerVector, a any) {
		raw, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if c.VKey == "" {
			c.VKey = k.vkey
		}
		v, _ := ledger.NewVerifier(c.VKey)
		_, err = verify.VerifyAnswer(c.Kind, c.Subject, raw, v)
		allOK := c.Expect == "ok"
		for _, r := range c.Actions {
			allOK = allOK && r == "ok"
		}
		if (err == nil) != allOK {
			t.Fatalf("answer vector %q: Go says %v, want all ok: %v", c.Name, err, allOK)
		}
		c.Answer = raw
		vs.Answers = append(vs.Answers, c)
	}
	agent := tl.records[0].Agent.ID
	var nodes []*verify.ActionNode
	for i := uint64(0); i < size; i++ {
		if tl.records[i].Agent.ID == agent {
			nodes = append(nodes, tl.actionNode(t, i, size))
		}
	}
	okAll := func(ns []*verify.ActionNode) map[string]string {
		m := map[string]string{}
		for _, n := range ns {
			m[n.ID] = "ok"
		}
		return m
	}
	head := verify.Answer{Tenant: tl.records[0].Tenant, CheckpointSize: size, Checkpoint: string(cp.Note), Flags: []verify.Flag{}}
	agentAnswer := func(h verify.Answer, ns []*verify.ActionNode) *verify.AgentLineage {
		return &verify.AgentLineage{Answer: h, Agent: agent, Users: []verify.AgentUser{{Person: tl.records[0].User, Actions: len(ns)}}, Actions: ns}
	}
	add(answerVector{Name: "agent answer", Kind: "agents", Subject: agent, Expect: "ok", Actions: okAll(nodes)}, agentAnswer(head, nodes))

	clone := func() []*verify.ActionNode {
		out := make([]*verify.ActionNode, len(nodes))
		for i, n := range nodes {
			c := *n
			p := *n.Proof
			c.Proof = &p
			out[i] = &c
		}
		return out
	}
	one := func(name string, change func(n *verify.ActionNode), reason string) {
		ns := clone()
		change(ns[2])
		want := okAll(ns)
		want[ns[2].ID] = reason
		add(answerVector{Name: name, Kind: "agents", Subject: agent, Expect: "ok", Actions: want}, agentAnswer(head, ns))
	}
	one("action target changed", func(n *verify.ActionNode) { n.Action.Target += "x" }, "leaf-mismatch")
	one("action time changed", func(n *verify.ActionNode) { n.Time = "2026-03-02T09:14:10Z" }, "leaf-mismatch")
	one("action user changed", func(n *verify.ActionNode) { n.User.ID = "u-1" }, "leaf-mismatch")
	one("action log index changed", func(n *verify.ActionNode) { n.LogIndex++ }, "root-mismatch")
	one("action proof node flipped", func(n *verify.ActionNode) {
		n.Proof.InclusionProof = cloneProof(n.Proof.InclusionProof)
		n.Proof.InclusionProof[1][5] ^= 1
	}, "root-mismatch")
	one("action leaf flipped", func(n *verify.ActionNode) { n.Proof.Leaf = flip(n.Proof.Leaf, 40) }, "")
	one("action without proof", func(n *verify.ActionNode) { n.Proof = nil }, "no-proof")
	one("action proof truncated", func(n *verify.ActionNode) { n.Proof.InclusionProof = n.Proof.InclusionProof[1:] }, "bad-proof-length")

	other := head
	other.Tenant = "other-bank"
	wrong := map[string]string{}
	for _, n := range nodes {
		wrong[n.ID] = "wrong-tenant"
	}
	add(answerVector{Name: "answer of another tenant", Kind: "agents", Subject: agent, Expect: "ok", Actions: wrong}, agentAnswer(other, clone()))
	other = head
	other.CheckpointSize = 49
	add(answerVector{Name: "checkpoint size misstated", Kind: "agents", Subject: agent, Expect: "fail", Reason: "size-mismatch"}, agentAnswer(other, clone()))
	other = head
	other.Checkpoint = strings.Replace(other.Checkpoint, "\n50\n", "\n51\n", 1)
	other.CheckpointSize = 51
	add(answerVector{Name: "checkpoint altered", Kind: "agents", Subject: agent, Expect: "fail", Reason: "bad-signature"}, agentAnswer(other, clone()))
	add(answerVector{Name: "wrong key", VKey: newKey(t, origin).vkey, Kind: "agents", Subject: agent, Expect: "fail", Reason: "no-signature"}, agentAnswer(head, clone()))

	// A user's tree: every agent that acted for the user, with its actions.
	user := tl.records[0].User.ID
	byAgent := map[string]*verify.AgentNode{}
	tree := &verify.UserTree{User: tl.records[0].User, Agents: []*verify.AgentNode{}}
	var all []*verify.ActionNode
	for i := uint64(0); i < size; i++ {
		r := tl.records[i]
		if r.User.ID != user {
			continue
		}
		a := byAgent[r.Agent.ID]
		if a == nil {
			a = &verify.AgentNode{ID: r.Agent.ID}
			byAgent[r.Agent.ID] = a
			tree.Agents = append(tree.Agents, a)
		}
		n := tl.actionNode(t, i, size)
		a.Actions = append(a.Actions, n)
		all = append(all, n)
		tree.Actions++
	}
	if len(tree.Agents) > 1 { // nest the second agent under the first, as a delegation
		tree.Agents[0].Agents = []*verify.AgentNode{tree.Agents[1]}
		tree.Agents = append([]*verify.AgentNode{tree.Agents[0]}, tree.Agents[2:]...)
	}
	add(answerVector{Name: "user tree", Kind: "users", Subject: user, Expect: "ok", Actions: okAll(all)}, &verify.UserLineage{Answer: head, UserTree: tree})

	// A findings answer (verify/findings.go): its actions are its findings' evidence records; an
	// evidence the index no longer holds comes without a record and is not checked.
	tenant := head.Tenant
	findingsAnswer := func(h verify.Answer, ns []*verify.ActionNode) *verify.Findings {
		f := &verify.FindingNode{ID: "f-1", Tenant: h.Tenant, Kind: "static_credential", Severity: "high", Key: "no-delegation:" + agent,
			Agent: agent, Count: uint64(len(ns) + 1), Explanation: "Agent " + agent + " acted without a delegation token."}
		for _, n := range ns {
			f.Evidence = append(f.Evidence, &verify.EvidenceNode{ID: n.ID, LogIndex: n.LogIndex, Note: "no delegation token", Record: n})
		}
		f.Evidence = append(f.Evidence, &verify.EvidenceNode{ID: "expired-record", LogIndex: 3, Missing: "not in the index"})
		return &verify.Findings{Answer: h, Findings: []*verify.FindingNode{f, {ID: "f-2", Tenant: h.Tenant, Kind: "credential_rotation", Severity: "medium", Key: agent}}}
	}
	add(answerVector{Name: "findings", Kind: "findings", Subject: tenant, Expect: "ok", Actions: okAll(nodes)}, findingsAnswer(head, nodes))
	ns := clone()
	ns[2].Action.Target += "x"
	want := okAll(ns)
	want[ns[2].ID] = "leaf-mismatch"
	add(answerVector{Name: "findings evidence record changed", Kind: "findings", Subject: tenant, Expect: "ok", Actions: want}, findingsAnswer(head, ns))
	fa := findingsAnswer(head, clone())
	fa.Findings[0].Evidence[1].ID = nodes[0].ID
	add(answerVector{Name: "findings evidence names another record", Kind: "findings", Subject: tenant, Expect: "fail", Reason: "evidence-mismatch"}, fa)
	fa = findingsAnswer(head, clone())
	fa.Findings[0].Evidence[1].LogIndex++
	add(answerVector{Name: "findings evidence at another index", Kind: "findings", Subject: tenant, Expect: "fail", Reason: "evidence-mismatch"}, fa)
	fa = findingsAnswer(head, clone())
	fa.Findings[1].Tenant = "other-bank"
	add(answerVector{Name: "finding of another tenant", Kind: "findings", Subject: tenant, Expect: "fail", Reason: "wrong-tenant"}, fa)
}

func monitorVectors(t testing.TB, vs *vectors, tl *testLog) {
	k := tl.key
	note := func(size uint64) string { return string(tl.cps[size].Note) }
	forged := func(size uint64) string {
		r := make([]byte, 32)
		rand.Read(r)
		return signNote(t, fmt.Sprintf("%s\n%d\n%s\n", origin, size, base64.StdEncoding.EncodeToString(r)), k)
	}
	badProof := cloneProof(tl.consistency(t, 8, 17))
	badProof[0][0] ^= 1
	cases := []monitorVector{
		{Name: "log grows", Steps: []monitorStep{
			{note(4), nil, "first"},
			{note(8), tl.consistency(t, 4, 8), "advanced"},
			{note(8), nil, "same"},
			{note(33), tl.consistency(t, 8, 33), "advanced"},
			{note(50), tl.consistency(t, 33, 50), "advanced"},
		}},
		{Name: "rollback", Steps: []monitorStep{
			{note(17), nil, "first"},
			{note(9), nil, "rollback"},
			{note(17), nil, "same"},
		}},
		{Name: "fork at the same size", Steps: []monitorStep{
			{note(8), nil, "first"},
			{forged(8), nil, "fork"},
		}},
		{Name: "fork at a larger size", Steps: []monitorStep{
			{note(8), nil, "first"},
			{forged(17), tl.consistency(t, 8, 17), "fork"},
			{note(17), tl.consistency(t, 8, 17), "advanced"},
		}},
		{Name: "bad consistency proof", Steps: []monitorStep{
			{note(8), nil, "first"},
			{note(17), badProof, "fork"},
			{note(17), tl.consistency(t, 8, 17)[1:], "fork"},
			{note(17), tl.consistency(t, 8, 17), "advanced"},
		}},
	}
	for _, c := range cases {
		// The Go verifier's verdict on each step, by the monitor's rules.
		var last *ledger.Checkpoint
		for i, s := range c.Steps {
			cp, err := ledger.OpenCheckpoint([]byte(s.Note), k.v)
			if err != nil {
				t.Fatal(err)
			}
			var got string
			switch {
			case last == nil:
				got = "first"
			case cp.Size < last.Size:
				got = "rollback"
			case cp.Size == last.Size && bytes.Equal(cp.Hash, last.Hash):
				got = "same"
			case cp.Size == last.Size:
				got = "fork"
			case ledger.VerifyConsistency(*last, cp, s.Consistency) != nil:
				got = "fork"
			default:
				got = "advanced"
			}
			if got != s.Expect {
				t.Fatalf("monitor vector %q step %d: Go says %s, want %s", c.Name, i, got, s.Expect)
			}
			if got == "first" || got == "advanced" {
				last = &cp
			}
		}
		c.VKey = k.vkey
		vs.Monitor = append(vs.Monitor, c)
	}
}

// TestGoVerifierAgrees builds the vectors alone: every expectation is asserted against the Go
// verifier while they are made.
func TestGoVerifierAgrees(t *testing.T) {
	vs := makeVectors(t)
	t.Logf("%d key, %d checkpoint, %d inclusion, %d consistency, %d record, %d answer, %d monitor vectors",
		len(vs.Keys), len(vs.Checkpoints), len(vs.Inclusion), len(vs.Consistency), len(vs.Records), len(vs.Answers), len(vs.Monitor))
}
