package auth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"
)

// OIDCConfig configures bearer-token authentication with an OpenID Connect provider.
type OIDCConfig struct {
	// Issuer is the provider's issuer identifier; tokens must carry exactly this "iss".
	Issuer string
	// Audience must appear in the token's "aud" (Lineage's client id at the provider).
	Audience string
	// JWKSURL is where the signing keys are; empty means discover it from
	// <Issuer>/.well-known/openid-configuration.
	JWKSURL string
	// RolesClaim and TenantsClaim name the claims (string arrays) that carry the caller's
	// Lineage roles and tenants. Defaults: "lineage_roles", "lineage_tenants".
	RolesClaim   string
	TenantsClaim string
	// HTTPClient fetches discovery and keys (default: 10 s timeout).
	HTTPClient *http.Client
	// Now is the clock (tests).
	Now func() time.Time
}

// OIDC authenticates "Authorization: Bearer <JWT>" access tokens issued by one provider. It
// checks, failing closed on each: the algorithm (RS256/384/512, PS256, ES256/384, EdDSA — never
// "none" or an HMAC, which would let a public key act as a shared secret), the signature against
// the provider's JWKS (refetched, at most every 30 s, when a token names an unknown key id),
// iss, aud, exp and nbf (60 s leeway), and that roles and tenants are present.
type OIDC struct {
	cfg OIDCConfig

	mu        sync.Mutex
	keys      map[string]crypto.PublicKey
	fetchedAt time.Time
	jwksURL   string
}

// maxTokenSize bounds a bearer token before any parsing.
const maxTokenSize = 16 << 10

// NewOIDC returns an authenticator; keys are fetched on first use.
func NewOIDC(cfg OIDCConfig) (*OIDC, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("auth: oidc needs an issuer and an audience")
	}
	if cfg.RolesClaim == "" {
		cfg.RolesClaim = "lineage_roles"
	}
	if cfg.TenantsClaim == "" {
		cfg.TenantsClaim = "lineage_tenants"
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &OIDC{cfg: cfg, jwksURL: cfg.JWKSURL, keys: map[string]crypto.PublicKey{}}, nil
}

// Authenticate implements Authenticator. Tokens that are not JWTs (API keys) are left to the
// next authenticator.
func (o *OIDC) Authenticate(r *http.Request) (*Principal, error) {
	tok, ok := bearer(r)
	if !ok || strings.HasPrefix(tok, KeyPrefix) || strings.Count(tok, ".") != 2 {
		return nil, nil
	}
	p, err := o.verify(r.Context(), tok)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	return p, nil
}

type jwtHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

func (o *OIDC) verify(ctx context.Context, tok string) (*Principal, error) {
	if len(tok) > maxTokenSize {
		return nil, errors.New("token too large")
	}
	parts := strings.Split(tok, ".")
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, errors.New("malformed token header")
	}
	var h jwtHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, errors.New("malformed token header")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, errors.New("malformed token signature")
	}
	key, err := o.key(ctx, h.Kid)
	if err != nil {
		return nil, err
	}
	if err := verifySig(h.Alg, key, []byte(parts[0]+"."+parts[1]), sig); err != nil {
		return nil, err
	}
	pb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, errors.New("malformed token payload")
	}
	var claims map[string]json.RawMessage
	d := json.NewDecoder(bytes.NewReader(pb))
	d.UseNumber()
	if err := d.Decode(&claims); err != nil {
		return nil, errors.New("malformed token payload")
	}
	var iss, sub string
	_ = json.Unmarshal(claims["iss"], &iss)
	_ = json.Unmarshal(claims["sub"], &sub)
	if iss != o.cfg.Issuer {
		return nil, fmt.Errorf("token issuer %q is not %q", iss, o.cfg.Issuer)
	}
	if !hasAudience(claims["aud"], o.cfg.Audience) {
		return nil, errors.New("token audience does not include this service")
	}
	now := o.cfg.Now()
	const leeway = 60 * time.Second
	exp, ok := numericDate(claims["exp"])
	if !ok {
		return nil, errors.New("token has no exp")
	}
	if now.After(exp.Add(leeway)) {
		return nil, errors.New("token expired")
	}
	if nbf, ok := numericDate(claims["nbf"]); ok && now.Add(leeway).Before(nbf) {
		return nil, errors.New("token not valid yet")
	}
	var roles []Role
	var tenants []string
	if err := json.Unmarshal(claims[o.cfg.RolesClaim], &roles); err != nil || len(roles) == 0 {
		return nil, fmt.Errorf("token carries no %s", o.cfg.RolesClaim)
	}
	for _, r := range roles {
		if !ValidRole(r) {
			return nil, fmt.Errorf("token role %q is unknown", r)
		}
	}
	if err := json.Unmarshal(claims[o.cfg.TenantsClaim], &tenants); err != nil || len(tenants) == 0 {
		return nil, fmt.Errorf("token carries no %s", o.cfg.TenantsClaim)
	}
	if sub == "" {
		return nil, errors.New("token has no subject")
	}
	return &Principal{Subject: "oidc:" + sub, Roles: roles, Tenants: tenants}, nil
}

func hasAudience(raw json.RawMessage, want string) bool {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one == want
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		for _, a := range many {
			if a == want {
				return true
			}
		}
	}
	return false
}

func numericDate(raw json.RawMessage) (time.Time, bool) {
	var n json.Number
	if len(raw) == 0 || json.Unmarshal(raw, &n) != nil {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

func verifySig(alg string, key crypto.PublicKey, signed, sig []byte) error {
	bad := errors.New("token signature does not verify")
	switch alg {
	case "RS256", "RS384", "RS512", "PS256":
		k, ok := key.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("key type does not match alg %s", alg)
		}
		h, digest := hashFor(alg, signed)
		var err error
		if alg == "PS256" {
			err = rsa.VerifyPSS(k, h, digest, sig, nil)
		} else {
			err = rsa.VerifyPKCS1v15(k, h, digest, sig)
		}
		if err != nil {
			return bad
		}
		return nil
	case "ES256", "ES384":
		k, ok := key.(*ecdsa.PublicKey)
		if !ok {
			return fmt.Errorf("key type does not match alg %s", alg)
		}
		_, digest := hashFor(alg, signed)
		n := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*n {
			return bad
		}
		if !ecdsa.Verify(k, digest, new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])) {
			return bad
		}
		return nil
	case "EdDSA":
		k, ok := key.(ed25519.PublicKey)
		if !ok || !ed25519.Verify(k, signed, sig) {
			return bad
		}
		return nil
	}
	return fmt.Errorf("token algorithm %q is not accepted", alg)
}

func hashFor(alg string, msg []byte) (crypto.Hash, []byte) {
	switch alg[2:] {
	case "384":
		s := sha512.Sum384(msg)
		return crypto.SHA384, s[:]
	case "512":
		s := sha512.Sum512(msg)
		return crypto.SHA512, s[:]
	}
	s := sha256.Sum256(msg)
	return crypto.SHA256, s[:]
}

// key returns the provider key kid, fetching the JWKS when it is unknown (at most every 30 s,
// so a flood of tokens with made-up key ids cannot hammer the provider).
func (o *OIDC) key(ctx context.Context, kid string) (crypto.PublicKey, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if k, ok := o.keys[kid]; ok {
		return k, nil
	}
	if time.Since(o.fetchedAt) < 30*time.Second && !o.fetchedAt.IsZero() {
		return nil, fmt.Errorf("token key %q is unknown", kid)
	}
	o.fetchedAt = time.Now()
	keys, err := o.fetchKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetch provider keys: %w", err)
	}
	o.keys = keys
	if k, ok := keys[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("token key %q is unknown", kid)
}

func (o *OIDC) getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := o.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v)
}

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

func (o *OIDC) fetchKeys(ctx context.Context) (map[string]crypto.PublicKey, error) {
	if o.jwksURL == "" {
		var disc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := o.getJSON(ctx, strings.TrimRight(o.cfg.Issuer, "/")+"/.well-known/openid-configuration", &disc); err != nil {
			return nil, err
		}
		if disc.Issuer != o.cfg.Issuer || disc.JWKSURI == "" {
			return nil, fmt.Errorf("discovery names issuer %q (want %q) and jwks_uri %q", disc.Issuer, o.cfg.Issuer, disc.JWKSURI)
		}
		o.jwksURL = disc.JWKSURI
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := o.getJSON(ctx, o.jwksURL, &set); err != nil {
		return nil, err
	}
	out := map[string]crypto.PublicKey{}
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if pk, err := parseJWK(k); err == nil {
			out[k.Kid] = pk
		}
	}
	return out, nil
}

func parseJWK(k jwk) (crypto.PublicKey, error) {
	b := func(s string) []byte { v, _ := base64.RawURLEncoding.DecodeString(s); return v }
	switch k.Kty {
	case "RSA":
		n, e := new(big.Int).SetBytes(b(k.N)), new(big.Int).SetBytes(b(k.E))
		if n.BitLen() < 2048 || !e.IsInt64() {
			return nil, errors.New("weak or malformed RSA key")
		}
		return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
	case "EC":
		var c elliptic.Curve
		switch k.Crv {
		case "P-256":
			c = elliptic.P256()
		case "P-384":
			c = elliptic.P384()
		default:
			return nil, errors.New("unsupported curve")
		}
		x, y := new(big.Int).SetBytes(b(k.X)), new(big.Int).SetBytes(b(k.Y))
		if !c.IsOnCurve(x, y) {
			return nil, errors.New("point not on curve")
		}
		return &ecdsa.PublicKey{Curve: c, X: x, Y: y}, nil
	case "OKP":
		if k.Crv != "Ed25519" || len(b(k.X)) != ed25519.PublicKeySize {
			return nil, errors.New("unsupported OKP key")
		}
		return ed25519.PublicKey(b(k.X)), nil
	}
	return nil, fmt.Errorf("unsupported key type %q", k.Kty)
}
