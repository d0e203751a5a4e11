// Package auth authenticates callers of the HTTP API and says what they may do.
//
// A Principal has roles (publisher, auditor, compliance, admin) and the tenants it may see.
// Credentials are API keys (random bearer tokens; only their SHA-256 is stored, in a key file)
// and OIDC bearer tokens (oidc.go). Every handler asks the Principal, never the request, so
// tenant isolation is decided in one place.
//
// Without any credentials configured, lineaged only listens on loopback and every local caller
// is the built-in "local" principal with every role on every tenant: the embedded developer
// setup. Configuring credentials turns that off (fail closed): then a request without valid
// credentials gets 401.
package auth

import (
	"errors"
	"slices"
)

// Role is what a principal may do.
type Role string

// Roles, from the narrowest up. Admin implies every other role.
const (
	RolePublisher  Role = "publisher"  // send records (HTTP ingest, OPA decision logs)
	RoleAuditor    Role = "auditor"    // read records, proofs and lineage of its tenants
	RoleCompliance Role = "compliance" // auditor, plus run exports
	RoleAdmin      Role = "admin"      // everything, including quarantine and metrics
)

// ValidRole tells whether r is one of the defined roles.
func ValidRole(r Role) bool {
	return r == RolePublisher || r == RoleAuditor || r == RoleCompliance || r == RoleAdmin
}

// AllTenants in a principal's tenant list grants every tenant.
const AllTenants = "*"

// ErrUnauthenticated means no valid credentials were presented.
var ErrUnauthenticated = errors.New("auth: missing or invalid credentials")

// Principal is an authenticated caller.
type Principal struct {
	// Subject names the caller in logs and audit records (key id or OIDC subject).
	Subject string
	Roles   []Role
	Tenants []string
}

// Local is the principal of unauthenticated loopback callers when no credentials are configured.
var Local = &Principal{Subject: "local", Roles: []Role{RoleAdmin}, Tenants: []string{AllTenants}}

// Has tells whether the principal holds role (admin holds all; compliance includes auditor).
func (p *Principal) Has(r Role) bool {
	for _, x := range p.Roles {
		if x == r || x == RoleAdmin || (x == RoleCompliance && r == RoleAuditor) {
			return true
		}
	}
	return false
}

// CanSee tells whether the principal may read or write tenant's records.
func (p *Principal) CanSee(tenant string) bool {
	return slices.Contains(p.Tenants, AllTenants) || slices.Contains(p.Tenants, tenant)
}

// AllTenantsVisible tells whether the principal sees every tenant (needed for data that mixes
// tenants, such as the raw log tiles).
func (p *Principal) AllTenantsVisible() bool { return slices.Contains(p.Tenants, AllTenants) }
