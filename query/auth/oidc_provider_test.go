package auth_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/lineage-audit/lineage/internal/testenv"
	"github.com/lineage-audit/lineage/query/auth"
)

// TestOIDCRealProvider runs a real OpenID provider (internal/testenv/oidcop, zitadel/oidc's
// example OP) as a separate process, signs users in with the authorization code flow and PKCE
// through golang.org/x/oauth2, and sends the access tokens to an API behind auth.Middleware.
func TestOIDCRealProvider(t *testing.T) {
	claims := map[string]map[string]any{
		testenv.OIDCUser1: {"lineage_roles": []string{"auditor"}, "lineage_tenants": []string{"acme"}},
		// OIDCUser2 gets no Lineage claims.
	}
	op := testenv.StartOIDCProvider(t, testenv.OIDCProviderOptions{Clients: []string{"lineage", "other-app"}, Claims: claims})
	var skew atomic.Int64
	a, err := auth.NewOIDC(auth.OIDCConfig{Issuer: op.Issuer, Audience: "lineage",
		Now:    func() time.Time { return time.Now().Add(time.Duration(skew.Load())) },
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	api := testAPI(a)
	call := func(tok string) (int, map[string]any) {
		t.Helper()
		r := httptest.NewRequest("GET", "/records", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		api.ServeHTTP(w, r)
		var body map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		return w.Code, body
	}
	login := func(op *testenv.OIDCProvider, client, sub string) string {
		t.Helper()
		tok, err := op.Login(t.Context(), client, op.Username(sub), testenv.OIDCPassword)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(tok.AccessToken, ".") != 2 {
			t.Fatalf("the provider issued an opaque access token: %q", tok.AccessToken)
		}
		return tok.AccessToken
	}

	// The provider is the one the web UI will use: discovery through auth.OIDC gives the
	// endpoints of the code flow.
	if p, err := a.Provider(t.Context()); err != nil || p.Endpoint().AuthURL != op.Issuer+"/auth" {
		t.Fatalf("Provider: %v, %v", p, err)
	}
	if _, err := op.Login(t.Context(), "lineage", op.Username(testenv.OIDCUser1), "wrong"); err == nil {
		t.Fatal("login with a wrong password succeeded")
	}

	tok1 := login(op, "lineage", testenv.OIDCUser1)
	if code, body := call(tok1); code != http.StatusOK || body["subject"] != "oidc:"+testenv.OIDCUser1 ||
		!equalJSON(body["roles"], []string{"auditor"}) || !equalJSON(body["tenants"], []string{"acme"}) {
		t.Fatalf("token of %s: %d %v", testenv.OIDCUser1, code, body)
	}
	p, err := a.VerifyToken(t.Context(), tok1)
	if err != nil || !p.CanSee("acme") || p.CanSee("globex") || p.Has(auth.RoleAdmin) {
		t.Fatalf("VerifyToken: %+v, %v", p, err)
	}

	refused := func(what, tok string) {
		t.Helper()
		if code, body := call(tok); code != http.StatusUnauthorized {
			t.Errorf("%s: %d %v, want 401", what, code, body)
		}
		if _, err := a.VerifyToken(t.Context(), tok); err == nil {
			t.Errorf("%s: VerifyToken accepted it", what)
		} else {
			t.Logf("%s: refused: %v", what, err)
		}
	}
	// Same provider and user, but the token is for another client (another audience).
	refused("token for another audience", login(op, "other-app", testenv.OIDCUser1))
	// A user without Lineage claims.
	refused("token without lineage claims", login(op, "lineage", testenv.OIDCUser2))
	// Another provider (another issuer, another key), same client id, user and claims.
	other := testenv.StartOIDCProvider(t, testenv.OIDCProviderOptions{Claims: claims})
	otherTok := login(other, "lineage", testenv.OIDCUser1)
	refused("token of another issuer", otherTok)
	// Even with that provider's keys trusted (a JWKS URL pointing at it), its "iss" is refused.
	c, _ := auth.NewOIDC(auth.OIDCConfig{Issuer: op.Issuer, Audience: "lineage", JWKSURL: other.Issuer + "/keys"})
	if p, err := c.VerifyToken(t.Context(), otherTok); err == nil || !strings.Contains(err.Error(), "issue") {
		t.Errorf("token of another issuer verified with its own keys: %+v, %v", p, err)
	}
	// An ID token is for the client, not a bearer for the API: it carries no Lineage claims.
	idTok, err := op.Login(t.Context(), "lineage", op.Username(testenv.OIDCUser1), testenv.OIDCPassword)
	if err != nil {
		t.Fatal(err)
	}
	if raw, _ := idTok.Extra("id_token").(string); raw == "" {
		t.Error("the code flow returned no ID token")
	} else {
		refused("ID token", raw)
	}

	// Key rotation: the restarted provider signs with a new key and no longer publishes the old.
	// Unknown key ids refetch the key set at most every 30 s (keysMinRefetch, oidc_keys.go).
	op.Restart(t)
	skew.Add(int64(30 * time.Second))
	tok2 := login(op, "lineage", testenv.OIDCUser1)
	if code, body := call(tok2); code != http.StatusOK {
		t.Fatalf("token signed with the new key (unknown key id, refetched): %d %v", code, body)
	}
	refused("token signed with the removed key, after the refetch", tok1)
	if code, _ := call(tok2); code != http.StatusOK {
		t.Fatalf("new key after refusing the old: %d", code)
	}

	// The removed key also stops being trusted without any unknown key id: a fresh
	// authenticator that cached the key set before the rotation drops it within the cache
	// lifetime (5 minutes, oidc_keys.go).
	b, _ := auth.NewOIDC(auth.OIDCConfig{Issuer: op.Issuer, Audience: "lineage",
		Now: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }})
	if _, err := b.VerifyToken(t.Context(), tok2); err != nil {
		t.Fatal(err)
	}
	op.Restart(t)
	if _, err := b.VerifyToken(t.Context(), tok2); err != nil {
		t.Fatalf("within the cache lifetime: %v", err)
	}
	skew.Add(int64(5*time.Minute + time.Second))
	if p, err := b.VerifyToken(t.Context(), tok2); err == nil {
		t.Fatalf("a key the provider removed is still trusted after the cache lifetime: %+v", p)
	}
}

// testAPI is a minimal API behind the real middleware: GET /records needs the auditor role and
// answers with the caller's principal.
func testAPI(a auth.Authenticator) http.Handler {
	gin.SetMode(gin.TestMode)
	r := gin.New()
	r.Use(auth.Middleware(a))
	r.GET("/records", auth.Require(auth.RoleAuditor), func(c *gin.Context) {
		p := auth.From(c)
		c.JSON(http.StatusOK, gin.H{"subject": p.Subject, "roles": p.Roles, "tenants": p.Tenants})
	})
	return r
}

func equalJSON(got any, want any) bool {
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(want)
	return string(a) == string(b)
}
