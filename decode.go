package lineage

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/lineage-audit/lineage/internal/ijson"
)

// DecodeRecord decodes one untrusted record (a NATS message body, an HTTP request body) strictly,
// and fails closed: anything the schema does not allow is rejected with a *DecodeError naming
// the offending field, never skipped, coerced or defaulted. A record that is accepted has passed
// Validate, and its Canonical form decodes again to the same record.
//
// Decoding runs in two passes over the bytes, both without reflection. The first (the I-JSON
// pre-scan) rejects what makes a document ambiguous or expensive: oversize input, bad UTF-8,
// nesting deeper than MaxDepth, duplicate member names, numbers that canonicalization would
// alter. The second decodes the known members into a Record, rejecting unknown members, wrong
// types, missing required members and empty strings; then the value rules of Validate apply. JSON
// null for an optional member means absent; for a required one it is CodeMissingField.
//
// policy_context and identity_object are stored in the Record in canonical (RFC 8785) form, so
// their size limit (MaxFreeFormSize) is measured on the bytes the ledger will actually hold.
// The returned Record's strings share one copy of data; data itself is not retained.
func DecodeRecord(data []byte) (*Record, error) {
	if len(data) > MaxRecordSize {
		return nil, &DecodeError{Code: CodeTooLarge,
			Msg: "record is " + strconv.Itoa(len(data)) + " bytes, the limit is " + strconv.Itoa(MaxRecordSize)}
	}
	if err := checkIJSON(data, "", 0, "{"); err != nil {
		return nil, err
	}
	d := decoder{Lexer: ijson.Lexer{Data: data}, text: string(data)}
	r := new(Record)
	d.Next()
	if err := d.record(r); err != nil {
		return nil, err
	}
	// Canonical strings are never longer than their JSON input, and numbers can only occur in
	// the free-form members, whose canonical size d has measured. So this bounds the canonical
	// record, and guarantees that the canonical form itself passes the size check above.
	if size := len(data) - d.freeRaw + d.freeCanon; size > MaxRecordSize {
		return nil, &DecodeError{Code: CodeTooLarge,
			Msg: "canonical form may reach " + strconv.Itoa(size) + " bytes, the limit is " + strconv.Itoa(MaxRecordSize)}
	}
	if err := r.validate(false); err != nil {
		return nil, err
	}
	return r, nil
}

// checkIJSON is the first pass of DecodeRecord (see ijson.Checker): it checks that data holds
// exactly one value whose first byte is one of kinds ("{" for a record or policy_context,
// "{\"" for identity_object), and that the value is I-JSON nesting at most MaxDepth deep, counted
// from baseDepth. root is the value's path in the record ("" for a record); errors name the
// offending member below it.
func checkIJSON(data []byte, root string, baseDepth int, kinds string) *DecodeError {
	l := ijson.Lexer{Data: data}
	if l.More() { // empty input is ijson.Check's to report
		if c := l.Next(); strings.IndexByte(kinds, c) < 0 {
			if root == "" {
				return &DecodeError{Code: CodeInvalidJSON, Msg: "a record must be a JSON object"}
			}
			return &DecodeError{Code: CodeWrongType, Field: root, Msg: "expected " + ijson.KindNames(kinds) + ", got " + ijson.KindOf(c)}
		}
	}
	if err := ijson.Check(data, root, baseDepth, MaxDepth); err != nil {
		return checkError(err)
	}
	return nil
}

// checkError turns a fault found by the pre-scan into the DecodeError that reports it.
func checkError(e *ijson.CheckError) *DecodeError {
	code := CodeInvalidJSON // ijson.FaultSyntax
	switch e.Fault {
	case ijson.FaultDepth:
		code = CodeTooDeep
	case ijson.FaultDuplicate:
		code = CodeDuplicateKey
	case ijson.FaultNumber:
		code = CodeInvalidValue
	}
	return &DecodeError{Code: code, Field: e.Path, Msg: e.Msg}
}

// decoder is the second pass of DecodeRecord. The pre-scan has already checked the syntax, so a
// syntax error here would be a bug; the decoder still checks every byte it relies on and reports
// such a bug as invalid_json rather than misreading or panicking.
type decoder struct {
	ijson.Lexer
	text       string // one copy of data; unescaped string values are substrings of it
	buf        []byte // unescaping and canonicalization scratch
	canon      ijson.Canonicalizer
	canonSized bool // canon and buf have their scratch space
	freeRaw    int  // input bytes of the free-form members
	freeCanon  int  // canonical bytes of the free-form members
}

// Required members of each object, in the order missing ones are reported. A decoding function
// sets bit i of its "seen" mask when it meets required[i].
var (
	recordRequired   = []string{"schema", "id", "time", "tenant", "source", "user", "agent", "action", "decision"}
	sourceRequired   = []string{"id", "type"}
	personRequired   = []string{"id", "issuer"}
	agentRequired    = []string{"id"}
	actionRequired   = []string{"type", "target"}
	decisionRequired = []string{"effect", "policy"}
	policyRequired   = []string{"id", "version"}
	aiSystemRequired = []string{"id"}
	oversightReq     = []string{"reviewer", "outcome"}
)

func checkRequired(seen uint32, prefix string, required []string) error {
	for i, name := range required {
		if seen&(1<<i) == 0 {
			return missing(join(prefix, name))
		}
	}
	return nil
}

// bad reports input the pre-scan should have rejected.
func (d *decoder) bad(field, want string) error {
	return &DecodeError{Code: CodeInvalidJSON, Field: field, Msg: d.Unexpected(want).Error()}
}

func (d *decoder) wrongType(field, want string) error {
	return &DecodeError{Code: CodeWrongType, Field: field, Msg: "expected " + want + ", got " + ijson.KindOf(d.Next())}
}

func (d *decoder) unknown(prefix string, key []byte) error {
	return &DecodeError{Code: CodeUnknownField, Field: join(prefix, string(key)), Msg: "unknown field"}
}

// object calls member for each member of the object under the cursor, with the cursor on the
// member's value. key is only valid until member decodes a string.
func (d *decoder) object(prefix string, member func(key []byte) error) error {
	d.Pos++ // '{'
	if d.Next() == '}' {
		d.Pos++
		return nil
	}
	for {
		if d.Next() != '"' {
			return d.bad(prefix, "a member name")
		}
		raw, escaped, err := d.ScanString()
		if err != nil {
			return d.bad(prefix, "a member name")
		}
		key := raw
		if escaped {
			d.buf = ijson.Unescape(d.buf[:0], raw)
			key = d.buf
		}
		if d.Next() != ':' {
			return d.bad(prefix, "':'")
		}
		d.Pos++
		d.Next()
		if err := member(key); err != nil {
			return err
		}
		switch d.Next() {
		case ',':
			d.Pos++
		case '}':
			d.Pos++
			return nil
		default:
			return d.bad(prefix, "',' or '}'")
		}
	}
}

// present reports whether the member under the cursor holds an object, consuming a null. A null
// or absent required object is missing; any other type is wrong.
func (d *decoder) present(field string, required bool) (bool, error) {
	switch d.Next() {
	case '{':
		return true, nil
	case 'n':
		if required {
			return false, missing(field)
		}
		return false, d.null(field)
	}
	return false, d.wrongType(field, "object")
}

func (d *decoder) null(field string) error {
	if err := d.Literal(); err != nil {
		return d.bad(field, "null")
	}
	return nil
}

// str decodes the string under the cursor without copying when it has no escapes. The member's
// path is passed in parts and only joined on error, so that success does not allocate.
func (d *decoder) str(prefix, name string) (string, error) {
	start := d.Pos + 1
	raw, escaped, err := d.ScanString()
	if err != nil {
		return "", d.bad(join(prefix, name), "a string")
	}
	if !escaped {
		return d.text[start : start+len(raw)], nil
	}
	d.buf = ijson.Unescape(d.buf[:0], raw)
	return string(d.buf), nil
}

// reqString decodes a required string member: null is missing.
func (d *decoder) reqString(dst *string, prefix, name string) error {
	if d.Next() == 'n' {
		return missing(join(prefix, name))
	}
	return d.optString(dst, prefix, name)
}

// optString decodes an optional string member; null leaves dst empty. An empty string is
// rejected rather than dropped: in Go (and in the canonical form) it would be indistinguishable
// from an absent member, and a record must not change meaning on its way into the ledger.
func (d *decoder) optString(dst *string, prefix, name string) error {
	switch d.Next() {
	case '"':
		s, err := d.str(prefix, name)
		if err != nil {
			return err
		}
		if s == "" {
			return invalid(join(prefix, name), "must not be empty (omit the member instead)")
		}
		*dst = s
		return nil
	case 'n':
		return d.null(join(prefix, name))
	}
	return d.wrongType(join(prefix, name), "string")
}

// strings decodes an optional array of strings; null or [] leave dst nil. Counts and empty items
// are value rules, checked by Validate.
func (d *decoder) strings(dst *[]string, prefix, name string) error {
	switch d.Next() {
	case '[':
	case 'n':
		return d.null(join(prefix, name))
	default:
		return d.wrongType(join(prefix, name), "array")
	}
	d.Pos++
	if d.Next() == ']' {
		d.Pos++
		return nil
	}
	out := make([]string, 0, 4)
	for {
		if d.Next() != '"' {
			return d.wrongType(join(prefix, name)+"["+strconv.Itoa(len(out))+"]", "string")
		}
		s, err := d.str(prefix, name)
		if err != nil {
			return err
		}
		out = append(out, s)
		switch d.Next() {
		case ',':
			d.Pos++
		case ']':
			d.Pos++
			*dst = out
			return nil
		default:
			return d.bad(join(prefix, name), "',' or ']'")
		}
	}
}

// freeForm decodes policy_context or identity_object: a value of one of the JSON types in kinds
// whose content Lineage does not interpret. It is stored in canonical form.
func (d *decoder) freeForm(dst *json.RawMessage, field, kinds string) error {
	c := d.Next()
	if c == 'n' {
		return d.null(field)
	}
	if c == 0 || strings.IndexByte(kinds, c) < 0 {
		return d.wrongType(field, ijson.KindNames(kinds))
	}
	start := d.Pos
	if !d.canonSized { // size the scratch space once, for both free-form members
		d.canon.Reserve(16, 256)
		d.buf = make([]byte, 0, 1024)
		d.canonSized = true
	}
	d.canon.Lexer = d.Lexer
	out, err := d.canon.AppendValue(d.buf[:0], 1)
	d.buf = out[:0]
	if err != nil {
		return &DecodeError{Code: CodeInvalidJSON, Field: field, Msg: err.Error()}
	}
	d.Pos = d.canon.Pos
	d.freeRaw += d.Pos - start
	d.freeCanon += len(out)
	if len(out) > MaxFreeFormSize {
		return invalid(field, "canonical form is "+strconv.Itoa(len(out))+" bytes, the limit is "+strconv.Itoa(MaxFreeFormSize))
	}
	*dst = bytes.Clone(out)
	return nil
}

func (d *decoder) record(r *Record) error {
	var seen uint32
	err := d.object("", func(key []byte) error {
		switch string(key) {
		case "schema":
			seen |= 1 << 0
			return d.reqString(&r.Schema, "", "schema")
		case "id":
			seen |= 1 << 1
			return d.reqString(&r.ID, "", "id")
		case "time":
			seen |= 1 << 2
			return d.reqString(&r.Time, "", "time")
		case "tenant":
			seen |= 1 << 3
			return d.reqString(&r.Tenant, "", "tenant")
		case "source":
			seen |= 1 << 4
			return d.source(&r.Source)
		case "user":
			seen |= 1 << 5
			return d.person(&r.User, "user", true)
		case "agent":
			seen |= 1 << 6
			return d.agent(&r.Agent)
		case "action":
			seen |= 1 << 7
			return d.action(&r.Action)
		case "decision":
			seen |= 1 << 8
			return d.decision(&r.Decision)
		case "role":
			return d.optString(&r.Role, "", "role")
		case "delegation":
			return d.delegation(&r.Delegation)
		case "policy_context":
			return d.freeForm(&r.PolicyContext, "policy_context", "{")
		case "parent_id":
			return d.optString(&r.ParentID, "", "parent_id")
		case "trace":
			return d.trace(&r.Trace)
		case "ai_system":
			return d.aiSystem(&r.AISystem)
		case "human_oversight":
			return d.humanOversight(&r.HumanOversight)
		case "safeguards":
			return d.strings(&r.Safeguards, "", "safeguards")
		case "identity_object":
			return d.freeForm(&r.IdentityObject, "identity_object", `{"`)
		}
		return d.unknown("", key)
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, "", recordRequired)
}

func (d *decoder) source(s *Source) error {
	if _, err := d.present("source", true); err != nil {
		return err
	}
	var seen uint32
	err := d.object("source", func(key []byte) error {
		switch string(key) {
		case "id":
			seen |= 1 << 0
			return d.reqString(&s.ID, "source", "id")
		case "type":
			seen |= 1 << 1
			return d.reqString(&s.Type, "source", "type")
		}
		return d.unknown("source", key)
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, "source", sourceRequired)
}

// person decodes user or human_oversight.reviewer.
func (d *decoder) person(p *Person, prefix string, required bool) error {
	if _, err := d.present(prefix, required); err != nil {
		return err
	}
	var seen uint32
	err := d.object(prefix, func(key []byte) error {
		switch string(key) {
		case "id":
			seen |= 1 << 0
			return d.reqString(&p.ID, prefix, "id")
		case "issuer":
			seen |= 1 << 1
			return d.reqString(&p.Issuer, prefix, "issuer")
		}
		return d.unknown(prefix, key)
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, prefix, personRequired)
}

func (d *decoder) agent(a *Agent) error {
	if _, err := d.present("agent", true); err != nil {
		return err
	}
	var seen uint32
	err := d.object("agent", func(key []byte) error {
		switch string(key) {
		case "id":
			seen |= 1 << 0
			return d.reqString(&a.ID, "agent", "id")
		case "model":
			return d.model(&a.Model)
		}
		return d.unknown("agent", key)
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, "agent", agentRequired)
}

func (d *decoder) model(dst **Model) error {
	const prefix = "agent.model"
	if ok, err := d.present(prefix, false); !ok {
		return err
	}
	m := new(Model)
	*dst = m
	return d.object(prefix, func(key []byte) error {
		switch string(key) {
		case "provider":
			return d.optString(&m.Provider, prefix, "provider")
		case "name":
			return d.optString(&m.Name, prefix, "name")
		case "version":
			return d.optString(&m.Version, prefix, "version")
		}
		return d.unknown(prefix, key)
	})
}

func (d *decoder) action(a *Action) error {
	if _, err := d.present("action", true); err != nil {
		return err
	}
	var seen uint32
	err := d.object("action", func(key []byte) error {
		switch string(key) {
		case "type":
			seen |= 1 << 0
			return d.reqString(&a.Type, "action", "type")
		case "target":
			seen |= 1 << 1
			return d.reqString(&a.Target, "action", "target")
		}
		return d.unknown("action", key)
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, "action", actionRequired)
}

func (d *decoder) decision(dec *Decision) error {
	if _, err := d.present("decision", true); err != nil {
		return err
	}
	var seen uint32
	err := d.object("decision", func(key []byte) error {
		switch string(key) {
		case "effect":
			seen |= 1 << 0
			return d.reqString(&dec.Effect, "decision", "effect")
		case "policy":
			seen |= 1 << 1
			return d.policy(&dec.Policy)
		case "reason":
			return d.optString(&dec.Reason, "decision", "reason")
		}
		return d.unknown("decision", key)
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, "decision", decisionRequired)
}

func (d *decoder) policy(p *Policy) error {
	const prefix = "decision.policy"
	if _, err := d.present(prefix, true); err != nil {
		return err
	}
	var seen uint32
	err := d.object(prefix, func(key []byte) error {
		switch string(key) {
		case "id":
			seen |= 1 << 0
			return d.reqString(&p.ID, prefix, "id")
		case "version":
			seen |= 1 << 1
			return d.reqString(&p.Version, prefix, "version")
		}
		return d.unknown(prefix, key)
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, prefix, policyRequired)
}

func (d *decoder) delegation(dst **Delegation) error {
	const prefix = "delegation"
	if ok, err := d.present(prefix, false); !ok {
		return err
	}
	g := new(Delegation)
	*dst = g
	return d.object(prefix, func(key []byte) error {
		switch string(key) {
		case "token_id":
			return d.optString(&g.TokenID, prefix, "token_id")
		case "issuer":
			return d.optString(&g.Issuer, prefix, "issuer")
		case "mechanism":
			return d.optString(&g.Mechanism, prefix, "mechanism")
		case "scope":
			return d.strings(&g.Scope, prefix, "scope")
		case "issued_at":
			return d.optString(&g.IssuedAt, prefix, "issued_at")
		case "expires_at":
			return d.optString(&g.ExpiresAt, prefix, "expires_at")
		case "actors":
			return d.strings(&g.Actors, prefix, "actors")
		}
		return d.unknown(prefix, key)
	})
}

func (d *decoder) trace(dst **Trace) error {
	const prefix = "trace"
	if ok, err := d.present(prefix, false); !ok {
		return err
	}
	t := new(Trace)
	*dst = t
	return d.object(prefix, func(key []byte) error {
		switch string(key) {
		case "trace_id":
			return d.optString(&t.TraceID, prefix, "trace_id")
		case "span_id":
			return d.optString(&t.SpanID, prefix, "span_id")
		}
		return d.unknown(prefix, key)
	})
}

func (d *decoder) aiSystem(dst **AISystem) error {
	const prefix = "ai_system"
	if ok, err := d.present(prefix, false); !ok {
		return err
	}
	a := new(AISystem)
	*dst = a
	var seen uint32
	err := d.object(prefix, func(key []byte) error {
		switch string(key) {
		case "id":
			seen |= 1 << 0
			return d.reqString(&a.ID, prefix, "id")
		case "name":
			return d.optString(&a.Name, prefix, "name")
		case "risk_class":
			return d.optString(&a.RiskClass, prefix, "risk_class")
		case "use_case":
			return d.optString(&a.UseCase, prefix, "use_case")
		}
		return d.unknown(prefix, key)
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, prefix, aiSystemRequired)
}

func (d *decoder) humanOversight(dst **HumanOversight) error {
	const prefix = "human_oversight"
	if ok, err := d.present(prefix, false); !ok {
		return err
	}
	h := new(HumanOversight)
	*dst = h
	var seen uint32
	err := d.object(prefix, func(key []byte) error {
		switch string(key) {
		case "reviewer":
			seen |= 1 << 0
			return d.person(&h.Reviewer, prefix+".reviewer", true)
		case "outcome":
			seen |= 1 << 1
			return d.reqString(&h.Outcome, prefix, "outcome")
		case "time":
			return d.optString(&h.Time, prefix, "time")
		}
		return d.unknown(prefix, key)
	})
	if err != nil {
		return err
	}
	return checkRequired(seen, prefix, oversightReq)
}

// DecodeTrusted decodes record bytes that Lineage itself wrote and already checked on the way in
// (index rows, verified ledger entries). It skips the pre-scan and the value rules, which makes
// it several times cheaper than DecodeRecord for the thousands of rows of a lineage answer, and
// lets a record logged under older, looser rules still be read. It still refuses malformed JSON,
// unknown members and wrong types: it never guesses.
func DecodeTrusted(data []byte) (*Record, error) {
	d := decoder{Lexer: ijson.Lexer{Data: data}, text: string(data)}
	r := new(Record)
	d.Next()
	if err := d.record(r); err != nil {
		return nil, err
	}
	return r, nil
}
