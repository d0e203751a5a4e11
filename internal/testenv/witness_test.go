package testenv_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/formats/witness"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/lineage-audit/lineage/internal/testenv"
	"github.com/lineage-audit/lineage/verify/witnesstest"
)

// TestWitness runs a real litewitness: it cosigns a log's first checkpoint with a cosignature
// that verifies under Witness.VKey, answers a stale "old" size with 409 and the size it holds,
// refuses a foreign key and a bad proof, and keeps its state across Stop and Start.
func TestWitness(t *testing.T) {
	w := testenv.StartWitness(t, "witness-1.lineage.test")

	// The verifier key is a well-formed cosignature/v1 key whose hash field is its key hash.
	wv, err := fnote.NewVerifierForCosignatureV1(w.VKey)
	if err != nil {
		t.Fatalf("witness VKey %q: %v", w.VKey, err)
	}
	if wv.Name() != w.Name {
		t.Fatalf("witness VKey names %q, want %q", wv.Name(), w.Name)
	}
	parts := strings.SplitN(w.VKey, "+", 3) // the base64 key may contain '+'
	if len(parts) != 3 || parts[1] != fmt.Sprintf("%08x", wv.KeyHash()) {
		t.Fatalf("witness VKey %q: hash field does not match key hash %08x", w.VKey, wv.KeyHash())
	}
	if key, err := base64.StdEncoding.DecodeString(parts[2]); err != nil || len(key) != 33 || key[0] != 0x04 {
		t.Fatalf("witness VKey %q: key is not 0x04||Ed25519 public key", w.VKey)
	}

	// The policy line parses and points at the add-checkpoint endpoint.
	policy, err := witness.ParsePolicy([]byte(w.PolicyLine() + "\nquorum " + w.Name + "\n"))
	if err != nil {
		t.Fatalf("ParsePolicy(%q): %v", w.PolicyLine(), err)
	}
	endpoints := policy.Endpoints()
	if _, ok := endpoints[w.URL+"/add-checkpoint"]; !ok || len(endpoints) != 1 {
		t.Fatalf("policy endpoints %v, want just %s/add-checkpoint", endpoints, w.URL)
	}

	origin := "lineage.test/witness-test/" + hex.EncodeToString(randBytes(t, 8))
	logKey := witnesstest.NewLogKey(t, origin)
	logSigner, logVerifier, vkey := logKey.Signer, logKey.Verifier, logKey.VKey
	w.AddLog(t, origin, vkey)
	w.AddLog(t, origin, vkey) // idempotent
	if got := w.LogSize(t, origin); got != 0 {
		t.Fatalf("new log: witness size %d, want 0", got)
	}

	tree := newTestTree(t, 7)
	cp4 := tree.checkpoint(t, origin, logSigner, 4)
	cp7 := tree.checkpoint(t, origin, logSigner, 7)

	// 0 → 4: a first checkpoint needs no proof.
	status, body, _ := addCheckpoint(t, w, 0, nil, cp4)
	if status != http.StatusOK {
		t.Fatalf("add-checkpoint 0→4: %d %q, want 200", status, body)
	}
	checkCosigned(t, w, policy, cp4, body, logVerifier, wv)
	if got := w.LogSize(t, origin); got != 4 {
		t.Fatalf("after 0→4: witness size %d, want 4", got)
	}

	// A stale old size: 409 with the size the witness holds.
	status, body, ctype := addCheckpoint(t, w, 0, nil, cp7)
	if status != http.StatusConflict || string(body) != "4\n" || ctype != "text/x.tlog.size" {
		t.Fatalf("add-checkpoint with old 0 after 4: %d %q (%s), want 409 \"4\\n\" text/x.tlog.size", status, body, ctype)
	}

	// A checkpoint signed by a key the witness does not know for the origin: 403.
	otherSigner := witnesstest.NewLogKey(t, origin).Signer
	status, body, _ = addCheckpoint(t, w, 4, tree.consistency(t, 4, 7), tree.checkpoint(t, origin, otherSigner, 7))
	if status != http.StatusForbidden {
		t.Fatalf("add-checkpoint signed by an unknown key: %d %q, want 403", status, body)
	}

	// A tampered consistency proof: 422, and the witness stays at 4.
	bad := tree.consistency(t, 4, 7)
	bad[0] = sha256.New().Sum(nil)
	status, body, _ = addCheckpoint(t, w, 4, bad, cp7)
	if status != http.StatusUnprocessableEntity {
		t.Fatalf("add-checkpoint with a bad proof: %d %q, want 422", status, body)
	}

	// Stop: nothing answers. Start: same URL, same key, same state.
	w.Stop(t)
	if resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(w.URL + "/"); err == nil {
		resp.Body.Close()
		t.Fatalf("witness answered %s after Stop", resp.Status)
	}
	w.Start(t)
	status, body, _ = addCheckpoint(t, w, 0, nil, cp7)
	if status != http.StatusConflict || string(body) != "4\n" {
		t.Fatalf("after restart, add-checkpoint with old 0: %d %q, want 409 \"4\\n\"", status, body)
	}
	status, body, _ = addCheckpoint(t, w, 4, tree.consistency(t, 4, 7), cp7)
	if status != http.StatusOK {
		t.Fatalf("after restart, add-checkpoint 4→7: %d %q, want 200", status, body)
	}
	checkCosigned(t, w, policy, cp7, body, logVerifier, wv)
	if got := w.LogSize(t, origin); got != 7 {
		t.Fatalf("after 4→7: witness size %d, want 7", got)
	}

	// Key rotation: once the old key is removed, its checkpoints are refused.
	w.RemoveLogKey(t, origin, vkey)
	status, body, _ = addCheckpoint(t, w, 7, nil, cp7)
	if status != http.StatusForbidden {
		t.Fatalf("add-checkpoint after its key was removed: %d %q, want 403", status, body)
	}
}

// checkCosigned checks that resp is one cosignature line from w over the checkpoint cp, that
// the cosigned checkpoint opens with both the log's and the witness's key, that its timestamp
// is current, and that it satisfies a policy quorum of w.
func checkCosigned(t *testing.T, w *testenv.Witness, policy witness.Group, cp, resp []byte, logV, witnessV note.Verifier) {
	t.Helper()
	if !strings.HasPrefix(string(resp), "— "+w.Name+" ") || strings.Count(string(resp), "\n") != 1 || !strings.HasSuffix(string(resp), "\n") {
		t.Fatalf("add-checkpoint answer %q is not one cosignature line from %s", resp, w.Name)
	}
	cosigned := append(append([]byte{}, cp...), resp...)
	n, err := note.Open(cosigned, note.VerifierList(logV, witnessV))
	if err != nil {
		t.Fatalf("open cosigned checkpoint: %v\n%s", err, cosigned)
	}
	if len(n.Sigs) != 2 {
		t.Fatalf("cosigned checkpoint verified %d signatures, want 2 (log and witness)", len(n.Sigs))
	}
	var found bool
	for _, s := range n.Sigs {
		if s.Name == w.Name && s.Hash == witnessV.KeyHash() {
			found = true
			ts, err := fnote.CoSigV1Timestamp(s)
			if err != nil {
				t.Fatalf("cosignature timestamp: %v", err)
			}
			if d := time.Since(ts); d < -time.Minute || d > time.Minute {
				t.Fatalf("cosignature timestamp %v is %v away from now", ts, d)
			}
		}
	}
	if !found {
		t.Fatalf("no verified signature from %s in %q", w.Name, cosigned)
	}
	// The witness's cosignature alone (without the log's signature) verifies with its key.
	if _, err := note.Open(cosigned, note.VerifierList(witnessV)); err != nil {
		t.Fatalf("open with the witness key only: %v", err)
	}
	if !policy.Satisfied(cosigned) {
		t.Fatalf("policy not satisfied by %q", cosigned)
	}
	if policy.Satisfied(cp) {
		t.Fatalf("policy satisfied by the checkpoint without the cosignature")
	}
}

// addCheckpoint POSTs a C2SP tlog-witness add-checkpoint request: "old <size>", the
// consistency proof lines, an empty line, then the signed checkpoint.
func addCheckpoint(t *testing.T, w *testenv.Witness, old uint64, proof [][]byte, cp []byte) (int, []byte, string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "old %d\n", old)
	for _, h := range proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h) + "\n")
	}
	b.WriteString("\n")
	b.Write(cp)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Post(w.URL+"/add-checkpoint", "text/plain", strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("add-checkpoint: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		t.Fatalf("add-checkpoint: read answer: %v", err)
	}
	return resp.StatusCode, body, resp.Header.Get("Content-Type")
}

// testTree is an RFC 6962 Merkle tree over random leaves.
type testTree struct {
	leafHashes [][]byte
}

func newTestTree(t *testing.T, n int) *testTree {
	tr := &testTree{}
	for i := 0; i < n; i++ {
		tr.leafHashes = append(tr.leafHashes, rfc6962.DefaultHasher.HashLeaf(randBytes(t, 32)))
	}
	return tr
}

// root is the hash of the first size leaves, from a compact range.
func (tr *testTree) root(t *testing.T, size uint64) []byte {
	t.Helper()
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	for _, h := range tr.leafHashes[:size] {
		if err := r.Append(h, nil); err != nil {
			t.Fatal(err)
		}
	}
	h, err := r.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// subtree is the RFC 6962 hash of the leaves [begin, end), which proof node IDs cover.
func (tr *testTree) subtree(begin, end uint64) []byte {
	if end-begin == 1 {
		return tr.leafHashes[begin]
	}
	k := uint64(1)
	for k*2 < end-begin {
		k *= 2
	}
	return rfc6962.DefaultHasher.HashChildren(tr.subtree(begin, begin+k), tr.subtree(begin+k, end))
}

// checkpoint is the C2SP tlog-checkpoint of the first size leaves, signed by s.
func (tr *testTree) checkpoint(t *testing.T, origin string, s note.Signer, size uint64) []byte {
	t.Helper()
	text := origin + "\n" + strconv.FormatUint(size, 10) + "\n" + base64.StdEncoding.EncodeToString(tr.root(t, size)) + "\n"
	cp, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// consistency is the RFC 6962 consistency proof from size1 to size2, checked before use.
func (tr *testTree) consistency(t *testing.T, size1, size2 uint64) [][]byte {
	t.Helper()
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		t.Fatal(err)
	}
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		begin, end := id.Coverage()
		hashes[i] = tr.subtree(begin, end)
	}
	p, err := nodes.Rehash(hashes, rfc6962.DefaultHasher.HashChildren)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, size1, size2, p, tr.root(t, size1), tr.root(t, size2)); err != nil {
		t.Fatalf("test tree: consistency proof %d→%d: %v", size1, size2, err)
	}
	return p
}

func randBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWitnesses runs three witnesses side by side, each with its own key, port and database,
// and checks a 2-of-3 policy: two cosignatures satisfy it, one does not.
func TestWitnesses(t *testing.T) {
	ws := []*testenv.Witness{
		testenv.StartWitness(t, "w1.lineage.test"),
		testenv.StartWitness(t, "w2.lineage.test"),
		testenv.StartWitness(t, "w3.lineage.test"),
	}
	policyText := ""
	for _, w := range ws {
		policyText += w.PolicyLine() + "\n"
	}
	policyText += "group quorum-group 2 w1.lineage.test w2.lineage.test w3.lineage.test\nquorum quorum-group\n"
	policy, err := witness.ParsePolicy([]byte(policyText))
	if err != nil {
		t.Fatalf("ParsePolicy:\n%s: %v", policyText, err)
	}
	if n := len(policy.Endpoints()); n != 3 {
		t.Fatalf("policy has %d endpoints, want 3", n)
	}

	origin := "lineage.test/witnesses-test/" + hex.EncodeToString(randBytes(t, 8))
	logKey := witnesstest.NewLogKey(t, origin)
	cp := newTestTree(t, 3).checkpoint(t, origin, logKey.Signer, 3)
	cosigned := append([]byte{}, cp...)
	for i, w := range ws[:2] {
		for _, other := range ws[i+1:] {
			if w.VKey == other.VKey || w.URL == other.URL {
				t.Fatalf("witnesses %s and %s share a key or a URL", w.Name, other.Name)
			}
		}
		w.AddLog(t, origin, logKey.VKey)
		status, body, _ := addCheckpoint(t, w, 0, nil, cp)
		if status != http.StatusOK {
			t.Fatalf("%s: add-checkpoint: %d %q", w.Name, status, body)
		}
		cosigned = append(cosigned, body...)
		if got, want := policy.Satisfied(cosigned), i == 1; got != want {
			t.Fatalf("after %d cosignatures: policy satisfied = %v, want %v", i+1, got, want)
		}
	}
	// The third witness does not know the log: it refuses the checkpoint.
	if status, body, _ := addCheckpoint(t, ws[2], 0, nil, cp); status != http.StatusForbidden {
		t.Fatalf("%s without the log registered: %d %q, want 403", ws[2].Name, status, body)
	}
}
