package lineage

import (
	"encoding/json"
	"fmt"

	"github.com/lineage-audit/lineage/internal/ijson"
)

// Canonicalize returns the RFC 8785 (JSON Canonicalization Scheme) form of the JSON text data.
//
// Canonical JSON is what the ledger hashes: two publishers that serialize the same record with
// different whitespace, key order, escapes or number spellings must produce the same leaf, and an
// auditor re-deriving a hash years later must get the same bytes. The output has object members
// sorted by the UTF-16 code units of their names, no insignificant whitespace, strings escaped as
// ECMAScript's JSON.stringify does, and numbers written as ECMAScript's Number.prototype.toString
// writes the nearest IEEE 754 double.
//
// Input that is not I-JSON (RFC 7493) is rejected, because it has no unambiguous canonical form:
// invalid UTF-8, unpaired surrogates, duplicate member names, numbers beyond the double range.
// Unlike DecodeRecord, Canonicalize accepts numbers that lose precision, as RFC 8785 specifies.
// The implementation is internal/ijson/jcs.go.
func Canonicalize(data []byte) ([]byte, error) {
	out, err := ijson.Canonicalize(data)
	if err != nil {
		return nil, fmt.Errorf("lineage: canonicalize: %w", err)
	}
	return out, nil
}

// Canonical returns the RFC 8785 canonical JSON of the record: the bytes the ledger commits to.
// Absent optional members (empty strings, nil pointers, empty lists and raw values) are omitted,
// exactly as the json tags' omitempty would omit them, so Canonical equals Canonicalize applied
// to json.Marshal(r) — but it is written directly, member by member in canonical order, without
// reflection or a second parse.
//
// Canonical encodes; it does not validate. Records from DecodeRecord are valid; call Validate
// first on a record built in Go. It fails only on what has no canonical form: strings that are
// not valid UTF-8 and policy_context or identity_object that are not I-JSON.
func (r *Record) Canonical() ([]byte, error) {
	w := recordWriter{buf: make([]byte, 0, r.sizeHint())}
	w.record(r)
	if w.err != nil {
		return nil, fmt.Errorf("lineage: canonical record %q: %w", r.ID, w.err)
	}
	return w.buf, nil
}

// recordWriter appends an object's members in the order given, which the callers below keep
// sorted by name (RFC 8785 §3.2.3; all names are ASCII, so byte order is UTF-16 order).
type recordWriter struct {
	buf   []byte
	err   error
	first bool // no member written yet in the current object
}

func (w *recordWriter) open() {
	w.buf = append(w.buf, '{')
	w.first = true
}

func (w *recordWriter) close() {
	w.buf = append(w.buf, '}')
	w.first = false
}

// name writes a member name and the colon.
func (w *recordWriter) name(n string) {
	if !w.first {
		w.buf = append(w.buf, ',')
	}
	w.first = false
	w.buf = append(w.buf, '"')
	w.buf = append(w.buf, n...)
	w.buf = append(w.buf, '"', ':')
}

func (w *recordWriter) str(n, s string) {
	w.name(n)
	var err error
	if w.buf, err = ijson.AppendString(w.buf, s); err != nil && w.err == nil {
		w.err = fmt.Errorf("%s: %w", n, err)
	}
}

// opt writes a string member unless it is empty (omitempty).
func (w *recordWriter) opt(n, s string) {
	if s != "" {
		w.str(n, s)
	}
}

func (w *recordWriter) list(n string, items []string) {
	if len(items) == 0 {
		return
	}
	w.name(n)
	w.buf = append(w.buf, '[')
	for i, s := range items {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		var err error
		if w.buf, err = ijson.AppendString(w.buf, s); err != nil && w.err == nil {
			w.err = fmt.Errorf("%s[%d]: %w", n, i, err)
		}
	}
	w.buf = append(w.buf, ']')
}

// raw writes a free-form member in canonical form unless it is empty.
func (w *recordWriter) raw(n string, v json.RawMessage) {
	if len(v) == 0 {
		return
	}
	w.name(n)
	out, err := ijson.AppendCanonical(w.buf, v, 1)
	w.buf = out
	if err != nil && w.err == nil {
		w.err = fmt.Errorf("%s: %w", n, err)
	}
}

func (w *recordWriter) person(n string, p *Person) {
	w.name(n)
	w.open()
	w.str("id", p.ID)
	w.str("issuer", p.Issuer)
	w.close()
}

func (w *recordWriter) record(r *Record) {
	w.open()
	w.name("action")
	w.open()
	w.str("target", r.Action.Target)
	w.str("type", r.Action.Type)
	w.close()

	w.name("agent")
	w.open()
	w.str("id", r.Agent.ID)
	if m := r.Agent.Model; m != nil {
		w.name("model")
		w.open()
		w.opt("name", m.Name)
		w.opt("provider", m.Provider)
		w.opt("version", m.Version)
		w.close()
	}
	w.close()

	if a := r.AISystem; a != nil {
		w.name("ai_system")
		w.open()
		w.str("id", a.ID)
		w.opt("name", a.Name)
		w.opt("risk_class", a.RiskClass)
		w.opt("use_case", a.UseCase)
		w.close()
	}

	w.name("decision")
	w.open()
	w.str("effect", r.Decision.Effect)
	w.name("policy")
	w.open()
	w.str("id", r.Decision.Policy.ID)
	w.str("version", r.Decision.Policy.Version)
	w.close()
	w.opt("reason", r.Decision.Reason)
	w.close()

	if g := r.Delegation; g != nil {
		w.name("delegation")
		w.open()
		w.list("actors", g.Actors)
		w.opt("expires_at", g.ExpiresAt)
		w.opt("issued_at", g.IssuedAt)
		w.opt("issuer", g.Issuer)
		w.opt("mechanism", g.Mechanism)
		w.list("scope", g.Scope)
		w.opt("token_id", g.TokenID)
		w.close()
	}

	if h := r.HumanOversight; h != nil {
		w.name("human_oversight")
		w.open()
		w.str("outcome", h.Outcome)
		w.person("reviewer", &h.Reviewer)
		w.opt("time", h.Time)
		w.close()
	}

	w.str("id", r.ID)
	w.raw("identity_object", r.IdentityObject)
	w.opt("parent_id", r.ParentID)
	w.raw("policy_context", r.PolicyContext)
	w.opt("role", r.Role)
	w.list("safeguards", r.Safeguards)
	w.str("schema", r.Schema)

	w.name("source")
	w.open()
	w.str("id", r.Source.ID)
	w.str("type", r.Source.Type)
	w.close()

	w.str("tenant", r.Tenant)
	w.str("time", r.Time)

	if t := r.Trace; t != nil {
		w.name("trace")
		w.open()
		w.opt("span_id", t.SpanID)
		w.opt("trace_id", t.TraceID)
		w.close()
	}

	w.person("user", &r.User)
	w.close()
}

// sizeHint estimates the canonical size so that Canonical allocates once in the common case.
func (r *Record) sizeHint() int {
	n := 320 + len(r.Schema) + len(r.ID) + len(r.Time) + len(r.Tenant) + len(r.Source.ID) +
		len(r.Source.Type) + len(r.User.ID) + len(r.User.Issuer) + len(r.Agent.ID) + len(r.Role) +
		len(r.Action.Type) + len(r.Action.Target) + len(r.Decision.Effect) + len(r.Decision.Reason) +
		len(r.Decision.Policy.ID) + len(r.Decision.Policy.Version) + len(r.PolicyContext) +
		len(r.ParentID) + len(r.IdentityObject)
	if m := r.Agent.Model; m != nil {
		n += 40 + len(m.Provider) + len(m.Name) + len(m.Version)
	}
	if g := r.Delegation; g != nil {
		n += 120 + len(g.TokenID) + len(g.Issuer) + len(g.Mechanism) + len(g.IssuedAt) + len(g.ExpiresAt)
		for _, s := range g.Scope {
			n += len(s) + 3
		}
		for _, s := range g.Actors {
			n += len(s) + 3
		}
	}
	if t := r.Trace; t != nil {
		n += 40 + len(t.TraceID) + len(t.SpanID)
	}
	if a := r.AISystem; a != nil {
		n += 60 + len(a.ID) + len(a.Name) + len(a.RiskClass) + len(a.UseCase)
	}
	if h := r.HumanOversight; h != nil {
		n += 80 + len(h.Reviewer.ID) + len(h.Reviewer.Issuer) + len(h.Outcome) + len(h.Time)
	}
	for _, s := range r.Safeguards {
		n += len(s) + 3
	}
	return n
}
