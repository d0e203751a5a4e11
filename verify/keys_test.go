package verify

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/ledger"
	"golang.org/x/mod/sumdb/note"
)

const keysOrigin = "lineage.test/keys"

// testChain makes n+1 keys and the n statements rotating each to the next.
func testChain(t testing.TB, n int) (skeys, vkeys []string, statements [][]byte) {
	t.Helper()
	for range n + 1 {
		s, v, err := ledger.GenerateKey(keysOrigin)
		if err != nil {
			t.Fatal(err)
		}
		skeys, vkeys = append(skeys, s), append(vkeys, v)
	}
	for i := range n {
		r, err := ledger.SignRotation(skeys[i], skeys[i+1], uint64(10*i), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		statements = append(statements, r.Note)
	}
	return skeys, vkeys, statements
}

func TestFollowRotations(t *testing.T) {
	skeys, vkeys, sts := testChain(t, 3)
	// From the oldest key forward, from the newest back, from the middle both ways; the
	// statements in any order.
	for _, trusted := range vkeys {
		got, err := FollowRotations(trusted+"\n", [][]byte{sts[2], sts[0], sts[1]})
		if err != nil {
			t.Fatalf("from key %s: %v", trusted, err)
		}
		if !slices.Equal(got, vkeys) {
			t.Fatalf("from key %s: keys %v, want %v", trusted, got, vkeys)
		}
	}
	if got, err := FollowRotations(vkeys[0], nil); err != nil || !slices.Equal(got, vkeys[:1]) {
		t.Fatalf("no statements: %v, %v", got, err)
	}

	// A statement moving the newest key to an attacker's, signed by the attacker's key and
	// another key of theirs in place of the newest key.
	evil, evilV, _ := ledger.GenerateKey(keysOrigin)
	stranger, _, _ := ledger.GenerateKey(keysOrigin)
	text := "lineage.key-rotation/v1\norigin " + keysOrigin + "\nold " + vkeys[3] + "\nnew " + evilV + "\nsize 99\ntime 2026-01-01T00:00:00Z\n"
	forged := signNote(t, text, stranger, evil)
	if _, err := FollowRotations(vkeys[0], append(slices.Clone(sts), forged)); err == nil {
		t.Fatal("followed a statement not signed by the key it retires")
	}
	// The same forgery made by the attacker with the retired key of a fork: two successors.
	fork, err := ledger.SignRotation(skeys[1], evil, 11, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FollowRotations(vkeys[0], append(slices.Clone(sts), fork.Note)); err == nil {
		t.Fatal("followed a fork")
	}
	// A chain that does not contain the trusted key.
	_, other, _ := ledger.GenerateKey(keysOrigin)
	if _, err := FollowRotations(other, sts); err == nil {
		t.Fatal("followed statements unrelated to the trusted key")
	}
	// A key of another log.
	_, foreign, _ := ledger.GenerateKey("lineage.test/elsewhere")
	if _, err := FollowRotations(foreign, sts); err == nil {
		t.Fatal("followed statements of another log")
	}
	// A gap: the middle statement withheld.
	if _, err := FollowRotations(vkeys[0], [][]byte{sts[0], sts[2]}); err == nil {
		t.Fatal("followed a chain with a gap")
	}
}

func signNote(t *testing.T, text string, skeys ...string) []byte {
	t.Helper()
	var ss []note.Signer
	for _, k := range skeys {
		s, err := note.NewSigner(k)
		if err != nil {
			t.Fatal(err)
		}
		ss = append(ss, s)
	}
	b, err := note.Sign(&note.Note{Text: text}, ss...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeKeys(t *testing.T) {
	_, vkeys, sts := testChain(t, 1)
	good, _ := json.Marshal(Keys{Origin: keysOrigin, Current: vkeys[1], Rotations: []string{string(sts[0])}})
	k, err := DecodeKeys(good)
	if err != nil {
		t.Fatal(err)
	}
	if k.Current != vkeys[1] || len(k.Rotations) != 1 {
		t.Fatalf("decoded %+v", k)
	}
	for name, b := range map[string]string{
		"unknown field":  `{"origin":"o","current":"c","rotations":[],"extra":1}`,
		"trailing data":  `{"origin":"o","current":"c","rotations":[]} {}`,
		"no rotations":   `{"origin":"o","current":"c"}`,
		"no current":     `{"origin":"o","rotations":[]}`,
		"not an object":  `[]`,
		"oversize":       `{"origin":"` + strings.Repeat("o", MaxKeysAnswer) + `","current":"c","rotations":[]}`,
		"wrong type":     `{"origin":"o","current":"c","rotations":"x"}`,
		"duplicate null": `null`,
	} {
		if _, err := DecodeKeys([]byte(b)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzDecodeKeys: the /v1/keys decoder never panics, and what it accepts re-encodes to an
// answer it accepts again with the same content.
func FuzzDecodeKeys(f *testing.F) {
	f.Add([]byte(`{"origin":"o","current":"o+00000000+AQ","rotations":[]}`))
	f.Add([]byte(`{"origin":"o","current":"c","rotations":["x"],"rotations":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := DecodeKeys(b)
		if err != nil {
			return
		}
		again, err := DecodeKeys(mustJSON(json.Marshal(k)))
		if err != nil || again.Origin != k.Origin || again.Current != k.Current || !slices.Equal(again.Rotations, k.Rotations) {
			t.Fatalf("re-encoded answer: %+v, %v", again, err)
		}
		_, _ = FollowRotations(k.Current, nil)
	})
}

func mustJSON[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
