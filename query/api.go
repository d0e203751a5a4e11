package query

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/query/auth"
	"github.com/lineage-audit/lineage/query/findings"
	"github.com/lineage-audit/lineage/query/index"
	"github.com/lineage-audit/lineage/verify"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// API is the HTTP query API. Every answer that contains records names the signed checkpoint it
// was proven against, so a client can verify it with the log's public key alone.
type API struct {
	Log   ledger.Log
	Store index.Store
	// Erasure, when set (an erasure-enabled log), serves POST /v1/erasures; Decoder opens the
	// sealed (v2) entries of answers with the key store.
	Erasure Eraser
	Decoder Decoder
	// Findings, when set, serves GET /v1/findings (findings_api.go); FindingsPosition, when
	// set, is reported by /healthz as findings_position (log entries the findings reflect).
	Findings         findings.Store
	FindingsPosition func() uint64
	// Cluster, when set (lineaged --ha), adds this node's place in the cluster to /healthz
	// under "cluster": its node id, whether it is the writer, and who holds the writer lease.
	Cluster func(ctx context.Context) map[string]any
	// Verifier is the log's public key in note verifier format.
	Verifier string
	// Rotations are the signed statements linking Verifier to the log's earlier keys, oldest
	// first (ledger/rotate.go), served by GET /v1/keys (keys.go).
	Rotations [][]byte
	// LogDir, when set, is served read-only under /log/ as C2SP tlog-tiles.
	LogDir string
	// Gatherer serves /metrics.
	Gatherer prometheus.Gatherer
	// Auth authenticates callers; nil means no credentials are configured and every caller is
	// auth.Local (the service then refuses to listen beyond loopback).
	Auth auth.Authenticator
	// Mounts add routes (HTTP ingest, quarantine, exports) to the authenticated /v1 group.
	Mounts []func(v1 *gin.RouterGroup)
	// UI, when set, serves the web UI (web.Handler) at "/" and under /ui/, without
	// authentication: its pages and scripts hold no data, and the data calls they make are
	// ordinary authenticated API calls. The guards still run; the UI sets its own CSP.
	UI     http.Handler
	Logger *slog.Logger
	// Login, when set, is the browser login with the OIDC provider (query/auth/login.go): its
	// /v1/auth/ routes (404 without it), and the CSRF check of requests its session cookie
	// authenticates. Its Sessions must also be in Auth's chain.
	Login *auth.Login

	// AllowedHosts are the Host names (or name:port) served besides "localhost" and IP
	// literals; "*" serves any. Empty with Auth set serves any Host (see guard.go).
	AllowedHosts []string
	// AllowedOrigins are browser origins ("https://ui.example") that may change state besides
	// the API's own origin; "*" allows any.
	AllowedOrigins []string
	// MaxInflightBytes bounds the request bodies received at once (DefaultMaxInflightBytes);
	// MaxRequestBody is the largest body of any route (DefaultMaxRequestBody); InflightWait is
	// how long a request may wait for room before a 503 (DefaultInflightWait).
	MaxInflightBytes int64
	MaxRequestBody   int64
	InflightWait     time.Duration
	// Registerer, if set, receives the HTTP guards' metrics.
	Registerer prometheus.Registerer
	// PendingRetryAfter is the Retry-After of a 503 for a record logged beyond the served
	// checkpoint (DefaultPendingRetryAfter when zero): about the time until the next checkpoint
	// is published and witnessed.
	PendingRetryAfter time.Duration
}

// DefaultPendingRetryAfter is the default of API.PendingRetryAfter.
const DefaultPendingRetryAfter = 5 * time.Second

// OpenAPI is the OpenAPI 3.1 document of this API, served at /v1/openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// MaxLineageLimit caps the actions one lineage answer returns: one less than the index drivers' cap, because
// an answer asks for one row more than its page to know whether another page follows.
const MaxLineageLimit = 99_999

// Handler builds the HTTP handler.
func (a *API) Handler() http.Handler { return a.Engine() }

// Engine builds the gin engine (exposed so tests can list its routes).
func (a *API) Engine() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	// Ids (SPIFFE ids, emails) may contain '/', sent as %2F; match on the raw path and unescape.
	r.UseRawPath = true
	r.UnescapePathValues = true
	r.Use(gin.Recovery(), a.logRequests, securityHeaders,
		hostGuard(newHostPolicy(a.AllowedHosts, a.Auth != nil)), originGuard(newOriginPolicy(a.AllowedOrigins)))

	// Liveness stays open so orchestrators can probe it; it reveals two counters only.
	r.GET("/healthz", a.health)
	budget := newBodyBudget(a.MaxInflightBytes, a.MaxRequestBody, a.InflightWait, a.Registerer)
	// Authentication comes before anything reads a body; then the body must be JSON and fit
	// in the budget of bytes in flight.
	// A session cookie's state-changing request without its CSRF token is refused (403)
	// before authentication.
	authed := r.Group("", a.Login.CSRFGuard, auth.Middleware(a.Auth), jsonGuard, budget.handle)
	if a.Gatherer != nil {
		authed.GET("/metrics", auth.Require(auth.RoleAdmin), gin.WrapH(promhttp.HandlerFor(a.Gatherer, promhttp.HandlerOpts{})))
	}
	v1 := authed.Group("/v1")
	// Public facts of the log: any authenticated caller may read them.
	v1.GET("/checkpoint", a.checkpoint)
	v1.GET("/verifier", func(c *gin.Context) { c.String(http.StatusOK, "%s\n", a.Verifier) })
	v1.GET("/keys", a.keys)
	v1.GET("/schema", func(c *gin.Context) { c.Data(http.StatusOK, "application/schema+json", lineage.SchemaJSON) })
	v1.GET("/openapi.json", func(c *gin.Context) { c.Data(http.StatusOK, "application/json", OpenAPI) })
	v1.GET("/proofs/consistency", auth.Require(auth.RoleAuditor), a.consistency)
	// Record data: auditors, scoped to their tenants.
	v1.GET("/records/:id", auth.Require(auth.RoleAuditor), a.record)
	v1.GET("/proofs/inclusion", auth.Require(auth.RoleAuditor), a.inclusion)
	v1.GET("/lineage/users/:user_id", auth.Require(auth.RoleAuditor), a.userLineage)
	v1.GET("/lineage/agents/:agent_id", auth.Require(auth.RoleAuditor), a.agentLineage)
	v1.GET("/lineage/actions/:id", auth.Require(auth.RoleAuditor), a.actionChain)
	v1.GET("/lineage/policies/:policy_id", auth.Require(auth.RoleAuditor), a.policyDecisions)
	v1.GET("/findings", auth.Require(auth.RoleAuditor), a.findingsList)
	v1.GET("/findings/kinds", findingKinds)
	v1.POST("/erasures", auth.Require(auth.RoleCompliance), a.erase)
	for _, m := range a.Mounts {
		m(v1)
	}
	// Browser login: outside the authenticated group (the session route answers for the
	// cookie only; logout checks the CSRF token itself); no route reads a body.
	a.Login.Mount(r)
	if a.UI != nil {
		ui := gin.WrapH(a.UI)
		for _, p := range []string{"/", "/ui", "/ui/*path"} {
			r.GET(p, ui)
			r.HEAD(p, ui)
		}
	}
	if a.LogDir != "" {
		// The raw tiles mix every tenant's records: only callers who see all tenants.
		authed.GET("/log/*path", auth.Require(auth.RoleAuditor), requireAllTenants, a.tiles)
	}
	return r
}

func requireAllTenants(c *gin.Context) {
	if p := auth.From(c); p == nil || !p.AllTenantsVisible() {
		fail(c, http.StatusForbidden, "the raw log holds every tenant's records; this needs access to all tenants")
	}
}

func (a *API) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	if a.Logger != nil && a.Logger.Enabled(c.Request.Context(), slog.LevelDebug) {
		a.Logger.Debug("http", "method", c.Request.Method, "path", c.FullPath(), "status", c.Writer.Status(), "dur", time.Since(start))
	}
}

// apiError is the JSON body of every error answer.
type apiError struct {
	Error string `json:"error"`
}

func fail(c *gin.Context, status int, format string, args ...any) {
	c.Abort()
	c.PureJSON(status, apiError{Error: fmt.Sprintf(format, args...)}) // no HTML escaping of "<"
}

func (a *API) internal(c *gin.Context, what string, err error) {
	a.Logger.Error("api: "+what, "path", c.Request.URL.Path, "err", err)
	fail(c, http.StatusInternalServerError, "%s failed", what)
}

func (a *API) health(c *gin.Context) {
	pos, err := a.Store.Position(c.Request.Context())
	if err != nil {
		fail(c, http.StatusServiceUnavailable, "index unavailable")
		return
	}
	out := gin.H{"status": "ok", "index_position": pos}
	if a.FindingsPosition != nil {
		out["findings_position"] = a.FindingsPosition()
	}
	if a.Cluster != nil {
		out["cluster"] = a.Cluster(c.Request.Context())
	}
	if cp, err := a.Log.Checkpoint(c.Request.Context()); err == nil {
		out["checkpoint_size"] = cp.Size
	} else if !errors.Is(err, ledger.ErrNotFound) {
		fail(c, http.StatusServiceUnavailable, "log checkpoint unreadable")
		return
	}
	c.JSON(http.StatusOK, out)
}

func (a *API) latest(c *gin.Context) (ledger.Checkpoint, bool) {
	cp, err := a.Log.Checkpoint(c.Request.Context())
	if errors.Is(err, ledger.ErrNotFound) {
		fail(c, http.StatusServiceUnavailable, "the log has no checkpoint yet")
		return cp, false
	}
	if err != nil {
		a.internal(c, "read checkpoint", err)
		return cp, false
	}
	return cp, true
}

func (a *API) checkpoint(c *gin.Context) {
	cp, ok := a.latest(c)
	if !ok {
		return
	}
	c.Data(http.StatusOK, "text/plain; charset=utf-8", cp.Note)
}

// RecordProof is the answer of GET /v1/records/{id}: the record, the exact ledger entry that
// holds it, and its inclusion proof against the signed checkpoint. The type lives in the verify
// package, whose VerifyRecordProof checks it offline.
type RecordProof = verify.RecordProof

// Formats of GET /v1/records/{id} (?format=).
const (
	formatJSON      = "json"
	formatTLogProof = "tlog-proof"
)

func (a *API) record(c *gin.Context) {
	id, tenant := c.Param("id"), c.Query("tenant")
	format := c.DefaultQuery("format", formatJSON)
	if format != formatJSON && format != formatTLogProof {
		fail(c, http.StatusBadRequest, "query parameter \"format\" must be %q or %q", formatJSON, formatTLogProof)
		return
	}
	p := auth.From(c)
	var ref index.Ref
	if tenant != "" && !p.CanSee(tenant) {
		// Same answer as a missing record: a caller learns nothing about other tenants.
		fail(c, http.StatusNotFound, "no record %q in tenant %q", id, tenant)
		return
	}
	if tenant != "" {
		r, err := a.Store.Lookup(c.Request.Context(), tenant, id)
		if errors.Is(err, index.ErrNotFound) {
			fail(c, http.StatusNotFound, "no record %q in tenant %q", id, tenant)
			return
		} else if err != nil {
			a.internal(c, "lookup", err)
			return
		}
		ref = r
	} else {
		all, err := a.Store.FindID(c.Request.Context(), id)
		if errors.Is(err, index.ErrNotFound) {
			all, err = nil, nil
		}
		if err != nil {
			a.internal(c, "lookup", err)
			return
		}
		var refs []index.Ref
		for _, r := range all {
			if p.CanSee(r.Tenant) {
				refs = append(refs, r)
			}
		}
		switch len(refs) {
		case 0:
			fail(c, http.StatusNotFound, "no record %q", id)
			return
		case 1:
			ref = refs[0]
		default:
			fail(c, http.StatusConflict, "record id %q exists in %d tenants; add ?tenant=", id, len(refs))
			return
		}
	}
	cp, ok := a.latest(c)
	if !ok {
		return
	}
	if ref.Index >= cp.Size {
		// The index runs ahead of the served checkpoint: the log's latest tree may not be
		// witnessed yet (ledger/witness), or its checkpoint not yet published.
		retry := a.PendingRetryAfter
		if retry <= 0 {
			retry = DefaultPendingRetryAfter
		}
		c.Header("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
		fail(c, http.StatusServiceUnavailable, "record %q is logged at index %d but the served checkpoint covers %d entries; it will be provable once a checkpoint covering it is published and witnessed", id, ref.Index, cp.Size)
		return
	}
	rp, err := a.proveRecord(c.Request.Context(), ref, cp)
	if err != nil {
		a.internal(c, "prove record", err)
		return
	}
	if format == formatTLogProof {
		b, err := verify.RecordTLogProof(rp)
		if err != nil {
			a.internal(c, "tlog-proof", err)
			return
		}
		// The id is only in the file name when it is plainly safe there.
		name := "record"
		if safeFileName.MatchString(id) {
			name = id
		}
		c.Header("Content-Disposition", `attachment; filename="`+name+`.tlog-proof"`)
		c.Data(http.StatusOK, "text/plain; charset=utf-8", b)
		return
	}
	c.JSON(http.StatusOK, rp)
}

// safeFileName is a record id that may name a download as is.
var safeFileName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// proveRecord reads the record's ledger entry and proves it against cp. The record returned is
// decoded from the ledger entry itself, not from the index, so what the client verifies is
// exactly what it reads.
func (a *API) proveRecord(ctx context.Context, ref index.Ref, cp ledger.Checkpoint) (*RecordProof, error) {
	leaves, err := a.leaves(ctx, []uint64{ref.Index}, cp.Size)
	if err != nil {
		return nil, err
	}
	p, err := a.Log.InclusionProof(ctx, ref.Index, cp.Size)
	if err != nil {
		return nil, err
	}
	rp := &RecordProof{Tenant: ref.Tenant, Index: ref.Index, Leaf: leaves[0], Checkpoint: string(cp.Note), InclusionProof: p}
	// A v2 entry is opened with the key store: the record shows the values whose keys exist,
	// with their openings, and tokens where erased. A missing key is an error, never "erased".
	rec, openings, _, err := a.Decoder.OpenEntry(ctx, leaves[0])
	switch {
	case IsKeyStoreError(err):
		return nil, err
	case err == nil:
		rp.Record, rp.Openings = rec, verify.Openings(openings)
	}
	return rp, nil
}

func queryUint(c *gin.Context, name string) (uint64, bool) {
	v, err := strconv.ParseUint(c.Query(name), 10, 64)
	if err != nil {
		fail(c, http.StatusBadRequest, "query parameter %q must be a non-negative integer", name)
		return 0, false
	}
	return v, true
}

func (a *API) inclusion(c *gin.Context) {
	i, ok := queryUint(c, "index")
	if !ok {
		return
	}
	size, ok := queryUint(c, "size")
	if !ok {
		return
	}
	cp, ok := a.latest(c)
	if !ok {
		return
	}
	if i >= size || size > cp.Size {
		fail(c, http.StatusBadRequest, "need index < size <= %d (the latest checkpoint)", cp.Size)
		return
	}
	leaves, err := a.leaves(c.Request.Context(), []uint64{i}, size)
	if err != nil {
		a.internal(c, "read entry", err)
		return
	}
	if who := auth.From(c); !who.AllTenantsVisible() {
		env, err := verify.DecodeEntry(leaves[0])
		if err != nil || !who.CanSee(env.Record.Tenant) {
			fail(c, http.StatusNotFound, "no entry %d visible to %s", i, who.Subject)
			return
		}
	}
	p, err := a.Log.InclusionProof(c.Request.Context(), i, size)
	if err != nil {
		a.internal(c, "inclusion proof", err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"leaf": leaves[0], "proof": p})
}

func (a *API) consistency(c *gin.Context) {
	from, ok := queryUint(c, "from")
	if !ok {
		return
	}
	to, ok := queryUint(c, "to")
	if !ok {
		return
	}
	cp, ok := a.latest(c)
	if !ok {
		return
	}
	if from > to || to > cp.Size {
		fail(c, http.StatusBadRequest, "need from <= to <= %d (the latest checkpoint)", cp.Size)
		return
	}
	p, err := a.Log.ConsistencyProof(c.Request.Context(), from, to)
	if err != nil {
		a.internal(c, "consistency proof", err)
		return
	}
	if p == nil {
		p = [][]byte{}
	}
	c.JSON(http.StatusOK, gin.H{"proof": p})
}

func parseWindow(c *gin.Context) (from, to time.Time, ok bool) {
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &from}, {"to", &to}} {
		if v := c.Query(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				fail(c, http.StatusBadRequest, "query parameter %q must be an RFC 3339 time", p.name)
				return from, to, false
			}
			*p.dst = t
		}
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		fail(c, http.StatusBadRequest, "from must be before to")
		return from, to, false
	}
	return from, to, true
}

// tilePathRE is a C2SP tlog-tiles tile or entry-bundle path: level 0-63 or "entries", the index
// in three-digit groups ("x" before all but the last), and an optional partial width 1-255.
var tilePathRE = regexp.MustCompile(`^tile/(entries|[0-9]|[1-5][0-9]|6[0-3])/(x[0-9]{3}/)*[0-9]{3}(\.p/([1-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5]))?$`)

// tiles serves the log directory read-only as C2SP tlog-tiles: only "checkpoint" and tile
// paths are reachable, as regular files; Tessera's private state directory is not. The
// checkpoint is the log's (Log.Checkpoint), not the file on disk, so tlog-tiles clients see
// the checkpoint the API serves, with the witnesses' cosignatures.
func (a *API) tiles(c *gin.Context) {
	p := path.Clean("/" + c.Param("path"))[1:]
	if p != "checkpoint" && !tilePathRE.MatchString(p) {
		fail(c, http.StatusNotFound, "not a tlog-tiles path")
		return
	}
	if p == "checkpoint" {
		cp, err := a.Log.Checkpoint(c.Request.Context())
		if errors.Is(err, ledger.ErrNotFound) {
			fail(c, http.StatusNotFound, "the log has no checkpoint yet")
			return
		} else if err != nil {
			a.internal(c, "read checkpoint", err)
			return
		}
		c.Header("Cache-Control", "no-cache")
		c.Data(http.StatusOK, "text/plain; charset=utf-8", cp.Note)
		return
	}
	f := filepath.Join(a.LogDir, filepath.FromSlash(p))
	b, err := readRegular(f)
	if errors.Is(err, os.ErrNotExist) {
		fail(c, http.StatusNotFound, "not found")
		return
	} else if err != nil {
		a.internal(c, "read log file", err)
		return
	}
	ct := "application/octet-stream"
	if !strings.Contains(p, ".p/") {
		// Full tiles and bundles never change once written.
		c.Header("Cache-Control", "public, max-age=31536000, immutable")
	}
	c.Data(http.StatusOK, ct, b)
}

// readRegular reads a regular file; anything else (a directory, a device) is "not found".
func readRegular(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return nil, err
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w (not a regular file)", name, os.ErrNotExist)
	}
	return io.ReadAll(f)
}
