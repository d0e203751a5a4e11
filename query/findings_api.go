package query

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/query/auth"
	"github.com/lineage-audit/lineage/query/findings"
	"github.com/lineage-audit/lineage/query/index"
	"github.com/lineage-audit/lineage/verify"
)

// Findings is the answer of GET /v1/findings (verify/findings.go).
type Findings = verify.Findings

// findingsCursor is the cursor of a findings listing; clients treat the base64 as opaque.
type findingsCursor struct {
	I  uint64 `json:"i"`
	ID string `json:"id"`
}

// findingsList serves GET /v1/findings?tenant=…: the tenant's findings, newest detection first,
// filtered by kind, severity, agent, user and window (from/to: findings with evidence in it), a
// page at a time (limit, cursor), each evidence record with its leaf and inclusion proof
// against the answer's checkpoint (unless proofs=false).
func (a *API) findingsList(c *gin.Context) {
	if a.Findings == nil {
		fail(c, http.StatusNotFound, "findings are not enabled on this server (lineaged --findings)")
		return
	}
	q := findings.Query{Tenant: c.Query("tenant"), Agent: c.Query("agent"), User: c.Query("user")}
	if !lineage.ValidTenant(q.Tenant) {
		fail(c, http.StatusBadRequest, "query parameter \"tenant\" is required")
		return
	}
	if p := auth.From(c); !p.CanSee(q.Tenant) {
		fail(c, http.StatusForbidden, "%s may not read tenant %q", p.Subject, q.Tenant)
		return
	}
	for _, k := range c.QueryArray("kind") {
		if !findings.KnownKind(findings.Kind(k)) {
			fail(c, http.StatusBadRequest, "unknown kind %q", k)
			return
		}
		q.Kinds = append(q.Kinds, findings.Kind(k))
	}
	for _, s := range c.QueryArray("severity") {
		switch findings.Severity(s) {
		case findings.High, findings.Medium, findings.Info:
			q.Severities = append(q.Severities, findings.Severity(s))
		default:
			fail(c, http.StatusBadRequest, "severity must be high, medium or info")
			return
		}
	}
	var ok bool
	if q.From, q.To, ok = parseWindow(c); !ok {
		return
	}
	page := findings.DefaultLimit
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > findings.MaxLimit-1 {
			fail(c, http.StatusBadRequest, "limit must be 1..%d", findings.MaxLimit-1)
			return
		}
		page = n
	}
	if v := c.Query("cursor"); v != "" {
		var cur findingsCursor
		b, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || len(b) > 256 || json.Unmarshal(b, &cur) != nil || cur.ID == "" {
			fail(c, http.StatusBadRequest, "invalid cursor")
			return
		}
		q.After, q.AfterIndex = cur.ID, cur.I
	}
	cp, ok := a.latest(c)
	if !ok {
		return
	}
	q.Limit = page + 1
	fs, err := a.Findings.Findings(c.Request.Context(), q)
	if err != nil {
		a.internal(c, "findings", err)
		return
	}
	var out Findings
	out.Tenant, out.CheckpointSize, out.Checkpoint = q.Tenant, cp.Size, string(cp.Note)
	if len(fs) > page {
		fs = fs[:page]
		last := fs[page-1]
		b, _ := json.Marshal(findingsCursor{I: last.FirstIndex, ID: last.ID})
		out.NextCursor = base64.RawURLEncoding.EncodeToString(b)
	}
	out.Findings = make([]*verify.FindingNode, 0, len(fs))
	var (
		nodes []*ActionNode
		rows  []index.Row // the evidence rows, for withProofs to rebuild their leaves from
	)
	for _, f := range fs {
		fn := &verify.FindingNode{ID: f.ID, Tenant: f.Tenant, Kind: string(f.Kind), Severity: string(f.Severity), Key: f.Key,
			Agent: f.Agent, User: f.User, First: f.First.UTC().Format(time.RFC3339Nano), Last: f.Last.UTC().Format(time.RFC3339Nano),
			FirstIndex: f.FirstIndex, LastIndex: f.LastIndex, Count: f.Count, Explanation: f.Explanation}
		for _, e := range f.Evidence {
			en := &verify.EvidenceNode{ID: e.ID, LogIndex: e.Index, Note: e.Note}
			switch row, err := a.Store.Get(c.Request.Context(), f.Tenant, e.ID); {
			case errors.Is(err, index.ErrNotFound):
				en.Missing = "not in the index (expired by its retention, or the index is being rebuilt)"
			case err != nil:
				a.internal(c, "findings evidence", err)
				return
			case row.Index != e.Index:
				en.Missing = "the index holds this id at another log index"
			case row.Index >= cp.Size:
				en.Missing = "logged after the answer's checkpoint"
			default:
				en.Record = actionNode(&row)
				nodes = append(nodes, en.Record)
				rows = append(rows, row)
			}
			fn.Evidence = append(fn.Evidence, en)
		}
		out.Findings = append(out.Findings, fn)
	}
	if !a.withProofs(c, cp, nodes, rows) {
		return
	}
	c.JSON(http.StatusOK, &out)
}

// findingKinds serves GET /v1/findings/kinds: what each kind means.
func findingKinds(c *gin.Context) { c.JSON(http.StatusOK, findings.Kinds) }
