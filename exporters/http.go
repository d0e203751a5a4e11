package exporters

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/lineage-audit/lineage/exporters/report"
	"github.com/lineage-audit/lineage/query/auth"
	"github.com/lineage-audit/lineage/verify"
)

// Mount registers the export routes on the authenticated /v1 group. Every route needs the
// compliance role, and a caller only ever sees the jobs of its own tenants: a job of another
// tenant answers 404, exactly like a missing one.
//
//	POST /v1/exports                    start an export: {kind, tenant, ai_system?, from, to, formats?}
//	GET  /v1/exports                    the caller's export jobs, newest first (?tenant=, ?limit=)
//	GET  /v1/exports/{id}               status, progress, error, files
//	GET  /v1/exports/{id}/files/{name}  download a file, e.g. the bundle
func (s *Service) Mount(v1 *gin.RouterGroup) {
	g := v1.Group("/exports", auth.Require(auth.RoleCompliance))
	g.POST("", s.create)
	g.GET("", s.list)
	g.GET("/:id", s.get)
	g.GET("/:id/files/:name", s.file)
}

// CreateRequest is the body of POST /v1/exports. Times are RFC 3339 or YYYY-MM-DD (00:00 UTC);
// the period is [from, to).
type CreateRequest struct {
	Kind     report.Kind `json:"kind"`
	Tenant   string      `json:"tenant"`
	AISystem string      `json:"ai_system,omitempty"`
	From     string      `json:"from"`
	To       string      `json:"to"`
	Formats  []string    `json:"formats,omitempty"`
}

// maxCreateBody bounds the request body; a valid one is a few hundred bytes.
const maxCreateBody = 64 << 10

func httpFail(c *gin.Context, status int, format string, args ...any) {
	c.Abort()
	c.PureJSON(status, gin.H{"error": fmt.Sprintf(format, args...)})
}

func (s *Service) create(c *gin.Context) {
	p := auth.From(c)
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxCreateBody))
	if err != nil {
		httpFail(c, http.StatusRequestEntityTooLarge, "body exceeds %d bytes", maxCreateBody)
		return
	}
	var cr CreateRequest
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&cr); err != nil || d.More() {
		httpFail(c, http.StatusBadRequest, "body must be one JSON object {kind, tenant, ai_system?, from, to, formats?}: %v", err)
		return
	}
	req := report.Request{Kind: cr.Kind, Tenant: cr.Tenant, AISystem: cr.AISystem, Formats: cr.Formats}
	if req.From, err = report.ParseTime(cr.From); err != nil {
		httpFail(c, http.StatusBadRequest, "from: %v", err)
		return
	}
	if req.To, err = report.ParseTime(cr.To); err != nil {
		httpFail(c, http.StatusBadRequest, "to: %v", err)
		return
	}
	if err := req.Validate(); err != nil {
		httpFail(c, http.StatusBadRequest, "%v", err)
		return
	}
	if !p.CanSee(req.Tenant) {
		s.log.Warn("export of a foreign tenant refused", "principal", p.Subject, "tenant", req.Tenant)
		httpFail(c, http.StatusForbidden, "%s may not export tenant %q", p.Subject, req.Tenant)
		return
	}
	j, err := s.submit(req, p.Subject, "api", time.Time{})
	if errors.Is(err, errQueueFull) {
		c.Header("Retry-After", "60")
		httpFail(c, http.StatusServiceUnavailable, "%v", err)
		return
	}
	if err != nil {
		httpFail(c, http.StatusBadRequest, "%v", err)
		return
	}
	c.Header("Location", "/v1/exports/"+j.ID)
	snapshot, _ := s.job(j.ID)
	c.PureJSON(http.StatusAccepted, snapshot)
}

func (s *Service) list(c *gin.Context) {
	p := auth.From(c)
	limit, err := strconv.Atoi(c.DefaultQuery("limit", "100"))
	if err != nil || limit < 1 || limit > 1000 {
		httpFail(c, http.StatusBadRequest, "limit must be 1..1000")
		return
	}
	c.PureJSON(http.StatusOK, gin.H{"exports": s.visibleJobs(p.CanSee, c.Query("tenant"), limit)})
}

// visible looks a job up for the caller; it answers 404 itself when the job does not exist or
// belongs to a tenant the caller may not see.
func (s *Service) visible(c *gin.Context) (Job, bool) {
	id := c.Param("id")
	j, ok := s.job(id)
	if !ok || !verify.ValidExportID(id) || !auth.From(c).CanSee(j.Tenant) {
		httpFail(c, http.StatusNotFound, "no export %q", report.Clip(id))
		return Job{}, false
	}
	return j, true
}

func (s *Service) get(c *gin.Context) {
	if j, ok := s.visible(c); ok {
		c.PureJSON(http.StatusOK, j)
	}
}

func (s *Service) file(c *gin.Context) {
	j, ok := s.visible(c)
	if !ok {
		return
	}
	name := c.Param("name")
	if j.Status != StatusSucceeded {
		httpFail(c, http.StatusConflict, "export %s is %s; files are served once it has succeeded", j.ID, j.Status)
		return
	}
	// Only names the job lists are served: the name never reaches the file system unchecked.
	listed := false
	for _, f := range j.Files {
		listed = listed || f.Name == name
	}
	if !listed {
		httpFail(c, http.StatusNotFound, "export %s has no file %q", j.ID, report.Clip(name))
		return
	}
	c.Header("X-Content-Type-Options", "nosniff")
	// The HTML report is self-contained; should a browser render it from the API's origin, it
	// may load nothing and run nothing.
	c.Header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox")
	c.Header("Content-Type", contentType(name))
	c.FileAttachment(filepath.Join(s.c.Dir, j.ID, name), name)
}

func contentType(name string) string {
	switch {
	case strings.HasSuffix(name, ".zip"):
		return "application/zip"
	case strings.HasSuffix(name, ".json"):
		return "application/json"
	case strings.HasSuffix(name, ".csv"):
		return "text/csv; charset=utf-8"
	case strings.HasSuffix(name, ".html"):
		return "text/html; charset=utf-8"
	}
	return "application/octet-stream"
}
