// Package findings detects, continuously and incrementally, the agent-identity failures an
// auditor looks for (issue #15; the kinds follow NIST's three agent-identity pillars: a verified
// person and a distinct agent identity, delegated authority, action lineage).
//
// An Engine reads index entries in log order (Observe) and reports Occurrences: "this record is
// evidence of that finding". Findings are the aggregate of their occurrences, keyed by tenant,
// kind and Key (what the finding is about: an agent, a delegation token, an escalated record…);
// Finding.Add merges one occurrence into a stored finding, so every store aggregates the same
// way. Kinds that need history (shared agent identity, scope growth, missing oversight,
// credential rotation) keep a small per-tenant state in the Engine; every change to it is
// reported by TakeDirty as a keyed StateItem, so a store persists it in the transaction that
// stores the occurrences and its position, and Load restores it: no rescan of the log on
// restart, and the findings stay a projection of the log that can be rebuilt from it.
//
// Time is record time: windows (review, oversight, sessions) close when a tenant's newest record
// time (its watermark) passes them, never on the wall clock, so a rebuild from the log yields
// the same findings as the live run.
package findings

import (
	"cmp"
	"slices"
	"time"
)

// Kind names a failure mode.
type Kind string

// The finding kinds.
const (
	// StaticCredential: an action carrying no delegation token, or whose user is a service
	// account rather than a natural person.
	StaticCredential Kind = "static_credential"
	// InferredIdentity: the user's issuer is not an https identity provider, not one of the
	// tenant's trusted issuers, or the identity object does not bind the user to it.
	InferredIdentity Kind = "inferred_identity"
	// SharedAgent: one agent id acting in several crew roles or for several AI systems.
	SharedAgent Kind = "shared_agent_identity"
	// DelegationMisuse: an action outside its token's lifetime, a token living longer than the
	// tenant allows, or an actor chain that does not start with the agent that acted.
	DelegationMisuse Kind = "delegation_misuse"
	// OutOfScope: an action whose type and target need a scope the delegation does not carry.
	OutOfScope Kind = "out_of_scope"
	// ScopeEscalation: an agent's delegated scope grows within one user's session.
	ScopeEscalation Kind = "scope_escalation"
	// MissingOversight: an escalation no human review settled within the review window, or a
	// high-risk AI system deciding through a whole oversight window without any human review.
	MissingOversight Kind = "missing_oversight"
	// CredentialRotation: an agent identity in use for longer than the tenant's rotation period.
	CredentialRotation Kind = "credential_rotation"
)

// Severity ranks findings: High is a likely compliance gap, Medium needs an auditor's judgement,
// Info is worth a look.
type Severity string

// The severities, the same words the export reports use.
const (
	High   Severity = "high"
	Medium Severity = "medium"
	Info   Severity = "info"
)

// rank orders severities, most severe first.
func (s Severity) rank() int {
	switch s {
	case High:
		return 0
	case Medium:
		return 1
	}
	return 2
}

// Max returns the more severe of s and t.
func (s Severity) Max(t Severity) Severity {
	if t.rank() < s.rank() {
		return t
	}
	return s
}

// KindInfo describes a kind for documentation, the API and the UI.
type KindInfo struct {
	Kind    Kind   `json:"kind"`
	Title   string `json:"title"`
	Pillar  string `json:"pillar"`
	Summary string `json:"summary"`
}

// Kinds lists every kind in a stable order.
var Kinds = []KindInfo{
	{StaticCredential, "Static service credential", "NIST pillar 1/2",
		"The action carries no delegation token, or its user is a service account: the credential identifies the application, not the person or the agent."},
	{InferredIdentity, "Inferred identity", "NIST pillar 1",
		"The user's identity is not established by a trusted identity provider: the issuer is not https, not trusted by the tenant, or the identity object does not bind the user to it."},
	{SharedAgent, "Shared agent identifier", "NIST pillar 1",
		"One agent identity acts in several crew roles or for several AI systems, so its actions cannot be attributed to one of them."},
	{DelegationMisuse, "Delegation misuse", "NIST pillar 2",
		"An action outside its delegation token's lifetime, a token longer-lived than the tenant allows, or an actor chain that does not start with the acting agent."},
	{OutOfScope, "Out-of-scope action", "NIST pillar 2",
		"The action needs a scope (by the tenant's action → scope mapping) that its delegation does not grant."},
	{ScopeEscalation, "Privilege escalation over time", "NIST pillar 2/3",
		"An agent's delegated scope grew during one user's session; not necessarily wrong, always worth an auditor's look."},
	{MissingOversight, "Missing human oversight", "NIST pillar 3, EU AI Act Art. 14",
		"An escalation was never settled by a human review within the window, or a high-risk AI system decided through a whole window without any human review."},
	{CredentialRotation, "Credential not rotated", "NIST pillar 1",
		"An agent identity has been in use for longer than the tenant's rotation period."},
}

// KnownKind reports whether k is one of Kinds.
func KnownKind(k Kind) bool {
	return slices.ContainsFunc(Kinds, func(i KindInfo) bool { return i.Kind == k })
}

// Evidence is one record supporting a finding, by id and log index (its inclusion proof is
// served like any other record's), with what it shows.
type Evidence struct {
	ID    string    `json:"id"`
	Index uint64    `json:"log_index"`
	Time  time.Time `json:"time"`
	Note  string    `json:"note,omitempty"`
}

// Occurrence is one record's contribution to a finding.
type Occurrence struct {
	Tenant   string
	Kind     Kind
	Severity Severity
	// Key is what the finding is about, unique within tenant and kind.
	Key         string
	Agent, User string
	Evidence    Evidence
	// Explanation is the finding's plain-language explanation as of this occurrence.
	Explanation string
}

// MaxEvidence bounds the evidence a finding keeps: the first MaxEvidence-1 occurrences and the
// latest one. Count still counts them all.
const MaxEvidence = 20

// Finding is the aggregate of a (tenant, kind, key)'s occurrences.
type Finding struct {
	ID          string     `json:"id"` // ID(Tenant, Kind, Key)
	Tenant      string     `json:"tenant"`
	Kind        Kind       `json:"kind"`
	Severity    Severity   `json:"severity"`
	Key         string     `json:"key"`
	Agent       string     `json:"agent,omitempty"`
	User        string     `json:"user,omitempty"`
	First       time.Time  `json:"first_time"`
	Last        time.Time  `json:"last_time"`
	FirstIndex  uint64     `json:"first_log_index"` // the log index at which it was first detected
	LastIndex   uint64     `json:"last_log_index"`
	Count       uint64     `json:"count"`
	Explanation string     `json:"explanation"`
	Evidence    []Evidence `json:"evidence"`
}

// New starts a finding from its first occurrence.
func New(o Occurrence) Finding {
	return Finding{
		ID: ID(o.Tenant, o.Kind, o.Key), Tenant: o.Tenant, Kind: o.Kind, Severity: o.Severity, Key: o.Key, Agent: o.Agent, User: o.User,
		First: o.Evidence.Time, Last: o.Evidence.Time, FirstIndex: o.Evidence.Index, LastIndex: o.Evidence.Index,
		Count: 1, Explanation: o.Explanation, Evidence: []Evidence{o.Evidence},
	}
}

// Add merges an occurrence of the same tenant, kind and key: the severity is the highest seen,
// the explanation the latest, and the evidence the first MaxEvidence-1 plus the latest.
func (f *Finding) Add(o Occurrence) {
	f.Count++
	f.Severity = f.Severity.Max(o.Severity)
	if o.Explanation != "" {
		f.Explanation = o.Explanation
	}
	if f.Agent == "" {
		f.Agent = o.Agent
	}
	if f.User == "" {
		f.User = o.User
	}
	t := o.Evidence.Time
	if t.Before(f.First) {
		f.First = t
	}
	if t.After(f.Last) {
		f.Last = t
	}
	f.LastIndex = max(f.LastIndex, o.Evidence.Index)
	if len(f.Evidence) < MaxEvidence {
		f.Evidence = append(f.Evidence, o.Evidence)
	} else {
		f.Evidence[MaxEvidence-1] = o.Evidence
	}
}

// Sort orders findings most severe first, then newest first, then by kind and key.
func Sort(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(
			cmp.Compare(a.Severity.rank(), b.Severity.rank()),
			b.Last.Compare(a.Last),
			cmp.Compare(a.Kind, b.Kind),
			cmp.Compare(a.Key, b.Key))
	})
}
