package seal

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"golang.org/x/crypto/chacha20poly1305"
)

// Sizes of the values an entry carries and a ciphertext holds.
const (
	// KeySize is the size of a subject key (and of the master key).
	KeySize = 32
	// KeyIDSize is the size of a key id: random, so that it says nothing about the subject.
	KeyIDSize = 16
	// CommitmentSize is the size of a field commitment (SHA-256).
	CommitmentSize = sha256.Size
	// OpeningNonceSize is the size of the random opening nonce that makes a commitment hiding.
	OpeningNonceSize = 32
	// keyCommitSize is the size of the key-commitment tag at the front of a ciphertext.
	keyCommitSize = sha256.Size
	// aeadNonceSize is the XChaCha20-Poly1305 nonce size.
	aeadNonceSize = chacha20poly1305.NonceSizeX
	// ciphertextOverhead is what a ciphertext adds to its plaintext: AEAD nonce,
	// key-commitment tag and Poly1305 tag.
	ciphertextOverhead = aeadNonceSize + keyCommitSize + chacha20poly1305.Overhead
	// MaxValueSize bounds a sealed value: lineage.MaxStringLen bounds every string in a record.
	MaxValueSize = 2048
	// padBlock is the bucket size of the padded value: a ciphertext reveals the length of its
	// value only to within 32 bytes (2-byte length prefix included), so short identifiers
	// (most user ids and e-mail addresses) all have the same ciphertext size.
	padBlock = 32
	// minCiphertextSize is the ciphertext of an empty value (one pad block).
	minCiphertextSize = ciphertextOverhead + OpeningNonceSize + padBlock
	// maxCiphertextSize is the ciphertext of the largest value.
	maxCiphertextSize = ciphertextOverhead + OpeningNonceSize + (2+MaxValueSize+padBlock-1)/padBlock*padBlock
)

// validCiphertextSize reports whether n is the size of some ciphertext encryptField writes.
func validCiphertextSize(n int) bool {
	return n >= minCiphertextSize && n <= maxCiphertextSize && (n-ciphertextOverhead-OpeningNonceSize)%padBlock == 0
}

// paddedLen is the size of the padded value block for a value of n bytes.
func paddedLen(n int) int { return (2 + n + padBlock - 1) / padBlock * padBlock }

// Domain-separation tags. Each hash or AEAD input starts with its own tag, so that no value
// computed for one purpose can be replayed as another; "v1" names this construction, and a
// change to any of them is a new entry format.
const (
	tagCommitment = "lineage/seal/v1 field commitment\x00"
	tagKeyCommit  = "lineage/seal/v1 key commitment\x00"
	tagAD         = "lineage/seal/v1 field ad\x00"
)

// SealedPrefix starts the string that replaces a sealed value in the redacted record:
// "sealed:" followed by the unpadded base64url commitment.
const SealedPrefix = "sealed:"

// b64 is the encoding of every binary value in an entry: base64url without padding (RFC 4648
// §5), strict, so each value has exactly one spelling.
var b64 = base64.RawURLEncoding.Strict()

// KeyID names a subject key. It is random, not derived from the subject, so the log cannot be
// used to confirm a guess of who the subject is.
type KeyID [KeyIDSize]byte

// String returns the key id in base64url, as entries carry it.
func (k KeyID) String() string { return b64.EncodeToString(k[:]) }

// Commitment is a field's commitment m = SHA-256(tag ‖ tenant ‖ path ‖ nonce ‖ value).
type Commitment [CommitmentSize]byte

// String returns the commitment in base64url, as entries carry it.
func (m Commitment) String() string { return b64.EncodeToString(m[:]) }

// Token returns the string that stands for the sealed value in the redacted record.
func (m Commitment) Token() string { return SealedPrefix + m.String() }

// Key is a subject key.
type Key [KeySize]byte

// Opening reveals a sealed value: with it anyone can check the value against the commitment
// in the log (VerifyOpening), without any key.
type Opening struct {
	// Path is the field's JSON pointer.
	Path string
	// Value is the clear value.
	Value string
	// Nonce is the random opening nonce inside the ciphertext.
	Nonce [OpeningNonceSize]byte
}

// ErrOpening is wrapped by VerifyOpening when an opening does not match its commitment.
var ErrOpening = errors.New("seal: opening does not match the commitment")

// ErrIntegrity is wrapped when a sealed field fails a cryptographic check: a ciphertext that
// does not decrypt under its key, a key-commitment tag that does not match, a decrypted value
// that does not match its commitment. Lineage never writes such a field: treat it as
// tampering.
var ErrIntegrity = errors.New("seal: sealed field failed its integrity check")

// commit computes a field commitment. Tenant and path are length-prefixed, the nonce has a
// fixed size and the value comes last, so the encoding of the hash input is injective.
func commit(tenant, path string, nonce *[OpeningNonceSize]byte, value string) Commitment {
	h := sha256.New()
	h.Write([]byte(tagCommitment))
	writeLP(h, tenant)
	writeLP(h, path)
	h.Write(nonce[:])
	h.Write([]byte(value))
	var m Commitment
	h.Sum(m[:0])
	return m
}

type writer interface{ Write([]byte) (int, error) }

// writeLP writes s with a 4-byte big-endian length prefix.
func writeLP(w writer, s string) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(s)))
	w.Write(n[:])
	w.Write([]byte(s))
}

// VerifyOpening checks that o opens commitment m of field o.Path in tenant's records. It needs
// no key: an auditor shown a clear value and its opening checks it against the log alone.
func VerifyOpening(tenant string, m Commitment, o Opening) error {
	got := commit(tenant, o.Path, &o.Nonce, o.Value)
	if subtle.ConstantTimeCompare(got[:], m[:]) != 1 {
		return fmt.Errorf("%s: %w", o.Path, ErrOpening)
	}
	return nil
}

// fieldAD is the associated data of a field's ciphertext: it binds the ciphertext to the
// tenant, the record, the field, the key id and the commitment, so a ciphertext moved to any
// other place (another record, another field, another entry's commitment) fails to decrypt.
func fieldAD(tenant, recordID, path string, kid KeyID, m Commitment) []byte {
	ad := make([]byte, 0, len(tagAD)+12+len(tenant)+len(recordID)+len(path)+KeyIDSize+CommitmentSize)
	ad = append(ad, tagAD...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(tenant)))
	ad = append(ad, tenant...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(recordID)))
	ad = append(ad, recordID...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(path)))
	ad = append(ad, path...)
	ad = append(ad, kid[:]...)
	return append(ad, m[:]...)
}

// keyCommitment is the key-commitment tag SHA-256(tag ‖ key ‖ AEAD nonce). SHA-256 is
// collision resistant, so no second key yields the same tag: a ciphertext decrypts under at
// most one key (Poly1305 alone does not give that; see docs/ERASURE.md).
func keyCommitment(key *Key, nonce []byte) [keyCommitSize]byte {
	h := sha256.New()
	h.Write([]byte(tagKeyCommit))
	h.Write(key[:])
	h.Write(nonce)
	var t [keyCommitSize]byte
	h.Sum(t[:0])
	return t
}

// encryptField returns AEAD nonce ‖ key-commitment tag ‖ XChaCha20-Poly1305(plaintext), where
// plaintext = opening nonce ‖ uint16 value length ‖ value ‖ zero padding to a multiple of 32.
func encryptField(key *Key, ad []byte, nonce *[OpeningNonceSize]byte, value string) ([]byte, error) {
	if len(value) > MaxValueSize {
		return nil, fmt.Errorf("seal: value of %d bytes exceeds %d", len(value), MaxValueSize)
	}
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		return nil, fmt.Errorf("seal: cipher: %w", err)
	}
	out := make([]byte, aeadNonceSize, ciphertextOverhead+OpeningNonceSize+paddedLen(len(value)))
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("seal: random nonce: %w", err)
	}
	t := keyCommitment(key, out[:aeadNonceSize])
	out = append(out, t[:]...)
	pt := make([]byte, OpeningNonceSize+paddedLen(len(value)))
	copy(pt, nonce[:])
	binary.BigEndian.PutUint16(pt[OpeningNonceSize:], uint16(len(value)))
	copy(pt[OpeningNonceSize+2:], value)
	out = aead.Seal(out, out[:aeadNonceSize], pt, ad)
	clear(pt)
	return out, nil
}

// decryptField checks the key-commitment tag, then decrypts; it returns the opening nonce and
// the value. Every failure wraps ErrIntegrity.
func decryptField(key *Key, ad, c []byte) (nonce [OpeningNonceSize]byte, value string, err error) {
	if !validCiphertextSize(len(c)) {
		return nonce, "", fmt.Errorf("ciphertext of %d bytes: %w", len(c), ErrIntegrity)
	}
	n, tag, body := c[:aeadNonceSize], c[aeadNonceSize:aeadNonceSize+keyCommitSize], c[aeadNonceSize+keyCommitSize:]
	want := keyCommitment(key, n)
	if subtle.ConstantTimeCompare(want[:], tag) != 1 {
		return nonce, "", fmt.Errorf("key commitment does not match the key: %w", ErrIntegrity)
	}
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		return nonce, "", fmt.Errorf("seal: cipher: %w", err)
	}
	pt, err := aead.Open(nil, n, body, ad)
	if err != nil {
		return nonce, "", fmt.Errorf("decrypt: %w", ErrIntegrity)
	}
	defer clear(pt)
	copy(nonce[:], pt)
	block := pt[OpeningNonceSize:]
	vlen := int(binary.BigEndian.Uint16(block))
	if vlen > MaxValueSize || paddedLen(vlen) != len(block) {
		return nonce, "", fmt.Errorf("decrypted value length %d does not fit its %d-byte block: %w", vlen, len(block), ErrIntegrity)
	}
	v := block[2 : 2+vlen]
	for _, c := range block[2+vlen:] {
		if c != 0 {
			return nonce, "", fmt.Errorf("decrypted padding is not zero: %w", ErrIntegrity)
		}
	}
	if !utf8.Valid(v) {
		return nonce, "", fmt.Errorf("decrypted value is not UTF-8: %w", ErrIntegrity)
	}
	return nonce, string(v), nil
}
