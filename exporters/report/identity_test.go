package report

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/query/findings"
	"github.com/lineage-audit/lineage/verify"
)

// plantedAt is a June 2026 day: the period of june().
var plantedAt = time.Date(2026, 6, 10, 9, 0, 0, 0, time.UTC)

// planted is a clean record (no finding with the default configuration): a person of an https
// identity provider delegated a one-hour token to one agent in one role, on a limited-risk
// system.
func planted(id, tenant string, at time.Time) lineage.Record {
	return lineage.Record{
		Schema: lineage.SchemaV1, ID: id, Time: at.Format(time.RFC3339Nano), Tenant: tenant,
		Source: lineage.Source{ID: "gw-1", Type: "gateway"},
		User:   lineage.Person{ID: "alice@" + tenant + ".example", Issuer: "https://login." + tenant + ".example/"},
		Agent:  lineage.Agent{ID: "planner-1", Model: &lineage.Model{Provider: "acme-ai", Name: "m", Version: "1"}},
		Role:   "planner",
		Action: lineage.Action{Type: "db.read", Target: "loans/42"},
		Decision: lineage.Decision{Effect: lineage.EffectAllow,
			Policy: lineage.Policy{ID: "p", Version: "1"}},
		Delegation: &lineage.Delegation{TokenID: "tok-" + id, Issuer: "https://login." + tenant + ".example/", Mechanism: "rfc8693",
			Scope: []string{"loans:read"}, IssuedAt: at.Add(-time.Minute).Format(time.RFC3339), ExpiresAt: at.Add(time.Hour).Format(time.RFC3339),
			Actors: []string{"planner-1"}},
		AISystem: &lineage.AISystem{ID: tenant + "/credit", RiskClass: "limited"},
	}
}

// plantedLog is a log with identity failures planted in, before and after June, for two
// tenants and two AI systems.
func plantedLog() []lineage.Record {
	var recs []lineage.Record
	add := func(id, tenant string, at time.Time, change func(r *lineage.Record)) {
		r := planted(id, tenant, at)
		if change != nil {
			change(&r)
		}
		recs = append(recs, r)
	}
	noToken := func(r *lineage.Record) { r.Delegation = nil }
	escalate := func(r *lineage.Record) { r.Decision.Effect = lineage.EffectEscalate }
	may := time.Date(2026, 5, 20, 9, 0, 0, 0, time.UTC)
	day := 24 * time.Hour

	// May, before the period: an escalation never reviewed whose window closes in May, and
	// actions without a token (one by the agent that fails again in June).
	add("may-clean", "acme-bank", may, nil)
	add("may-esc", "acme-bank", may.Add(time.Hour), escalate)
	add("may-notoken", "acme-bank", may.Add(day), func(r *lineage.Record) { noToken(r); r.Agent.ID = "agent-may" })
	add("may-notoken-p1", "acme-bank", may.Add(day+time.Hour), noToken)
	add("may-late", "acme-bank", may.Add(2*day), nil)

	// June.
	add("jun-clean", "acme-bank", plantedAt, nil)
	add("jun-notoken", "acme-bank", plantedAt.Add(5*time.Minute), noToken)
	add("jun-expired", "acme-bank", plantedAt.Add(10*time.Minute), func(r *lineage.Record) {
		r.Delegation.TokenID = "tok-exp"
		r.Delegation.IssuedAt = plantedAt.Add(-2 * time.Hour).Format(time.RFC3339)
		r.Delegation.ExpiresAt = plantedAt.Add(-time.Hour).Format(time.RFC3339)
	})
	add("jun-esc", "acme-bank", plantedAt.Add(time.Hour), escalate)
	add("jun-esc-ok", "acme-bank", plantedAt.Add(90*time.Minute), escalate)
	add("jun-review", "acme-bank", plantedAt.Add(2*time.Hour), func(r *lineage.Record) {
		r.ParentID = "jun-esc-ok"
		r.HumanOversight = &lineage.HumanOversight{Reviewer: lineage.Person{ID: "bob@acme-bank.example", Issuer: "https://login.acme-bank.example/"},
			Outcome: "approved", Time: plantedAt.Add(2 * time.Hour).Format(time.RFC3339)}
	})
	add("other-notoken", "other-bank", plantedAt.Add(day), func(r *lineage.Record) { noToken(r); r.Agent.ID = "other-agent" })
	// More than the review window after jun-esc: its window closes.
	add("jun-later", "acme-bank", plantedAt.Add(2*day), nil)
	// Another AI system of the tenant, with an agent id a browser must not read as markup.
	add("jun-chat-notoken", "acme-bank", plantedAt.Add(2*day+time.Hour), func(r *lineage.Record) {
		noToken(r)
		r.Agent.ID = "chat-<i>1</i>"
		r.Role = ""
		r.AISystem = &lineage.AISystem{ID: "acme-bank/chat", RiskClass: "limited"}
	})

	// July, after the period.
	add("jul-notoken", "acme-bank", time.Date(2026, 7, 2, 9, 0, 0, 0, time.UTC), func(r *lineage.Record) { noToken(r); r.Agent.ID = "agent-july" })
	add("jul-expired", "acme-bank", time.Date(2026, 7, 2, 10, 0, 0, 0, time.UTC), func(r *lineage.Record) {
		r.Delegation.IssuedAt = time.Date(2026, 6, 30, 23, 0, 0, 0, time.UTC).Format(time.RFC3339)
		r.Delegation.ExpiresAt = time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC).Format(time.RFC3339)
	})
	return recs
}

// identityView is a finding as the test compares it: kind, evidence ids, count.
type identityView struct {
	Kind     string
	Evidence string // ids joined with ","
	Count    uint64
}

func viewOf(fs []IdentityFinding) []identityView {
	var out []identityView
	for _, f := range fs {
		var ids []string
		for _, e := range f.Evidence {
			ids = append(ids, e.RecordID)
		}
		out = append(out, identityView{f.Kind, strings.Join(ids, ","), f.Count})
	}
	slices.SortFunc(out, func(a, b identityView) int { return strings.Compare(a.Kind+a.Evidence, b.Kind+b.Evidence) })
	return out
}

func exportWith(t *testing.T, e *Exporter, req Request) (*Result, *Document, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "exp")
	res, err := e.Export(context.Background(), req, dir, Run{ID: "exp-identity", RequestedBy: "apikey:compliance"})
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc Document
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	return res, &doc, dir
}

func TestIdentityFindingsOfThePeriod(t *testing.T) {
	r := newRig(t, plantedLog())
	byID := map[string]int{}
	for i, rec := range r.Recs {
		byID[rec.ID] = i // the rig appends in order, from log index 0
	}
	acme := []identityView{
		{"delegation_misuse", "jun-expired", 1},
		{"missing_oversight", "jun-esc", 1},
		{"static_credential", "jun-chat-notoken", 1},
		{"static_credential", "jun-notoken", 1},
	}
	for _, tc := range []struct {
		name  string
		chunk int
		req   Request
		want  []identityView
	}{
		{"eu-ai-act all systems", 0, june(KindEUAIAct, ""), acme},
		// EndBatch after every three entries: the windows close at the same records.
		{"eu-ai-act small chunks", 3, june(KindEUAIAct, ""), acme},
		{"fannie-mae", 0, june(KindFannieMae, ""), acme},
		{"one AI system", 0, june(KindEUAIAct, "acme-bank/credit"), []identityView{
			{"delegation_misuse", "jun-expired", 1},
			{"missing_oversight", "jun-esc", 1},
			{"static_credential", "jun-notoken", 1},
		}},
		{"other tenant", 0, Request{Kind: KindEUAIAct, Tenant: "other-bank", From: june("", "").From, To: june("", "").To}, []identityView{
			{"static_credential", "other-notoken", 1},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := testExporter(r)
			e.ChunkSize = tc.chunk
			res, doc, dir := exportWith(t, e, tc.req)
			if got := viewOf(doc.IdentityFindings); !slices.Equal(got, tc.want) {
				t.Fatalf("identity findings\n got %+v\nwant %+v", got, tc.want)
			}
			if res.IdentityFindings != len(tc.want) {
				t.Errorf("result counts %d identity findings, want %d", res.IdentityFindings, len(tc.want))
			}
			for i, f := range doc.IdentityFindings {
				ki := slices.IndexFunc(findings.Kinds, func(k findings.KindInfo) bool { return string(k.Kind) == f.Kind })
				if ki < 0 || f.Title != findings.Kinds[ki].Title || f.Pillar != findings.Kinds[ki].Pillar || f.Explanation == "" || len(f.ID) != 32 {
					t.Errorf("finding %+v", f)
				}
				if f.Severity != "high" {
					t.Errorf("finding %s: severity %s, want high", f.Kind, f.Severity)
				}
				ev := f.Evidence[0]
				if ev.LogIndex != uint64(byID[ev.RecordID]) || ev.Time != FormatTime(mustTime(t, r.Recs[byID[ev.RecordID]].Time)) || f.FirstTime != ev.Time || f.LastTime != ev.Time {
					t.Errorf("finding %s: evidence %+v (first %s last %s), want log index %d", f.Kind, ev, f.FirstTime, f.LastTime, byID[ev.RecordID])
				}
				if i > 0 && doc.IdentityFindings[i-1].LastTime < f.LastTime {
					t.Errorf("findings not newest first: %s before %s", doc.IdentityFindings[i-1].LastTime, f.LastTime)
				}
			}
			// The same finding ids as the live engine, which sees every record of the log.
			live := liveFindings(t, r.Recs, nil)
			for _, f := range doc.IdentityFindings {
				lf, ok := live[f.ID]
				if !ok || string(lf.Kind) != f.Kind || lf.Agent != f.Agent {
					t.Errorf("finding %s (%s) is not one the live engine reports: %+v", f.ID, f.Kind, lf)
				}
			}
			checkIdentityFiles(t, r, res, doc, dir)
		})
	}

	// The live finding of planner-1 acting without a token has May's occurrence too; the
	// report counts June's only.
	live := liveFindings(t, r.Recs, nil)
	if f := live[findings.ID("acme-bank", findings.StaticCredential, "no-delegation:planner-1")]; f.Count != 2 {
		t.Fatalf("live static credential of planner-1: %+v, want May's and June's occurrences", f)
	}
}

// TestIdentityFindingsConfig checks that the export applies the per-tenant configuration.
func TestIdentityFindingsConfig(t *testing.T) {
	r := newRig(t, plantedLog())
	cfg, err := findings.ParseConfig([]byte(`{"tenants":{"acme-bank":{"disabled":["static_credential"],"max_delegation_lifetime":"30m"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	e := testExporter(r)
	e.Findings = cfg
	_, doc, _ := exportWith(t, e, june(KindEUAIAct, "acme-bank/credit"))
	kinds := map[string][]string{}
	for _, f := range doc.IdentityFindings {
		for _, ev := range f.Evidence {
			kinds[f.Kind] = append(kinds[f.Kind], ev.RecordID)
		}
	}
	if len(kinds["static_credential"]) != 0 {
		t.Errorf("static_credential is disabled for the tenant, yet reported: %v", kinds["static_credential"])
	}
	// Every token of June lives 61 minutes, more than the 30 the tenant allows: one finding
	// per token (jun-expired's lives an hour too).
	long := 0
	for _, f := range doc.IdentityFindings {
		if f.Kind == "delegation_misuse" && f.Severity == "medium" {
			long++
		}
	}
	if long < 5 {
		t.Errorf("%d long-lived-token findings, want one per June token: %+v", long, doc.IdentityFindings)
	}
	// The other tenant keeps the defaults.
	e.Findings = cfg
	_, doc, _ = exportWith(t, e, Request{Kind: KindEUAIAct, Tenant: "other-bank", From: june("", "").From, To: june("", "").To})
	if got := viewOf(doc.IdentityFindings); len(got) != 1 || got[0].Kind != "static_credential" {
		t.Errorf("other-bank: %+v", got)
	}
}

// liveFindings runs the engine as lineaged does (query/findings_worker.go): every record of
// the log, in log order, then aggregated as a findings store does (findings.Merge).
func liveFindings(t *testing.T, recs []lineage.Record, cfg *findings.Configs) map[string]findings.Finding {
	t.Helper()
	e := findings.NewEngine(cfg)
	var occ []findings.Occurrence
	for i := range recs {
		occ = e.Observe(uint64(i), &recs[i], mustTime(t, recs[i].Time), occ)
	}
	occ = e.EndBatch(occ)
	got := map[string]findings.Finding{}
	ch, err := findings.Merge(occ, func(id string) (findings.Finding, bool, error) { f, ok := got[id]; return f, ok, nil })
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range ch {
		got[c.Finding.ID] = c.Finding
	}
	return got
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// checkIdentityFiles checks identity_findings.csv, report.html and the bundle.
func checkIdentityFiles(t *testing.T, r *rig, res *Result, doc *Document, dir string) {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "identity_findings.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1+evidenceRows(doc) || !slices.Equal(rows[0], identityFindingHeader) {
		t.Fatalf("identity_findings.csv: %d lines, header %v; want header + %d", len(rows), rows[0], evidenceRows(doc))
	}
	var csvIDs, jsonIDs []string
	for _, row := range rows[1:] {
		csvIDs = append(csvIDs, row[0]+" "+row[10]+" "+verify.CSVUncell(row[11]))
	}
	for _, fd := range doc.IdentityFindings {
		for _, e := range fd.Evidence {
			jsonIDs = append(jsonIDs, fmt.Sprintf("%s %d %s", fd.ID, e.LogIndex, e.RecordID))
		}
	}
	if !slices.Equal(csvIDs, jsonIDs) {
		t.Errorf("identity_findings.csv rows %v, want %v", csvIDs, jsonIDs)
	}

	html, err := os.ReadFile(filepath.Join(dir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	page := string(html)
	for _, fd := range doc.IdentityFindings {
		for _, want := range []string{fd.Title, fd.ID} {
			if !strings.Contains(page, want) {
				t.Errorf("report.html lacks %q", want)
			}
		}
		for _, e := range fd.Evidence {
			if id := strings.ReplaceAll(strings.ReplaceAll(e.RecordID, "<", "&lt;"), ">", "&gt;"); !strings.Contains(page, id+" (#"+fmt.Sprint(e.LogIndex)+")") {
				t.Errorf("report.html lacks evidence %s (#%d)", e.RecordID, e.LogIndex)
			}
		}
	}
	if strings.Contains(page, "<i>1</i>") {
		t.Error("report.html shows a record's agent id as markup")
	}
	if len(doc.IdentityFindings) == 0 && !strings.Contains(page, "No agent-identity findings in the period.") {
		t.Error("report.html does not say there are no identity findings")
	}

	// Every evidence record is in the bundle, and the verifier resolves every citation.
	rep, err := verify.VerifyBundle(filepath.Join(dir, res.Bundle), r.Verifier)
	if err != nil {
		t.Fatalf("bundle does not verify: %v", err)
	}
	if want := doc.Summary.Records + doc.Summary.OversightEvents + doc.Summary.Effects.Deny + uint64(evidenceRows(doc)); rep.Citations != want || rep.Records != doc.Summary.Records {
		t.Errorf("verify: %d citations of %d records, want %d of %d", rep.Citations, rep.Records, want, doc.Summary.Records)
	}
}
