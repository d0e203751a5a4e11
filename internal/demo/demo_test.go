package demo

import (
	"bytes"
	"encoding/json"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lineage-audit/lineage"
)

// sample is 100,000 records of the default options, generated once and shared by the tests
// that only read them.
var sample = sync.OnceValue(func() []lineage.Record {
	return Generate(Options{Seed: 1}, 100_000)
})

func TestDeterministic(t *testing.T) {
	a := Generate(Options{Seed: 42, Tenants: 5}, 20_000)
	b := Generate(Options{Seed: 42, Tenants: 5}, 20_000)
	for i := range a {
		if !reflect.DeepEqual(a[i], b[i]) {
			t.Fatalf("record %d differs between two runs of the same seed:\n%+v\n%+v", i, a[i], b[i])
		}
	}
	c := Generate(Options{Seed: 43, Tenants: 5}, 100)
	same := 0
	for i := range c {
		if c[i].ID == a[i].ID || c[i].Trace.TraceID == a[i].Trace.TraceID {
			same++
		}
	}
	if same > 0 {
		t.Errorf("seeds 42 and 43 share %d of 100 ids or trace ids", same)
	}
	// The directory (companies, employees, agents and their models) does not depend on the
	// seed: only the traffic does.
	models := map[string]lineage.Model{}
	for _, r := range a {
		models[r.Agent.ID] = *r.Agent.Model
	}
	for _, r := range c {
		if m, ok := models[r.Agent.ID]; !ok || m != *r.Agent.Model {
			t.Errorf("agent %s runs %+v with seed 43 but %+v with seed 42", r.Agent.ID, *r.Agent.Model, m)
		}
	}
}

func TestIDsUnique(t *testing.T) {
	recs := sample()
	ids := make(map[string]bool, len(recs))
	tenantRE := regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	for i := range recs {
		r := &recs[i]
		if ids[r.ID] {
			t.Fatalf("record %d: duplicate id %q", i, r.ID)
		}
		ids[r.ID] = true
		if len(r.ID) > lineage.MaxIDLen || strings.ContainsAny(r.ID, " *>") {
			t.Fatalf("record %d: id %q is not a valid NATS message id", i, r.ID)
		}
		if !tenantRE.MatchString(r.Tenant) {
			t.Fatalf("record %d: tenant %q", i, r.Tenant)
		}
	}
}

func TestRecordsValidateAndRoundTrip(t *testing.T) {
	recs := sample()
	var size int
	for i := range recs {
		r := &recs[i]
		if err := r.Validate(); err != nil {
			t.Fatalf("record %d (%s) does not validate: %v", i, r.ID, err)
		}
		data, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("record %d: marshal: %v", i, err)
		}
		back, err := lineage.DecodeRecord(data)
		if err != nil {
			t.Fatalf("record %d: DecodeRecord: %v\n%s", i, err, data)
		}
		if !reflect.DeepEqual(back, r) {
			t.Fatalf("record %d changed in a JSON round trip:\n%+v\n%+v", i, r, back)
		}
		canon, err := r.Canonical()
		if err != nil {
			t.Fatalf("record %d: Canonical: %v", i, err)
		}
		if c2, _ := back.Canonical(); !bytes.Equal(canon, c2) {
			t.Fatalf("record %d: canonical form changed in a round trip", i)
		}
		size += len(canon)
	}
	t.Logf("%d records, mean canonical size %d bytes", len(recs), size/len(recs))
}

// TestLineageStructure checks the delegation and causation structure that lineage queries rely
// on: every record leads back through parent_id to a planner record of the same tenant and user,
// which the user's delegation token names as the only actor.
func TestLineageStructure(t *testing.T) {
	recs := sample()
	type seen struct {
		i    int
		root *lineage.Record // the planner record at the top of the tree
	}
	byID := make(map[string]seen, len(recs))
	tokens := make(map[string]string) // token_id → root id
	var last time.Time
	for i := range recs {
		r := &recs[i]
		at, err := r.ParsedTime()
		if err != nil {
			t.Fatal(err)
		}
		if at.Before(last) {
			t.Fatalf("record %d: time %s before the previous record's %s", i, r.Time, last)
		}
		last = at
		if !strings.HasSuffix(r.Time, "Z") {
			t.Fatalf("record %d: time %q is not UTC", i, r.Time)
		}
		d := r.Delegation
		if d == nil || d.Mechanism != "rfc8693" || d.TokenID == "" || d.Issuer != r.User.Issuer ||
			!(parse(t, d.IssuedAt).Before(at) && at.Before(parse(t, d.ExpiresAt))) ||
			len(d.Actors) == 0 || d.Actors[0] != r.Agent.ID {
			t.Fatalf("record %d: delegation %+v does not authorize agent %s at %s", i, d, r.Agent.ID, r.Time)
		}
		if !strings.HasPrefix(r.Agent.ID, "spiffe://"+r.Tenant+".example/") {
			t.Fatalf("record %d: agent %q is not a SPIFFE id of the tenant's trust domain", i, r.Agent.ID)
		}
		if !strings.HasPrefix(r.User.Issuer, "https://") || !strings.HasSuffix(r.User.ID, "@"+r.Tenant+".example") {
			t.Fatalf("record %d: user %+v", i, r.User)
		}

		var root *lineage.Record
		if r.ParentID == "" {
			if r.Role != "planner" || r.Action.Type != "plan" || !slices.Equal(d.Actors, []string{r.Agent.ID}) {
				t.Fatalf("record %d: a root record must be a planner's plan with act chain [planner]: %+v", i, r)
			}
			if prev, dup := tokens[d.TokenID]; dup {
				t.Fatalf("record %d: token %s already delegated session %s", i, d.TokenID, prev)
			}
			tokens[d.TokenID] = r.ID
			root = r
		} else {
			p, ok := byID[r.ParentID]
			if !ok {
				t.Fatalf("record %d: parent %q is not an earlier record", i, r.ParentID)
			}
			parent := &recs[p.i]
			root = p.root
			if parent.Tenant != r.Tenant || parent.User != r.User {
				t.Fatalf("record %d: parent %s belongs to %s/%s, not %s/%s", i, parent.ID, parent.Tenant, parent.User.ID, r.Tenant, r.User.ID)
			}
			if pt, _ := parent.ParsedTime(); pt.After(at) {
				t.Fatalf("record %d: parent %s is later (%s) than its child (%s)", i, parent.ID, parent.Time, r.Time)
			}
			if !slices.Equal(d.Actors, []string{r.Agent.ID, root.Agent.ID}) {
				t.Fatalf("record %d: act chain %v, want [%s %s]", i, d.Actors, r.Agent.ID, root.Agent.ID)
			}
			if d.TokenID != root.Delegation.TokenID || r.Trace.TraceID != root.Trace.TraceID {
				t.Fatalf("record %d: token or trace differ from the session's planner %s", i, root.ID)
			}
			if r.HumanOversight != nil && parent.Decision.Effect != lineage.EffectEscalate {
				t.Fatalf("record %d: human oversight of a decision that was not escalated", i)
			}
		}
		if h := r.HumanOversight; h != nil {
			if h.Reviewer.ID == r.User.ID || h.Reviewer.Issuer != r.User.Issuer || parse(t, h.Time).After(at) {
				t.Fatalf("record %d: human oversight %+v by the delegating user, another IdP, or after the record", i, h)
			}
			want := map[string]string{"approved": lineage.EffectAllow, "rejected": lineage.EffectDeny}[h.Outcome]
			if r.Decision.Effect != want {
				t.Fatalf("record %d: oversight outcome %q with effect %q", i, h.Outcome, r.Decision.Effect)
			}
		}
		byID[r.ID] = seen{i: i, root: root}
	}
}

func parse(t *testing.T, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

func TestMix(t *testing.T) {
	recs := sample()
	effects := map[string]int{}
	var oversight, approved, rejected, sessions int
	escalated := map[string]bool{}        // session (root id) → escalated
	roles := map[string]map[string]bool{} // root id → agent ids of executor and critic
	root := map[string]string{}           // record id → root id
	tenants := map[string]int{}
	for i := range recs {
		r := &recs[i]
		effects[r.Decision.Effect]++
		tenants[r.Tenant]++
		if r.ParentID == "" {
			sessions++
			root[r.ID] = r.ID
			roles[r.ID] = map[string]bool{}
		} else {
			root[r.ID] = root[r.ParentID]
		}
		s := root[r.ID]
		if r.Decision.Effect == lineage.EffectEscalate {
			escalated[s] = true
		}
		if r.Role == "executor" || r.Role == "critic" {
			roles[s][r.Role+" "+r.Agent.ID] = true
		}
		if h := r.HumanOversight; h != nil {
			oversight++
			if h.Outcome == "approved" {
				approved++
			} else {
				rejected++
			}
		}
	}
	shared := 0
	for _, m := range roles {
		for k := range m {
			if id, ok := strings.CutPrefix(k, "executor "); ok && m["critic "+id] {
				shared++
			}
		}
	}
	t.Logf("%d records, %d sessions: effects %v; %d escalated sessions, %d oversight records (%d approved, %d rejected); %d shared-agent sessions; tenants %v",
		len(recs), sessions, effects, len(escalated), oversight, approved, rejected, shared, tenants)

	for _, e := range []string{lineage.EffectAllow, lineage.EffectDeny, lineage.EffectModify, lineage.EffectEscalate} {
		if effects[e] == 0 {
			t.Errorf("no %q decisions", e)
		}
	}
	if effects[lineage.EffectAllow] < len(recs)*3/4 {
		t.Errorf("allow is %d of %d decisions; it should be most of them", effects[lineage.EffectAllow], len(recs))
	}
	if f := float64(len(escalated)) / float64(sessions); f < 0.02 || f > 0.04 {
		t.Errorf("escalated sessions: %.3f, want about %.2f", f, EscalationRate)
	}
	// Every escalation is followed by a human's verdict, except those whose review falls
	// after the sample ends (reviews take up to five minutes, 150 sessions at the default step).
	if oversight > len(escalated) || oversight < len(escalated)-10 || approved == 0 || rejected == 0 {
		t.Errorf("%d escalations but %d oversight records (%d approved, %d rejected)", len(escalated), oversight, approved, rejected)
	}
	if f := float64(shared) / float64(sessions); f < 0.005 || f > 0.02 {
		t.Errorf("shared agent ids in %.4f of sessions, want about %.2f", f, SharedAgentRate)
	}
	if len(tenants) != DefaultTenants {
		t.Errorf("tenants %v, want %d", tenants, DefaultTenants)
	}
}

// TestInterleaving checks that sessions of several tenants are in flight at once, as on a real
// bus, rather than arriving one after the other.
func TestInterleaving(t *testing.T) {
	recs := sample()[:1000]
	root := map[string]string{}
	done := map[string]bool{} // sessions whose run of consecutive records has ended
	interleaved, prev := 0, ""
	tenants := map[string]bool{}
	for i := range recs {
		r := &recs[i]
		tenants[r.Tenant] = true
		s := r.ID
		if r.ParentID != "" {
			s = root[r.ParentID]
		}
		root[r.ID] = s
		if s != prev {
			if done[s] {
				interleaved++
			}
			done[prev] = true
			prev = s
		}
	}
	if interleaved < 50 || len(tenants) < 3 {
		t.Errorf("%d session resumptions and %d tenants in 1000 records: sessions do not interleave", interleaved, len(tenants))
	}
}

func TestOptions(t *testing.T) {
	recs := Generate(Options{}, 50)
	if recs[0].Time < "2026-11-01T00:00:00.000Z" || recs[0].Time > "2026-11-01T00:00:01.000Z" {
		t.Errorf("first record at %s, want just after the default start", recs[0].Time)
	}
	for _, r := range Generate(Options{}, 2000) {
		switch r.Tenant {
		case "acme-bank", "globex-lending":
			if r.AISystem.RiskClass != "high" {
				t.Errorf("%s: risk class %q, lending is high-risk (Annex III 5(b))", r.Tenant, r.AISystem.RiskClass)
			}
		case "initech-health":
		default:
			t.Fatalf("tenant %q with default options", r.Tenant)
		}
	}

	start := time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	recs = Generate(Options{Seed: 9, Tenants: 20, Start: start, Step: time.Minute}, 5000)
	names := map[string]bool{}
	for i := range recs {
		names[recs[i].Tenant] = true
		if err := recs[i].Validate(); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if len(names) != 20 || !names["acme-bank-2"] {
		t.Errorf("tenants %v, want 20 including acme-bank-2", names)
	}
	if got := recs[0].Time[:16]; got != "2030-01-02T02:04" {
		t.Errorf("first record at %s, want the start in UTC", recs[0].Time)
	}
	if at, _ := recs[len(recs)-1].ParsedTime(); at.Sub(start) < 500*time.Minute {
		t.Errorf("5000 records with a one-minute step end at %s, too early", at)
	}
}

// TestBoundedMemory checks that the Generator holds only the sessions in flight, even when
// sessions overlap far more than the default step lets them.
func TestBoundedMemory(t *testing.T) {
	for _, step := range []time.Duration{DefaultStep, time.Millisecond, time.Nanosecond} {
		g := New(Options{Seed: 3, Step: step})
		peak, prev := 0, ""
		for i := 0; i < 100_000; i++ {
			r := g.Next()
			if r.Time < prev {
				t.Fatalf("step %v: record %d at %s before %s", step, i, r.Time, prev)
			}
			prev = r.Time
			peak = max(peak, len(g.active))
		}
		if peak > maxActive || len(g.free) > maxActive {
			t.Errorf("step %v: %d sessions in flight, %d free; the bound is %d", step, peak, len(g.free), maxActive)
		}
		t.Logf("step %v: at most %d sessions in flight", step, peak)
	}
}

func BenchmarkNext(b *testing.B) {
	g := New(Options{Seed: 1})
	b.ReportAllocs()
	for b.Loop() {
		_ = g.Next()
	}
}
