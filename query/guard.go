package query

// Guards of the HTTP front, in the order a request meets them (see API.Engine):
//
//  1. securityHeaders: every answer says nosniff, forbids framing and loads nothing (CSP).
//  2. hostGuard: the Host header must name this service (DNS rebinding defence).
//  3. originGuard: a state-changing request from a browser must come from this origin or an
//     allowed one (CSRF defence; browsers always send Origin on such requests).
//  4. the session CSRF guard (auth.Login.CSRFGuard, when browser login is configured): a
//     state-changing request authenticated by the session cookie must carry X-CSRF-Token.
//  5. auth.Middleware: unauthenticated requests are refused before their body is read.
//  6. jsonGuard: a state-changing request with a body must declare a JSON content type, which a
//     browser cannot send cross-origin without a CORS preflight (that this API never grants).
//  7. bodyBudget: the bytes of request bodies in flight across all requests are bounded.
//
// Every refusal before the body is read goes through refuse, which closes the connection after
// the answer instead of draining a body the caller may never finish (auth.DropBody).

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/lineage-audit/lineage/query/auth"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
)

// Defaults of the guards' limits.
const (
	// DefaultMaxInflightBytes bounds the request bodies being received at once, across requests.
	DefaultMaxInflightBytes = 64 << 20
	// DefaultMaxRequestBody is the largest body any route accepts (ingest's, see
	// ingest.DefaultMaxBody); it is what a body of unknown or compressed length reserves.
	DefaultMaxRequestBody = 16 << 20
	// DefaultInflightWait is how long a request waits for room in the budget before a 503.
	DefaultInflightWait = time.Second
)

// securityHeaders marks every answer as what it says it is and as not embeddable: JSON error
// bodies echo input, and must never be sniffed into HTML or framed.
func securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	c.Next()
}

// refuse answers status before the body is read, and makes sure the answer is sent at once and
// the connection closed rather than the server draining what may be an endless body.
func refuse(c *gin.Context, status int, format string, args ...any) {
	auth.DropBody(c)
	fail(c, status, format, args...)
}

// stateChanging tells whether a method may change state (everything but GET, HEAD, OPTIONS).
func stateChanging(method string) bool {
	return method != http.MethodGet && method != http.MethodHead && method != http.MethodOptions
}

// hostPolicy decides which Host headers name this service.
type hostPolicy struct {
	any   bool
	names map[string]bool // lower-case "name" (any port) or "name:port"
}

// newHostPolicy accepts, besides loopback names and IP literals, the names in allowed ("*"
// accepts any). With authentication on and no list given any Host is accepted: a rebinding
// page cannot attach the bearer credentials the API then requires.
func newHostPolicy(allowed []string, authOn bool) hostPolicy {
	p := hostPolicy{any: authOn && len(allowed) == 0, names: map[string]bool{}}
	for _, h := range allowed {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "*" {
			p.any = true
		}
		if h != "" {
			p.names[h] = true
		}
	}
	return p
}

// allows tells whether hostport (a Host header) is acceptable. "localhost" and IP literals always
// are: DNS rebinding needs a name the attacker controls, and a browser sends the name it
// resolved, never the address.
func (p hostPolicy) allows(hostport string) bool {
	if p.any || hostport == "" {
		return true
	}
	hostport = strings.ToLower(hostport)
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	host = strings.TrimSuffix(host, ".")
	if host == "localhost" || net.ParseIP(host) != nil {
		return true
	}
	return p.names[host] || p.names[hostport]
}

func hostGuard(p hostPolicy) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !p.allows(c.Request.Host) {
			refuse(c, http.StatusForbidden, "host %q is not served here (see --http-allowed-hosts)", clip(c.Request.Host))
			return
		}
		c.Next()
	}
}

// originPolicy decides which browser origins may change state.
type originPolicy struct {
	any     bool
	origins map[string]bool // normalised "scheme://host[:port]"
}

func newOriginPolicy(allowed []string) originPolicy {
	p := originPolicy{origins: map[string]bool{}}
	for _, o := range allowed {
		o = strings.TrimSpace(o)
		if o == "*" {
			p.any = true
		} else if n, ok := normOrigin(o); ok {
			p.origins[n] = true
		}
	}
	return p
}

var defaultPorts = map[string]string{"http": "80", "https": "443"}

// normOrigin lower-cases an origin and drops its scheme's default port.
func normOrigin(o string) (string, bool) {
	u, err := url.Parse(strings.TrimRight(strings.ToLower(o), "/"))
	if err != nil || u.Host == "" || defaultPorts[u.Scheme] == "" || u.User != nil || (u.Path != "" && u.Path != "/") {
		return "", false
	}
	host := u.Host
	if u.Port() == defaultPorts[u.Scheme] {
		host = strings.TrimSuffix(host, ":"+u.Port())
	}
	return u.Scheme + "://" + host, true
}

// allows tells whether a state-changing request with this Origin header may proceed. Requests
// without one do not come from a browser page (browsers send it on every non-GET request).
func (p originPolicy) allows(origin, host string) bool {
	if origin == "" || p.any {
		return true
	}
	n, ok := normOrigin(origin) // "null" (sandboxed frames, files) is never acceptable
	if !ok {
		return false
	}
	if p.origins[n] {
		return true
	}
	// Same origin: the page was served from this very host and port.
	_, oHost, _ := strings.Cut(n, "://")
	host = strings.ToLower(host)
	for _, port := range defaultPorts {
		host = strings.TrimSuffix(host, ":"+port)
	}
	return oHost == host
}

func originGuard(p originPolicy) gin.HandlerFunc {
	return func(c *gin.Context) {
		if stateChanging(c.Request.Method) && !p.allows(c.Request.Header.Get("Origin"), c.Request.Host) {
			refuse(c, http.StatusForbidden, "origin %q may not change state here (see --http-allowed-origins)", clip(c.Request.Header.Get("Origin")))
			return
		}
		c.Next()
	}
}

// jsonTypes are the content types a state-changing body may have: JSON (OPA's decision logs
// are application/json, gzip-encoded) and NDJSON. text/plain, forms and multipart, which a page
// may send cross-origin without a preflight, are refused.
var jsonTypes = map[string]bool{"application/json": true, "application/x-ndjson": true}

func jsonGuard(c *gin.Context) {
	if stateChanging(c.Request.Method) && c.Request.ContentLength != 0 {
		mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
		if err != nil || !jsonTypes[mt] {
			refuse(c, http.StatusUnsupportedMediaType, "a request body must be application/json or application/x-ndjson, not %q", clip(c.GetHeader("Content-Type")))
			return
		}
	}
	c.Next()
}

// bodyBudget bounds the request bytes held across all requests: each state-changing request
// with a body reserves its Content-Length (or the largest body, when the length is unknown or
// the body is compressed) before its handler reads it, and gives it back when it is done.
type bodyBudget struct {
	sem          *semaphore.Weighted
	max, maxBody int64
	wait         time.Duration
	inflight     prometheus.Gauge
	refused      *prometheus.CounterVec
}

func newBodyBudget(max, maxBody int64, wait time.Duration, reg prometheus.Registerer) *bodyBudget {
	if max <= 0 {
		max = DefaultMaxInflightBytes
	}
	if maxBody <= 0 {
		maxBody = DefaultMaxRequestBody
	}
	if wait <= 0 {
		wait = DefaultInflightWait
	}
	b := &bodyBudget{sem: semaphore.NewWeighted(max), max: max, maxBody: maxBody, wait: wait,
		inflight: register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "lineage_http_inflight_body_bytes",
			Help: "Request body bytes reserved by requests being received or handled (bounded by --http-max-inflight-bytes)."})),
		refused: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lineage_http_refused_total",
			Help: "HTTP requests refused by the body budget before their body was read, by reason (busy, too_large)."}, []string{"reason"})),
	}
	return b
}

// register registers c, or returns the collector already registered under its name.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(C); ok {
				return old
			}
		}
		panic(fmt.Sprintf("query: register metric: %v", err))
	}
	return c
}

// reservation is what a request reserves: never more than the whole budget, or it could never
// be admitted.
func (b *bodyBudget) reservation(r *http.Request) int64 {
	n := r.ContentLength
	if n < 0 || r.Header.Get("Content-Encoding") != "" {
		n = b.maxBody // unknown length, or a compressed body that may grow up to the limit
	}
	return min(n, b.maxBody, b.max)
}

func (b *bodyBudget) handle(c *gin.Context) {
	r := c.Request
	if !stateChanging(r.Method) || r.ContentLength == 0 {
		c.Next()
		return
	}
	if r.ContentLength > b.maxBody {
		b.refused.WithLabelValues("too_large").Inc()
		refuse(c, http.StatusRequestEntityTooLarge, "body exceeds %d bytes", b.maxBody)
		return
	}
	n := b.reservation(r)
	ctx, cancel := context.WithTimeout(r.Context(), b.wait)
	err := b.sem.Acquire(ctx, n)
	cancel()
	if err != nil {
		b.refused.WithLabelValues("busy").Inc()
		c.Header("Retry-After", "1")
		refuse(c, http.StatusServiceUnavailable, "too many request bodies in flight; retry later")
		return
	}
	b.inflight.Add(float64(n))
	defer func() {
		b.inflight.Sub(float64(n))
		b.sem.Release(n)
	}()
	c.Next()
}

// clip shortens an echoed header value.
func clip(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}
