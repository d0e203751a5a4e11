package auth

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRolesAndTenants(t *testing.T) {
	p := &Principal{Roles: []Role{RoleCompliance}, Tenants: []string{"acme"}}
	if !p.Has(RoleAuditor) || !p.Has(RoleCompliance) || p.Has(RoleAdmin) || p.Has(RolePublisher) {
		t.Fatalf("compliance role grants: auditor %v compliance %v admin %v publisher %v", p.Has(RoleAuditor), p.Has(RoleCompliance), p.Has(RoleAdmin), p.Has(RolePublisher))
	}
	if !p.CanSee("acme") || p.CanSee("globex") || p.CanSee("") || p.AllTenantsVisible() {
		t.Fatal("tenant scoping is wrong")
	}
	if !Local.Has(RolePublisher) || !Local.CanSee("anything") {
		t.Fatal("the local principal must be admin of every tenant")
	}
}

func TestAPIKeys(t *testing.T) {
	key, entry, err := NewKey("gw", []Role{RolePublisher}, []string{"acme"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key, KeyPrefix) || len(key) < 40 {
		t.Fatalf("key %q", key)
	}
	if strings.Contains(entry.SHA256, key) {
		t.Fatal("the entry contains the key")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.json")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"keys":[{"id":"gw","sha256":"` + entry.SHA256 + `","roles":["publisher"],"tenants":["acme"]}]}`)
	k, err := LoadAPIKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	req := func(h string) *http.Request {
		r, _ := http.NewRequest("GET", "/", nil)
		if h != "" {
			r.Header.Set("Authorization", h)
		}
		return r
	}
	if p, err := k.Authenticate(req("Bearer " + key)); err != nil || p == nil || p.Subject != "apikey:gw" || !p.CanSee("acme") {
		t.Fatalf("valid key: %+v, %v", p, err)
	}
	if p, err := k.Authenticate(req("bearer " + key)); err != nil || p == nil {
		t.Fatalf("scheme is case-insensitive: %v", err)
	}
	if _, err := k.Authenticate(req("Bearer " + key + "x")); err != ErrUnauthenticated {
		t.Fatalf("wrong key: %v", err)
	}
	if p, err := k.Authenticate(req("")); p != nil || err != nil {
		t.Fatalf("no credentials must pass to the next authenticator: %v %v", p, err)
	}
	if p, err := (Chain{k}).Authenticate(req("Basic abc")); p != nil || err != nil {
		t.Fatalf("other schemes: %v %v", p, err)
	}
	for name, bad := range map[string]string{
		"unknown field": `{"keys":[],"extra":1}`,
		"bad role":      `{"keys":[{"id":"a","sha256":"` + entry.SHA256 + `","roles":["root"],"tenants":["x"]}]}`,
		"no tenants":    `{"keys":[{"id":"a","sha256":"` + entry.SHA256 + `","roles":["admin"],"tenants":[]}]}`,
		"short hash":    `{"keys":[{"id":"a","sha256":"abcd","roles":["admin"],"tenants":["*"]}]}`,
		"duplicate":     `{"keys":[{"id":"a","sha256":"` + entry.SHA256 + `","roles":["admin"],"tenants":["*"]},{"id":"b","sha256":"` + entry.SHA256 + `","roles":["admin"],"tenants":["*"]}]}`,
	} {
		write(bad)
		if _, err := LoadAPIKeys(path); err == nil {
			t.Errorf("%s: key file accepted", name)
		}
	}
}
