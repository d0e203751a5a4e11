package ingest

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	lineage "github.com/lineage-audit/lineage"
)

// HeaderSignature carries an enforcement point's Ed25519 signature over the exact message body:
// "ed25519:<key id>:<base64 signature>". A valid one marks the ledger entry source_verified.
const HeaderSignature = "Lineage-Signature"

// Reasons for signature rejections.
const (
	ReasonSignatureRequired = "signature_required"
	ReasonBadSignature      = "bad_signature"
	ReasonUnknownSourceKey  = "unknown_source_key"
)

// SourceKeyFile is the JSON file of registered source keys (--source-keys).
type SourceKeyFile struct {
	Keys []SourceKey `json:"keys"`
	// RequireSignatures lists tenants whose records must carry a valid source signature.
	RequireSignatures []string `json:"require_signatures"`
}

// SourceKey binds an Ed25519 public key to one enforcement point (source id) of one tenant: a
// key can only vouch for records that name that source.
type SourceKey struct {
	Tenant    string `json:"tenant"`
	SourceID  string `json:"source_id"`
	KeyID     string `json:"key_id"`
	PublicKey []byte `json:"public_key"` // base64 in JSON, 32 bytes
}

// SourceKeys verifies source signatures at ingest.
type SourceKeys struct {
	keys    map[string]SourceKey // tenant \x00 key id
	require map[string]bool
}

// LoadSourceKeys reads a source key file strictly.
func LoadSourceKeys(path string) (*SourceKeys, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ingest: source keys: %w", err)
	}
	var f SourceKeyFile
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&f); err != nil {
		return nil, fmt.Errorf("ingest: source keys %s: %w", path, err)
	}
	return NewSourceKeys(f)
}

// NewSourceKeys checks and indexes a key file's contents.
func NewSourceKeys(f SourceKeyFile) (*SourceKeys, error) {
	k := &SourceKeys{keys: map[string]SourceKey{}, require: map[string]bool{}}
	for _, e := range f.Keys {
		if !validTenant(e.Tenant) || e.SourceID == "" || e.KeyID == "" || strings.Contains(e.KeyID, ":") {
			return nil, fmt.Errorf("ingest: source key %q: tenant, source_id and key_id (no ':') are required", e.KeyID)
		}
		if len(e.PublicKey) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("ingest: source key %q: public_key must be %d bytes", e.KeyID, ed25519.PublicKeySize)
		}
		id := e.Tenant + "\x00" + e.KeyID
		if _, dup := k.keys[id]; dup {
			return nil, fmt.Errorf("ingest: source key %q listed twice for tenant %q", e.KeyID, e.Tenant)
		}
		k.keys[id] = e
	}
	for _, t := range f.RequireSignatures {
		if !validTenant(t) {
			return nil, fmt.Errorf("ingest: require_signatures: invalid tenant %q", t)
		}
		k.require[t] = true
	}
	return k, nil
}

// Check verifies the signature header (may be empty) of a record's message body. It returns
// whether the record is source-verified, or why it must be rejected. A nil *SourceKeys accepts
// everything unverified.
func (k *SourceKeys) Check(tenant string, rec *lineage.Record, body []byte, header string) (bool, *Rejection) {
	if header == "" {
		if k != nil && k.require[tenant] {
			return false, &Rejection{Code: ReasonSignatureRequired, Detail: fmt.Sprintf("tenant %q requires records signed by a registered source key (%s header)", tenant, HeaderSignature)}
		}
		return false, nil
	}
	alg, rest, ok1 := strings.Cut(header, ":")
	keyID, sig64, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 || alg != "ed25519" {
		return false, &Rejection{Code: ReasonBadSignature, Detail: fmt.Sprintf("%s must be ed25519:<key id>:<base64 signature>", HeaderSignature)}
	}
	if k == nil {
		return false, &Rejection{Code: ReasonUnknownSourceKey, Detail: "the record is signed but no source keys are registered"}
	}
	key, ok := k.keys[tenant+"\x00"+keyID]
	if !ok {
		return false, &Rejection{Code: ReasonUnknownSourceKey, Detail: fmt.Sprintf("no source key %q registered for tenant %q", keyID, tenant)}
	}
	if key.SourceID != rec.Source.ID {
		return false, &Rejection{Code: ReasonBadSignature, Field: "source.id",
			Detail: fmt.Sprintf("key %q belongs to source %q, the record names %q", keyID, key.SourceID, rec.Source.ID)}
	}
	sig, err := base64.StdEncoding.DecodeString(sig64)
	if err != nil || !ed25519.Verify(key.PublicKey, body, sig) {
		return false, &Rejection{Code: ReasonBadSignature, Detail: fmt.Sprintf("the signature by key %q does not verify over the message body", keyID)}
	}
	return true, nil
}

// Sign returns the signature header value for body, for publishers that sign records.
func Sign(priv ed25519.PrivateKey, keyID string, body []byte) string {
	return "ed25519:" + keyID + ":" + base64.StdEncoding.EncodeToString(ed25519.Sign(priv, body))
}

// LoadSourceKeySeed reads an enforcement point's private key: the base64 Ed25519 seed on one line
// that `lineagectl sourcekey create` writes (cmd/lineagectl/admin.go).
func LoadSourceKeySeed(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%s is not a source key seed", path)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}
