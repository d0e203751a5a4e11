package indextest

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/lineage-audit/lineage/query/index"
)

// The reference answers of index.Searcher: plain filters and sorts over the applied entries,
// written to be obviously right rather than fast. The suite compares every driver with them, and
// they are exported so a driver's own tests (crash recovery, retention) can check Records and
// PolicyStats against what the store should hold.

// Limits of the reference answer: index.Searcher's default and cap on Records' Limit.
const (
	referenceDefaultLimit = 10_000
	referenceMaxLimit     = 100_000
)

// ReferenceRecords returns the entries index.Searcher.Records must return for q, in order; q
// must set exactly one subject.
func ReferenceRecords(entries []index.Entry, q index.Query) []index.Entry {
	var out []index.Entry
	for _, e := range entries {
		if matches(e, q) {
			out = append(out, e)
		}
	}
	sortEntries(out)
	limit := q.Limit
	if limit <= 0 {
		limit = referenceDefaultLimit
	}
	limit = min(limit, referenceMaxLimit)
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// matches reports whether e answers q, limit aside.
func matches(e index.Entry, q index.Query) bool {
	r := e.Record
	if r.Tenant != q.Tenant {
		return false
	}
	switch {
	case q.UserID != "" && r.User.ID != q.UserID,
		q.AgentID != "" && r.Agent.ID != q.AgentID,
		q.PolicyID != "" && r.Decision.Policy.ID != q.PolicyID,
		q.ParentID != "" && r.ParentID != q.ParentID:
		return false
	}
	if !inWindow(e, q.From, q.To) {
		return false
	}
	if q.Agent != "" && r.Agent.ID != q.Agent {
		return false
	}
	if len(q.Effects) > 0 && !slices.Contains(q.Effects, r.Decision.Effect) {
		return false
	}
	if len(q.ActionTypes) > 0 && !slices.Contains(q.ActionTypes, r.Action.Type) {
		return false
	}
	if q.ActionTarget != "" {
		target, prefix := q.TargetPrefix()
		if prefix && !strings.HasPrefix(r.Action.Target, target) || !prefix && r.Action.Target != target {
			return false
		}
	}
	if c := q.After; c != nil {
		ns := e.Time.UnixNano()
		if ns < c.TimeNS || (ns == c.TimeNS && e.Index <= c.Index) {
			return false
		}
	}
	return true
}

// inWindow reports whether from <= e.Time < to, a zero bound being open.
func inWindow(e index.Entry, from, to time.Time) bool {
	return (from.IsZero() || !e.Time.Before(from)) && (to.IsZero() || e.Time.Before(to))
}

// ReferencePolicyStats returns what index.Searcher.PolicyStats must return: policyID's
// decisions in tenant within [from, to), each entry counted once, with empty (not nil) maps.
func ReferencePolicyStats(entries []index.Entry, tenant, policyID string, from, to time.Time) index.PolicyStats {
	st := index.PolicyStats{ByEffect: map[string]int{}, ByVersion: map[string]int{}}
	for _, e := range entries {
		r := e.Record
		if r.Tenant != tenant || r.Decision.Policy.ID != policyID || !inWindow(e, from, to) {
			continue
		}
		st.Total++
		st.ByEffect[r.Decision.Effect]++
		st.ByVersion[r.Decision.Policy.Version]++
	}
	return st
}

// sortEntries orders entries by time, then log index: the order of every query answer.
func sortEntries(entries []index.Entry) {
	slices.SortFunc(entries, func(a, b index.Entry) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return cmp.Compare(a.Index, b.Index)
	})
}
