package demo

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/query/findings"
)

// streamHash is the SHA-256 of the JSON of the first n records of New(o), one per line.
func streamHash(t *testing.T, o Options, n int) string {
	t.Helper()
	g := New(o)
	h := sha256.New()
	for i := 0; i < n; i++ {
		r := g.Next()
		b, err := json.Marshal(&r)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		h.Write(b)
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestStreamUnchangedWithoutFailureModes pins the stream benchmarks, end-to-end tests and cached
// benchmark data rely on: the hashes were computed with the generator of commit 7e2086b, before
// Options.FailureModes existed.
func TestStreamUnchangedWithoutFailureModes(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Seed: 1}, "2c695784d162c42ecaac82d7949be0188179a7fe531b589f5d3d0b19715e5098"},
		{Options{Seed: 42, Tenants: 8}, "8ebd7b7b233dfadd09f0e7b13f48ab1026aca6617b7525869a45944b1d363dae"},
		{Options{Seed: 7, Tenants: 2, Start: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), Step: time.Minute},
			"006678d8c986f24bf97cf1183eedd9de6691cd8b0148074e30ebeaec02a728ce"},
	} {
		if got := streamHash(t, c.o, 20_000); got != c.want {
			t.Errorf("%+v: the first 20,000 records hash to %s, want %s: the stream without failure modes changed", c.o, got, c.want)
		}
	}
	// The option changes the stream (the hash would not notice an option that does nothing).
	if streamHash(t, Options{Seed: 1, FailureModes: true}, 20_000) == streamHash(t, Options{Seed: 1}, 20_000) {
		t.Error("FailureModes does not change the stream")
	}
}

// demoConfig parses FindingsConfig.
func demoConfig(t *testing.T) *findings.Configs {
	t.Helper()
	cfg, err := findings.ParseConfig(FindingsConfig())
	if err != nil {
		t.Fatalf("FindingsConfig: %v", err)
	}
	return cfg
}

// detect runs recs through a findings engine in batches of 256, as an indexer would, and returns
// the findings by kind and the ids of the records that are evidence of any of them. Every record
// must also survive the strict decoder unchanged.
func detect(t *testing.T, cfg *findings.Configs, recs []lineage.Record) (map[findings.Kind][]findings.Finding, map[string]bool) {
	t.Helper()
	e := findings.NewEngine(cfg)
	var occ []findings.Occurrence
	for i := range recs {
		r := &recs[i]
		data, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("record %d: marshal: %v", i, err)
		}
		back, err := lineage.DecodeRecord(data)
		if err != nil {
			t.Fatalf("record %d (%s): DecodeRecord: %v\n%s", i, r.ID, err, data)
		}
		if !reflect.DeepEqual(back, r) {
			t.Fatalf("record %d changed in a JSON round trip:\n%+v\n%+v", i, r, back)
		}
		at, err := r.ParsedTime()
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		occ = e.Observe(uint64(i), r, at, occ)
		if i%256 == 255 {
			occ = e.EndBatch(occ)
		}
	}
	occ = e.EndBatch(occ)
	if e.Truncated != 0 {
		t.Fatalf("engine state truncated %d times", e.Truncated)
	}
	byKey := map[string]*findings.Finding{}
	var keys []string
	evidence := map[string]bool{}
	for _, o := range occ {
		evidence[o.Evidence.ID] = true
		k := o.Tenant + "|" + string(o.Kind) + "|" + o.Key
		if f, ok := byKey[k]; ok {
			f.Add(o)
			continue
		}
		f := findings.New(o)
		byKey[k] = &f
		keys = append(keys, k)
	}
	out := map[findings.Kind][]findings.Finding{}
	for _, k := range keys {
		f := byKey[k]
		out[f.Kind] = append(out[f.Kind], *f)
	}
	return out, evidence
}

// keyPrefixes lists, for each kind, the prefixes of the finding keys each failure mode shows
// (the engine's keys, query/findings/engine.go); "" is any key.
var keyPrefixes = map[findings.Kind][]string{
	findings.StaticCredential:   {"service-account:svc-", "no-delegation:"},
	findings.InferredIdentity:   {"issuer-not-https:http://sso.", "unbound-identity:"},
	findings.SharedAgent:        {""},
	findings.DelegationMisuse:   {"expired:", "long-lived:", "actor-chain:"},
	findings.OutOfScope:         {""},
	findings.ScopeEscalation:    {""},
	findings.MissingOversight:   {"escalation:", "window:"},
	findings.CredentialRotation: {"spiffe://acme-bank.example/ns/legacy/sa/"},
}

// TestFailureModesShowEveryFinding is the walkthrough's promise: 10,000 records of the demo
// with failure modes show every kind of finding (every variant of each), while few records are
// evidence of any.
func TestFailureModesShowEveryFinding(t *testing.T) {
	cfg := demoConfig(t)
	for _, o := range []Options{{Seed: 1}, {Seed: 2}, {Seed: 3}, {Seed: 4, Tenants: 8}} {
		o.FailureModes = true
		t.Run(fmt.Sprintf("seed%d-tenants%d", o.Seed, o.Tenants), func(t *testing.T) {
			recs := Generate(o, 10_000)
			checkStructure(t, recs)
			byKind, evidence := detect(t, cfg, recs)
			for _, k := range findings.Kinds {
				fs := byKind[k.Kind]
				for _, p := range keyPrefixes[k.Kind] {
					if !slices.ContainsFunc(fs, func(f findings.Finding) bool { return strings.HasPrefix(f.Key, p) }) {
						t.Errorf("no %s finding with a key starting %q; %d findings of the kind: %v", k.Kind, p, len(fs), keysOf(fs))
					}
				}
			}
			share := float64(len(evidence)) / float64(len(recs))
			counts := map[findings.Kind]int{}
			for k, fs := range byKind {
				counts[k] = len(fs)
			}
			t.Logf("findings by kind %v; %d of %d records (%.2f%%) are evidence", counts, len(evidence), len(recs), 100*share)
			if share >= 0.05 {
				t.Errorf("%.2f%% of the records are evidence of a finding; failure modes should be rare (< 5%%)", 100*share)
			}
		})
	}
}

func keysOf(fs []findings.Finding) []string {
	var ks []string
	for _, f := range fs {
		ks = append(ks, strings.ReplaceAll(f.Key, "\x00", " "))
	}
	return ks
}

// checkStructure checks what holds of every stream, failure modes or not: unique valid ids,
// record times in order, and every parent an earlier record of the same tenant and user.
func checkStructure(t *testing.T, recs []lineage.Record) {
	t.Helper()
	byID := make(map[string]*lineage.Record, len(recs))
	var last time.Time
	for i := range recs {
		r := &recs[i]
		if err := r.Validate(); err != nil {
			t.Fatalf("record %d (%s): %v", i, r.ID, err)
		}
		if byID[r.ID] != nil {
			t.Fatalf("record %d: duplicate id %s", i, r.ID)
		}
		at, err := r.ParsedTime()
		if err != nil {
			t.Fatal(err)
		}
		if at.Before(last) {
			t.Fatalf("record %d: time %s before the previous record's %s", i, r.Time, last)
		}
		last = at
		if r.ParentID != "" {
			p := byID[r.ParentID]
			if p == nil || p.Tenant != r.Tenant || p.User != r.User {
				t.Fatalf("record %d: parent %s is not an earlier record of the same tenant and user", i, r.ParentID)
			}
		}
		byID[r.ID] = r
	}
}

// TestCleanTrafficRaisesNoFinding shows that the demo configuration leaves the traffic without
// failure modes clean: the only finding is the shared agent identity the demo always injects.
func TestCleanTrafficRaisesNoFinding(t *testing.T) {
	cfg := demoConfig(t)
	for _, o := range []Options{{Seed: 1}, {Seed: 2}, {Seed: 3}} {
		byKind, _ := detect(t, cfg, Generate(o, 10_000))
		if len(byKind[findings.SharedAgent]) == 0 {
			t.Errorf("seed %d: no shared agent identity in 10,000 records (SharedAgentRate %.2f)", o.Seed, SharedAgentRate)
		}
		for k, fs := range byKind {
			if k != findings.SharedAgent {
				t.Errorf("seed %d: %d %s findings in clean traffic: %v", o.Seed, len(fs), k, keysOf(fs))
			}
		}
	}
	// Longer than the walkthrough: clean traffic stays clean across many oversight windows.
	byKind, _ := detect(t, cfg, sample())
	for k, fs := range byKind {
		if k != findings.SharedAgent {
			t.Errorf("sample: %d %s findings in clean traffic: %v", len(fs), k, keysOf(fs))
		}
	}
}

// TestFailureModesTouchOnlyTheirSessions checks that a failure changes its own session only:
// every other session's records are those of the stream without failure modes, and each
// scheduled mode is placed about once per FailureBlock sessions.
func TestFailureModesTouchOnlyTheirSessions(t *testing.T) {
	const n = 30_000
	off := map[string]lineage.Record{}
	for _, r := range Generate(Options{Seed: 5}, n+1000) {
		off[r.ID] = r
	}
	g := New(Options{Seed: 5, FailureModes: true})
	failed := map[string][]mode{}
	g.fail.hook = func(baseID string, m mode) { failed[baseID] = append(failed[baseID], m) }
	placed := map[mode]int{}
	sessions := map[string]bool{}
	for i := 0; i < n; i++ {
		r := g.Next()
		base := r.ID[:strings.LastIndexByte(r.ID, '-')]
		sessions[base] = true
		if ms, ok := failed[base]; ok {
			if _, ok := off[r.ID]; !ok && !slices.Contains(ms, modeOutOfScope) && !slices.Contains(ms, modeScopeGrowth) {
				t.Errorf("record %s of a %v session is not in the stream without failures", r.ID, ms)
			}
			continue
		}
		if i == 0 && strings.HasSuffix(r.ID, "-legacy-1") {
			if at, _ := r.ParsedTime(); !at.Equal(DefaultStart.Add(-LegacyAge)) || r.Agent.ID != g.fail.legacy.id {
				t.Errorf("first record %+v, want the legacy identity's first use %s before Start", r, LegacyAge)
			}
			continue
		}
		if want, ok := off[r.ID]; !ok || !reflect.DeepEqual(r, want) {
			t.Fatalf("record %s of a session without failure differs from the stream without failures:\n%+v\n%+v", r.ID, r, want)
		}
	}
	for _, ms := range failed {
		for _, m := range ms {
			placed[m]++
		}
	}
	blocks := float64(len(sessions)) / FailureBlock
	t.Logf("%d sessions (%.1f blocks), %d with failures: %v", len(sessions), blocks, len(failed), placed)
	for m := firstScheduled; m <= lastScheduled; m++ {
		if c := float64(placed[m]); c < blocks-1.5 || c > blocks+1.5 {
			t.Errorf("%v placed %d times in %.1f blocks of %d sessions", m, placed[m], blocks, FailureBlock)
		}
	}
	if placed[modeOversightGap] == 0 {
		t.Error("no oversight gap")
	}
	if f := float64(len(failed)) / float64(len(sessions)); f > 0.06 {
		t.Errorf("%.1f%% of sessions carry a failure; want a low rate", 100*f)
	}
}

// TestFindingsConfigMatchesCatalogue checks findings.json against the catalogue: each company
// trusts its own issuer, every action its crews take maps to a scope they are delegated (or to
// no rule), the failure modes' actions map to scopes they are not, and the windows fit the
// demo's time scale and the failure modes' values.
func TestFindingsConfigMatchesCatalogue(t *testing.T) {
	cfg := demoConfig(t)
	for i := range catalogue {
		tn := newTenant(i)
		c := cfg.For(tn.name)
		d := tn.dom
		if !slices.Equal(c.TrustedIssuers, []string{tn.issuer}) {
			t.Errorf("%s: trusted issuers %v, want [%s]", tn.name, c.TrustedIssuers, tn.issuer)
		}
		sc := &sessionCtx{t: tn, caseRef: d.caseKind + "/" + d.casePrefix + "000042", subject: d.subjectPrefix + "100042"}
		need := func(action, target string) ([]string, bool) {
			for _, r := range c.ActionScopes {
				if r.Action == action && (r.Target == "" || findings.Match(r.Target, target)) {
					return r.Scopes, true
				}
			}
			return nil, false
		}
		granted := func(scopes, by []string) bool {
			return slices.ContainsFunc(scopes, func(s string) bool { return slices.Contains(by, s) })
		}
		for _, a := range []lineage.Action{{Type: "plan", Target: sc.caseRef}, {Type: "review", Target: sc.caseRef}} {
			if s, ok := need(a.Type, a.Target); !ok || !granted(s, d.scope) {
				t.Errorf("%s: %s %s needs %v (rule: %v), delegated %v", tn.name, a.Type, a.Target, s, ok, d.scope)
			}
		}
		for j := range d.steps {
			st := &d.steps[j]
			s, ok := need(st.action, sc.target(st))
			switch {
			case !ok && st.action != "data.export" && !(d == wealth && st.action == "db.write"):
				t.Errorf("%s: no rule for %s %s", tn.name, st.action, sc.target(st))
			case ok && !granted(s, d.scope):
				t.Errorf("%s: clean action %s %s needs %v, delegated %v", tn.name, st.action, sc.target(st), s, d.scope)
			}
		}
		if s, ok := need(d.oosStep.action, sc.target(&d.oosStep)); !ok || granted(s, d.scope) {
			t.Errorf("%s: out-of-scope action %s %s needs %v (rule: %v), which is delegated", tn.name, d.oosStep.action, sc.target(&d.oosStep), s, ok)
		}
		s, ok := need(d.growStep.action, sc.target(&d.growStep))
		if !ok || granted(s, d.scope) || !slices.Contains(s, d.growScope) {
			t.Errorf("%s: scope-growth action %s %s needs %v (rule: %v), want %s alone", tn.name, d.growStep.action, sc.target(&d.growStep), s, ok, d.growScope)
		}
	}

	for _, name := range []string{"acme-bank", "acme-bank-2"} {
		c := cfg.For(name)
		checks := []struct {
			ok   bool
			what string
		}{
			{time.Duration(c.OversightWindow) == OversightWindow, "oversight_window is OversightWindow"},
			{time.Duration(c.ReviewWindow) > maxReviewDelay, "review_window exceeds the demo's review delay"},
			{time.Duration(c.SessionGap) > maxReviewDelay, "session_gap spans a session with its review"},
			{time.Duration(c.RotationPeriod) < LegacyAge, "the legacy identity outlives rotation_period"},
			{time.Duration(c.RotationPeriod) > 24*time.Hour, "rotation_period leaves clean runs of a day clean"},
			{time.Duration(c.MaxDelegationLifetime) >= tokenLifetime, "max_delegation_lifetime admits the demo's tokens"},
			{time.Duration(c.MaxDelegationLifetime) < LongLivedLifetime, "long-lived tokens exceed max_delegation_lifetime"},
			{time.Duration(c.DelegationLeeway) < 5*time.Minute, "expired tokens expire by more than the leeway"},
			{slices.Equal(c.HighRiskClasses, []string{"high"}), "high_risk_classes"},
		}
		for _, ch := range checks {
			if !ch.ok {
				t.Errorf("%s: want %s: %+v", name, ch.what, c)
			}
		}
	}
}

// TestReviewDelay checks the bound the oversight gap relies on: every human review comes within
// maxReviewDelay of the escalation it settles.
func TestReviewDelay(t *testing.T) {
	recs := sample()
	at := map[string]time.Time{}
	reviews := 0
	for i := range recs {
		r := &recs[i]
		ts, err := r.ParsedTime()
		if err != nil {
			t.Fatal(err)
		}
		at[r.ID] = ts
		if r.HumanOversight != nil {
			reviews++
			if d := ts.Sub(at[r.ParentID]); d <= 0 || d >= maxReviewDelay {
				t.Fatalf("record %s reviews %s after %s, want within (0, %s)", r.ID, r.ParentID, d, maxReviewDelay)
			}
		}
	}
	if reviews == 0 {
		t.Fatal("no reviews")
	}
}
