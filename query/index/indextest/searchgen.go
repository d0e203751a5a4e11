package indextest

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/query/index"
)

// The Searcher part of testGenerated: the same few thousand generated crew records, queried by
// every subject with random filters, windows, cursors and limits, each answer compared with the
// reference answer.

// searchGenerated runs the Searcher subtests of testGenerated on st, which holds entries.
func searchGenerated(t *testing.T, st index.Store, entries []index.Entry, rng *rand.Rand) {
	queries := SearchQueries(rng, entries)
	t.Run("Records", func(t *testing.T) {
		byIndex := map[uint64]index.Entry{}
		for _, e := range entries {
			byIndex[e.Index] = e
		}
		for _, q := range queries {
			rows := recordsOf(t, st, q)
			want := ReferenceRecords(entries, q)
			if got, wantKeys := rowKeys(rows), entryKeys(want); !slices.Equal(got, wantKeys) {
				t.Fatalf("Records(%s):\n got  %d rows %v\n want %d rows %v", describe(q), len(got), got, len(wantKeys), wantKeys)
			}
			for _, r := range rows {
				checkRow(t, r, byIndex[r.Index])
			}
		}
	})
	t.Run("RecordsPaging", func(t *testing.T) {
		for _, i := range rng.Perm(len(queries))[:16] {
			q := queries[i]
			q.After, q.Limit = nil, len(entries)+1
			all := recordsOf(t, st, q)
			// At most about 30 pages per query: each page is a query.
			checkPaging(t, st, q, max(1+rng.IntN(10), len(all)/30+1), all)
		}
	})
	t.Run("PolicyStats", func(t *testing.T) {
		policies := map[[2]string]bool{}
		for _, e := range entries {
			policies[[2]string{e.Record.Tenant, e.Record.Decision.Policy.ID}] = true
			policies[[2]string{e.Record.Tenant, "no-such-policy"}] = true
		}
		for _, p := range sortedPairs(policies) {
			for i := range 6 {
				var from, to time.Time
				if i > 0 {
					from, to = searchBound(rng, entries), searchBound(rng, entries)
				}
				got, err := st.PolicyStats(t.Context(), p[0], p[1], from, to)
				if err != nil {
					t.Fatalf("PolicyStats(%s, %s): %v", p[0], p[1], err)
				}
				if want := ReferencePolicyStats(entries, p[0], p[1], from, to); !reflect.DeepEqual(got, want) {
					t.Fatalf("PolicyStats(%s, %s, [%s, %s)) = %+v, want %+v", p[0], p[1], fmtTime(from), fmtTime(to), got, want)
				}
			}
		}
	})
	t.Run("LookupMany", func(t *testing.T) {
		bl, ok := st.(index.BatchLookup)
		if !ok {
			t.Skip("the store does not implement index.BatchLookup")
		}
		keys := make([]index.Key, 0, 2*len(entries))
		for _, e := range entries {
			keys = append(keys, index.Key{Tenant: e.Record.Tenant, ID: e.Record.ID})
			if rng.IntN(10) == 0 { // absent: another tenant's id, or a new one
				keys = append(keys, index.Key{Tenant: "other", ID: e.Record.ID},
					index.Key{Tenant: e.Record.Tenant, ID: e.Record.ID + "-new"})
			}
		}
		rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
		got, err := bl.LookupMany(t.Context(), keys)
		if err != nil {
			t.Fatalf("LookupMany of %d keys: %v", len(keys), err)
		}
		checkLookupMany(t, got, entries)
	})
}

// checkLookupMany fails unless got holds exactly entries' refs.
func checkLookupMany(t *testing.T, got map[index.Key]index.Ref, entries []index.Entry) {
	t.Helper()
	want := map[index.Key]index.Ref{}
	for _, e := range entries {
		k := index.Key{Tenant: e.Record.Tenant, ID: e.Record.ID}
		want[k] = index.Ref{Tenant: k.Tenant, ID: k.ID, Index: e.Index, RecordHash: e.RecordHash}
	}
	if !maps.Equal(got, want) {
		var diff []string
		for k, w := range want {
			if g, ok := got[k]; !ok || g != w {
				diff = append(diff, fmt.Sprintf("%v: got %+v (found %v), want index %d", k, g, ok, w.Index))
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				diff = append(diff, fmt.Sprintf("%v: found, but never applied", k))
			}
		}
		slices.Sort(diff)
		t.Fatalf("LookupMany: %d keys differ, first: %v", len(diff), diff[:min(5, len(diff))])
	}
}

// SearchQueries returns Records queries over entries: every agent and policy of every tenant
// unbounded, a sample of parents, and random queries about a random record's user, agent, policy
// or parent with random filters, windows, cursors and limits. The suite runs them against
// ReferenceRecords; drivers' own tests can run them against each other.
func SearchQueries(rng *rand.Rand, entries []index.Entry) []index.Query {
	all := len(entries) + 1
	subjects := map[[3]string]bool{} // kind, tenant, subject
	var effects, actions []string
	for _, e := range entries {
		r := e.Record
		subjects[[3]string{"agent", r.Tenant, r.Agent.ID}] = true
		subjects[[3]string{"policy", r.Tenant, r.Decision.Policy.ID}] = true
		if !slices.Contains(effects, r.Decision.Effect) {
			effects = append(effects, r.Decision.Effect)
		}
		if !slices.Contains(actions, r.Action.Type) {
			actions = append(actions, r.Action.Type)
		}
	}
	var qs []index.Query
	for _, k := range slices.SortedFunc(maps.Keys(subjects), func(a, b [3]string) int {
		return slices.Compare(a[:], b[:])
	}) {
		q := index.Query{Tenant: k[1], Limit: all}
		if k[0] == "agent" {
			q.AgentID = k[2]
		} else {
			q.PolicyID = k[2]
		}
		qs = append(qs, q)
	}
	for range 40 {
		e := entries[rng.IntN(len(entries))]
		if e.Record.ParentID != "" {
			qs = append(qs, index.Query{Tenant: e.Record.Tenant, ParentID: e.Record.ParentID, Limit: all})
		}
	}
	subset := func(from []string) []string {
		var out []string
		for _, v := range from {
			if rng.IntN(2) == 0 {
				out = append(out, v)
			}
		}
		return out
	}
	for range 250 {
		e := entries[rng.IntN(len(entries))]
		r := e.Record
		q := index.Query{Tenant: r.Tenant, Limit: all}
		switch rng.IntN(4) {
		case 0:
			q.UserID = r.User.ID
		case 1:
			q.AgentID = r.Agent.ID
		case 2:
			q.PolicyID = r.Decision.Policy.ID
		default:
			q.ParentID = r.ParentID
			if q.ParentID == "" {
				q.ParentID = r.ID // the record's children, if it has any
			}
		}
		if rng.IntN(2) == 0 {
			q.From, q.To = searchBound(rng, entries), searchBound(rng, entries)
		}
		if rng.IntN(4) == 0 {
			q.Agent = entries[rng.IntN(len(entries))].Record.Agent.ID
			if rng.IntN(2) == 0 {
				q.Agent = r.Agent.ID
			}
		}
		if rng.IntN(3) == 0 {
			q.Effects = subset(effects)
		}
		if rng.IntN(3) == 0 {
			q.ActionTypes = subset(actions)
		}
		if rng.IntN(4) == 0 {
			q.ActionTarget = searchTarget(rng, entries, r.Action.Target)
		}
		if rng.IntN(4) == 0 {
			c := entries[rng.IntN(len(entries))]
			q.After = &index.Cursor{TimeNS: c.Time.UnixNano(), Index: c.Index}
		}
		if rng.IntN(3) == 0 {
			q.Limit = 1 + rng.IntN(50)
		}
		qs = append(qs, q)
	}
	return qs
}

// searchTarget is a random ActionTarget filter: the record's own target or another record's,
// exactly, or a prefix of it of random length ("*" alone at length 0), or a target no record has.
func searchTarget(rng *rand.Rand, entries []index.Entry, own string) string {
	target := own
	if rng.IntN(3) == 0 {
		target = entries[rng.IntN(len(entries))].Record.Action.Target
	}
	switch rng.IntN(5) {
	case 0, 1:
		return target
	case 2, 3:
		return target[:rng.IntN(len(target)+1)] + "*"
	default:
		return target + "/no-such-target"
	}
}

// searchBound is a random window bound over entries: open, between records, or exactly at one.
func searchBound(rng *rand.Rand, entries []index.Entry) time.Time {
	switch rng.IntN(4) {
	case 0:
		return time.Time{}
	case 1:
		return genBase.Add(time.Duration(rng.Int64N(int64(genWindow))))
	default:
		return entries[rng.IntN(len(entries))].Time
	}
}

// describe prints a query compactly for failure messages.
func describe(q index.Query) string {
	s := fmt.Sprintf("tenant %q user %q agent %q policy %q parent %q [%s, %s)", q.Tenant, q.UserID,
		q.AgentID, q.PolicyID, q.ParentID, fmtTime(q.From), fmtTime(q.To))
	if q.Agent != "" {
		s += fmt.Sprintf(" by agent %q", q.Agent)
	}
	if q.Effects != nil {
		s += fmt.Sprintf(" effects %q", q.Effects)
	}
	if q.ActionTypes != nil {
		s += fmt.Sprintf(" actions %q", q.ActionTypes)
	}
	if q.ActionTarget != "" {
		s += fmt.Sprintf(" target %q", q.ActionTarget)
	}
	if q.After != nil {
		s += fmt.Sprintf(" after (%d, %d)", q.After.TimeNS, q.After.Index)
	}
	return s + fmt.Sprintf(" limit %d", q.Limit)
}
