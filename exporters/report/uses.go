package report

import (
	"bytes"
	"container/list"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/exporters/internal/extsort"
)

// A "use" (EU AI Act Art. 12(3)(a): "recording of the period of each use of the system") is one
// delegation: every record that shares a delegation token. A token is what an RFC 8693 token
// exchange issues when one person hands one task to one crew of agents, so it bounds a use the
// way a session bounds a login; its records give the use's start and end. Records without a
// token are grouped by trace id, and failing that each record is a use of its own.
//
// Grouping a million records by use must not hold them, nor even all the uses (a million
// records are ~150,000 uses): the records of one use are near each other in the log, so the
// open uses are kept in an LRU of maxOpenUses; a use pushed out is written to an external sorter
// as a partial aggregate, and at the end the sorter brings together the parts of any use that
// was pushed out more than once. The result is exact whatever the log order, and memory is
// bounded by maxOpenUses and the sorter's budget.

// maxOpenUses bounds the uses aggregated in memory at once.
const maxOpenUses = 8192

// Caps on the lists a use row carries; Truncated says when one was hit.
const (
	maxUseTargets = 32
	maxUseList    = 16
)

// sortMem is the memory budget of each external sort. A million records are ~170,000 uses of
// ~600 bytes: a few runs of 16 MB, merged in one pass.
const sortMem = 16 << 20

// useAgg is the (partial) aggregate of one use. It is serialized into the sorter, so its
// fields are exported for encoding/json; the JSON names are short because there may be many.
type useAgg struct {
	Key        string       `json:"k"`
	UseID      string       `json:"id"`
	Kind       string       `json:"kind"`
	AISystem   string       `json:"sys,omitempty"`
	Start      int64        `json:"s"` // Unix nanoseconds of the earliest record
	End        int64        `json:"e"`
	FirstIndex uint64       `json:"fi"`
	LastIndex  uint64       `json:"li"`
	FirstID    string       `json:"fid"`
	Users      [][2]string  `json:"u"` // (id, issuer)
	Reviewers  [][2]string  `json:"r,omitempty"`
	Oversight  []string     `json:"o,omitempty"`
	Agents     []string     `json:"a"`
	Models     []string     `json:"m,omitempty"`
	Actions    []string     `json:"ac"`
	Targets    []string     `json:"t"`
	Truncated  bool         `json:"tr,omitempty"`
	Records    uint64       `json:"n"`
	Effects    EffectCounts `json:"ef"`
	DIssuer    string       `json:"di,omitempty"`
	DMechanism string       `json:"dm,omitempty"`
	DScope     []string     `json:"ds,omitempty"`
	DIssuedAt  string       `json:"dia,omitempty"`
	DExpiresAt string       `json:"dea,omitempty"`

	elem *list.Element
}

// useKeyOf returns the use a record belongs to.
func useKeyOf(rec *lineage.Record) (kind, id string) {
	if d := rec.Delegation; d != nil && d.TokenID != "" {
		return "delegation", d.TokenID
	}
	if tr := rec.Trace; tr != nil && tr.TraceID != "" {
		return "trace", tr.TraceID
	}
	return "record", rec.ID
}

// useGrouper aggregates records into uses.
type useGrouper struct {
	open   map[string]*useAgg
	lru    *list.List // front: most recently touched
	sorter *extsort.Sorter
	line   []byte
}

func newUseGrouper(tmpDir string) *useGrouper {
	return &useGrouper{open: map[string]*useAgg{}, lru: list.New(), sorter: extsort.New(tmpDir, sortMem)}
}

func (g *useGrouper) close() { g.sorter.Close() }

// add aggregates a record in scope.
func (g *useGrouper) add(idx uint64, rec *lineage.Record, t time.Time) error {
	kind, id := useKeyOf(rec)
	key := kind + ":" + id
	u := g.open[key]
	if u == nil {
		if len(g.open) >= maxOpenUses {
			if err := g.spill(g.lru.Back().Value.(*useAgg)); err != nil {
				return err
			}
		}
		// Strings are cloned: a decoded record's strings share one buffer, and keeping any of
		// them would keep the whole record alive as long as the use is open.
		key = strings.Clone(key)
		u = &useAgg{Key: key, UseID: key[len(kind)+1:], Kind: kind, Start: t.UnixNano(), End: t.UnixNano(),
			FirstIndex: idx, LastIndex: idx, FirstID: strings.Clone(rec.ID)}
		if rec.AISystem != nil {
			u.AISystem = strings.Clone(rec.AISystem.ID)
		}
		if d := rec.Delegation; d != nil {
			u.DIssuer, u.DMechanism = strings.Clone(d.Issuer), strings.Clone(d.Mechanism)
			u.DIssuedAt, u.DExpiresAt = strings.Clone(d.IssuedAt), strings.Clone(d.ExpiresAt)
			for i, sc := range d.Scope {
				if i == maxUseTargets {
					u.Truncated = true
					break
				}
				u.DScope = append(u.DScope, strings.Clone(sc))
			}
		}
		u.elem = g.lru.PushFront(u)
		g.open[key] = u
	} else {
		g.lru.MoveToFront(u.elem)
	}
	ns := t.UnixNano()
	if ns < u.Start {
		u.Start = ns
	}
	if ns > u.End {
		u.End = ns
	}
	if idx < u.FirstIndex {
		u.FirstIndex, u.FirstID = idx, strings.Clone(rec.ID)
	}
	u.LastIndex = max(u.LastIndex, idx)
	u.Records++
	countEffect(&u.Effects, rec.Decision.Effect)
	u.Users = u.addPair(u.Users, [2]string{rec.User.ID, rec.User.Issuer})
	if ho := rec.HumanOversight; ho != nil {
		u.Reviewers = u.addPair(u.Reviewers, [2]string{ho.Reviewer.ID, ho.Reviewer.Issuer})
		u.Oversight = u.add(u.Oversight, ho.Outcome, maxUseList)
	}
	u.Agents = u.add(u.Agents, rec.Agent.ID, maxUseList)
	if m := rec.Agent.Model; m != nil {
		u.Models = u.add(u.Models, modelLabel(m), maxUseList)
	}
	u.Actions = u.add(u.Actions, rec.Action.Type, maxUseList)
	u.Targets = u.add(u.Targets, rec.Action.Target, maxUseTargets)
	return nil
}

func (u *useAgg) add(set []string, v string, max int) []string {
	for _, x := range set {
		if x == v {
			return set
		}
	}
	if len(set) >= max {
		u.Truncated = true
		return set
	}
	return append(set, strings.Clone(v))
}

func (u *useAgg) addPair(set [][2]string, v [2]string) [][2]string {
	for _, x := range set {
		if x == v {
			return set
		}
	}
	if len(set) >= maxUseList {
		u.Truncated = true
		return set
	}
	return append(set, [2]string{strings.Clone(v[0]), strings.Clone(v[1])})
}

// merge folds the partial aggregate o (of the same use) into u.
func (u *useAgg) merge(o *useAgg) {
	if o.Start < u.Start {
		u.Start = o.Start
	}
	if o.End > u.End {
		u.End = o.End
	}
	if o.FirstIndex < u.FirstIndex {
		u.FirstIndex, u.FirstID, u.AISystem = o.FirstIndex, o.FirstID, o.AISystem
	}
	u.LastIndex = max(u.LastIndex, o.LastIndex)
	u.Records += o.Records
	u.Effects.Allow += o.Effects.Allow
	u.Effects.Deny += o.Effects.Deny
	u.Effects.Modify += o.Effects.Modify
	u.Effects.Escalate += o.Effects.Escalate
	u.Truncated = u.Truncated || o.Truncated
	for _, p := range o.Users {
		u.Users = u.addPair(u.Users, p)
	}
	for _, p := range o.Reviewers {
		u.Reviewers = u.addPair(u.Reviewers, p)
	}
	for _, v := range o.Oversight {
		u.Oversight = u.add(u.Oversight, v, maxUseList)
	}
	for _, v := range o.Agents {
		u.Agents = u.add(u.Agents, v, maxUseList)
	}
	for _, v := range o.Models {
		u.Models = u.add(u.Models, v, maxUseList)
	}
	for _, v := range o.Actions {
		u.Actions = u.add(u.Actions, v, maxUseList)
	}
	for _, v := range o.Targets {
		u.Targets = u.add(u.Targets, v, maxUseTargets)
	}
}

// spill writes a use to the sorter, keyed by its use key, and forgets it.
//
// A sort line is the key as a JSON string, a tab, and the aggregate as JSON. JSON escapes
// every control character, so neither part holds a tab or a newline, and a JSON string ends at
// its first unescaped quote, so no key's line is a prefix of another's: sorting whole lines
// brings each key's lines together.
func (g *useGrouper) spill(u *useAgg) error {
	g.lru.Remove(u.elem)
	delete(g.open, u.Key)
	k, err := json.Marshal(u.Key)
	if err != nil {
		return err
	}
	v, err := json.Marshal(u)
	if err != nil {
		return err
	}
	g.line = append(append(append(g.line[:0], k...), '\t'), v...)
	return g.sorter.Add(g.line)
}

// finish spills every open use, merges the parts of each use, and calls emit with the uses in
// order of start time (then first log index).
func (g *useGrouper) finish(tmpDir string, emit func(*useAgg) error) error {
	for g.lru.Len() > 0 {
		if err := g.spill(g.lru.Back().Value.(*useAgg)); err != nil {
			return err
		}
	}
	byTime := extsort.New(tmpDir, sortMem)
	defer byTime.Close()
	var cur *useAgg
	var curKey []byte
	flush := func() error {
		if cur == nil {
			return nil
		}
		v, err := json.Marshal(cur)
		if err != nil {
			return err
		}
		// Start is ≥ 0 (record times are bounded to 1970–2200), so fixed-width decimal sorts.
		line := fmt.Appendf(nil, "%020d\t%020d\t", cur.Start, cur.FirstIndex)
		return byTime.Add(append(line, v...))
	}
	err := g.sorter.Each(func(line []byte) error {
		k, v, ok := bytes.Cut(line, []byte{'\t'})
		if !ok {
			return fmt.Errorf("exporters: malformed use line")
		}
		u := new(useAgg)
		if err := json.Unmarshal(v, u); err != nil {
			return fmt.Errorf("exporters: use line: %w", err)
		}
		if cur != nil && bytes.Equal(k, curKey) {
			cur.merge(u)
			return nil
		}
		if err := flush(); err != nil {
			return err
		}
		cur, curKey = u, append(curKey[:0], k...)
		return nil
	})
	if err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	g.sorter.Close()
	return byTime.Each(func(line []byte) error {
		parts := bytes.SplitN(line, []byte{'\t'}, 3)
		if len(parts) != 3 {
			return fmt.Errorf("exporters: malformed use line")
		}
		u := new(useAgg)
		if err := json.Unmarshal(parts[2], u); err != nil {
			return fmt.Errorf("exporters: use line: %w", err)
		}
		return emit(u)
	})
}

// row renders a use for the report.
func (u *useAgg) row() UseRow {
	r := UseRow{
		UseID: u.UseID, UseKind: u.Kind, AISystem: u.AISystem,
		Start: FormatTime(time.Unix(0, u.Start)), End: FormatTime(time.Unix(0, u.End)),
		DurationSeconds: float64(u.End-u.Start) / 1e9,
		Users:           pairs(u.Users), Reviewers: pairs(u.Reviewers),
		Oversight: nonNil(u.Oversight), Agents: nonNil(u.Agents), Models: nonNil(u.Models),
		Actions: nonNil(u.Actions), Targets: nonNil(u.Targets), Truncated: u.Truncated,
		Records: u.Records, Effects: u.Effects,
		FirstLogIndex: u.FirstIndex, LastLogIndex: u.LastIndex, FirstRecordID: u.FirstID,
	}
	r.Delegation.Issuer, r.Delegation.Mechanism, r.Delegation.Scope = u.DIssuer, u.DMechanism, u.DScope
	r.Delegation.IssuedAt, r.Delegation.ExpiresAt = u.DIssuedAt, u.DExpiresAt
	return r
}

// personLabel renders a natural person as "id (issuer)".
func personLabel(id, issuer string) string { return id + " (" + issuer + ")" }

func pairs(ps [][2]string) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = personLabel(p[0], p[1])
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// itoa is strconv.FormatUint for counts in tables.
func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
