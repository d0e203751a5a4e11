package report

import (
	"fmt"
	"slices"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/query/findings"
)

// The agent-identity findings of a report come from the detection engine lineaged runs live
// (query/findings, behind GET /v1/findings), so the report and the API agree: the engine reads
// every record of the tenant in log order, as the live run does (the engine keeps one state
// per tenant, so the other tenants' records, which the scan does not decode, change nothing),
// and the report keeps the occurrences whose evidence record is one the report cites: in the
// period, in the AI-system scope, not one of Lineage's own export records. An occurrence's
// evidence can be an earlier record than the one being read (the first role of a shared agent,
// the start of a session, an escalation whose review window closed), so the cited indexes are
// remembered in a sparse bitmap (scopeSet).
//
// Memory: the engine bounds its own state; the occurrences of one batch are aggregated into
// findings at once (Finding.Add keeps at most findings.MaxEvidence of them), and at most
// maxIdentityFindings findings are kept (the excess is counted in inventory_truncated).

// maxIdentityFindings bounds the findings one export keeps.
const maxIdentityFindings = 10_000

// identityBatch is how many records of the tenant the engine reads between EndBatch calls when
// no scan chunk ends first: it bounds the occurrences waiting to be aggregated.
const identityBatch = 4096

// identityAgg runs the findings engine over the scan.
type identityAgg struct {
	tenant   string
	from, to time.Time
	engine   *findings.Engine
	scope    scopeSet
	occ      []findings.Occurrence // reused between batches
	pending  int                   // records observed since the last EndBatch
	found    map[string]*findings.Finding
	dropped  uint64 // findings not kept (maxIdentityFindings)
}

func newIdentityAgg(cfg *findings.Configs, req Request) *identityAgg {
	return &identityAgg{tenant: req.Tenant, from: req.From, to: req.To, engine: findings.NewEngine(cfg),
		scope: scopeSet{pages: map[uint64]*scopePage{}}, found: map[string]*findings.Finding{}}
}

// cite marks the record at idx as cited by the report: occurrences with it as evidence count.
func (g *identityAgg) cite(idx uint64) { g.scope.add(idx) }

// observe feeds the engine one record of the tenant (every one, in log order, cited or not).
func (g *identityAgg) observe(idx uint64, rec *lineage.Record, t time.Time) error {
	g.occ = g.engine.Observe(idx, rec, t, g.occ)
	g.pending++
	if g.pending >= identityBatch {
		return g.endBatch()
	}
	return nil
}

// endBatch closes the windows the records read so far have passed (as the live worker does
// after each batch it reads) and aggregates the occurrences of the batch.
func (g *identityAgg) endBatch() error {
	if g.pending == 0 && len(g.occ) == 0 {
		return nil
	}
	g.occ = g.engine.EndBatch(g.occ)
	// The engine tracks its changed state for a store to persist; an export persists none, but
	// the tracking must be drained or it grows with every key the engine ever touched.
	if _, err := g.engine.TakeDirty(); err != nil {
		return fmt.Errorf("exporters: findings: %w", err)
	}
	for i := range g.occ {
		g.take(&g.occ[i])
	}
	clear(g.occ) // drop the references to the records' strings before the slice is reused
	g.occ = g.occ[:0]
	g.pending = 0
	return nil
}

// take aggregates one occurrence if its evidence is in the report's scope.
func (g *identityAgg) take(o *findings.Occurrence) {
	t := o.Evidence.Time
	if o.Tenant != g.tenant || t.Before(g.from) || !t.Before(g.to) || !g.scope.has(o.Evidence.Index) {
		return
	}
	// The strings of a decoded record share one buffer; keeping one keeps the whole record.
	c := *o
	c.Tenant, c.Key, c.Agent, c.User, c.Explanation = cl(c.Tenant), cl(c.Key), cl(c.Agent), cl(c.User), cl(c.Explanation)
	c.Evidence.ID, c.Evidence.Note = cl(c.Evidence.ID), cl(c.Evidence.Note)
	id := findings.ID(c.Tenant, c.Kind, c.Key)
	if f := g.found[id]; f != nil {
		f.Add(c)
		return
	}
	if len(g.found) >= maxIdentityFindings {
		g.dropped++
		return
	}
	f := findings.New(c)
	f.ID = id
	g.found[id] = &f
}

// truncated reports what was not kept, for the inventory_truncated finding.
func (g *identityAgg) truncated(into map[string]uint64) {
	if g.dropped > 0 {
		into["identity findings"] += g.dropped
	}
	if g.engine.Truncated > 0 {
		into["identity findings: engine state keys"] += g.engine.Truncated
	}
}

// rows returns the findings for the report, most severe first, then newest (findings.Sort).
func (g *identityAgg) rows() []IdentityFinding {
	fs := make([]findings.Finding, 0, len(g.found))
	for _, f := range g.found {
		fs = append(fs, *f)
	}
	findings.Sort(fs)
	out := make([]IdentityFinding, 0, len(fs))
	for _, f := range fs {
		row := IdentityFinding{
			ID: f.ID, Kind: string(f.Kind), Severity: string(f.Severity), Agent: f.Agent, User: f.User,
			Explanation: f.Explanation, Count: f.Count, FirstTime: FormatTime(f.First), LastTime: FormatTime(f.Last),
			Evidence: make([]IdentityEvidence, 0, len(f.Evidence)),
		}
		if i := slices.IndexFunc(findings.Kinds, func(k findings.KindInfo) bool { return k.Kind == f.Kind }); i >= 0 {
			row.Title, row.Pillar = findings.Kinds[i].Title, findings.Kinds[i].Pillar
		} else {
			row.Title = string(f.Kind)
		}
		for _, e := range f.Evidence {
			row.Evidence = append(row.Evidence, IdentityEvidence{LogIndex: e.Index, RecordID: e.ID, Time: FormatTime(e.Time), Note: e.Note})
		}
		out = append(out, row)
	}
	return out
}

// scopeSet is a set of log indexes: a bitmap in pages of 64Ki indexes (8 KiB), allocated only
// where the report cites a record, so it costs at most one bit per log entry and usually far
// less.
type scopeSet struct{ pages map[uint64]*scopePage }

const scopePageBits = 16

type scopePage [1 << scopePageBits / 64]uint64

func (s *scopeSet) add(idx uint64) {
	p := s.pages[idx>>scopePageBits]
	if p == nil {
		p = new(scopePage)
		s.pages[idx>>scopePageBits] = p
	}
	i := idx & (1<<scopePageBits - 1)
	p[i/64] |= 1 << (i % 64)
}

func (s *scopeSet) has(idx uint64) bool {
	p := s.pages[idx>>scopePageBits]
	if p == nil {
		return false
	}
	i := idx & (1<<scopePageBits - 1)
	return p[i/64]&(1<<(i%64)) != 0
}
