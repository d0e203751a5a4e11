package web_test

// BenchmarkUITree10k: how soon a user's lineage of 10,000 actions is usable in a real browser
// (Debian's chromium, headless) against a real lineaged started in-process. Run it with
//
//	go test -run '^$' -bench UITree10k -benchtime 1x ./web/
//
// It reports, from the page's own clock (performance marks static/js/views/lineage.js sets,
// relative to the navigation's start):
//
//   - ms-interactive: the deep link of the user's tree opened until its first page of rows is
//     in the DOM and the tree takes keyboard focus (mark lineage:tree-interactive);
//   - ms-all-verified: until every page of the window is loaded and every action's badge is
//     verified in the page (mark lineage:tree-verified).
//
// It also checks that the tree stays virtualized (far fewer row elements than rows) and that
// the keyboard reaches the last of the 10,000 actions.
//
// The helpers of ui_browser_test.go take *testing.T; the few a benchmark needs are repeated
// here for testing.TB.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/service"
)

const (
	benchTenant  = "bench-bank"
	benchUser    = "ursula.kowalski@bench-bank.example"
	benchPlanner = "spiffe://bench-bank.example/ns/agents/sa/planner"
	benchChecker = "spiffe://bench-bank.example/ns/agents/sa/checker"
	benchExecs   = 8
)

func benchExecutor(i int) string {
	return fmt.Sprintf("spiffe://bench-bank.example/ns/agents/sa/executor-%d", i)
}

// benchRecords makes n decision records of one user over October 2026, in sessions of ten: the
// planner's plan (the root, delegated by the user), eight executors' actions under it, and a
// checker that executor-0 delegated to. Each carries its RFC 8693 actor chain and parent_id, so
// the tree nests the same on every page. About 5% are denied, 2% escalated, 3% modified.
func benchRecords(tb testing.TB, n int) []lineage.Record {
	tb.Helper()
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	sessions := (n + 9) / 10
	step := 30 * 24 * time.Hour / time.Duration(sessions)
	user := lineage.Person{ID: benchUser, Issuer: "https://login.bench-bank.example/"}
	model := &lineage.Model{Provider: "example", Name: "bench-model", Version: "1"}
	out := make([]lineage.Record, 0, n)
	for s := 0; len(out) < n; s++ {
		t0 := start.Add(time.Duration(s) * step)
		deleg := func(actors ...string) *lineage.Delegation {
			return &lineage.Delegation{TokenID: fmt.Sprintf("tok-%06d", s), Issuer: user.Issuer, Mechanism: "rfc8693",
				Scope: []string{"loans:read", "loans:decide"}, IssuedAt: t0.Add(-time.Second).Format(time.RFC3339),
				ExpiresAt: t0.Add(15 * time.Minute).Format(time.RFC3339), Actors: actors}
		}
		root := fmt.Sprintf("bench-%06d-0", s)
		for k := 0; k < 10 && len(out) < n; k++ {
			i := len(out)
			r := lineage.Record{
				Schema: lineage.SchemaV1, ID: fmt.Sprintf("bench-%06d-%d", s, k),
				Time:   t0.Add(time.Duration(k) * 700 * time.Millisecond).Format(time.RFC3339Nano),
				Tenant: benchTenant, Source: lineage.Source{ID: "gateway-1", Type: "ai-gateway"}, User: user,
				Decision: lineage.Decision{Effect: lineage.EffectAllow, Policy: lineage.Policy{ID: "bench.agent-scope", Version: "v1"},
					Reason: "within the delegated scope"},
			}
			switch {
			case k == 0:
				r.Agent, r.Role, r.Delegation = lineage.Agent{ID: benchPlanner, Model: model}, "planner", deleg(benchPlanner)
				r.Action = lineage.Action{Type: "plan", Target: fmt.Sprintf("loan-application/LA-%06d", s)}
			case k == 9:
				r.Agent, r.Role, r.ParentID = lineage.Agent{ID: benchChecker, Model: model}, "checker", fmt.Sprintf("bench-%06d-1", s)
				r.Delegation = deleg(benchChecker, benchExecutor(0), benchPlanner)
				r.Action = lineage.Action{Type: "check", Target: fmt.Sprintf("loan-application/LA-%06d/decision", s)}
			default:
				e := benchExecutor(k - 1)
				r.Agent, r.Role, r.ParentID, r.Delegation = lineage.Agent{ID: e, Model: model}, "executor", root, deleg(e, benchPlanner)
				r.Action = lineage.Action{Type: []string{"db.read", "tool.call", "email.send"}[k%3], Target: fmt.Sprintf("customers/CUST-%06d/%d", s, k)}
			}
			switch h := (uint32(i) * 2654435761) >> 20 % 100; {
			case h < 5:
				r.Decision.Effect, r.Decision.Reason = lineage.EffectDeny, "outside the delegated scope"
			case h < 7:
				r.Decision.Effect, r.Decision.Reason = lineage.EffectEscalate, "amount above the agent's limit"
			case h < 10:
				r.Decision.Effect, r.Decision.Reason = lineage.EffectModify, "fields redacted"
			}
			if err := r.Validate(); err != nil {
				tb.Fatalf("bench record %s: %v", r.ID, err)
			}
			out = append(out, r)
		}
	}
	return out
}

// benchServer runs lineaged in-process, like startServer (ui_browser_test.go).
func benchServer(tb testing.TB) (base, vkey string) {
	tb.Helper()
	base = runLineaged(tb, service.Config{LogOrigin: "lineage.test/ui-bench"}, 2*time.Minute)
	return base, strings.TrimSpace(string(get(tb, base+"/v1/verifier")))
}

// benchPublish posts recs in batches (POST /v1/records, application/json) and waits until the
// index and the checkpoint cover them.
func benchPublish(tb testing.TB, base string, recs []lineage.Record, batch int) {
	tb.Helper()
	for i := 0; i < len(recs); i += batch {
		part := recs[i:min(i+batch, len(recs))]
		body, _ := json.Marshal(part)
		resp, err := http.Post(base+"/v1/records", "application/json", bytes.NewReader(body))
		if err != nil {
			tb.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var r struct {
			Accepted int `json:"accepted"`
		}
		if json.Unmarshal(b, &r) != nil || r.Accepted != len(part) {
			tb.Fatalf("POST /v1/records: %s, %d of %d accepted\n%.500s", resp.Status, r.Accepted, len(part), b)
		}
	}
	want := uint64(len(recs))
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var h struct {
			IndexPosition  uint64 `json:"index_position"`
			CheckpointSize uint64 `json:"checkpoint_size"`
		}
		if json.Unmarshal(get(tb, base+"/healthz"), &h) == nil && h.IndexPosition >= want && h.CheckpointSize >= want {
			return
		}
	}
	tb.Fatalf("%d records not indexed and checkpointed within 2 minutes", want)
}

// benchBrowser starts headless chromium with a deadline long enough for 10,000 actions.
func benchBrowser(tb testing.TB) context.Context {
	tb.Helper()
	ctx, _ := browserFor(tb, 10*time.Minute)
	return ctx
}

// markJS is the time of a performance mark, in ms since the navigation started, or -1.
func markJS(name string) string {
	return fmt.Sprintf(`(performance.getEntriesByName(%q, "mark")[0] || {startTime: -1}).startTime`, name)
}

func BenchmarkUITree10k(b *testing.B) {
	const n = 10_000
	base, vkey := benchServer(b)
	benchPublish(b, base, benchRecords(b, n), 1000)
	ctx := benchBrowser(b)

	// Pin the key as an auditor would have, then open the deep link of the whole tree: every
	// agent expanded, so the tree has over 10,000 rows.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/ui/log")); err != nil {
		b.Fatal(err)
	}
	eval[bool](b, ctx, fmt.Sprintf(`localStorage.setItem("lineage.pinnedKey", %q), true`, vkey))
	q := url.Values{"tenant": {benchTenant}}
	q.Add("open", benchPlanner)
	for i := 0; i < benchExecs; i++ {
		q.Add("open", benchPlanner+"\n"+benchExecutor(i))
	}
	q.Add("open", benchPlanner+"\n"+benchExecutor(0)+"\n"+benchChecker)
	deep := base + "/ui/users/" + url.PathEscape(benchUser) + "?" + q.Encode()

	var interactive, verified float64
	runs := 0
	for b.Loop() {
		if err := chromedp.Do(ctx, chromedp.Navigate(deep)); err != nil {
			b.Fatal(err)
		}
		waitFor(b, ctx, "the interactive tree", markJS("lineage:tree-interactive")+" >= 0", time.Minute)
		waitFor(b, ctx, "every action loaded and verified", markJS("lineage:tree-verified")+" >= 0", 5*time.Minute)
		b.StopTimer()
		interactive += eval[float64](b, ctx, markJS("lineage:tree-interactive"))
		verified += eval[float64](b, ctx, markJS("lineage:tree-verified"))
		runs++
		if runs == 1 {
			b.Logf("page timeline (ms since navigation start: fetch start → first byte → end):\n%s", eval[string](b, ctx, resourceTimingJS))
		}
		checkTree10k(b, ctx, n)
		b.StartTimer()
	}
	b.ReportMetric(interactive/float64(runs), "ms-interactive")
	b.ReportMetric(verified/float64(runs), "ms-all-verified")
}

// checkTree10k checks the loaded tree: every action shown and verified, the DOM virtualized
// while scrolling, and the keyboard reaching the last row.
func checkTree10k(b *testing.B, ctx context.Context, n int) {
	b.Helper()
	st := eval[map[string]string](b, ctx, `Object.assign({}, document.getElementById("tree-status").dataset)`)
	if st["shown"] != fmt.Sprint(n) || st["verified"] != fmt.Sprint(n) || st["failed"] != "0" || st["complete"] != "true" {
		b.Fatalf("tree status %v, want %d actions shown and verified, none failed, complete", st, n)
	}
	rows := eval[int](b, ctx, `+document.querySelector("[role=tree]").dataset.rows`)
	if rows <= n {
		b.Fatalf("%d tree rows open, want every agent open over %d actions", rows, n)
	}
	const maxDOM = 200
	for _, at := range []string{"0", "0.5", "1"} {
		eval[bool](b, ctx, `(() => { const t = document.querySelector("[role=tree]");
			t.scrollTop = (t.scrollHeight - t.clientHeight) * `+at+`; return true; })()`)
		if err := chromedp.Do(ctx, chromedp.Sleep(50*time.Millisecond)); err != nil {
			b.Fatal(err)
		}
		got := eval[int](b, ctx, `document.querySelectorAll("[role=tree] .tree-row").length`)
		if got == 0 || got > maxDOM {
			b.Fatalf("scrolled to %s of the tree: %d row elements in the DOM for %d rows, want 1..%d (virtualized)", at, got, rows, maxDOM)
		}
	}
	if err := chromedp.Do(ctx, chromedp.Focus(chromedp.CSS("[role=tree]")), chromedp.KeyEvent(kb.End)); err != nil {
		b.Fatal(err)
	}
	last := eval[map[string]string](b, ctx, `Object.assign({}, (document.querySelector(".tree-row.active")||{dataset:{}}).dataset)`)
	if last["kind"] != "action" {
		b.Fatalf("End in the tree: active row %v, want an action", last)
	}
	if bad := eval[int](b, ctx, `document.querySelectorAll(".tree-row .badge[data-state=failed]").length`); bad != 0 {
		b.Fatalf("%d failed badges", bad)
	}
}

// resourceTimingJS lists the page's requests with their timings, for the benchmark's log.
const resourceTimingJS = `(() => {
	const nav = performance.getEntriesByType("navigation")[0];
	const f = (x) => Math.round(x);
	const lines = ["document " + f(nav.startTime) + " → " + f(nav.responseStart) + " → " + f(nav.responseEnd) + ", DOMContentLoaded " + f(nav.domContentLoadedEventEnd)];
	for (const r of performance.getEntriesByType("resource")) {
		const u = new URL(r.name);
		lines.push(u.pathname.slice(0, 60) + (u.search.includes("cursor") ? " (cursor)" : "") + " " + f(r.startTime) + " → " + f(r.responseStart) + " → " + f(r.responseEnd) + ", " + Math.round(r.encodedBodySize / 1024) + " KiB");
	}
	for (const m of performance.getEntriesByType("mark")) lines.push("mark " + m.name + " " + f(m.startTime));
	return lines.join("\\n");
})()`

// TestUIBrowserGraphTimeline: the user view's delegation graph and timeline on the benchmark's
// crew (600 actions): the graph aggregates per agent with deny counts on the edges; choosing an
// agent filters the tree and stays in the URL across a reload; a timeline bucket narrows the
// window. Screenshots 12-delegation-graph.png and 13-timeline.png.
func TestUIBrowserGraphTimeline(t *testing.T) {
	const n = 600
	s := startServer(t)
	s.publish(t, benchRecords(t, n), n)
	ctx, dialogs := browser(t)
	do(t, ctx, "open the UI", chromedp.Navigate(s.url+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#pin-key")),
		chromedp.Click(chromedp.CSS("#pin-key")), chromedp.WaitVisible(chromedp.CSS("#pinned-key")))
	q := url.Values{"tenant": {benchTenant}, "open": {benchPlanner}}
	do(t, ctx, "open the user", chromedp.Navigate(s.url+"/ui/users/"+url.PathEscape(benchUser)+"?"+q.Encode()))
	waitJS(t, ctx, "user view", ready("users"))
	waitJS(t, ctx, "every action verified", `document.getElementById("tree-status").dataset.done === "true"`)

	// One node per agent (planner, 8 executors, the checker), not per action; the edges count
	// the actions under them and call out the denied ones.
	if got := eval[int](t, ctx, `document.querySelectorAll("#delegation-graph .node.agent").length`); got != benchExecs+2 {
		t.Fatalf("%d agent nodes in the graph, want %d", got, benchExecs+2)
	}
	if got := eval[string](t, ctx, `document.querySelector("#delegation-graph .edge-label").textContent`); !strings.HasPrefix(got, "600") {
		t.Fatalf("the user → planner edge says %q, want the 600 actions", got)
	}
	if eval[int](t, ctx, `document.querySelectorAll("#delegation-graph .edge-label .deny").length`) == 0 {
		t.Fatal("no deny count highlighted on the graph's edges")
	}
	if got := eval[string](t, ctx, `document.getElementById("graph-note").dataset.actions`); got != fmt.Sprint(n) {
		t.Fatalf("the graph is drawn over %s actions, want %d", got, n)
	}
	shot(t, ctx, "12-delegation-graph.png")

	// Choose executor-3: the tree keeps its path only; the URL keeps the choice.
	ex3 := benchExecutor(3)
	node := fmt.Sprintf(`#delegation-graph .node[data-agent=%q]`, ex3)
	do(t, ctx, "choose executor-3", chromedp.Click(chromedp.CSS(node)))
	agentRows := `[...document.querySelectorAll(".tree-row[data-kind=agent]")].map((r) => r.dataset.key).join(" | ")`
	want := benchPlanner + " | " + benchPlanner + "\n" + ex3
	waitJS(t, ctx, "the filtered tree", fmt.Sprintf(`(%s) === %q`, agentRows, want))
	if got := eval[string](t, ctx, `new URLSearchParams(location.search).get("focus")`); got != ex3 {
		t.Fatalf("focus in the URL is %q, want %q", got, ex3)
	}
	do(t, ctx, "reload", chromedp.Reload())
	waitJS(t, ctx, "user view after reload", ready("users"))
	waitJS(t, ctx, "the filtered tree after reload", fmt.Sprintf(`(%s) === %q`, agentRows, want))
	if !eval[bool](t, ctx, fmt.Sprintf(`!!document.querySelector(%q)`, node+".selected")) {
		t.Fatal("the chosen agent is not highlighted after a reload")
	}
	// Enter on the chosen node clears the choice (the graph is usable from the keyboard).
	waitJS(t, ctx, "every action verified", `document.getElementById("tree-status").dataset.done === "true"`)
	// The graph may redraw between the focus and the key press (a late status update replaces
	// its nodes), and a key press on a node no longer in the page reaches nothing: press Enter
	// only while the chosen node holds the focus, and try again if a redraw took it away.
	allAgents := `!new URLSearchParams(location.search).has("focus") && document.querySelectorAll(".tree-row[data-kind=agent]").length === ` + fmt.Sprint(benchExecs+1)
	for attempt := 1; ; attempt++ {
		waitJS(t, ctx, "the chosen node focused", fmt.Sprintf(`(document.querySelector(%q).focus(), document.activeElement === document.querySelector(%q))`, node, node))
		do(t, ctx, "clear the choice", chromedp.KeyEvent(kb.Enter))
		if attempt == 3 {
			break
		}
		ok := false
		for deadline := time.Now().Add(5 * time.Second); !ok && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			ok = eval[bool](t, ctx, "!!("+allAgents+")")
		}
		if ok || eval[bool](t, ctx, `!new URLSearchParams(location.search).has("focus")`) {
			break
		}
	}
	waitJS(t, ctx, "every agent again", allAgents)

	// The timeline: one bucket narrows the window, through the URL and the query itself.
	buckets := eval[int](t, ctx, `document.querySelectorAll("#timeline .bucket").length`)
	if buckets < 10 || buckets > 60 {
		t.Fatalf("%d timeline buckets, want 10..60", buckets)
	}
	if eval[int](t, ctx, `document.querySelectorAll("#timeline .seg.deny").length`) == 0 {
		t.Fatal("no deny segment in the timeline")
	}
	do(t, ctx, "choose a bucket", chromedp.Click(chromedp.CSS(`#timeline .bucket:nth-of-type(5) .hit`)))
	waitJS(t, ctx, "the narrowed window", `new URLSearchParams(location.search).has("from") && `+ready("users"))
	waitJS(t, ctx, "the narrowed tree", `document.getElementById("tree-status").dataset.done === "true"`)
	shown := eval[int](t, ctx, `+document.getElementById("tree-status").dataset.shown`)
	if shown <= 0 || shown >= n {
		t.Fatalf("the narrowed window shows %d actions, want some of the %d", shown, n)
	}
	if !eval[bool](t, ctx, `!!document.getElementById("timeline-clear")`) {
		t.Fatal("no way back to the whole window")
	}
	shot(t, ctx, "13-timeline.png")
	if n := dialogs.Load(); n != 0 {
		t.Fatalf("%d JavaScript dialogs opened", n)
	}
}
