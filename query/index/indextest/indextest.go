// Package indextest is the conformance suite every index.Store driver runs, so that the SQLite
// index of a single machine and the ClickHouse index of a cluster give the same answers to the
// query API and can replace each other (or be rebuilt from the log) without anyone noticing.
//
// A driver's test calls Run with a function that opens its store; benchmarks use GenerateRecords
// and Batches for realistic data, and a driver's own tests (crash recovery, cross-driver
// comparisons) can check its lineage queries with ReferenceRecords, ReferencePolicyStats and
// SearchQueries.
package indextest

import (
	"testing"

	"github.com/lineage-audit/lineage/query/index"
)

// Run runs the conformance suite against the driver that open opens.
//
// open must return a store kept in dir, an empty directory the suite made with t.TempDir, and
// calling it again with the same dir after Close must return a store holding everything applied
// before (the durability subtest does that). A driver without local files (ClickHouse) can derive
// a database name from dir. open reports its own failures with t.Fatal; the suite closes every
// store it opens.
//
// Beyond what the index.Store comments say, the suite expects: the UserQuery window is half-open,
// From <= time < To, compared as instants with nanosecond precision, and a zero From or To leaves
// that side open (an empty or inverted window returns no rows, not an error); Limit keeps the
// first rows in (time, log index) order and the default Limit (0) is at least a few rows;
// FindID returns ErrNotFound when no tenant has the id, like Lookup and Get; tenant, user and
// record ids compare exactly (case-sensitive, no pattern matching).
//
// For index.Searcher (every Store), Records must equal ReferenceRecords and PolicyStats
// ReferencePolicyStats: the same window rules, filters that match exactly and combine with AND,
// (time, log index) order, a cursor that continues strictly after its row (so paging
// reproduces the unpaged answer), empty slices and maps rather than nil, and an error unless a
// query names exactly one subject. LookupMany is checked when the store implements
// index.BatchLookup, and skipped otherwise.
func Run(t *testing.T, open func(t *testing.T, dir string) index.Store) {
	s := suite{open: open}
	t.Run("EmptyPosition", s.testEmptyPosition)
	t.Run("ApplyPosition", s.testApplyPosition)
	t.Run("WrongFrom", s.testWrongFrom)
	t.Run("NonRecordEntries", s.testNonRecordEntries)
	t.Run("LookupFindID", s.testLookupFindID)
	t.Run("NotFound", s.testNotFound)
	t.Run("GetRoundTrip", s.testGetRoundTrip)
	t.Run("UserActionsWindow", s.testUserActionsWindow)
	t.Run("UserActionsLimit", s.testUserActionsLimit)
	t.Run("TenantIsolation", s.testTenantIsolation)
	t.Run("Durability", s.testDurability)
	t.Run("ConcurrentReads", s.testConcurrentReads)
	t.Run("LookupMany", s.testLookupMany)
	t.Run("RecordsSubjects", s.testRecordsSubjects)
	t.Run("RecordsFilters", s.testRecordsFilters)
	t.Run("RecordsErrors", s.testRecordsErrors)
	t.Run("RecordsPaging", s.testRecordsPaging)
	t.Run("PolicyStats", s.testPolicyStats)
	t.Run("Generated", s.testGenerated)
}

// suite carries the driver's open function to the subtests.
type suite struct {
	open func(t *testing.T, dir string) index.Store
}

// fresh opens a store in a new directory and closes it when the test ends.
func (s suite) fresh(t *testing.T) index.Store {
	t.Helper()
	return s.openAt(t, t.TempDir())
}

// openAt opens the store in dir and closes it when the test ends.
func (s suite) openAt(t *testing.T, dir string) index.Store {
	t.Helper()
	st := s.open(t, dir)
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return st
}

// apply applies b and fails the test on error.
func apply(t *testing.T, st index.Store, b index.Batch) {
	t.Helper()
	if err := st.Apply(t.Context(), b); err != nil {
		t.Fatalf("Apply [%d,%d) with %d entries: %v", b.From, b.To, len(b.Entries), err)
	}
}

// applyAll applies entries as one batch [from, last index + 1).
func applyAll(t *testing.T, st index.Store, from uint64, entries ...index.Entry) {
	t.Helper()
	apply(t, st, index.Batch{From: from, To: entries[len(entries)-1].Index + 1, Entries: entries})
}

// wantPosition fails the test unless the store's position is want.
func wantPosition(t *testing.T, st index.Store, want uint64) {
	t.Helper()
	got, err := st.Position(t.Context())
	if err != nil {
		t.Fatalf("Position: %v", err)
	}
	if got != want {
		t.Fatalf("Position = %d, want %d", got, want)
	}
}
