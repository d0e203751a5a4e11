package indextest

import (
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lineage-audit/lineage/query/index"
)

// testDurability: what Apply returned from survives Close and reopening, position included, so a
// restarted indexer resumes where it stopped instead of re-reading the whole log.
func (s suite) testDurability(t *testing.T) {
	dir := t.TempDir()
	entries := GenerateRecords(7, 300)
	batches := Batches(entries, 100)

	st := s.open(t, dir)
	apply(t, st, batches[0])
	apply(t, st, batches[1])
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	st = s.open(t, dir)
	wantPosition(t, st, batches[1].To)
	checkAll(t, st, entries[:200])
	apply(t, st, batches[2])
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	st = s.openAt(t, dir)
	wantPosition(t, st, batches[2].To)
	checkAll(t, st, entries)
}

// checkAll fails the test unless every entry can be fetched back and every user's actions in
// entries match the brute-force answer.
func checkAll(t *testing.T, st index.Store, entries []index.Entry) {
	t.Helper()
	ctx := t.Context()
	users := map[[2]string]bool{}
	for _, e := range entries {
		row, err := st.Get(ctx, e.Record.Tenant, e.Record.ID)
		if err != nil {
			t.Fatalf("Get(%s, %s): %v", e.Record.Tenant, e.Record.ID, err)
		}
		checkRow(t, row, e)
		users[[2]string{e.Record.Tenant, e.Record.User.ID}] = true
	}
	for u := range users {
		q := index.UserQuery{Tenant: u[0], UserID: u[1], Limit: len(entries) + 1}
		rows, err := st.UserActions(ctx, q)
		if err != nil {
			t.Fatalf("UserActions(%s, %s): %v", u[0], u[1], err)
		}
		sameKeys(t, "UserActions("+u[0]+", "+u[1]+")", rowKeys(rows), entryKeys(bruteUserActions(entries, q)))
	}
}

// testConcurrentReads: queries keep working while the indexer applies batches, and each sees a
// consistent state: everything below a position it has read is visible, and nothing appears that
// was not applied. The query API and the indexer share the store in production.
func (s suite) testConcurrentReads(t *testing.T) {
	st := s.fresh(t)
	ctx := t.Context()
	entries := GenerateRecords(11, 3000)
	batches := Batches(entries, 100)
	heavy := heaviestUser(entries)

	var writing atomic.Bool
	writing.Store(true)
	var wg sync.WaitGroup
	var reads atomic.Int64
	for r := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 1))
			var last uint64
			for writing.Load() {
				pos, err := st.Position(ctx)
				if err != nil {
					t.Errorf("Position during Apply: %v", err)
					return
				}
				if pos < last {
					t.Errorf("Position went back from %d to %d", last, pos)
					return
				}
				last = pos
				if pos == 0 {
					continue
				}
				// Every entry below the position just read must be visible.
				e := entries[rng.IntN(int(pos))]
				if _, err := st.Lookup(ctx, e.Record.Tenant, e.Record.ID); err != nil {
					t.Errorf("Lookup(%s, %s) of index %d below position %d: %v",
						e.Record.Tenant, e.Record.ID, e.Index, pos, err)
					return
				}
				q := index.UserQuery{Tenant: heavy[0], UserID: heavy[1], Limit: len(entries)}
				rows, err := st.UserActions(ctx, q)
				if err != nil {
					t.Errorf("UserActions during Apply: %v", err)
					return
				}
				// The answer is a snapshot at some position at or after pos.
				after, err := st.Position(ctx)
				if err != nil {
					t.Errorf("Position during Apply: %v", err)
					return
				}
				if !snapshotBetween(rows, entries, q, pos, after) {
					t.Errorf("UserActions during Apply is not the answer at any position in [%d, %d]: %v",
						pos, after, rowKeys(rows))
					return
				}
				reads.Add(1)
			}
		})
	}
	for _, b := range batches {
		if err := st.Apply(ctx, b); err != nil {
			t.Errorf("Apply [%d,%d) during reads: %v", b.From, b.To, err)
			break
		}
	}
	writing.Store(false)
	wg.Wait()
	t.Logf("%d consistent reads while applying %d batches", reads.Load(), len(batches))
	checkAll(t, st, entries)
}

// snapshotBetween reports whether rows is the answer to q over the first p entries of the log for
// some p in [lo, hi] (the entries' indexes are 0..n-1, so the first p entries are entries[:p]).
// Answers only grow with p, so the one candidate is the smallest p at or above lo that covers the
// highest index in rows.
func snapshotBetween(rows []index.Row, entries []index.Entry, q index.UserQuery, lo, hi uint64) bool {
	p := lo
	for _, r := range rows {
		p = max(p, r.Index+1)
	}
	if p > hi || hi > uint64(len(entries)) {
		return false
	}
	return slices.Equal(rowKeys(rows), entryKeys(bruteUserActions(entries[:p], q)))
}

// heaviestUser returns the (tenant, user) with the most entries, the first to reach that count
// on ties.
func heaviestUser(entries []index.Entry) [2]string {
	counts := map[[2]string]int{}
	var best [2]string
	for _, e := range entries {
		k := [2]string{e.Record.Tenant, e.Record.User.ID}
		counts[k]++
		if counts[k] > counts[best] {
			best = k
		}
	}
	return best
}
