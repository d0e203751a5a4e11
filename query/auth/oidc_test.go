package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// testIdP is an OpenID provider in the test: discovery, a JWKS it can change, and signers. It
// signs by hand so that tests can make tokens no honest library would (mismatched algorithms
// and keys, crit headers, string dates).
type testIdP struct {
	srv *httptest.Server

	mu      sync.Mutex
	keys    map[string]crypto.Signer // by kid, as published
	jwkAlg  map[string]string        // "alg" published with a key, if any
	issuer  string                   // "issuer" of the discovery document (default srv.URL)
	down    bool                     // the JWKS endpoint answers 500
	fetches atomic.Int32             // JWKS requests served
}

func newIdP(t *testing.T) *testIdP {
	t.Helper()
	idp := &testIdP{keys: map[string]crypto.Signer{}, jwkAlg: map[string]string{}}
	idp.addKey(t, "k1", rsaKey(t, 2048), "")
	mux := http.NewServeMux()
	idp.srv = httptest.NewServer(mux)
	t.Cleanup(idp.srv.Close)
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		idp.mu.Lock()
		iss := idp.issuer
		idp.mu.Unlock()
		if iss == "" {
			iss = idp.srv.URL
		}
		json.NewEncoder(w).Encode(map[string]string{"issuer": iss, "jwks_uri": idp.srv.URL + "/jwks"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		idp.fetches.Add(1)
		idp.mu.Lock()
		defer idp.mu.Unlock()
		if idp.down {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		var keys []jose.JSONWebKey
		for kid, k := range idp.keys {
			keys = append(keys, jose.JSONWebKey{Key: k.Public(), KeyID: kid, Use: "sig", Algorithm: idp.jwkAlg[kid]})
		}
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: keys})
	})
	return idp
}

func rsaKey(t *testing.T, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ecKey(t *testing.T, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (idp *testIdP) addKey(t *testing.T, kid string, k crypto.Signer, jwkAlg string) {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	idp.keys[kid], idp.jwkAlg[kid] = k, jwkAlg
}

func (idp *testIdP) removeKey(kid string) {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	delete(idp.keys, kid)
}

// sign makes a JWT with header hdr (alg and kid are taken from it) signed by the idp's key kid
// (or by key, if not nil) as alg says, whatever the key's type or curve.
func (idp *testIdP) sign(t *testing.T, hdr map[string]any, claims map[string]any, key crypto.Signer) string {
	t.Helper()
	if key == nil {
		idp.mu.Lock()
		key = idp.keys[hdr["kid"].(string)]
		idp.mu.Unlock()
	}
	b64 := base64.RawURLEncoding.EncodeToString
	h, _ := json.Marshal(hdr)
	p, _ := json.Marshal(claims)
	signed := b64(h) + "." + b64(p)
	alg := hdr["alg"].(string)
	var hf crypto.Hash
	switch alg[2:] {
	case "256":
		hf = crypto.SHA256
	case "384":
		hf = crypto.SHA384
	case "512":
		hf = crypto.SHA512
	}
	var digest []byte
	switch hf {
	case crypto.SHA256:
		s := sha256.Sum256([]byte(signed))
		digest = s[:]
	case crypto.SHA384:
		s := sha512.Sum384([]byte(signed))
		digest = s[:]
	case crypto.SHA512:
		s := sha512.Sum512([]byte(signed))
		digest = s[:]
	}
	var sig []byte
	var err error
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if alg[:2] == "PS" {
			sig, err = rsa.SignPSS(rand.Reader, k, hf, digest, nil)
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, k, hf, digest)
		}
	case *ecdsa.PrivateKey:
		// JWS encodes r and s in the size the algorithm names (RFC 7518 §3.4); when the key's
		// curve is larger they cannot fit, and the key's size is used (what the hand-written
		// verifier before go-oidc accepted).
		n := max(map[string]int{"ES256": 32, "ES384": 48, "ES512": 66}[alg], (k.Curve.Params().BitSize+7)/8)
		var r, s *big.Int
		if r, s, err = ecdsa.Sign(rand.Reader, k, digest); err == nil {
			sig = append(r.FillBytes(make([]byte, n)), s.FillBytes(make([]byte, n))...)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + b64(sig)
}

func (idp *testIdP) token(t *testing.T, alg string, claims map[string]any) string {
	return idp.sign(t, map[string]any{"alg": alg, "kid": "k1", "typ": "JWT"}, claims, nil)
}

func testLogger(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(t.Output(), nil)) }

// testClock is a clock tests move forward.
type testClock struct{ off atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *testClock) advance(d time.Duration) { c.off.Add(int64(d)) }

func goodClaims(iss string) map[string]any {
	now := time.Now()
	return map[string]any{"iss": iss, "aud": []string{"lineage", "other"}, "sub": "auditor-7",
		"exp": now.Add(time.Hour).Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix(),
		"lineage_roles": []string{"auditor"}, "lineage_tenants": []string{"acme"}}
}

func authWith(o *OIDC, tok string) (*Principal, error) {
	r, _ := http.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return o.Authenticate(r)
}

func TestOIDC(t *testing.T) {
	idp := newIdP(t)
	idp.addKey(t, "p256", ecKey(t, elliptic.P256()), "")
	idp.addKey(t, "p384", ecKey(t, elliptic.P384()), "")
	idp.addKey(t, "rs256-only", rsaKey(t, 2048), "RS256")
	idp.addKey(t, "rsa1024", rsaKey(t, 1024), "")
	o, err := NewOIDC(OIDCConfig{Issuer: idp.srv.URL, Audience: "lineage", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	good := func() map[string]any { return goodClaims(idp.srv.URL) }
	auth := func(tok string) (*Principal, error) { return authWith(o, tok) }
	p, err := auth(idp.token(t, "RS256", good()))
	if err != nil || p == nil || p.Subject != "oidc:auditor-7" || !p.Has(RoleAuditor) || !p.CanSee("acme") || p.CanSee("globex") {
		t.Fatalf("valid token: %+v, %v", p, err)
	}
	// Each key with the algorithm that fits it verifies.
	for kid, alg := range map[string]string{"p256": "ES256", "p384": "ES384", "rs256-only": "RS256", "k1": "PS256"} {
		if p, err := auth(idp.sign(t, map[string]any{"alg": alg, "kid": kid}, good(), nil)); err != nil || p == nil {
			t.Errorf("%s with key %s: %v", alg, kid, err)
		}
	}
	hdr := func(alg, kid string, extra ...any) map[string]any {
		h := map[string]any{"alg": alg, "kid": kid, "typ": "JWT"}
		for i := 0; i+1 < len(extra); i += 2 {
			h[extra[i].(string)] = extra[i+1]
		}
		return h
	}
	bad := map[string]func() string{
		"expired":      func() string { c := good(); c["exp"] = now.Add(-time.Hour).Unix(); return idp.token(t, "RS256", c) },
		"not yet":      func() string { c := good(); c["nbf"] = now.Add(time.Hour).Unix(); return idp.token(t, "RS256", c) },
		"no exp":       func() string { c := good(); delete(c, "exp"); return idp.token(t, "RS256", c) },
		"audience":     func() string { c := good(); c["aud"] = "someone-else"; return idp.token(t, "RS256", c) },
		"issuer":       func() string { c := good(); c["iss"] = "https://evil.example"; return idp.token(t, "RS256", c) },
		"no roles":     func() string { c := good(); delete(c, "lineage_roles"); return idp.token(t, "RS256", c) },
		"unknown role": func() string { c := good(); c["lineage_roles"] = []string{"root"}; return idp.token(t, "RS256", c) },
		"no tenants":   func() string { c := good(); c["lineage_tenants"] = []string{}; return idp.token(t, "RS256", c) },
		"no subject":   func() string { c := good(); delete(c, "sub"); return idp.token(t, "RS256", c) },
		"tampered payload": func() string {
			parts := strings.Split(idp.token(t, "RS256", good()), ".")
			c := good()
			c["lineage_tenants"] = []string{"*"}
			pb, _ := json.Marshal(c)
			return parts[0] + "." + base64.RawURLEncoding.EncodeToString(pb) + "." + parts[2]
		},
		"alg none": func() string {
			parts := strings.Split(idp.token(t, "RS256", good()), ".")
			h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"k1"}`))
			return h + "." + parts[1] + "."
		},
		"alg HS256": func() string {
			parts := strings.Split(idp.token(t, "RS256", good()), ".")
			h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","kid":"k1"}`))
			return h + "." + parts[1] + "." + parts[2]
		},
		// The classic confusion: HMAC keyed with the provider's public key, which anyone has.
		"alg HS256 keyed with the public key": func() string {
			idp.mu.Lock()
			pub := idp.keys["k1"].Public().(*rsa.PublicKey)
			idp.mu.Unlock()
			b64 := base64.RawURLEncoding.EncodeToString
			h, _ := json.Marshal(hdr("HS256", "k1"))
			c, _ := json.Marshal(good())
			signed := b64(h) + "." + b64(c)
			m := hmac.New(sha256.New, pub.N.Bytes())
			m.Write([]byte(signed))
			return signed + "." + b64(m.Sum(nil))
		},
		"unknown kid": func() string { return idp.sign(t, hdr("RS256", "k9"), good(), idp.keys["k1"]) },
		// An algorithm must be used with the key type and curve it names (RFC 7518 §3.4).
		"ES256 with a P-384 key": func() string { return idp.sign(t, hdr("ES256", "p384"), good(), nil) },
		"ES384 with a P-256 key": func() string { return idp.sign(t, hdr("ES384", "p256"), good(), nil) },
		"ES512 with a P-256 key": func() string { return idp.sign(t, hdr("ES512", "p256"), good(), nil) },
		"RS256 with an EC key":   func() string { return idp.sign(t, hdr("RS256", "p256"), good(), ecKey(t, elliptic.P256())) },
		"RS512 with a key published for RS256": func() string {
			return idp.sign(t, hdr("RS512", "rs256-only"), good(), nil)
		},
		"RSA key under 2048 bits": func() string { return idp.sign(t, hdr("RS256", "rsa1024"), good(), nil) },
		// RFC 7515 §4.1.11: "crit" names extensions the recipient must understand; Lineage
		// understands none. (go-jose itself accepts crit ["b64"].)
		"crit b64": func() string {
			return idp.sign(t, hdr("RS256", "k1", "crit", []string{"b64"}, "b64", true), good(), nil)
		},
		"crit unknown extension": func() string {
			return idp.sign(t, hdr("RS256", "k1", "crit", []string{"exp"}, "exp", 1), good(), nil)
		},
		"b64 outside crit": func() string { return idp.sign(t, hdr("RS256", "k1", "b64", true), good(), nil) },
		// NumericDate is a JSON number (RFC 7519 §2); go-oidc's parser also takes numeric strings.
		"exp as a string": func() string {
			c := good()
			c["exp"] = strconv.FormatInt(now.Add(time.Hour).Unix(), 10)
			return idp.token(t, "RS256", c)
		},
		"exp far future as a string": func() string { c := good(); c["exp"] = "99999999999"; return idp.token(t, "RS256", c) },
		"nbf as a string": func() string {
			c := good()
			c["nbf"] = strconv.FormatInt(now.Add(-time.Minute).Unix(), 10)
			return idp.token(t, "RS256", c)
		},
		"iat as a string": func() string {
			c := good()
			c["iat"] = strconv.FormatInt(now.Unix(), 10)
			return idp.token(t, "RS256", c)
		},
		"exp null": func() string { c := good(); c["exp"] = nil; return idp.token(t, "RS256", c) },
		"too large": func() string {
			c := good()
			c["pad"] = strings.Repeat("x", maxTokenSize)
			return idp.token(t, "RS256", c)
		},
	}
	for name, mk := range bad {
		if p, err := auth(mk()); err == nil || p != nil {
			t.Errorf("%s: accepted (%+v)", name, p)
		} else {
			t.Logf("%s: refused: %v", name, err)
		}
	}
	// API keys and other schemes are left to the next authenticator.
	r, _ := http.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer lin_abc")
	if p, err := o.Authenticate(r); p != nil || err != nil {
		t.Fatalf("an API key must pass through OIDC: %v %v", p, err)
	}
}

// TestOIDCKeyFits checks the algorithm-to-key tie on its own. go-jose v4.1.4 (the version
// go-oidc v3.21.0 asks for) verified an ES384 signature with a P-256 key (SHA-384 truncated to
// the curve, r and s zero-padded to 48 bytes); v4.1.9, which go.mod selects, checks the curve
// too. keyFits keeps the tie whatever go-jose version the build list picks.
func TestOIDCKeyFits(t *testing.T) {
	p256, p384, p521 := ecKey(t, elliptic.P256()), ecKey(t, elliptic.P384()), ecKey(t, elliptic.P521())
	rsa2048, rsa1024 := rsaKey(t, 2048), rsaKey(t, 1024)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for _, c := range []struct {
		key    crypto.Signer
		jwkAlg string
		use    string
		alg    string
		ok     bool
	}{
		{p256, "", "", "ES256", true},
		{p384, "", "", "ES384", true},
		{p521, "", "", "ES512", true},
		{rsa2048, "", "", "RS256", true},
		{rsa2048, "", "sig", "PS512", true},
		{ed, "", "", "EdDSA", true},
		{p384, "", "", "ES256", false},
		{p256, "", "", "ES384", false},
		{p521, "", "", "ES384", false},
		{p256, "", "", "ES512", false},
		{p256, "", "", "RS256", false},
		{p256, "", "", "EdDSA", false},
		{rsa2048, "", "", "ES256", false},
		{rsa2048, "RS256", "", "RS512", false},
		{rsa2048, "", "enc", "RS256", false},
		{rsa1024, "", "", "RS256", false},
		{ed, "", "", "ES256", false},
	} {
		k := jose.JSONWebKey{Key: c.key.Public(), KeyID: "k", Algorithm: c.jwkAlg, Use: c.use}
		if err := keyFits(k, c.alg); (err == nil) != c.ok {
			t.Errorf("%s key (alg %q, use %q) with %s: fits=%v, want %v", keyKind(k.Key), c.jwkAlg, c.use, c.alg, err == nil, c.ok)
		}
	}
}

// TestOIDCKeyRemoved: a key the provider drops from its JWKS stops verifying within keysMaxAge,
// although its key id stays known to the cache (no unknown kid ever forces a refetch).
func TestOIDCKeyRemoved(t *testing.T) {
	idp := newIdP(t)
	idp.addKey(t, "k2", rsaKey(t, 2048), "")
	clk := &testClock{}
	o, err := NewOIDC(OIDCConfig{Issuer: idp.srv.URL, Audience: "lineage", Logger: testLogger(t), Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	k2 := idp.sign(t, map[string]any{"alg": "RS256", "kid": "k2"}, goodClaims(idp.srv.URL), nil)
	k1 := idp.token(t, "RS256", goodClaims(idp.srv.URL))
	if _, err := authWith(o, k2); err != nil {
		t.Fatalf("k2 before removal: %v", err)
	}
	idp.removeKey("k2")
	clk.advance(keysMaxAge - time.Second)
	if _, err := authWith(o, k2); err != nil {
		t.Fatalf("within keysMaxAge the cached key still verifies (the documented bound): %v", err)
	}
	clk.advance(2 * time.Second)
	if p, err := authWith(o, k2); err == nil {
		t.Fatalf("a removed key still verifies after keysMaxAge: %+v", p)
	}
	if _, err := authWith(o, k1); err != nil {
		t.Fatalf("the remaining key: %v", err)
	}
	if n := idp.fetches.Load(); n != 2 {
		t.Errorf("JWKS fetched %d times, want 2 (first use, after keysMaxAge)", n)
	}
}

// TestOIDCKeysUnavailable: once the cached keys are older than keysMaxAge, a provider whose
// JWKS cannot be fetched gets every token refused (fail closed) until it is back.
func TestOIDCKeysUnavailable(t *testing.T) {
	idp := newIdP(t)
	clk := &testClock{}
	o, _ := NewOIDC(OIDCConfig{Issuer: idp.srv.URL, Audience: "lineage", Logger: testLogger(t), Now: clk.now})
	tok := idp.token(t, "RS256", goodClaims(idp.srv.URL))
	if _, err := authWith(o, tok); err != nil {
		t.Fatal(err)
	}
	idp.mu.Lock()
	idp.down = true
	idp.mu.Unlock()
	clk.advance(time.Minute)
	if _, err := authWith(o, tok); err != nil {
		t.Fatalf("fresh cached keys while the JWKS is down: %v", err)
	}
	clk.advance(keysMaxAge)
	for range 3 {
		if p, err := authWith(o, tok); err == nil {
			t.Fatalf("expired keys used while the JWKS is down: %+v", p)
		}
	}
	if n := idp.fetches.Load(); n != 2 {
		t.Errorf("JWKS fetched %d times, want 2: failures are retried at most every keysMinRefetch", n)
	}
	idp.mu.Lock()
	idp.down = false
	idp.mu.Unlock()
	clk.advance(keysMinRefetch)
	if _, err := authWith(o, tok); err != nil {
		t.Fatalf("provider back: %v", err)
	}
}

// TestOIDCUnknownKidRefetch: a new key is picked up through its unknown key id, but made-up key
// ids refetch at most every keysMinRefetch.
func TestOIDCUnknownKidRefetch(t *testing.T) {
	idp := newIdP(t)
	clk := &testClock{}
	o, _ := NewOIDC(OIDCConfig{Issuer: idp.srv.URL, Audience: "lineage", Logger: testLogger(t), Now: clk.now})
	if _, err := authWith(o, idp.token(t, "RS256", goodClaims(idp.srv.URL))); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		tok := idp.sign(t, map[string]any{"alg": "RS256", "kid": "made-up-" + strconv.Itoa(i)}, goodClaims(idp.srv.URL), idp.keys["k1"])
		if p, err := authWith(o, tok); err == nil {
			t.Fatalf("unknown kid accepted: %+v", p)
		}
	}
	if n := idp.fetches.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times for 20 made-up key ids within keysMinRefetch of the first fetch, want 1", n)
	}
	idp.addKey(t, "k2", ecKey(t, elliptic.P256()), "ES256")
	clk.advance(keysMinRefetch)
	if _, err := authWith(o, idp.sign(t, map[string]any{"alg": "ES256", "kid": "k2"}, goodClaims(idp.srv.URL), nil)); err != nil {
		t.Fatalf("rotated-in key: %v", err)
	}
}

// TestOIDCDiscovery: the discovery document must name exactly the configured issuer; a
// configured JWKS URL skips discovery.
func TestOIDCDiscovery(t *testing.T) {
	idp := newIdP(t)
	idp.mu.Lock()
	idp.issuer = "https://evil.example"
	idp.mu.Unlock()
	o, _ := NewOIDC(OIDCConfig{Issuer: idp.srv.URL, Audience: "lineage", Logger: testLogger(t)})
	tok := idp.token(t, "RS256", goodClaims(idp.srv.URL))
	if p, err := authWith(o, tok); err == nil {
		t.Fatalf("discovery naming another issuer accepted: %+v", p)
	}
	if _, err := o.Provider(t.Context()); err == nil {
		t.Fatal("Provider: discovery naming another issuer accepted")
	}
	o, _ = NewOIDC(OIDCConfig{Issuer: idp.srv.URL, Audience: "lineage", Logger: testLogger(t), JWKSURL: idp.srv.URL + "/jwks"})
	if _, err := authWith(o, tok); err != nil {
		t.Fatalf("with a configured JWKS URL: %v", err)
	}
}
