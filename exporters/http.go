package exporters

import (
	"bytes"
	"context"
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
	if errors.Is(err, errUnavailable) {
		s.log.Error("export not queued", "principal", p.Subject, "err", err)
		c.Header("Retry-After", "10")
		httpFail(c, http.StatusServiceUnavailable, "the export could not be queued; try again later")
		return
	}
	if err != nil {
		httpFail(c, http.StatusBadRequest, "%v", err)
		return
	}
	c.Header("Location", "/v1/exports/"+j.ID)
	if s.cl != nil {
		c.PureJSON(http.StatusAccepted, j) // the job as stored, queued; no worker here shares it
		return
	}
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
	if s.cl != nil {
		ctx, cancel := context.WithTimeout(c.Request.Context(), clusterTimeout)
		defer cancel()
		jobs, err := s.clusterVisibleJobs(ctx, p.CanSee, c.Query("tenant"), limit)
		if err != nil {
			s.log.Error("exports not listed", "err", err)
			httpFail(c, http.StatusServiceUnavailable, "the exports cannot be listed now; try again later")
			return
		}
		c.PureJSON(http.StatusOK, gin.H{"exports": jobs})
		return
	}
	c.PureJSON(http.StatusOK, gin.H{"exports": s.visibleJobs(p.CanSee, c.Query("tenant"), limit)})
}

// visible looks a job up for the caller; it answers 404 itself when the job does not exist or
// belongs to a tenant the caller may not see.
func (s *Service) visible(c *gin.Context) (Job, bool) {
	id := c.Param("id")
	var j Job
	var ok bool
	if s.cl != nil {
		ctx, cancel := context.WithTimeout(c.Request.Context(), clusterTimeout)
		defer cancel()
		var err error
		if j, ok, err = s.clusterJob(ctx, id); err != nil {
			s.log.Error("export not read", "export", report.Clip(id), "err", err)
			httpFail(c, http.StatusServiceUnavailable, "export %q cannot be read now; try again later", report.Clip(id))
			return Job{}, false
		}
	} else {
		j, ok = s.job(id)
	}
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
	if j.FilesErased != "" {
		httpFail(c, http.StatusGone, "export %s: its files were deleted at %s because they held personal data of a person since erased (GDPR Art. 17); run a new export", j.ID, j.FilesErased)
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
	if s.cl != nil {
		s.streamFile(c, j.ID, name)
		return
	}
	c.FileAttachment(filepath.Join(s.c.Dir, j.ID, name), name)
}

// streamFile serves a file of cluster mode from the object store.
func (s *Service) streamFile(c *gin.Context, id, name string) {
	r, err := s.openFile(c.Request.Context(), id, name)
	if err != nil {
		s.log.Error("export file not readable", "export", id, "file", name, "err", err)
		httpFail(c, http.StatusServiceUnavailable, "export %s: file %q cannot be read now; try again later", id, report.Clip(name))
		return
	}
	defer r.Close()
	info, err := r.Info()
	if err != nil {
		s.log.Error("export file not readable", "export", id, "file", name, "err", err)
		httpFail(c, http.StatusServiceUnavailable, "export %s: file %q cannot be read now; try again later", id, report.Clip(name))
		return
	}
	// The name is one the job lists (checked by the caller): safe in the header.
	c.Header("Content-Disposition", `attachment; filename="`+name+`"`)
	c.Header("Content-Length", strconv.FormatUint(info.Size, 10))
	c.Status(http.StatusOK)
	if _, err := io.Copy(c.Writer, r); err != nil {
		// The status is sent; a truncated body (and the object store's digest check, which
		// fails the read of a damaged object) is all the client can be told.
		s.log.Error("export file download broken off", "export", id, "file", name, "err", err)
	}
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
