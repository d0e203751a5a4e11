package ledger

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Key files are the note formats of golang.org/x/mod/sumdb/note, which C2SP signed notes use:
// the private key is "PRIVATE+KEY+<name>+<hash>+<base64>" and the public key (verifier) is
// "<name>+<hash>+<base64>". The key name is the log's origin line, so a checkpoint names the
// key that must verify it.

// GenerateKey makes a new Ed25519 note key pair for the log origin.
func GenerateKey(origin string) (signer, verifier string, err error) {
	if err := validOrigin(origin); err != nil {
		return "", "", err
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return "", "", fmt.Errorf("ledger: generate key %q: %w", origin, err)
	}
	return skey, vkey, nil
}

// WriteKeyPair writes the private key (mode 0600, never overwriting an existing file) to
// path and the verifier to path+".pub".
func WriteKeyPair(path, skey, vkey string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("ledger: key dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("ledger: write key %s: %w", path, err)
	}
	if _, err := f.WriteString(skey + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("ledger: write key %s: %w", path, err)
	}
	// The key must survive a crash right after first start, or every checkpoint signed with
	// it becomes unverifiable by anyone who did not save the public key.
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("ledger: sync key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("ledger: close key %s: %w", path, err)
	}
	if err := os.WriteFile(path+".pub", []byte(vkey+"\n"), 0o644); err != nil {
		return fmt.Errorf("ledger: write verifier %s.pub: %w", path, err)
	}
	return nil
}

// LoadOrCreateSigner reads the signing key at path, creating a key for origin there if no file
// exists yet (mode 0600, in a directory created 0700). It returns the signer and its verifier
// string. It refuses a key file that other users may read or write (any group or other
// permission bit): whoever reads the key can sign checkpoints for a forged log.
func LoadOrCreateSigner(path, origin string) (note.Signer, string, error) {
	b, err := readPrivateFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		skey, vkey, err := GenerateKey(origin)
		if err != nil {
			return nil, "", err
		}
		if err := WriteKeyPair(path, skey, vkey); err != nil {
			return nil, "", err
		}
		b = []byte(skey)
	} else if err != nil {
		return nil, "", fmt.Errorf("ledger: read key %s: %w", path, err)
	}
	s, err := note.NewSigner(strings.TrimSpace(string(b)))
	if err != nil {
		// Never echo the key material in the error.
		return nil, "", fmt.Errorf("ledger: key %s is not a note signing key", path)
	}
	vkey, err := VerifierOf(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, "", err
	}
	return s, vkey, nil
}

// errKeyMode is wrapped by LoadOrCreateSigner for a key file others may read or write.
var errKeyMode = errors.New("the checkpoint signing key must be readable and writable by its owner only")

// readPrivateFile reads a key file after checking, on the open file, that only its owner has
// access to it.
func readPrivateFile(path string) ([]byte, error) {
	f, fi, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("mode %04o: %w; run: chmod 600 %s (for a mounted secret, give it file mode 0400 or 0600)", perm, errKeyMode, path)
	}
	return io.ReadAll(f)
}

// VerifierOf derives the public verifier string from a private note key.
func VerifierOf(skey string) (string, error) {
	// PRIVATE+KEY+<name>+<hash>+<base64(alg||seed)>: derive the public half through ed25519.
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", errors.New("ledger: malformed private key")
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		return "", errors.New("ledger: malformed private key")
	}
	vkey, err := note.NewEd25519VerifierKey(s.Name(), publicKey(skey))
	if err != nil {
		return "", fmt.Errorf("ledger: derive verifier: %w", err)
	}
	return vkey, nil
}

// NewVerifier parses a verifier string ("name+hash+base64").
func NewVerifier(vkey string) (note.Verifier, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return nil, fmt.Errorf("ledger: verifier: %w", err)
	}
	return v, nil
}

// ReadVerifierFile reads a verifier from a file such as the ".pub" written by WriteKeyPair, or
// a file of several keys of one log, oldest first, as `lineagectl keys follow` writes after a
// key rotation (ParseVerifiers): then the result is a Keyring, and a checkpoint signed by any
// of the keys verifies.
func ReadVerifierFile(path string) (note.Verifier, error) {
	b, err := readBounded(path, MaxVerifierFile)
	if err != nil {
		return nil, fmt.Errorf("ledger: read verifier: %w", err)
	}
	v, err := ParseVerifiers(b)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return v, nil
}

func validOrigin(origin string) error {
	if origin == "" || strings.ContainsAny(origin, "+ \t\n") || len(origin) > 256 {
		return fmt.Errorf("ledger: invalid log origin %q (no '+', spaces or newlines, 1..256 bytes)", origin)
	}
	return nil
}

// publicKey returns the Ed25519 public key for a well-formed private note key (checked by the
// caller with note.NewSigner), in the note format alg||key.
func publicKey(skey string) ed25519.PublicKey {
	// The base64 key may itself contain '+', so split on the first four separators only.
	parts := strings.SplitN(skey, "+", 5)
	raw, err := base64.StdEncoding.DecodeString(parts[len(parts)-1])
	if err != nil || len(raw) != 1+ed25519.SeedSize {
		return nil
	}
	return ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
}
