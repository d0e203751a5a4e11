package ingest_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ingest"
)

// The fixtures in testdata/opa are decision events captured from the real OPA engine (Go SDK,
// the version in go.mod) by internal/e2e's TestOPADecisionLogFormat -update-opa-fixtures: a
// lending policy asked about an agent's tools, with a decision-log mask that erases raw
// identity headers (and the whole input of customer exports).

const opaTenant = "lending"

func readOPAFixture(t testing.TB, name string) json.RawMessage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "opa", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// opaEvent decodes a fixture into a map the malformed cases can edit; numbers stay as written.
func opaEvent(t testing.TB, name string) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(readOPAFixture(t, name)))
	d.UseNumber()
	var ev map[string]any
	if err := d.Decode(&ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func marshal(t testing.TB, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mapped checks what must hold for every record the adapter produces: it validates, its
// canonical form decodes back to the same record (what the ingester will do with it), and
// mapping the same event again gives the same bytes — OPA re-sends an upload it did not see
// acknowledged, and a second, different record under the same decision id would be an
// id_conflict instead of a duplicate.
func mapped(t testing.TB, ev json.RawMessage, cfg ingest.OPAConfig) *lineage.Record {
	t.Helper()
	rec, rej := ingest.MapOPAEvent(ev, opaTenant, cfg)
	if rej != nil {
		t.Fatalf("rejected: %+v\n%s", rej, ev)
	}
	checkMapped(t, ev, rec, cfg)
	return rec
}

func checkMapped(t testing.TB, ev json.RawMessage, rec *lineage.Record, cfg ingest.OPAConfig) {
	t.Helper()
	if err := rec.Validate(); err != nil {
		t.Fatalf("mapped record does not validate: %v", err)
	}
	canon, err := rec.Canonical()
	if err != nil {
		t.Fatalf("canonical: %v", err)
	}
	back, err := lineage.DecodeRecord(canon)
	if err != nil {
		t.Fatalf("canonical record does not decode: %v\n%s", err, canon)
	}
	if again, _ := back.Canonical(); !bytes.Equal(again, canon) {
		t.Fatalf("canonical form changed on a round trip:\n%s\n%s", canon, again)
	}
	rec2, rej := ingest.MapOPAEvent(ev, rec.Tenant, cfg)
	if rej != nil {
		t.Fatalf("second mapping rejected: %+v", rej)
	}
	if canon2, _ := rec2.Canonical(); !bytes.Equal(canon2, canon) {
		t.Fatalf("mapping is not deterministic:\n%s\n%s", canon, canon2)
	}
	if rec.Schema != lineage.SchemaV1 || rec.Source.Type != ingest.OPASourceType {
		t.Fatalf("schema %q source %+v", rec.Schema, rec.Source)
	}
}

func rejected(t testing.TB, ev json.RawMessage, cfg ingest.OPAConfig, code, field string) *ingest.Rejection {
	t.Helper()
	rec, rej := ingest.MapOPAEvent(ev, opaTenant, cfg)
	if rej == nil {
		canon, _ := rec.Canonical()
		t.Fatalf("mapped, want rejection %s at %q:\n%s", code, field, canon)
	}
	if rec != nil {
		t.Fatalf("both a record and a rejection")
	}
	if rej.Code != code || rej.Field != field || rej.Detail == "" {
		t.Fatalf("rejection %+v, want code %s field %q and a detail", rej, code, field)
	}
	return rej
}

func policyContext(t testing.TB, rec *lineage.Record) map[string]any {
	t.Helper()
	var pc map[string]any
	if err := json.Unmarshal(rec.PolicyContext, &pc); err != nil {
		t.Fatalf("policy_context: %v", err)
	}
	return pc
}

func TestParseOPAEventsCaptured(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("testdata", "opa", "upload.json"))
	if err != nil {
		t.Fatal(err)
	}
	evs, err := ingest.ParseOPAEvents(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 9 {
		t.Fatalf("%d events, want the 9 decisions of the capture", len(evs))
	}
	effects := map[string]int{}
	reasons := map[string]int{}
	for _, ev := range evs {
		rec, rej := ingest.MapOPAEvent(ev, opaTenant, ingest.OPAConfig{})
		if rej != nil {
			reasons[rej.Code+"@"+rej.Field]++
			continue
		}
		checkMapped(t, ev, rec, ingest.OPAConfig{})
		effects[rec.Decision.Effect]++
	}
	want := map[string]int{"allow": 2, "deny": 2, "escalate": 1}
	wantReasons := map[string]int{"opa_unmappable@input": 1, "opa_unmappable@input.lineage": 1, "opa_unmappable@error": 2}
	if !equalCounts(effects, want) || !equalCounts(reasons, wantReasons) {
		t.Fatalf("effects %v reasons %v, want %v and %v", effects, reasons, want, wantReasons)
	}
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestParseOPAEvents(t *testing.T) {
	many := func(n int) []byte {
		return []byte("[" + strings.TrimSuffix(strings.Repeat(`{"decision_id":"x"},`, n), ",") + "]")
	}
	tests := []struct {
		name    string
		body    []byte
		n       int
		wantErr string
	}{
		{"empty array", []byte(`[]`), 0, ""},
		{"whitespace around", []byte(" \n[ {} , 1 ,\"x\", null ]\n"), 4, ""},
		{"at the limit", many(ingest.MaxOPAEvents), ingest.MaxOPAEvents, ""},
		{"over the limit", many(ingest.MaxOPAEvents + 1), 0, "too many"},
		{"object", []byte(`{"decision_id":"x"}`), 0, "want a JSON array"},
		{"null", []byte(`null`), 0, "got null"},
		{"string", []byte(`"[]"`), 0, "got a string"},
		{"empty body", nil, 0, "EOF"},
		{"truncated", []byte(`[{"decision_id":"x"},`), 0, "event 1"},
		{"syntax error", []byte(`[{"decision_id" "x"}]`), 0, "event 0"},
		{"trailing data", []byte(`[] []`), 0, "data after the array"},
		{"unclosed", []byte(`[{}`), 0, "after event 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := ingest.ParseOPAEvents(tc.body)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				if tc.wantErr == "too many" && !errors.Is(err, ingest.ErrTooManyOPAEvents) {
					t.Fatalf("err %v is not ErrTooManyOPAEvents", err)
				}
				return
			}
			if err != nil || len(evs) != tc.n {
				t.Fatalf("%d events, err %v; want %d", len(evs), err, tc.n)
			}
		})
	}
}

// TestMapOPAEventCaptured maps every captured kind of decision.
func TestMapOPAEventCaptured(t *testing.T) {
	const version = "lending@lending-policy-2026.07.3,tools@tools-41"
	tests := []struct {
		fixture, effect, policy, reason string
	}{
		{"allow-boolean", "allow", "lending/allow", ""},
		{"deny-boolean", "deny", "lending/allow", ""},
		{"allow-object-masked", "allow", "lending/decision", "tool credit.score is on the lending allow-list"},
		{"escalate-object", "escalate", "lending/decision", "tool loan.approve needs a loan officer's review"},
		{"deny-object", "deny", "lending/decision", "tool wire.transfer is not on the lending allow-list"},
	}
	for _, tc := range tests {
		t.Run(tc.fixture, func(t *testing.T) {
			ev := readOPAFixture(t, tc.fixture)
			rec := mapped(t, ev, ingest.OPAConfig{})
			raw := opaEvent(t, tc.fixture)
			want := lineage.Decision{Effect: tc.effect, Reason: tc.reason, Policy: lineage.Policy{ID: tc.policy, Version: version}}
			if rec.Decision != want {
				t.Errorf("decision %+v, want %+v", rec.Decision, want)
			}
			if rec.ID != raw["decision_id"] || rec.Time != raw["timestamp"] || rec.Tenant != opaTenant {
				t.Errorf("id %s time %s tenant %s; event %v %v", rec.ID, rec.Time, rec.Tenant, raw["decision_id"], raw["timestamp"])
			}
			if rec.Source != (lineage.Source{ID: "opa-lending-1", Type: "opa"}) {
				t.Errorf("source %+v", rec.Source)
			}
			if rec.User.Issuer != "https://login.bank.example" || rec.Agent.Model == nil || rec.Agent.Model.Provider != "anthropic" ||
				rec.Role != "loan-officer" || rec.Delegation == nil || rec.Delegation.Mechanism != "rfc8693" ||
				rec.AISystem == nil || rec.AISystem.RiskClass != "high" || len(rec.Safeguards) != 1 {
				t.Errorf("identity not carried over: %+v", rec)
			}
			pc := policyContext(t, rec)
			labels, _ := pc["opa_labels"].(map[string]any)
			if pc["opa_path"] != tc.policy || labels["version"] != "1.22.2" || labels["environment"] != "e2e" || labels["id"] != nil {
				t.Errorf("policy_context %v", pc)
			}
			if pc["opa_result"] == nil {
				t.Errorf("small result not kept in policy_context: %v", pc)
			}
		})
	}

	// The mask erased the raw identity header: the record has none, and says so.
	rec := mapped(t, readOPAFixture(t, "allow-object-masked"), ingest.OPAConfig{})
	if rec.IdentityObject != nil {
		t.Errorf("identity_object %s survived the mask", rec.IdentityObject)
	}
	if pc := policyContext(t, rec); len(pc["opa_erased"].([]any)) != 1 || pc["opa_erased"].([]any)[0] != "/input/lineage/identity_object" {
		t.Errorf("opa_erased %v", pc["opa_erased"])
	}

	for fixture, field := range map[string]string{
		"erased-input": "input", "no-identity": "input.lineage", "undefined": "error", "eval-error": "error",
	} {
		rej := rejected(t, readOPAFixture(t, fixture), ingest.OPAConfig{}, ingest.ReasonOPAUnmappable, field)
		t.Logf("%s: %s", fixture, rej.Detail)
	}
	if rej := rejected(t, readOPAFixture(t, "erased-input"), ingest.OPAConfig{}, ingest.ReasonOPAUnmappable, "input"); !strings.Contains(rej.Detail, "erased") {
		t.Errorf("erased input: detail %q does not say the mask erased it", rej.Detail)
	}
	if rej := rejected(t, readOPAFixture(t, "undefined"), ingest.OPAConfig{}, ingest.ReasonOPAUnmappable, "error"); !strings.Contains(rej.Detail, "undefined") {
		t.Errorf("undefined decision: detail %q", rej.Detail)
	}
}

// edit returns the allow-boolean fixture changed by fn.
func edit(t testing.TB, fn func(ev map[string]any)) json.RawMessage {
	t.Helper()
	ev := opaEvent(t, "allow-boolean")
	fn(ev)
	return marshal(t, ev)
}

func identityOf(ev map[string]any) map[string]any {
	return ev["input"].(map[string]any)["lineage"].(map[string]any)
}

func TestMapOPAEventMalformed(t *testing.T) {
	def := ingest.OPAConfig{}
	tests := []struct {
		name        string
		ev          func(t testing.TB) json.RawMessage
		cfg         ingest.OPAConfig
		tenant      string
		code, field string
		detail      string // a substring the detail must contain
	}{
		{name: "no decision_id", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { delete(ev, "decision_id") })
		}, code: ingest.ReasonOPAUnmappable, field: "decision_id", detail: "idempotency key"},
		{name: "decision_id of another case", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { ev["Decision_ID"] = ev["decision_id"]; delete(ev, "decision_id") })
		}, code: ingest.ReasonOPAUnmappable, field: "decision_id"},
		{name: "decision_id not a string", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { ev["decision_id"] = 42 })
		}, code: lineage.CodeWrongType, field: "decision_id"},
		{name: "decision_id with a space", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { ev["decision_id"] = "a b" })
		}, code: lineage.CodeInvalidValue, field: "decision_id", detail: "record member id"},
		{name: "no timestamp", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { delete(ev, "timestamp") })
		}, code: ingest.ReasonOPAUnmappable, field: "timestamp"},
		{name: "bad timestamp", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { ev["timestamp"] = "yesterday at noon" })
		}, code: lineage.CodeInvalidValue, field: "timestamp", detail: "RFC 3339"},
		{name: "zero timestamp", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { ev["timestamp"] = "0001-01-01T00:00:00Z" })
		}, code: lineage.CodeInvalidValue, field: "timestamp"},
		{name: "erased input", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { delete(ev, "input"); ev["erased"] = []string{"/input"} })
		}, code: ingest.ReasonOPAUnmappable, field: "input", detail: "erased the whole input"},
		{name: "no input", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { delete(ev, "input") })
		}, code: ingest.ReasonOPAUnmappable, field: "input", detail: "no input"},
		{name: "input not an object", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { ev["input"] = []any{1, 2} })
		}, code: ingest.ReasonOPAUnmappable, field: "input", detail: "an array"},
		{name: "identity path missing", cfg: ingest.OPAConfig{IdentityPath: "auth.identity"}, ev: func(t testing.TB) json.RawMessage {
			return readOPAFixture(t, "allow-boolean")
		}, code: ingest.ReasonOPAUnmappable, field: "input.auth", detail: `"auth.identity"`},
		{name: "identity part erased", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) {
				delete(identityOf(ev), "user")
				ev["erased"] = []string{"/input/lineage/user"}
			})
		}, code: lineage.CodeMissingField, field: "input.lineage.user", detail: "mask erased /input/lineage/user"},
		{name: "identity not an object", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { ev["input"].(map[string]any)["lineage"] = "u-ada" })
		}, code: lineage.CodeWrongType, field: "input.lineage"},
		{name: "identity overrides the decision", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { identityOf(ev)["decision"] = map[string]any{"effect": "allow"} })
		}, code: lineage.CodeUnknownField, field: "input.lineage.decision", detail: "comes from the OPA decision event"},
		{name: "identity overrides the tenant", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { identityOf(ev)["tenant"] = "other" })
		}, code: lineage.CodeUnknownField, field: "input.lineage.tenant"},
		{name: "identity unknown member", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { identityOf(ev)["session"] = "s-1" })
		}, code: lineage.CodeUnknownField, field: "input.lineage.session"},
		{name: "identity user id not a string", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { identityOf(ev)["user"].(map[string]any)["id"] = 7 })
		}, code: lineage.CodeWrongType, field: "input.lineage.user.id"},
		{name: "identity empty action type", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { identityOf(ev)["action"].(map[string]any)["type"] = "" })
		}, code: lineage.CodeInvalidValue, field: "input.lineage.action.type"},
		{name: "identity unknown nested member", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { identityOf(ev)["agent"].(map[string]any)["ip"] = "10.0.0.1" })
		}, code: lineage.CodeUnknownField, field: "input.lineage.agent.ip"},
		{name: "identity bad scope item", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { identityOf(ev)["delegation"].(map[string]any)["scope"] = []any{"a", 3} })
		}, code: lineage.CodeWrongType, field: "input.lineage.delegation.scope[1]"},
		{name: "identity_object too large", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) {
				identityOf(ev)["identity_object"] = strings.Repeat("x", lineage.MaxFreeFormSize+1)
			})
		}, code: lineage.CodeInvalidValue, field: "input.lineage.identity_object"},
		{name: "record too large", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) {
				s := make([]string, lineage.MaxSafeguards)
				for i := range s {
					s[i] = strings.Repeat("s", lineage.MaxStringLen)
				}
				identityOf(ev)["safeguards"] = s
			})
		}, code: lineage.CodeTooLarge, field: ""},
		{name: "result a string", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { ev["result"] = "yes" })
		}, code: ingest.ReasonOPAUnmappable, field: "result", detail: "a string"},
		{name: "result a number", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { ev["result"] = 1 })
		}, code: ingest.ReasonOPAUnmappable, field: "result"},
		{name: "result an array", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { ev["result"] = []any{true} })
		}, code: ingest.ReasonOPAUnmappable, field: "result"},
		{name: "result an empty object", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { ev["result"] = map[string]any{} })
		}, code: ingest.ReasonOPAUnmappable, field: "result", detail: "neither"},
		{name: "result allow not boolean", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { ev["result"] = map[string]any{"allow": "true"} })
		}, code: ingest.ReasonOPAUnmappable, field: "result.allow"},
		{name: "result unknown effect", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { ev["result"] = map[string]any{"effect": "permit"} })
		}, code: ingest.ReasonOPAUnmappable, field: "result.effect"},
		{name: "result effect not a string", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { ev["result"] = map[string]any{"effect": true} })
		}, code: ingest.ReasonOPAUnmappable, field: "result.effect"},
		{name: "result contradicts itself", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { ev["result"] = map[string]any{"allow": true, "effect": "deny"} })
		}, code: ingest.ReasonOPAUnmappable, field: "result", detail: "contradicts"},
		{name: "result undefined (REST API form)", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { delete(ev, "result") })
		}, code: ingest.ReasonOPAUnmappable, field: "result", detail: "undefined"},
		{name: "result null", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { ev["result"] = nil })
		}, code: ingest.ReasonOPAUnmappable, field: "result", detail: "the result is null"},
		{name: "reason too long", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) {
				ev["result"] = map[string]any{"allow": false, "reason": strings.Repeat("r", lineage.MaxStringLen+1)}
			})
		}, code: lineage.CodeInvalidValue, field: "result.reason"},
		{name: "evaluation error", ev: func(t testing.TB) json.RawMessage {
			return readOPAFixture(t, "eval-error")
		}, code: ingest.ReasonOPAUnmappable, field: "error", detail: "eval_conflict_error"},
		{name: "labels null", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { ev["labels"] = nil })
		}, code: ingest.ReasonOPAUnmappable, field: "labels.id"},
		{name: "labels not strings", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { ev["labels"].(map[string]any)["id"] = 5 })
		}, code: lineage.CodeWrongType, field: "labels.id"},
		{name: "labels not an object", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { ev["labels"] = []string{"id"} })
		}, code: lineage.CodeWrongType, field: "labels"},
		{name: "source id too long", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { ev["labels"].(map[string]any)["id"] = strings.Repeat("i", lineage.MaxIDLen+1) })
		}, code: lineage.CodeInvalidValue, field: "labels.id"},
		{name: "ad-hoc query", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { delete(ev, "path"); ev["query"] = "data.lending.allow == true" })
		}, code: ingest.ReasonOPAUnmappable, field: "path", detail: "ad-hoc query"},
		{name: "no path", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { delete(ev, "path") })
		}, code: ingest.ReasonOPAUnmappable, field: "path"},
		{name: "path too long for a policy id", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { ev["path"] = strings.Repeat("p/", 100) + "allow" })
		}, code: lineage.CodeInvalidValue, field: "path"},
		{name: "bundles not objects", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { ev["bundles"] = map[string]any{"lending": "r1"} })
		}, code: lineage.CodeWrongType, field: "bundles.lending"},
		{name: "bundle revision not a string", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { ev["bundles"] = map[string]any{"lending": map[string]any{"revision": 3}} })
		}, code: lineage.CodeWrongType, field: "bundles.lending.revision"},
		{name: "erased not strings", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { ev["erased"] = "/input" })
		}, code: lineage.CodeWrongType, field: "erased"},
		{name: "event trace id too long", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) { ev["trace_id"] = strings.Repeat("t", lineage.MaxIDLen+1) })
		}, code: lineage.CodeInvalidValue, field: "trace_id"},
		{name: "invalid tenant", tenant: "Lending", ev: func(t testing.TB) json.RawMessage {
			return readOPAFixture(t, "allow-boolean")
		}, code: lineage.CodeInvalidValue, field: "tenant"},
		{name: "not JSON", ev: func(t testing.TB) json.RawMessage { return json.RawMessage(`{"decision_id":`) },
			code: lineage.CodeInvalidJSON},
		{name: "empty", ev: func(t testing.TB) json.RawMessage { return nil }, code: lineage.CodeInvalidJSON},
		{name: "an array", ev: func(t testing.TB) json.RawMessage { return json.RawMessage(`[{"decision_id":"a"}]`) },
			code: lineage.CodeInvalidJSON, detail: "an array"},
		{name: "null", ev: func(t testing.TB) json.RawMessage { return json.RawMessage(`null`) },
			code: lineage.CodeInvalidJSON, detail: "null"},
		{name: "duplicate member", ev: func(t testing.TB) json.RawMessage {
			ev := readOPAFixture(t, "allow-boolean")
			return bytes.Replace(ev, []byte(`"result": true`), []byte(`"result": true, "result": false`), 1)
		}, code: lineage.CodeInvalidJSON, detail: "duplicate"},
		{name: "invalid UTF-8", ev: func(t testing.TB) json.RawMessage {
			ev := readOPAFixture(t, "allow-boolean")
			return bytes.Replace(ev, []byte(`"u-ada"`), []byte("\"u-\xffada\""), 1)
		}, code: lineage.CodeInvalidJSON},
		{name: "oversize event", ev: func(t testing.TB) json.RawMessage {
			return edit(t, func(ev map[string]any) {
				ev["input"].(map[string]any)["blob"] = strings.Repeat("b", ingest.MaxOPAEventSize)
			})
		}, code: lineage.CodeTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if cfg == (ingest.OPAConfig{}) {
				cfg = def
			}
			tenant := tc.tenant
			if tenant == "" {
				tenant = opaTenant
			}
			ev := tc.ev(t)
			rec, rej := ingest.MapOPAEvent(ev, tenant, cfg)
			if rej == nil {
				canon, _ := rec.Canonical()
				t.Fatalf("mapped, want rejection %s at %q:\n%s", tc.code, tc.field, canon)
			}
			if rec != nil || rej.Code != tc.code || rej.Field != tc.field || !strings.Contains(rej.Detail, tc.detail) || rej.Detail == "" {
				t.Fatalf("rejection %+v, want code %s field %q detail containing %q", rej, tc.code, tc.field, tc.detail)
			}
			t.Logf("%s %s: %.300s", rej.Code, rej.Field, rej.Detail)
		})
	}
}

// TestMapOPAEventVariants covers mappings the captured OPA did not produce.
func TestMapOPAEventVariants(t *testing.T) {
	def := ingest.OPAConfig{}
	t.Run("timestamp in a local zone becomes UTC", func(t *testing.T) {
		rec := mapped(t, edit(t, func(ev map[string]any) { ev["timestamp"] = "2026-07-01T14:30:00.5+02:00" }), def)
		if rec.Time != "2026-07-01T12:30:00.5Z" {
			t.Fatalf("time %s", rec.Time)
		}
	})
	for result, want := range map[string]lineage.Decision{
		`false`:                               {Effect: "deny"},
		`{"allow":true}`:                      {Effect: "allow"},
		`{"allow":false,"reason":"no"}`:       {Effect: "deny", Reason: "no"},
		`{"allow":true,"reason":["a","b"]}`:   {Effect: "allow"},
		`{"allow":true,"reason":""}`:          {Effect: "allow"},
		`{"effect":"modify","reason":"mask"}`: {Effect: "modify", Reason: "mask"},
		`{"effect":"escalate"}`:               {Effect: "escalate"},
		`{"allow":false,"effect":"escalate"}`: {Effect: "escalate"},
		`{"allow":true,"effect":"modify"}`:    {Effect: "modify"},
	} {
		t.Run("result "+result, func(t *testing.T) {
			rec := mapped(t, edit(t, func(ev map[string]any) { ev["result"] = json.RawMessage(result) }), def)
			got := rec.Decision
			got.Policy = lineage.Policy{}
			if got != want {
				t.Fatalf("decision %+v, want %+v", rec.Decision, want)
			}
		})
	}
	for name, tc := range map[string]struct {
		edit func(ev map[string]any)
		want string
	}{
		"one bundle":              {func(ev map[string]any) { ev["bundles"] = map[string]any{"lending": map[string]any{"revision": "r7"}} }, "r7"},
		"one bundle, no revision": {func(ev map[string]any) { ev["bundles"] = map[string]any{"lending": map[string]any{}} }, "unknown"},
		"bundles sorted": {func(ev map[string]any) {
			ev["bundles"] = map[string]any{"zeta": map[string]any{"revision": "z1"}, "alpha": map[string]any{}, "mid": map[string]any{"revision": "m2"}}
		}, "alpha@unknown,mid@m2,zeta@z1"},
		"legacy revision":              {func(ev map[string]any) { delete(ev, "bundles"); ev["revision"] = "legacy-9" }, "legacy-9"},
		"nothing: not the OPA version": {func(ev map[string]any) { delete(ev, "bundles") }, "unknown"},
	} {
		t.Run("version "+name, func(t *testing.T) {
			rec := mapped(t, edit(t, tc.edit), def)
			if rec.Decision.Policy.Version != tc.want {
				t.Fatalf("policy version %q, want %q", rec.Decision.Policy.Version, tc.want)
			}
		})
	}
	t.Run("SDK path with slashes", func(t *testing.T) {
		rec := mapped(t, edit(t, func(ev map[string]any) { ev["path"] = "/lending/allow/" }), def)
		if rec.Decision.Policy.ID != "lending/allow" || policyContext(t, rec)["opa_path"] != "/lending/allow/" {
			t.Fatalf("policy id %q, context %s", rec.Decision.Policy.ID, rec.PolicyContext)
		}
	})
	t.Run("custom identity path", func(t *testing.T) {
		ev := edit(t, func(ev map[string]any) {
			in := ev["input"].(map[string]any)
			in["ctx"] = map[string]any{"who": in["lineage"]}
			delete(in, "lineage")
		})
		rec := mapped(t, ev, ingest.OPAConfig{IdentityPath: "ctx.who"})
		if rec.User.ID != "u-ada" {
			t.Fatalf("user %+v", rec.User)
		}
		rejected(t, ev, def, ingest.ReasonOPAUnmappable, "input.lineage")
	})
	t.Run("trace from the event", func(t *testing.T) {
		rec := mapped(t, edit(t, func(ev map[string]any) {
			ev["trace_id"], ev["span_id"] = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
		}), def)
		if rec.Trace == nil || rec.Trace.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || rec.Trace.SpanID != "00f067aa0ba902b7" {
			t.Fatalf("trace %+v", rec.Trace)
		}
	})
	t.Run("trace from the identity wins", func(t *testing.T) {
		rec := mapped(t, edit(t, func(ev map[string]any) {
			ev["trace_id"] = "opa-side"
			identityOf(ev)["trace"] = map[string]any{"trace_id": "agent-side"}
		}), def)
		if rec.Trace == nil || rec.Trace.TraceID != "agent-side" {
			t.Fatalf("trace %+v", rec.Trace)
		}
	})
	t.Run("optional identity members", func(t *testing.T) {
		rec := mapped(t, edit(t, func(ev map[string]any) {
			id := identityOf(ev)
			id["parent_id"] = "dec-parent-1"
			id["human_oversight"] = map[string]any{"reviewer": map[string]any{"id": "u-officer", "issuer": "https://login.bank.example"}, "outcome": "approved"}
			id["identity_object"] = map[string]any{"alg": "ES256", "kid": "k1"}
			id["delegation"] = nil // null means absent, as in a record
		}), def)
		if rec.ParentID != "dec-parent-1" || rec.HumanOversight == nil || rec.HumanOversight.Outcome != "approved" ||
			string(rec.IdentityObject) != `{"alg":"ES256","kid":"k1"}` || rec.Delegation != nil {
			t.Fatalf("record %+v", rec)
		}
	})
	t.Run("mask and request facts kept", func(t *testing.T) {
		rec := mapped(t, edit(t, func(ev map[string]any) {
			ev["masked"] = []string{"/input/lineage/user/issuer"}
			ev["requested_by"] = "10.1.2.3:51234"
			ev["batch_decision_id"] = "batch-1"
		}), def)
		pc := policyContext(t, rec)
		if pc["opa_masked"].([]any)[0] != "/input/lineage/user/issuer" || pc["opa_requested_by"] != "10.1.2.3:51234" || pc["opa_batch_decision_id"] != "batch-1" {
			t.Fatalf("policy_context %v", pc)
		}
	})
	t.Run("large result kept as a digest", func(t *testing.T) {
		big := map[string]any{"allow": true, "reason": "ok", "obligations": strings.Repeat("o", 8<<10)}
		rec := mapped(t, edit(t, func(ev map[string]any) { ev["result"] = big }), def)
		pc := policyContext(t, rec)
		canon, err := lineage.Canonicalize(marshal(t, big))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(canon)
		if pc["opa_result"] != nil || pc["opa_result_sha256"] != hex.EncodeToString(sum[:]) || pc["opa_result_size"] != float64(len(canon)) {
			t.Fatalf("policy_context %v", pc)
		}
		if rec.Decision.Effect != "allow" || rec.Decision.Reason != "ok" {
			t.Fatalf("decision %+v", rec.Decision)
		}
	})
	t.Run("fields OPA may add later are ignored", func(t *testing.T) {
		mapped(t, edit(t, func(ev map[string]any) {
			ev["custom"] = map[string]any{"x": 1}
			ev["request_context"] = map[string]any{"http": map[string]any{"headers": map[string]any{"X-Y": []string{"z"}}}}
			ev["some_future_field"] = []any{1, "two"}
		}), def)
	})
}

func TestOPAConfigCheck(t *testing.T) {
	for path, ok := range map[string]bool{"": true, "lineage": true, "ctx.who": true, "a..b": false, ".a": false, "a.": false} {
		if err := (ingest.OPAConfig{IdentityPath: path}).Check(); (err == nil) != ok {
			t.Errorf("IdentityPath %q: err %v", path, err)
		}
	}
}

// FuzzMapOPAEvent checks that no event, however malformed, makes the adapter panic, and that
// whatever it maps is a valid record that survives the ingester's own decoding unchanged.
// Seeds: testdata/fuzz/FuzzMapOPAEvent (captured events and edge cases) plus the fixtures.
func FuzzMapOPAEvent(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "opa", "*.json"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, ev []byte) {
		cfg := ingest.OPAConfig{}
		rec, rej := ingest.MapOPAEvent(ev, opaTenant, cfg)
		if (rec == nil) == (rej == nil) {
			t.Fatalf("want exactly one of record and rejection, got %v and %v", rec, rej)
		}
		if rej != nil {
			if rej.Code == "" || rej.Detail == "" {
				t.Fatalf("rejection without code or detail: %+v", rej)
			}
		} else {
			if rec.Tenant != opaTenant || rec.Source.Type != ingest.OPASourceType {
				t.Fatalf("tenant %q source %+v", rec.Tenant, rec.Source)
			}
			checkMapped(t, ev, rec, cfg)
		}
		// The same bytes as an upload: splitting must not panic either, nor mapping each part.
		if evs, err := ingest.ParseOPAEvents(ev); err == nil {
			for _, e := range evs {
				if r, j := ingest.MapOPAEvent(e, opaTenant, cfg); r != nil {
					if err := r.Validate(); err != nil {
						t.Fatalf("mapped record does not validate: %v", err)
					}
				} else if j == nil {
					t.Fatal("neither record nor rejection")
				}
			}
		}
	})
}
