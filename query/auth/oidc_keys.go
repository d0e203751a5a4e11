package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

const (
	// keysMaxAge bounds how long a fetched key set is trusted. After it, the keys are fetched
	// again before any token is verified, and if that fails every token is refused until a
	// fetch succeeds: a key the provider removed (rotated out, or revoked after a compromise)
	// stops verifying within keysMaxAge, whatever key ids tokens name and even if an attacker
	// blocks the fetches.
	keysMaxAge = 5 * time.Minute
	// keysMinRefetch spaces fetches caused by unknown key ids or failures, so that a flood of
	// tokens with made-up key ids cannot hammer the provider.
	keysMinRefetch = 30 * time.Second
	// maxJWKSSize bounds the provider's key set document.
	maxJWKSSize = 1 << 20
)

// keySet is the provider's JWKS, as the oidc.KeySet of go-oidc's verifier. go-oidc's own
// RemoteKeySet keeps keys until an unknown key id forces a refetch, refetches on every unknown
// key id, and lets go-jose verify with any key the id matches; this one bounds the cache's age,
// rate-limits refetches, and ties the algorithm to the key (keyFits).
type keySet struct {
	url    string
	client *http.Client
	now    func() time.Time
	log    *slog.Logger

	mu        sync.Mutex
	keys      []jose.JSONWebKey
	fetchedAt time.Time // last successful fetch; zero: none
	triedAt   time.Time // last fetch attempt
	fetchErr  error     // of the last attempt
}

var _ oidc.KeySet = (*keySet)(nil)

// VerifySignature implements oidc.KeySet: it returns the payload of jwt if a trusted key that
// fits the token's algorithm verifies its signature.
func (s *keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	algs := make([]jose.SignatureAlgorithm, len(acceptedAlgs))
	for i, a := range acceptedAlgs {
		algs[i] = jose.SignatureAlgorithm(a)
	}
	jws, err := jose.ParseSigned(jwt, algs)
	if err != nil {
		return nil, fmt.Errorf("malformed token: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("token must have exactly one signature")
	}
	h := jws.Signatures[0].Protected
	// RFC 7515 §4.1.11: a recipient must refuse a token whose "crit" names an extension it does
	// not understand. Lineage understands none (go-jose would accept "b64"), so any crit, or a
	// b64 header outside crit, is refused.
	for _, name := range []jose.HeaderKey{"crit", "b64"} {
		if _, ok := h.ExtraHeaders[name]; ok {
			return nil, fmt.Errorf("token header %q is not supported", name)
		}
	}
	keys, err := s.candidates(ctx, h.KeyID)
	if err != nil {
		return nil, err
	}
	var unfit error
	for _, k := range keys {
		if err := keyFits(k, h.Algorithm); err != nil {
			unfit = err
			continue
		}
		if payload, err := jws.Verify(k.Key); err == nil {
			return payload, nil
		}
	}
	if unfit != nil && len(keys) == 1 {
		return nil, unfit
	}
	return nil, errors.New("token signature does not verify")
}

// keyFits tells whether a token signed with alg may be verified with k.
func keyFits(k jose.JSONWebKey, alg string) error {
	if k.Use != "" && k.Use != "sig" {
		return fmt.Errorf("key %q is not a signing key", k.KeyID)
	}
	if k.Algorithm != "" && k.Algorithm != alg {
		return fmt.Errorf("key %q is for %s, not %s", k.KeyID, k.Algorithm, alg)
	}
	ok := false
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		ok = slices.Contains([]string{oidc.RS256, oidc.RS384, oidc.RS512, oidc.PS256, oidc.PS384, oidc.PS512}, alg) &&
			pub.N.BitLen() >= 2048
	case *ecdsa.PublicKey:
		want := map[string]elliptic.Curve{oidc.ES256: elliptic.P256(), oidc.ES384: elliptic.P384(), oidc.ES512: elliptic.P521()}[alg]
		ok = want != nil && pub.Curve == want
	case ed25519.PublicKey:
		ok = alg == oidc.EdDSA
	}
	if !ok {
		return fmt.Errorf("key %q (%s) does not fit algorithm %s", k.KeyID, keyKind(k.Key), alg)
	}
	return nil
}

func keyKind(k any) string {
	switch pub := k.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", pub.N.BitLen())
	case *ecdsa.PublicKey:
		return pub.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", k)
}

// candidates returns the trusted keys with id kid (every key if the token names none), fetching
// the key set when it is older than keysMaxAge or, at most every keysMinRefetch, when no key has
// that id.
func (s *keySet) candidates(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.fetchedAt.IsZero() || now.Sub(s.fetchedAt) >= keysMaxAge {
		if err := s.refresh(ctx, now); err != nil {
			return nil, err
		}
	}
	match := func() []jose.JSONWebKey {
		var out []jose.JSONWebKey
		for _, k := range s.keys {
			if kid == "" || k.KeyID == kid {
				out = append(out, k)
			}
		}
		return out
	}
	keys := match()
	if len(keys) == 0 && now.Sub(s.triedAt) >= keysMinRefetch {
		if err := s.refresh(ctx, now); err != nil {
			return nil, err
		}
		keys = match()
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("token key %q is unknown", kid)
	}
	return keys, nil
}

// refresh fetches the key set, unless the last attempt failed less than keysMinRefetch ago.
// On failure the old keys are dropped if they are older than keysMaxAge.
func (s *keySet) refresh(ctx context.Context, now time.Time) error {
	if s.fetchErr != nil && now.Sub(s.triedAt) < keysMinRefetch {
		return s.fetchErr
	}
	s.triedAt = now
	// The caller's cancellation must not leave a failure recorded for every other caller.
	keys, err := s.fetch(context.WithoutCancel(ctx))
	if err != nil {
		s.fetchErr = fmt.Errorf("fetch provider keys: %w", err)
		if !s.fetchedAt.IsZero() && now.Sub(s.fetchedAt) >= keysMaxAge {
			s.keys = nil
		}
		s.log.Warn("oidc: provider keys not refreshed", "url", s.url, "err", err)
		return s.fetchErr
	}
	if !slices.EqualFunc(keys, s.keys, func(a, b jose.JSONWebKey) bool { return a.KeyID == b.KeyID }) {
		s.log.Info("oidc: provider keys changed", "url", s.url, "keys", len(keys))
	}
	s.keys, s.fetchedAt, s.fetchErr = keys, now, nil
	return nil
}

// fetch reads the key set. Keys go-jose cannot parse (unknown types or curves, symmetric keys)
// are skipped, as RFC 7517 §5 asks; only public halves are kept.
func (s *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", s.url, resp.Status)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJWKSSize)).Decode(&set); err != nil {
		return nil, fmt.Errorf("GET %s: %w", s.url, err)
	}
	var out []jose.JSONWebKey
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if err := json.Unmarshal(raw, &k); err != nil {
			s.log.Debug("oidc: provider key skipped", "err", err)
			continue
		}
		pub := k.Public()
		if !pub.Valid() {
			continue
		}
		out = append(out, pub)
	}
	return out, nil
}
