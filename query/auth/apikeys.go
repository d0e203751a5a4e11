package auth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// KeyPrefix starts every Lineage API key, so secret scanners and humans recognise one.
const KeyPrefix = "lin_"

// KeyFile is the JSON file of API keys lineaged accepts (--api-keys). It holds no secrets: only
// the SHA-256 of each key. API keys are 256-bit random values, so a plain hash is enough: there
// is nothing to brute-force (unlike passwords, which would need a slow KDF).
type KeyFile struct {
	Keys []KeyEntry `json:"keys"`
}

// KeyEntry is one API key.
type KeyEntry struct {
	ID      string   `json:"id"`
	SHA256  string   `json:"sha256"`
	Roles   []Role   `json:"roles"`
	Tenants []string `json:"tenants"`
}

// NewKey makes a fresh API key and the entry that admits it.
func NewKey(id string, roles []Role, tenants []string) (key string, e KeyEntry, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", e, fmt.Errorf("auth: random: %w", err)
	}
	key = KeyPrefix + base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(key))
	e = KeyEntry{ID: id, SHA256: hex.EncodeToString(sum[:]), Roles: roles, Tenants: tenants}
	return key, e, e.validate()
}

func (e KeyEntry) validate() error {
	if e.ID == "" {
		return fmt.Errorf("auth: key entry without id")
	}
	if b, err := hex.DecodeString(e.SHA256); err != nil || len(b) != sha256.Size {
		return fmt.Errorf("auth: key %q: sha256 must be 64 hex digits", e.ID)
	}
	if len(e.Roles) == 0 || len(e.Tenants) == 0 {
		return fmt.Errorf("auth: key %q needs at least one role and one tenant (or \"*\")", e.ID)
	}
	for _, r := range e.Roles {
		if !ValidRole(r) {
			return fmt.Errorf("auth: key %q: unknown role %q", e.ID, r)
		}
	}
	return nil
}

// APIKeys authenticates "Authorization: Bearer lin_…" against a key file.
type APIKeys struct {
	byHash map[[32]byte]*Principal
}

// LoadAPIKeys reads and checks a key file (unknown fields are refused).
func LoadAPIKeys(path string) (*APIKeys, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: api keys: %w", err)
	}
	var f KeyFile
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&f); err != nil {
		return nil, fmt.Errorf("auth: api keys %s: %w", path, err)
	}
	k := &APIKeys{byHash: map[[32]byte]*Principal{}}
	for _, e := range f.Keys {
		if err := e.validate(); err != nil {
			return nil, fmt.Errorf("%w (in %s)", err, path)
		}
		var h [32]byte
		raw, _ := hex.DecodeString(e.SHA256)
		copy(h[:], raw)
		if _, dup := k.byHash[h]; dup {
			return nil, fmt.Errorf("auth: api keys %s: key %q listed twice", path, e.ID)
		}
		k.byHash[h] = &Principal{Subject: "apikey:" + e.ID, Roles: e.Roles, Tenants: e.Tenants}
	}
	return k, nil
}

// Authenticate implements Authenticator. It answers (nil, nil) for requests that carry no API
// key, so another authenticator may try them.
func (k *APIKeys) Authenticate(r *http.Request) (*Principal, error) {
	tok, ok := bearer(r)
	if !ok || !strings.HasPrefix(tok, KeyPrefix) {
		return nil, nil
	}
	if p := k.byHash[sha256.Sum256([]byte(tok))]; p != nil {
		return p, nil
	}
	return nil, ErrUnauthenticated
}

// bearer extracts a bearer token from the Authorization header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}
