package indextest

import (
	"errors"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/query/index"
)

// testEmptyPosition: a new store has applied nothing, so the indexer starts at log index 0.
func (s suite) testEmptyPosition(t *testing.T) {
	wantPosition(t, s.fresh(t), 0)
}

// testApplyPosition: each batch moves the position to its To, including an empty batch.
func (s suite) testApplyPosition(t *testing.T) {
	st := s.fresh(t)
	applyAll(t, st, 0,
		entry(0, minimal("acme", "r0", "alice", t0)),
		entry(1, minimal("acme", "r1", "alice", t0.Add(time.Second))),
		entry(2, minimal("acme", "r2", "bob", t0.Add(2*time.Second))))
	wantPosition(t, st, 3)
	applyAll(t, st, 3,
		entry(3, minimal("acme", "r3", "alice", t0.Add(3*time.Second))),
		entry(4, minimal("globex", "r3", "alice", t0.Add(4*time.Second))))
	wantPosition(t, st, 5)
	apply(t, st, index.Batch{From: 5, To: 5})
	wantPosition(t, st, 5)
}

// testWrongFrom: a batch that does not start at the position (a replay, or one that would leave
// a gap) fails with ErrPosition and changes nothing, so an indexer confused about where it is
// cannot corrupt the projection.
func (s suite) testWrongFrom(t *testing.T) {
	st := s.fresh(t)
	ctx := t.Context()

	gap := index.Batch{From: 1, To: 2, Entries: []index.Entry{entry(1, minimal("acme", "gap", "alice", t0))}}
	if err := st.Apply(ctx, gap); !errors.Is(err, index.ErrPosition) {
		t.Fatalf("Apply [1,2) on an empty store: err = %v, want ErrPosition", err)
	}
	wantPosition(t, st, 0)

	applyAll(t, st, 0,
		entry(0, minimal("acme", "r0", "alice", t0)),
		entry(1, minimal("acme", "r1", "alice", t0.Add(time.Second))))

	bad := []index.Batch{
		{From: 0, To: 3, Entries: []index.Entry{ // replays applied entries, plus a new one
			entry(0, minimal("acme", "replay0", "alice", t0)),
			entry(1, minimal("acme", "replay1", "alice", t0)),
			entry(2, minimal("acme", "replay2", "alice", t0)),
		}},
		{From: 1, To: 3, Entries: []index.Entry{entry(2, minimal("acme", "overlap", "alice", t0))}},
		{From: 3, To: 4, Entries: []index.Entry{entry(3, minimal("acme", "ahead", "alice", t0))}},
		{From: 3, To: 3},
	}
	for _, b := range bad {
		if err := st.Apply(ctx, b); !errors.Is(err, index.ErrPosition) {
			t.Errorf("Apply [%d,%d) at position 2: err = %v, want ErrPosition", b.From, b.To, err)
		}
	}
	wantPosition(t, st, 2)
	for _, id := range []string{"replay0", "replay1", "replay2", "overlap", "ahead"} {
		if _, err := st.Lookup(ctx, "acme", id); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("Lookup(acme, %s) after a rejected batch: err = %v, want ErrNotFound", id, err)
		}
	}
	rows, err := st.UserActions(ctx, index.UserQuery{Tenant: "acme", UserID: "alice"})
	if err != nil {
		t.Fatalf("UserActions: %v", err)
	}
	sameKeys(t, "UserActions after rejected batches", rowKeys(rows), []string{"acme/r0@0", "acme/r1@1"})

	applyAll(t, st, 2, entry(2, minimal("acme", "r2", "alice", t0)))
	wantPosition(t, st, 3)
}

// testNonRecordEntries: log entries that are not decision records still count, so a batch may
// hold fewer entries than its range (even none) and still moves the position to its To.
func (s suite) testNonRecordEntries(t *testing.T) {
	st := s.fresh(t)
	ctx := t.Context()
	e2 := entry(2, minimal("acme", "r2", "alice", t0))
	e7 := entry(7, minimal("acme", "r7", "alice", t0.Add(time.Minute)))
	apply(t, st, index.Batch{From: 0, To: 10, Entries: []index.Entry{e2, e7}})
	wantPosition(t, st, 10)
	apply(t, st, index.Batch{From: 10, To: 12})
	wantPosition(t, st, 12)
	e12 := entry(12, minimal("acme", "r12", "alice", t0.Add(2*time.Minute)))
	apply(t, st, index.Batch{From: 12, To: 13, Entries: []index.Entry{e12}})
	wantPosition(t, st, 13)

	for _, e := range []index.Entry{e2, e7, e12} {
		ref, err := st.Lookup(ctx, "acme", e.Record.ID)
		if err != nil {
			t.Fatalf("Lookup(acme, %s): %v", e.Record.ID, err)
		}
		if ref.Index != e.Index {
			t.Errorf("Lookup(acme, %s).Index = %d, want %d", e.Record.ID, ref.Index, e.Index)
		}
	}
}
