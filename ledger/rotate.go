package ledger

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lineage-audit/lineage/internal/atomicfile"
	"golang.org/x/mod/sumdb/note"
)

// Key rotation (docs/KEY-ROTATION.md). The log's origin never changes, and so neither does the
// name of its key: an old and a new key differ by key hash. A rotation statement is a signed note
// whose text is exactly
//
//	lineage.key-rotation/v1
//	origin <origin>
//	old <old verifier key>
//	new <new verifier key>
//	size <log size at the rotation>
//	time <RFC 3339 UTC time, seconds>
//
// signed by both keys: the old key authorizes the new one, and the new key's signature proves
// that whoever made the statement holds it. Statements are kept next to the key file, in
// rotations/<n>-<new key hash>.note, and served by GET /v1/keys. Every key of the chain keeps
// verifying the checkpoints it signed (Keyring).

// RotationHeader is the first line of a rotation statement.
const RotationHeader = "lineage.key-rotation/v1"

// MaxRotationSize bounds a rotation statement (note text and both signature lines); a real one
// is under 1.5 KiB even with a 256-byte origin.
const MaxRotationSize = 4096

// MaxRotations bounds the statements of one log's chain.
const MaxRotations = 256

// Rotation is an opened rotation statement.
type Rotation struct {
	Origin string
	// Old and New are verifier keys ("name+hash+base64"), in canonical form.
	Old, New string
	// Size is the log's size when the old key was retired: the old key signed checkpoints up
	// to this size, the new key signs every later one.
	Size uint64
	Time time.Time
	// Note is the signed statement, byte for byte.
	Note []byte
}

// rotationText is the note text of r.
func rotationText(r Rotation) string {
	return fmt.Sprintf("%s\norigin %s\nold %s\nnew %s\nsize %d\ntime %s\n",
		RotationHeader, r.Origin, r.Old, r.New, r.Size, r.Time.UTC().Format(time.RFC3339))
}

// SignRotation makes the rotation statement from the private note key oldKey to newKey (both
// named by the log's origin), at log size size and time now, and returns it opened.
func SignRotation(oldKey, newKey string, size uint64, now time.Time) (Rotation, error) {
	oldS, err := newSigner(oldKey)
	if err != nil {
		return Rotation{}, fmt.Errorf("ledger: sign rotation: old key: %w", err)
	}
	newS, err := newSigner(newKey)
	if err != nil {
		return Rotation{}, fmt.Errorf("ledger: sign rotation: new key: %w", err)
	}
	r := Rotation{Origin: oldS.Name(), Old: oldS.vkey, New: newS.vkey, Size: size, Time: now.UTC().Truncate(time.Second)}
	raw, err := note.Sign(&note.Note{Text: rotationText(r)}, oldS, newS)
	if err != nil {
		return Rotation{}, fmt.Errorf("ledger: sign rotation: %w", err)
	}
	// Open what was signed: the statement must pass the reader's checks (names, distinct
	// keys, size bound) before anyone relies on it.
	return OpenRotation(raw)
}

// OpenRotation parses a rotation statement strictly (exact lines, in order, canonical keys,
// size and time; at most MaxRotationSize bytes) and checks that it carries exactly two
// signatures, valid, one by the old key and one by the new key. It proves that the holders of
// both keys made the statement; whether the old key is one to trust is the caller's question
// (ChainRotations, verify.FollowRotations).
func OpenRotation(raw []byte) (Rotation, error) {
	if len(raw) > MaxRotationSize {
		return Rotation{}, fmt.Errorf("ledger: rotation statement: %d bytes, over %d", len(raw), MaxRotationSize)
	}
	// The text first, without trusting any key yet: Open with no known key returns the
	// (structurally valid) note inside an UnverifiedNoteError.
	_, err := note.Open(raw, note.VerifierList())
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		return Rotation{}, fmt.Errorf("ledger: rotation statement: not a signed note: %v", err)
	}
	r, err := parseRotationText(unverified.Note.Text)
	if err != nil {
		return Rotation{}, err
	}
	if n := bytes.Count(raw[len(unverified.Note.Text)+1:], []byte("\n")); n != 2 {
		return Rotation{}, fmt.Errorf("ledger: rotation statement: %d signature lines, want 2 (old key, new key)", n)
	}
	oldV, err := note.NewVerifier(r.Old)
	if err != nil {
		return Rotation{}, fmt.Errorf("ledger: rotation statement: old key: %w", err)
	}
	newV, err := note.NewVerifier(r.New)
	if err != nil {
		return Rotation{}, fmt.Errorf("ledger: rotation statement: new key: %w", err)
	}
	if oldV.KeyHash() == newV.KeyHash() {
		return Rotation{}, errors.New("ledger: rotation statement: the old and new keys have the same key hash")
	}
	n, err := note.Open(raw, note.VerifierList(oldV, newV))
	if err != nil {
		return Rotation{}, fmt.Errorf("ledger: rotation statement %s → %s: signature: %w", keyID(r.Old), keyID(r.New), err)
	}
	if len(n.UnverifiedSigs) != 0 || len(n.Sigs) != 2 {
		return Rotation{}, fmt.Errorf("ledger: rotation statement %s → %s: must be signed by both keys, and by them only (%d valid, %d unknown signatures)",
			keyID(r.Old), keyID(r.New), len(n.Sigs), len(n.UnverifiedSigs))
	}
	r.Note = bytes.Clone(raw)
	return r, nil
}

// parseRotationText parses the note text of a rotation statement.
func parseRotationText(text string) (Rotation, error) {
	bad := func(format string, a ...any) (Rotation, error) {
		return Rotation{}, fmt.Errorf("ledger: rotation statement: "+format, a...)
	}
	body, ok := strings.CutSuffix(text, "\n")
	if !ok {
		return bad("text does not end with a newline")
	}
	lines := strings.Split(body, "\n")
	if len(lines) != 6 {
		return bad("%d lines, want 6", len(lines))
	}
	if lines[0] != RotationHeader {
		return bad("first line is not %q", RotationHeader)
	}
	var vals [5]string
	for i, key := range []string{"origin", "old", "new", "size", "time"} {
		v, ok := strings.CutPrefix(lines[i+1], key+" ")
		if !ok || v == "" || strings.ContainsAny(v, " \t") {
			return bad("line %d: want %q followed by one value", i+2, key)
		}
		vals[i] = v
	}
	r := Rotation{Origin: vals[0], Old: vals[1], New: vals[2]}
	if err := validOrigin(r.Origin); err != nil {
		return bad("%v", err)
	}
	for _, k := range []string{r.Old, r.New} {
		if err := canonicalVerifier(k, r.Origin); err != nil {
			return bad("%v", err)
		}
	}
	if r.Old == r.New {
		return bad("the old and new keys are the same")
	}
	size, err := strconv.ParseUint(vals[3], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != vals[3] {
		return bad("size %q is not a decimal number", vals[3])
	}
	r.Size = size
	t, err := time.Parse(time.RFC3339, vals[4])
	if err != nil || t.UTC().Format(time.RFC3339) != vals[4] {
		return bad("time %q is not RFC 3339 UTC to the second", vals[4])
	}
	r.Time = t
	return r, nil
}

// canonicalVerifier checks that vkey is an Ed25519 note verifier key named origin, written the
// one way NewEd25519VerifierKey writes it (so one key has one spelling and string equality is
// key equality).
func canonicalVerifier(vkey, origin string) error {
	name, rest, ok := strings.Cut(vkey, "+")
	if !ok || name != origin {
		return fmt.Errorf("key %q is not named %q", vkey, origin)
	}
	_, b64, ok := strings.Cut(rest, "+")
	if !ok {
		return fmt.Errorf("key %q is malformed", vkey)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != 1 {
		return fmt.Errorf("key %q is not an Ed25519 note key", vkey)
	}
	want, err := note.NewEd25519VerifierKey(origin, ed25519.PublicKey(raw[1:]))
	if err != nil || want != vkey {
		return fmt.Errorf("key %q is not in canonical form", vkey)
	}
	return nil
}

// keyID names a verifier key in messages: its name and hash.
func keyID(vkey string) string {
	name, rest, _ := strings.Cut(vkey, "+")
	hash, _, _ := strings.Cut(rest, "+")
	return name + "+" + hash
}

// ChainRotations orders opened statements into the single chain they must form: each
// statement's old key is the previous one's new key, no key appears twice (no fork, no cycle),
// one origin, and sizes never decrease. The input order does not matter; the result runs from
// the oldest rotation to the newest.
func ChainRotations(rs []Rotation) ([]Rotation, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	if len(rs) > MaxRotations {
		return nil, fmt.Errorf("ledger: %d rotation statements, over %d", len(rs), MaxRotations)
	}
	byOld := make(map[string]Rotation, len(rs))
	isNew := make(map[string]bool, len(rs))
	for _, r := range rs {
		if r.Origin != rs[0].Origin {
			return nil, fmt.Errorf("ledger: rotation statements for two logs: %q and %q", rs[0].Origin, r.Origin)
		}
		if _, dup := byOld[r.Old]; dup {
			return nil, fmt.Errorf("ledger: two rotation statements retire key %s (a fork: the key was rotated twice)", keyID(r.Old))
		}
		if isNew[r.New] {
			return nil, fmt.Errorf("ledger: two rotation statements introduce key %s", keyID(r.New))
		}
		byOld[r.Old], isNew[r.New] = r, true
	}
	var heads []Rotation
	for _, r := range rs {
		if !isNew[r.Old] {
			heads = append(heads, r)
		}
	}
	if len(heads) != 1 {
		return nil, fmt.Errorf("ledger: rotation statements do not form one chain (%d starting points)", len(heads))
	}
	chain := make([]Rotation, 0, len(rs))
	for r, ok := heads[0], true; ok; r, ok = byOld[r.New] {
		if len(chain) > 0 && r.Size < chain[len(chain)-1].Size {
			return nil, fmt.Errorf("ledger: rotation to %s at size %d follows one at size %d", keyID(r.New), r.Size, chain[len(chain)-1].Size)
		}
		chain = append(chain, r)
		if len(chain) > len(rs) {
			return nil, errors.New("ledger: rotation statements form a cycle")
		}
	}
	if len(chain) != len(rs) {
		return nil, fmt.Errorf("ledger: rotation statements do not form one chain (%d of %d linked)", len(chain), len(rs))
	}
	return chain, nil
}

// ChainKeys returns the verifier keys of a chain (ChainRotations), oldest first.
func ChainKeys(chain []Rotation) []string {
	if len(chain) == 0 {
		return nil
	}
	keys := []string{chain[0].Old}
	for _, r := range chain {
		keys = append(keys, r.New)
	}
	return keys
}

// RotationsDir and RetiredDir are where the rotation statements and the retired keys of the
// key file keyFile are kept: beside it.
func RotationsDir(keyFile string) string { return filepath.Join(filepath.Dir(keyFile), "rotations") }
func RetiredDir(keyFile string) string   { return filepath.Join(filepath.Dir(keyFile), "retired") }

// pendingSuffix names the new private key while a rotation is in progress (RotateKey).
const pendingSuffix = ".new"

// ReadRotations reads and opens every statement in dir (files *.note), ordered as a chain. A
// missing dir is no rotation.
func ReadRotations(dir string) ([]Rotation, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: rotations: %w", err)
	}
	var rs []Rotation
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".note") {
			continue
		}
		if len(rs) == MaxRotations {
			return nil, fmt.Errorf("ledger: rotations %s: more than %d statements", dir, MaxRotations)
		}
		p := filepath.Join(dir, e.Name())
		b, err := readBounded(p, MaxRotationSize)
		if err != nil {
			return nil, fmt.Errorf("ledger: rotation %s: %w", p, err)
		}
		r, err := OpenRotation(b)
		if err != nil {
			return nil, fmt.Errorf("ledger: rotation %s: %w", p, err)
		}
		rs = append(rs, r)
	}
	chain, err := ChainRotations(rs)
	if err != nil {
		return nil, fmt.Errorf("ledger: rotations %s: %w", dir, err)
	}
	return chain, nil
}

// readBounded reads a regular file of at most limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, _, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAllLimit(f, limit)
}

// ReadFileLimit reads the whole file at path, of at most limit bytes: a larger one fails
// without being read further. The commands read the files they are given with it (saved
// answers and proofs, rotation statements, key files). Its errors name the file.
func ReadFileLimit(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := readAllLimit(f, limit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// readAllLimit reads r to its end, failing when it holds more than limit bytes.
func readAllLimit(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("more than %d bytes", limit)
	}
	return b, nil
}

// openRegular opens path for reading, refusing anything but a regular file (a FIFO or a
// device may block or never end).
func openRegular(path string) (*os.File, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = errors.New("not a regular file")
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// LoadKeyring returns the verifier for a log whose current key is the verifier key current and
// whose rotation statements sit beside keyFile (RotationsDir): a Keyring of every key of the
// chain, and the chain itself. It fails, and the daemon must not start, when a statement does
// not open, the statements do not form one chain, or the chain does not end at current (the key
// file was replaced by hand, or a rotation was interrupted: see RotateKey).
func LoadKeyring(keyFile, current string) (*Keyring, []Rotation, error) {
	cur, err := NewVerifier(current)
	if err != nil {
		return nil, nil, err
	}
	chain, err := ReadRotations(RotationsDir(keyFile))
	if err != nil {
		return nil, nil, err
	}
	if len(chain) == 0 {
		kr, err := NewKeyring(cur)
		return kr, nil, err
	}
	last := chain[len(chain)-1]
	if last.New != strings.TrimSpace(current) {
		hint := ""
		if _, err := os.Stat(keyFile + pendingSuffix); err == nil {
			hint = fmt.Sprintf("; %s%s exists: a rotation was interrupted, run lineagectl rotate-key again to finish it", keyFile, pendingSuffix)
		}
		return nil, nil, fmt.Errorf("ledger: key %s is not the key of the last rotation statement in %s (%s)%s",
			keyID(current), RotationsDir(keyFile), keyID(last.New), hint)
	}
	vs := make([]note.Verifier, 0, len(chain)+1)
	for _, k := range ChainKeys(chain) {
		v, err := NewVerifier(k)
		if err != nil {
			return nil, nil, err
		}
		vs = append(vs, v)
	}
	kr, err := NewKeyring(vs...)
	if err != nil {
		return nil, nil, err
	}
	return kr, chain, nil
}

// Keyring is the verifier of a log whose key was rotated. As a note.Verifier it is the current
// key (Name, KeyHash, Verify), so it signs nothing old into new answers; OpenCheckpoint also
// accepts a checkpoint signed by any earlier key of the keyring, which is what keeps the past
// verifiable.
type Keyring struct {
	note.Verifier // the current (last) key
	all           []note.Verifier
}

// NewKeyring makes a keyring of keys of one origin, oldest first; the last is the current key.
// The keys must have distinct key hashes (a note names the key of a signature by its hash).
func NewKeyring(vs ...note.Verifier) (*Keyring, error) {
	if len(vs) == 0 {
		return nil, errors.New("ledger: keyring: no key")
	}
	seen := map[uint32]bool{}
	for _, v := range vs {
		if v.Name() != vs[0].Name() {
			return nil, fmt.Errorf("ledger: keyring: keys of two origins, %q and %q", vs[0].Name(), v.Name())
		}
		if seen[v.KeyHash()] {
			return nil, fmt.Errorf("ledger: keyring: two keys of %q with key hash %08x", v.Name(), v.KeyHash())
		}
		seen[v.KeyHash()] = true
	}
	return &Keyring{Verifier: vs[len(vs)-1], all: append([]note.Verifier(nil), vs...)}, nil
}

// Verifiers returns the keyring's keys, oldest first.
func (k *Keyring) Verifiers() []note.Verifier { return append([]note.Verifier(nil), k.all...) }

// VerifiersOf returns the keys a verifier stands for: every key of a Keyring (oldest first), or
// v itself. Code that opens notes signed by the log's key (checkpoints, bundle manifests) opens
// them with note.VerifierList(VerifiersOf(v)...) so that notes signed before a rotation verify.
func VerifiersOf(v note.Verifier) []note.Verifier {
	if k, ok := v.(*Keyring); ok {
		return k.Verifiers()
	}
	return []note.Verifier{v}
}

// RotateResult is what RotateKey did.
type RotateResult struct {
	Rotation      Rotation
	StatementFile string
	// RetiredKey is the old private key's new place (0600): to be destroyed or archived
	// offline by the operator. RetiredPub is the old public key.
	RetiredKey, RetiredPub string
	// Resumed is set when RotateKey finished a rotation a crash had interrupted.
	Resumed bool
}

// RotateKey rolls the checkpoint signing key in keyFile. The caller must hold the data dir
// lock (the daemon must not run) and pass the log's size, read from its last checkpoint. Steps,
// each durable before the next:
//
//  1. the old private key is copied to retired/<n>-<hash>.key (0600) and its verifier to .pub;
//  2. a new key is written to keyFile.new (0600);
//  3. the statement, signed by both keys, is written to rotations/<n>-<newhash>.note;
//  4. keyFile.new is renamed over keyFile, and keyFile.pub is replaced.
//
// A crash after step 3 leaves a chain ending at the new key while keyFile is still the old one:
// the daemon refuses to start, and running RotateKey again finishes step 4 (Resumed). A crash
// before step 3 leaves the old key in use; RotateKey again starts over.
func RotateKey(keyFile string, size uint64, now time.Time) (RotateResult, error) {
	b, err := readPrivateFile(keyFile)
	if err != nil {
		return RotateResult{}, fmt.Errorf("ledger: rotate: read key %s: %w", keyFile, err)
	}
	skey := strings.TrimSpace(string(b))
	oldS, err := newSigner(skey)
	if err != nil {
		return RotateResult{}, fmt.Errorf("ledger: rotate: key %s is not a note signing key", keyFile)
	}
	chain, err := ReadRotations(RotationsDir(keyFile))
	if err != nil {
		return RotateResult{}, fmt.Errorf("ledger: rotate: %w", err)
	}
	if res, done, err := resumeRotation(keyFile, oldS, chain); done || err != nil {
		return res, err
	}
	if len(chain) > 0 && chain[len(chain)-1].New != oldS.vkey {
		return RotateResult{}, fmt.Errorf("ledger: rotate: key %s is not the key of the last rotation statement (%s); refusing to extend a broken chain",
			keyID(oldS.vkey), keyID(chain[len(chain)-1].New))
	}
	if len(chain) >= MaxRotations {
		return RotateResult{}, fmt.Errorf("ledger: rotate: the chain already has %d rotations", len(chain))
	}
	used := map[uint32]bool{oldS.KeyHash(): true}
	for _, k := range ChainKeys(chain) {
		if v, err := NewVerifier(k); err == nil {
			used[v.KeyHash()] = true
		}
	}
	var newSkey string
	var newS *signer
	for range 8 { // a 32-bit key hash may collide with an earlier key's; draw again
		sk, _, err := GenerateKey(oldS.Name())
		if err != nil {
			return RotateResult{}, err
		}
		if s, err := newSigner(sk); err == nil && !used[s.KeyHash()] {
			newSkey, newS = sk, s
			break
		}
	}
	if newS == nil {
		return RotateResult{}, errors.New("ledger: rotate: no new key with an unused key hash")
	}
	n := len(chain) + 1
	res := RotateResult{
		RetiredKey:    filepath.Join(RetiredDir(keyFile), fmt.Sprintf("%d-%08x.key", n, oldS.KeyHash())),
		StatementFile: filepath.Join(RotationsDir(keyFile), fmt.Sprintf("%d-%08x.note", n, newS.KeyHash())),
	}
	res.RetiredPub = res.RetiredKey + ".pub"
	if res.Rotation, err = SignRotation(skey, newSkey, size, now); err != nil {
		return RotateResult{}, err
	}

	// 1. Retire the old key.
	if err := os.MkdirAll(RetiredDir(keyFile), 0o700); err != nil {
		return RotateResult{}, fmt.Errorf("ledger: rotate: %w", err)
	}
	if err := atomicfile.WriteFile(res.RetiredKey, []byte(skey+"\n"), 0o600); err != nil {
		return RotateResult{}, fmt.Errorf("ledger: rotate: retire old key: %w", err)
	}
	if err := atomicfile.WriteFile(res.RetiredPub, []byte(oldS.vkey+"\n"), 0o644); err != nil {
		return RotateResult{}, fmt.Errorf("ledger: rotate: retire old key: %w", err)
	}
	// 2. The new key, not yet in use.
	if err := atomicfile.WriteFile(keyFile+pendingSuffix, []byte(newSkey+"\n"), 0o600); err != nil {
		return RotateResult{}, fmt.Errorf("ledger: rotate: write new key: %w", err)
	}
	// 3. The statement: from here on the rotation is decided.
	if err := os.MkdirAll(RotationsDir(keyFile), 0o700); err != nil {
		return RotateResult{}, fmt.Errorf("ledger: rotate: %w", err)
	}
	if err := atomicfile.WriteFile(res.StatementFile, res.Rotation.Note, 0o644); err != nil {
		return RotateResult{}, fmt.Errorf("ledger: rotate: write statement: %w", err)
	}
	// 4. Install the new key.
	if err := installPending(keyFile, newS.vkey); err != nil {
		return RotateResult{}, err
	}
	return res, nil
}

// resumeRotation finishes a rotation interrupted after its statement was written: keyFile.new
// holds the key the chain ends at, and keyFile the key it retired. done reports that there was
// such a rotation. A keyFile.new that belongs to no statement is left from a rotation
// interrupted before its statement: it was never used and is replaced.
func resumeRotation(keyFile string, cur *signer, chain []Rotation) (res RotateResult, done bool, err error) {
	b, err := readPrivateFile(keyFile + pendingSuffix)
	if errors.Is(err, fs.ErrNotExist) {
		return RotateResult{}, false, nil
	}
	if err != nil {
		return RotateResult{}, true, fmt.Errorf("ledger: rotate: read %s%s: %w", keyFile, pendingSuffix, err)
	}
	pending, err := newSigner(strings.TrimSpace(string(b)))
	if err != nil {
		return RotateResult{}, true, fmt.Errorf("ledger: rotate: %s%s is not a note signing key", keyFile, pendingSuffix)
	}
	if len(chain) == 0 || chain[len(chain)-1].New != pending.vkey {
		return RotateResult{}, false, nil
	}
	last := chain[len(chain)-1]
	if last.Old != cur.vkey {
		return RotateResult{}, true, fmt.Errorf("ledger: rotate: %s%s is the last statement's new key, but %s is not its old key", keyFile, pendingSuffix, keyFile)
	}
	if err := installPending(keyFile, pending.vkey); err != nil {
		return RotateResult{}, true, err
	}
	n := len(chain)
	res = RotateResult{Rotation: last, Resumed: true,
		StatementFile: filepath.Join(RotationsDir(keyFile), fmt.Sprintf("%d-%08x.note", n, pending.KeyHash())),
		RetiredKey:    filepath.Join(RetiredDir(keyFile), fmt.Sprintf("%d-%08x.key", n, cur.KeyHash()))}
	res.RetiredPub = res.RetiredKey + ".pub"
	return res, true, nil
}

// installPending renames keyFile.new over keyFile and replaces keyFile.pub with vkey.
func installPending(keyFile, vkey string) error {
	if err := os.Rename(keyFile+pendingSuffix, keyFile); err != nil {
		return fmt.Errorf("ledger: rotate: install new key: %w", err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(keyFile)); err != nil {
		return fmt.Errorf("ledger: rotate: install new key: %w", err)
	}
	if err := atomicfile.WriteFile(keyFile+".pub", []byte(vkey+"\n"), 0o644); err != nil {
		return fmt.Errorf("ledger: rotate: write verifier: %w", err)
	}
	return nil
}

// signer is a note.Signer with its verifier key.
type signer struct {
	note.Signer
	vkey string
}

// newSigner parses a private note key.
func newSigner(skey string) (*signer, error) {
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, errors.New("ledger: malformed private key")
	}
	vkey, err := VerifierOf(skey)
	if err != nil {
		return nil, err
	}
	return &signer{Signer: s, vkey: vkey}, nil
}

// ParseVerifiers parses a key file's text: one verifier key per line, oldest first (blank lines
// and lines starting with '#' are skipped), all of one origin with distinct key hashes. One key
// is returned as is; several as a Keyring whose current key is the last.
func ParseVerifiers(text []byte) (note.Verifier, error) {
	if len(text) > MaxVerifierFile {
		return nil, fmt.Errorf("ledger: verifier file: %d bytes, over %d", len(text), MaxVerifierFile)
	}
	var vs []note.Verifier
	for i, line := range strings.Split(string(text), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if len(vs) == MaxRotations+1 {
			return nil, fmt.Errorf("ledger: verifier file: more than %d keys", MaxRotations+1)
		}
		v, err := NewVerifier(line)
		if err != nil {
			return nil, fmt.Errorf("ledger: verifier file line %d: %w", i+1, err)
		}
		vs = append(vs, v)
	}
	switch len(vs) {
	case 0:
		return nil, errors.New("ledger: verifier file holds no key")
	case 1:
		return vs[0], nil
	}
	return NewKeyring(vs...)
}

// MaxVerifierFile bounds a verifier file: MaxRotations+1 keys with comments fit.
const MaxVerifierFile = 1 << 20
