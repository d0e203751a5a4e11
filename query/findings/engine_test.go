package findings

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
)

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// rec is a clean record: delegated by a person of an https issuer to an agent in one role, in
// scope, no escalation, low-risk system. Each test changes what its case needs.
func rec(id string, at time.Duration) *lineage.Record {
	return &lineage.Record{
		Schema: lineage.SchemaV1, ID: id, Time: t0.Add(at).Format(time.RFC3339Nano), Tenant: "acme",
		Source: lineage.Source{ID: "gw", Type: "gateway"},
		User:   lineage.Person{ID: "alice@acme.example", Issuer: "https://login.acme.example/"},
		Agent:  lineage.Agent{ID: "spiffe://acme/agent/planner-1"},
		Role:   "planner",
		Action: lineage.Action{Type: "db.read", Target: "customers/42"},
		Decision: lineage.Decision{Effect: lineage.EffectAllow,
			Policy: lineage.Policy{ID: "p", Version: "1"}},
		Delegation: &lineage.Delegation{TokenID: "tok-1", Issuer: "https://login.acme.example/",
			Scope: []string{"customers:read"}, IssuedAt: t0.Format(time.RFC3339), ExpiresAt: t0.Add(time.Hour).Format(time.RFC3339),
			Actors: []string{"spiffe://acme/agent/planner-1"}},
		AISystem: &lineage.AISystem{ID: "ais-chat", RiskClass: "limited"},
	}
}

// run feeds the records in order (one batch) and returns the findings they aggregate to.
func run(t *testing.T, cfg *Configs, recs ...*lineage.Record) []Finding {
	t.Helper()
	e := NewEngine(cfg)
	return feed(t, e, 0, recs...)
}

func feed(t *testing.T, e *Engine, from uint64, recs ...*lineage.Record) []Finding {
	t.Helper()
	var occ []Occurrence
	for i, r := range recs {
		if b, err := json.Marshal(r); err != nil {
			t.Fatal(err)
		} else if _, err := lineage.DecodeRecord(b); err != nil {
			t.Fatalf("record %s is not valid: %v", r.ID, err)
		}
		at, err := time.Parse(time.RFC3339Nano, r.Time)
		if err != nil {
			t.Fatal(err)
		}
		occ = e.Observe(from+uint64(i), r, at, occ)
	}
	occ = e.EndBatch(occ)
	return aggregate(occ)
}

func aggregate(occ []Occurrence) []Finding {
	m := map[string]*Finding{}
	var order []string
	for _, o := range occ {
		k := o.Tenant + "|" + string(o.Kind) + "|" + o.Key
		if f, ok := m[k]; ok {
			f.Add(o)
			continue
		}
		f := New(o)
		m[k] = &f
		order = append(order, k)
	}
	out := make([]Finding, 0, len(order))
	for _, k := range order {
		out = append(out, *m[k])
	}
	return out
}

func ofKind(fs []Finding, k Kind) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.Kind == k {
			out = append(out, f)
		}
	}
	return out
}

func evidenceIDs(f Finding) []string {
	var ids []string
	for _, e := range f.Evidence {
		ids = append(ids, e.ID)
	}
	return ids
}

func mustConfig(t *testing.T, js string) *Configs {
	t.Helper()
	c, err := ParseConfig([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCleanTrafficHasNoFindings(t *testing.T) {
	var recs []*lineage.Record
	for i := range 50 {
		recs = append(recs, rec(fmt.Sprint("r", i), time.Duration(i)*time.Minute))
	}
	if fs := run(t, nil, recs...); len(fs) != 0 {
		t.Fatalf("clean traffic: %d findings: %+v", len(fs), fs)
	}
}

func TestStaticCredential(t *testing.T) {
	noTok := rec("no-token", time.Minute)
	noTok.Delegation = nil
	emptyTok := rec("empty-token", 2*time.Minute)
	emptyTok.Delegation.TokenID = ""
	svc := rec("svc", 3*time.Minute)
	svc.User.ID = "svc-batch-loader"
	near := rec("near", 4*time.Minute) // a person whose name merely contains "svc"
	near.User.ID = "marco.svcek@acme.example"
	fs := ofKind(run(t, nil, noTok, emptyTok, svc, near), StaticCredential)
	if len(fs) != 2 {
		t.Fatalf("findings %+v, want no-delegation and service-account", fs)
	}
	if f := fs[0]; f.Key != "no-delegation:spiffe://acme/agent/planner-1" || f.Severity != High ||
		!slices.Equal(evidenceIDs(f), []string{"no-token", "empty-token"}) || f.Count != 2 {
		t.Errorf("no-delegation finding %+v", f)
	}
	if f := fs[1]; f.Key != "service-account:svc-batch-loader" || !slices.Equal(evidenceIDs(f), []string{"svc"}) {
		t.Errorf("service-account finding %+v", f)
	}
	// A tenant's own patterns replace the defaults.
	cfg := mustConfig(t, `{"tenants":{"acme":{"service_account_patterns":["*svc*"]}}}`)
	fs = ofKind(run(t, cfg, near), StaticCredential)
	if len(fs) != 1 || fs[0].Key != "service-account:marco.svcek@acme.example" {
		t.Errorf("configured pattern: %+v", fs)
	}
}

func TestInferredIdentity(t *testing.T) {
	http := rec("http", time.Minute)
	http.User.Issuer = "http://login.acme.example/"
	local := rec("local", 2*time.Minute)
	local.User.Issuer = "gateway-local"
	unbound := rec("unbound", 3*time.Minute)
	unbound.IdentityObject = json.RawMessage(`{"sub":"alice","amr":["mfa"]}`)
	jwtUnbound := rec("jwt-unbound", 4*time.Minute)
	jwtUnbound.IdentityObject = json.RawMessage(`"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1LTQ4MjEzIn0.c2lnbmF0dXJl"`)
	bound := rec("bound", 5*time.Minute) // near miss: the claims name the user's issuer
	bound.IdentityObject = json.RawMessage(`{"sub":"alice","iss":"https://login.acme.example/"}`)
	jwtBound := rec("jwt-bound", 6*time.Minute)
	jwtBound.IdentityObject = json.RawMessage(`"eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJodHRwczovL2xvZ2luLmFjbWUuZXhhbXBsZS8ifQ.c2ln"`)
	fs := ofKind(run(t, nil, http, local, unbound, jwtUnbound, bound, jwtBound), InferredIdentity)
	keys := map[string][]string{}
	for _, f := range fs {
		keys[f.Key] = evidenceIDs(f)
	}
	want := map[string][]string{
		"issuer-not-https:http://login.acme.example/": {"http"},
		"issuer-not-https:gateway-local":              {"local"},
		"unbound-identity:alice@acme.example":         {"unbound", "jwt-unbound"},
	}
	if fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Fatalf("findings %v, want %v", keys, want)
	}
	// Trusted issuers: an https issuer the tenant does not trust; the trusted one is a near miss.
	cfg := mustConfig(t, `{"tenants":{"acme":{"trusted_issuers":["https://login.acme.example/"]}}}`)
	other := rec("other-idp", time.Minute)
	other.User.Issuer = "https://accounts.example.com/"
	fs = ofKind(run(t, cfg, other, rec("trusted", 2*time.Minute)), InferredIdentity)
	if len(fs) != 1 || fs[0].Key != "issuer-untrusted:https://accounts.example.com/" || !slices.Equal(evidenceIDs(fs[0]), []string{"other-idp"}) {
		t.Fatalf("untrusted issuer: %+v", fs)
	}
}

func TestSharedAgent(t *testing.T) {
	a := rec("a", time.Minute)
	b := rec("b", 2*time.Minute)
	b.Role = "critic"
	c := rec("c", 3*time.Minute)
	c.Role = "executor"
	again := rec("again", 4*time.Minute)
	again.Role = "critic"
	fs := ofKind(run(t, nil, a, b, c, again), SharedAgent)
	if len(fs) != 1 {
		t.Fatalf("findings %+v", fs)
	}
	f := fs[0]
	if f.Key != "spiffe://acme/agent/planner-1" || !slices.Equal(evidenceIDs(f), []string{"a", "b", "c"}) ||
		!strings.Contains(f.Explanation, "3 roles (planner, critic, executor)") {
		t.Errorf("finding %+v", f)
	}
	// Several AI systems.
	s2 := rec("s2", 2*time.Minute)
	s2.AISystem = &lineage.AISystem{ID: "ais-credit", RiskClass: "high"}
	fs = ofKind(run(t, nil, rec("s1", time.Minute), s2), SharedAgent)
	if len(fs) != 1 || !strings.Contains(fs[0].Explanation, "AI systems (ais-chat, ais-credit)") {
		t.Errorf("systems: %+v", fs)
	}
	// Near miss: two agents, one role each; and a record without a role.
	other := rec("other", time.Minute)
	other.Agent.ID = "spiffe://acme/agent/critic-1"
	other.Role = "critic"
	other.Delegation.Actors = []string{other.Agent.ID}
	noRole := rec("norole", 2*time.Minute)
	noRole.Role = ""
	if fs := ofKind(run(t, nil, rec("one", 0), other, noRole), SharedAgent); len(fs) != 0 {
		t.Errorf("distinct agents: %+v", fs)
	}
}

func TestDelegationMisuse(t *testing.T) {
	expired := rec("expired", 2*time.Hour) // token expires at t0+1h
	early := rec("early", -10*time.Minute)
	long := rec("long", time.Minute)
	long.Delegation.TokenID = "tok-long"
	long.Delegation.ExpiresAt = t0.Add(72 * time.Hour).Format(time.RFC3339)
	chain := rec("chain", 2*time.Minute)
	chain.Delegation.Actors = []string{"spiffe://acme/agent/other", "spiffe://acme/agent/planner-1"}
	fs := ofKind(run(t, nil, expired, early, long, chain), DelegationMisuse)
	got := map[string][]string{}
	for _, f := range fs {
		got[f.Key] = evidenceIDs(f)
	}
	want := map[string][]string{
		"expired:tok-1":       {"expired"},
		"not-yet-valid:tok-1": {"early"},
		"long-lived:tok-long": {"long"},
		"actor-chain:spiffe://acme/agent/planner-1\x00spiffe://acme/agent/other": {"chain"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("findings %q, want %q", got, want)
	}
	// Near misses: inside the leeway on both ends, a lifetime of exactly the maximum.
	inLeeway := rec("in-leeway", time.Hour+50*time.Second)
	before := rec("before", -50*time.Second)
	exact := rec("exact", time.Minute)
	exact.Delegation.ExpiresAt = t0.Add(8 * time.Hour).Format(time.RFC3339)
	if fs := ofKind(run(t, nil, inLeeway, before, exact), DelegationMisuse); len(fs) != 0 {
		t.Fatalf("near misses: %+v", fs)
	}
	// The tenant's maximum lifetime.
	cfg := mustConfig(t, `{"tenants":{"acme":{"max_delegation_lifetime":"30m"}}}`)
	if fs := ofKind(run(t, cfg, rec("r", time.Minute)), DelegationMisuse); len(fs) != 1 || fs[0].Key != "long-lived:tok-1" {
		t.Fatalf("30m maximum: %+v", fs)
	}
}

func TestOutOfScope(t *testing.T) {
	cfg := mustConfig(t, `{"default":{"action_scopes":[
		{"action":"db.read","target":"customers/*","scopes":["customers:read"]},
		{"action":"db.write","scopes":["customers:write","cases:write"]}]}}`)
	write := rec("write", time.Minute)
	write.Action = lineage.Action{Type: "db.write", Target: "cases/7"}
	denied := rec("denied", 2*time.Minute) // near miss: the policy stopped it
	denied.Action = write.Action
	denied.Decision.Effect = lineage.EffectDeny
	granted := rec("granted", 3*time.Minute) // near miss: one of the scopes is granted
	granted.Action = write.Action
	granted.Delegation.Scope = []string{"customers:read", "cases:write"}
	read := rec("read", 4*time.Minute) // near miss: in scope
	unmapped := rec("unmapped", 5*time.Minute)
	unmapped.Action.Type = "email.send" // no rule: not checked
	otherTarget := rec("other-target", 6*time.Minute)
	otherTarget.Action.Target = "products/9" // the db.read rule is for customers/* only
	fs := ofKind(run(t, cfg, write, denied, granted, read, unmapped, otherTarget), OutOfScope)
	if len(fs) != 1 || !slices.Equal(evidenceIDs(fs[0]), []string{"write"}) ||
		!strings.Contains(fs[0].Evidence[0].Note, "needs customers:write or cases:write; granted [customers:read]") {
		t.Fatalf("findings %+v", fs)
	}
	// Without a mapping nothing is checked.
	if fs := ofKind(run(t, nil, write), OutOfScope); len(fs) != 0 {
		t.Fatalf("no mapping: %+v", fs)
	}
}

func TestScopeEscalation(t *testing.T) {
	a := rec("qa", time.Minute)
	a.Delegation.Scope = []string{"qa-db:read"}
	b := rec("more-qa", 5*time.Minute)
	b.Delegation.Scope = []string{"qa-db:read", "qa-db:read"}
	c := rec("prod", 10*time.Minute)
	c.Delegation.Scope = []string{"qa-db:read", "prod-deploy:run"}
	d := rec("prod-again", 12*time.Minute)
	d.Delegation.Scope = []string{"prod-deploy:run"}
	fs := ofKind(run(t, nil, a, b, c, d), ScopeEscalation)
	if len(fs) != 1 {
		t.Fatalf("findings %+v", fs)
	}
	f := fs[0]
	if f.Severity != Medium || !slices.Equal(evidenceIDs(f), []string{"qa", "prod"}) ||
		f.Evidence[1].Note != "scope grows by [prod-deploy:run]" {
		t.Fatalf("finding %+v", f)
	}
	// A harmless growth is info; a new session (after the gap) starts over: near miss.
	e1 := rec("s1", time.Minute)
	e2 := rec("s1-more", 2*time.Minute)
	e2.Delegation.Scope = []string{"customers:read", "reports:read"}
	later := rec("next-session", 3*time.Hour)
	later.Delegation.Scope = []string{"customers:read", "reports:read", "mail:read"}
	later.Delegation.ExpiresAt = t0.Add(4 * time.Hour).Format(time.RFC3339)
	fs = ofKind(run(t, nil, e1, e2, later), ScopeEscalation)
	if len(fs) != 1 || fs[0].Severity != Info || !slices.Equal(evidenceIDs(fs[0]), []string{"s1", "s1-more"}) {
		t.Fatalf("info growth and new session: %+v", fs)
	}
	// Near miss: another user's session with the same agent does not count.
	u2 := rec("bob", 2*time.Minute)
	u2.User.ID = "bob@acme.example"
	u2.Delegation.Scope = []string{"reports:read"}
	if fs := ofKind(run(t, nil, rec("alice", time.Minute), u2), ScopeEscalation); len(fs) != 0 {
		t.Fatalf("two users: %+v", fs)
	}
}

func TestMissingOversightEscalation(t *testing.T) {
	esc := rec("esc", time.Minute)
	esc.Decision.Effect = lineage.EffectEscalate
	settled := rec("esc-settled", 2*time.Minute)
	settled.Decision.Effect = lineage.EffectEscalate
	review := rec("review", 30*time.Minute)
	review.ParentID = "esc-settled"
	review.HumanOversight = &lineage.HumanOversight{Reviewer: lineage.Person{ID: "rev@acme.example", Issuer: "https://login.acme.example/"}, Outcome: "approved"}
	// A review logged before its escalation (log order is not causal order) settles it too.
	early := rec("early-review", 3*time.Minute)
	early.ParentID = "esc-late-logged"
	early.HumanOversight = review.HumanOversight
	lateLogged := rec("esc-late-logged", 4*time.Minute)
	lateLogged.Decision.Effect = lineage.EffectEscalate
	e := NewEngine(nil)
	if fs := feed(t, e, 0, esc, settled, review, early, lateLogged); len(ofKind(fs, MissingOversight)) != 0 {
		t.Fatalf("inside the review window: %+v", fs)
	}
	// Records 23h later: still inside the 24h window (near miss); 25h later: reported.
	almost := rec("almost", 24*time.Hour)
	almost.Delegation = nil
	if fs := ofKind(feed(t, e, 5, almost), MissingOversight); len(fs) != 0 {
		t.Fatalf("window not passed: %+v", fs)
	}
	after := rec("after", 25*time.Hour)
	after.Delegation = nil
	fs := ofKind(feed(t, e, 6, after), MissingOversight)
	if len(fs) != 1 || fs[0].Key != "escalation:esc" || !slices.Equal(evidenceIDs(fs[0]), []string{"esc"}) || fs[0].Severity != High {
		t.Fatalf("findings %+v", fs)
	}
	// Reported once.
	if fs := ofKind(feed(t, e, 7, rec("later", 50*time.Hour)), MissingOversight); len(fs) != 0 {
		t.Fatalf("reported again: %+v", fs)
	}
}

func TestMissingOversightHighRiskWindow(t *testing.T) {
	cfg := mustConfig(t, `{"default":{"oversight_window":"1h"}}`)
	hr := func(id string, at time.Duration) *lineage.Record {
		r := rec(id, at)
		r.AISystem = &lineage.AISystem{ID: "ais-credit", RiskClass: "High"}
		return r
	}
	// Window 09:00-10:00: three decisions, no review. Window 10:00-11:00: a decision and a
	// review (near miss). A low-risk system's window without review (near miss).
	reviewed := hr("reviewed", 70*time.Minute)
	reviewed.HumanOversight = &lineage.HumanOversight{Reviewer: lineage.Person{ID: "rev@acme.example", Issuer: "https://login.acme.example/"}, Outcome: "approved"}
	fs := ofKind(run(t, cfg, hr("d1", time.Minute), hr("d2", 20*time.Minute), rec("low", 30*time.Minute), hr("d3", 40*time.Minute),
		hr("d4", 65*time.Minute), reviewed, rec("tick", 3*time.Hour)), MissingOversight)
	if len(fs) != 1 || !slices.Equal(evidenceIDs(fs[0]), []string{"d1", "d2", "d3"}) ||
		!strings.Contains(fs[0].Explanation, "made 3 decisions between 2026-11-02T09:00:00Z and 2026-11-02T10:00:00Z") {
		t.Fatalf("findings %+v", fs)
	}
}

func TestCredentialRotation(t *testing.T) {
	cfg := mustConfig(t, `{"default":{"rotation_period":"30d"}}`)
	mk := func(id string, at time.Duration) *lineage.Record {
		r := rec(id, at)
		r.Delegation.IssuedAt = r.Time
		r.Delegation.ExpiresAt = t0.Add(at + time.Hour).Format(time.RFC3339Nano)
		return r
	}
	day := 24 * time.Hour
	if fs := ofKind(run(t, cfg, mk("first", 0), mk("day29", 29*day), mk("day30", 30*day)), CredentialRotation); len(fs) != 0 {
		t.Fatalf("within the period: %+v", fs)
	}
	fs := ofKind(run(t, cfg, mk("first", 0), mk("day31", 31*day), mk("day40", 40*day)), CredentialRotation)
	if len(fs) != 1 || !slices.Equal(evidenceIDs(fs[0]), []string{"first", "day31"}) || fs[0].Evidence[0].Note != "first seen" {
		t.Fatalf("findings %+v", fs)
	}
}

func TestDisabledKinds(t *testing.T) {
	r := rec("r", time.Minute)
	r.Delegation = nil
	cfg := mustConfig(t, `{"tenants":{"acme":{"disabled":["static_credential"]}}}`)
	if fs := run(t, cfg, r); len(fs) != 0 {
		t.Fatalf("disabled: %+v", fs)
	}
	other := rec("r2", time.Minute)
	other.Tenant = "globex"
	other.Delegation = nil
	if fs := run(t, cfg, other); len(ofKind(fs, StaticCredential)) != 1 {
		t.Fatalf("other tenant keeps the default: %+v", fs)
	}
}

// TestStateSurvivesRestart splits a stream at every point, persisting the state TakeDirty
// reports into a map and loading it into a new engine, and requires the same findings as one
// uninterrupted engine.
func TestStateSurvivesRestart(t *testing.T) {
	cfg := mustConfig(t, `{"default":{"oversight_window":"1h","rotation_period":"1d","review_window":"2h"}}`)
	var recs []*lineage.Record
	for i := range 40 {
		r := rec(fmt.Sprint("r", i), time.Duration(i)*17*time.Minute)
		r.Delegation.IssuedAt = r.Time
		r.Delegation.ExpiresAt = t0.Add(time.Duration(i)*17*time.Minute + time.Hour).Format(time.RFC3339Nano)
		switch i % 5 {
		case 1:
			r.Role = "critic"
		case 2:
			r.Decision.Effect = lineage.EffectEscalate
		case 3:
			r.Delegation.Scope = append(r.Delegation.Scope, fmt.Sprint("extra:", i))
		}
		if i%7 == 0 {
			r.AISystem = &lineage.AISystem{ID: "ais-credit", RiskClass: "high"}
		}
		recs = append(recs, r)
	}
	want := run(t, cfg, recs...)
	if len(want) < 4 {
		t.Fatalf("the stream shows only %d findings", len(want))
	}
	for split := 1; split < len(recs); split += 3 {
		store := map[stateKey][]byte{}
		e1 := NewEngine(cfg)
		var occ []Occurrence
		for i, r := range recs[:split] {
			at, _ := time.Parse(time.RFC3339Nano, r.Time)
			occ = e1.Observe(uint64(i), r, at, occ)
		}
		occ = e1.EndBatch(occ)
		items, err := e1.TakeDirty()
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			k := stateKey{it.Tenant, it.Space, it.Key}
			if it.Value == nil {
				delete(store, k)
			} else {
				store[k] = it.Value
			}
		}
		var loaded []StateItem
		for k, v := range store {
			loaded = append(loaded, StateItem{Tenant: k.tenant, Space: k.space, Key: k.key, Value: v})
		}
		e2 := NewEngine(cfg)
		if err := e2.Load(loaded); err != nil {
			t.Fatal(err)
		}
		for i, r := range recs[split:] {
			at, _ := time.Parse(time.RFC3339Nano, r.Time)
			occ = e2.Observe(uint64(split+i), r, at, occ)
		}
		occ = e2.EndBatch(occ)
		got := aggregate(occ)
		Sort(got)
		w := slices.Clone(want)
		Sort(w)
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(w)
		if string(gj) != string(wj) {
			t.Fatalf("split at %d:\n got %s\nwant %s", split, gj, wj)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, bad := range []string{
		`{"tenants":{"acme":{"disabled":["nope"]}}}`,
		`{"default":{"unknown_field":1}}`,
		`{"default":{"review_window":"-1h"}}`,
		`{"default":{"review_window":"soon"}}`,
		`{"default":{"action_scopes":[{"action":"x","scopes":[]}]}}`,
		`{"tenants":{"":{}}}`,
		`{} {}`,
	} {
		if _, err := ParseConfig([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
	c := mustConfig(t, `{"default":{"rotation_period":"45d"},"tenants":{"acme":{"session_gap":"10m","sensitive_scope_patterns":[]}}}`)
	a := c.For("acme")
	if time.Duration(a.RotationPeriod) != 45*24*time.Hour || time.Duration(a.SessionGap) != 10*time.Minute ||
		len(a.SensitiveScopes) != 0 || time.Duration(a.ReviewWindow) != 24*time.Hour {
		t.Errorf("merged config %+v", a)
	}
}

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		p, s string
		ok   bool
	}{
		{"svc-*", "svc-x", true}, {"svc-*", "svc-", true}, {"svc-*", "xsvc-x", false},
		{"*prod*", "prod", true}, {"*prod*", "deploy:production", true}, {"*prod*", "pro-d", false},
		{"*:write", "cases:write", true}, {"*:write", "cases:writer", false}, {"a*b*c", "aXbYbZc", true},
		{"", "", true}, {"", "x", false}, {"*", "", true},
	} {
		if got := Match(c.p, c.s); got != c.ok {
			t.Errorf("Match(%q, %q) = %v", c.p, c.s, got)
		}
	}
}

// TestBatchingDoesNotMatter: where EndBatch falls (after every record, every few, or once) does
// not change the findings, so the live worker, a rebuild and an export agree. The stream has the
// edges where it could: a review arriving just after its escalation's window closed, a record of
// a high-risk system's window arriving after the window ended, a session continued after
// another record passed its gap, and Lineage's own records with a far-future time.
func TestBatchingDoesNotMatter(t *testing.T) {
	cfg := mustConfig(t, `{"default":{"oversight_window":"1h","review_window":"30m","session_gap":"20m"}}`)
	var recs []*lineage.Record
	n := 0
	add := func(at time.Duration, edit func(r *lineage.Record)) {
		n++
		r := rec(fmt.Sprint("r", n), at)
		r.Delegation.IssuedAt = t0.Add(at - time.Minute).Format(time.RFC3339Nano)
		r.Delegation.ExpiresAt = t0.Add(at + time.Hour).Format(time.RFC3339Nano)
		if edit != nil {
			edit(r)
		}
		recs = append(recs, r)
	}
	review := func(parent string) func(r *lineage.Record) {
		return func(r *lineage.Record) {
			r.ParentID = parent
			r.HumanOversight = &lineage.HumanOversight{Reviewer: lineage.Person{ID: "rev@acme.example", Issuer: "https://login.acme.example/"}, Outcome: "approved"}
		}
	}
	carol := func(r *lineage.Record) { r.User.ID = "carol@acme.example" }
	for round := range 4 {
		base := time.Duration(round) * 6 * time.Hour
		// An escalation; another user's record passes its 30-minute window; then its review,
		// dated inside the window, is logged: late.
		add(base, func(r *lineage.Record) { r.Decision.Effect = lineage.EffectEscalate })
		esc := recs[len(recs)-1].ID
		add(base+31*time.Minute, carol)
		add(base+25*time.Minute, review(esc))
		// A session of alice with the agent; bob's record passes its 20-minute gap; then alice's
		// record dated within the gap adds a scope: a new session, not growth.
		add(base+40*time.Minute, nil)
		add(base+65*time.Minute, func(r *lineage.Record) { r.User.ID = "bob@acme.example" })
		add(base+55*time.Minute, func(r *lineage.Record) { r.Delegation.Scope = append(r.Delegation.Scope, "prod:deploy") })
		// A high-risk system decides in the window [base+2h, base+3h); a record passes the
		// window's end; then a review of that system dated inside it is logged: late.
		high := func(r *lineage.Record) { r.AISystem = &lineage.AISystem{ID: "ais-credit", RiskClass: "high"} }
		add(base+2*time.Hour+5*time.Minute, high)
		add(base+3*time.Hour+time.Minute, carol)
		add(base+2*time.Hour+50*time.Minute, func(r *lineage.Record) { high(r); review("none")(r) })
		// Growth that is real (same session), and Lineage's own record with a far-future time.
		add(base+4*time.Hour, nil)
		add(base+4*time.Hour+5*time.Minute, func(r *lineage.Record) { r.Delegation.Scope = append(r.Delegation.Scope, "reports:read") })
		add(400*24*time.Hour, func(r *lineage.Record) {
			r.ID = fmt.Sprint("export-", round)
			r.Source = lineage.Source{ID: "lineage-exporter", Type: OwnSourceType}
			r.Delegation = nil
		})
	}
	runEvery := func(k int) string {
		e := NewEngine(cfg)
		var occ []Occurrence
		for i, r := range recs {
			at, err := time.Parse(time.RFC3339Nano, r.Time)
			if err != nil {
				t.Fatal(err)
			}
			occ = e.Observe(uint64(i), r, at, occ)
			if (i+1)%k == 0 {
				occ = e.EndBatch(occ)
			}
		}
		fs := aggregate(e.EndBatch(occ))
		Sort(fs)
		b, _ := json.Marshal(fs)
		return string(b)
	}
	want := runEvery(len(recs) + 1)
	for _, k := range []int{1, 2, 3, 5, 8, 13} {
		if got := runEvery(k); got != want {
			t.Fatalf("EndBatch every %d records:\n got %s\nwant %s", k, got, want)
		}
	}
	var fs []Finding
	json.Unmarshal([]byte(want), &fs)
	kinds := map[Kind]int{}
	for _, f := range fs {
		kinds[f.Kind]++
		for _, e := range f.Evidence {
			if strings.HasPrefix(e.ID, "export-") {
				t.Fatalf("Lineage's own record is evidence of %+v", f)
			}
		}
	}
	// Every round: the late-reviewed escalation and the unreviewed window are reported (8
	// missing_oversight), and only the real growth is (4 scope_escalation).
	if kinds[MissingOversight] != 8 || kinds[ScopeEscalation] != 4 {
		t.Fatalf("findings by kind %v, want 8 missing_oversight and 4 scope_escalation", kinds)
	}
}
