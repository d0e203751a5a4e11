package report

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/verify"
)

// expectation is what a report must say, computed straight from the records.
type expectation struct {
	ids                            map[string]bool
	effects                        EffectCounts
	users, reviewers               map[string]bool
	tokens, agents, models, provs  map[string]bool
	policies, safeguards           map[string]bool
	oversight, denies, escalations int
	outcomes                       map[string]int
	withoutSystem                  int
	unreviewed                     map[string]bool
}

func expect(recs []lineage.Record, req Request) expectation {
	e := expectation{ids: map[string]bool{}, users: map[string]bool{}, reviewers: map[string]bool{}, tokens: map[string]bool{},
		agents: map[string]bool{}, models: map[string]bool{}, provs: map[string]bool{}, policies: map[string]bool{},
		safeguards: map[string]bool{}, outcomes: map[string]int{}, unreviewed: map[string]bool{}}
	reviewed := map[string]bool{}
	for i := range recs {
		r := &recs[i]
		if r.Tenant != req.Tenant || r.Source.ID == ExportSourceID {
			continue
		}
		t, _ := r.ParsedTime()
		inPeriod := !t.Before(req.From) && t.Before(req.To)
		if inPeriod && r.AISystem == nil {
			e.withoutSystem++
		}
		if req.AISystem != "" && (r.AISystem == nil || r.AISystem.ID != req.AISystem) {
			continue
		}
		if req.AISystem == "" && req.Kind == KindEUAIAct && r.AISystem == nil {
			continue
		}
		if r.HumanOversight != nil {
			reviewed[r.ParentID] = true
		}
		if !inPeriod {
			continue
		}
		e.ids[r.ID] = true
		countEffect(&e.effects, r.Decision.Effect)
		e.users[r.User.ID] = true
		e.tokens[r.Delegation.TokenID] = true
		e.agents[r.Agent.ID] = true
		e.models[modelLabel(r.Agent.Model)] = true
		e.provs[r.Agent.Model.Provider] = true
		e.policies[r.Decision.Policy.ID+"@"+r.Decision.Policy.Version] = true
		for _, s := range r.Safeguards {
			e.safeguards[s] = true
		}
		if r.HumanOversight != nil {
			e.oversight++
			e.reviewers[r.HumanOversight.Reviewer.ID] = true
			e.outcomes[r.HumanOversight.Outcome]++
		}
		switch r.Decision.Effect {
		case lineage.EffectDeny:
			e.denies++
		case lineage.EffectEscalate:
			e.escalations++
			e.unreviewed[r.ID] = true
		}
	}
	for id := range e.unreviewed {
		if reviewed[id] {
			delete(e.unreviewed, id)
		}
	}
	return e
}

func runExport(t *testing.T, r *rig, req Request) (*Result, *Document, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "exp")
	var last Progress
	res, err := testExporter(r).Export(context.Background(), req, dir, Run{
		ID: "exp-test-" + string(req.Kind), RequestedBy: "apikey:compliance",
		Progress: func(p Progress) { last = p },
	})
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	if last.Phase != "bundle" || last.Scanned != last.Total || last.Total != uint64(len(r.Recs)) {
		t.Errorf("last progress %+v, want phase bundle with all %d entries scanned", last, len(r.Recs))
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc Document
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("report.json does not parse: %v", err)
	}
	return res, &doc, dir
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// checkCommon checks what both kinds report, against the records.
func checkCommon(t *testing.T, r *rig, req Request, res *Result, doc *Document, dir string) expectation {
	t.Helper()
	want := expect(r.Recs, req)
	s := doc.Summary
	if s.Records != uint64(len(want.ids)) || res.Records != s.Records || len(doc.Decisions) != len(want.ids) {
		t.Fatalf("records: summary %d, result %d, decisions %d; want %d", s.Records, res.Records, len(doc.Decisions), len(want.ids))
	}
	if len(want.ids) < 100 {
		t.Fatalf("the data set is too thin for the test: %d records in scope", len(want.ids))
	}
	for _, d := range doc.Decisions {
		if !want.ids[d.RecordID] {
			t.Fatalf("decision %s is not in scope", d.RecordID)
		}
	}
	if s.Effects != want.effects {
		t.Errorf("effects %+v, want %+v", s.Effects, want.effects)
	}
	if want.effects.Deny == 0 || want.effects.Escalate == 0 || want.effects.Modify == 0 || want.oversight == 0 {
		t.Fatalf("the data set lacks denies, escalations, modifications or oversight: %+v, %d", want.effects, want.oversight)
	}
	if s.Uses != uint64(len(want.tokens)) || len(doc.Uses) != len(want.tokens) {
		t.Errorf("uses %d (%d rows), want %d delegation tokens", s.Uses, len(doc.Uses), len(want.tokens))
	}
	var useRecords uint64
	for i, u := range doc.Uses {
		useRecords += u.Records
		if !want.tokens[u.UseID] || u.UseKind != "delegation" || len(u.Users) != 1 || u.Start > u.End {
			t.Fatalf("use %+v", u)
		}
		if i > 0 && doc.Uses[i-1].Start > u.Start {
			t.Fatalf("uses not in time order at %d", i)
		}
	}
	if useRecords != s.Records {
		t.Errorf("uses hold %d records, want %d", useRecords, s.Records)
	}
	var users, reviewers []string
	for _, p := range doc.Persons {
		if slices.Contains(p.Roles, "authorizing-user") {
			users = append(users, p.ID)
		}
		if slices.Contains(p.Roles, "oversight-reviewer") {
			reviewers = append(reviewers, p.ID)
		}
	}
	slices.Sort(users)
	slices.Sort(reviewers)
	if !slices.Equal(users, keys(want.users)) || !slices.Equal(reviewers, keys(want.reviewers)) {
		t.Errorf("persons: users %v reviewers %v; want %v and %v", users, reviewers, keys(want.users), keys(want.reviewers))
	}
	if s.OversightEvents != uint64(want.oversight) || len(doc.OversightEvents) != want.oversight {
		t.Errorf("oversight events %d (%d rows), want %d", s.OversightEvents, len(doc.OversightEvents), want.oversight)
	}
	for k, n := range want.outcomes {
		if s.OversightOutcomes[k] != n {
			t.Errorf("oversight outcome %s: %d, want %d", k, s.OversightOutcomes[k], n)
		}
	}
	if len(doc.Denies) != want.denies {
		t.Errorf("denies %d, want %d", len(doc.Denies), want.denies)
	}
	var agents, models, provs []string
	for _, a := range doc.Agents {
		agents = append(agents, a.ID)
	}
	for _, m := range doc.Models {
		models = append(models, m.Provider+"/"+m.Name+"@"+m.Version)
	}
	for _, p := range doc.Providers {
		provs = append(provs, p.Provider)
	}
	slices.Sort(models)
	if !slices.Equal(agents, keys(want.agents)) || !slices.Equal(models, keys(want.models)) || !slices.Equal(provs, keys(want.provs)) {
		t.Errorf("inventory: agents %v models %v providers %v; want %v %v %v", agents, models, provs, keys(want.agents), keys(want.models), keys(want.provs))
	}
	if s.Escalations != uint64(want.escalations) || s.EscalationsWithoutReview != uint64(len(want.unreviewed)) {
		t.Errorf("escalations %d without review %d; want %d and %d", s.Escalations, s.EscalationsWithoutReview, want.escalations, len(want.unreviewed))
	}
	// Integrity evidence.
	in := doc.Integrity
	if !in.RootRecomputed || in.EntriesScanned != uint64(len(r.Recs)) || in.CheckpointSize != uint64(len(r.Recs)) || in.RecordsCited != s.Records || in.LogOrigin != rigOrigin {
		t.Errorf("integrity %+v", in)
	}
	// Every CSV table is there, with the rows the JSON has.
	for _, ti := range doc.Tables {
		f, err := os.Open(filepath.Join(dir, ti.File))
		if err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(f).ReadAll()
		f.Close()
		if err != nil || uint64(len(rows)) != ti.Rows+1 {
			t.Errorf("%s: %d lines (%v), want header + %d", ti.File, len(rows), err, ti.Rows)
		}
	}
	// The bundle verifies, and holds exactly the records in scope.
	rep, err := verify.VerifyBundle(filepath.Join(dir, res.Bundle), r.Verifier)
	if err != nil {
		t.Fatalf("bundle does not verify: %v", err)
	}
	// Every table row citing a record resolves: decisions, oversight events, denies and the
	// identity findings' evidence.
	citations := s.Records + uint64(want.oversight+want.denies) + uint64(evidenceRows(doc))
	if rep.Records != s.Records || !rep.ManifestSigned || rep.Checkpoint == nil || rep.Citations != citations {
		t.Errorf("verify report: records %d citations %d signed %v; want %d and %d", rep.Records, rep.Citations, rep.ManifestSigned, s.Records, citations)
	}
	// The identity findings cite only records in scope, and count what they cite.
	for _, f := range doc.IdentityFindings {
		if len(f.Evidence) == 0 || f.Count < uint64(len(f.Evidence)) || f.Title == "" || f.Explanation == "" {
			t.Errorf("identity finding %+v", f)
		}
		for _, e := range f.Evidence {
			if !want.ids[e.RecordID] {
				t.Errorf("identity finding %s (%s) cites %s, which is not in the export's scope", f.ID, f.Kind, e.RecordID)
			}
		}
	}
	return want
}

func evidenceRows(doc *Document) int {
	n := 0
	for _, f := range doc.IdentityFindings {
		n += len(f.Evidence)
	}
	return n
}

func findingCodes(doc *Document) []string {
	var c []string
	for _, f := range doc.Findings {
		c = append(c, f.Code)
	}
	return c
}

func TestEUAIActReport(t *testing.T) {
	r := getRig(t)
	req := june(KindEUAIAct, "acme-bank/credit-copilot")
	res, doc, dir := runExport(t, r, req)
	want := checkCommon(t, r, req, res, doc, dir)
	if len(doc.AISystems) != 1 || doc.AISystems[0].ID != req.AISystem || !doc.AISystems[0].HighRisk || doc.AISystems[0].Uses != uint64(len(want.tokens)) {
		t.Errorf("ai systems %+v", doc.AISystems)
	}
	// Retention: the log holds January to September, with nothing from mid-March to May.
	ret := doc.Retention
	if !ret.MeetsMinimum || !strings.HasPrefix(ret.EarliestRecord, "2026-01-01") || !strings.HasPrefix(ret.LatestRecord, "2026-07") {
		t.Errorf("retention %+v", ret)
	}
	gapInApril := false
	for _, g := range ret.Gaps {
		if g.From < "2026-04-15" && g.To > "2026-04-15" && g.Days > 60 {
			gapInApril = true
		}
	}
	if !gapInApril {
		t.Errorf("no retention gap over April: %+v", ret.Gaps)
	}
	codes := findingCodes(doc)
	for _, c := range []string{"retention_gap", "escalation_without_review"} {
		if !slices.Contains(codes, c) {
			t.Errorf("finding %s missing: %v", c, codes)
		}
	}
	if slices.Contains(codes, "retention_below_minimum") {
		t.Errorf("retention flagged below minimum: %v", codes)
	}
	for _, f := range doc.Findings {
		if f.Code == "escalation_without_review" && !slices.Equal(f.Items, keys(want.unreviewed)) {
			t.Errorf("unreviewed escalations %v, want %v", f.Items, keys(want.unreviewed))
		}
	}
	// The Art. 14 events name reviewer, outcome and the decision reviewed.
	for _, o := range doc.OversightEvents {
		if o.ReviewerID == "" || o.ReviewOutcome == "" || o.ParentID == "" {
			t.Fatalf("oversight row %+v", o)
		}
	}
	html, err := os.ReadFile(filepath.Join(dir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"<svg", "Art. 14", "Retention", "Annex III", doc.Integrity.CheckpointRoot, "lineagectl verify"} {
		if !strings.Contains(string(html), s) {
			t.Errorf("report.html lacks %q", s)
		}
	}
	if strings.Contains(string(html), "<script") || strings.Contains(string(html), "http://") && !strings.Contains(string(html), "http://www.w3.org/2000/svg") {
		t.Error("report.html is not self-contained")
	}
}

func TestFannieMaeReport(t *testing.T) {
	r := getRig(t)
	req := june(KindFannieMae, "")
	res, doc, dir := runExport(t, r, req)
	want := checkCommon(t, r, req, res, doc, dir)
	var pols, sgs []string
	for _, p := range doc.Policies {
		pols = append(pols, p.ID+"@"+p.Version)
	}
	for _, s := range doc.Safeguards {
		sgs = append(sgs, s.Safeguard)
	}
	slices.Sort(sgs)
	if !slices.Equal(pols, keys(want.policies)) || !slices.Equal(sgs, keys(want.safeguards)) {
		t.Errorf("safeguards: policies %v %v, want %v %v", pols, sgs, keys(want.policies), keys(want.safeguards))
	}
	// Each AI-assisted decision names the natural person and the delegation that authorized it.
	byID := map[string]*lineage.Record{}
	for i := range r.Recs {
		byID[r.Recs[i].ID] = &r.Recs[i]
	}
	for _, d := range doc.Decisions {
		rec := byID[d.RecordID]
		if d.UserID != rec.User.ID || d.UserIssuer != rec.User.Issuer || d.DelegationToken != rec.Delegation.TokenID ||
			d.DelegationMechanism != "rfc8693" || !slices.Equal(d.Actors, rec.Delegation.Actors) || d.Effect != rec.Decision.Effect {
			t.Fatalf("decision row %+v does not match record %+v", d, rec)
		}
	}
	if doc.Summary.RecordsWithoutAISystem != uint64(want.withoutSystem) {
		t.Errorf("records without AI system %d, want %d", doc.Summary.RecordsWithoutAISystem, want.withoutSystem)
	}
	html, _ := os.ReadFile(filepath.Join(dir, "report.html"))
	for _, s := range []string{"Inventory of AI tools", "Safeguards applied", "Authorized by", "<svg"} {
		if !strings.Contains(string(html), s) {
			t.Errorf("report.html lacks %q", s)
		}
	}
}

func TestExportFormatsAndErrors(t *testing.T) {
	r := getRig(t)
	req := june(KindEUAIAct, "")
	req.Formats = []string{"html"}
	dir := filepath.Join(t.TempDir(), "x")
	res, err := testExporter(r).Export(context.Background(), req, dir, Run{ID: "exp-html-only"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range res.Files {
		names = append(names, f.Name)
	}
	if !slices.Equal(names, []string{"report.html", "exp-html-only.zip"}) {
		t.Fatalf("files %v", names)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 2 {
		t.Fatalf("export dir holds %d entries, want the two files (staging removed)", len(left))
	}
	for _, bad := range []Request{
		{Kind: "sox", Tenant: "acme-bank", From: req.From, To: req.To},
		{Kind: KindEUAIAct, Tenant: "Acme Bank", From: req.From, To: req.To},
		{Kind: KindEUAIAct, Tenant: "acme-bank", From: req.To, To: req.From},
		{Kind: KindEUAIAct, Tenant: "acme-bank", From: req.From, To: req.To, Formats: []string{"pdf"}},
	} {
		if _, err := testExporter(r).Export(context.Background(), bad, filepath.Join(t.TempDir(), "y"), Run{ID: "exp-bad"}); err == nil {
			t.Errorf("request %+v accepted", bad)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := testExporter(r).Export(ctx, june(KindEUAIAct, ""), filepath.Join(t.TempDir(), "z"), Run{ID: "exp-cancel"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled export: %v", err)
	}
}

func TestEmptyPeriod(t *testing.T) {
	r := getRig(t)
	req := june(KindFannieMae, "")
	req.From, req.To = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2030, 2, 1, 0, 0, 0, 0, time.UTC)
	res, doc, dir := runExport(t, r, req)
	if doc.Summary.Records != 0 || len(doc.Decisions) != 0 || !slices.Contains(findingCodes(doc), "no_records") {
		t.Fatalf("empty period: %+v %v", doc.Summary, findingCodes(doc))
	}
	if _, err := verify.VerifyBundle(filepath.Join(dir, res.Bundle), r.Verifier); err != nil {
		t.Fatalf("empty bundle: %v", err)
	}
}

// TestWriteSampleReports writes both reports of the realistic data set to
// $LINEAGE_EXPORT_SAMPLE_DIR, for a person to look at (skipped when it is unset).
func TestWriteSampleReports(t *testing.T) {
	out := os.Getenv("LINEAGE_EXPORT_SAMPLE_DIR")
	if out == "" {
		t.Skip("LINEAGE_EXPORT_SAMPLE_DIR not set")
	}
	r := getRig(t)
	for _, req := range []Request{june(KindEUAIAct, "acme-bank/credit-copilot"), june(KindFannieMae, "")} {
		dir := filepath.Join(out, string(req.Kind))
		os.RemoveAll(dir)
		if _, err := testExporter(r).Export(context.Background(), req, dir, Run{ID: "sample-" + string(req.Kind), RequestedBy: "apikey:compliance"}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEmptyLog(t *testing.T) {
	r := newRig(t, nil)
	dir := filepath.Join(t.TempDir(), "e")
	res, err := testExporter(r).Export(context.Background(), june(KindEUAIAct, ""), dir, Run{ID: "exp-empty"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != 0 || res.Checkpoint.Size != 0 {
		t.Fatalf("empty log: %+v", res)
	}
	if _, err := verify.VerifyBundle(filepath.Join(dir, res.Bundle), r.Verifier); err != nil {
		t.Fatal(err)
	}
}

// TestBundleProofsEqualTheLogs checks that the proofs the exporter builds are byte for byte
// the ones the ledger driver serves.
func TestBundleProofsEqualTheLogs(t *testing.T) {
	r := getRig(t)
	req := june(KindFannieMae, "")
	req.To = req.From.AddDate(0, 0, 3)
	dir := filepath.Join(t.TempDir(), "p")
	res, err := testExporter(r).Export(context.Background(), req, dir, Run{ID: "exp-proofs"})
	if err != nil {
		t.Fatal(err)
	}
	files := readBundle(t, filepath.Join(dir, res.Bundle))
	checked := 0
	for _, line := range lines(files.get("records/records-00000.ndjson")) {
		if line == "" {
			continue
		}
		var ev verify.EvidenceLine
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		want, err := r.Log.InclusionProof(context.Background(), ev.Index, res.Checkpoint.Size)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) != len(ev.Proof) {
			t.Fatalf("index %d: %d hashes, the log serves %d", ev.Index, len(ev.Proof), len(want))
		}
		for i := range want {
			if string(want[i]) != string(ev.Proof[i]) {
				t.Fatalf("index %d: hash %d differs from the log's", ev.Index, i)
			}
		}
		checked++
	}
	if checked < 50 {
		t.Fatalf("only %d proofs compared", checked)
	}
}
