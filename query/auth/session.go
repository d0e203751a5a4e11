package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// Browser sessions of the OIDC login (login.go). A session is created when the login succeeds
// and is named by a random 256-bit id in the HttpOnly cookie SessionCookie; it holds the
// Principal the provider's access token mapped to, a CSRF token, and an expiry no later than the
// access token's. Sessions live in memory only: a restart (or a second replica) does not know
// them, and their users log in again, which the provider's own session usually makes a click.
//
// A request authenticated by the cookie alone could be forged by another site (the browser
// attaches cookies by itself), so every state-changing one must also carry the session's CSRF
// token in the CSRFHeader header: a header a page can only set on requests to its own origin
// (a cross-origin one needs a CORS preflight the API never grants), and a token that only the
// session's own pages can read (GET /v1/auth/session). Bearer tokens and API keys need no CSRF
// token: browsers never attach them by themselves.
const (
	// SessionCookie names the session cookie.
	SessionCookie = "lineage_session"
	// CSRFHeader carries the session's CSRF token on state-changing requests.
	CSRFHeader = "X-CSRF-Token"
	// DefaultMaxSessions bounds the sessions held at once.
	DefaultMaxSessions = 10000
	// sweepEvery spaces the sweeps of expired sessions.
	sweepEvery = time.Minute
)

// errCSRF refuses a state-changing request authenticated by a session cookie without the
// session's CSRF token.
var errCSRF = errors.New("a state-changing request with a session cookie needs the session's " + CSRFHeader + " header")

// session is one logged-in browser.
type session struct {
	p       *Principal
	csrf    string
	expires time.Time
}

// Sessions holds the browser sessions and authenticates requests by their cookie. Create it
// with NewLogin (Login.Sessions).
type Sessions struct {
	now func() time.Time
	max int

	mu        sync.Mutex
	m         map[[32]byte]*session // by SHA-256 of the id: the ids themselves are not kept
	lastSweep time.Time
}

func newSessions(max int, now func() time.Time) *Sessions {
	if max <= 0 {
		max = DefaultMaxSessions
	}
	return &Sessions{now: now, max: max, m: map[[32]byte]*session{}, lastSweep: now()}
}

// randomToken is 256 random bits, base64url.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func sessionKey(id string) [32]byte { return sha256.Sum256([]byte(id)) }

// create stores a session for p until expires and returns its id. When the store is full, the
// expired sessions are swept and then the sessions closest to their end make room.
func (s *Sessions) create(p *Principal, expires time.Time) (string, *session) {
	id := randomToken()
	ss := &session{p: p, csrf: randomToken(), expires: expires}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if len(s.m) >= s.max || now.Sub(s.lastSweep) >= sweepEvery {
		s.sweep(now)
	}
	for len(s.m) >= s.max {
		var oldest [32]byte
		var at time.Time
		for k, v := range s.m {
			if at.IsZero() || v.expires.Before(at) {
				oldest, at = k, v.expires
			}
		}
		delete(s.m, oldest)
	}
	s.m[sessionKey(id)] = ss
	return id, ss
}

// sweep drops expired sessions; s.mu is held.
func (s *Sessions) sweep(now time.Time) {
	for k, v := range s.m {
		if !now.Before(v.expires) {
			delete(s.m, k)
		}
	}
	s.lastSweep = now
}

// lookup returns the live session named id, or nil.
func (s *Sessions) lookup(id string) *session {
	if id == "" {
		return nil
	}
	k := sessionKey(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.m[k]
	if ss == nil {
		return nil
	}
	now := s.now()
	if !now.Before(ss.expires) {
		delete(s.m, k)
		return nil
	}
	if now.Sub(s.lastSweep) >= sweepEvery {
		s.sweep(now)
	}
	return ss
}

// remove ends the session named id.
func (s *Sessions) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, sessionKey(id))
}

// Len is the number of sessions held (expired ones not yet swept included).
func (s *Sessions) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// fromCookie returns the request's session id and live session (nil if none or expired).
func (s *Sessions) fromCookie(r *http.Request) (string, *session) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return "", nil
	}
	return c.Value, s.lookup(c.Value)
}

// csrfOK tells whether the request carries the session's CSRF token (constant-time compare).
func csrfOK(r *http.Request, ss *session) bool {
	got := r.Header.Get(CSRFHeader)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(ss.csrf)) == 1
}

// stateChanging tells whether a method may change state (all but GET, HEAD and OPTIONS).
func stateChanging(method string) bool {
	return method != http.MethodGet && method != http.MethodHead && method != http.MethodOptions
}

// Authenticate implements Authenticator: a request with a session cookie and no Authorization
// header gets the session's principal; a state-changing one only with the session's CSRF
// token. A request with an Authorization header is left to the bearer authenticators (which
// come first in the chain), cookie or not.
func (s *Sessions) Authenticate(r *http.Request) (*Principal, error) {
	if r.Header.Get("Authorization") != "" {
		return nil, nil
	}
	id, ss := s.fromCookie(r)
	if id == "" {
		return nil, nil
	}
	if ss == nil {
		return nil, fmt.Errorf("%w (the session ended: log in again)", ErrUnauthenticated)
	}
	if stateChanging(r.Method) && !csrfOK(r, ss) {
		// CSRFGuard answers this with 403 before the authenticator runs; refusing here too
		// keeps a chain without the guard closed.
		return nil, errCSRF
	}
	return ss.p, nil
}

// CSRFGuard refuses (403) a state-changing request that a live session cookie would
// authenticate but that lacks the session's CSRF token. It runs before Middleware, which would
// otherwise answer 401. A nil *Sessions lets everything through.
func (s *Sessions) CSRFGuard(c *gin.Context) {
	if s == nil || !stateChanging(c.Request.Method) || c.Request.Header.Get("Authorization") != "" {
		c.Next()
		return
	}
	if _, ss := s.fromCookie(c.Request); ss != nil && !csrfOK(c.Request, ss) {
		DropBody(c)
		c.AbortWithStatusJSON(http.StatusForbidden, gin.H{"error": "auth: " + errCSRF.Error()})
		return
	}
	c.Next()
}
