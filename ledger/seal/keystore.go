package seal

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// KeyStore holds the subject keys, outside the log. The SQLite implementation is sqlitekeys.SQLiteStore;
// a KMS-backed store can implement the same interface, or reuse sqlitekeys.SQLiteStore with a Wrapper that
// calls the KMS.
type KeyStore interface {
	// KeyFor returns the key of (tenant, subject), creating it on first use. The subject id is
	// never stored: the store finds the key by HMAC-SHA256(tenant pepper, subject).
	KeyFor(ctx context.Context, tenant, subject string) (KeyID, *Key, error)
	// Open returns the key with id kid in tenant. It fails with an error wrapping ErrErased
	// when the key was erased (a tombstone exists), and ErrKeyMissing when there is neither
	// key nor tombstone: the store lost it, which must never be shown as an erasure.
	Open(ctx context.Context, tenant string, kid KeyID) (*Key, error)
	// Erase destroys the key of (tenant, subject) and records a tombstone with the legal
	// basis, in one transaction, and returns the key ids destroyed. It wraps ErrNoSubject when
	// the store holds no key for the subject (never seen, or already erased: the store cannot
	// tell them apart, by design).
	Erase(ctx context.Context, tenant, subject, basis string) ([]KeyID, error)
}

// Errors a KeyStore returns (wrapped).
var (
	// ErrErased: the key was erased on purpose; the field stays sealed for ever.
	ErrErased = errors.New("seal: subject key erased")
	// ErrKeyMissing: the key store has neither the key nor a tombstone for it. The key store
	// was lost, restored from an old backup, or tampered with. Fail closed: never show such a
	// field as erased.
	ErrKeyMissing = errors.New("seal: subject key missing from the key store (not erased: the key store is incomplete)")
	// ErrNoSubject: Erase found no key for the subject.
	ErrNoSubject = errors.New("seal: no key for this subject")
	// ErrWrongMasterKey: the master key does not unwrap the key store's check value.
	ErrWrongMasterKey = errors.New("seal: wrong master key for this key store")
)

// Tombstone is what remains of an erased key: no personal data, only when and why.
type Tombstone struct {
	KeyID    KeyID
	Tenant   string
	ErasedAt time.Time
	Basis    string
}

// Wrapper encrypts key material at rest. It is the boundary for a KMS: a KMS implementation
// sends Wrap and Unwrap to the KMS (AWS KMS Encrypt/Decrypt with the associated data as
// encryption context, GCP KMS with additional authenticated data, Vault transit with context)
// so that the master key never leaves it. ad binds the wrapped value to where it is stored; an
// implementation must authenticate it.
type Wrapper interface {
	Wrap(ctx context.Context, plaintext, ad []byte) ([]byte, error)
	Unwrap(ctx context.Context, wrapped, ad []byte) ([]byte, error)
}

// MasterKey is a local Wrapper: XChaCha20-Poly1305 under a 32-byte key, with a random nonce
// per wrap. Build it with ParseMasterKey, LoadMasterKeyFile or LoadMasterKeyEnv.
type MasterKey struct {
	key [KeySize]byte
}

var _ Wrapper = (*MasterKey)(nil)

// Wrap encrypts plaintext bound to ad: nonce ‖ ciphertext.
func (k *MasterKey) Wrap(_ context.Context, plaintext, ad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(k.key[:])
	if err != nil {
		return nil, fmt.Errorf("seal: master key: %w", err)
	}
	out := make([]byte, aeadNonceSize, aeadNonceSize+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("seal: wrap: random nonce: %w", err)
	}
	return aead.Seal(out, out, plaintext, ad), nil
}

// Unwrap decrypts what Wrap wrote with the same ad.
func (k *MasterKey) Unwrap(_ context.Context, wrapped, ad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(k.key[:])
	if err != nil {
		return nil, fmt.Errorf("seal: master key: %w", err)
	}
	if len(wrapped) < aeadNonceSize+aead.Overhead() {
		return nil, fmt.Errorf("seal: unwrap: %d bytes is too short", len(wrapped))
	}
	pt, err := aead.Open(nil, wrapped[:aeadNonceSize], wrapped[aeadNonceSize:], ad)
	if err != nil {
		return nil, fmt.Errorf("seal: unwrap: authentication failed")
	}
	return pt, nil
}

// minDistinctBytes is how many different byte values a master key must contain. A uniformly
// random 32-byte key has about 28 on average, and fewer than 16 with probability below 2^-40;
// a key typed by hand, a repeated pattern or a counter has far fewer.
const minDistinctBytes = 16

// ParseMasterKey decodes a master key written as hex (64 digits) or as base64 (standard or URL
// alphabet, with or without padding) of exactly 32 bytes. Surrounding white space is ignored.
// It refuses any other length and keys that are visibly not random (fewer than 16 distinct
// byte values: all zeros, a repeated byte, a short pattern).
func ParseMasterKey(text []byte) (*MasterKey, error) {
	s := strings.TrimSpace(string(text))
	if s == "" {
		return nil, errors.New("seal: master key: empty")
	}
	var raw []byte
	// Hex first: 64 hex digits are also valid base64 (of 48 bytes); base64 of 32 bytes (43 or
	// 44 characters) is never an even-length run of hex digits.
	if b, err := hex.DecodeString(s); err == nil {
		raw = b
	}
	if raw == nil {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := enc.Strict().DecodeString(s); err == nil {
				raw = b
				break
			}
		}
	}
	if raw == nil {
		return nil, errors.New("seal: master key: not hex or base64")
	}
	if len(raw) != KeySize {
		return nil, fmt.Errorf("seal: master key: %d bytes, want exactly %d (256 bits)", len(raw), KeySize)
	}
	var seen [256]bool
	distinct := 0
	for _, c := range raw {
		if !seen[c] {
			seen[c] = true
			distinct++
		}
	}
	if distinct < minDistinctBytes {
		return nil, fmt.Errorf("seal: master key: only %d distinct byte values; generate it with a CSPRNG (e.g. `head -c 32 /dev/urandom | base64`)", distinct)
	}
	k := new(MasterKey)
	copy(k.key[:], raw)
	clear(raw)
	return k, nil
}

// LoadMasterKeyFile reads a master key (see ParseMasterKey) from a file that only its owner
// may read or write: it refuses a file that others can access at all or that its group can
// write, and anything but a regular file.
func LoadMasterKeyFile(path string) (*MasterKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("seal: master key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("seal: master key file %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o027 != 0 {
		return nil, fmt.Errorf("seal: master key file %s: mode %04o lets others read or write it; chmod 600 it", path, perm)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("seal: master key file: %w", err)
	}
	defer clear(b)
	k, err := ParseMasterKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return k, nil
}

// LoadMasterKeyEnv reads a master key (see ParseMasterKey) from the environment variable name.
func LoadMasterKeyEnv(name string) (*MasterKey, error) {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return nil, fmt.Errorf("seal: master key: environment variable %s is not set", name)
	}
	k, err := ParseMasterKey([]byte(v))
	if err != nil {
		return nil, fmt.Errorf("%w (environment variable %s)", err, name)
	}
	return k, nil
}

// GenerateMasterKey returns a new random master key and its base64 text, for
// `lineagectl`-style key generation and tests.
func GenerateMasterKey() (*MasterKey, string, error) {
	for {
		var raw [KeySize]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return nil, "", fmt.Errorf("seal: generate master key: %w", err)
		}
		text := base64.StdEncoding.EncodeToString(raw[:])
		if k, err := ParseMasterKey([]byte(text)); err == nil {
			return k, text, nil
		}
		// Fewer than 16 distinct bytes in 32 random ones: practically never; draw again.
	}
}
