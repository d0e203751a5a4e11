package auth

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

// fakeOP is an OpenID provider for the login flow's unit tests: discovery, an authorization
// endpoint the test plays the user at (issue), and a token endpoint that checks PKCE and returns
// tokens signed by a testIdP's key (oidc_test.go). Its tokens can be made wrong on purpose.
// The real provider process is exercised by web/login_browser_test.go.
type fakeOP struct {
	idp *testIdP
	srv *httptest.Server

	mu        sync.Mutex
	codes     map[string]fakeGrant
	idNonce   string         // if set, the ID token's nonce instead of the requested one
	access    map[string]any // extra or replaced access-token claims
	verifiers []string       // code_verifier values received
}

type fakeGrant struct{ challenge, nonce, redirect string }

const testClientID = "lineage-ui" // the UI's client id; the access tokens' audience is "lineage"

func newFakeOP(t *testing.T) *fakeOP {
	op := &fakeOP{idp: newIdP(t), codes: map[string]fakeGrant{}}
	mux := http.NewServeMux()
	op.srv = httptest.NewServer(mux)
	t.Cleanup(op.srv.Close)
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": op.srv.URL, "authorization_endpoint": op.srv.URL + "/auth",
			"token_endpoint": op.srv.URL + "/token", "jwks_uri": op.idp.srv.URL + "/jwks"})
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		op.mu.Lock()
		defer op.mu.Unlock()
		g, ok := op.codes[r.PostForm.Get("code")]
		delete(op.codes, r.PostForm.Get("code"))
		v := r.PostForm.Get("code_verifier")
		op.verifiers = append(op.verifiers, v)
		sum := sha256.Sum256([]byte(v))
		if !ok || r.PostForm.Get("grant_type") != "authorization_code" || r.PostForm.Get("client_id") != testClientID ||
			r.PostForm.Get("redirect_uri") != g.redirect || base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"invalid_grant"}`))
			return
		}
		now := time.Now()
		ac := goodClaims(op.srv.URL)
		ac["sub"] = "alice"
		for k, v := range op.access {
			if v == nil {
				delete(ac, k)
			} else {
				ac[k] = v
			}
		}
		nonce := g.nonce
		if op.idNonce != "" {
			nonce = op.idNonce
		}
		id := map[string]any{"iss": op.srv.URL, "aud": testClientID, "sub": "alice", "nonce": nonce,
			"exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": op.idp.token(t, "RS256", ac), "token_type": "Bearer",
			"expires_in": 3600, "id_token": op.idp.token(t, "RS256", id)})
	})
	return op
}

// issue plays the user at the authorization endpoint: it checks the authorization request and
// returns the code the provider would send back.
func (op *fakeOP) issue(t *testing.T, authURL string) string {
	t.Helper()
	u, err := url.Parse(authURL)
	if err != nil || !strings.HasPrefix(authURL, op.srv.URL+"/auth?") {
		t.Fatalf("login redirected to %q, not the provider's authorization endpoint", authURL)
	}
	q := u.Query()
	if q.Get("response_type") != "code" || q.Get("client_id") != testClientID || q.Get("code_challenge_method") != "S256" ||
		q.Get("code_challenge") == "" || len(q.Get("state")) < 40 || len(q.Get("nonce")) < 40 || !strings.Contains(q.Get("scope"), "openid") {
		t.Fatalf("authorization request %v", q)
	}
	code := randomToken()
	op.mu.Lock()
	op.codes[code] = fakeGrant{challenge: q.Get("code_challenge"), nonce: q.Get("nonce"), redirect: q.Get("redirect_uri")}
	op.mu.Unlock()
	return code
}

// loginRig is a Login in front of a minimal API: GET and POST /api need the auditor role.
type loginRig struct {
	op    *fakeOP
	o     *OIDC
	l     *Login
	h     http.Handler
	clock *testClock
}

func newLoginRig(t *testing.T, op *fakeOP, redirect string, maxAge time.Duration) *loginRig {
	t.Helper()
	clock := &testClock{}
	o, err := NewOIDC(OIDCConfig{Issuer: op.srv.URL, Audience: "lineage", Now: clock.now, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLogin(o, LoginConfig{ClientID: testClientID, RedirectURL: redirect, SessionMaxAge: maxAge, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.TestMode)
	r := gin.New()
	l.Mount(r)
	g := r.Group("", l.CSRFGuard, Middleware(Chain{o, l.Sessions()}))
	who := func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"subject": From(c).Subject}) }
	g.GET("/api", Require(RoleAuditor), who)
	g.POST("/api", Require(RoleAuditor), who)
	return &loginRig{op: op, o: o, l: l, h: r, clock: clock}
}

type answer struct {
	code    int
	loc     string
	cookies map[string]*http.Cookie
	body    map[string]any
}

func (rg *loginRig) do(method, target string, hdr map[string]string, cookies ...*http.Cookie) answer {
	r := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	for _, c := range cookies {
		if c != nil {
			r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		}
	}
	w := httptest.NewRecorder()
	rg.h.ServeHTTP(w, r)
	a := answer{code: w.Code, loc: w.Header().Get("Location"), cookies: map[string]*http.Cookie{}}
	for _, c := range w.Result().Cookies() {
		a.cookies[c.Name] = c
	}
	_ = json.Unmarshal(w.Body.Bytes(), &a.body)
	return a
}

// start begins a login and returns the login cookie and the provider's code.
func (rg *loginRig) start(t *testing.T, ret string) (*http.Cookie, string, string) {
	t.Helper()
	a := rg.do("GET", LoginPath+"?return="+url.QueryEscape(ret), nil)
	lc := a.cookies[LoginCookie]
	if a.code != http.StatusFound || lc == nil {
		t.Fatalf("GET %s: %d %v", LoginPath, a.code, a.body)
	}
	if !lc.HttpOnly || lc.SameSite != http.SameSiteLaxMode || lc.Path != CallbackPath || lc.MaxAge <= 0 || lc.MaxAge > 600 {
		t.Fatalf("login cookie %+v: want HttpOnly, SameSite=Lax, path %s, at most 10 minutes", lc, CallbackPath)
	}
	u, _ := url.Parse(a.loc)
	return lc, rg.op.issue(t, a.loc), u.Query().Get("state")
}

func (rg *loginRig) callback(code, state string, lc *http.Cookie) answer {
	return rg.do("GET", CallbackPath+"?"+url.Values{"code": {code}, "state": {state}}.Encode(), nil, lc)
}

// login runs the whole flow and returns the session cookie and the session's CSRF token.
func (rg *loginRig) login(t *testing.T) (*http.Cookie, string) {
	t.Helper()
	lc, code, state := rg.start(t, "/ui/records/r-1?tenant=acme")
	a := rg.callback(code, state, lc)
	sc := a.cookies[SessionCookie]
	if a.code != http.StatusSeeOther || a.loc != "/ui/records/r-1?tenant=acme" || sc == nil {
		t.Fatalf("callback: %d to %q, cookies %v", a.code, a.loc, a.cookies)
	}
	if c := a.cookies[LoginCookie]; c == nil || c.MaxAge >= 0 {
		t.Errorf("the login cookie is not expired after the callback: %+v", c)
	}
	s := rg.do("GET", SessionPath, nil, sc)
	tok, _ := s.body["csrf_token"].(string)
	if s.code != http.StatusOK || s.body["subject"] != "oidc:alice" || len(tok) < 40 {
		t.Fatalf("GET %s: %d %v", SessionPath, s.code, s.body)
	}
	return sc, tok
}

func TestLoginFlow(t *testing.T) {
	op := newFakeOP(t)
	rg := newLoginRig(t, op, "http://127.0.0.1:8080"+CallbackPath, 0)
	sc, csrf := rg.login(t)
	if !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode || sc.Path != "/" || sc.Secure {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, path /, not Secure on plain HTTP", sc)
	}
	if len(sc.Value) < 43 {
		t.Errorf("session id %q is shorter than 256 bits", sc.Value)
	}
	// The session ends with the access token (an hour), before the 8 h cap.
	if exp := sc.Expires; exp.Before(time.Now().Add(59*time.Minute)) || exp.After(time.Now().Add(61*time.Minute)) {
		t.Errorf("session cookie expires %v, want the access token's expiry (in an hour)", exp)
	}
	// PKCE: the token endpoint received the verifier of the challenge (it refuses otherwise).
	if n := len(op.verifiers); n != 1 || len(op.verifiers[0]) < 43 {
		t.Errorf("token endpoint saw verifiers %q", op.verifiers)
	}

	if a := rg.do("GET", "/api", nil, sc); a.code != http.StatusOK || a.body["subject"] != "oidc:alice" {
		t.Fatalf("GET with the session: %d %v", a.code, a.body)
	}
	if a := rg.do("GET", "/api", nil); a.code != http.StatusUnauthorized {
		t.Fatalf("GET without the session: %d", a.code)
	}
	for name, hdr := range map[string]map[string]string{
		"no CSRF token":           nil,
		"wrong CSRF token":        {CSRFHeader: csrf[:len(csrf)-1] + "x"},
		"another header":          {"X-Csrf": csrf},
		"token in the wrong case": {CSRFHeader: strings.ToUpper(csrf)},
	} {
		if a := rg.do("POST", "/api", hdr, sc); a.code != http.StatusForbidden || !strings.Contains(a.body["error"].(string), CSRFHeader) {
			t.Errorf("POST with %s: %d %v, want 403", name, a.code, a.body)
		}
	}
	// Without the guard the authenticator still refuses.
	r := httptest.NewRequest("DELETE", "/api", nil)
	r.AddCookie(&http.Cookie{Name: SessionCookie, Value: sc.Value})
	if p, err := rg.l.Sessions().Authenticate(r); p != nil || err == nil {
		t.Errorf("Authenticate of a DELETE without the CSRF token: %v, %v", p, err)
	}
	if a := rg.do("POST", "/api", map[string]string{CSRFHeader: csrf}, sc); a.code != http.StatusOK || a.body["subject"] != "oidc:alice" {
		t.Fatalf("POST with the CSRF token: %d %v", a.code, a.body)
	}
	// A bearer token needs no CSRF token, session cookie or not; a bad bearer is not rescued
	// by the cookie.
	if a := rg.do("POST", "/api", map[string]string{"Authorization": "Bearer " + op.idp.token(t, "RS256", goodClaims(op.srv.URL))}, sc); a.code != http.StatusOK || a.body["subject"] != "oidc:auditor-7" {
		t.Errorf("POST with a bearer token and the cookie: %d %v", a.code, a.body)
	}
	if a := rg.do("GET", "/api", map[string]string{"Authorization": "Bearer nonsense"}, sc); a.code != http.StatusUnauthorized {
		t.Errorf("GET with a bad bearer token and the cookie: %d", a.code)
	}
	// A made-up session id is refused.
	if a := rg.do("GET", "/api", nil, &http.Cookie{Name: SessionCookie, Value: randomToken()}); a.code != http.StatusUnauthorized {
		t.Errorf("GET with a made-up session: %d", a.code)
	}

	// Logout needs the CSRF token; then the session is gone and its cookie expired.
	if a := rg.do("POST", LogoutPath, nil, sc); a.code != http.StatusForbidden {
		t.Fatalf("logout without the CSRF token: %d", a.code)
	}
	if a := rg.do("GET", "/api", nil, sc); a.code != http.StatusOK {
		t.Fatalf("the refused logout ended the session: %d", a.code)
	}
	a := rg.do("POST", LogoutPath, map[string]string{CSRFHeader: csrf}, sc)
	if c := a.cookies[SessionCookie]; a.code != http.StatusNoContent || c == nil || c.MaxAge >= 0 {
		t.Fatalf("logout: %d, cookie %+v", a.code, c)
	}
	if a := rg.do("GET", "/api", nil, sc); a.code != http.StatusUnauthorized {
		t.Errorf("GET with the session after logout: %d", a.code)
	}
	if a := rg.do("GET", SessionPath, nil, sc); a.code != http.StatusUnauthorized || a.body["login"] != LoginPath {
		t.Errorf("GET %s after logout: %d %v", SessionPath, a.code, a.body)
	}
	if a := rg.do("POST", "/api", map[string]string{CSRFHeader: csrf}, sc); a.code != http.StatusUnauthorized {
		t.Errorf("POST with the session after logout: %d", a.code)
	}
	if rg.l.Sessions().Len() != 0 {
		t.Errorf("%d sessions left after logout", rg.l.Sessions().Len())
	}

	// A second login gets a new session id; a login from a browser with a session ends it.
	sc1, _ := rg.login(t)
	lc, code, state := rg.start(t, "/ui/")
	a = rg.callback(code, state, lc)
	sc2 := a.cookies[SessionCookie]
	if sc2 == nil || sc2.Value == sc1.Value {
		t.Fatalf("second login: %+v", sc2)
	}
	if a := rg.do("GET", "/api", nil, sc2); a.code != http.StatusOK {
		t.Errorf("second session: %d", a.code)
	}
}

func TestLoginRefused(t *testing.T) {
	op := newFakeOP(t)
	rg := newLoginRig(t, op, "http://127.0.0.1:8080"+CallbackPath, 0)
	refused := func(t *testing.T, a answer, reason string) {
		t.Helper()
		if a.code != http.StatusSeeOther || a.loc != "/ui/settings?login_error="+reason || a.cookies[SessionCookie] != nil {
			t.Fatalf("callback: %d to %q with cookies %v, want a redirect with login_error=%s and no session", a.code, a.loc, a.cookies, reason)
		}
		if rg.l.Sessions().Len() != 0 {
			t.Fatalf("a refused login left a session")
		}
	}
	t.Run("state mismatch", func(t *testing.T) {
		lc, code, _ := rg.start(t, "/ui/")
		refused(t, rg.callback(code, randomToken(), lc), "state")
	})
	t.Run("another browser's state", func(t *testing.T) {
		// The attacker's own login (code and state) delivered to a victim with a login of its own.
		victim, _, _ := rg.start(t, "/ui/")
		_, code, state := rg.start(t, "/ui/")
		refused(t, rg.callback(code, state, victim), "state")
	})
	t.Run("missing verifier (no login cookie)", func(t *testing.T) {
		_, code, state := rg.start(t, "/ui/")
		refused(t, rg.callback(code, state, nil), "state")
	})
	t.Run("forged login cookie", func(t *testing.T) {
		lc, code, state := rg.start(t, "/ui/")
		st := loginState{State: state, Nonce: "n", Verifier: "attacker-chosen-verifier-0123456789012345678", Return: "/ui/", Expires: time.Now().Add(time.Minute).Unix()}
		b, _ := json.Marshal(st)
		p := base64.RawURLEncoding.EncodeToString(b)
		_, sig, _ := strings.Cut(lc.Value, ".")
		refused(t, rg.callback(code, state, &http.Cookie{Name: LoginCookie, Value: p + "." + sig}), "state")
	})
	t.Run("login cookie of another process", func(t *testing.T) {
		other := newLoginRig(t, op, "http://127.0.0.1:8080"+CallbackPath, 0)
		lc, code, state := other.start(t, "/ui/")
		refused(t, rg.callback(code, state, lc), "state")
	})
	t.Run("expired login", func(t *testing.T) {
		lc, code, state := rg.start(t, "/ui/")
		rg.clock.advance(11 * time.Minute)
		defer rg.clock.advance(-11 * time.Minute)
		refused(t, rg.callback(code, state, lc), "state")
	})
	t.Run("provider error", func(t *testing.T) {
		lc, _, state := rg.start(t, "/ui/")
		refused(t, rg.do("GET", CallbackPath+"?error=access_denied&state="+state, nil, lc), "denied")
	})
	t.Run("code replayed", func(t *testing.T) {
		lc, code, state := rg.start(t, "/ui/")
		op.mu.Lock()
		delete(op.codes, code)
		op.mu.Unlock()
		refused(t, rg.callback(code, state, lc), "exchange")
	})
	t.Run("nonce mismatch", func(t *testing.T) {
		op.mu.Lock()
		op.idNonce = randomToken()
		op.mu.Unlock()
		defer func() { op.mu.Lock(); op.idNonce = ""; op.mu.Unlock() }()
		lc, code, state := rg.start(t, "/ui/")
		refused(t, rg.callback(code, state, lc), "token")
	})
	t.Run("access token without lineage roles", func(t *testing.T) {
		op.mu.Lock()
		op.access = map[string]any{"lineage_roles": nil}
		op.mu.Unlock()
		defer func() { op.mu.Lock(); op.access = nil; op.mu.Unlock() }()
		lc, code, state := rg.start(t, "/ui/")
		refused(t, rg.callback(code, state, lc), "token")
	})
	t.Run("access token of another subject", func(t *testing.T) {
		op.mu.Lock()
		op.access = map[string]any{"sub": "mallory"}
		op.mu.Unlock()
		defer func() { op.mu.Lock(); op.access = nil; op.mu.Unlock() }()
		lc, code, state := rg.start(t, "/ui/")
		refused(t, rg.callback(code, state, lc), "token")
	})
	t.Run("foreign return path", func(t *testing.T) {
		for _, ret := range []string{"//evil.example/ui/", "https://evil.example/ui/", "/v1/records", "/ui/\\evil", "javascript:alert(1)"} {
			lc, code, state := rg.start(t, ret)
			a := rg.callback(code, state, lc)
			if a.code != http.StatusSeeOther || a.loc != "/ui/" {
				t.Errorf("return %q: landed on %q", ret, a.loc)
			}
		}
		rg.l.sessions = newSessions(0, rg.clock.now)
	})
}

func TestSessionExpiry(t *testing.T) {
	op := newFakeOP(t)
	// https redirect URL: TLS ends at a proxy, so the cookies are Secure on plain HTTP too.
	rg := newLoginRig(t, op, "https://lineage.example"+CallbackPath, 10*time.Minute)
	sc, _ := rg.login(t)
	if !sc.Secure {
		t.Errorf("session cookie %+v is not Secure with an https redirect URL", sc)
	}
	if exp := sc.Expires; exp.After(time.Now().Add(11 * time.Minute)) {
		t.Errorf("session cookie expires %v, want the 10 minute cap", exp)
	}
	rg.clock.advance(9 * time.Minute)
	if a := rg.do("GET", "/api", nil, sc); a.code != http.StatusOK {
		t.Fatalf("within the session: %d", a.code)
	}
	rg.clock.advance(2 * time.Minute)
	if a := rg.do("GET", "/api", nil, sc); a.code != http.StatusUnauthorized {
		t.Fatalf("after the session's end: %d", a.code)
	}
	if a := rg.do("GET", SessionPath, nil, sc); a.code != http.StatusUnauthorized {
		t.Fatalf("GET %s after the session's end: %d", SessionPath, a.code)
	}
	if n := rg.l.Sessions().Len(); n != 0 {
		t.Errorf("%d expired sessions kept", n)
	}
}

func TestSessionStoreBounded(t *testing.T) {
	now := time.Now()
	s := newSessions(3, func() time.Time { return now })
	p := &Principal{Subject: "x", Roles: []Role{RoleAuditor}, Tenants: []string{"acme"}}
	ids := make([]string, 5)
	for i := range ids {
		ids[i], _ = s.create(p, now.Add(time.Duration(10-i)*time.Minute)) // later ones end sooner
	}
	if s.Len() != 3 {
		t.Fatalf("%d sessions held, want 3", s.Len())
	}
	// Room was made by evicting the session closest to its end: session 2 (+8 min) for
	// session 3, then session 3 (+7) for session 4.
	for i, want := range []bool{true, true, false, false, true} {
		if got := s.lookup(ids[i]) != nil; got != want {
			t.Errorf("session %d held: %v, want %v", i, got, want)
		}
	}
	// Expired sessions are swept when room is needed.
	now = now.Add(time.Hour)
	s.create(p, now.Add(time.Minute))
	if s.Len() != 1 {
		t.Errorf("%d sessions after the sweep, want 1", s.Len())
	}
}

func TestLoginNotConfigured(t *testing.T) {
	gin.SetMode(gin.TestMode)
	r := gin.New()
	var l *Login
	l.Mount(r)
	g := r.Group("", l.CSRFGuard, Middleware(nil))
	g.POST("/api", func(c *gin.Context) { c.Status(http.StatusOK) })
	for _, c := range []struct{ method, path string }{{"GET", LoginPath}, {"GET", CallbackPath}, {"GET", SessionPath}, {"POST", LogoutPath}} {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest(c.method, c.path, nil))
		if w.Code != http.StatusNotFound {
			t.Errorf("%s %s without login: %d, want 404", c.method, c.path, w.Code)
		}
	}
	w := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/api", nil)
	req.AddCookie(&http.Cookie{Name: SessionCookie, Value: "x"})
	r.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Errorf("POST through a nil login's guard: %d", w.Code)
	}
	if _, err := NewLogin(&OIDC{}, LoginConfig{ClientID: "ui", RedirectURL: "https://lineage.example/callback"}); err == nil {
		t.Error("a redirect URL that is not the callback route was accepted")
	}
	if _, err := NewLogin(&OIDC{}, LoginConfig{RedirectURL: "https://lineage.example" + CallbackPath}); err == nil {
		t.Error("a login without a client id was accepted")
	}
	v := LoginConfig{ClientID: "ui", ClientSecret: "s3cr3t"}.LogValue().String()
	if strings.Contains(v, "s3cr3t") {
		t.Errorf("the client secret is logged: %s", v)
	}
}
