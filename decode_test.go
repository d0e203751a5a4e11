package lineage

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// minimal is the smallest valid record: every required member, nothing else.
const minimal = `{"schema":"lineage.decision/v1","id":"r1","time":"2026-03-02T09:14:07Z","tenant":"acme",` +
	`"source":{"id":"gw","type":"ai-gateway"},"user":{"id":"u1","issuer":"https://idp"},"agent":{"id":"agent-1"},` +
	`"action":{"type":"tool.call","target":"crm"},"decision":{"effect":"allow","policy":{"id":"p","version":"1"}}}`

// with returns minimal with members appended.
func with(members string) string { return minimal[:len(minimal)-1] + "," + members + "}" }

// edit returns minimal with old replaced by new; it panics if old is absent so a typo in a test
// case cannot silently test the valid record.
func edit(old, new string) string {
	if !strings.Contains(minimal, old) {
		panic("edit: " + old + " not in minimal")
	}
	return strings.Replace(minimal, old, new, 1)
}

func strs(s string, n int) string {
	items := make([]string, n)
	for i := range items {
		items[i] = `"` + s + `"`
	}
	return "[" + strings.Join(items, ",") + "]"
}

// nums returns a JSON array of n copies of the number literal lit.
func nums(lit string, n int) string {
	return "[" + strings.TrimSuffix(strings.Repeat(lit+",", n), ",") + "]"
}

// nest returns n nested arrays.
func nest(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }

// indexPath returns "[0]" n times.
func indexPath(n int) string { return strings.Repeat("[0]", n) }

func TestDecodeRecordErrors(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	manyKeys := func(n int, dup string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := 0; i < n; i++ {
			b.WriteString(`"k` + strings.Repeat("x", i) + `":1,`)
		}
		b.WriteString(`"` + dup + `":2}`)
		return b.String()
	}
	tests := []struct {
		name  string
		in    string
		code  string
		field string
	}{
		// too_large
		{"too large", minimal + strings.Repeat(" ", MaxRecordSize-len(minimal)+1), CodeTooLarge, ""},
		// 1e20 is 4 bytes in, 21 bytes canonical: 6 KB of input become 26 KB in the ledger.
		{"canonical too large", with(`"policy_context":{"a":` + nums("1e20", 600) + `},"identity_object":{"b":` + nums("1e20", 600) + `},` +
			`"safeguards":` + strs(long(2000), 25)), CodeTooLarge, ""},

		// too_deep: the record is depth 1, policy_context depth 2, so 31 arrays reach depth 33.
		{"too deep", with(`"policy_context":{"a":` + nest(31) + `}`), CodeTooDeep, "policy_context.a" + indexPath(30)},
		{"too deep objects", with(`"policy_context":` + strings.Repeat(`{"a":`, 32) + `1` + strings.Repeat("}", 32)), CodeTooDeep, "policy_context" + strings.Repeat(".a", 31)},

		// invalid_json
		{"empty", "", CodeInvalidJSON, ""},
		{"whitespace only", " \n", CodeInvalidJSON, ""},
		{"array", `[` + minimal + `]`, CodeInvalidJSON, ""},
		{"string", `"record"`, CodeInvalidJSON, ""},
		{"truncated", minimal[:len(minimal)-1], CodeInvalidJSON, "decision"},
		{"trailing data", minimal + ` {}`, CodeInvalidJSON, ""},
		{"trailing garbage", minimal + `x`, CodeInvalidJSON, ""},
		{"trailing NUL", minimal + "\x00", CodeInvalidJSON, ""}, // found by FuzzCanonicalize
		{"only NUL", "\x00", CodeInvalidJSON, ""},
		{"byte order mark", "\xef\xbb\xbf" + minimal, CodeInvalidJSON, ""},
		{"missing colon", edit(`"tenant":`, `"tenant" `), CodeInvalidJSON, "tenant"},
		{"trailing comma", with(`"role":"x",`), CodeInvalidJSON, ""},
		{"single quotes", edit(`"r1"`, `'r1'`), CodeInvalidJSON, "id"},
		{"invalid UTF-8 in value", edit(`"crm"`, "\"cr\xffm\""), CodeInvalidJSON, "action.target"},
		{"overlong UTF-8", edit(`"crm"`, "\"\xc0\xafcrm\""), CodeInvalidJSON, "action.target"},
		{"UTF-8 surrogate", edit(`"crm"`, "\"\xed\xa0\x80\""), CodeInvalidJSON, "action.target"},
		{"invalid UTF-8 in key", with("\"r\xffle\":\"x\""), CodeInvalidJSON, ""},
		{"lone high surrogate", edit(`"crm"`, `"\ud800"`), CodeInvalidJSON, "action.target"},
		{"lone low surrogate", edit(`"crm"`, `"\udc00x"`), CodeInvalidJSON, "action.target"},
		{"reversed surrogates", edit(`"crm"`, `"\udc00\ud800"`), CodeInvalidJSON, "action.target"},
		{"raw control character", edit(`"crm"`, "\"c\nrm\""), CodeInvalidJSON, "action.target"},
		{"bad escape", edit(`"crm"`, `"\x41"`), CodeInvalidJSON, "action.target"},
		{"leading zero", with(`"policy_context":{"n":01}`), CodeInvalidJSON, "policy_context.n"},
		{"bare literal", with(`"policy_context":{"n":nul}`), CodeInvalidJSON, "policy_context.n"},
		{"NaN", with(`"policy_context":{"n":NaN}`), CodeInvalidJSON, "policy_context.n"},

		// duplicate_key
		{"duplicate top-level", with(`"id":"r2"`), CodeDuplicateKey, "id"},
		{"duplicate nested", edit(`"user":{"id":"u1"`, `"user":{"id":"u1","id":"u2"`), CodeDuplicateKey, "user.id"},
		{"duplicate by escape", with(`"\u0069d":"r2"`), CodeDuplicateKey, "id"},
		{"duplicate wins over type", with(`"id":5`), CodeDuplicateKey, "id"},
		{"duplicate in policy_context", with(`"policy_context":{"x":{"y":1,"z":[{"y":2}],"y":3}}`), CodeDuplicateKey, "policy_context.x.y"},
		{"duplicate in large object", with(`"policy_context":` + manyKeys(40, "kxxx")), CodeDuplicateKey, "policy_context.kxxx"},
		{"duplicate in identity_object", with(`"identity_object":{"sub":"a","sub":"b"}`), CodeDuplicateKey, "identity_object.sub"},

		// unknown_field
		{"unknown top-level", with(`"extra":1`), CodeUnknownField, "extra"},
		{"unknown top-level null", with(`"extra":null`), CodeUnknownField, "extra"},
		{"unknown case variant", with(`"ID":"r1"`), CodeUnknownField, "ID"},
		{"unknown in user", edit(`"issuer":"https://idp"`, `"issuer":"https://idp","email":"a@b"`), CodeUnknownField, "user.email"},
		{"unknown in policy", edit(`"version":"1"`, `"version":"1","owner":"x"`), CodeUnknownField, "decision.policy.owner"},
		{"unknown in model", edit(`"agent":{"id":"agent-1"}`, `"agent":{"id":"agent-1","model":{"size":"xl"}}`), CodeUnknownField, "agent.model.size"},
		{"unknown in delegation", with(`"delegation":{"foo":"x"}`), CodeUnknownField, "delegation.foo"},
		{"unknown in reviewer", with(`"human_oversight":{"reviewer":{"id":"e","issuer":"i","name":"n"},"outcome":"ok"}`), CodeUnknownField, "human_oversight.reviewer.name"},

		// wrong_type
		{"number id", edit(`"id":"r1"`, `"id":5`), CodeWrongType, "id"},
		{"object schema", edit(`"schema":"lineage.decision/v1"`, `"schema":{}`), CodeWrongType, "schema"},
		{"string source", edit(`"source":{"id":"gw","type":"ai-gateway"}`, `"source":"gw"`), CodeWrongType, "source"},
		{"array user", edit(`"user":{"id":"u1","issuer":"https://idp"}`, `"user":[]`), CodeWrongType, "user"},
		{"bool effect", edit(`"effect":"allow"`, `"effect":true`), CodeWrongType, "decision.effect"},
		{"string actors", with(`"delegation":{"actors":"a"}`), CodeWrongType, "delegation.actors"},
		{"number actor", with(`"delegation":{"actors":["a","b",5]}`), CodeWrongType, "delegation.actors[2]"},
		{"null actor", with(`"delegation":{"actors":["a",null]}`), CodeWrongType, "delegation.actors[1]"},
		{"number safeguard", with(`"safeguards":[1]`), CodeWrongType, "safeguards[0]"},
		{"array policy_context", with(`"policy_context":[]`), CodeWrongType, "policy_context"},
		{"string policy_context", with(`"policy_context":"x"`), CodeWrongType, "policy_context"},
		{"number identity_object", with(`"identity_object":5`), CodeWrongType, "identity_object"},
		{"array identity_object", with(`"identity_object":["x"]`), CodeWrongType, "identity_object"},
		{"bool trace", with(`"trace":true`), CodeWrongType, "trace"},
		{"number span id", with(`"trace":{"span_id":1}`), CodeWrongType, "trace.span_id"},
		{"number oversight time", with(`"human_oversight":{"reviewer":{"id":"e","issuer":"i"},"outcome":"ok","time":0}`), CodeWrongType, "human_oversight.time"},

		// missing_field
		{"missing tenant", edit(`"tenant":"acme",`, ``), CodeMissingField, "tenant"},
		{"missing source", edit(`"source":{"id":"gw","type":"ai-gateway"},`, ``), CodeMissingField, "source"},
		{"null id", edit(`"id":"r1"`, `"id":null`), CodeMissingField, "id"},
		{"null agent", edit(`"agent":{"id":"agent-1"}`, `"agent":null`), CodeMissingField, "agent"},
		{"missing user issuer", edit(`"user":{"id":"u1","issuer":"https://idp"}`, `"user":{"id":"u1"}`), CodeMissingField, "user.issuer"},
		{"null user issuer", edit(`"issuer":"https://idp"`, `"issuer":null`), CodeMissingField, "user.issuer"},
		{"missing policy version", edit(`"policy":{"id":"p","version":"1"}`, `"policy":{"id":"p"}`), CodeMissingField, "decision.policy.version"},
		{"missing policy", edit(`,"policy":{"id":"p","version":"1"}`, ``), CodeMissingField, "decision.policy"},
		{"empty action", edit(`"action":{"type":"tool.call","target":"crm"}`, `"action":{}`), CodeMissingField, "action.type"},
		{"empty ai_system", with(`"ai_system":{}`), CodeMissingField, "ai_system.id"},
		{"missing reviewer", with(`"human_oversight":{"outcome":"ok"}`), CodeMissingField, "human_oversight.reviewer"},
		{"missing reviewer issuer", with(`"human_oversight":{"reviewer":{"id":"e"},"outcome":"ok"}`), CodeMissingField, "human_oversight.reviewer.issuer"},
		{"missing outcome", with(`"human_oversight":{"reviewer":{"id":"e","issuer":"i"}}`), CodeMissingField, "human_oversight.outcome"},
		{"empty object", `{}`, CodeMissingField, "schema"},

		// invalid_value
		{"other schema", edit(`lineage.decision/v1`, `lineage.decision/v2`), CodeInvalidValue, "schema"},
		{"empty id", edit(`"id":"r1"`, `"id":""`), CodeInvalidValue, "id"},
		{"id with space", edit(`"id":"r1"`, `"id":"r 1"`), CodeInvalidValue, "id"},
		{"id with star", edit(`"id":"r1"`, `"id":"r*"`), CodeInvalidValue, "id"},
		{"id with gt", edit(`"id":"r1"`, `"id":"r>"`), CodeInvalidValue, "id"},
		{"id non-ASCII", edit(`"id":"r1"`, `"id":"r\u00e9"`), CodeInvalidValue, "id"},
		{"id too long", edit(`"id":"r1"`, `"id":"`+long(MaxIDLen+1)+`"`), CodeInvalidValue, "id"},
		{"parent_id with gt", with(`"parent_id":"a>b"`), CodeInvalidValue, "parent_id"},
		{"tenant upper case", edit(`"tenant":"acme"`, `"tenant":"Acme"`), CodeInvalidValue, "tenant"},
		{"tenant leading dash", edit(`"tenant":"acme"`, `"tenant":"-acme"`), CodeInvalidValue, "tenant"},
		{"tenant dot", edit(`"tenant":"acme"`, `"tenant":"ac.me"`), CodeInvalidValue, "tenant"},
		{"tenant too long", edit(`"tenant":"acme"`, `"tenant":"`+long(64)+`"`), CodeInvalidValue, "tenant"},
		{"time not RFC 3339", edit(`2026-03-02T09:14:07Z`, `2026-03-02 09:14:07`), CodeInvalidValue, "time"},
		{"time without zone", edit(`2026-03-02T09:14:07Z`, `2026-03-02T09:14:07`), CodeInvalidValue, "time"},
		{"bad issued_at", with(`"delegation":{"issued_at":"yesterday"}`), CodeInvalidValue, "delegation.issued_at"},
		{"bad expires_at", with(`"delegation":{"expires_at":"1700000000"}`), CodeInvalidValue, "delegation.expires_at"},
		{"bad oversight time", with(`"human_oversight":{"reviewer":{"id":"e","issuer":"i"},"outcome":"ok","time":"noon"}`), CodeInvalidValue, "human_oversight.time"},
		{"effect", edit(`"effect":"allow"`, `"effect":"maybe"`), CodeInvalidValue, "decision.effect"},
		{"effect case", edit(`"effect":"allow"`, `"effect":"ALLOW"`), CodeInvalidValue, "decision.effect"},
		{"empty optional string", with(`"role":""`), CodeInvalidValue, "role"},
		{"empty model name", edit(`"agent":{"id":"agent-1"}`, `"agent":{"id":"agent-1","model":{"name":""}}`), CodeInvalidValue, "agent.model.name"},
		{"reason too long", edit(`"version":"1"}`, `"version":"1"},"reason":"`+long(MaxStringLen+1)+`"`), CodeInvalidValue, "decision.reason"},
		{"user id too long", edit(`"id":"u1"`, `"id":"`+long(MaxPrincipalIDLen+1)+`"`), CodeInvalidValue, "user.id"},
		{"policy id too long", edit(`"id":"p"`, `"id":"`+long(MaxIDLen+1)+`"`), CodeInvalidValue, "decision.policy.id"},
		{"too many actors", with(`"delegation":{"actors":` + strs("a", MaxActors+1) + `}`), CodeInvalidValue, "delegation.actors"},
		{"empty actor", with(`"delegation":{"actors":["a","b",""]}`), CodeInvalidValue, "delegation.actors[2]"},
		{"actor too long", with(`"delegation":{"actors":["a","` + long(MaxPrincipalIDLen+1) + `"]}`), CodeInvalidValue, "delegation.actors[1]"},
		{"too many scopes", with(`"delegation":{"scope":` + strs("s", MaxScopeItems+1) + `}`), CodeInvalidValue, "delegation.scope"},
		{"too many safeguards", with(`"safeguards":` + strs("s", MaxSafeguards+1)), CodeInvalidValue, "safeguards"},
		{"empty safeguard", with(`"safeguards":[""]`), CodeInvalidValue, "safeguards[0]"},
		{"policy_context too large", with(`"policy_context":{"a":"` + long(MaxFreeFormSize) + `"}`), CodeInvalidValue, "policy_context"},
		{"identity_object too large", with(`"identity_object":"` + long(MaxFreeFormSize) + `"`), CodeInvalidValue, "identity_object"},
		{"number out of range", with(`"policy_context":{"n":1e400}`), CodeInvalidValue, "policy_context.n"},
		{"number loses precision", with(`"policy_context":{"a":[1,12345678901234567890]}`), CodeInvalidValue, "policy_context.a[1]"},
		{"number rounds", with(`"policy_context":{"n":9007199254740993}`), CodeInvalidValue, "policy_context.n"},
		{"number underflows", with(`"policy_context":{"n":1e-400}`), CodeInvalidValue, "policy_context.n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := DecodeRecord([]byte(tt.in))
			if err == nil {
				t.Fatalf("DecodeRecord succeeded (id %q), want %s at %q", r.ID, tt.code, tt.field)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T) is not a *DecodeError", err, err)
			}
			if de.Code != tt.code || de.Field != tt.field {
				t.Errorf("got %s at %q (%v), want %s at %q", de.Code, de.Field, err, tt.code, tt.field)
			}
			if !strings.HasPrefix(err.Error(), "lineage: decode: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestDecodeRecordAccepts(t *testing.T) {
	tests := []struct{ name, in string }{
		{"minimal", minimal},
		{"whitespace", " \t\n" + strings.ReplaceAll(minimal, ",", " ,\n ") + "\r\n"},
		{"nulls for optional members", with(`"role":null,"delegation":null,"policy_context":null,"parent_id":null,` +
			`"trace":null,"ai_system":null,"human_oversight":null,"safeguards":null,"identity_object":null`)},
		{"empty optional objects and lists", with(`"delegation":{},"trace":{},"safeguards":[]`)},
		{"escapes", edit(`"crm"`, `"\u0063rm\/\"\\\u00e9\ud83d\ude00"`)},
		{"escaped line breaks in prose", edit(`"version":"1"}`, `"version":"1"},"reason":"\u0063rm\/\t\"\\\u00e9\ud83d\ude00\n\r"`)},
		{"escaped known key", edit(`"tenant"`, `"\u0074enant"`)},
		{"max depth", with(`"policy_context":{"a":` + nest(30) + `}`)},
		{"max items", with(`"delegation":{"actors":` + strs("a", MaxActors) + `,"scope":` + strs("s", MaxScopeItems) + `}`)},
		{"exact numbers", with(`"policy_context":{"a":[0,-0,1.50,1E3,9007199254740992,1e21,1e-7,0.1,-2.5e-3,1e20]}`)},
		{"big integer written exactly", with(`"policy_context":{"n":1e+300}`)},
		{"time with offset and nanos", edit(`2026-03-02T09:14:07Z`, `2026-03-02T09:14:07.123456789-05:30`)},
		{"largest tenant", edit(`"tenant":"acme"`, `"tenant":"0`+strings.Repeat("a_-", 20)+`zz"`)},
		{"identity_object string", with(`"identity_object":"Bearer eyJ..."`)},
		{"identity_object object", with(`"identity_object":{"sub":"u1","act":{"sub":"agent-1"}}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := DecodeRecord([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Validate(); err != nil {
				t.Fatalf("decoded record fails Validate: %v", err)
			}
			assertStable(t, r)
		})
	}
}

// assertStable checks the invariant the ledger relies on: a decoded record's canonical form
// decodes to the same record and canonicalizes to the same bytes, and it is already JCS.
func assertStable(t *testing.T, r *Record) []byte {
	t.Helper()
	c1, err := r.Canonical()
	if err != nil {
		t.Fatalf("Canonical: %v", err)
	}
	r2, err := DecodeRecord(c1)
	if err != nil {
		t.Fatalf("DecodeRecord(Canonical()) = %v\n%s", err, c1)
	}
	if !reflect.DeepEqual(r, r2) {
		t.Fatalf("record changed on round trip:\n%+v\n%+v", r, r2)
	}
	c2, err := r2.Canonical()
	if err != nil || !bytes.Equal(c1, c2) {
		t.Fatalf("canonical form not stable (%v):\n%s\n%s", err, c1, c2)
	}
	c3, err := Canonicalize(c1)
	if err != nil || !bytes.Equal(c1, c3) {
		t.Fatalf("Canonical differs from Canonicalize (%v):\n%s\n%s", err, c1, c3)
	}
	return c1
}

func TestDecodeRecordNullOptionalIsAbsent(t *testing.T) {
	a, err := DecodeRecord([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	b, err := DecodeRecord([]byte(with(`"role":null,"delegation":null,"safeguards":null,"identity_object":null`)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("null members changed the record:\n%+v\n%+v", a, b)
	}
}

// fullRecord sets every field of the schema.
func fullRecord() *Record {
	return &Record{
		Schema: SchemaV1,
		ID:     "rec-full-1",
		Time:   "2026-03-02T09:14:07.412Z",
		Tenant: "acme-bank",
		Source: Source{ID: "gw-1", Type: "ai-gateway"},
		User:   Person{ID: "u-48213", Issuer: "https://login.example"},
		Agent: Agent{ID: "spiffe://example/ns/x/sa/planner",
			Model: &Model{Provider: "anthropic", Name: "claude", Version: "4.5"}},
		Role:   "planner",
		Action: Action{Type: "tool.call", Target: "crm.lookup <customer> & \"quotes\""},
		Decision: Decision{Effect: EffectModify, Policy: Policy{ID: "pol", Version: "v1"},
			Reason: "redacted PII\n\tline two\r\n \u2028 é 😀 \u200d"},
		Delegation: &Delegation{TokenID: "jti-1", Issuer: "https://login.example", Mechanism: "rfc8693",
			Scope: []string{"crm:read", "loans:draft"}, IssuedAt: "2026-03-02T09:10:00Z",
			ExpiresAt: "2026-03-02T10:10:00Z", Actors: []string{"agent-b", "agent-a"}},
		PolicyContext: json.RawMessage(`{"amount":25000,"nested":{"b":[true,false,null],"a":1.5}}`),
		ParentID:      "rec-full-0",
		Trace:         &Trace{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7"},
		AISystem:      &AISystem{ID: "ais-1", Name: "Lending Assistant", RiskClass: "high", UseCase: "credit"},
		HumanOversight: &HumanOversight{Reviewer: Person{ID: "emp-1", Issuer: "https://login.example"},
			Outcome: "approved", Time: "2026-03-02T09:41:12Z"},
		Safeguards:     []string{"pii-redaction", "human-in-the-loop"},
		IdentityObject: json.RawMessage(`{"sub":"u-48213","act":{"sub":"agent-a"}}`),
	}
}

func TestFullRecordRoundTrip(t *testing.T) {
	want := fullRecord()
	if err := want.Validate(); err != nil {
		t.Fatal(err)
	}
	in, err := json.MarshalIndent(want, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRecord(in)
	if err != nil {
		t.Fatal(err)
	}
	// Decoding stores the free-form members in canonical form.
	want.PolicyContext = json.RawMessage(`{"amount":25000,"nested":{"a":1.5,"b":[true,false,null]}}`)
	want.IdentityObject = json.RawMessage(`{"act":{"sub":"agent-a"},"sub":"u-48213"}`)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\ngot  %+v\nwant %+v", got, want)
	}
	canon := assertStable(t, got)

	// Canonical is exactly the JCS form of encoding/json's rendering of the struct.
	viaMarshal, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if viaMarshal, err = Canonicalize(viaMarshal); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(canon, viaMarshal) {
		t.Errorf("Canonical differs from Canonicalize(json.Marshal):\n%s\n%s", canon, viaMarshal)
	}
}

// loadRecords returns the example records in testdata/records, by file name.
func loadRecords(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("testdata/records/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no records in testdata/records: %v", err)
	}
	out := make(map[string][]byte)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

func TestExampleRecords(t *testing.T) {
	for name, data := range loadRecords(t) {
		t.Run(name, func(t *testing.T) {
			r, err := DecodeRecord(data)
			if err != nil {
				t.Fatal(err)
			}
			canon := assertStable(t, r)
			viaMarshal, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			if viaMarshal, err = Canonicalize(viaMarshal); err != nil || !bytes.Equal(canon, viaMarshal) {
				t.Errorf("Canonical differs from Canonicalize(json.Marshal) (%v):\n%s\n%s", err, canon, viaMarshal)
			}
			if _, err := r.ParsedTime(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestValidateGoRecords(t *testing.T) {
	tests := []struct {
		name   string
		modify func(r *Record)
		code   string
		field  string
	}{
		{"empty schema", func(r *Record) { r.Schema = "" }, CodeMissingField, "schema"},
		{"empty id", func(r *Record) { r.ID = "" }, CodeMissingField, "id"},
		{"empty source id", func(r *Record) { r.Source.ID = "" }, CodeMissingField, "source.id"},
		{"empty policy version", func(r *Record) { r.Decision.Policy.Version = "" }, CodeMissingField, "decision.policy.version"},
		{"empty reviewer", func(r *Record) { r.HumanOversight.Reviewer = Person{} }, CodeMissingField, "human_oversight.reviewer.id"},
		{"empty ai_system id", func(r *Record) { r.AISystem.ID = "" }, CodeMissingField, "ai_system.id"},
		{"invalid UTF-8", func(r *Record) { r.Action.Target = "a\xffb" }, CodeInvalidValue, "action.target"},
		{"invalid UTF-8 in list", func(r *Record) { r.Safeguards = []string{"ok", "\xff"} }, CodeInvalidValue, "safeguards[1]"},
		{"empty actor", func(r *Record) { r.Delegation.Actors = []string{""} }, CodeInvalidValue, "delegation.actors[0]"},
		{"bad tenant", func(r *Record) { r.Tenant = "ACME" }, CodeInvalidValue, "tenant"},
		{"bad effect", func(r *Record) { r.Decision.Effect = "permit" }, CodeInvalidValue, "decision.effect"},
		{"policy_context array", func(r *Record) { r.PolicyContext = json.RawMessage(`[1]`) }, CodeWrongType, "policy_context"},
		{"policy_context null", func(r *Record) { r.PolicyContext = json.RawMessage(`null`) }, CodeWrongType, "policy_context"},
		{"policy_context duplicate", func(r *Record) { r.PolicyContext = json.RawMessage(`{"a":{"b":1,"b":2}}`) }, CodeDuplicateKey, "policy_context.a.b"},
		{"policy_context broken", func(r *Record) { r.PolicyContext = json.RawMessage(`{"a":`) }, CodeInvalidJSON, "policy_context.a"},
		{"policy_context trailing", func(r *Record) { r.PolicyContext = json.RawMessage(`{} {}`) }, CodeInvalidJSON, "policy_context"},
		{"policy_context trailing NUL", func(r *Record) { r.PolicyContext = json.RawMessage("{}\x00") }, CodeInvalidJSON, "policy_context"},
		{"policy_context too deep", func(r *Record) { r.PolicyContext = json.RawMessage(`{"a":` + nest(31) + `}`) }, CodeTooDeep, "policy_context.a" + indexPath(30)},
		{"policy_context imprecise", func(r *Record) { r.PolicyContext = json.RawMessage(`{"n":0.1000000000000000000001}`) }, CodeInvalidValue, "policy_context.n"},
		{"identity_object number", func(r *Record) { r.IdentityObject = json.RawMessage(`42`) }, CodeWrongType, "identity_object"},
		{"record too large", func(r *Record) {
			r.Safeguards = nil
			for i := 0; i < MaxSafeguards; i++ {
				r.Safeguards = append(r.Safeguards, strings.Repeat("s", MaxStringLen))
			}
		}, CodeTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fullRecord()
			tt.modify(r)
			err := r.Validate()
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Validate() = %v, want a *DecodeError", err)
			}
			if de.Code != tt.code || de.Field != tt.field {
				t.Errorf("got %s at %q (%v), want %s at %q", de.Code, de.Field, err, tt.code, tt.field)
			}
		})
	}
}

func TestCanonicalRejectsInvalidUTF8(t *testing.T) {
	r := fullRecord()
	r.Role = "\xff"
	if _, err := r.Canonical(); err == nil {
		t.Fatal("Canonical accepted invalid UTF-8")
	}
	r = fullRecord()
	r.PolicyContext = json.RawMessage(`{"a":1}x`)
	if _, err := r.Canonical(); err == nil {
		t.Fatal("Canonical accepted trailing data in policy_context")
	}
}

func TestParsedTime(t *testing.T) {
	r := &Record{ID: "r", Time: "2026-03-02T09:14:07.5+01:00"}
	got, err := r.ParsedTime()
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 3, 2, 8, 14, 7, 5e8, time.UTC); !got.Equal(want) {
		t.Errorf("ParsedTime() = %v, want %v", got, want)
	}
	r.Time = "2026-03-02"
	if _, err := r.ParsedTime(); err == nil || !strings.Contains(err.Error(), `record "r"`) {
		t.Errorf("ParsedTime() error = %v, want one naming the record", err)
	}
}

func TestDecodeRecordDoesNotAliasInput(t *testing.T) {
	data := []byte(with(`"policy_context":{"a":"b"}`))
	r, err := DecodeRecord(data)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := r.Canonical()
	for i := range data {
		data[i] = 'x'
	}
	after, _ := r.Canonical()
	if !bytes.Equal(before, after) {
		t.Fatal("record changed when the caller reused its buffer")
	}
}

func TestDecodeRejectsTimesOutsideTheIndexableWindow(t *testing.T) {
	for _, ts := range []string{"0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "2200-01-01T00:00:00Z", "9999-12-31T23:59:59Z"} {
		raw := []byte(`{"schema":"lineage.decision/v1","id":"t1","time":"` + ts + `","tenant":"acme",` +
			`"source":{"id":"s","type":"t"},"user":{"id":"u","issuer":"i"},"agent":{"id":"a"},` +
			`"action":{"type":"x","target":"y"},"decision":{"effect":"allow","policy":{"id":"p","version":"1"}}}`)
		_, err := DecodeRecord(raw)
		var de *DecodeError
		if !errors.As(err, &de) || de.Code != CodeInvalidValue || de.Field != "time" {
			t.Errorf("time %s: err = %v, want invalid_value on time", ts, err)
		}
	}
}

// hostileID is the identity from the security report: it clears the screen and prints a red
// "FAKE OK" when a terminal shows it.
const hostileID = "eve\u001b[2J\u001b[31mFAKE OK\u001b[0m"

func TestDecodeRejectsControlCharacters(t *testing.T) {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	tests := []struct {
		name, in, field string
	}{
		{"ESC in user id", edit(`"id":"u1"`, `"id":`+q(hostileID)), "user.id"},
		{"escaped ESC in user id", edit(`"id":"u1"`, `"id":"eve\u001b[2J"`), "user.id"},
		{"newline in user id", edit(`"id":"u1"`, `"id":"eve\nOK: record acme/r1 is entry 1"`), "user.id"},
		{"carriage return in agent id", edit(`"id":"agent-1"`, `"id":"agent\rroot"`), "agent.id"},
		{"tab in user issuer", edit(`"issuer":"https://idp"`, `"issuer":"https://idp\t"`), "user.issuer"},
		{"NUL in source id", edit(`"id":"gw"`, `"id":"gw\u0000"`), "source.id"},
		{"DEL in source type", edit(`"ai-gateway"`, `"ai-gateway\u007f"`), "source.type"},
		{"C1 CSI in action target", edit(`"crm"`, `"crm\u009b2J"`), "action.target"},
		{"raw C1 NEL in action type", edit(`"tool.call"`, "\"tool\u0085call\""), "action.type"},
		{"RLO in agent id", edit(`"id":"agent-1"`, `"id":"agent-\u202egpj.exe"`), "agent.id"},
		{"RLI in user id", edit(`"id":"u1"`, `"id":"u\u20671"`), "user.id"},
		{"PDI in user id", edit(`"id":"u1"`, `"id":"u\u20691"`), "user.id"},
		{"LRM in policy id", edit(`"id":"p"`, `"id":"p\u200e"`), "decision.policy.id"},
		{"RLM in policy version", edit(`"version":"1"`, `"version":"1\u200f"`), "decision.policy.version"},
		{"ALM in tenant-like id", edit(`"id":"u1"`, `"id":"u\u061c1"`), "user.id"},
		{"zero-width space in user id", edit(`"id":"u1"`, `"id":"u\u200b1"`), "user.id"},
		{"zero-width joiner in agent id", edit(`"id":"agent-1"`, `"id":"agent\u200d-1"`), "agent.id"},
		{"BOM in user id", edit(`"id":"u1"`, `"id":"\ufeffu1"`), "user.id"},
		{"line separator in agent id", edit(`"id":"agent-1"`, `"id":"agent\u2028-1"`), "agent.id"},
		{"paragraph separator in role", with(`"role":"planner\u2029"`), "role"},
		{"tag character in user id", edit(`"id":"u1"`, `"id":"u1\udb40\udc41"`), "user.id"},
		{"ESC in record id", edit(`"id":"r1"`, `"id":"r\u001b1"`), "id"},
		{"ESC in parent id", with(`"parent_id":"r\u001b0"`), "parent_id"},
		{"newline in tenant", edit(`"tenant":"acme"`, `"tenant":"acme\n"`), "tenant"},
		{"ESC in model name", edit(`"agent":{"id":"agent-1"}`, `"agent":{"id":"agent-1","model":{"name":"c\u001b"}}`), "agent.model.name"},
		{"newline in token id", with(`"delegation":{"token_id":"jti\n1"}`), "delegation.token_id"},
		{"ESC in delegation issuer", with(`"delegation":{"issuer":"i\u001b"}`), "delegation.issuer"},
		{"RLO in scope", with(`"delegation":{"scope":["read","write\u202e"]}`), "delegation.scope[1]"},
		{"newline in actor", with(`"delegation":{"actors":["a","b\nc"]}`), "delegation.actors[1]"},
		{"ESC in trace id", with(`"trace":{"trace_id":"t\u001b"}`), "trace.trace_id"},
		{"ESC in ai_system id", with(`"ai_system":{"id":"s\u001b"}`), "ai_system.id"},
		{"ESC in reviewer id", with(`"human_oversight":{"reviewer":{"id":"e\u001b","issuer":"i"},"outcome":"ok"}`), "human_oversight.reviewer.id"},
		{"newline in outcome", with(`"human_oversight":{"reviewer":{"id":"e","issuer":"i"},"outcome":"ok\nforged"}`), "human_oversight.outcome"},
		{"ESC in safeguard", with(`"safeguards":["pii","x\u001b[0m"]`), "safeguards[1]"},
		// Prose keeps line breaks, but not escapes, other controls or bidi overrides.
		{"ESC in reason", edit(`"version":"1"}`, `"version":"1"},"reason":"ok\u001b[2J"`), "decision.reason"},
		{"backspace in reason", edit(`"version":"1"}`, `"version":"1"},"reason":"ok\b\b"`), "decision.reason"},
		{"C1 in reason", edit(`"version":"1"}`, `"version":"1"},"reason":"ok\u0090"`), "decision.reason"},
		{"RLO in ai_system name", with(`"ai_system":{"id":"s","name":"\u202eevil"}`), "ai_system.name"},
		{"LRI in use case", with(`"ai_system":{"id":"s","use_case":"\u2066x"}`), "ai_system.use_case"},
		{"ESC in policy_context value", with(`"policy_context":{"a":{"b":[1,"x\u001b[2J"]}}`), "policy_context.a.b[1]"},
		{"form feed in policy_context", with(`"policy_context":{"a":"\f"}`), "policy_context.a"},
		{"RLO in policy_context", with(`"policy_context":{"x":1,"note":"\u202e"}`), "policy_context.note"},
		{"ESC in policy_context name", with(`"policy_context":{"k":{"\u001b[2J":1}}`), "policy_context.k"},
		{"ESC in identity_object string", with(`"identity_object":"Bearer \u001b"`), "identity_object"},
		{"C1 in identity_object claim", with(`"identity_object":{"sub":"u1","act":{"sub":"\u009b"}}`), "identity_object.act.sub"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := DecodeRecord([]byte(tt.in))
			if err == nil {
				t.Fatalf("DecodeRecord accepted the record (%+v)", r)
			}
			var de *DecodeError
			if !errors.As(err, &de) || de.Code != CodeControlCharacter || de.Field != tt.field {
				t.Fatalf("got %v, want %s at %q", err, CodeControlCharacter, tt.field)
			}
			// The reason must itself be safe to show: quarantine listings print it.
			if msg := err.Error(); Printable(msg) != msg {
				t.Errorf("error message %q holds characters Printable escapes", msg)
			}
		})
	}
}

func TestDecodeAcceptsProseAndUnicode(t *testing.T) {
	for _, in := range []string{
		edit(`"version":"1"}`, `"version":"1"},"reason":"line one\nline two\r\n\ttabbed \u2028 \u200d\ud83d\udc68\u200d\ud83d\udc69"`),
		with(`"ai_system":{"id":"s","name":"Kreditprüfung Größe","use_case":"عربى و English"}`),
		with(`"policy_context":{"prompt":"a\nb\tc","name\nwith break":"\r"}`),
		edit(`"id":"u1"`, `"id":"José Ñúñez <jose@example.com>"`),
		edit(`"id":"agent-1"`, `"id":"spiffe://example/ns/x/sa/планировщик"`),
		edit(`"crm"`, `"crm.lookup <customer> & \"quotes\" \\ 😀"`),
	} {
		r, err := DecodeRecord([]byte(in))
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		assertStable(t, r)
	}
}

func TestValidateRejectsControlCharacters(t *testing.T) {
	tests := []struct {
		name   string
		modify func(r *Record)
		field  string
	}{
		{"hostile user id", func(r *Record) { r.User.ID = hostileID }, "user.id"},
		{"newline in reviewer", func(r *Record) { r.HumanOversight.Reviewer.ID = "emp-1\nemp-2" }, "human_oversight.reviewer.id"},
		{"RLO in actor", func(r *Record) { r.Delegation.Actors = []string{"a", "b\u202e"} }, "delegation.actors[1]"},
		{"C1 in reason", func(r *Record) { r.Decision.Reason = "x\u009b" }, "decision.reason"},
		{"ESC in policy_context", func(r *Record) { r.PolicyContext = json.RawMessage(`{"a":["\u001b"]}`) }, "policy_context.a[0]"},
		{"RLO in identity_object", func(r *Record) { r.IdentityObject = json.RawMessage(`"\u202e"`) }, "identity_object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fullRecord()
			tt.modify(r)
			var de *DecodeError
			if err := r.Validate(); !errors.As(err, &de) || de.Code != CodeControlCharacter || de.Field != tt.field {
				t.Fatalf("Validate() = %v, want %s at %q", err, CodeControlCharacter, tt.field)
			}
		})
	}
}

// TestDecodeLoggedReadsOlderEntries: a record logged before the character rule still decodes
// from the ledger, while every older rule still applies.
func TestDecodeLoggedReadsOlderEntries(t *testing.T) {
	q, _ := json.Marshal(hostileID)
	old := []byte(edit(`"id":"u1"`, `"id":`+string(q)))
	if _, err := DecodeRecord(old); err == nil {
		t.Fatal("DecodeRecord accepted the hostile record")
	}
	r, err := decodeLogged(old)
	if err != nil {
		t.Fatalf("decodeLogged: %v", err)
	}
	if r.User.ID != hostileID {
		t.Errorf("user.id = %q", r.User.ID)
	}
	bad := []byte(strings.Replace(string(old), `"effect":"allow"`, `"effect":"maybe"`, 1))
	var de *DecodeError
	if _, err := decodeLogged(bad); !errors.As(err, &de) || de.Code != CodeInvalidValue || de.Field != "decision.effect" {
		t.Errorf("decodeLogged of a record breaking an older rule = %v, want invalid_value at decision.effect", err)
	}
	if _, err := decodeLogged([]byte(minimal + "x")); err == nil {
		t.Error("decodeLogged accepted trailing data")
	}
	// The ledger's reader goes through decodeLogged: an entry logged before the character
	// rule still opens (and so indexes, verifies and exports).
	oldCanonical, err := r.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	e, err := DecodeEnvelope(NewEnvelope(oldCanonical, time.Unix(0, 0), false))
	if err != nil || e.Record.User.ID != hostileID {
		t.Fatalf("DecodeEnvelope of an older entry with a control character: %v", err)
	}
}
