package auth

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// testIdP is an OpenID provider in the test: discovery, a JWKS, and a signer.
type testIdP struct {
	srv *httptest.Server
	key *rsa.PrivateKey
	kid string
}

func newIdP(t *testing.T) *testIdP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	idp := &testIdP{key: key, kid: "k1"}
	mux := http.NewServeMux()
	idp.srv = httptest.NewServer(mux)
	t.Cleanup(idp.srv.Close)
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": idp.srv.URL, "jwks_uri": idp.srv.URL + "/jwks"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		b64 := base64.RawURLEncoding.EncodeToString
		json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "kid": idp.kid, "use": "sig", "n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
		}}})
	})
	return idp
}

func (idp *testIdP) token(t *testing.T, alg string, claims map[string]any) string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	h, _ := json.Marshal(map[string]string{"alg": alg, "kid": idp.kid, "typ": "JWT"})
	p, _ := json.Marshal(claims)
	signed := b64(h) + "." + b64(p)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, idp.key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + b64(sig)
}

func TestOIDC(t *testing.T) {
	idp := newIdP(t)
	o, err := NewOIDC(OIDCConfig{Issuer: idp.srv.URL, Audience: "lineage"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	good := func() map[string]any {
		return map[string]any{"iss": idp.srv.URL, "aud": []string{"lineage", "other"}, "sub": "auditor-7",
			"exp": now.Add(time.Hour).Unix(), "nbf": now.Add(-time.Minute).Unix(),
			"lineage_roles": []string{"auditor"}, "lineage_tenants": []string{"acme"}}
	}
	auth := func(tok string) (*Principal, error) {
		r, _ := http.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		return o.Authenticate(r)
	}
	p, err := auth(idp.token(t, "RS256", good()))
	if err != nil || p == nil || p.Subject != "oidc:auditor-7" || !p.Has(RoleAuditor) || !p.CanSee("acme") || p.CanSee("globex") {
		t.Fatalf("valid token: %+v, %v", p, err)
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
		"unknown kid": func() string { idp.kid = "k9"; defer func() { idp.kid = "k1" }(); return idp.token(t, "RS256", good()) },
	}
	for name, mk := range bad {
		if p, err := auth(mk()); err == nil || p != nil {
			t.Errorf("%s: accepted (%+v)", name, p)
		}
	}
	// API keys and other schemes are left to the next authenticator.
	r, _ := http.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer lin_abc")
	if p, err := o.Authenticate(r); p != nil || err != nil {
		t.Fatalf("an API key must pass through OIDC: %v %v", p, err)
	}
}
