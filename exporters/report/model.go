package report

// This file is the JSON schema of report.json (schema "lineage.export/v1"), documented for
// readers in docs/EXPORTS.md. Both kinds share it: an EU AI Act report and a Fannie Mae
// disclosure are views of the same facts (who authorized which agent to do what, under which
// policy, reviewed by whom), so one schema serves both and a reader's tooling works on either.
// The CSV tables have the same columns as the JSON rows (csv.go).

// DocumentSchema identifies the report.json format.
const DocumentSchema = "lineage.export/v1"

// Document is report.json. Header holds everything computed in memory; the four row arrays
// are streamed to disk while the log is scanned and spliced in when the file is assembled, so
// an export of a million records never holds them.
type Document struct {
	Header
	// Uses is one row per use of an AI system (EU AI Act Art. 12(3)(a)): per delegation token
	// (the Fannie Mae disclosure calls them delegations), in order of start time.
	Uses []UseRow `json:"uses"`
	// OversightEvents are the records carrying human_oversight (Art. 14), in log order.
	OversightEvents []DecisionRow `json:"oversight_events"`
	// Denies are the decisions with effect "deny", in log order.
	Denies []DecisionRow `json:"denies"`
	// Decisions is every record in scope, in log order: for Fannie Mae, the AI-assisted
	// decisions with the natural person and delegation that authorized each.
	Decisions []DecisionRow `json:"decisions"`
}

// Header is the part of report.json held in memory.
type Header struct {
	Schema      string `json:"schema"`
	ExportID    string `json:"export_id"`
	Kind        Kind   `json:"kind"`
	Title       string `json:"title"`
	Tenant      string `json:"tenant"`
	AISystem    string `json:"ai_system,omitempty"`
	Period      Period `json:"period"`
	GeneratedAt string `json:"generated_at"`
	RequestedBy string `json:"requested_by"`
	Generator   string `json:"generator"`

	Integrity Integrity `json:"integrity"`
	Summary   Summary   `json:"summary"`
	Findings  []Finding `json:"findings"`
	// IdentityFindings are the agent-identity findings of the period (identity.go): the same
	// detection engine lineaged runs live behind GET /v1/findings, restricted to evidence
	// records in the export's scope.
	IdentityFindings []IdentityFinding `json:"identity_findings"`
	Retention        Retention         `json:"retention"`

	AISystems  []AISystemRow  `json:"ai_systems"`
	Persons    []PersonRow    `json:"persons"`
	Agents     []AgentRow     `json:"agents"`
	Models     []ModelRow     `json:"models"`
	Providers  []ProviderRow  `json:"providers"`
	Policies   []PolicyRow    `json:"policies"`
	Safeguards []SafeguardRow `json:"safeguards"`
	// Lineage is the user → agent → sub-agent graph the HTML figure draws.
	Lineage []EdgeRow `json:"lineage"`
	// Tables lists the CSV files of the export with their row counts.
	Tables []TableInfo `json:"tables"`
}

// Period is the reporting period on record decision time: [from, to).
type Period struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Integrity is the evidence that the report is complete and untampered.
type Integrity struct {
	LogOrigin      string `json:"log_origin"`
	CheckpointSize uint64 `json:"checkpoint_size"`
	// CheckpointRoot is the Merkle root hash the signed checkpoint commits to, in hex.
	CheckpointRoot string `json:"checkpoint_root"`
	// CheckpointNote is the signed checkpoint exactly as the log published it.
	CheckpointNote string `json:"checkpoint_note"`
	// EntriesScanned is every log entry the export read: all of [0, checkpoint_size).
	EntriesScanned uint64 `json:"entries_scanned"`
	// RootRecomputed says the exporter hashed every entry it read into a Merkle tree and got
	// the checkpoint's root: the scan saw exactly the log the checkpoint signs, nothing left
	// out, so the report is complete for the tenant and period.
	RootRecomputed bool `json:"root_recomputed"`
	// RecordsCited is the number of records in the bundle, each with an inclusion proof.
	RecordsCited uint64 `json:"records_cited"`
	Bundle       string `json:"bundle"`
	// VerifyCommand is how a reader checks the bundle offline.
	VerifyCommand string `json:"verify_command"`
}

// Summary holds the report's headline counts.
type Summary struct {
	Records                  uint64         `json:"records"`
	Uses                     uint64         `json:"uses"`
	Effects                  EffectCounts   `json:"effects"`
	AuthorizingPersons       int            `json:"authorizing_persons"`
	OversightReviewers       int            `json:"oversight_reviewers"`
	Agents                   int            `json:"agents"`
	Models                   int            `json:"models"`
	AISystems                int            `json:"ai_systems"`
	OversightEvents          uint64         `json:"oversight_events"`
	OversightOutcomes        map[string]int `json:"oversight_outcomes"`
	Escalations              uint64         `json:"escalations"`
	EscalationsWithoutReview uint64         `json:"escalations_without_review"`
	RecordsWithoutDelegation uint64         `json:"records_without_delegation"`
	// RecordsWithoutAISystem counts records of the tenant in the period that name no AI
	// system. The EU AI Act report leaves them out (they cannot be attributed to a system);
	// the Fannie Mae disclosure without an ai_system filter includes them.
	RecordsWithoutAISystem uint64 `json:"records_without_ai_system"`
	// Erasure counts the sealed personal fields of the records (docs/ERASURE.md): clear at
	// export time, or erased (shown as "erased (key <key id>)"). Absent when no record in the
	// report has sealed fields.
	Erasure *ErasureSummary `json:"erasure,omitempty"`
}

// EffectCounts counts decisions per effect.
type EffectCounts struct {
	Allow    uint64 `json:"allow"`
	Deny     uint64 `json:"deny"`
	Modify   uint64 `json:"modify"`
	Escalate uint64 `json:"escalate"`
}

// Finding is something an auditor should look at.
type Finding struct {
	// Severity is "high" (a likely compliance gap), "medium" or "info".
	Severity string `json:"severity"`
	Code     string `json:"code"`
	Message  string `json:"message"`
	// Items names examples (record ids, agent ids, days), at most 20.
	Items []string `json:"items,omitempty"`
}

// IdentityFinding is a finding of the agent-identity detection engine (query/findings: static
// service credential, inferred identity, shared agent identifier, delegation misuse,
// out-of-scope action, privilege escalation over time, missing oversight, credential not
// rotated), aggregated over the occurrences whose evidence record is in the export's scope:
// the tenant, the period and the AI system when the export names one. Count, FirstTime and
// LastTime cover those occurrences only; the live finding (GET /v1/findings/{id}, same ID) may
// have more outside the period.
type IdentityFinding struct {
	// ID is the finding's id as the query API names it: stable for (tenant, kind, key).
	ID       string `json:"id"`
	Kind     string `json:"kind"`
	Title    string `json:"title"`
	Pillar   string `json:"pillar"`
	Severity string `json:"severity"` // "high", "medium" or "info"
	Agent    string `json:"agent,omitempty"`
	User     string `json:"user,omitempty"`
	// Explanation says in plain words what the evidence shows (the latest occurrence's).
	Explanation string `json:"explanation"`
	Count       uint64 `json:"count"`
	FirstTime   string `json:"first_time"`
	LastTime    string `json:"last_time"`
	// Evidence are the records that show it, each in the bundle with its inclusion proof: the
	// first 19 occurrences and the latest one (query/findings.MaxEvidence).
	Evidence []IdentityEvidence `json:"evidence"`
}

// IdentityEvidence is one record supporting an IdentityFinding.
type IdentityEvidence struct {
	LogIndex uint64 `json:"log_index"`
	RecordID string `json:"record_id"`
	Time     string `json:"time"`
	Note     string `json:"note,omitempty"`
}

// Retention is the Art. 19 / 26(6) coverage: what the log holds for the tenant (and AI system,
// when the export names one), over its whole life, not just the period.
type Retention struct {
	EarliestRecord string `json:"earliest_record,omitempty"`
	LatestRecord   string `json:"latest_record,omitempty"`
	CoverageDays   int    `json:"coverage_days"`
	// MinimumMonths is the retention the regulation asks for (6).
	MinimumMonths int `json:"minimum_months"`
	// MeetsMinimum says the log holds records spanning at least MinimumMonths.
	MeetsMinimum bool `json:"meets_minimum"`
	// GapThresholdDays is the shortest run of days without any record reported as a gap.
	GapThresholdDays int        `json:"gap_threshold_days"`
	Gaps             []Gap      `json:"gaps"`
	Months           []MonthRow `json:"months"`
	RecordsHeld      uint64     `json:"records_held"`
	Note             string     `json:"note"`
}

// Gap is a run of whole UTC days, inside the coverage, with no record.
type Gap struct {
	From string `json:"from"` // first day without records (YYYY-MM-DD)
	To   string `json:"to"`   // last day without records
	Days int    `json:"days"`
}

// MonthRow counts the records held per calendar month (UTC).
type MonthRow struct {
	Month   string `json:"month"` // YYYY-MM
	Records uint64 `json:"records"`
}

// AISystemRow is an AI system seen in the period.
type AISystemRow struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	RiskClass string `json:"risk_class"`
	UseCase   string `json:"use_case"`
	// HighRisk marks Annex III systems (risk_class "high"), for which Art. 12 and 19 apply.
	HighRisk  bool   `json:"high_risk"`
	Records   uint64 `json:"records"`
	Uses      uint64 `json:"uses"`
	FirstSeen string `json:"first_seen"`
	LastSeen  string `json:"last_seen"`
}

// PersonRow is a natural person in the period: who authorized agents, who reviewed decisions.
type PersonRow struct {
	ID     string `json:"id"`
	Issuer string `json:"issuer"`
	// Roles are "authorizing-user" and/or "oversight-reviewer".
	Roles             []string `json:"roles"`
	RecordsAuthorized uint64   `json:"records_authorized"`
	UsesAuthorized    uint64   `json:"uses_authorized"`
	Reviews           uint64   `json:"reviews"`
	ReviewsApproved   uint64   `json:"reviews_approved"`
	ReviewsRejected   uint64   `json:"reviews_rejected"`
	FirstSeen         string   `json:"first_seen"`
	LastSeen          string   `json:"last_seen"`
}

// AgentRow is an AI agent (workload identity) in the inventory.
type AgentRow struct {
	ID      string       `json:"id"`
	Roles   []string     `json:"roles"`
	Models  []string     `json:"models"`
	Records uint64       `json:"records"`
	Effects EffectCounts `json:"effects"`
	// SharedIdentity flags one workload identity acting in several roles (planner and critic,
	// say): its actions cannot be told apart, which defeats separation of duties.
	SharedIdentity bool   `json:"shared_identity"`
	FirstSeen      string `json:"first_seen"`
	LastSeen       string `json:"last_seen"`
}

// ModelRow is an AI model (provider, name, version) in the inventory.
type ModelRow struct {
	Provider string   `json:"provider"`
	Name     string   `json:"name"`
	Version  string   `json:"version"`
	Records  uint64   `json:"records"`
	Agents   []string `json:"agents"`
}

// ProviderRow is a model provider in the inventory.
type ProviderRow struct {
	Provider string   `json:"provider"`
	Models   []string `json:"models"`
	Records  uint64   `json:"records"`
}

// PolicyRow is a policy at one version and the decisions it produced.
type PolicyRow struct {
	ID      string       `json:"id"`
	Version string       `json:"version"`
	Records uint64       `json:"records"`
	Effects EffectCounts `json:"effects"`
}

// SafeguardRow is a safeguard named by records (redaction, rate limits, four eyes, …).
type SafeguardRow struct {
	Safeguard string `json:"safeguard"`
	Records   uint64 `json:"records"`
}

// EdgeRow is one edge of the lineage figure: From delegated to (or spawned) To, in Records
// records. From is a person ("user:<id>") or an agent ("agent:<id>").
type EdgeRow struct {
	From    string `json:"from"`
	To      string `json:"to"`
	Records uint64 `json:"records"`
}

// TableInfo names a CSV table of the export.
type TableInfo struct {
	File string `json:"file"`
	Rows uint64 `json:"rows"`
}

// UseRow is one use of an AI system. A use is one delegation: the records that share a
// delegation token (an RFC 8693 token exchange: one person handing one task to one crew).
// Records without a token are grouped by trace id, and failing that each is its own use.
type UseRow struct {
	UseID   string `json:"use_id"`
	UseKind string `json:"use_kind"` // "delegation", "trace" or "record"
	// AISystem is the AI system of the use's first record.
	AISystem string `json:"ai_system"`
	// Start and End are the decision times of the use's first and last records in the period.
	Start           string  `json:"start"`
	End             string  `json:"end"`
	DurationSeconds float64 `json:"duration_seconds"`
	// Users are the authorizing natural persons ("id (issuer)"); one for a delegation.
	Users      []string     `json:"users"`
	Reviewers  []string     `json:"reviewers"`
	Oversight  []string     `json:"oversight"` // outcomes, "approved" …
	Agents     []string     `json:"agents"`
	Models     []string     `json:"models"`
	Actions    []string     `json:"actions"`
	Targets    []string     `json:"targets"`
	Truncated  bool         `json:"truncated"` // a list above hit its cap
	Records    uint64       `json:"records"`
	Effects    EffectCounts `json:"effects"`
	Delegation struct {
		Issuer    string   `json:"issuer,omitempty"`
		Mechanism string   `json:"mechanism,omitempty"`
		Scope     []string `json:"scope,omitempty"`
		IssuedAt  string   `json:"issued_at,omitempty"`
		ExpiresAt string   `json:"expires_at,omitempty"`
	} `json:"delegation"`
	FirstLogIndex uint64 `json:"first_log_index"`
	LastLogIndex  uint64 `json:"last_log_index"`
	FirstRecordID string `json:"first_record_id"`
}

// DecisionRow is one record in scope, flattened. It cites its ledger entry by LogIndex; the
// bundle holds that entry with an inclusion proof.
type DecisionRow struct {
	LogIndex   uint64 `json:"log_index"`
	RecordID   string `json:"record_id"`
	Time       string `json:"time"`
	ReceivedAt string `json:"received_at"`
	AISystem   string `json:"ai_system,omitempty"`
	UseID      string `json:"use_id"`
	// The authorizing natural person and the delegation that carried the authority.
	UserID              string   `json:"user_id"`
	UserIssuer          string   `json:"user_issuer"`
	DelegationToken     string   `json:"delegation_token,omitempty"`
	DelegationIssuer    string   `json:"delegation_issuer,omitempty"`
	DelegationMechanism string   `json:"delegation_mechanism,omitempty"`
	DelegationScope     []string `json:"delegation_scope,omitempty"`
	// Actors is the RFC 8693 act chain, outermost (the acting agent) first.
	Actors []string `json:"actors,omitempty"`
	Role   string   `json:"role,omitempty"`
	// The AI tool.
	AgentID       string `json:"agent_id"`
	ModelProvider string `json:"model_provider,omitempty"`
	ModelName     string `json:"model_name,omitempty"`
	ModelVersion  string `json:"model_version,omitempty"`
	// What was decided.
	ActionType    string   `json:"action_type"`
	Target        string   `json:"target"`
	Effect        string   `json:"effect"`
	PolicyID      string   `json:"policy_id"`
	PolicyVersion string   `json:"policy_version"`
	Reason        string   `json:"reason,omitempty"`
	Safeguards    []string `json:"safeguards,omitempty"`
	ParentID      string   `json:"parent_id,omitempty"`
	// Human oversight (Art. 14), when the record carries it.
	ReviewerID      string `json:"reviewer_id,omitempty"`
	ReviewerIssuer  string `json:"reviewer_issuer,omitempty"`
	ReviewOutcome   string `json:"review_outcome,omitempty"`
	ReviewTime      string `json:"review_time,omitempty"`
	SourceID        string `json:"source_id"`
	SourceVerified  bool   `json:"source_verified"`
	DelegationValid string `json:"delegation_valid,omitempty"` // "expired" or "not-yet-valid" when the decision lies outside the token's lifetime
	// ErasedFields are the record's sealed fields whose subject key was erased before the
	// export (their value shows as "erased (key <key id>)"), with their commitments; the CSV
	// column erased_fields exists when the exporter has a key store.
	ErasedFields []ErasedField `json:"erased_fields,omitempty"`
}
