package auth

import (
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// Authenticator turns a request's credentials into a Principal. It returns (nil, nil) when the
// request carries no credentials of its kind, and an error when it carries bad ones.
type Authenticator interface {
	Authenticate(r *http.Request) (*Principal, error)
}

// Chain tries authenticators in order; the first that recognises the credentials decides.
type Chain []Authenticator

// Authenticate implements Authenticator.
func (c Chain) Authenticate(r *http.Request) (*Principal, error) {
	for _, a := range c {
		p, err := a.Authenticate(r)
		if err != nil || p != nil {
			return p, err
		}
	}
	return nil, nil
}

const principalKey = "lineage.principal"

// Middleware authenticates every request. With a nil Authenticator (no credentials
// configured; the service then listens on loopback only) every caller is Local.
func Middleware(a Authenticator) gin.HandlerFunc {
	return func(c *gin.Context) {
		if a == nil {
			c.Set(principalKey, Local)
			c.Next()
			return
		}
		p, err := a.Authenticate(c.Request)
		if err == nil && p == nil {
			err = ErrUnauthenticated
		}
		if err != nil {
			// Refused before the body is read: answer now and close, never drain the body.
			DropBody(c)
			c.Header("WWW-Authenticate", `Bearer realm="lineage"`)
			msg := ErrUnauthenticated.Error()
			if !errors.Is(err, ErrUnauthenticated) {
				msg = "auth: " + err.Error()
			}
			c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": msg})
			return
		}
		c.Set(principalKey, p)
		c.Next()
	}
}

// DropLinger is how long a connection whose request was refused unread may still deliver
// body bytes (at most 256 KiB, which net/http discards) before it is closed: the time a
// client that sends before it reads has to read the answer.
const DropLinger = time.Second

// DropBody prepares an answer to a request whose body will not be read: the answer closes the
// connection (without "Connection: close" net/http would first drain the body, which a slow or
// endless chunked body never lets finish, so the answer would never be sent), and reading what
// remains of the body stops after DropLinger.
func DropBody(c *gin.Context) {
	r := c.Request
	if r.ContentLength == 0 {
		return // nothing to drain; the connection may stay open
	}
	c.Header("Connection", "close")
	// Not every ResponseWriter supports deadlines (httptest recorders); then the server's
	// read timeout still bounds the drain.
	_ = http.NewResponseController(c.Writer).SetReadDeadline(time.Now().Add(DropLinger))
}

// Require lets the request through only if its principal holds role.
func Require(role Role) gin.HandlerFunc {
	return func(c *gin.Context) {
		p := From(c)
		if p == nil || !p.Has(role) {
			c.AbortWithStatusJSON(http.StatusForbidden, gin.H{"error": "auth: this needs the " + string(role) + " role"})
			return
		}
		c.Next()
	}
}

// From returns the request's principal (set by Middleware).
func From(c *gin.Context) *Principal {
	v, ok := c.Get(principalKey)
	if !ok {
		return nil
	}
	p, _ := v.(*Principal)
	return p
}
