package query

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/lineage-audit/lineage/verify"
)

// keys serves GET /v1/keys: the log's origin, its current checkpoint key and the rotation
// statements that link it to the earlier keys (docs/KEY-ROTATION.md). Like /v1/verifier it is a
// public fact of the log; a client checks it with verify.FollowRotations from a key it got out
// of band, never trusts it as is.
func (a *API) keys(c *gin.Context) {
	origin, _, _ := strings.Cut(a.Verifier, "+")
	rs := make([]string, 0, len(a.Rotations))
	for _, r := range a.Rotations {
		rs = append(rs, string(r))
	}
	c.JSON(http.StatusOK, verify.Keys{Origin: origin, Current: strings.TrimSpace(a.Verifier), Rotations: rs})
}
