package web_test

// The OIDC browser login (query/auth/login.go) in a real browser against a real OpenID provider
// process (internal/testenv/oidcop, zitadel/oidc's example OP): chromium, driven by chromedp,
// clicks "Log in" in the UI of an in-process lineaged, fills the provider's login form, and
// lands back in the UI with a session. Like ui_browser_test.go it fails, not skips, without
// chromium (scripts/deps-chromium.sh).

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/lineage-audit/lineage/internal/service"
	"github.com/lineage-audit/lineage/internal/testenv"
	"github.com/lineage-audit/lineage/query/auth"
)

// startLoginServer runs lineaged in-process with OIDC bearer tokens and the browser login of
// op's client "lineage", and returns its base URL.
func startLoginServer(t *testing.T, httpAddr string, op *testenv.OIDCProvider) string {
	t.Helper()
	return runLineaged(t, service.Config{HTTPAddr: httpAddr, LogOrigin: "lineage.test/login",
		OIDC:      auth.OIDCConfig{Issuer: op.Issuer, Audience: "lineage"},
		OIDCLogin: auth.LoginConfig{ClientID: "lineage", RedirectURL: "http://" + httpAddr + auth.CallbackPath},
	}, 30*time.Second)
}

// fetchJS is a page-context fetch that resolves to "<status> <body>".
func fetchJS(t *testing.T, ctx context.Context, path, init string) string {
	t.Helper()
	js := `fetch(` + quoteJS(path) + `, ` + init + `).then(async (r) => r.status + " " + await r.text())`
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("fetch %s from the page: %v", path, err)
	}
	return v
}

func quoteJS(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func TestUIBrowserOIDCLogin(t *testing.T) {
	httpAddr := freeAddr(t)
	op := testenv.StartOIDCProvider(t, testenv.OIDCProviderOptions{
		Clients:     []string{"lineage"},
		RedirectURL: "http://" + httpAddr + auth.CallbackPath,
		Claims: map[string]map[string]any{testenv.OIDCUser1: {
			"lineage_roles": []string{"auditor", "publisher"}, "lineage_tenants": []string{"acme"}}},
	})
	base := startLoginServer(t, httpAddr, op)
	ctx, dialogs := browser(t)

	// Without a session the API refuses the page, and Settings offers the login.
	do(t, ctx, "open the settings", chromedp.Navigate(base+"/ui/settings"))
	waitJS(t, ctx, "settings", ready("settings"))
	waitJS(t, ctx, "the login link", `document.getElementById("login") && document.getElementById("header-login")`)
	if got := fetchJS(t, ctx, "/v1/verifier", `{}`); !strings.HasPrefix(got, "401 ") {
		t.Fatalf("GET /v1/verifier before the login: %s", got)
	}
	shot(t, ctx, "login-01-settings.png")

	// The login: to the provider's form, and back.
	do(t, ctx, "click Log in", chromedp.Click(chromedp.CSS("#login")), chromedp.WaitVisible(chromedp.CSS("#username")))
	if u := eval[string](t, ctx, `location.origin`); u != op.Issuer {
		t.Fatalf("Log in led to %s, not the provider %s", u, op.Issuer)
	}
	shot(t, ctx, "login-02-provider.png")
	do(t, ctx, "sign in at the provider",
		chromedp.SetValue(chromedp.CSS("#username"), op.Username(testenv.OIDCUser1)),
		chromedp.SetValue(chromedp.CSS("#password"), testenv.OIDCPassword),
		chromedp.Click(chromedp.CSS("button[type=submit]")))
	waitJS(t, ctx, "back in the UI, logged in", `location.origin === `+quoteJS(base)+` && location.pathname === "/ui/settings" && document.getElementById("session-subject")`)
	waitJS(t, ctx, "settings", ready("settings"))
	if got := eval[string](t, ctx, `document.getElementById("session-subject").textContent`); got != "oidc:"+testenv.OIDCUser1 {
		t.Fatalf("logged in as %q", got)
	}
	if got := eval[string](t, ctx, `document.getElementById("session-user").textContent`); got != "oidc:"+testenv.OIDCUser1 {
		t.Fatalf("the header names %q", got)
	}
	if eval[bool](t, ctx, `!!document.getElementById("login-error")`) {
		t.Fatal("the login reports an error")
	}
	shot(t, ctx, "login-03-logged-in.png")

	// The cookies: the session's is HttpOnly and SameSite=Strict (not Secure: plain HTTP to
	// an http:// redirect URL); the login's is gone.
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base + "/", base + auth.CallbackPath}})
	if err != nil {
		t.Fatal(err)
	}
	var session *network.Cookie
	for _, c := range res.Cookies {
		switch c.Name {
		case auth.SessionCookie:
			session = c
		case auth.LoginCookie:
			t.Errorf("the login cookie outlived the login: %+v", c)
		}
	}
	if session == nil {
		t.Fatalf("no %s cookie; cookies: %+v", auth.SessionCookie, res.Cookies)
	}
	if !session.HTTPOnly || session.SameSite != network.CookieSameSiteStrict || session.Secure || session.Path != "/" {
		t.Errorf("session cookie: HttpOnly %v, SameSite %q, Secure %v, path %q; want HttpOnly, Strict, not Secure, /",
			session.HTTPOnly, session.SameSite, session.Secure, session.Path)
	}
	if eval[bool](t, ctx, `document.cookie.includes("`+auth.SessionCookie+`")`) {
		t.Error("the page's script can read the session cookie")
	}

	// The page's API calls are authenticated by the session.
	if got := fetchJS(t, ctx, "/v1/verifier", `{credentials: "same-origin"}`); !strings.HasPrefix(got, "200 lineage.test/login+") {
		t.Fatalf("GET /v1/verifier with the session: %s", got)
	}
	if got := fetchJS(t, ctx, "/v1/auth/session", `{}`); !strings.HasPrefix(got, "200 ") || !strings.Contains(got, `"subject":"oidc:`+testenv.OIDCUser1+`"`) ||
		!strings.Contains(got, `"tenants":["acme"]`) {
		t.Fatalf("GET /v1/auth/session: %s", got)
	}
	// A state-changing call without the CSRF token is refused; with it (api.js send) it
	// reaches the handler, which finds no records in the body.
	post := `{method: "POST", headers: {"Content-Type": "application/json"}, body: "[]"}`
	if got := fetchJS(t, ctx, "/v1/records", post); !strings.HasPrefix(got, "403 ") || !strings.Contains(got, auth.CSRFHeader) {
		t.Fatalf("POST /v1/records without the CSRF token: %s", got)
	}
	wrong := `{method: "POST", headers: {"Content-Type": "application/json", "X-CSRF-Token": "forged"}, body: "[]"}`
	if got := fetchJS(t, ctx, "/v1/records", wrong); !strings.HasPrefix(got, "403 ") {
		t.Fatalf("POST /v1/records with a wrong CSRF token: %s", got)
	}
	sent, err := chromedp.Run(ctx, chromedp.Evaluate[string](`import("/ui/js/api.js").then(async (m) => {
		try { await m.send("POST", "/v1/records", []); return "sent"; } catch (e) { return e.status + " " + e.message; } })`, chromedp.EvalAwaitPromise))
	if err != nil || sent != "400 no records in the body" {
		t.Fatalf("POST /v1/records through api.js with the CSRF token: %q, %v", sent, err)
	}

	// Log out: the session ends on the server, and its cookie in the browser.
	do(t, ctx, "click Log out", chromedp.Click(chromedp.CSS("#logout")))
	waitJS(t, ctx, "logged out", `document.getElementById("login") && document.getElementById("header-login") && !document.getElementById("session-subject")`)
	shot(t, ctx, "login-04-logged-out.png")
	for _, p := range []string{"/v1/verifier", "/v1/auth/session"} {
		if got := fetchJS(t, ctx, p, `{}`); !strings.HasPrefix(got, "401 ") {
			t.Errorf("GET %s after logout: %s", p, got)
		}
	}
	res, err = chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base + "/"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Cookies {
		if c.Name == auth.SessionCookie {
			t.Errorf("the session cookie outlived the logout: %+v", c)
		}
	}
	// The old session id is dead on the server too, not just forgotten by the browser.
	req, _ := http.NewRequest("GET", base+"/v1/verifier", nil)
	req.AddCookie(&http.Cookie{Name: auth.SessionCookie, Value: session.Value})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the logged-out session id still works: %s", resp.Status)
	}
	if n := dialogs.Load(); n != 0 {
		t.Fatalf("%d JavaScript dialogs opened", n)
	}
}
