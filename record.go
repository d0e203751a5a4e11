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
//
// The package is the record: its type and schema (record.go, schema.go, limits.go), its decoder
// (decode.go), its value rules (validate.go, text.go), its canonical form (canonical.go) and its
// ledger entry (envelope.go). The JSON machinery underneath (the lexer, the I-JSON pre-scan and
// the RFC 8785 canonicalizer) is generic and lives in internal/ijson.
//
// # Adding a field
//
// A member of the record is spelled out in each of these places, and the tests named below fail
// until they agree:
//
//  1. record.go: the field of Record (or of the struct it belongs to), with its json tag
//     (omitempty if optional); and, for a string, its place in the character rules of the Record
//     doc comment (identifier or prose).
//  2. schema/decision-v1.json: the member with a description, its type, maxLength or maxItems,
//     the character pattern of its kind ($defs), and its name in "required" if required
//     (TestSchemaMatchesRecord, TestSchemaRequiredMatchesDecoder, TestSchemaLimitsMatchDecoder
//     and TestSchemaCharacterPatternsMatchDecoder in schema_test.go).
//  3. decode.go: a case in the decoder method of the enclosing object (decoder.record,
//     decoder.agent, ...); a required member also sets a bit of that method's seen mask and is
//     listed at the same index in the matching *Required list (recordRequired, ...).
//  4. validate.go: a line in Record.check with its rule (checker.id, ident, text, timestamp,
//     list or freeForm) and its limit from limits.go (a new limit goes there); a rule beyond
//     length and characters is also described in the Validate doc comment.
//  5. canonical.go: a call in recordWriter.record (w.str if required, w.opt, w.list or w.raw)
//     at the member's place in the sorted order of the names, and its length in
//     Record.sizeHint.
//  6. decode_test.go: the field set in fullRecord, from which the schema tests and
//     TestFullRecordRoundTrip (Canonical equals RFC 8785 of json.Marshal) derive their input;
//     and an example in testdata/records/*.json, which TestExampleRecords decodes and
//     FuzzDecodeRecord (fuzz_test.go) takes as a seed.
//
// Outside this package, and only when the field is meant for them: ingest/opa.go
// (identityMembers, for a member an OPA identity object may set, and the OPAConfig.IdentityPath
// doc comment); the index columns, for a field to search or filter on
// (query/index/sqlite/migrate.go and apply.go, query/index/clickhouse/schema.go and apply.go; an
// index keeps the canonical record, so every field is stored and returned without a column);
// the reports that show it (exporters/report/scan.go, model.go, csv.go).
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
