package lineage

// Limits on a record. They bound the memory and CPU an untrusted publisher can make ingest spend
// on one message, and keep every field small enough to index and to print in a report.
const (
	// MaxRecordSize is the largest record, in bytes, that DecodeRecord accepts, both as sent and
	// in canonical form. It is well under NATS's default 1 MiB message limit, so a record never
	// has to be split.
	MaxRecordSize = 64 << 10
	// MaxDepth is the deepest nesting of objects and arrays a record may have, counting the
	// record object itself as depth 1.
	MaxDepth = 32
	// MaxFreeFormSize bounds the canonical size of policy_context and of identity_object, the
	// two fields whose content Lineage does not interpret.
	MaxFreeFormSize = 16 << 10
	// MaxStringLen bounds every string in a record, in bytes.
	MaxStringLen = 2048
	// MaxIDLen bounds identifiers: the record id, parent_id, source.id, policy ids, token ids.
	MaxIDLen = 128
	// MaxPrincipalIDLen bounds user, reviewer and agent identifiers, which are often URIs (SPIFFE
	// ids, OIDC subjects qualified by issuer) and so longer than opaque ids.
	MaxPrincipalIDLen = 512
	// MaxScopeItems bounds delegation.scope.
	MaxScopeItems = 64
	// MaxActors bounds delegation.actors, the RFC 8693 act chain.
	MaxActors = 16
	// MaxSafeguards bounds safeguards.
	MaxSafeguards = 64
)

// Codes of a DecodeError. They are stable, machine-readable reasons: ingest puts them in the
// quarantine stream and in metrics labels, so they never change meaning.
const (
	// CodeTooLarge: the record (or its canonical form) exceeds MaxRecordSize.
	CodeTooLarge = "too_large"
	// CodeTooDeep: objects and arrays nest deeper than MaxDepth.
	CodeTooDeep = "too_deep"
	// CodeInvalidJSON: not JSON (syntax, invalid UTF-8, unpaired surrogate, trailing data) or
	// not a JSON object.
	CodeInvalidJSON = "invalid_json"
	// CodeDuplicateKey: a member name occurs twice in one object, at any depth.
	CodeDuplicateKey = "duplicate_key"
	// CodeUnknownField: a member the schema does not define (outside policy_context and
	// identity_object, whose content is free).
	CodeUnknownField = "unknown_field"
	// CodeWrongType: a member of the wrong JSON type.
	CodeWrongType = "wrong_type"
	// CodeMissingField: a required member is absent, null, or (for records built in Go) empty.
	CodeMissingField = "missing_field"
	// CodeInvalidValue: a member of the right type whose value breaks a rule of the schema
	// (format, length, enumeration, item count, number precision).
	CodeInvalidValue = "invalid_value"
)

// DecodeError says why a record was rejected: a stable Code, the dotted path of the offending
// member (Field, such as "decision.policy.version" or "delegation.actors[2]"; empty when the
// record as a whole is at fault) and a human-readable Msg.
//
// DecodeRecord and Record.Validate return it so that ingest can quarantine a record with a
// precise, machine-readable reason instead of a parser's prose; use errors.As to get it.
type DecodeError struct {
	Code  string
	Field string
	Msg   string
}

// Error formats the error as "lineage: decode: <field>: <msg>".
func (e *DecodeError) Error() string {
	if e.Field == "" {
		return "lineage: decode: " + e.Msg
	}
	return "lineage: decode: " + e.Field + ": " + e.Msg
}

func missing(field string) *DecodeError {
	return &DecodeError{Code: CodeMissingField, Field: field, Msg: "missing required field"}
}

func invalid(field, msg string) *DecodeError {
	return &DecodeError{Code: CodeInvalidValue, Field: field, Msg: msg}
}

// join builds a dotted path; it is only called on error paths, so successful decoding does not
// allocate path strings.
func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}
