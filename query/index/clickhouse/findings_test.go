package clickhouse

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/query/findings"
	"github.com/lineage-audit/lineage/query/findings/findingstest"
)

// freshFindings opens a store in a new database and returns its findings projection.
func freshFindings(t *testing.T, ts *testServer) (*Store, *Findings) {
	t.Helper()
	s := ts.fresh(t)
	f, err := s.Findings(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return s, f
}

// TestFindingsConformance runs the shared findings.Store suite against a real ClickHouse server.
func TestFindingsConformance(t *testing.T) {
	ts := startServer(t)
	findingstest.Run(t, func(t *testing.T) findings.Store {
		_, f := freshFindings(t, ts)
		return f
	})
}

var findingsT0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// logOccurrences are the occurrences of log entries [from, to) of a made-up log: every entry is
// evidence of one finding per tenant ("every"), every third of a second finding, and entry 12
// starts a third one. Like the engine's, they are a function of the entry alone, whatever the
// batch boundaries.
func logOccurrences(from, to uint64) []findings.Occurrence {
	var out []findings.Occurrence
	for i := from; i < to; i++ {
		at := findingsT0.Add(time.Duration(i) * time.Minute)
		mk := func(tenant string, kind findings.Kind, sev findings.Severity, key string) findings.Occurrence {
			id := fmt.Sprintf("%s-r%d", tenant, i)
			return findings.Occurrence{Tenant: tenant, Kind: kind, Severity: sev, Key: key, Agent: "agent-" + tenant, User: "user",
				Evidence: findings.Evidence{ID: id, Index: i, Time: at, Note: "note " + id}, Explanation: "as of " + id}
		}
		out = append(out, mk("acme", findings.StaticCredential, findings.Medium, "every"), mk("globex", findings.StaticCredential, findings.High, "every"))
		if i%3 == 0 {
			out = append(out, mk("acme", findings.OutOfScope, findings.High, "third"))
		}
		if i == 12 {
			out = append(out, mk("acme", findings.SharedAgent, findings.Info, "twelve"))
		}
	}
	return out
}

// logState is the engine state changes of [from, to): each tenant's watermark is to's, and
// the item "until-15" exists from entry 0 and is deleted at entry 15.
func logState(from, to uint64) []findings.StateItem {
	out := []findings.StateItem{
		{Tenant: "acme", Space: "watermark", Value: []byte(fmt.Sprint(to))},
		{Tenant: "globex", Space: "watermark", Value: []byte(fmt.Sprint(to))},
	}
	if from == 0 {
		out = append(out, findings.StateItem{Tenant: "acme", Space: "agent", Key: "until-15", Value: []byte(`{"v":1}`)})
	}
	if from <= 15 && 15 < to {
		out = append(out, findings.StateItem{Tenant: "acme", Space: "agent", Key: "until-15"})
	}
	return out
}

// applyLog applies the made-up log in batches ending at each of ends, starting at the position.
func applyLog(t *testing.T, f *Findings, ends ...uint64) {
	t.Helper()
	from, err := f.FindingsPosition(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, to := range ends {
		if _, err := f.ApplyFindings(t.Context(), from, to, logOccurrences(from, to), logState(from, to)); err != nil {
			t.Fatalf("apply [%d,%d): %v", from, to, err)
		}
		from = to
	}
}

// findingsSnapshot is everything a findings store answers, as JSON: position, state, every
// tenant's findings, and the unpublished findings (sorted by id: their order within a batch
// depends on the batch boundaries).
func findingsSnapshot(t *testing.T, f *Findings) string {
	t.Helper()
	ctx := t.Context()
	pos, err := f.FindingsPosition(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.FindingsState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var state []string
	for _, it := range st {
		state = append(state, it.Tenant+"/"+it.Space+"/"+it.Key+"="+string(it.Value))
	}
	all := map[string][]findings.Finding{}
	for _, tenant := range []string{"acme", "globex"} {
		if all[tenant], err = f.Findings(ctx, findings.Query{Tenant: tenant}); err != nil {
			t.Fatal(err)
		}
	}
	un, err := f.Unpublished(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(un, func(a, b findings.Finding) int { return strings.Compare(a.ID, b.ID) })
	b, err := json.MarshalIndent(map[string]any{"position": pos, "state": state, "findings": all, "unpublished": un}, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// optimize merges every part of the findings tables, as background merges eventually do.
func optimize(t *testing.T, ts *testServer, s *Store) {
	t.Helper()
	for _, table := range []string{"findings_rows", "findings_state_rows"} {
		ts.sql(t, "OPTIMIZE TABLE "+s.table(table)+" FINAL")
	}
}

// TestFindingsCrashBeforePosition writes a batch's findings and state rows without its position,
// as a crash between ApplyFindings' writes leaves them, and shows that reads ignore them, even
// after the server merged them with the committed rows, and that applying the batch again, in
// one piece or split differently, gives exactly the answers of a single apply.
func TestFindingsCrashBeforePosition(t *testing.T) {
	ts := startServer(t)
	ctx := t.Context()
	_, ref := freshFindings(t, ts)
	applyLog(t, ref, 10, 20, 30)
	want := findingsSnapshot(t, ref)
	// The counts a single apply gives, checked directly so the comparison cannot pass on two
	// equally wrong stores.
	fs, err := ref.Findings(ctx, findings.Query{Tenant: "acme", Kinds: []findings.Kind{findings.StaticCredential}})
	if err != nil || len(fs) != 1 || fs[0].Count != 30 || fs[0].LastIndex != 29 {
		t.Fatalf("reference: %+v %v", fs, err)
	}
	if fs, err = ref.Findings(ctx, findings.Query{Tenant: "acme", Kinds: []findings.Kind{findings.OutOfScope}}); err != nil || len(fs) != 1 || fs[0].Count != 10 {
		t.Fatalf("reference: %+v %v", fs, err)
	}

	for _, retry := range [][]uint64{{20, 30}, {15, 30}, {30}, {12, 13, 25, 30}} {
		t.Run(fmt.Sprint(retry), func(t *testing.T) {
			s, f := freshFindings(t, ts)
			applyLog(t, f, 10)
			before := findingsSnapshot(t, f)
			// The crashed attempt: [10, 20)'s rows are written, its position is not.
			changes, err := f.merge(ctx, 10, logOccurrences(10, 20))
			if err != nil {
				t.Fatal(err)
			}
			if len(changes) != 4 || changes[0].Finding.Count != 20 {
				t.Fatalf("changes of the crashed attempt: %+v", changes)
			}
			if err := f.writeRows(ctx, 20, changes, logState(10, 20)); err != nil {
				t.Fatal(err)
			}
			if n := count(t, s, "SELECT count() FROM "+s.table("findings_rows")+" WHERE version = 20"); n != 4 {
				t.Fatalf("%d leftover rows, want 4", n)
			}
			if got := findingsSnapshot(t, f); got != before {
				t.Fatalf("a batch without its position is visible:\n got %s\nwant %s", got, before)
			}
			// Merged with the committed rows, the leftovers are still invisible and the
			// committed rows still there.
			optimize(t, ts, s)
			if got := findingsSnapshot(t, f); got != before {
				t.Fatalf("after merges:\n got %s\nwant %s", got, before)
			}
			applyLog(t, f, retry...)
			if got := findingsSnapshot(t, f); got != want {
				t.Fatalf("re-applied as %v:\n got %s\nwant %s", retry, got, want)
			}
			optimize(t, ts, s)
			if got := findingsSnapshot(t, f); got != want {
				t.Fatalf("re-applied as %v, after merges:\n got %s\nwant %s", retry, got, want)
			}
		})
	}
}

// TestFindingsApplyErrors: a refused apply writes nothing.
func TestFindingsApplyErrors(t *testing.T) {
	ts := startServer(t)
	s, f := freshFindings(t, ts)
	applyLog(t, f, 5)
	ctx := t.Context()
	if _, err := f.ApplyFindings(ctx, 5, 5, logOccurrences(5, 6), nil); err == nil {
		t.Fatal("an empty range with occurrences was accepted")
	}
	if _, err := f.ApplyFindings(ctx, 6, 5, nil, nil); err == nil {
		t.Fatal("an inverted range was accepted")
	}
	if _, err := f.ApplyFindings(ctx, 5, 5, nil, nil); err != nil {
		t.Fatalf("an empty range at the position: %v", err)
	}
	if n := count(t, s, "SELECT count() FROM "+s.table("findings_rows")+" WHERE version > 5"); n != 0 {
		t.Fatalf("refused applies wrote %d rows", n)
	}
	if p, err := f.FindingsPosition(ctx); err != nil || p != 5 {
		t.Fatalf("position %d %v", p, err)
	}
}

// TestFindingsCompact: compaction keeps every answer, drops the superseded rows, the leftovers of
// a crashed batch and the tombstones, and the store keeps working, also when reopened.
func TestFindingsCompact(t *testing.T) {
	ts := startServer(t)
	ctx := t.Context()
	_, ref := freshFindings(t, ts)
	applyLog(t, ref, 5, 10, 15, 20, 25, 30)
	s, f := freshFindings(t, ts)
	applyLog(t, f, 5, 10, 15, 20)
	// A crashed batch's leftovers.
	changes, err := f.merge(ctx, 20, logOccurrences(20, 24))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.writeRows(ctx, 24, changes, logState(20, 24)); err != nil {
		t.Fatal(err)
	}
	before := findingsSnapshot(t, f)
	rows := func() (uint64, uint64) {
		return count(t, s, "SELECT count() FROM "+s.table("findings_rows")),
			count(t, s, "SELECT count() FROM "+s.table("findings_state_rows"))
	}
	if fr, sr := rows(); fr <= 4 || sr <= 2 {
		t.Fatalf("before compaction: %d findings rows, %d state rows", fr, sr)
	}
	if err := f.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	// Live: 4 findings (2 "every", "third", "twelve"), 2 watermarks ("until-15" is deleted).
	if fr, sr := rows(); fr != 4 || sr != 2 {
		t.Fatalf("after compaction: %d findings rows, %d state rows, want 4 and 2", fr, sr)
	}
	if got := findingsSnapshot(t, f); got != before {
		t.Fatalf("compaction changed the answers:\n got %s\nwant %s", got, before)
	}
	applyLog(t, f, 25)
	// A second Findings, as after a restart, writes to the new generation.
	f2, err := s.Findings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if f2.gen != 1 {
		t.Fatalf("reopened at generation %d, want 1", f2.gen)
	}
	applyLog(t, f2, 30)
	if got, want := findingsSnapshot(t, f2), findingsSnapshot(t, ref); got != want {
		t.Fatalf("after compaction and more batches:\n got %s\nwant %s", got, want)
	}
	if err := f2.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count() FROM "+s.table("findings_rows")+" WHERE gen != 2"); n != 0 {
		t.Fatalf("%d rows of older generations left", n)
	}
}

// TestFindingsMarkPublishedKeepsNewest: a mark at an older count, arriving after a newer one,
// does not make the finding unpublished again; a change after the newest mark does.
func TestFindingsMarkPublishedKeepsNewest(t *testing.T) {
	ts := startServer(t)
	ctx := t.Context()
	_, f := freshFindings(t, ts)
	applyLog(t, f, 1, 2)
	un, err := f.Unpublished(ctx, 10)
	if err != nil || len(un) != 3 { // both tenants' "every" and acme's "third" (entry 0)
		t.Fatalf("unpublished %+v %v", un, err)
	}
	for _, fd := range un {
		if err := f.MarkPublished(ctx, fd.ID, fd.Count); err != nil {
			t.Fatal(err)
		}
		if err := f.MarkPublished(ctx, fd.ID, fd.Count-1); err != nil {
			t.Fatal(err)
		}
	}
	if un, err := f.Unpublished(ctx, 10); err != nil || len(un) != 0 {
		t.Fatalf("after marks: %+v %v", un, err)
	}
	applyLog(t, f, 3)
	un, err = f.Unpublished(ctx, 10)
	if err != nil || len(un) != 2 || un[0].Key != "every" || un[0].Count != 3 { // entry 2 adds to both "every" findings
		t.Fatalf("after a change: %+v %v", un, err)
	}
}
