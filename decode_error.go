package lineage

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
	// CodeControlCharacter: a string holds a character that could deceive the person reading it
	// on a terminal or a page: a control character, a bidirectional override or, in an
	// identifier, an invisible or line-breaking one (the rules are next to Record, in record.go).
	// Field names the member, down into policy_context and identity_object.
	CodeControlCharacter = "control_character"
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
