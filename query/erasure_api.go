package query

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/lineage-audit/lineage/query/auth"
)

// ErasureRequest asks to erase one subject (docs/ERASURE.md): POST /v1/erasures.
type ErasureRequest struct {
	Tenant  string `json:"tenant"`
	Subject string `json:"subject"`
	// LegalBasis is required to erase a subject with records inside the tenant's minimum
	// retention; it is recorded in the tombstone and the erasure's decision record.
	LegalBasis string `json:"legal_basis,omitempty"`
	// RequestedBy is the authenticated principal (set by the API, not the client).
	RequestedBy string `json:"-"`
}

// ErasureResult is the answer of POST /v1/erasures. It never repeats the subject id.
type ErasureResult struct {
	Tenant string `json:"tenant"`
	// KeyIDs are the subject keys destroyed (base64url, as the log's entries name them).
	KeyIDs []string `json:"key_ids"`
	// RecordsPurged counts the index rows rewritten without the clear values.
	RecordsPurged int `json:"records_purged"`
	// RecordID is the id of the erasure's own decision record (published through JetStream).
	RecordID string `json:"record_id"`
	ErasedAt string `json:"erased_at"`
	// WithinRetention says the subject had records inside the tenant's minimum retention,
	// erased on the legal basis given.
	WithinRetention bool `json:"within_retention"`
}

// Eraser carries out erasures (internal/service/erasure.go).
type Eraser interface {
	Erase(ctx context.Context, req ErasureRequest) (ErasureResult, error)
}

// Errors an Eraser returns (wrapped); the API maps them to statuses.
var (
	ErrErasureRetention = errors.New("the subject has records inside the tenant's minimum retention; erasure needs a legal basis (legal_basis)")
	ErrErasureNoSubject = errors.New("no subject key to erase (never seen, or already erased)")
	ErrErasureInvalid   = errors.New("invalid erasure request")
)

// erase serves POST /v1/erasures (compliance or admin role).
func (a *API) erase(c *gin.Context) {
	if a.Erasure == nil {
		fail(c, http.StatusNotImplemented, "erasure is not enabled for this log (docs/ERASURE.md)")
		return
	}
	var req ErasureRequest
	d := json.NewDecoder(c.Request.Body)
	d.DisallowUnknownFields()
	if err := d.Decode(&req); err != nil || req.Tenant == "" || req.Subject == "" {
		fail(c, http.StatusBadRequest, "body must be {\"tenant\":…,\"subject\":…[,\"legal_basis\":…]}")
		return
	}
	who := auth.From(c)
	if !who.CanSee(req.Tenant) {
		fail(c, http.StatusNotFound, "no tenant %q visible to %s", req.Tenant, who.Subject)
		return
	}
	req.RequestedBy = who.Subject
	res, err := a.Erasure.Erase(c.Request.Context(), req)
	switch {
	case err == nil:
		c.JSON(http.StatusOK, res)
	case errors.Is(err, ErrErasureRetention):
		fail(c, http.StatusConflict, "%v", ErrErasureRetention)
	case errors.Is(err, ErrErasureNoSubject):
		fail(c, http.StatusNotFound, "%v", ErrErasureNoSubject)
	case errors.Is(err, ErrErasureInvalid):
		fail(c, http.StatusBadRequest, "%v", err)
	default:
		a.internal(c, "erasure", err)
	}
}
