package query_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/ledger/ledgertest"
	"github.com/lineage-audit/lineage/query"
	"github.com/lineage-audit/lineage/query/auth"
	"github.com/lineage-audit/lineage/query/findings"
	"github.com/lineage-audit/lineage/verify"
	"github.com/prometheus/client_golang/prometheus"
)

// findingsRecords is demo traffic with three planted failures in the first tenant: an action
// without a delegation token, a service-account user, and a token used after it expired.
func findingsRecords(t *testing.T) (recs []lineage.Record, tenant string, planted map[string]findings.Kind) {
	t.Helper()
	recs = demo.Generate(demo.Options{Seed: 11, Tenants: 2}, 300)
	tenant = recs[0].Tenant
	planted = map[string]findings.Kind{}
	n := 0
	for i := range recs {
		r := &recs[i]
		if r.Tenant != tenant || r.Delegation == nil || i < 20 {
			continue
		}
		switch n {
		case 0:
			r.Delegation = nil
			planted[r.ID] = findings.StaticCredential
		case 1:
			r.User.ID = "svc-nightly-loader"
			planted[r.ID] = findings.StaticCredential
		case 2:
			at, _ := r.ParsedTime()
			d := *r.Delegation
			d.TokenID = "tok-expired-planted"
			d.IssuedAt = at.Add(-2 * time.Hour).Format(time.RFC3339)
			d.ExpiresAt = at.Add(-time.Hour).Format(time.RFC3339)
			r.Delegation = &d
			planted[r.ID] = findings.DelegationMisuse
		}
		n++
		if n == 3 {
			break
		}
	}
	return recs, tenant, planted
}

func TestFindingsWorkerAndAPI(t *testing.T) {
	recs, tenant, planted := findingsRecords(t)
	lg, store, v, vkey, _ := testLog(t, "lineage.test/findings")
	if _, err := ledgertest.AddAll(context.Background(), lg, envelopes(t, recs)); err != nil {
		t.Fatal(err)
	}
	if _, err := ledgertest.WaitCheckpoint(context.Background(), lg, v, uint64(len(recs))); err != nil {
		t.Fatal(err)
	}
	fstore, err := store.Findings(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ix, err := query.NewIndexer(t.Context(), lg, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ix.BatchSize = 64
	reg := prometheus.NewRegistry()
	fw, err := query.NewFindingsWorker(t.Context(), lg, fstore, ix, nil, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The first batches are indexed before the worker listens (it reads them from the log);
	// the rest come through the hand-off.
	for ix.Position() < 128 {
		if _, err := ix.Step(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	ix.Applied = fw.Offer
	for ix.Position() < uint64(len(recs)) {
		if _, err := ix.Step(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	for fw.Position() < uint64(len(recs)) {
		if _, err := fw.Step(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if n := counterSum(t, reg, "lineage_findings_total"); n < 2 {
		t.Fatalf("lineage_findings_total %v", n)
	}

	// An auditor of the tenant, and one of the other tenant.
	dir := t.TempDir()
	var kf auth.KeyFile
	keyOf := map[string]string{}
	for _, who := range []struct{ id, tenant string }{{"mine", tenant}, {"other", "someone-else"}} {
		key, e, err := auth.NewKey(who.id, []auth.Role{auth.RoleAuditor}, []string{who.tenant})
		if err != nil {
			t.Fatal(err)
		}
		kf.Keys = append(kf.Keys, e)
		keyOf[who.id] = key
	}
	b, _ := json.Marshal(kf)
	if err := os.WriteFile(filepath.Join(dir, "keys.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := auth.LoadAPIKeys(filepath.Join(dir, "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	api := &query.API{Log: lg, Store: store, Findings: fstore, Verifier: vkey, Gatherer: reg, Auth: keys, AllowedHosts: []string{"*"}}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	get := func(who, path string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+keyOf[who])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}

	code, body := get("mine", "/v1/findings?tenant="+tenant)
	if code != 200 {
		t.Fatalf("GET findings: %d %s", code, body)
	}
	res, err := verify.VerifyAnswer("findings", tenant, body, v)
	if err != nil {
		t.Fatalf("the findings answer does not verify: %v", err)
	}
	var ans verify.Findings
	if err := json.Unmarshal(body, &ans); err != nil {
		t.Fatal(err)
	}
	found := map[string]findings.Kind{}
	for _, f := range ans.Findings {
		for _, e := range f.Evidence {
			if e.Record == nil || e.Record.Proof == nil {
				t.Fatalf("finding %s: evidence %s without record or proof (%s)", f.ID, e.ID, e.Missing)
			}
			found[e.ID] = findings.Kind(f.Kind)
		}
	}
	for id, k := range planted {
		if found[id] != k {
			t.Errorf("planted %s (%s): found as %q", id, k, found[id])
		}
	}
	if res.Actions == 0 {
		t.Fatal("verified no evidence")
	}

	// Filters.
	code, body = get("mine", "/v1/findings?tenant="+tenant+"&kind=delegation_misuse&severity=high")
	if code != 200 || !strings.Contains(string(body), "tok-expired-planted") || strings.Contains(string(body), `"kind":"static_credential"`) {
		t.Fatalf("kind filter: %d %s", code, body)
	}
	// Pages of one finding, with the cursor, cover the listing.
	var all []string
	cursor := ""
	for range 50 {
		code, body = get("mine", "/v1/findings?tenant="+tenant+"&limit=1&proofs=false"+cursor)
		if code != 200 {
			t.Fatalf("page: %d %s", code, body)
		}
		var p verify.Findings
		json.Unmarshal(body, &p)
		for _, f := range p.Findings {
			all = append(all, f.ID)
		}
		if p.NextCursor == "" {
			break
		}
		cursor = "&cursor=" + p.NextCursor
	}
	if len(all) != len(ans.Findings) {
		t.Fatalf("paged %d findings, listed %d", len(all), len(ans.Findings))
	}
	// Tenant isolation and bad input.
	for _, c := range []struct {
		who, path string
		code      int
	}{
		{"other", "/v1/findings?tenant=" + tenant, 403},
		{"mine", "/v1/findings", 400},
		{"mine", "/v1/findings?tenant=" + tenant + "&kind=nope", 400},
		{"mine", "/v1/findings?tenant=" + tenant + "&severity=urgent", 400},
		{"mine", "/v1/findings?tenant=" + tenant + "&cursor=!!", 400},
		{"mine", "/v1/findings?tenant=" + tenant + "&limit=0", 400},
	} {
		if code, body := get(c.who, c.path); code != c.code {
			t.Errorf("%s %s: %d %s, want %d", c.who, c.path, code, body, c.code)
		}
	}

	// A tampered answer does not verify: an evidence record's action changed.
	var tampered map[string]any
	json.Unmarshal(func() []byte { _, b := get("mine", "/v1/findings?tenant="+tenant); return b }(), &tampered)
	f0 := tampered["findings"].([]any)[0].(map[string]any)
	rec0 := f0["evidence"].([]any)[0].(map[string]any)["record"].(map[string]any)
	rec0["action"].(map[string]any)["target"] = "somewhere/else"
	tb, _ := json.Marshal(tampered)
	if _, err := verify.VerifyAnswer("findings", tenant, tb, v); err == nil {
		t.Fatal("a tampered findings answer verified")
	}
}

// counterSum adds up every series of the counter name in g.
func counterSum(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}
