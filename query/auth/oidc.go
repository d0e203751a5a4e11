package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// OIDCConfig configures bearer-token authentication with an OpenID Connect provider.
type OIDCConfig struct {
	// Issuer is the provider's issuer identifier; tokens must carry exactly this "iss", and so
	// must the provider's discovery document.
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
	// Logger receives key-set refreshes and their failures (default slog.Default()).
	Logger *slog.Logger
}

// OIDC authenticates "Authorization: Bearer <JWT>" access tokens issued by one provider.
//
// Discovery, JWS parsing and the iss / aud / exp / nbf checks are github.com/coreos/go-oidc's
// IDTokenVerifier; signatures are go-jose's. Lineage adds, failing closed on each:
//   - its own key set (oidc_keys.go): the algorithm must match the key (RSA of 2048 bits or more
//     for RS*/PS*, P-256 for ES256, P-384 for ES384, P-521 for ES512, Ed25519 for EdDSA, and the
//     JWK's own "alg" when it has one); a "crit" header is refused; the keys are trusted for
//     at most keysMaxAge after a fetch, so a key the provider removed stops verifying even if
//     no unknown key id ever forces a refetch;
//   - "exp" (required), "nbf" and "iat" must be JSON numbers ("exp": "9999999999" is refused,
//     although go-oidc's parser would take it);
//   - the roles and tenants claims must be present, and every role known.
//
// Algorithms are never "none" or an HMAC (which would let a public key act as a shared secret).
type OIDC struct {
	cfg OIDCConfig
	log *slog.Logger

	mu       sync.Mutex
	provider *oidc.Provider // discovered, once
	verifier *oidc.IDTokenVerifier
	triedAt  time.Time // last failed discovery, to retry at most every keysMinRefetch
	tryErr   error
}

// maxTokenSize bounds a bearer token before any parsing.
const maxTokenSize = 16 << 10

// acceptedAlgs are the JWS algorithms a token may use; keyFits ties each to a key type and curve.
var acceptedAlgs = []string{
	oidc.RS256, oidc.RS384, oidc.RS512, oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.ES256, oidc.ES384, oidc.ES512, oidc.EdDSA,
}

// NewOIDC returns an authenticator. It does no network I/O: discovery and keys are fetched on
// first use, so lineaged starts while the provider is down.
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
	o := &OIDC{cfg: cfg, log: cfg.Logger}
	if o.log == nil {
		o.log = slog.Default()
	}
	o.log = o.log.With("component", "oidc", "issuer", cfg.Issuer)
	if cfg.JWKSURL != "" {
		o.verifier = o.newVerifier(cfg.JWKSURL)
	}
	return o, nil
}

func (o *OIDC) newVerifier(jwksURL string) *oidc.IDTokenVerifier {
	keys := &keySet{url: jwksURL, client: o.cfg.HTTPClient, now: o.cfg.Now, log: o.log}
	return oidc.NewVerifier(o.cfg.Issuer, keys, &oidc.Config{
		ClientID:             o.cfg.Audience,
		SupportedSigningAlgs: acceptedAlgs,
		Now:                  o.cfg.Now,
	})
}

// Provider returns the provider as discovered from <Issuer>/.well-known/openid-configuration
// (whose "issuer" must equal Issuer), for flows that need its endpoints, such as a browser
// login with oauth2.Config{Endpoint: p.Endpoint()}. A failed discovery is retried at most every
// 30 s.
func (o *OIDC) Provider(ctx context.Context) (*oidc.Provider, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.discover(ctx)
}

func (o *OIDC) discover(ctx context.Context) (*oidc.Provider, error) {
	if o.provider != nil {
		return o.provider, nil
	}
	now := o.cfg.Now()
	if o.tryErr != nil && now.Sub(o.triedAt) < keysMinRefetch {
		return nil, o.tryErr
	}
	// The caller's cancellation must not leave a failure cached for every other caller.
	ctx = oidc.ClientContext(context.WithoutCancel(ctx), o.cfg.HTTPClient)
	p, err := oidc.NewProvider(ctx, o.cfg.Issuer)
	if err != nil {
		o.triedAt, o.tryErr = now, fmt.Errorf("oidc discovery: %w", err)
		o.log.Warn("oidc: discovery failed", "err", err)
		return nil, o.tryErr
	}
	o.provider, o.tryErr = p, nil
	return p, nil
}

func (o *OIDC) tokenVerifier(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.verifier != nil {
		return o.verifier, nil
	}
	p, err := o.discover(ctx)
	if err != nil {
		return nil, err
	}
	var meta struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil || meta.JWKSURI == "" {
		return nil, fmt.Errorf("oidc discovery names no jwks_uri (%v)", err)
	}
	o.verifier = o.newVerifier(meta.JWKSURI)
	return o.verifier, nil
}

// Authenticate implements Authenticator. Tokens that are not JWTs (API keys) are left to the
// next authenticator.
func (o *OIDC) Authenticate(r *http.Request) (*Principal, error) {
	tok, ok := bearer(r)
	if !ok || strings.HasPrefix(tok, KeyPrefix) || strings.Count(tok, ".") != 2 {
		return nil, nil
	}
	return o.VerifyToken(r.Context(), tok)
}

// VerifyToken checks a raw JWT from the provider and returns its principal. Errors wrap
// ErrUnauthenticated.
func (o *OIDC) VerifyToken(ctx context.Context, tok string) (*Principal, error) {
	p, err := o.verify(ctx, tok)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	return p, nil
}

func (o *OIDC) verify(ctx context.Context, tok string) (*Principal, error) {
	if len(tok) > maxTokenSize {
		return nil, errors.New("token too large")
	}
	v, err := o.tokenVerifier(ctx)
	if err != nil {
		return nil, err
	}
	t, err := v.Verify(ctx, tok)
	if err != nil {
		return nil, err
	}
	var claims map[string]json.RawMessage
	if err := t.Claims(&claims); err != nil {
		return nil, errors.New("malformed token payload")
	}
	for _, c := range []string{"exp", "nbf", "iat"} {
		raw, ok := claims[c]
		if !ok && c != "exp" {
			continue
		}
		if !isJSONNumber(raw) {
			return nil, fmt.Errorf("token %s is not a number", c)
		}
	}
	return o.principal(t.Subject, claims)
}

// principal maps the verified claims to Lineage's roles and tenants: the part that is ours.
func (o *OIDC) principal(sub string, claims map[string]json.RawMessage) (*Principal, error) {
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

// isJSONNumber tells whether raw is a JSON number literal (not a string, even a numeric one).
func isJSONNumber(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return false
	}
	var n json.Number
	return json.Unmarshal(raw, &n) == nil
}
