// Package findingstest is the conformance suite every findings.Store passes (the SQLite and
// ClickHouse index drivers run it against real databases).
package findingstest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/query/findings"
)

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

func occ(tenant string, kind findings.Kind, sev findings.Severity, key, agent, user, id string, idx uint64, at time.Duration) findings.Occurrence {
	return findings.Occurrence{Tenant: tenant, Kind: kind, Severity: sev, Key: key, Agent: agent, User: user,
		Evidence:    findings.Evidence{ID: id, Index: idx, Time: t0.Add(at), Note: "note of " + id},
		Explanation: "explained at " + id}
}

// Run runs the suite; open returns a new, empty store each time it is called.
func Run(t *testing.T, open func(t *testing.T) findings.Store) {
	t.Run("PositionAndMerge", func(t *testing.T) { positionAndMerge(t, open(t)) })
	t.Run("State", func(t *testing.T) { state(t, open(t)) })
	t.Run("Query", func(t *testing.T) { query(t, open(t)) })
	t.Run("Publish", func(t *testing.T) { publish(t, open(t)) })
}

func positionAndMerge(t *testing.T, s findings.Store) {
	ctx := context.Background()
	if p, err := s.FindingsPosition(ctx); err != nil || p != 0 {
		t.Fatalf("new store: position %d, %v", p, err)
	}
	key := "no-delegation:agent\x00\"quoted\" <b>"
	ch, err := s.ApplyFindings(ctx, 0, 10, []findings.Occurrence{
		occ("acme", findings.StaticCredential, findings.Medium, key, "agent", "alice", "r1", 3, time.Minute),
		occ("acme", findings.StaticCredential, findings.High, key, "agent", "alice", "r2", 5, 2*time.Minute),
		occ("acme", findings.OutOfScope, findings.High, "k2", "agent", "alice", "r2", 5, 2*time.Minute),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch) != 2 || !ch[0].New || !ch[1].New || ch[0].Finding.Count != 2 || ch[0].Finding.Severity != findings.High ||
		ch[0].Finding.ID != findings.ID("acme", findings.StaticCredential, key) {
		t.Fatalf("changes %+v", ch)
	}
	if _, err := s.ApplyFindings(ctx, 5, 12, nil, nil); !errors.Is(err, findings.ErrPosition) {
		t.Fatalf("apply from 5 at position 10: %v, want ErrPosition", err)
	}
	// A failed apply changes nothing.
	if p, _ := s.FindingsPosition(ctx); p != 10 {
		t.Fatalf("position %d after a refused apply", p)
	}
	// The second batch adds to the stored finding; the evidence keeps the first ones and the latest.
	var more []findings.Occurrence
	for i := range findings.MaxEvidence + 5 {
		more = append(more, occ("acme", findings.StaticCredential, findings.Medium, key, "agent", "alice", fmt.Sprint("m", i), uint64(10+i), time.Duration(10+i)*time.Minute))
	}
	ch, err = s.ApplyFindings(ctx, 10, 40, more, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch) != 1 || ch[0].New {
		t.Fatalf("changes %+v", ch)
	}
	fs, err := s.Findings(ctx, findings.Query{Tenant: "acme", Kinds: []findings.Kind{findings.StaticCredential}})
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 {
		t.Fatalf("findings %+v", fs)
	}
	f := fs[0]
	wantLast := fmt.Sprint("m", findings.MaxEvidence+4)
	if f.Key != key || f.Count != 2+uint64(findings.MaxEvidence)+5 || f.Severity != findings.High || len(f.Evidence) != findings.MaxEvidence ||
		f.Evidence[0].ID != "r1" || f.Evidence[findings.MaxEvidence-1].ID != wantLast || f.FirstIndex != 3 || f.LastIndex != uint64(10+findings.MaxEvidence+4) ||
		!f.First.Equal(t0.Add(time.Minute)) || !f.Last.Equal(t0.Add(time.Duration(10+findings.MaxEvidence+4)*time.Minute)) ||
		f.Explanation != "explained at "+wantLast || f.Evidence[0].Note != "note of r1" || f.Agent != "agent" || f.User != "alice" {
		t.Fatalf("stored finding %+v", f)
	}
	if p, _ := s.FindingsPosition(ctx); p != 40 {
		t.Fatalf("position %d, want 40", p)
	}
}

func state(t *testing.T, s findings.Store) {
	ctx := context.Background()
	items := []findings.StateItem{
		{Tenant: "acme", Space: "agent", Key: "a1", Value: []byte(`{"v":1}`)},
		{Tenant: "acme", Space: "agent", Key: "a2", Value: []byte(`{"v":2}`)},
		{Tenant: "globex", Space: "watermark", Key: "", Value: []byte(`"2026-11-02T09:00:00Z"`)},
	}
	if _, err := s.ApplyFindings(ctx, 0, 1, nil, items); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ApplyFindings(ctx, 1, 2, nil, []findings.StateItem{
		{Tenant: "acme", Space: "agent", Key: "a1", Value: []byte(`{"v":3}`)},
		{Tenant: "acme", Space: "agent", Key: "a2"}, // deleted
		{Tenant: "acme", Space: "agent", Key: "never-stored"},
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s.FindingsState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, it := range got {
		m[it.Tenant+"/"+it.Space+"/"+it.Key] = string(it.Value)
	}
	want := map[string]string{"acme/agent/a1": `{"v":3}`, "globex/watermark/": `"2026-11-02T09:00:00Z"`}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Fatalf("state %v, want %v", m, want)
	}
}

func query(t *testing.T, s findings.Store) {
	ctx := context.Background()
	var all []findings.Occurrence
	kinds := []findings.Kind{findings.StaticCredential, findings.SharedAgent, findings.OutOfScope}
	sevs := []findings.Severity{findings.High, findings.Medium, findings.Info}
	for i := range 30 {
		all = append(all, occ("acme", kinds[i%3], sevs[i%3], fmt.Sprint("k", i), fmt.Sprint("agent-", i%4), fmt.Sprint("user-", i%5),
			fmt.Sprint("r", i), uint64(i), time.Duration(i)*time.Hour))
	}
	all = append(all, occ("globex", findings.StaticCredential, findings.High, "k0", "agent-0", "user-0", "g0", 30, 0))
	if _, err := s.ApplyFindings(ctx, 0, 31, all, nil); err != nil {
		t.Fatal(err)
	}
	ids := func(fs []findings.Finding) []string {
		var out []string
		for _, f := range fs {
			out = append(out, f.Key)
		}
		return out
	}
	expect := func(q findings.Query, want func(i int) bool) {
		t.Helper()
		fs, err := s.Findings(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var w []string
		for i := 29; i >= 0; i-- { // newest detection first
			if want(i) {
				w = append(w, fmt.Sprint("k", i))
			}
		}
		if !slices.Equal(ids(fs), w) {
			t.Fatalf("query %+v: got %v, want %v", q, ids(fs), w)
		}
		for _, f := range fs {
			if f.Tenant != "acme" {
				t.Fatalf("query for acme returned %+v", f)
			}
		}
	}
	expect(findings.Query{Tenant: "acme"}, func(int) bool { return true })
	expect(findings.Query{Tenant: "acme", Kinds: []findings.Kind{findings.SharedAgent, findings.OutOfScope}}, func(i int) bool { return i%3 != 0 })
	expect(findings.Query{Tenant: "acme", Severities: []findings.Severity{findings.High}}, func(i int) bool { return i%3 == 0 })
	expect(findings.Query{Tenant: "acme", Agent: "agent-1"}, func(i int) bool { return i%4 == 1 })
	expect(findings.Query{Tenant: "acme", User: "user-2", Kinds: []findings.Kind{findings.StaticCredential}}, func(i int) bool { return i%5 == 2 && i%3 == 0 })
	expect(findings.Query{Tenant: "acme", From: t0.Add(10 * time.Hour), To: t0.Add(20 * time.Hour)}, func(i int) bool { return i >= 10 && i < 20 })
	if fs, err := s.Findings(ctx, findings.Query{Tenant: "nobody"}); err != nil || len(fs) != 0 {
		t.Fatalf("unknown tenant: %v %v", fs, err)
	}
	// Pages of 7 cover every finding once, in order.
	var paged []string
	q := findings.Query{Tenant: "acme", Limit: 7}
	for range 10 {
		fs, err := s.Findings(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(fs) > 7 {
			t.Fatalf("page of %d", len(fs))
		}
		paged = append(paged, ids(fs)...)
		if len(fs) < 7 {
			break
		}
		last := fs[len(fs)-1]
		q.After, q.AfterIndex = last.ID, last.FirstIndex
	}
	if len(paged) != 30 || paged[0] != "k29" || paged[29] != "k0" {
		t.Fatalf("pages: %v", paged)
	}
}

func publish(t *testing.T, s findings.Store) {
	ctx := context.Background()
	if _, err := s.ApplyFindings(ctx, 0, 2, []findings.Occurrence{
		occ("acme", findings.StaticCredential, findings.High, "a", "ag", "u", "r1", 0, 0),
		occ("acme", findings.StaticCredential, findings.High, "b", "ag", "u", "r2", 1, time.Minute),
	}, nil); err != nil {
		t.Fatal(err)
	}
	un, err := s.Unpublished(ctx, 10)
	if err != nil || len(un) != 2 || un[0].Key != "a" || un[1].Key != "b" {
		t.Fatalf("unpublished %+v %v", un, err)
	}
	for _, f := range un {
		if err := s.MarkPublished(ctx, f.ID, f.Count); err != nil {
			t.Fatal(err)
		}
	}
	if un, _ := s.Unpublished(ctx, 10); len(un) != 0 {
		t.Fatalf("still unpublished: %+v", un)
	}
	if _, err := s.ApplyFindings(ctx, 2, 3, []findings.Occurrence{occ("acme", findings.StaticCredential, findings.High, "b", "ag", "u", "r3", 2, 2*time.Minute)}, nil); err != nil {
		t.Fatal(err)
	}
	un, err = s.Unpublished(ctx, 10)
	if err != nil || len(un) != 1 || un[0].Key != "b" || un[0].Count != 2 {
		t.Fatalf("after an update: %+v %v", un, err)
	}
	if un, _ := s.Unpublished(ctx, 0); len(un) != 0 {
		t.Fatalf("limit 0 returned %d", len(un))
	}
}
