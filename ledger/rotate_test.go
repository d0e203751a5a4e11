package ledger

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

const testOrigin = "lineage.test/rotate"

// signCheckpoint signs a checkpoint of size n with the private key skey.
func signCheckpoint(t *testing.T, skey string, n uint64) []byte {
	t.Helper()
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	hash := bytes.Repeat([]byte{byte(n)}, 32)
	raw, err := note.Sign(&note.Note{Text: string(log.Checkpoint{Origin: s.Name(), Size: n, Hash: hash}.Marshal())}, s)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func readKey(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func mustVerifier(t *testing.T, vkey string) note.Verifier {
	t.Helper()
	v, err := NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestRotateKeyChain rotates a key twice and checks what each key still verifies, the files
// left behind and their modes, and the keyring the daemon loads.
func TestRotateKeyChain(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "keys", "log.key")
	_, vkey0, err := LoadOrCreateSigner(keyFile, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	skey0 := readKey(t, keyFile)
	cp0 := signCheckpoint(t, skey0, 10)

	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	res1, err := RotateKey(keyFile, 10, now)
	if err != nil {
		t.Fatal(err)
	}
	if res1.Rotation.Old != vkey0 || res1.Rotation.Size != 10 || !res1.Rotation.Time.Equal(now) || res1.Resumed {
		t.Fatalf("rotation %+v", res1.Rotation)
	}
	skey1 := readKey(t, keyFile)
	if skey1 == skey0 {
		t.Fatal("the key file still holds the old key")
	}
	if got := readKey(t, keyFile+".pub"); got != res1.Rotation.New {
		t.Fatalf("log.key.pub = %s, want the new key %s", got, res1.Rotation.New)
	}
	if got := readKey(t, res1.RetiredKey); got != skey0 {
		t.Fatal("the retired key file does not hold the old private key")
	}
	if got := readKey(t, res1.RetiredPub); got != vkey0 {
		t.Fatal("the retired .pub does not hold the old verifier")
	}
	for _, p := range []string{keyFile, res1.RetiredKey} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", p, fi.Mode().Perm())
		}
	}
	if _, err := os.Stat(keyFile + pendingSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s%s left behind: %v", keyFile, pendingSuffix, err)
	}
	// The daemon's key loading takes the rotated key.
	if _, vkey, err := LoadOrCreateSigner(keyFile, testOrigin); err != nil || vkey != res1.Rotation.New {
		t.Fatalf("LoadOrCreateSigner after rotation: %s, %v", vkey, err)
	}

	cp1 := signCheckpoint(t, skey1, 20)
	res2, err := RotateKey(keyFile, 20, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if res2.Rotation.Old != res1.Rotation.New {
		t.Fatalf("second rotation retires %s, want %s", res2.Rotation.Old, res1.Rotation.New)
	}
	cp2 := signCheckpoint(t, readKey(t, keyFile), 30)

	kr, chain, err := LoadKeyring(keyFile, readKey(t, keyFile+".pub"))
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 2 || len(kr.Verifiers()) != 3 {
		t.Fatalf("chain %d statements, keyring %d keys; want 2 and 3", len(chain), len(kr.Verifiers()))
	}
	if kr.KeyHash() != mustVerifier(t, res2.Rotation.New).KeyHash() {
		t.Fatal("the keyring's current key is not the newest")
	}
	for i, raw := range [][]byte{cp0, cp1, cp2} {
		cp, err := OpenCheckpoint(raw, kr)
		if err != nil {
			t.Fatalf("checkpoint %d with the keyring: %v", i, err)
		}
		if cp.Size != []uint64{10, 20, 30}[i] {
			t.Fatalf("checkpoint %d: size %d", i, cp.Size)
		}
	}
	// Each key alone verifies its own checkpoints only.
	keys := ChainKeys(chain)
	for i, k := range keys {
		for j, raw := range [][]byte{cp0, cp1, cp2} {
			_, err := OpenCheckpoint(raw, mustVerifier(t, k))
			if (err == nil) != (i == j) {
				t.Errorf("checkpoint %d with key %d alone: err %v", j, i, err)
			}
		}
	}
	// The key file format of `keys follow` (several lines) gives the same keyring.
	v, err := ParseVerifiers([]byte("# trusted keys\n" + strings.Join(keys, "\n") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCheckpoint(cp0, v); err != nil {
		t.Fatalf("oldest checkpoint with a three-line key file: %v", err)
	}
	if _, err := OpenCheckpoint(cp0, mustVerifier(t, keys[2])); err == nil {
		t.Fatal("the oldest checkpoint verified with the newest key alone")
	}
}

// TestRotateKeyResume interrupts a rotation after its statement is written (the new key still
// in log.key.new): the daemon's key loading refuses with a hint, and a second RotateKey
// finishes the rotation instead of starting another.
func TestRotateKeyResume(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "log.key")
	_, vkey0, err := LoadOrCreateSigner(keyFile, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	skey0 := readKey(t, keyFile)
	res, err := RotateKey(keyFile, 5, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Undo step 4: the state a crash between steps 3 and 4 leaves.
	if err := os.Rename(keyFile, keyFile+pendingSuffix); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte(skey0+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile+".pub", []byte(vkey0+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = LoadKeyring(keyFile, vkey0)
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("LoadKeyring after an interrupted rotation: %v, want a refusal naming the interruption", err)
	}
	again, err := RotateKey(keyFile, 5, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !again.Resumed || again.Rotation.New != res.Rotation.New {
		t.Fatalf("second RotateKey: resumed %v, new key %s; want the interrupted rotation finished (%s)", again.Resumed, again.Rotation.New, res.Rotation.New)
	}
	if _, chain, err := LoadKeyring(keyFile, readKey(t, keyFile+".pub")); err != nil || len(chain) != 1 {
		t.Fatalf("LoadKeyring after resuming: %d statements, %v", len(chain), err)
	}
}

// TestLoadKeyringRefusesForgery plants statements the daemon must refuse to start with.
func TestLoadKeyringRefusesForgery(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "log.key")
	if _, _, err := LoadOrCreateSigner(keyFile, testOrigin); err != nil {
		t.Fatal(err)
	}
	if _, err := RotateKey(keyFile, 3, time.Now()); err != nil {
		t.Fatal(err)
	}
	cur := readKey(t, keyFile)
	curV := readKey(t, keyFile+".pub")
	if _, _, err := LoadKeyring(keyFile, curV); err != nil {
		t.Fatal(err)
	}

	// A statement moving the current key on, signed by the new key and a stranger's key in
	// place of the current one.
	stranger, _, _ := GenerateKey(testOrigin)
	next, nextV, _ := GenerateKey(testOrigin)
	strangerS, _ := newSigner(stranger)
	nextS, _ := newSigner(next)
	text := rotationText(Rotation{Origin: testOrigin, Old: curV, New: nextV, Size: 9, Time: time.Now()})
	forged, err := note.Sign(&note.Note{Text: text}, strangerS, nextS)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(RotationsDir(keyFile), "2-forged.note")
	if err := os.WriteFile(p, forged, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadKeyring(keyFile, curV); err == nil {
		t.Fatal("a statement not signed by the key it retires was accepted")
	}
	os.Remove(p)

	// A genuine statement (signed by the current key) the key file does not follow: the key
	// file was not replaced, so the chain does not end at it.
	real, err := SignRotation(cur, next, 9, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, real.Note, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadKeyring(keyFile, curV); err == nil || !strings.Contains(err.Error(), "last rotation") {
		t.Fatalf("a chain that does not end at the key file: %v", err)
	}
	// And RotateKey refuses to extend it.
	if _, err := RotateKey(keyFile, 9, time.Now()); err == nil {
		t.Fatal("RotateKey extended a chain that does not end at the key file")
	}
}

func TestOpenRotationRefuses(t *testing.T) {
	old, oldV, _ := GenerateKey(testOrigin)
	nw, newV, _ := GenerateKey(testOrigin)
	other, _, _ := GenerateKey(testOrigin)
	foreign, _, _ := GenerateKey("lineage.test/other")
	oldS, _ := newSigner(old)
	newS, _ := newSigner(nw)
	otherS, _ := newSigner(other)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	good, err := SignRotation(old, nw, 42, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenRotation(good.Note); err != nil {
		t.Fatal(err)
	}
	if _, err := SignRotation(old, foreign, 42, now); err == nil {
		t.Fatal("a rotation to a key of another origin was signed")
	}
	text := rotationText(good)
	sign := func(text string, ss ...note.Signer) []byte {
		b, err := note.Sign(&note.Note{Text: text}, ss...)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := map[string][]byte{
		"old key only":          sign(text, oldS),
		"new key only":          sign(text, newS),
		"stranger for old":      sign(text, otherS, newS),
		"stranger for new":      sign(text, oldS, otherS),
		"a third signature":     sign(text, oldS, newS, otherS),
		"changed after signing": bytes.Replace(good.Note, []byte("size 42"), []byte("size 43"), 1),
		"wrong header":          sign(strings.Replace(text, RotationHeader, "lineage.key-rotation/v2", 1), oldS, newS),
		"extra line":            sign(text+"note hi\n", oldS, newS),
		"missing line":          sign(strings.Replace(text, "size 42\n", "", 1), oldS, newS),
		"lines swapped":         sign(strings.Replace(strings.Replace(text, "old ", "OLD ", 1), "new ", "old ", 1), oldS, newS),
		"leading zero size":     sign(strings.Replace(text, "size 42", "size 042", 1), oldS, newS),
		"negative size":         sign(strings.Replace(text, "size 42", "size -1", 1), oldS, newS),
		"non-UTC time":          sign(strings.Replace(text, "2026-01-02T03:04:05Z", "2026-01-02T04:04:05+01:00", 1), oldS, newS),
		"fractional time":       sign(strings.Replace(text, "2026-01-02T03:04:05Z", "2026-01-02T03:04:05.5Z", 1), oldS, newS),
		"double space":          sign(strings.Replace(text, "size 42", "size  42", 1), oldS, newS),
		"old equals new":        sign(strings.Replace(text, "new "+newV, "new "+oldV, 1), oldS),
		"origin mismatch":       sign(strings.Replace(text, "origin "+testOrigin, "origin lineage.test/x", 1), oldS, newS),
		"oversize":              append(bytes.Repeat([]byte("x"), MaxRotationSize), good.Note...),
		"not a note":            []byte(text),
	}
	for name, raw := range cases {
		if _, err := OpenRotation(raw); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestChainRotations(t *testing.T) {
	keys := make([]string, 5)
	for i := range keys {
		keys[i], _, _ = GenerateKey(testOrigin)
	}
	rot := func(i, j int, size uint64) Rotation {
		r, err := SignRotation(keys[i], keys[j], size, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r01, r12, r23 := rot(0, 1, 1), rot(1, 2, 5), rot(2, 3, 9)
	chain, err := ChainRotations([]Rotation{r23, r01, r12})
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 3 || chain[0].Old != r01.Old || chain[2].New != r23.New {
		t.Fatal("the chain is not ordered oldest first")
	}
	for name, rs := range map[string][]Rotation{
		"fork":          {r01, r12, rot(1, 4, 6)},
		"same new":      {r01, rot(4, 1, 0)},
		"gap":           {r01, r23},
		"cycle":         {r01, r12, rot(2, 0, 9)},
		"shrinking log": {r01, rot(1, 2, 0)},
	} {
		if _, err := ChainRotations(rs); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseVerifiersRefuses(t *testing.T) {
	_, a, _ := GenerateKey(testOrigin)
	_, b, _ := GenerateKey("lineage.test/other")
	for name, text := range map[string]string{
		"empty":         "\n# nothing\n",
		"two origins":   a + "\n" + b + "\n",
		"same key":      a + "\n" + a + "\n",
		"garbage":       a + "\nnot-a-key\n",
		"private key":   "PRIVATE+KEY+x+00000000+AQ==\n",
		"oversize file": strings.Repeat("#", MaxVerifierFile+1),
	} {
		if _, err := ParseVerifiers([]byte(text)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if v, err := ParseVerifiers([]byte(a + "\n")); err != nil {
		t.Fatal(err)
	} else if _, ok := v.(*Keyring); ok {
		t.Fatal("one key became a keyring")
	}
}

// FuzzRotationStatement: OpenRotation never panics, and what it accepts is exactly the text
// it would write, signed by the two keys it names.
func FuzzRotationStatement(f *testing.F) {
	old, _, _ := GenerateKey(testOrigin)
	nw, _, _ := GenerateKey(testOrigin)
	r, err := SignRotation(old, nw, 7, time.Unix(1700000000, 0))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(r.Note)
	f.Add(bytes.Replace(r.Note, []byte("size 7"), []byte("size 07"), 1))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := OpenRotation(raw)
		if err != nil {
			return
		}
		if !bytes.HasPrefix(raw, []byte(rotationText(r)+"\n")) {
			t.Fatalf("accepted text differs from its canonical form:\n%s", raw)
		}
		if r.Old == r.New || !bytes.Equal(r.Note, raw) {
			t.Fatal("accepted a statement with one key, or kept other bytes")
		}
		if _, err := OpenRotation(r.Note); err != nil {
			t.Fatalf("reopen: %v", err)
		}
	})
}

// FuzzParseVerifiers: a key file never panics the parser, and a keyring it returns has keys of
// one origin with distinct hashes.
func FuzzParseVerifiers(f *testing.F) {
	_, a, _ := GenerateKey(testOrigin)
	_, b, _ := GenerateKey(testOrigin)
	f.Add([]byte(a + "\n"))
	f.Add([]byte("# keys\n" + a + "\n\n" + b + "\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		v, err := ParseVerifiers(text)
		if err != nil {
			return
		}
		seen := map[uint32]bool{}
		for _, k := range VerifiersOf(v) {
			if k.Name() != v.Name() || seen[k.KeyHash()] {
				t.Fatalf("keyring with mixed names or a repeated hash: %s", text)
			}
			seen[k.KeyHash()] = true
		}
	})
}
