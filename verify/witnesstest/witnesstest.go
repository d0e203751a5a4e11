// Package witnesstest makes real witness cosignatures for tests: Ed25519 cosignature/v1 keys
// (C2SP tlog-cosignature) made with transparency-dev/formats/note, cosignature lines appended to
// a checkpoint note the way a witness's answer is appended by the log (ledger/witness), and
// witness policy text for verify.ParseWitnessPolicy.
package witnesstest

import (
	"crypto/rand"
	"fmt"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// Witness is a test witness: its cosigner and its cosignature/v1 verifier key.
type Witness struct {
	Name   string
	Signer note.Signer
	// VKey is the cosignature/v1 verifier key (type 0x04) a policy names.
	VKey string
}

// New makes a witness key named name.
func New(t testing.TB, name string) Witness {
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
	return Witness{Name: name, Signer: s, VKey: cvkey}
}

// Cosign appends the cosignatures of ws to a checkpoint note signed by the log (logV opens it).
func Cosign(t testing.TB, checkpoint []byte, logV note.Verifier, ws ...Witness) []byte {
	t.Helper()
	n, err := note.Open(checkpoint, note.VerifierList(logV))
	if err != nil {
		t.Fatalf("witnesstest: open checkpoint: %v", err)
	}
	signers := make([]note.Signer, len(ws))
	for i, w := range ws {
		signers[i] = w.Signer
	}
	// note.Sign keeps the signatures already on n (the log's, and those of unknown keys) and
	// appends the new ones.
	n.Sigs = append(n.Sigs, n.UnverifiedSigs...)
	n.UnverifiedSigs = nil
	out, err := note.Sign(n, signers...)
	if err != nil {
		t.Fatalf("witnesstest: cosign: %v", err)
	}
	return out
}

// Policy renders a policy naming ws (URLs https://NAME.example/) with the quorum line
// "group q N w1 w2 …" / "quorum q".
func Policy(threshold string, ws ...Witness) []byte {
	var b strings.Builder
	b.WriteString("# test witness policy\n")
	names := make([]string, len(ws))
	for i, w := range ws {
		fmt.Fprintf(&b, "witness %s %s https://%s.example/\n", w.Name, w.VKey, w.Name)
		names[i] = w.Name
	}
	fmt.Fprintf(&b, "group q %s %s\nquorum q\n", threshold, strings.Join(names, " "))
	return []byte(b.String())
}
