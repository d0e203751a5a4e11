// Package lineage defines the decision record (schema lineage.decision/v1): the contract between
// enforcement points (AI gateways, proxies, OPA) and the Lineage audit ledger.
//
// A record says which natural person (User) authorized which agent (Agent), through which
// delegation, to do what (Action), under which policy (Decision). Records arrive as JSON, are
// decoded strictly (DecodeRecord: unknown fields, wrong types, missing required fields, oversize
// and over-deep input are all rejected, fail closed), and are canonicalized with RFC 8785 (JCS)
// before they are wrapped in a ledger entry (Envelope) and appended to the Merkle log. The
// canonical bytes, not the bytes the publisher sent, are what the log commits to, so two
// publishers that serialize the same record differently produce the same entry.
package lineage

import "encoding/json"

// SchemaV1 is the only schema identifier this version of Lineage accepts.
const SchemaV1 = "lineage.decision/v1"

// Record is one decision made by an enforcement point about an agent's action.
//
// The Go type mirrors schema/decision-v1.json field for field; DecodeRecord is the only supported
// way to build one from untrusted bytes.
//
// What the strings may hold. Records are read by people, on terminals and pages, so a string
// must not be able to move the cursor, recolour or clear the screen, start a forged line, reorder
// the text around it or make two different ids look alike. Ingest rejects such a record with
// CodeControlCharacter and the field's path:
//   - Identifiers and labels, that is every string member except the three prose members below
//     (id, tenant, source, user, agent and its model, role, action, policy, delegation token
//     id, issuer, mechanism, scope and actors, parent_id, trace, ai_system id and risk_class,
//     human_oversight reviewer and outcome, safeguards), are single-line: no C0 control or DEL,
//     no C1 control, no bidirectional mark, embedding, override or isolate, no zero-width or
//     other invisible format character, no line or paragraph separator, no tag character.
//   - Prose (decision.reason, ai_system.name, ai_system.use_case, and every member name and
//     string inside policy_context and identity_object) may hold tab, line feed and carriage
//     return, and any other character except the remaining C0 controls, DEL, C1 controls and
//     the bidirectional formatting characters.
//
// text.go lists the exact code points. Whatever a record holds, and an entry logged before these
// rules may hold anything, is shown to people through Printable, which makes the rest visible.
type Record struct {
	Schema   string   `json:"schema"`
	ID       string   `json:"id"`
	Time     string   `json:"time"`
	Tenant   string   `json:"tenant"`
	Source   Source   `json:"source"`
	User     Person   `json:"user"`
	Agent    Agent    `json:"agent"`
	Role     string   `json:"role,omitempty"`
	Action   Action   `json:"action"`
	Decision Decision `json:"decision"`

	Delegation     *Delegation     `json:"delegation,omitempty"`
	PolicyContext  json.RawMessage `json:"policy_context,omitempty"`
	ParentID       string          `json:"parent_id,omitempty"`
	Trace          *Trace          `json:"trace,omitempty"`
	AISystem       *AISystem       `json:"ai_system,omitempty"`
	HumanOversight *HumanOversight `json:"human_oversight,omitempty"`
	Safeguards     []string        `json:"safeguards,omitempty"`
	IdentityObject json.RawMessage `json:"identity_object,omitempty"`
}

// Source names the enforcement point that made the decision.
type Source struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// Person is a natural person, verified by an identity provider (Issuer).
type Person struct {
	ID     string `json:"id"`
	Issuer string `json:"issuer"`
}

// Agent is the acting agent's own workload identity (a SPIFFE id, a cloud role, a Kubernetes
// service account), never the user's identity.
type Agent struct {
	ID    string `json:"id"`
	Model *Model `json:"model,omitempty"`
}

// Model is the AI model behind an agent.
type Model struct {
	Provider string `json:"provider,omitempty"`
	Name     string `json:"name,omitempty"`
	Version  string `json:"version,omitempty"`
}

// Action is what the agent tried to do, and to what.
type Action struct {
	Type   string `json:"type"`
	Target string `json:"target"`
}

// Effect values a Decision may carry.
const (
	EffectAllow    = "allow"
	EffectDeny     = "deny"
	EffectModify   = "modify"
	EffectEscalate = "escalate"
)

// Decision is the enforcement point's verdict and the policy that produced it.
type Decision struct {
	Effect string `json:"effect"`
	Policy Policy `json:"policy"`
	Reason string `json:"reason,omitempty"`
}

// Policy identifies a policy at one version.
type Policy struct {
	ID      string `json:"id"`
	Version string `json:"version"`
}

// Delegation describes how the user's authority reached the agent. Actors is the RFC 8693 "act"
// chain, outermost (the current actor) first.
type Delegation struct {
	TokenID   string   `json:"token_id,omitempty"`
	Issuer    string   `json:"issuer,omitempty"`
	Mechanism string   `json:"mechanism,omitempty"`
	Scope     []string `json:"scope,omitempty"`
	IssuedAt  string   `json:"issued_at,omitempty"`
	ExpiresAt string   `json:"expires_at,omitempty"`
	Actors    []string `json:"actors,omitempty"`
}

// Trace links the record to a distributed trace.
type Trace struct {
	TraceID string `json:"trace_id,omitempty"`
	SpanID  string `json:"span_id,omitempty"`
}

// AISystem identifies the AI system (EU AI Act sense) the agent is part of.
type AISystem struct {
	ID        string `json:"id"`
	Name      string `json:"name,omitempty"`
	RiskClass string `json:"risk_class,omitempty"`
	UseCase   string `json:"use_case,omitempty"`
}

// HumanOversight records a natural person reviewing the decision (EU AI Act Art. 14).
type HumanOversight struct {
	Reviewer Person `json:"reviewer"`
	Outcome  string `json:"outcome"`
	Time     string `json:"time,omitempty"`
}
