package lineage

import (
	"encoding/json"
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
// MaxScopeItems, MaxActors and MaxSafeguards non-empty strings.
func (r *Record) Validate() error {
	return r.validate(true)
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

// id checks an identifier that becomes a NATS message id and a lookup key.
func (c *checker) id(field, s string, required bool) {
	c.str(field, s, required, MaxIDLen)
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

func (c *checker) tenant(s string) {
	c.str("tenant", s, true, 63)
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
	}
}

// freeForm checks policy_context or identity_object on a record built in Go; DecodeRecord has
// already checked and canonicalized them.
func (c *checker) freeForm(field string, raw json.RawMessage, kinds string) {
	if c.err != nil || !c.goBuilt || len(raw) == 0 {
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
	}
}

func (r *Record) validate(goBuilt bool) error {
	c := checker{goBuilt: goBuilt}
	if r.Schema != SchemaV1 {
		c.str("schema", r.Schema, true, MaxStringLen)
		c.fail(invalid("schema", "must be "+strconv.Quote(SchemaV1)))
	}
	c.id("id", r.ID, true)
	c.timestamp("time", r.Time, true)
	c.tenant(r.Tenant)
	c.str("source.id", r.Source.ID, true, MaxIDLen)
	c.str("source.type", r.Source.Type, true, MaxStringLen)
	c.str("user.id", r.User.ID, true, MaxPrincipalIDLen)
	c.str("user.issuer", r.User.Issuer, true, MaxStringLen)
	c.str("agent.id", r.Agent.ID, true, MaxPrincipalIDLen)
	if m := r.Agent.Model; m != nil {
		c.str("agent.model.provider", m.Provider, false, MaxStringLen)
		c.str("agent.model.name", m.Name, false, MaxStringLen)
		c.str("agent.model.version", m.Version, false, MaxStringLen)
	}
	c.str("role", r.Role, false, MaxStringLen)
	c.str("action.type", r.Action.Type, true, MaxStringLen)
	c.str("action.target", r.Action.Target, true, MaxStringLen)
	c.effect(r.Decision.Effect)
	c.str("decision.policy.id", r.Decision.Policy.ID, true, MaxIDLen)
	c.str("decision.policy.version", r.Decision.Policy.Version, true, MaxStringLen)
	c.str("decision.reason", r.Decision.Reason, false, MaxStringLen)
	if g := r.Delegation; g != nil {
		c.str("delegation.token_id", g.TokenID, false, MaxIDLen)
		c.str("delegation.issuer", g.Issuer, false, MaxStringLen)
		c.str("delegation.mechanism", g.Mechanism, false, MaxStringLen)
		c.list("delegation.scope", g.Scope, MaxScopeItems, MaxStringLen)
		c.timestamp("delegation.issued_at", g.IssuedAt, false)
		c.timestamp("delegation.expires_at", g.ExpiresAt, false)
		c.list("delegation.actors", g.Actors, MaxActors, MaxPrincipalIDLen)
	}
	c.freeForm("policy_context", r.PolicyContext, "{")
	c.id("parent_id", r.ParentID, false)
	if t := r.Trace; t != nil {
		c.str("trace.trace_id", t.TraceID, false, MaxIDLen)
		c.str("trace.span_id", t.SpanID, false, MaxIDLen)
	}
	if a := r.AISystem; a != nil {
		c.str("ai_system.id", a.ID, true, MaxIDLen)
		c.str("ai_system.name", a.Name, false, MaxStringLen)
		c.str("ai_system.risk_class", a.RiskClass, false, MaxStringLen)
		c.str("ai_system.use_case", a.UseCase, false, MaxStringLen)
	}
	if h := r.HumanOversight; h != nil {
		c.str("human_oversight.reviewer.id", h.Reviewer.ID, true, MaxPrincipalIDLen)
		c.str("human_oversight.reviewer.issuer", h.Reviewer.Issuer, true, MaxStringLen)
		c.str("human_oversight.outcome", h.Outcome, true, MaxStringLen)
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
