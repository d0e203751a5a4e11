package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gin-gonic/gin"
	"golang.org/x/oauth2"
)

// Browser login with the OIDC provider of OIDC (oidc.go): the authorization code flow with
// PKCE (S256), a nonce in the ID token, and a server-side session (session.go).
//
//	GET  /v1/auth/login     redirect to the provider; the flow's state, nonce and PKCE verifier
//	                        go into the LoginCookie, signed with a per-process key
//	GET  /v1/auth/callback  the provider's redirect back: state checked against the cookie, code
//	                        exchanged with the verifier, ID token verified (nonce), access token
//	                        mapped to a Principal as a bearer token is; a session cookie is set
//	GET  /v1/auth/session   the session's subject, roles, tenants, expiry and CSRF token
//	POST /v1/auth/logout    ends the session (CSRF token required)
//
// The LoginCookie is SameSite=Lax: the provider's redirect back to the callback is a top-level
// navigation from another site, on which a browser sends Lax cookies but not Strict ones. The
// session cookie is SameSite=Strict: the UI's calls are all same-origin, and no other site's link
// or form ever carries it. Both are HttpOnly, and Secure when the request came over TLS or the
// redirect URL is https (TLS ended at a proxy in front of lineaged).

// Paths of the login routes.
const (
	LoginPath    = "/v1/auth/login"
	CallbackPath = "/v1/auth/callback"
	SessionPath  = "/v1/auth/session"
	LogoutPath   = "/v1/auth/logout"
	// LoginCookie holds a login in progress (state, nonce, PKCE verifier), for loginTTL.
	LoginCookie = "lineage_login"
	// DefaultSessionMaxAge bounds a session that the access token's expiry does not bound sooner.
	DefaultSessionMaxAge = 8 * time.Hour
	loginTTL             = 10 * time.Minute
	// uiHome is where a login lands when it names no page to return to; failures land on
	// uiFailed with ?login_error=<code>.
	uiHome   = "/ui/"
	uiFailed = "/ui/settings"
)

// LoginConfig configures the browser login. Its ClientSecret is never logged (LogValue).
type LoginConfig struct {
	// ClientID is the UI's client at the provider: public (PKCE, no secret) unless
	// ClientSecret is set.
	ClientID     string
	ClientSecret string
	// RedirectURL is where the provider sends the browser back: this service's CallbackPath at
	// the address browsers use, e.g. https://lineage.example/v1/auth/callback. It must be
	// registered with the provider.
	RedirectURL string
	// Scopes requested (default: openid). The roles and tenants claims must be in the access
	// token, as for bearer tokens.
	Scopes []string
	// SessionMaxAge caps a session (default DefaultSessionMaxAge); it ends sooner when the
	// access token does.
	SessionMaxAge time.Duration
	// MaxSessions bounds the sessions held (default DefaultMaxSessions).
	MaxSessions int
	// Now is the clock (tests; default the OIDC's).
	Now    func() time.Time
	Logger *slog.Logger
}

// LogValue implements slog.LogValuer: the client secret is redacted.
func (c LoginConfig) LogValue() slog.Value {
	secret := ""
	if c.ClientSecret != "" {
		secret = "(set)"
	}
	return slog.GroupValue(slog.String("client_id", c.ClientID), slog.String("client_secret", secret),
		slog.String("redirect_url", c.RedirectURL), slog.Any("scopes", c.Scopes), slog.Duration("session_max_age", c.SessionMaxAge))
}

// Login runs the browser login against an OIDC provider. A nil *Login serves its routes with
// 404 (login not configured) and authenticates nothing.
type Login struct {
	oidc     *OIDC
	cfg      LoginConfig
	secure   bool   // cookies are Secure even on plain HTTP (the redirect URL is https)
	macKey   []byte // signs LoginCookie; per process
	log      *slog.Logger
	sessions *Sessions

	mu         sync.Mutex
	idVerifier *oidc.IDTokenVerifier // ID tokens: audience ClientID, Lineage's key set
}

// NewLogin returns the browser login for provider o. It does no network I/O.
func NewLogin(o *OIDC, cfg LoginConfig) (*Login, error) {
	if o == nil {
		return nil, errors.New("auth: oidc login needs --oidc-issuer and --oidc-audience")
	}
	if cfg.ClientID == "" {
		return nil, errors.New("auth: oidc login needs a client id")
	}
	u, err := url.Parse(cfg.RedirectURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != CallbackPath ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("auth: oidc login needs a redirect URL of the form https://<host>%s (got %q)", CallbackPath, cfg.RedirectURL)
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{oidc.ScopeOpenID}
	} else if !slices.Contains(cfg.Scopes, oidc.ScopeOpenID) {
		cfg.Scopes = append([]string{oidc.ScopeOpenID}, cfg.Scopes...)
	}
	if cfg.SessionMaxAge <= 0 {
		cfg.SessionMaxAge = DefaultSessionMaxAge
	}
	if cfg.Now == nil {
		cfg.Now = o.cfg.Now
	}
	l := &Login{oidc: o, cfg: cfg, secure: u.Scheme == "https", macKey: make([]byte, 32), log: cfg.Logger}
	_, _ = rand.Read(l.macKey)
	if l.log == nil {
		l.log = o.log
	}
	l.log = l.log.With("component", "oidc-login")
	l.sessions = newSessions(cfg.MaxSessions, cfg.Now)
	return l, nil
}

// Sessions returns the session store, the Authenticator to put last in the API's chain.
func (l *Login) Sessions() *Sessions {
	if l == nil {
		return nil
	}
	return l.sessions
}

// CSRFGuard is Sessions.CSRFGuard (a no-op for a nil *Login), to run before Middleware.
func (l *Login) CSRFGuard(c *gin.Context) { l.Sessions().CSRFGuard(c) }

// Mount adds the login routes to r. They are outside the authenticated group: the login and
// callback need no credentials, the session route answers for the session cookie only, and
// logout checks the session's CSRF token itself. None reads a request body.
func (l *Login) Mount(r gin.IRoutes) {
	r.GET(LoginPath, l.start)
	r.GET(CallbackPath, l.callback)
	r.GET(SessionPath, l.session)
	r.POST(LogoutPath, l.logout)
}

func notConfigured(c *gin.Context) {
	c.AbortWithStatusJSON(http.StatusNotFound, gin.H{"error": "browser login is not configured (see --oidc-client-id)"})
}

// loginState is the LoginCookie's payload.
type loginState struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Return   string `json:"r"`
	Expires  int64  `json:"e"` // Unix seconds
}

func (l *Login) mac(payload string) string {
	m := hmac.New(sha256.New, l.macKey)
	m.Write([]byte("lineage login cookie\n" + payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (l *Login) sealState(st loginState) string {
	b, _ := json.Marshal(st)
	p := base64.RawURLEncoding.EncodeToString(b)
	return p + "." + l.mac(p)
}

func (l *Login) openState(v string) (loginState, error) {
	var st loginState
	p, sig, ok := strings.Cut(v, ".")
	if !ok || !hmac.Equal([]byte(sig), []byte(l.mac(p))) {
		return st, errors.New("login cookie is not ours")
	}
	b, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil || json.Unmarshal(b, &st) != nil {
		return st, errors.New("login cookie is malformed")
	}
	if l.cfg.Now().Unix() > st.Expires {
		return st, errors.New("login took too long")
	}
	if st.State == "" || st.Nonce == "" || st.Verifier == "" {
		return st, errors.New("login cookie lacks the state, nonce or verifier")
	}
	return st, nil
}

// returnPath is the UI page a login returns to: a path under /ui/ only (never another origin).
func returnPath(p string) string {
	if !strings.HasPrefix(p, uiHome) || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n\t") || len(p) > 2048 {
		return uiHome
	}
	if u, err := url.Parse(p); err != nil || u.Scheme != "" || u.Host != "" {
		return uiHome
	}
	return p
}

func (l *Login) cookie(r *http.Request, name, value, path string, expires time.Time, same http.SameSite) *http.Cookie {
	c := &http.Cookie{Name: name, Value: value, Path: path, HttpOnly: true, SameSite: same,
		Secure: r.TLS != nil || l.secure}
	if value == "" {
		c.MaxAge = -1
	} else {
		c.Expires = expires
		c.MaxAge = max(1, int(expires.Sub(l.cfg.Now()).Seconds()))
	}
	return c
}

func (l *Login) oauth2Config(p *oidc.Provider) *oauth2.Config {
	ep := p.Endpoint()
	if l.cfg.ClientSecret == "" {
		ep.AuthStyle = oauth2.AuthStyleInParams // a public client: client_id in the form, no secret
	}
	return &oauth2.Config{ClientID: l.cfg.ClientID, ClientSecret: l.cfg.ClientSecret, Endpoint: ep,
		RedirectURL: l.cfg.RedirectURL, Scopes: l.cfg.Scopes}
}

// start redirects to the provider's authorization endpoint.
func (l *Login) start(c *gin.Context) {
	if l == nil {
		notConfigured(c)
		return
	}
	p, err := l.oidc.Provider(c.Request.Context())
	if err != nil {
		c.AbortWithStatusJSON(http.StatusServiceUnavailable, gin.H{"error": "the identity provider is unavailable; try again later"})
		return
	}
	st := loginState{State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier(),
		Return: returnPath(c.Query("return")), Expires: l.cfg.Now().Add(loginTTL).Unix()}
	http.SetCookie(c.Writer, l.cookie(c.Request, LoginCookie, l.sealState(st), CallbackPath, l.cfg.Now().Add(loginTTL), http.SameSiteLaxMode))
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusFound, l.oauth2Config(p).AuthCodeURL(st.State, oauth2.S256ChallengeOption(st.Verifier), oidc.Nonce(st.Nonce)))
}

// loginError ends a failed callback: the reason is logged, the browser lands on the UI's
// settings with a fixed code (never text from the request).
func (l *Login) loginError(c *gin.Context, code string, err error) {
	l.log.Warn("oidc login failed", "reason", code, "err", err)
	http.SetCookie(c.Writer, l.cookie(c.Request, LoginCookie, "", CallbackPath, time.Time{}, http.SameSiteLaxMode))
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusSeeOther, uiFailed+"?login_error="+code)
}

// callback completes the login.
func (l *Login) callback(c *gin.Context) {
	if l == nil {
		notConfigured(c)
		return
	}
	q := c.Request.URL.Query()
	raw, err := c.Cookie(LoginCookie)
	if err != nil {
		l.loginError(c, "state", errors.New("no login cookie (login not started in this browser, or expired)"))
		return
	}
	st, err := l.openState(raw)
	if err != nil {
		l.loginError(c, "state", err)
		return
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(st.State)) != 1 {
		l.loginError(c, "state", errors.New("state does not match the login cookie"))
		return
	}
	if e := q.Get("error"); e != "" {
		l.loginError(c, "denied", fmt.Errorf("provider answered %q", clipText(e)))
		return
	}
	code := q.Get("code")
	if code == "" {
		l.loginError(c, "denied", errors.New("no code"))
		return
	}
	p, err := l.oidc.Provider(c.Request.Context())
	if err != nil {
		l.loginError(c, "unavailable", err)
		return
	}
	ctx := oidc.ClientContext(c.Request.Context(), l.oidc.cfg.HTTPClient)
	tok, err := l.oauth2Config(p).Exchange(ctx, code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		l.loginError(c, "exchange", err)
		return
	}
	prin, expires, err := l.verifyTokens(ctx, tok, st.Nonce)
	if err != nil {
		l.loginError(c, "token", err)
		return
	}
	// A new id for every login (no fixation): the browser's previous session, if any, ends.
	if old, err := c.Cookie(SessionCookie); err == nil && old != "" {
		l.sessions.remove(old)
	}
	id, _ := l.sessions.create(prin, expires)
	http.SetCookie(c.Writer, l.cookie(c.Request, LoginCookie, "", CallbackPath, time.Time{}, http.SameSiteLaxMode))
	http.SetCookie(c.Writer, l.cookie(c.Request, SessionCookie, id, "/", expires, http.SameSiteStrictMode))
	l.log.Info("oidc login", "subject", prin.Subject, "roles", prin.Roles, "tenants", prin.Tenants, "expires", expires)
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusSeeOther, st.Return)
}

// verifyTokens checks the ID token (signature, issuer, audience ClientID, expiry, nonce, and
// at_hash when present) and maps the access token to a Principal exactly as a bearer token is
// (VerifyToken: audience Audience, roles and tenants claims). Both must name the same subject.
// The session ends at the access token's expiry, or SessionMaxAge from now if sooner.
func (l *Login) verifyTokens(ctx context.Context, tok *oauth2.Token, nonce string) (*Principal, time.Time, error) {
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		return nil, time.Time{}, errors.New("the token response has no id_token")
	}
	v, err := l.idTokenVerifier(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	idt, err := v.Verify(ctx, rawID)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("id token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return nil, time.Time{}, errors.New("id token nonce does not match the login's")
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return nil, time.Time{}, fmt.Errorf("id token: %w", err)
		}
	}
	prin, err := l.oidc.VerifyToken(ctx, tok.AccessToken)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("access token: %w", err)
	}
	if prin.Subject != "oidc:"+idt.Subject {
		return nil, time.Time{}, fmt.Errorf("access token subject %q is not the id token's %q", prin.Subject, idt.Subject)
	}
	at, err := l.oidc.tokenVerifier(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	att, err := at.Verify(ctx, tok.AccessToken)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("access token: %w", err)
	}
	expires := l.cfg.Now().Add(l.cfg.SessionMaxAge)
	if att.Expiry.Before(expires) {
		expires = att.Expiry
	}
	return prin, expires, nil
}

// idTokenVerifier verifies ID tokens: audience ClientID (the access tokens' is Audience, which
// may differ), with the same key set rules as access tokens (oidc_keys.go).
func (l *Login) idTokenVerifier(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.idVerifier != nil {
		return l.idVerifier, nil
	}
	o := l.oidc
	jwks := o.cfg.JWKSURL
	if jwks == "" {
		p, err := o.Provider(ctx)
		if err != nil {
			return nil, err
		}
		var meta struct {
			JWKSURI string `json:"jwks_uri"`
		}
		if err := p.Claims(&meta); err != nil || meta.JWKSURI == "" {
			return nil, fmt.Errorf("oidc discovery names no jwks_uri (%v)", err)
		}
		jwks = meta.JWKSURI
	}
	keys := &keySet{url: jwks, client: o.cfg.HTTPClient, now: o.cfg.Now, log: o.log}
	l.idVerifier = oidc.NewVerifier(o.cfg.Issuer, keys, &oidc.Config{ClientID: l.cfg.ClientID,
		SupportedSigningAlgs: acceptedAlgs, Now: o.cfg.Now})
	return l.idVerifier, nil
}

// SessionInfo is the answer of GET /v1/auth/session.
type SessionInfo struct {
	Subject   string    `json:"subject"`
	Roles     []Role    `json:"roles"`
	Tenants   []string  `json:"tenants"`
	ExpiresAt time.Time `json:"expires_at"`
	CSRFToken string    `json:"csrf_token"`
}

// session answers who the session cookie names; 401 with {"login": LoginPath} without one.
func (l *Login) session(c *gin.Context) {
	if l == nil {
		notConfigured(c)
		return
	}
	c.Header("Cache-Control", "no-store")
	_, ss := l.sessions.fromCookie(c.Request)
	if ss == nil {
		c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "no session: log in", "login": LoginPath})
		return
	}
	c.JSON(http.StatusOK, SessionInfo{Subject: ss.p.Subject, Roles: ss.p.Roles, Tenants: ss.p.Tenants,
		ExpiresAt: ss.expires.UTC(), CSRFToken: ss.csrf})
}

// logout ends the session (which needs its CSRF token: another site must not log a user out)
// and expires the cookie. Without a live session it only expires the cookie.
func (l *Login) logout(c *gin.Context) {
	if l == nil {
		notConfigured(c)
		return
	}
	id, ss := l.sessions.fromCookie(c.Request)
	if ss != nil && !csrfOK(c.Request, ss) {
		DropBody(c)
		c.AbortWithStatusJSON(http.StatusForbidden, gin.H{"error": "auth: " + errCSRF.Error()})
		return
	}
	if ss != nil {
		l.sessions.remove(id)
		l.log.Info("oidc logout", "subject", ss.p.Subject)
	}
	http.SetCookie(c.Writer, l.cookie(c.Request, SessionCookie, "", "/", time.Time{}, http.SameSiteStrictMode))
	c.Header("Cache-Control", "no-store")
	c.Status(http.StatusNoContent)
}

// clipText shortens provider text for the log.
func clipText(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}
