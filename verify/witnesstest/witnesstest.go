// Package witnesstest makes real witness cosignatures for tests: Ed25519 cosignature/v1 keys
// (C2SP tlog-cosignature) made with transparency-dev/formats/note, cosignature lines appended to
// a checkpoint note the way a witness's answer is appended by the log (ledger/witness), witness
// policy text for verify.ParseWitnessPolicy, ordinary Ed25519 note keys for the log whose
// checkpoints are cosigned, and corrupted signature lines.
//
// It imports nothing of Lineage, so the tests of any package (ledger/witness, verify,
// internal/testenv, …) may use it without an import cycle.
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
	// Verifier verifies its cosignatures (a cosignature/v1 verifier of VKey).
	Verifier note.Verifier
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
	v, err := fnote.NewVerifierForCosignatureV1(cvkey)
	if err != nil {
		t.Fatal(err)
	}
	return Witness{Name: name, Signer: s, Verifier: v, VKey: cvkey}
}

// LogKey is a log's checkpoint key: an ordinary Ed25519 note key, the kind ledger.GenerateKey
// makes.
type LogKey struct {
	Signer   note.Signer
	Verifier note.Verifier
	// VKey is the verifier key (name+hash+base64).
	VKey string
}

// NewLogKey makes a log key named origin.
func NewLogKey(t testing.TB, origin string) LogKey {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
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
	return LogKey{Signer: s, Verifier: v, VKey: vkey}
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

// CorruptSig changes one signature byte of the signature line of the note n by the key name,
// leaving the line well-formed; it fails the test when n has no such line.
func CorruptSig(t testing.TB, n []byte, name string) []byte {
	t.Helper()
	lines := strings.Split(string(n), "\n")
	for i, line := range lines {
		if strings.HasPrefix(line, "— "+name+" ") {
			b := []byte(line)
			// The last base64 characters encode signature bytes; swap one for another.
			j := len(b) - 4
			if b[j] == 'A' {
				b[j] = 'B'
			} else {
				b[j] = 'A'
			}
			lines[i] = string(b)
			return []byte(strings.Join(lines, "\n"))
		}
	}
	t.Fatalf("witnesstest: no signature line by %s in %q", name, n)
	return nil
}
