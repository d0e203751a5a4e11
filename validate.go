package lineage

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// Validate checks the value rules of lineage.decision/v1 on a record, and returns the first
// violation as a *DecodeError (see the Code constants).
//
// DecodeRecord already applies these rules; Validate exists for records built in Go (a publisher
// library, a test, a migration) so that they are held to the same contract before they are
// published or canonicalized. Because a Go struct cannot tell an absent string from an empty one,
// an empty required string is reported as CodeMissingField and an empty optional one is absent
// (Canonical omits it, like omitempty). For such records Validate also
// checks what decoding guarantees by construction: strings are valid UTF-8, policy_context and
// identity_object are I-JSON of the right type, and the canonical record fits MaxRecordSize.
//
// The rules: schema is SchemaV1; id and parent_id are 1–128 bytes of printable ASCII without
// spaces, '*' or '>' (they become NATS message ids); tenant matches ^[a-z0-9][a-z0-9_-]{0,62}$
// (it becomes a NATS subject token); time, delegation.issued_at, delegation.expires_at and
// human_oversight.time are RFC 3339; decision.effect is allow, deny, modify or escalate; ids are
// at most MaxIDLen bytes, user, reviewer, agent and actor ids at most MaxPrincipalIDLen, any other
// string at most MaxStringLen; delegation.scope, delegation.actors and safeguards hold at most
// MaxScopeItems, MaxActors and MaxSafeguards non-empty strings. No string may hold a character
// that could deceive a reader (CodeControlCharacter): identifiers and labels no control,
// invisible formatting or line-separator character, prose (decision.reason, ai_system.name,
// ai_system.use_case and the strings inside policy_context and identity_object) no control
// character but tab, line feed and carriage return and no bidirectional formatting character;
// the exact sets are in text.go.
func (r *Record) Validate() error {
	return r.validate(true)
}

// decodeLogged decodes a record read back from the ledger. It applies every rule of
// DecodeRecord except the character rule (CodeControlCharacter), which is younger than the
// ledger: an entry logged before it must still decode, verify and index, and is shown through
// Printable. DecodeEnvelope uses it.
func decodeLogged(data []byte) (*Record, error) {
	r, err := DecodeRecord(data)
	var de *DecodeError
	if err == nil || !errors.As(err, &de) || de.Code != CodeControlCharacter {
		return r, err
	}
	// Only the value rules report CodeControlCharacter, and they run last: the pre-scan, the
	// decoding and the size bound have passed, so what is left is to check the other rules.
	if r, err = DecodeTrusted(data); err != nil {
		return nil, err
	}
	if err := r.check(false, false); err != nil {
		return nil, err
	}
	return r, nil
}

// ParsedTime returns the decision time. Records keep the time as the publisher wrote it (that
// string is what the ledger commits to); ParsedTime is for indexing and reports.
func (r *Record) ParsedTime() (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, r.Time)
	if err != nil {
		return time.Time{}, fmt.Errorf("lineage: record %q: time: %w", r.ID, err)
	}
	return t, nil
}

// checker collects the first rule violation; later checks are no-ops once one has failed, which
// keeps validate a flat list in schema order.
type checker struct {
	goBuilt bool // the record did not come from DecodeRecord
	chars   bool // apply the character rules (CodeControlCharacter)
	err     *DecodeError
}

func (c *checker) fail(err *DecodeError) {
	if c.err == nil {
		c.err = err
	}
}

// str checks a string's length and, for records built in Go, its encoding.
func (c *checker) str(field, s string, required bool, max int) {
	switch {
	case c.err != nil:
	case s == "":
		if required {
			c.fail(missing(field))
		}
	case len(s) > max:
		c.fail(invalid(field, "is "+strconv.Itoa(len(s))+" bytes, the limit is "+strconv.Itoa(max)))
	case c.goBuilt && !utf8.ValidString(s):
		c.fail(invalid(field, "is not valid UTF-8"))
	}
}

// ident checks an identifier or label: str, then no control, invisible formatting or
// line-separator character (identForbidden).
func (c *checker) ident(field, s string, required bool, max int) {
	c.str(field, s, required, max)
	c.forbid(field, s, true)
}

// text checks prose: str, then no control character but tab, line feed and carriage return,
// and no bidirectional formatting character (textForbidden).
func (c *checker) text(field, s string, required bool, max int) {
	c.str(field, s, required, max)
	c.forbid(field, s, false)
}

// forbid applies the character rule of an identifier (ident) or of prose to s.
func (c *checker) forbid(field, s string, ident bool) {
	if c.err != nil || !c.chars {
		return
	}
	forbidden := textForbidden
	if ident {
		forbidden = identForbidden
	}
	if r, at := findForbidden(s, forbidden); at >= 0 {
		c.fail(controlError(field, r, at, ident))
	}
}

// id checks an identifier that becomes a NATS message id and a lookup key.
func (c *checker) id(field, s string, required bool) {
	c.ident(field, s, required, MaxIDLen)
	if c.err != nil {
		return
	}
	for i := 0; i < len(s); i++ {
		if b := s[i]; b <= ' ' || b > '~' || b == '*' || b == '>' {
			c.fail(invalid(field, fmt.Sprintf("byte %d (%q) is not allowed: use printable ASCII without spaces, '*' or '>'", i, b)))
			return
		}
	}
}

func (c *checker) timestamp(field, s string, required bool) {
	c.str(field, s, required, MaxStringLen)
	if c.err != nil || s == "" {
		return
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		c.fail(invalid(field, "not an RFC 3339 timestamp: "+err.Error()))
		return
	}
	// Indexes store times as Unix nanoseconds (int64: 1677–2262); a record outside a sane
	// window would be logged but could never be indexed, so refuse it at the door.
	if t.Before(MinTime) || !t.Before(MaxTime) {
		c.fail(invalid(field, "must be between "+MinTime.Format(time.RFC3339)+" and "+MaxTime.Format(time.RFC3339)))
	}
}

// MinTime and MaxTime bound every timestamp in a record.
var (
	MinTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// ValidTenant reports whether s is a tenant name records may carry: ^[a-z0-9][a-z0-9_-]{0,62}$
// (a tenant becomes a NATS subject token). Tools that take a tenant name (API keys, source keys)
// check it with this rule, so they cannot name a tenant no record could belong to.
func ValidTenant(s string) bool {
	c := checker{chars: true}
	c.tenant(s)
	return c.err == nil
}

func (c *checker) tenant(s string) {
	c.ident("tenant", s, true, 63)
	if c.err != nil {
		return
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		ok := b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || i > 0 && (b == '_' || b == '-')
		if !ok {
			c.fail(invalid("tenant", "must match ^[a-z0-9][a-z0-9_-]{0,62}$"))
			return
		}
	}
}

func (c *checker) effect(s string) {
	c.str("decision.effect", s, true, MaxStringLen)
	if c.err != nil {
		return
	}
	switch s {
	case EffectAllow, EffectDeny, EffectModify, EffectEscalate:
	default:
		c.fail(invalid("decision.effect", "must be one of allow, deny, modify, escalate"))
	}
}

// list checks a list of identifiers or labels.
func (c *checker) list(field string, items []string, maxItems, maxLen int) {
	if c.err != nil {
		return
	}
	if len(items) > maxItems {
		c.fail(invalid(field, "has "+strconv.Itoa(len(items))+" items, the limit is "+strconv.Itoa(maxItems)))
		return
	}
	for i, s := range items {
		item := func() string { return field + "[" + strconv.Itoa(i) + "]" }
		if s == "" {
			c.fail(invalid(item(), "must not be empty"))
			return
		}
		if len(s) > maxLen || c.goBuilt && !utf8.ValidString(s) {
			c.str(item(), s, true, maxLen)
			return
		}
		if c.chars {
			if r, at := findForbidden(s, identForbidden); at >= 0 {
				c.fail(controlError(item(), r, at, true))
				return
			}
		}
	}
}

// freeForm checks policy_context or identity_object on a record built in Go; DecodeRecord has
// already checked and canonicalized them.
func (c *checker) freeForm(field string, raw json.RawMessage, kinds string) {
	if c.err != nil || len(raw) == 0 {
		return
	}
	if !c.goBuilt {
		c.freeChars(field, raw) // DecodeRecord stored the canonical form
		return
	}
	if err := checkIJSON(raw, field, 1, kinds); err != nil {
		c.fail(err)
		return
	}
	canon, err := Canonicalize(raw)
	if err != nil {
		c.fail(&DecodeError{Code: CodeInvalidJSON, Field: field, Msg: err.Error()})
		return
	}
	if len(canon) > MaxFreeFormSize {
		c.fail(invalid(field, "canonical form is "+strconv.Itoa(len(canon))+" bytes, the limit is "+strconv.Itoa(MaxFreeFormSize)))
		return
	}
	c.freeChars(field, canon)
}

// freeChars applies the prose character rule to every member name and string in the canonical
// form of a free-form member.
func (c *checker) freeChars(field string, canon []byte) {
	if !c.chars {
		return
	}
	if err := scanFree(field, canon); err != nil {
		c.fail(err)
	}
}

func (r *Record) validate(goBuilt bool) error {
	return r.check(goBuilt, true)
}

// check applies the rules; chars false leaves out the character rules (for decodeLogged).
func (r *Record) check(goBuilt, chars bool) error {
	c := checker{goBuilt: goBuilt, chars: chars}
	if r.Schema != SchemaV1 {
		c.str("schema", r.Schema, true, MaxStringLen)
		c.fail(invalid("schema", "must be "+strconv.Quote(SchemaV1)))
	}
	c.id("id", r.ID, true)
	c.timestamp("time", r.Time, true)
	c.tenant(r.Tenant)
	c.ident("source.id", r.Source.ID, true, MaxIDLen)
	c.ident("source.type", r.Source.Type, true, MaxStringLen)
	c.ident("user.id", r.User.ID, true, MaxPrincipalIDLen)
	c.ident("user.issuer", r.User.Issuer, true, MaxStringLen)
	c.ident("agent.id", r.Agent.ID, true, MaxPrincipalIDLen)
	if m := r.Agent.Model; m != nil {
		c.ident("agent.model.provider", m.Provider, false, MaxStringLen)
		c.ident("agent.model.name", m.Name, false, MaxStringLen)
		c.ident("agent.model.version", m.Version, false, MaxStringLen)
	}
	c.ident("role", r.Role, false, MaxStringLen)
	c.ident("action.type", r.Action.Type, true, MaxStringLen)
	c.ident("action.target", r.Action.Target, true, MaxStringLen)
	c.effect(r.Decision.Effect)
	c.ident("decision.policy.id", r.Decision.Policy.ID, true, MaxIDLen)
	c.ident("decision.policy.version", r.Decision.Policy.Version, true, MaxStringLen)
	c.text("decision.reason", r.Decision.Reason, false, MaxStringLen)
	if g := r.Delegation; g != nil {
		c.ident("delegation.token_id", g.TokenID, false, MaxIDLen)
		c.ident("delegation.issuer", g.Issuer, false, MaxStringLen)
		c.ident("delegation.mechanism", g.Mechanism, false, MaxStringLen)
		c.list("delegation.scope", g.Scope, MaxScopeItems, MaxStringLen)
		c.timestamp("delegation.issued_at", g.IssuedAt, false)
		c.timestamp("delegation.expires_at", g.ExpiresAt, false)
		c.list("delegation.actors", g.Actors, MaxActors, MaxPrincipalIDLen)
	}
	c.freeForm("policy_context", r.PolicyContext, "{")
	c.id("parent_id", r.ParentID, false)
	if t := r.Trace; t != nil {
		c.ident("trace.trace_id", t.TraceID, false, MaxIDLen)
		c.ident("trace.span_id", t.SpanID, false, MaxIDLen)
	}
	if a := r.AISystem; a != nil {
		c.ident("ai_system.id", a.ID, true, MaxIDLen)
		c.text("ai_system.name", a.Name, false, MaxStringLen)
		c.ident("ai_system.risk_class", a.RiskClass, false, MaxStringLen)
		c.text("ai_system.use_case", a.UseCase, false, MaxStringLen)
	}
	if h := r.HumanOversight; h != nil {
		c.ident("human_oversight.reviewer.id", h.Reviewer.ID, true, MaxPrincipalIDLen)
		c.ident("human_oversight.reviewer.issuer", h.Reviewer.Issuer, true, MaxStringLen)
		c.ident("human_oversight.outcome", h.Outcome, true, MaxStringLen)
		c.timestamp("human_oversight.time", h.Time, false)
	}
	c.list("safeguards", r.Safeguards, MaxSafeguards, MaxStringLen)
	c.freeForm("identity_object", r.IdentityObject, `{"`)
	if c.err == nil && goBuilt {
		canon, err := r.Canonical()
		switch {
		case err != nil:
			c.fail(&DecodeError{Code: CodeInvalidValue, Msg: err.Error()})
		case len(canon) > MaxRecordSize:
			c.fail(&DecodeError{Code: CodeTooLarge, Msg: "canonical form is " + strconv.Itoa(len(canon)) + " bytes, the limit is " + strconv.Itoa(MaxRecordSize)})
		}
	}
	if c.err != nil {
		return c.err
	}
	return nil
}
