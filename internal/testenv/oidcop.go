package testenv

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// oidcopModule is the module whose example OpenID provider internal/testenv/oidcop is built on.
const oidcopModule = "github.com/zitadel/oidc/v3"

// The users of the test provider (the example users of zitadel/oidc's example OP), by subject.
const (
	OIDCUser1    = "id1" // username "test-user@127.0.0.1"
	OIDCUser2    = "id2" // username "test-user2"
	OIDCPassword = "verysecure"
)

// OIDCProviderOptions configures StartOIDCProvider.
type OIDCProviderOptions struct {
	// Clients are the ids of the public clients (authorization code + PKCE, no secret) to
	// register. Default: "lineage".
	Clients []string
	// Claims are added to the JWT access tokens of each subject (OIDCUser1, OIDCUser2), e.g.
	// {"id1": {"lineage_roles": ["auditor"], "lineage_tenants": ["acme"]}}.
	Claims map[string]map[string]any
	// RedirectURL is the redirect URI registered for every client (default
	// http://127.0.0.1/callback). The provider's native clients accept a loopback redirect URI
	// on any port, so lineaged's http://127.0.0.1:<port>/v1/auth/callback fits.
	RedirectURL string
}

// OIDCProvider is a running OpenID provider (internal/testenv/oidcop, built on zitadel/oidc's
// example OP) on a free loopback port, stopped when the test ends. Its access tokens are RS256
// JWTs whose "aud" is the client id.
type OIDCProvider struct {
	// Issuer is the provider's issuer, http://127.0.0.1:<port>.
	Issuer string
	// RedirectURL is the redirect URI registered for every client. Nothing listens there: Login
	// stops at the redirect and takes the code from it.
	RedirectURL string

	addr string
	bin  string
	args []string
	dir  string
	p    *proc
}

// StartOIDCProvider starts a fresh provider with a fresh signing key. The first call on a
// machine builds the provider (seconds); later calls reuse the binary.
func StartOIDCProvider(t testing.TB, opts OIDCProviderOptions) *OIDCProvider {
	t.Helper()
	bin := oidcopBinary(t)
	if len(opts.Clients) == 0 {
		opts.Clients = []string{"lineage"}
	}
	claims, err := json.Marshal(opts.Claims)
	if err != nil {
		t.Fatalf("testenv: oidc claims: %v", err)
	}
	if opts.Claims == nil {
		claims = []byte("{}")
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	if opts.RedirectURL == "" {
		opts.RedirectURL = "http://127.0.0.1/callback"
	}
	op := &OIDCProvider{Issuer: "http://" + addr, RedirectURL: opts.RedirectURL, addr: addr, bin: bin, dir: t.TempDir()}
	op.args = []string{"-addr", addr, "-issuer", op.Issuer, "-clients", strings.Join(opts.Clients, ","),
		"-redirect-uri", op.RedirectURL, "-claims", string(claims)}
	op.start(t)
	t.Cleanup(func() {
		if t.Failed() && op.p != nil {
			t.Logf("testenv: oidcop output (tail):\n%s", op.p.tail(40))
		}
	})
	return op
}

func (op *OIDCProvider) start(t testing.TB) {
	t.Helper()
	p, err := startProc("oidcop", filepath.Join(op.dir, fmt.Sprintf("oidcop.%d.log", time.Now().UnixNano())), op.bin, op.args...)
	if err != nil {
		t.Fatal(err)
	}
	op.p = p
	t.Cleanup(func() { p.stop(5 * time.Second) })
	if err := waitTCP(op.addr, p, 30*time.Second); err != nil {
		t.Fatalf("testenv: %v\n%s", err, p.tail(40))
	}
}

// Restart stops the provider and starts it again with the same issuer and options. The provider
// keeps its state in memory, so it comes back with a new signing key (a new key id) and without
// the old one: a key rotation that removes the old key at once.
func (op *OIDCProvider) Restart(t testing.TB) {
	t.Helper()
	op.p.stop(5 * time.Second)
	op.start(t)
}

// Username is the login name of the test user with subject sub.
func (op *OIDCProvider) Username(sub string) string {
	if sub == OIDCUser1 {
		return "test-user@127.0.0.1"
	}
	return "test-user2"
}

// Login signs user in to client the way a browser would, with the authorization code flow and
// PKCE (S256): discovery, the authorization request, the provider's login form, the redirect
// with the code (checked against the state), and the code exchange with the PKCE verifier.
// It returns the token response; its AccessToken is a JWT, its "id_token" extra the ID token.
func (op *OIDCProvider) Login(ctx context.Context, client, username, password string) (*oauth2.Token, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(ctx, op.Issuer)
	if err != nil {
		return nil, fmt.Errorf("testenv: oidc discovery: %w", err)
	}
	cfg := oauth2.Config{ClientID: client, Endpoint: p.Endpoint(), RedirectURL: op.RedirectURL, Scopes: []string{oidc.ScopeOpenID}}
	verifier, state := oauth2.GenerateVerifier(), rand.Text()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(r.URL.String(), op.RedirectURL) {
			return http.ErrUseLastResponse // the redirect to the client carries the code
		}
		return nil
	}}
	get := func(resp *http.Response, err error) (*http.Response, error) {
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode >= 400 {
			return nil, fmt.Errorf("%s %s: %s: %s", resp.Request.Method, resp.Request.URL.Path, resp.Status, body)
		}
		return resp, nil
	}
	// The authorization request lands on the provider's login page.
	resp, err := get(browser.Get(cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))))
	if err != nil {
		return nil, fmt.Errorf("testenv: authorization request: %w", err)
	}
	authReq := resp.Request.URL.Query().Get("authRequestID")
	if authReq == "" {
		return nil, fmt.Errorf("testenv: authorization request ended at %s, not the login page", resp.Request.URL)
	}
	// Submitting the login form redirects, through the provider's callback, to the client.
	resp, err = get(browser.PostForm(op.Issuer+"/login/username", url.Values{
		"username": {username}, "password": {password}, "id": {authReq},
	}))
	if err != nil {
		return nil, fmt.Errorf("testenv: login: %w", err)
	}
	loc, err := resp.Location()
	if err != nil {
		return nil, fmt.Errorf("testenv: login was refused (status %s, no redirect to the client)", resp.Status)
	}
	if loc.Query().Get("state") != state || loc.Query().Get("code") == "" {
		return nil, fmt.Errorf("testenv: redirect to the client without the code or with another state: %s", loc.Query().Get("error"))
	}
	tok, err := cfg.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, fmt.Errorf("testenv: code exchange: %w", err)
	}
	return tok, nil
}

// oidcopBinary returns internal/testenv/oidcop built with the module's pinned dependencies,
// building it into the cache when its source, the zitadel/oidc version or the toolchain changed.
func oidcopBinary(t testing.TB) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(root, "internal", "testenv", "oidcop", "main.go"))
	if err != nil {
		t.Fatalf("testenv: oidcop source: %v", err)
	}
	mod, err := module(oidcopModule)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n", mod.Version, runtime.Version(), src)
	bin := ""
	withCacheLock(t, func(cache string) {
		dir := filepath.Join(cache, "oidcop-"+mod.Version+"-"+hex.EncodeToString(h.Sum(nil))[:12])
		bin = filepath.Join(dir, "oidcop")
		if _, err := os.Stat(bin); err == nil {
			return
		}
		start := time.Now()
		tmp, err := os.MkdirTemp(cache, "build-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(tmp)
		cmd := goCmd("build", "-trimpath", "-o", filepath.Join(tmp, "oidcop"), "./internal/testenv/oidcop")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("testenv: build oidcop: %v\n%s", err, out)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// A binary at its final path is complete.
		if err := os.Rename(filepath.Join(tmp, "oidcop"), bin); err != nil {
			t.Fatal(err)
		}
		t.Logf("testenv: built oidcop (%s %s) in %v", oidcopModule, mod.Version, time.Since(start).Round(time.Millisecond))
	})
	return bin
}
