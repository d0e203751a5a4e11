package verify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/lineage-audit/lineage/ledger"
)

// Keys is the answer of GET /v1/keys: the log's origin, its current checkpoint key, and the
// rotation statements that link it to every earlier key (ledger/rotate.go), oldest first.
type Keys struct {
	Origin    string   `json:"origin"`
	Current   string   `json:"current"`
	Rotations []string `json:"rotations"`
}

// MaxKeysAnswer bounds an answer of GET /v1/keys.
const MaxKeysAnswer = ledger.MaxRotations*(ledger.MaxRotationSize+64) + 4096

// DecodeKeys parses an answer of GET /v1/keys strictly: one JSON object with exactly the
// fields of Keys, at most MaxKeysAnswer bytes. It checks the form only; FollowRotations checks
// the statements.
func DecodeKeys(b []byte) (Keys, error) {
	if len(b) > MaxKeysAnswer {
		return Keys{}, fmt.Errorf("verify: keys: %d bytes, over %d", len(b), MaxKeysAnswer)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var k Keys
	if err := dec.Decode(&k); err != nil {
		return Keys{}, fmt.Errorf("verify: keys: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Keys{}, errors.New("verify: keys: data after the JSON object")
	}
	if k.Origin == "" || k.Current == "" || k.Rotations == nil {
		return Keys{}, errors.New("verify: keys: origin, current and rotations are required")
	}
	if len(k.Rotations) > ledger.MaxRotations {
		return Keys{}, fmt.Errorf("verify: keys: %d rotations, over %d", len(k.Rotations), ledger.MaxRotations)
	}
	return k, nil
}

// FollowRotations walks the rotation statements from a key the caller trusts (a verifier key
// string, "name+hash+base64", obtained out of band) and returns every key linked to it, oldest
// first. Every statement must be signed by both its keys (ledger.OpenRotation), and together
// they must form one chain (ledger.ChainRotations) that contains the trusted key: walking
// forward, each new key is authorized by the key trusted so far; walking back, each older key
// is vouched for by the trusted key that replaced it. A statement that fails, a fork, or a
// statement outside the trusted key's chain fails the whole walk: a client must not pick the
// statements it likes. With no statements the result is the trusted key alone.
func FollowRotations(trusted string, statements [][]byte) ([]string, error) {
	trusted = strings.TrimSpace(trusted)
	tv, err := ledger.NewVerifier(trusted)
	if err != nil {
		return nil, fmt.Errorf("verify: trusted key: %w", err)
	}
	if len(statements) > ledger.MaxRotations {
		return nil, fmt.Errorf("verify: %d rotation statements, over %d", len(statements), ledger.MaxRotations)
	}
	rs := make([]ledger.Rotation, 0, len(statements))
	for i, raw := range statements {
		r, err := ledger.OpenRotation(raw)
		if err != nil {
			return nil, fmt.Errorf("verify: rotation statement %d: %w", i+1, err)
		}
		if r.Origin != tv.Name() {
			return nil, fmt.Errorf("verify: rotation statement %d is for log %q, the trusted key for %q", i+1, r.Origin, tv.Name())
		}
		rs = append(rs, r)
	}
	chain, err := ledger.ChainRotations(rs)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	if len(chain) == 0 {
		return []string{trusted}, nil
	}
	// String equality is key equality: OpenRotation accepts canonical keys only, and the
	// trusted key is compared in full (not by its 32-bit key hash, which a forger can match).
	keys := ledger.ChainKeys(chain)
	if !slices.Contains(keys, trusted) {
		return nil, fmt.Errorf("verify: the rotation statements do not involve the trusted key %s (they link %d other keys)", trusted, len(keys))
	}
	return keys, nil
}
