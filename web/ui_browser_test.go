package web_test

// End-to-end tests of the UI in a real browser: Debian's chromium, headless, driven by chromedp,
// against a real lineaged started in-process (internal/service.Run) with records published
// over HTTP. They fail, not skip, without chromium: run scripts/deps-chromium.sh.
//
// Screenshots of each view go to $LINEAGE_SCREENSHOT_DIR, or web/testdata/screenshots/.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/internal/service"
	"github.com/lineage-audit/lineage/verify"
	"golang.org/x/mod/sumdb/note"
)

// chromiumPath is Debian's chromium; LINEAGE_CHROMIUM overrides it.
func chromiumPath() string {
	if p := os.Getenv("LINEAGE_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// server is a lineaged serving the UI, with its data directory.
type server struct {
	url, dataDir, vkey string
	records            []lineage.Record
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// runLineaged runs lineaged in-process with c (a temporary data dir, free loopback ports, fast
// checkpoints and a silent log unless c says otherwise), waits until it is healthy and stops it
// when the test ends. It returns the base URL.
func runLineaged(t testing.TB, c service.Config, stopWithin time.Duration) string {
	t.Helper()
	if c.DataDir == "" {
		c.DataDir = t.TempDir()
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = freeAddr(t)
	}
	if c.NATSAddr == "" {
		c.NATSAddr = freeAddr(t)
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = 100 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- service.Run(ctx, c) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("lineaged: %v", err)
			}
		case <-time.After(stopWithin):
			t.Errorf("lineaged did not stop within %s", stopWithin)
		}
	})
	base := "http://" + c.HTTPAddr
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("lineaged exited: %v", err)
		default:
		}
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("lineaged not healthy after 30s")
		}
	}
}

// startServer runs lineaged in-process, serving the UI like `make run` does.
func startServer(t *testing.T) *server {
	t.Helper()
	dir := t.TempDir()
	base := runLineaged(t, service.Config{DataDir: dir, LogOrigin: "lineage.test/ui"}, 30*time.Second)
	s := &server{url: base, dataDir: dir, vkey: strings.TrimSpace(string(get(t, base+"/v1/verifier")))}
	// lineaged itself serves the UI: `/` leads to it.
	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/ui/" {
		t.Fatalf("GET / on lineaged: %s at %s, want 200 at /ui/", resp.Status, resp.Request.URL.Path)
	}
	return s
}

func get(t testing.TB, u string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", u, resp.Status, b)
	}
	return b
}

// publish posts records and waits until the log's checkpoint and the index cover them.
func (s *server) publish(t *testing.T, recs []lineage.Record, wantAccepted int) {
	t.Helper()
	body, _ := json.Marshal(recs)
	resp, err := http.Post(s.url+"/v1/records", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var r struct {
		Accepted int `json:"accepted"`
	}
	_ = json.Unmarshal(b, &r)
	if r.Accepted != wantAccepted {
		t.Fatalf("POST /v1/records: %s, %d accepted, want %d\n%s", resp.Status, r.Accepted, wantAccepted, b)
	}
	s.records = append(s.records, recs...)
	want := uint64(0)
	for range s.records {
		want++
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var h struct {
			IndexPosition  uint64 `json:"index_position"`
			CheckpointSize uint64 `json:"checkpoint_size"`
		}
		if json.Unmarshal(get(t, s.url+"/healthz"), &h) == nil && h.IndexPosition >= want && h.CheckpointSize >= want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("records not indexed and checkpointed within 30s")
}

func screenshotDir(t *testing.T) string {
	dir := os.Getenv("LINEAGE_SCREENSHOT_DIR")
	if dir == "" {
		dir = filepath.Join("testdata", "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser starts headless chromium for a test; dialogs counts JavaScript dialogs (alert,
// confirm) opened.
func browser(t *testing.T) (context.Context, *atomic.Int32) {
	t.Helper()
	return browserFor(t, 90*time.Second)
}

// browserFor starts headless chromium whose context ends after limit.
func browserFor(t testing.TB, limit time.Duration) (context.Context, *atomic.Int32) {
	t.Helper()
	if _, err := os.Stat(chromiumPath()); err != nil {
		t.Fatalf("chromium is needed for the UI tests and is missing (%v): run scripts/deps-chromium.sh", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath()), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 860),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, limit)
	t.Cleanup(func() { cancelT(); cancelB(); cancelA() })
	dialogs := new(atomic.Int32)
	if err := chromedp.Listen(ctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			dialogs.Add(1)
		}
	}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx, dialogs
}

func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func eval[T any](t testing.TB, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// waitJS waits up to 15 s until the expression is true.
func waitJS(t testing.TB, ctx context.Context, what, js string) {
	t.Helper()
	waitFor(t, ctx, what, js, 15*time.Second)
}

// waitFor waits until the expression is true, for at most limit.
func waitFor(t testing.TB, ctx context.Context, what, js string, limit time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+js+")")); err == nil && ok {
			return
		}
	}
	body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.getElementById("tree-status")||document.body).innerText`))
	t.Fatalf("timed out after %s waiting for %s (%s); page:\n%s", limit, what, js, body)
}

func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(screenshotDir(t), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", p)
}

func ready(view string) string {
	return fmt.Sprintf(`document.getElementById("main").dataset.ready === %q`, view)
}

// busiestUser is the user with the most records in recs.
func busiestUser(recs []lineage.Record) (tenant, user string) {
	n := map[[2]string]int{}
	best := 0
	for _, r := range recs {
		k := [2]string{r.Tenant, r.User.ID}
		n[k]++
		if n[k] > best {
			best, tenant, user = n[k], r.Tenant, r.User.ID
		}
	}
	return tenant, user
}

func TestUIBrowserWalkthrough(t *testing.T) {
	s := startServer(t)
	s.publish(t, demo.Generate(demo.Options{Seed: 11, Tenants: 1}, 120), 120)
	tenant, user := busiestUser(s.records)
	ctx, dialogs := browser(t)

	// First visit: the key is shown with its fingerprint and must be pinned.
	do(t, ctx, "open the UI", chromedp.Navigate(s.url+"/"), chromedp.WaitVisible(chromedp.CSS("#pin-key")))
	fp := eval[string](t, ctx, `document.getElementById("server-fingerprint").textContent`)
	if want := keyFingerprint(t, s.vkey); fp != want {
		t.Fatalf("fingerprint shown as %q, want %q (SHA-256 of the public key, first 16 bytes)", fp, want)
	}
	shot(t, ctx, "01-pin-key.png")
	do(t, ctx, "pin the key", chromedp.Click(chromedp.CSS("#pin-key")), chromedp.WaitVisible(chromedp.CSS("#pinned-key")))
	if got := eval[string](t, ctx, `localStorage.getItem("lineage.pinnedKey")`); got != s.vkey {
		t.Fatalf("pinned %q, want %q", got, s.vkey)
	}

	// Search a user.
	do(t, ctx, "search",
		chromedp.SetValue(chromedp.CSS("#f-tenant"), tenant), chromedp.SetValue(chromedp.CSS("#f-kind"), "users"),
		chromedp.SetValue(chromedp.CSS("#f-q"), user), chromedp.Click(chromedp.CSS("#f-go")))
	waitJS(t, ctx, "user view", ready("users"))

	// Expand with the keyboard: Right opens a node, Down moves, until an action is active.
	do(t, ctx, "focus the tree", chromedp.Focus(chromedp.CSS("[role=tree]")))
	for i := 0; i < 12; i++ {
		kind := eval[string](t, ctx, `(document.querySelector(".tree-row.active")||{dataset:{}}).dataset.kind || ""`)
		if kind == "action" {
			break
		}
		do(t, ctx, "keys", chromedp.KeyEvent(kb.ArrowRight), chromedp.KeyEvent(kb.ArrowDown))
	}
	if kind := eval[string](t, ctx, `document.querySelector(".tree-row.active").dataset.kind`); kind != "action" {
		t.Fatalf("keyboard navigation did not reach an action (active row is a %q)", kind)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll("[role=treeitem][aria-expanded=true]").length`); n < 2 {
		t.Fatalf("%d expanded tree items, want the user and an agent", n)
	}
	waitJS(t, ctx, "verified badges in the tree", `document.querySelector(".tree-row.active .badge[data-state=verified]")`)
	if n := eval[int](t, ctx, `document.querySelectorAll(".tree-row .badge[data-state=failed]").length`); n != 0 {
		t.Fatalf("%d failed badges in the tree", n)
	}
	treeURL := eval[string](t, ctx, `location.pathname + location.search`)
	sel := eval[string](t, ctx, `document.querySelector(".tree-row.active").dataset.key`)
	shot(t, ctx, "02-user-tree.png")

	// Deep link: the tree's URL holds the selection and expansion; a reload lands on them.
	do(t, ctx, "reload the tree", chromedp.Reload())
	waitJS(t, ctx, "user view after reload", ready("users"))
	if got := eval[string](t, ctx, `(document.querySelector(".tree-row.active")||{dataset:{}}).dataset.key || ""`); got != sel {
		t.Fatalf("after reloading %s the active row is %q, want %q", treeURL, got, sel)
	}

	// Enter opens the record: verified in the browser.
	do(t, ctx, "open the record", chromedp.Focus(chromedp.CSS("[role=tree]")), chromedp.KeyEvent(kb.Enter))
	waitJS(t, ctx, "record view", ready("records"))
	waitJS(t, ctx, "verified record", `document.querySelector("#record-verdict .badge[data-state=verified]")`)
	shot(t, ctx, "03-record-verified.png")
	recURL := eval[string](t, ctx, `location.pathname + location.search`)
	if !strings.Contains(recURL, "/ui/records/"+url.PathEscape(sel)) {
		t.Fatalf("record URL %s does not name %s", recURL, sel)
	}

	// The download is the raw answer, which the offline verifier accepts.
	var rec lineage.Record
	for _, r := range s.records {
		if r.ID == sel {
			rec = r
		}
	}
	raw := get(t, s.url+"/v1/records/"+url.PathEscape(sel)+"?tenant="+tenant)
	rp, err := verify.DecodeRecordProof(raw)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(s.vkey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verify.VerifyRecordProof(rp, v); err != nil {
		t.Fatalf("the downloadable answer does not verify offline: %v", err)
	}

	// One byte of the stored entry bundle changes: the badge fails.
	restore := tamper(t, s.dataDir, rp.Leaf, rec)
	do(t, ctx, "reload the record", chromedp.Reload())
	waitJS(t, ctx, "failed record", `document.querySelector("#record-verdict .badge[data-state=failed]")`)
	shot(t, ctx, "04-record-failed.png")
	if got := eval[string](t, ctx, `location.pathname + location.search`); got != recURL {
		t.Fatalf("reload moved from %s to %s", recURL, got)
	}
	restore()
	do(t, ctx, "reload the record", chromedp.Reload())
	waitJS(t, ctx, "verified record again", `document.querySelector("#record-verdict .badge[data-state=verified]")`)

	// The other views, each from a deep link.
	for _, v := range []struct{ name, path, ready, check string }{
		{"05-action-chain.png", "/ui/actions/" + url.PathEscape(sel) + "?tenant=" + tenant, "actions", `document.querySelector(".chain .badge[data-state=verified]")`},
		{"06-agent.png", "/ui/agents/" + url.PathEscape(rec.Agent.ID) + "?tenant=" + tenant, "agents", `document.querySelector(".tree-row .badge[data-state=verified]")`},
		{"07-policy.png", "/ui/policies/" + url.PathEscape(rec.Decision.Policy.ID) + "?tenant=" + tenant, "policies", `document.querySelector("table.counts td")`},
		{"08-log.png", "/ui/log", "log", `document.querySelector("#log-facts .badge[data-state=verified]")`},
		{"09-quarantine.png", "/ui/quarantine?tenant=" + tenant, "quarantine", `document.querySelector("#quarantine")`},
		{"10-exports.png", "/ui/exports?tenant=" + tenant, "exports", `document.querySelector("#exports")`},
	} {
		do(t, ctx, "open "+v.path, chromedp.Navigate(s.url+v.path))
		waitJS(t, ctx, v.path, ready(v.ready))
		waitJS(t, ctx, v.path, v.check)
		shot(t, ctx, v.name)
	}

	// Search by action target (a prefix): only the user's actions on those targets, all of them.
	var prefix string
	want := 0
	for _, r := range s.records {
		if r.Tenant == tenant && r.User.ID == user && prefix == "" {
			if i := strings.IndexByte(r.Action.Target, '/'); i > 0 {
				prefix = r.Action.Target[:i+1]
			}
		}
	}
	for _, r := range s.records {
		if r.Tenant == tenant && r.User.ID == user && strings.HasPrefix(r.Action.Target, prefix) {
			want++
		}
	}
	if prefix == "" || want == 0 {
		t.Fatalf("fixture: no action target with a '/' for %s", user)
	}
	do(t, ctx, "search by action target",
		chromedp.Navigate(s.url+"/ui/search?tenant="+tenant),
		chromedp.WaitVisible(chromedp.CSS("#f-q")),
		chromedp.SetValue(chromedp.CSS("#f-kind"), "users"), chromedp.SetValue(chromedp.CSS("#f-q"), user),
		chromedp.SetValue(chromedp.CSS("#f-action-target"), prefix+"*"), chromedp.Click(chromedp.CSS("#f-go")))
	waitJS(t, ctx, "filtered user view", ready("users"))
	waitJS(t, ctx, "all filtered actions", fmt.Sprintf(`document.getElementById("tree-status").textContent.includes("Showing %d of %d actions")`, want, want))
	if got := eval[string](t, ctx, `new URL(location.href).searchParams.get("action_target")`); got != prefix+"*" {
		t.Fatalf("the URL keeps action_target %q, want %q", got, prefix+"*")
	}

	// A changed server key is a loud warning.
	do(t, ctx, "change the pin", chromedp.Evaluate[chromedp.Void](`localStorage.setItem("lineage.pinnedKey", "other.example+01020304+AQ==")`), chromedp.Reload())
	waitJS(t, ctx, "key change alarm", `document.querySelector("#key-changed[role=alert]")`)
	shot(t, ctx, "11-key-changed.png")
	if n := dialogs.Load(); n != 0 {
		t.Fatalf("%d JavaScript dialogs opened", n)
	}
}

// keyFingerprint is how the UI shows a log key (web/static/js/verify.js parseVerifierKey): the
// first 16 bytes of the SHA-256 of the raw Ed25519 key, in hex groups of four.
func keyFingerprint(t testing.TB, vkey string) string {
	t.Helper()
	parts := strings.SplitN(vkey, "+", 3) // name+hash+base64 key (the key may hold '+')
	raw, err := base64.StdEncoding.DecodeString(parts[len(parts)-1])
	if err != nil || len(raw) != 33 {
		t.Fatalf("verifier key %q: %v", vkey, err)
	}
	sum := sha256.Sum256(raw[1:])
	h := hex.EncodeToString(sum[:16])
	var groups []string
	for i := 0; i < len(h); i += 4 {
		groups = append(groups, h[i:i+4])
	}
	return strings.Join(groups, " ")
}

// tamper changes one byte of the record's leaf in every entry bundle holding it (as
// internal/e2e/tamper_test.go does) and returns the function that restores them.
func tamper(t *testing.T, dataDir string, leaf []byte, r lineage.Record) func() {
	t.Helper()
	needle := []byte(`"target":"` + r.Action.Target + `"`)
	forged := bytes.Clone(needle)
	forged[len(forged)-2] ^= 0x01
	forgedLeaf := bytes.Replace(leaf, needle, forged, 1)
	if bytes.Equal(forgedLeaf, leaf) {
		t.Fatalf("leaf does not hold %s", needle)
	}
	restore := map[string][]byte{}
	_ = filepath.WalkDir(filepath.Join(dataDir, "log", "tile", "entries"), func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, leaf) {
			restore[p] = b
			if err := os.WriteFile(p, bytes.Replace(b, leaf, forgedLeaf, 1), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return nil
	})
	if len(restore) == 0 {
		t.Fatal("no entry bundle holds the record's leaf")
	}
	return func() {
		for p, b := range restore {
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// hostile is text that runs script if any view ever treats data as markup or as a link.
const hostile = `<img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script> ` +
	`javascript:window.__pwned=3 <a href="javascript:window.__pwned=4">x</a> zero` + "\u200b" + `width`

func TestUIBrowserHostileData(t *testing.T) {
	s := startServer(t)
	base := demo.Generate(demo.Options{Seed: 5, Tenants: 1}, 3)
	recs := make([]lineage.Record, len(base))
	for i, r := range base {
		r.ID = fmt.Sprintf("hostile-%d", i)
		r.User.ID = "mallory@evil.example"
		r.User.Issuer = "javascript:window.__pwned=5"
		r.ParentID = ""
		if i > 0 {
			r.ParentID = recs[i-1].ID
		}
		r.Decision.Reason = hostile
		r.PolicyContext = json.RawMessage(`{"note":"<script>window.__pwned=6</script>","link":"javascript:window.__pwned=7"}`)
		r.Action.Target = `"><img src=x onerror=window.__pwned=8>`
		recs[i] = r
	}
	s.publish(t, recs, len(recs))
	// One record quarantined (a bidi override in prose is refused at ingest), shown as text.
	bad := recs[0]
	bad.ID = "hostile-quarantined"
	bad.Decision.Reason = "\u202e<img src=x onerror=window.__pwned=9>"
	body, _ := json.Marshal([]lineage.Record{bad})
	if resp, err := http.Post(s.url+"/v1/records", "application/json", bytes.NewReader(body)); err == nil {
		resp.Body.Close()
	}
	tenant := recs[0].Tenant
	ctx, dialogs := browser(t)
	do(t, ctx, "open the UI", chromedp.Navigate(s.url+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#pin-key")),
		chromedp.Click(chromedp.CSS("#pin-key")), chromedp.WaitVisible(chromedp.CSS("#pinned-key")))

	safe := `window.__pwned === undefined && !document.querySelector("main img, main script, main iframe") &&
		![...document.querySelectorAll("a")].some(a => /^javascript:/i.test(a.getAttribute("href") || ""))`
	id := url.PathEscape(recs[2].ID)
	for _, v := range []struct{ path, ready, shown string }{
		{"/ui/users/" + url.PathEscape("mallory@evil.example") + "?tenant=" + tenant + "&open=" + url.QueryEscape(recs[0].Agent.ID) + "&sel=" + recs[2].ID, "users", recs[2].Action.Target},
		{"/ui/records/" + id + "?tenant=" + tenant, "records", "zero\\u200bwidth"},
		{"/ui/actions/" + id + "?tenant=" + tenant, "actions", "javascript:window.__pwned=5"},
		{"/ui/agents/" + url.PathEscape(recs[2].Agent.ID) + "?tenant=" + tenant, "agents", recs[2].Action.Target},
		{"/ui/policies/" + url.PathEscape(recs[2].Decision.Policy.ID) + "?tenant=" + tenant, "policies", "<script>window.__pwned=2</script>"},
		{"/ui/quarantine?tenant=" + tenant, "quarantine", "onerror=window.__pwned=9"},
	} {
		do(t, ctx, "open "+v.path, chromedp.Navigate(s.url+v.path))
		waitJS(t, ctx, v.path, ready(v.ready))
		if v.ready == "users" {
			waitJS(t, ctx, "verified hostile rows", `document.querySelector(".tree-row .badge[data-state=verified]")`)
		}
		time.Sleep(100 * time.Millisecond) // a late onerror would have fired by now
		if !eval[bool](t, ctx, safe) {
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("main")))
			t.Fatalf("%s: hostile data became markup or ran:\n%s", v.path, html)
		}
		if !eval[bool](t, ctx, fmt.Sprintf(`document.getElementById("main").textContent.includes(%q)`, v.shown)) {
			text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("main").innerText`))
			t.Fatalf("%s: %q not shown as text:\n%s", v.path, v.shown, text)
		}
		shot(t, ctx, "hostile-"+v.ready+".png")
	}
	// The record view shows the reason exactly as written, hidden characters escaped.
	do(t, ctx, "open the record", chromedp.Navigate(s.url+"/ui/records/"+id+"?tenant="+tenant))
	waitJS(t, ctx, "record", ready("records"))
	got := eval[string](t, ctx, `document.getElementById("reason").textContent`)
	if want := strings.ReplaceAll(hostile, "\u200b", `\u200b`); got != want {
		t.Fatalf("reason shown as %q, want %q", got, want)
	}
	waitJS(t, ctx, "verified hostile record", `document.querySelector("#record-verdict .badge[data-state=verified]")`)
	if !eval[bool](t, ctx, safe) {
		t.Fatal("hostile data ran in the record view")
	}
	if n := dialogs.Load(); n != 0 {
		t.Fatalf("%d JavaScript dialogs opened", n)
	}
}
