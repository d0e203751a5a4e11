package ingest

// The OPA decision-log adapter. Open Policy Agent's decision_logs plugin batches the decisions
// OPA makes and POSTs them, gzip-compressed, as a JSON array of events (EventV1 in OPA's
// v1/plugins/logs) to <service url>/logs. Pointing that service at Lineage
// (http://lineage/v1/opa/<tenant>) makes every OPA instance an enforcement point that needs no
// Lineage SDK: this file turns each event into a lineage.decision/v1 record.
//
// What OPA sends, and what the mapping uses (everything else is ignored, so that fields OPA
// adds in later versions cannot break ingest):
//
//	decision_id        → id (the idempotency key; OPA makes it a UUID)
//	timestamp          → time, normalised to UTC (OPA writes RFC 3339 in its local zone)
//	labels             → source {id: labels.id, type: "opa"}; the other labels (OPA always
//	                     adds "version", its own build version) → policy_context.opa_labels
//	path               → decision.policy.id ("lending/allow"); kept in policy_context.opa_path
//	bundles, revision  → decision.policy.version
//	result             → decision.effect and decision.reason
//	input.<IdentityPath> → user, agent, action and the optional record members
//	trace_id, span_id  → trace, unless the identity object carries its own
//	error, erased, masked, query, requested_by, batch_decision_id → checks, policy_context
//	(metrics, nd_builtin_cache, intermediate_results, mapped_result, req_id, rule_labels,
//	request_context, custom are not used)
//
// The record is then built as JSON and passed through lineage.DecodeRecord, so an OPA decision
// is held to exactly the contract a record published directly is held to (strict types, no
// unknown members, size and depth limits, value rules), with the same reason codes.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	lineage "github.com/lineage-audit/lineage"
)

// ReasonOPAUnmappable is the quarantine reason of a well-formed OPA decision event that cannot
// become a decision record: it lacks what a record requires (a decision id, a timestamp, the
// identity object, a result Lineage can read as an effect) or it records a failed evaluation.
// Events that are not JSON objects, or not I-JSON, are invalid_json; problems inside the
// identity object carry the record decoder's codes (missing_field, wrong_type, unknown_field,
// invalid_value, too_large), with Field naming the member in the OPA event.
const ReasonOPAUnmappable = "opa_unmappable"

// Limits of the OPA adapter.
const (
	// MaxOPAEvents bounds the events in one upload. OPA cuts uploads by compressed size (32 KiB
	// by default, upload_size_limit_bytes), so real uploads hold tens to hundreds of events; the
	// bound only stops a hostile or misconfigured client from making one request cost unbounded
	// work and memory.
	MaxOPAEvents = 10_000
	// MaxOPAEventSize bounds one event's JSON. An event carries OPA's whole input and result, so
	// it may be far larger than the record made from it; anything beyond this cannot produce a
	// record within lineage.MaxRecordSize plus the parts of the event the mapping ignores.
	MaxOPAEventSize = 1 << 20
	// DefaultOPAIdentityPath is where the identity object sits in OPA's input by default.
	DefaultOPAIdentityPath = "lineage"
	// OPASourceType is the source.type of every record made from an OPA decision.
	OPASourceType = "opa"
	// maxInlineResult is the largest result (canonical bytes) copied into policy_context; a
	// larger one is represented by its size and SHA-256, keeping policy_context well within
	// lineage.MaxFreeFormSize.
	maxInlineResult = 4 << 10
)

// ErrTooManyOPAEvents is returned (wrapped) by ParseOPAEvents for an upload of more than
// MaxOPAEvents events, so that the HTTP handler can answer 413 rather than 400.
var ErrTooManyOPAEvents = errors.New("too many decision events in one upload")

// OPAConfig says where the identity object sits in OPA's input.
type OPAConfig struct {
	// IdentityPath is the dotted path inside the decision's `input` holding the identity object
	// (default "lineage"): an object with user{id,issuer}, agent{id, model?}, action{type,target},
	// and optional role, delegation, parent_id, ai_system, human_oversight, safeguards, trace and
	// identity_object — the same shapes as lineage.Record. Member names containing a dot cannot
	// be addressed.
	IdentityPath string
}

// Check reports a malformed IdentityPath, so that a daemon refuses a bad flag at start-up
// instead of quarantining every decision OPA sends.
func (c OPAConfig) Check() error {
	for _, s := range c.path() {
		if s == "" {
			return fmt.Errorf("ingest: opa identity path %q: empty segment", c.IdentityPath)
		}
	}
	return nil
}

func (c OPAConfig) path() []string {
	if c.IdentityPath == "" {
		return []string{DefaultOPAIdentityPath}
	}
	return strings.Split(c.IdentityPath, ".")
}

// ParseOPAEvents splits a decision-log upload (a JSON array of events, already decompressed)
// into raw events. It fails only on what makes the upload as a whole unreadable: anything but
// one JSON array, a syntax error, or more than MaxOPAEvents events. Each element is returned
// as it was sent, whatever its type: judging events one by one (MapOPAEvent) lets one bad
// event be quarantined while its neighbours are logged.
func ParseOPAEvents(body []byte) ([]json.RawMessage, error) {
	d := json.NewDecoder(bytes.NewReader(body))
	tok, err := d.Token()
	if err != nil {
		return nil, fmt.Errorf("ingest: opa upload: %w", err)
	}
	if delim, ok := tok.(json.Delim); !ok || delim != '[' {
		return nil, fmt.Errorf("ingest: opa upload: want a JSON array of decision events, got %s", tokenKind(tok))
	}
	events := []json.RawMessage{}
	for d.More() {
		if len(events) == MaxOPAEvents {
			return nil, fmt.Errorf("ingest: opa upload: %w (the limit is %d)", ErrTooManyOPAEvents, MaxOPAEvents)
		}
		var ev json.RawMessage
		if err := d.Decode(&ev); err != nil {
			return nil, fmt.Errorf("ingest: opa upload: event %d: %w", len(events), err)
		}
		events = append(events, ev)
	}
	if _, err := d.Token(); err != nil { // the closing ']'
		return nil, fmt.Errorf("ingest: opa upload: after event %d: %w", len(events), err)
	}
	if tok, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("ingest: opa upload: data after the array (%s)", tokenKind(tok))
	}
	return events, nil
}

func tokenKind(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			return "an object"
		}
		return strconv.Quote(t.String())
	case string:
		return "a string"
	case float64, json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", tok)
}

// identityMembers are the record members an identity object may set. The rest (schema, id,
// time, tenant, source, decision, policy_context) come from the decision event itself: an
// input must not be able to claim a different decision, time or id than OPA logged.
var identityMembers = map[string]bool{
	"user": true, "agent": true, "action": true, "role": true, "delegation": true,
	"parent_id": true, "ai_system": true, "human_oversight": true, "safeguards": true,
	"trace": true, "identity_object": true,
}

// MapOPAEvent maps one OPA decision event to a decision record for tenant, or says why it cannot
// (a *Rejection with a Code such as ReasonOPAUnmappable and a precise Detail and Field; Field is
// the path of the offending member in the event, such as "input.lineage.user.id").
//
// The event must be I-JSON (no duplicate member names, valid UTF-8): two JSON parsers must not
// be able to read two different decisions from the bytes an auditor may later compare with
// the record. Result mapping (see opaEffect): true/false, an object with a boolean "allow", or
// an object with a string "effect" of allow, deny, modify or escalate (and an optional string
// "reason"); an undefined result or any other shape is unmappable rather than guessed, because
// only the enforcement point knows how it read an undefined decision.
func MapOPAEvent(ev json.RawMessage, tenant string, cfg OPAConfig) (*lineage.Record, *Rejection) {
	if len(ev) > MaxOPAEventSize {
		return nil, &Rejection{Code: lineage.CodeTooLarge,
			Detail: fmt.Sprintf("OPA decision event is %d bytes, the limit is %d", len(ev), MaxOPAEventSize)}
	}
	// Canonicalize is used as the I-JSON check of the whole event; its output is not needed.
	if _, err := lineage.Canonicalize(ev); err != nil {
		return nil, &Rejection{Code: lineage.CodeInvalidJSON, Detail: "OPA decision event: " + err.Error()}
	}
	var e opaFields
	if t := bytes.TrimSpace(ev); t[0] != '{' || json.Unmarshal(t, &e) != nil {
		return nil, &Rejection{Code: lineage.CodeInvalidJSON,
			Detail: "an OPA decision event must be a JSON object, got " + kindOfJSON(ev)}
	}
	m := mapper{ev: e, tenant: tenant, cfg: cfg}
	return m.run()
}

// opaFields is an event's top-level members, matched by exact name (encoding/json would match
// struct fields case-insensitively, so "Decision_ID" could stand in for "decision_id").
type opaFields map[string]json.RawMessage

// get returns a member's value, or nil when it is absent or null (OPA writes "labels": null
// when an instance has none).
func (f opaFields) get(name string) json.RawMessage {
	v := f[name]
	if len(v) == 0 || string(v) == "null" {
		return nil
	}
	return v
}

// mapper holds one event on its way to a record.
type mapper struct {
	ev     opaFields
	tenant string
	cfg    OPAConfig
	erased []string
	masked []string
}

func unmappable(field, format string, args ...any) *Rejection {
	return &Rejection{Code: ReasonOPAUnmappable, Field: field, Detail: fmt.Sprintf(format, args...)}
}

func wrongType(field, want string, v json.RawMessage) *Rejection {
	return &Rejection{Code: lineage.CodeWrongType, Field: field,
		Detail: fmt.Sprintf("OPA event member %s: expected %s, got %s", field, want, kindOfJSON(v))}
}

// str reads an optional string member of the event.
func (m *mapper) str(name string) (string, *Rejection) {
	v := m.ev.get(name)
	if v == nil {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", wrongType(name, "a string", v)
	}
	return s, nil
}

// required reads a string member the record cannot do without.
func (m *mapper) required(name, why string) (string, *Rejection) {
	s, rej := m.str(name)
	if rej == nil && s == "" {
		rej = unmappable(name, "the OPA event has no %s: %s", name, why)
	}
	return s, rej
}

func (m *mapper) stringList(name string) ([]string, *Rejection) {
	v := m.ev.get(name)
	if v == nil {
		return nil, nil
	}
	var out []string
	if err := json.Unmarshal(v, &out); err != nil {
		return nil, wrongType(name, "an array of strings", v)
	}
	return out, nil
}

func (m *mapper) run() (*lineage.Record, *Rejection) {
	id, rej := m.required("decision_id", "it becomes the record id, Lineage's idempotency key")
	if rej != nil {
		return nil, rej
	}
	when, rej := m.timestamp()
	if rej != nil {
		return nil, rej
	}
	labels, rej := m.labels()
	if rej != nil {
		return nil, rej
	}
	if m.erased, rej = m.stringList("erased"); rej != nil {
		return nil, rej
	}
	if m.masked, rej = m.stringList("masked"); rej != nil {
		return nil, rej
	}
	path, rej := m.policyPath()
	if rej != nil {
		return nil, rej
	}
	version, rej := m.policyVersion()
	if rej != nil {
		return nil, rej
	}
	if e := m.ev.get("error"); e != nil {
		code, text := opaError(e)
		if code == opaUndefined {
			return nil, unmappable("error", "the decision is undefined (%s); only the enforcement point knows whether it treated that as a deny", text)
		}
		return nil, unmappable("error", "OPA failed to evaluate the decision, so it made none: %s", text)
	}
	result := m.ev["result"]
	if len(result) == 0 {
		return nil, unmappable("result", "the decision is undefined (OPA logged no result); only the enforcement point knows whether it treated that as a deny%s", m.erasedNote("/result"))
	}
	effect, reason, rej := opaEffect(result)
	if rej != nil {
		return nil, rej
	}
	identity, rej := m.identity()
	if rej != nil {
		return nil, rej
	}
	pc, rej := m.policyContext(labels, result)
	if rej != nil {
		return nil, rej
	}

	// The record as JSON: the identity object's members plus the members mapped from the event.
	// Names cannot collide: identity() only lets identityMembers through.
	members := make(map[string]json.RawMessage, len(identity)+8)
	for k, v := range identity {
		members[k] = v
	}
	members["schema"] = jsonString(lineage.SchemaV1)
	members["id"] = jsonString(id)
	members["time"] = jsonString(when)
	members["tenant"] = jsonString(m.tenant)
	members["source"] = mustMarshal(lineage.Source{ID: labels.id, Type: OPASourceType})
	members["decision"] = mustMarshal(lineage.Decision{Effect: effect, Reason: reason,
		Policy: lineage.Policy{ID: path, Version: version}})
	members["policy_context"] = pc
	traceFromEvent := false
	if t, ok := members["trace"]; !ok || string(t) == "null" {
		if t, rej := m.trace(); rej != nil {
			return nil, rej
		} else if t != nil {
			members["trace"], traceFromEvent = mustMarshal(t), true
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(members); err != nil {
		// The identity members passed the I-JSON check, so this is not expected.
		return nil, &Rejection{Code: lineage.CodeInvalidJSON, Detail: "building the record: " + err.Error()}
	}
	rec, err := lineage.DecodeRecord(bytes.TrimSpace(buf.Bytes()))
	if err == nil {
		// DecodeRecord has validated; Validate also checks the record as a Go value, which is
		// what the caller will canonicalize and publish.
		err = rec.Validate()
	}
	if err != nil {
		return nil, m.recordError(err, traceFromEvent)
	}
	return rec, nil
}

// timestamp returns the event time in UTC. OPA writes Go's time.Time JSON form: RFC 3339 with
// nanoseconds in the zone of the OPA host; the ledger gets one zone so that times sort and
// compare as strings.
func (m *mapper) timestamp() (string, *Rejection) {
	s, rej := m.required("timestamp", "it becomes the record time")
	if rej != nil {
		return "", rej
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return "", &Rejection{Code: lineage.CodeInvalidValue, Field: "timestamp",
			Detail: "OPA event timestamp is not RFC 3339: " + err.Error()}
	}
	return t.UTC().Format(time.RFC3339Nano), nil
}

// opaLabels is the event's labels: id names the OPA instance (the record's source), the others
// (OPA's build version, and whatever the operator configured) go to policy_context.
type opaLabels struct {
	id    string
	other map[string]string
}

func (m *mapper) labels() (opaLabels, *Rejection) {
	v := m.ev.get("labels")
	var raw map[string]json.RawMessage
	if v != nil && (v[0] != '{' || json.Unmarshal(v, &raw) != nil) {
		return opaLabels{}, wrongType("labels", "an object", v)
	}
	l := opaLabels{other: make(map[string]string, len(raw))}
	for k, rv := range raw {
		var s string
		if rv[0] != '"' || json.Unmarshal(rv, &s) != nil {
			return opaLabels{}, wrongType("labels."+k, "a string", rv)
		}
		if k == "id" {
			l.id = s
		} else {
			l.other[k] = s
		}
	}
	if l.id == "" {
		return opaLabels{}, unmappable("labels.id", "the OPA event has no labels.id: it names the OPA instance, the record's source (OPA sets it unless its configuration removes it)")
	}
	return l, nil
}

// policyPath returns the decision's path as the policy id. OPA's REST API logs "lending/allow"
// for POST /v1/data/lending/allow; the Go SDK logs the path as the caller spelt it, possibly
// "/lending/allow". Slashes at the ends are dropped so both name the same policy; the path as
// logged stays in policy_context.opa_path. Ad-hoc queries (a "query" and no path) name no
// policy and are unmappable.
func (m *mapper) policyPath() (string, *Rejection) {
	path, rej := m.str("path")
	if rej != nil {
		return "", rej
	}
	if p := strings.Trim(path, "/"); p != "" {
		return p, nil
	}
	if q, _ := m.str("query"); q != "" {
		return "", unmappable("path", "the event is an ad-hoc query (%.80q), not a decision of a named policy", q)
	}
	if path != "" {
		return "", unmappable("path", "the decision path %q names no policy", path)
	}
	return "", unmappable("path", "the OPA event has no path: it becomes the policy id")
}

// policyVersion says which policy code made the decision: the revision of the bundle OPA
// evaluated, or with several bundles "name@revision" for each, sorted by name ("unknown" for
// a bundle without a revision); then the deprecated single "revision" member of older OPAs;
// else "unknown".
//
// labels.version is deliberately not used: OPA always overwrites that label with its own build
// version (v1/config/validate.rego), so it would record "1.22.2" as the version of every
// policy. It is kept in policy_context.opa_labels.
func (m *mapper) policyVersion() (string, *Rejection) {
	if v := m.ev.get("bundles"); v != nil {
		var bundles map[string]json.RawMessage
		if v[0] != '{' || json.Unmarshal(v, &bundles) != nil {
			return "", wrongType("bundles", "an object", v)
		}
		names := make([]string, 0, len(bundles))
		revs := make(map[string]string, len(bundles))
		for name, b := range bundles {
			var info opaFields
			if b[0] != '{' || json.Unmarshal(b, &info) != nil {
				return "", wrongType("bundles."+name, "an object", b)
			}
			rev := ""
			if r := info.get("revision"); r != nil && (r[0] != '"' || json.Unmarshal(r, &rev) != nil) {
				return "", wrongType("bundles."+name+".revision", "a string", r)
			}
			if rev == "" {
				rev = "unknown"
			}
			names = append(names, name)
			revs[name] = rev
		}
		slices.Sort(names)
		switch len(names) {
		case 0:
		case 1:
			return revs[names[0]], nil
		default:
			parts := make([]string, len(names))
			for i, n := range names {
				parts[i] = n + "@" + revs[n]
			}
			return strings.Join(parts, ","), nil
		}
	}
	rev, rej := m.str("revision")
	if rej != nil || rev != "" {
		return rev, rej
	}
	return "unknown", nil
}

// opaEffect reads a decision result as an effect and an optional reason.
func opaEffect(result json.RawMessage) (effect, reason string, rej *Rejection) {
	switch string(result) {
	case "true":
		return lineage.EffectAllow, "", nil
	case "false":
		return lineage.EffectDeny, "", nil
	}
	var obj map[string]json.RawMessage
	if result[0] != '{' || json.Unmarshal(result, &obj) != nil {
		return "", "", unmappable("result", "the result is %s; Lineage reads a boolean, or an object with a boolean \"allow\" or a string \"effect\"", kindOfJSON(result))
	}
	hasAllow := len(obj["allow"]) > 0
	var allow bool
	if hasAllow {
		if err := json.Unmarshal(obj["allow"], &allow); err != nil {
			return "", "", unmappable("result.allow", "result.allow is %s, not a boolean", kindOfJSON(obj["allow"]))
		}
	}
	if raw := obj["effect"]; len(raw) > 0 {
		if err := json.Unmarshal(raw, &effect); err != nil {
			return "", "", unmappable("result.effect", "result.effect is %s, not a string", kindOfJSON(raw))
		}
		switch effect {
		case lineage.EffectAllow, lineage.EffectDeny, lineage.EffectModify, lineage.EffectEscalate:
		default:
			return "", "", unmappable("result.effect", "result.effect %.64q is not allow, deny, modify or escalate", effect)
		}
		// A result carrying both must not contradict itself: modify is a kind of allow,
		// escalate a kind of not-(yet)-allowed.
		permits := effect == lineage.EffectAllow || effect == lineage.EffectModify
		if hasAllow && allow != permits {
			return "", "", unmappable("result", "result.allow is %t but result.effect is %q: the decision contradicts itself", allow, effect)
		}
	} else if hasAllow {
		effect = lineage.EffectDeny
		if allow {
			effect = lineage.EffectAllow
		}
	} else {
		return "", "", unmappable("result", "the result object has neither a boolean \"allow\" nor a string \"effect\"")
	}
	// A reason of another shape (a set of messages, say) is not guessed at; the result itself
	// stays in policy_context.
	if raw := obj["reason"]; len(raw) > 0 && raw[0] == '"' {
		if err := json.Unmarshal(raw, &reason); err != nil {
			return "", "", unmappable("result.reason", "result.reason is not a valid string")
		}
	}
	return effect, reason, nil
}

// identity finds the identity object at IdentityPath in the input and returns its members.
func (m *mapper) identity() (map[string]json.RawMessage, *Rejection) {
	segs := m.cfg.path()
	where := "input"
	cur := m.ev.get("input")
	if cur == nil {
		if slices.Contains(m.erased, "/input") {
			return nil, unmappable("input", "OPA's decision-log mask erased the whole input (erased: /input), and with it the identity object at input.%s", strings.Join(segs, "."))
		}
		return nil, unmappable("input", "the OPA event has no input, so no identity object at input.%s", strings.Join(segs, "."))
	}
	for _, seg := range segs {
		var obj map[string]json.RawMessage
		if cur[0] != '{' || json.Unmarshal(cur, &obj) != nil {
			return nil, unmappable(where, "%s is %s, not an object holding the identity object", where, kindOfJSON(cur))
		}
		where += "." + seg
		next, ok := obj[seg]
		if !ok || string(next) == "null" {
			return nil, unmappable(where, "the input has no identity object at %s (OPAConfig.IdentityPath %q)%s", where, strings.Join(segs, "."), m.erasedNote(identityPointer(segs)))
		}
		cur = next
	}
	var members map[string]json.RawMessage
	if cur[0] != '{' || json.Unmarshal(cur, &members) != nil {
		return nil, wrongType(where, "an object", cur)
	}
	for _, name := range slices.Sorted(maps.Keys(members)) {
		if !identityMembers[name] {
			why := "is not a member of the identity object"
			if name == "id" || name == "time" || name == "tenant" || name == "source" || name == "decision" || name == "schema" || name == "policy_context" {
				why = "comes from the OPA decision event and the ingest URL, not from the input"
			}
			return nil, &Rejection{Code: lineage.CodeUnknownField, Field: where + "." + name,
				Detail: fmt.Sprintf("%s.%s %s (allowed: action, agent, ai_system, delegation, human_oversight, identity_object, parent_id, role, safeguards, trace, user)", where, name, why)}
		}
	}
	return members, nil
}

// identityPointer is the JSON pointer (RFC 6901) of the identity object, the form OPA uses in
// "erased" and "masked".
func identityPointer(segs []string) string {
	r := strings.NewReplacer("~", "~0", "/", "~1")
	var b strings.Builder
	b.WriteString("/input")
	for _, s := range segs {
		b.WriteString("/" + r.Replace(s))
	}
	return b.String()
}

// erasedNote explains a missing member by the decision-log mask, when the mask erased it or a
// part of it.
func (m *mapper) erasedNote(ptr string) string {
	for _, e := range m.erased {
		if e == ptr || strings.HasPrefix(ptr, e+"/") || strings.HasPrefix(e, ptr+"/") {
			return fmt.Sprintf("; OPA's decision-log mask erased %s", e)
		}
	}
	return ""
}

// trace is the event's own trace context (OPA's OpenTelemetry span), used when the identity
// object carries none.
func (m *mapper) trace() (*lineage.Trace, *Rejection) {
	tid, rej := m.str("trace_id")
	if rej != nil {
		return nil, rej
	}
	sid, rej := m.str("span_id")
	if rej != nil {
		return nil, rej
	}
	if tid == "" && sid == "" {
		return nil, nil
	}
	return &lineage.Trace{TraceID: tid, SpanID: sid}, nil
}

// opaContext is the policy_context of a record made from an OPA decision: what an auditor needs
// to find the decision in OPA's own logs and to see whether OPA redacted what it logged. It is
// bounded: a large result is represented by its size and digest.
type opaContext struct {
	Path            string            `json:"opa_path,omitempty"`
	Query           string            `json:"opa_query,omitempty"`
	Labels          map[string]string `json:"opa_labels,omitempty"`
	Result          json.RawMessage   `json:"opa_result,omitempty"`
	ResultSize      int               `json:"opa_result_size,omitempty"`
	ResultSHA256    string            `json:"opa_result_sha256,omitempty"`
	Erased          []string          `json:"opa_erased,omitempty"`
	Masked          []string          `json:"opa_masked,omitempty"`
	RequestedBy     string            `json:"opa_requested_by,omitempty"`
	BatchDecisionID string            `json:"opa_batch_decision_id,omitempty"`
}

// policyContext builds policy_context. The result is stored in canonical (RFC 8785) form, which
// is what the ledger would commit to anyway, and which makes opa_result_sha256 reproducible
// from OPA's own log by anyone holding it.
func (m *mapper) policyContext(labels opaLabels, result json.RawMessage) (json.RawMessage, *Rejection) {
	c := opaContext{Labels: labels.other, Erased: m.erased, Masked: m.masked}
	var rej *Rejection
	if c.Path, rej = m.str("path"); rej != nil {
		return nil, rej
	}
	if c.Query, rej = m.str("query"); rej != nil {
		return nil, rej
	}
	if c.RequestedBy, rej = m.str("requested_by"); rej != nil {
		return nil, rej
	}
	if c.BatchDecisionID, rej = m.str("batch_decision_id"); rej != nil {
		return nil, rej
	}
	canon, err := lineage.Canonicalize(result)
	if err != nil { // the whole event passed the same check
		return nil, &Rejection{Code: lineage.CodeInvalidJSON, Field: "result", Detail: err.Error()}
	}
	if len(canon) <= maxInlineResult {
		c.Result = canon
	} else {
		sum := sha256.Sum256(canon)
		c.ResultSize, c.ResultSHA256 = len(canon), hex.EncodeToString(sum[:])
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		return nil, &Rejection{Code: lineage.CodeInvalidJSON, Field: "result", Detail: "building policy_context: " + err.Error()}
	}
	return bytes.TrimSpace(buf.Bytes()), nil
}

// recordError turns a decoder error about the built record into a Rejection whose Field names
// where the offending value came from in the OPA event.
func (m *mapper) recordError(err error, traceFromEvent bool) *Rejection {
	var de *lineage.DecodeError
	if !errors.As(err, &de) {
		return &Rejection{Code: ReasonInvalid, Detail: err.Error()}
	}
	field := m.eventField(de.Field, traceFromEvent)
	detail := "the record made from the event: " + de.Msg
	if field != "" {
		detail = field + ": " + de.Msg
	}
	if de.Field != "" && de.Field != field {
		detail += " (record member " + de.Field + ")"
	}
	return &Rejection{Code: de.Code, Field: field, Detail: detail + m.erasedNote(fieldPointer(field))}
}

// eventField maps a record member path to the OPA event member it was made from.
func (m *mapper) eventField(field string, traceFromEvent bool) string {
	top, rest, _ := strings.Cut(field, ".")
	if i := strings.IndexByte(top, '['); i >= 0 {
		top = top[:i]
	}
	switch top {
	case "":
		return ""
	case "id":
		return "decision_id"
	case "time":
		return "timestamp"
	case "tenant":
		return "tenant"
	case "source":
		return "labels.id"
	case "policy_context":
		return "policy_context"
	case "decision":
		switch rest {
		case "policy.id":
			return "path"
		case "policy.version":
			return "bundles"
		case "reason":
			return "result.reason"
		}
		return "result"
	case "trace":
		if traceFromEvent {
			if rest == "span_id" {
				return "span_id"
			}
			return "trace_id"
		}
	}
	return "input." + strings.Join(m.cfg.path(), ".") + "." + field
}

// fieldPointer turns a dotted event path into a JSON pointer, for matching against "erased".
func fieldPointer(field string) string {
	if i := strings.IndexByte(field, '['); i >= 0 {
		field = field[:i]
	}
	return "/" + strings.ReplaceAll(field, ".", "/")
}

// opaUndefined is the error code OPA's Go SDK logs for an undefined decision (OPA's REST API
// logs such a decision without a result instead).
const opaUndefined = "opa_undefined_error"

// opaError extracts the code and message of the error OPA logged (an object with code and
// message for evaluation errors), the text bounded for the quarantine header.
func opaError(raw json.RawMessage) (code, text string) {
	var e struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &e) == nil && e.Message != "" {
		text = e.Message
		if e.Code != "" {
			text = e.Code + ": " + text
		}
		return e.Code, truncate(text, 512)
	}
	return "", truncate(string(raw), 256)
}

// truncate cuts s to at most n bytes on a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func jsonString(s string) json.RawMessage { return mustMarshal(s) }

// mustMarshal encodes values whose encoding cannot fail (strings and structs of strings;
// invalid UTF-8 becomes U+FFFD, which the I-JSON check of the event has excluded anyway).
func mustMarshal(v any) json.RawMessage {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("ingest: opa: marshal " + fmt.Sprintf("%T", v) + ": " + err.Error())
	}
	return bytes.TrimSpace(buf.Bytes())
}

// kindOfJSON names the JSON type of a value, for error messages.
func kindOfJSON(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
