package web_test

// Erasure in a real browser (see ui_browser_test.go for the setup; docs/ERASURE.md). A new
// log is sealed by default: the record view shows the person's clear id and lists each
// sealed field as checked against its commitment in the leaf, in the browser. After
// POST /v1/erasures the same entry still verifies, and the record and the action chain show
// the person as "erased (commitment …)", with the id nowhere on the page.

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/lineage-audit/lineage/internal/demo"
)

func TestUIBrowserErasure(t *testing.T) {
	s := startServer(t)
	if m, err := os.ReadFile(filepath.Join(s.dataDir, "erasure.mode")); err != nil || strings.TrimSpace(string(m)) != "on" {
		t.Fatalf("a new log's erasure mode: %q %v, want on (the default)", m, err)
	}
	s.publish(t, demo.Generate(demo.Options{Seed: 17, Tenants: 1}, 60), 60)
	tenant, user := busiestUser(s.records)
	var id string
	for _, r := range s.records {
		if r.Tenant == tenant && r.User.ID == user {
			id = r.ID
			break
		}
	}
	ctx, dialogs := browser(t)
	do(t, ctx, "open the UI", chromedp.Navigate(s.url+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#pin-key")),
		chromedp.Click(chromedp.CSS("#pin-key")), chromedp.WaitVisible(chromedp.CSS("#pinned-key")))

	recordURL := s.url + "/ui/records/" + url.PathEscape(id) + "?tenant=" + url.QueryEscape(tenant)
	userField := `document.querySelector('#sealed-fields li[data-path="/user/id"]')`
	do(t, ctx, "open the record", chromedp.Navigate(recordURL))
	waitJS(t, ctx, "verified record", `document.querySelector("#record-verdict .badge[data-state=verified]")`)
	waitJS(t, ctx, "sealed fields checked", `document.getElementById("sealed-fields").dataset.state === "checked"`)
	if !eval[bool](t, ctx, userField+` && `+userField+`.dataset.clear === "true"`) {
		t.Fatalf("before the erasure, /user/id is not listed as clear and checked:\n%s", eval[string](t, ctx, `document.getElementById("sealed-fields").innerText`))
	}
	if !strings.Contains(eval[string](t, ctx, `document.getElementById("main").innerText`), user) {
		t.Fatalf("before the erasure the record view does not show the user %q", user)
	}
	shot(t, ctx, "20-sealed-record.png")

	// Erase the person (inside the minimum retention: a legal basis is given).
	body, _ := json.Marshal(map[string]string{"tenant": tenant, "subject": user, "legal_basis": "data subject request 2026-88 (GDPR Art. 17(1)(a))"})
	resp, err := http.Post(s.url+"/v1/erasures", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/erasures: %s %s", resp.Status, b)
	}

	do(t, ctx, "reload the record", chromedp.Navigate(recordURL))
	waitJS(t, ctx, "verified record after the erasure", `document.querySelector("#record-verdict .badge[data-state=verified]")`)
	waitJS(t, ctx, "sealed fields checked after the erasure", `document.getElementById("sealed-fields").dataset.state === "checked"`)
	if !eval[bool](t, ctx, userField+` && `+userField+`.dataset.clear === "false" && `+userField+`.innerText.includes("erased (commitment ")`) {
		t.Fatalf("after the erasure, /user/id is not listed as erased:\n%s", eval[string](t, ctx, `document.getElementById("sealed-fields").innerText`))
	}
	if got := eval[string](t, ctx, `document.querySelector("#main dl.kv").innerText`); !strings.Contains(got, "erased (commitment ") {
		t.Fatalf("the summary does not show the person as erased:\n%s", got)
	}
	if strings.Contains(eval[string](t, ctx, `document.documentElement.outerHTML`), user) {
		t.Fatalf("the record page still holds the erased user id %q", user)
	}
	shot(t, ctx, "21-erased-record.png")

	// The action chain: authorized by an erased person, every action still verified.
	do(t, ctx, "open the action chain", chromedp.Navigate(s.url+"/ui/actions/"+url.PathEscape(id)+"?tenant="+url.QueryEscape(tenant)))
	waitJS(t, ctx, "action chain", ready("actions"))
	waitJS(t, ctx, "verified chain", `document.querySelector(".chain .badge[data-state=verified]")`)
	if n := eval[int](t, ctx, `document.querySelectorAll(".badge[data-state=failed]").length`); n != 0 {
		t.Fatalf("%d actions of the chain fail verification after the erasure", n)
	}
	main := eval[string](t, ctx, `document.getElementById("main").innerText`)
	if !strings.Contains(main, "erased (commitment ") || strings.Contains(main, user) {
		t.Fatalf("the chain does not show the authorizing person as erased, or still names %q:\n%s", user, main)
	}
	shot(t, ctx, "22-erased-chain.png")
	if n := dialogs.Load(); n != 0 {
		t.Fatalf("%d JavaScript dialogs opened", n)
	}
}
