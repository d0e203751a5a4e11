package jstest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/lineage-audit/lineage/verify"
)

// chromiumPath is Debian's chromium, which scripts/deps-chromium.sh installs.
const chromiumPath = "/usr/bin/chromium"

// serve serves web/static from disk (the files under test, not an embedded copy) and the JSON
// documents extra maps paths to.
func serve(t testing.TB, extra map[string][]byte) *httptest.Server {
	t.Helper()
	static := http.FileServer(http.Dir("../static"))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b, ok := extra[r.URL.Path]; ok {
			w.Header().Set("Content-Type", "application/json")
			w.Write(b)
			return
		}
		if strings.HasSuffix(r.URL.Path, ".js") {
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		}
		static.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// browser starts headless Chromium and returns a tab's context. Page errors and console output
// are logged.
func browser(t testing.TB) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("headless Chromium is needed at %s (%v): run scripts/deps-chromium.sh", chromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			t.Logf("page exception: %s", ev.ExceptionDetails.Text)
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value))
			}
			t.Logf("console.%s: %s", ev.Type, strings.Join(args, " "))
		}
	})
	if err == nil {
		err = chromedp.Do(ctx)
	}
	if err != nil {
		t.Fatalf("start %s: %v (scripts/deps-chromium.sh installs it)", chromiumPath, err)
	}
	return ctx
}

// result is one vector's outcome in the page.
type result struct {
	Kind        string            `json:"kind"`
	Name        string            `json:"name"`
	Got         string            `json:"got"`
	Reason      string            `json:"reason"`
	Message     string            `json:"message"`
	Fingerprint string            `json:"fingerprint"`
	KeyName     string            `json:"keyName"`
	Size        string            `json:"size"`
	Root        string            `json:"root"`
	Cosigners   []string          `json:"cosigners"`
	RecordID    string            `json:"recordId"`
	Index       string            `json:"index"`
	Same        bool              `json:"same"`
	Actions     map[string]string `json:"actions"`
}

// TestBrowserVerifier runs every vector in headless Chromium and asserts the browser's verdict
// is the Go verifier's.
func TestBrowserVerifier(t *testing.T) {
	vs := makeVectors(t)
	raw, err := json.Marshal(vs)
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, map[string][]byte{"/vectors.json": raw})
	ctx := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	var page struct {
		Done    bool     `json:"done"`
		Error   string   `json:"error"`
		Ms      float64  `json:"ms"`
		Results []result `json:"results"`
	}
	err = chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/test/verify.html"))
	if err == nil {
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](`window.verifyTest?.done === true`,
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(2*time.Minute)))
	}
	var out string
	if err == nil {
		out, err = chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(window.verifyTest)`))
	}
	if err != nil {
		t.Fatalf("run the test page: %v", err)
	}
	if err := json.Unmarshal([]byte(out), &page); err != nil {
		t.Fatal(err)
	}
	if page.Error != "" {
		t.Fatalf("test page: %s", page.Error)
	}
	t.Logf("%d vectors verified in the page in %.0f ms", len(page.Results), page.Ms)

	res := page.Results
	next := func(kind, name string) result {
		t.Helper()
		if len(res) == 0 || res[0].Kind != kind || res[0].Name != name {
			t.Fatalf("the page's results are out of step at %s %q", kind, name)
		}
		r := res[0]
		res = res[1:]
		return r
	}
	bad := 0
	check := func(kind, name, expect, reason string, r result, extra string) {
		t.Helper()
		msg := ""
		switch {
		case r.Got != expect:
			msg = fmt.Sprintf("got %s (%s %s), want %s", r.Got, r.Reason, r.Message, expect)
		case reason != "" && r.Reason != reason:
			msg = fmt.Sprintf("reason %s (%s), want %s", r.Reason, r.Message, reason)
		case extra != "":
			msg = extra
		default:
			return
		}
		if bad++; bad <= 30 {
			t.Errorf("%s vector %q: %s", kind, name, msg)
		}
	}
	for _, v := range vs.Keys {
		r := next("key", v.Name)
		extra := ""
		if r.Got == "ok" && v.VKey == vs.VKey && (r.Fingerprint != vs.Fingerprint || r.KeyName != vs.Origin) {
			extra = fmt.Sprintf("fingerprint %q of %q, want %q of %q", r.Fingerprint, r.KeyName, vs.Fingerprint, vs.Origin)
		}
		check("key", v.Name, v.Expect, "", r, extra)
	}
	for _, v := range vs.Checkpoints {
		r := next("checkpoint", v.Name)
		extra := ""
		if r.Got == "ok" {
			root := base64.StdEncoding.EncodeToString(v.Root)
			cos := v.Cosigners
			if r.Size != v.Size || r.Root != root || (cos != nil && !reflect.DeepEqual(r.Cosigners, cos)) {
				extra = fmt.Sprintf("opened as size %s root %s cosigners %q, want %s %s %q", r.Size, r.Root, r.Cosigners, v.Size, root, cos)
			}
		}
		check("checkpoint", v.Name, v.Expect, v.Reason, r, extra)
	}
	for _, v := range vs.Inclusion {
		check("inclusion", v.Name, v.Expect, v.Reason, next("inclusion", v.Name), "")
	}
	for _, v := range vs.Consistency {
		check("consistency", v.Name, v.Expect, v.Reason, next("consistency", v.Name), "")
	}
	for _, v := range vs.Records {
		r := next("record", v.Name)
		extra := ""
		if r.Got == "ok" {
			var rp verify.RecordProof
			json.Unmarshal(v.Answer, &rp)
			env, err := verify.DecodeEntry(rp.Leaf) // v1, or v2 (sealed vectors)
			if err != nil {
				t.Fatal(err)
			}
			if r.RecordID != env.Record.ID || r.Index != fmt.Sprint(rp.Index) || !r.Same {
				extra = fmt.Sprintf("returned record %s at %s (same %v), want %s at %d", r.RecordID, r.Index, r.Same, env.Record.ID, rp.Index)
			}
		}
		check("record", v.Name, v.Expect, v.Reason, r, extra)
	}
	for _, v := range vs.Answers {
		r := next("answer", v.Name)
		extra := ""
		if r.Got == "ok" {
			if len(r.Actions) != len(v.Actions) {
				extra = fmt.Sprintf("%d actions, want %d", len(r.Actions), len(v.Actions))
			}
			for id, want := range v.Actions {
				got, ok := r.Actions[id]
				if !ok || (want == "" && got == "ok") || (want != "" && got != want) {
					extra += fmt.Sprintf(" action %s: %q, want %q;", id, got, want)
				}
			}
		}
		check("answer", v.Name, v.Expect, v.Reason, r, extra)
	}
	for _, v := range vs.Monitor {
		for i, s := range v.Steps {
			name := fmt.Sprintf("%s step %d", v.Name, i)
			check("monitor", name, s.Expect, "", next("monitor", name), "")
		}
	}
	if len(res) != 0 {
		t.Errorf("the page reported %d results more than there are vectors", len(res))
	}
	if bad > 0 {
		t.Errorf("%d vectors failed in the browser", bad)
	}
}

// BenchmarkBrowserVerify1000 builds a log of 1,024 entries and reports the time the page takes to
// verify 1,000 record proofs (GET /v1/records/{id} answers) against its checkpoint, measured in
// the page with performance.now: the checkpoint signature once, then each leaf, record and
// inclusion proof. Run it with
//
//	go test -run '^$' -bench BrowserVerify1000 ./web/jstest/
func BenchmarkBrowserVerify1000(b *testing.B) {
	const n, size = 1000, 1024
	tl := buildLog(b, []uint64{size})
	proofs := make([]*verify.RecordProof, n)
	for i := range proofs {
		proofs[i] = tl.recordProof(b, uint64(i*size/n), size)
	}
	raw, err := json.Marshal(map[string]any{"vkey": tl.key.vkey, "proofs": proofs})
	if err != nil {
		b.Fatal(err)
	}
	srv := serve(b, map[string][]byte{"/bench.json": raw})
	ctx := browser(b)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/test/verify.html?bench")); err != nil {
		b.Fatal(err)
	}
	run := func() float64 {
		ms, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`window.runBench()`, chromedp.EvalAwaitPromise))
		if err != nil {
			b.Fatal(err)
		}
		return ms
	}
	run() // warm up: fetch the proofs, compile the module
	total, runs := 0.0, 0
	for b.Loop() {
		total += run()
		runs++
	}
	b.ReportMetric(total/float64(runs), "ms/1000proofs")
}
