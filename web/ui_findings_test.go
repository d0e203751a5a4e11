package web_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/internal/service"
	"github.com/lineage-audit/lineage/query/findings"
	"github.com/lineage-audit/lineage/verify"
)

// plantedFinding is a failure planted in the rig's traffic: the record that shows it, the
// finding it must produce, and text of the finding the view must show as text.
type plantedFinding struct {
	record   string
	kind     findings.Kind
	severity findings.Severity
	key      string
	shown    string // a substring of the finding's explanation or identity, shown as text
}

// Hostile identifiers: each would run script or inject an element if the view ever treated
// data as markup. alert() opens a dialog, which the browser counts (browser in
// ui_browser_test.go).
const (
	hostileAgent  = `<img src=x onerror=alert(1)>`
	hostileUser   = `svc-<script>alert(2)</script>`
	hostileIssuer = `javascript:alert(3)//<img src=x onerror=alert(4)>`
	hostileReason = `<script>alert(5)</script><img src=x onerror=alert(6)>`
)

// findingsRig publishes demo traffic with planted failures to a real lineaged (the findings
// worker runs by default) and waits until GET /v1/findings reports every planted one.
func findingsRig(t *testing.T) (*server, string, []plantedFinding, *verify.Findings) {
	t.Helper()
	s := startServer(t)
	recs := demo.Generate(demo.Options{Seed: 21, Tenants: 1}, 80)
	tenant := recs[0].Tenant
	var planted []plantedFinding
	plant := func(id string, change func(r *lineage.Record) plantedFinding) {
		// A record of the traffic with a delegation token, changed and logged under a new id.
		for _, r := range recs {
			if r.Delegation == nil || r.Delegation.TokenID == "" || r.ParentID != "" {
				continue
			}
			r.ID = id
			d := *r.Delegation
			r.Delegation = &d
			p := change(&r)
			p.record = id
			planted = append(planted, p)
			recs = append(recs, r)
			return
		}
		t.Fatal("fixture: no root record with a delegation token in the demo traffic")
	}
	// An action without delegation by an agent whose id is markup.
	plant("planted-no-delegation", func(r *lineage.Record) plantedFinding {
		r.Delegation = nil
		r.Agent.ID = hostileAgent
		r.Decision.Reason = hostileReason
		return plantedFinding{kind: findings.StaticCredential, severity: findings.High, key: "no-delegation:" + hostileAgent, shown: "Agent " + hostileAgent + " acted without a delegation token"}
	})
	// A service account (svc-*) as the authorizing "user", its id markup too.
	plant("planted-service-account", func(r *lineage.Record) plantedFinding {
		r.User.ID = hostileUser
		return plantedFinding{kind: findings.StaticCredential, severity: findings.High, key: "service-account:" + hostileUser, shown: "The authorizing user " + hostileUser + " is a service account"}
	})
	// A user vouched for by a javascript: "issuer".
	plant("planted-issuer", func(r *lineage.Record) plantedFinding {
		r.User.ID = "mallory@evil.example"
		r.User.Issuer = hostileIssuer
		return plantedFinding{kind: findings.InferredIdentity, severity: findings.High, key: "issuer-not-https:" + hostileIssuer, shown: hostileIssuer}
	})
	// A token used an hour after it expired.
	plant("planted-expired", func(r *lineage.Record) plantedFinding {
		at, err := r.ParsedTime()
		if err != nil {
			t.Fatal(err)
		}
		r.Delegation.TokenID = "tok-expired-planted"
		r.Delegation.IssuedAt = at.Add(-2 * time.Hour).UTC().Format(time.RFC3339)
		r.Delegation.ExpiresAt = at.Add(-time.Hour).UTC().Format(time.RFC3339)
		return plantedFinding{kind: findings.DelegationMisuse, severity: findings.High, key: "expired:tok-expired-planted", shown: "tok-expired-planted"}
	})
	s.publish(t, recs, len(recs))

	// The findings worker follows the index: wait until the answer holds every planted finding.
	var ans verify.Findings
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ans = verify.Findings{}
		if err := json.Unmarshal(get(t, s.url+"/v1/findings?proofs=false&limit=999&tenant="+url.QueryEscape(tenant)), &ans); err != nil {
			t.Fatal(err)
		}
		missing := ""
		for _, p := range planted {
			if findingOf(&ans, p) == nil {
				missing = p.record
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("finding of %s not reported within 30s; findings: %+v", missing, ans.Findings)
		}
	}
	return s, tenant, planted, &ans
}

// findingOf is the finding of ans that p must produce, with p's record as evidence.
func findingOf(ans *verify.Findings, p plantedFinding) *verify.FindingNode {
	for _, f := range ans.Findings {
		if f.Kind != string(p.kind) || f.Key != p.key {
			continue
		}
		for _, e := range f.Evidence {
			if e.ID == p.record {
				return f
			}
		}
	}
	return nil
}

// TestUIBrowserFindings drives the findings view in chromium against lineaged with planted
// failures: reached from the main navigation, every planted finding listed with its severity
// and hostile identifiers shown as text, filters and paging in the URL, a finding's evidence
// verified in the browser, the links to the record and to the action chain, a deep link that
// reopens the finding, and a tampered evidence record that fails its badge.
func TestUIBrowserFindings(t *testing.T) {
	s, tenant, planted, ans := findingsRig(t)
	ctx, dialogs := browser(t)
	safe := `window.__pwned === undefined && !document.querySelector("main img, main script, main iframe, main object") &&
		![...document.querySelectorAll("a")].some(a => /^javascript:/i.test(a.getAttribute("href") || ""))`
	checkSafe := func(where string) {
		t.Helper()
		time.Sleep(100 * time.Millisecond) // a late onerror would have fired by now
		if !eval[bool](t, ctx, safe) {
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("main")))
			t.Fatalf("%s: hostile data became markup or ran:\n%s", where, html)
		}
		if n := dialogs.Load(); n != 0 {
			t.Fatalf("%s: %d JavaScript dialogs opened", where, n)
		}
	}

	// Pin the key, then reach the findings from the main navigation (it carries the tenant).
	do(t, ctx, "open the UI", chromedp.Navigate(s.url+"/ui/search?tenant="+url.QueryEscape(tenant)), chromedp.WaitVisible(chromedp.CSS("#pin-key")),
		chromedp.Click(chromedp.CSS("#pin-key")), chromedp.WaitVisible(chromedp.CSS("#pinned-key")))
	waitJS(t, ctx, "search view", ready("search"))
	do(t, ctx, "follow the navigation", chromedp.Click(chromedp.CSS(`nav a[data-nav=findings]`)))
	waitJS(t, ctx, "findings view", ready("findings"))
	if got := eval[string](t, ctx, `location.pathname + location.search`); got != "/ui/findings?tenant="+url.QueryEscape(tenant) {
		t.Fatalf("the navigation led to %s", got)
	}
	if !eval[bool](t, ctx, `document.querySelector("nav a[data-nav=findings]").getAttribute("aria-current") === "page"`) {
		t.Fatal("the navigation does not mark Findings as the current view")
	}

	// The listing loads every page of the answer (limit 200 here) and shows each planted finding
	// with its severity, its explanation as text.
	do(t, ctx, "open every finding", chromedp.Navigate(s.url+"/ui/findings?limit=200&tenant="+url.QueryEscape(tenant)))
	waitJS(t, ctx, "findings view", ready("findings"))
	if n := eval[int](t, ctx, `document.querySelectorAll("#findings li.finding").length`); n != len(ans.Findings) {
		t.Fatalf("%d findings listed, the API reports %d", n, len(ans.Findings))
	}
	for _, p := range planted {
		f := findingOf(ans, p)
		sel := fmt.Sprintf(`document.querySelector('#findings li.finding[data-id=%q]')`, f.ID)
		got := eval[map[string]string](t, ctx, `(() => { const li = `+sel+`; return li ? {
			severity: li.dataset.severity, badge: li.querySelector(".sev-badge").textContent, kind: li.dataset.kind,
			title: li.querySelector("a.finding-open").textContent, text: li.textContent } : {}; })()`)
		if got["severity"] != string(p.severity) || got["badge"] != string(p.severity) || got["kind"] != string(p.kind) {
			t.Errorf("%s: listed as %v, want %s %s", p.record, got, p.severity, p.kind)
		}
		if want := kindTitle(p.kind); got["title"] != want {
			t.Errorf("%s: titled %q, want %q", p.record, got["title"], want)
		}
		if !strings.Contains(got["text"], p.shown) || !strings.Contains(got["text"], f.Explanation) {
			t.Errorf("%s: %q or the explanation %q not shown as text:\n%s", p.record, p.shown, f.Explanation, got["text"])
		}
	}
	waitJS(t, ctx, "evidence checked", `document.getElementById("findings-status").dataset.pending === "0"`)
	if n := eval[string](t, ctx, `document.getElementById("findings-status").dataset.failed`); n != "0" {
		t.Fatalf("%s evidence records failed in the browser", n)
	}
	checkSafe("the listing")
	shot(t, ctx, "findings-01-list.png")

	// Filters: the form puts them in the URL, and the listing holds only what they match.
	do(t, ctx, "filter", chromedp.SetValue(chromedp.CSS("#fx-kind"), string(findings.StaticCredential)),
		chromedp.Click(chromedp.CSS(`#findings-filter input[name=severity][value=high]`)), chromedp.Click(chromedp.CSS("#fx-go")))
	waitJS(t, ctx, "filtered findings", ready("findings")+` && new URL(location.href).searchParams.get("kind") === "static_credential"`)
	q := eval[string](t, ctx, `location.search`)
	if !strings.Contains(q, "severity=high") || !strings.Contains(q, "limit=200") {
		t.Fatalf("the filtered URL is %s", q)
	}
	want := 0
	for _, f := range ans.Findings {
		if f.Kind == string(findings.StaticCredential) && f.Severity == string(findings.High) {
			want++
		}
	}
	rows := eval[[]string](t, ctx, `[...document.querySelectorAll("#findings li.finding")].map(li => li.dataset.kind + "/" + li.dataset.severity)`)
	if len(rows) != want || want < 2 {
		t.Fatalf("filtered listing %v, want %d static_credential/high", rows, want)
	}
	for _, r := range rows {
		if r != "static_credential/high" {
			t.Fatalf("filtered listing holds %s", r)
		}
	}
	shot(t, ctx, "findings-02-filtered.png")

	// Paging: one finding a page, "More findings" follows the cursor, the URL counts the pages.
	do(t, ctx, "page", chromedp.Navigate(s.url+"/ui/findings?limit=1&kind=static_credential&severity=high&tenant="+url.QueryEscape(tenant)))
	waitJS(t, ctx, "first page", ready("findings"))
	if n := eval[int](t, ctx, `document.querySelectorAll("#findings li.finding").length`); n != 1 {
		t.Fatalf("%d findings on a page of 1", n)
	}
	do(t, ctx, "more", chromedp.Click(chromedp.CSS("#findings-more")))
	waitJS(t, ctx, "second page", `document.querySelectorAll("#findings li.finding").length === 2 && new URL(location.href).searchParams.get("pages") === "2"`)
	ids := eval[[]string](t, ctx, `[...document.querySelectorAll("#findings li.finding")].map(li => li.dataset.id)`)
	if ids[0] == ids[1] {
		t.Fatalf("the second page repeats the first: %v", ids)
	}
	if want == 2 {
		waitJS(t, ctx, "last page", `document.getElementById("findings-more").hidden`)
	}

	// Choose the hostile agent's finding: its evidence, checked in this browser.
	hostileF := findingOf(ans, planted[0])
	do(t, ctx, "all findings", chromedp.Navigate(s.url+"/ui/findings?limit=200&tenant="+url.QueryEscape(tenant)))
	waitJS(t, ctx, "findings view", ready("findings"))
	do(t, ctx, "choose a finding", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#findings li.finding[data-id=%q] a.finding-open`, hostileF.ID))))
	waitJS(t, ctx, "the finding's evidence", fmt.Sprintf(`document.querySelector('#finding-detail .finding-detail[data-id=%q] #evidence li.evidence[data-id="planted-no-delegation"] .badge[data-state=verified]')`, hostileF.ID))
	if got := eval[string](t, ctx, `new URL(location.href).searchParams.get("sel")`); got != hostileF.ID {
		t.Fatalf("the URL selects %q, want %s", got, hostileF.ID)
	}
	detail := eval[string](t, ctx, `document.getElementById("finding-detail").textContent`)
	for _, s := range []string{"no delegation token", hostileAgent, hostileReason, "record planted-no-delegation"} {
		if !strings.Contains(detail, s) {
			t.Errorf("the finding's detail does not show %q as text:\n%s", s, detail)
		}
	}
	if !eval[bool](t, ctx, fmt.Sprintf(`document.querySelector('#findings li.finding.selected').dataset.id === %q`, hostileF.ID)) {
		t.Fatal("the chosen finding is not marked in the list")
	}
	checkSafe("the finding's detail")
	shot(t, ctx, "findings-03-evidence.png")

	// The link reopens the finding.
	do(t, ctx, "reload", chromedp.Reload())
	waitJS(t, ctx, "the finding after a reload", ready("findings")+fmt.Sprintf(` && document.querySelector('#finding-detail .finding-detail[data-id=%q] .badge[data-state=verified]')`, hostileF.ID))

	// The evidence leads to the action chain, then to the record, both verified.
	do(t, ctx, "follow the chain link", chromedp.Click(chromedp.CSS(`#evidence li.evidence[data-id="planted-no-delegation"] a.ev-chain`)))
	waitJS(t, ctx, "action chain", ready("actions"))
	if got := eval[string](t, ctx, `location.pathname + location.search`); got != "/ui/actions/planted-no-delegation?tenant="+url.QueryEscape(tenant) {
		t.Fatalf("the chain link led to %s", got)
	}
	waitJS(t, ctx, "verified chain", `document.querySelector(".chain .action-line[data-id='planted-no-delegation'] .badge[data-state=verified]")`)
	if eval[bool](t, ctx, `document.getElementById("main").textContent.includes("null")`) {
		t.Fatal("the action chain shows an absent part as \"null\"")
	}
	checkSafe("the action chain")
	shot(t, ctx, "findings-04-action-chain.png")
	do(t, ctx, "back", chromedp.Evaluate[chromedp.Void](`history.back()`))
	waitJS(t, ctx, "findings again", ready("findings")+fmt.Sprintf(` && document.querySelector('#finding-detail .finding-detail[data-id=%q]')`, hostileF.ID))
	do(t, ctx, "follow the record link", chromedp.Click(chromedp.CSS(`#evidence li.evidence[data-id="planted-no-delegation"] a.ev-record`)))
	waitJS(t, ctx, "record view", ready("records"))
	waitJS(t, ctx, "verified record", `document.querySelector("#record-verdict .badge[data-state=verified]")`)
	if got := eval[string](t, ctx, `document.getElementById("subject").textContent`); got != "planted-no-delegation" {
		t.Fatalf("the record link opened %q", got)
	}
	checkSafe("the record")

	// One byte of the expired token's record changes in the log: its evidence badge fails.
	expired := findingOf(ans, planted[3])
	var rec lineage.Record
	for _, r := range s.records {
		if r.ID == planted[3].record {
			rec = r
		}
	}
	rp, err := verify.DecodeRecordProof(get(t, s.url+"/v1/records/"+rec.ID+"?tenant="+url.QueryEscape(tenant)))
	if err != nil {
		t.Fatal(err)
	}
	// Answers with proofs rebuild each leaf from its index row and serve it only if it matches
	// the log's tile (query/lineage_api.go), so a changed entry bundle shows through only for
	// rows without the envelope columns, as rows indexed before SQLite schema 3 are: make this
	// record's row one of those, so the tampered bundle is what the page gets to check.
	db, err := sql.Open("sqlite3", service.IndexPath(s.dataDir)+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if res, err := db.Exec(`UPDATE records SET received_ns = NULL, source_verified = NULL WHERE tenant = ? AND id = ?`, tenant, rec.ID); err != nil {
		t.Fatal(err)
	} else if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%d index rows for %s", n, rec.ID)
	}
	restore := tamper(t, s.dataDir, rp.Leaf, rec)
	do(t, ctx, "open the tampered finding", chromedp.Navigate(s.url+"/ui/findings?limit=200&tenant="+url.QueryEscape(tenant)+"&sel="+expired.ID))
	waitJS(t, ctx, "failed evidence", fmt.Sprintf(`document.querySelector('#finding-detail .finding-detail[data-id=%q] li.evidence[data-id=%q] .badge[data-state=failed]')`, expired.ID, rec.ID))
	waitJS(t, ctx, "failed finding in the list", fmt.Sprintf(`document.querySelector('#findings li.finding[data-id=%q] .ev-badge .badge[data-state=failed]')`, expired.ID))
	shot(t, ctx, "findings-05-tampered.png")
	restore()
	do(t, ctx, "reload", chromedp.Reload())
	waitJS(t, ctx, "verified evidence again", fmt.Sprintf(`document.querySelector('#finding-detail li.evidence[data-id=%q] .badge[data-state=verified]')`, rec.ID))
	checkSafe("the end")
}

// kindTitle is the title GET /v1/findings/kinds gives a kind.
func kindTitle(k findings.Kind) string {
	for _, i := range findings.Kinds {
		if i.Kind == k {
			return i.Title
		}
	}
	return string(k)
}
