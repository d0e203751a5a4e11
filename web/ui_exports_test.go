package web_test

// The compliance exports in a real browser (see ui_browser_test.go for the setup): an auditor
// starts an export from the Exports view, follows it to success, reads its findings and
// downloads the evidence bundle, which the offline verifier (verify.VerifyBundle) accepts.

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/verify"
	"golang.org/x/mod/sumdb/note"
)

func TestUIBrowserExports(t *testing.T) {
	s := startServer(t)
	s.publish(t, demo.Generate(demo.Options{Seed: 11, Tenants: 1}, 120), 120)
	tenant := s.records[0].Tenant
	ctx, dialogs := browser(t)
	do(t, ctx, "open the UI", chromedp.Navigate(s.url+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#pin-key")),
		chromedp.Click(chromedp.CSS("#pin-key")), chromedp.WaitVisible(chromedp.CSS("#pinned-key")))

	// Start an EU AI Act export of the month the demo records are in, from the form.
	do(t, ctx, "open the exports", chromedp.Navigate(s.url+"/ui/exports?tenant="+tenant))
	waitJS(t, ctx, "exports view", ready("exports"))
	if got := eval[string](t, ctx, `document.getElementById("x-tenant").value`); got != tenant {
		t.Fatalf("the form's tenant is %q, want the URL's %q", got, tenant)
	}
	do(t, ctx, "fill the export form",
		chromedp.SetValue(chromedp.CSS("#x-kind"), "eu-ai-act"),
		chromedp.SetValue(chromedp.CSS("#x-from"), "2026-11-01"), chromedp.SetValue(chromedp.CSS("#x-to"), "2026-12-01"))
	shot(t, ctx, "14-export-form.png")
	do(t, ctx, "start the export", chromedp.Click(chromedp.CSS("#x-start")))

	// The job's own page follows it to the end.
	waitJS(t, ctx, "the job's page", `location.pathname.startsWith("/ui/exports/exp-") && `+ready("exports"))
	id := eval[string](t, ctx, `decodeURIComponent(location.pathname.slice("/ui/exports/".length))`)
	waitFor(t, ctx, "the export to succeed", `["succeeded", "failed"].includes(document.getElementById("export-job").dataset.status)`, 2*time.Minute)
	if st := eval[string](t, ctx, `document.getElementById("export-job").dataset.status`); st != "succeeded" {
		t.Fatalf("export %s %s:\n%s", id, st, eval[string](t, ctx, `document.getElementById("export-job").innerText`))
	}
	if !eval[bool](t, ctx, `!!document.querySelector("#export-findings") && !!document.querySelector("#export-summary dd")`) {
		t.Fatal("the finished job shows no findings or summary")
	}
	bundle := eval[string](t, ctx, `document.querySelector("#export-bundle [data-file]").dataset.file`)
	if bundle != id+".zip" {
		t.Fatalf("bundle %q, want %s.zip", bundle, id)
	}

	// The download button fetches the bundle and checks its SHA-256 against the job's listing.
	do(t, ctx, "download the bundle", chromedp.Click(chromedp.CSS("#export-bundle button")))
	waitJS(t, ctx, "the downloaded bundle checked", `document.querySelector("#export-bundle [data-check]")`)
	if c := eval[string](t, ctx, `document.querySelector("#export-bundle [data-check]").dataset.check`); c != "ok" {
		t.Fatalf("the page's check of the downloaded bundle: %s", c)
	}
	shot(t, ctx, "15-export-job.png")

	// The bytes the page gets verify offline with the log's key alone.
	b64, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`fetch(%q, {credentials: "same-origin"})
		.then((r) => { if (!r.ok) throw new Error(r.status); return r.blob(); })
		.then((b) => new Promise((ok, fail) => { const f = new FileReader(); f.onload = () => ok(String(f.result).split(",")[1] || ""); f.onerror = fail; f.readAsDataURL(b); }))`,
		"/v1/exports/"+id+"/files/"+bundle), chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("fetch the bundle in the page: %v", err)
	}
	zip, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(zip) == 0 {
		t.Fatalf("bundle from the page: %d bytes, %v", len(zip), err)
	}
	p := filepath.Join(t.TempDir(), bundle)
	if err := os.WriteFile(p, zip, 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(s.vkey)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := verify.VerifyBundle(p, v)
	if err != nil {
		t.Fatalf("the downloaded bundle (%d bytes) does not verify: %v\n%+v", len(zip), err, rep)
	}

	// The list shows the job, linked to its page.
	do(t, ctx, "back to the list", chromedp.Navigate(s.url+"/ui/exports?tenant="+tenant))
	waitJS(t, ctx, "exports list", ready("exports"))
	if !eval[bool](t, ctx, fmt.Sprintf(`[...document.querySelectorAll("#exports a")].some((a) => a.textContent === %q)`, id)) {
		t.Fatalf("the list does not link job %s:\n%s", id, eval[string](t, ctx, `document.getElementById("exports").innerText`))
	}
	if strings.Contains(eval[string](t, ctx, `document.getElementById("exports").innerText`), "failed") {
		t.Fatal("a job in the list failed")
	}
	shot(t, ctx, "16-exports.png")
	if n := dialogs.Load(); n != 0 {
		t.Fatalf("%d JavaScript dialogs opened", n)
	}
}
