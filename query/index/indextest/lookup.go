package indextest

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/query/index"
)

// testLookupFindID: record ids are unique per tenant only. Lookup is scoped to one tenant (it
// backs ingest's id → log index deduplication, which must not see another tenant's records);
// FindID searches all tenants (the API then filters by the caller's tenants).
func (s suite) testLookupFindID(t *testing.T) {
	st := s.fresh(t)
	ctx := t.Context()
	acme1 := entry(0, minimal("acme", "rec-1", "alice", t0))
	globex1 := entry(1, full("globex", "rec-1", "alice", t0))
	acme2 := entry(2, minimal("acme", "rec-2", "bob", t0))
	applyAll(t, st, 0, acme1, globex1, acme2)

	for _, e := range []index.Entry{acme1, globex1, acme2} {
		ref, err := st.Lookup(ctx, e.Record.Tenant, e.Record.ID)
		if err != nil {
			t.Fatalf("Lookup(%s, %s): %v", e.Record.Tenant, e.Record.ID, err)
		}
		want := index.Ref{Tenant: e.Record.Tenant, ID: e.Record.ID, Index: e.Index, RecordHash: e.RecordHash}
		if ref != want {
			t.Errorf("Lookup(%s, %s) = %+v, want %+v", e.Record.Tenant, e.Record.ID, ref, want)
		}
	}
	if _, err := st.Lookup(ctx, "globex", "rec-2"); !errors.Is(err, index.ErrNotFound) {
		t.Errorf("Lookup(globex, rec-2) of an acme-only id: err = %v, want ErrNotFound", err)
	}

	refs, err := st.FindID(ctx, "rec-1")
	if err != nil {
		t.Fatalf("FindID(rec-1): %v", err)
	}
	// The interface does not promise an order; compare by tenant.
	slices.SortFunc(refs, func(a, b index.Ref) int { return strings.Compare(a.Tenant, b.Tenant) })
	want := []index.Ref{
		{Tenant: "acme", ID: "rec-1", Index: 0, RecordHash: acme1.RecordHash},
		{Tenant: "globex", ID: "rec-1", Index: 1, RecordHash: globex1.RecordHash},
	}
	if !slices.Equal(refs, want) {
		t.Errorf("FindID(rec-1) = %+v, want %+v", refs, want)
	}
	refs, err = st.FindID(ctx, "rec-2")
	if err != nil || len(refs) != 1 || refs[0].Tenant != "acme" || refs[0].Index != 2 {
		t.Errorf("FindID(rec-2) = %+v, %v; want the acme record at index 2", refs, err)
	}
}

// testNotFound: every lookup of something absent returns ErrNotFound, which the API maps to 404
// and ingest's deduplication to "new record"; an empty tenant or id is just another absent key.
func (s suite) testNotFound(t *testing.T) {
	st := s.fresh(t)
	ctx := t.Context()
	applyAll(t, st, 0, entry(0, minimal("acme", "rec-1", "alice", t0)))

	for _, k := range [][2]string{{"acme", "nope"}, {"globex", "rec-1"}, {"", "rec-1"}, {"acme", ""}, {"ACME", "rec-1"}} {
		if _, err := st.Lookup(ctx, k[0], k[1]); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("Lookup(%q, %q): err = %v, want ErrNotFound", k[0], k[1], err)
		}
		if _, err := st.Get(ctx, k[0], k[1]); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("Get(%q, %q): err = %v, want ErrNotFound", k[0], k[1], err)
		}
	}
	for _, id := range []string{"nope", "", "REC-1"} {
		if refs, err := st.FindID(ctx, id); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("FindID(%q) = %+v, %v; want ErrNotFound", id, refs, err)
		}
	}
}

// testGetRoundTrip: Get returns the record exactly as applied (every optional field, raw JSON
// objects, nanosecond times) together with the canonical bytes and hash an inclusion proof covers.
func (s suite) testGetRoundTrip(t *testing.T) {
	st := s.fresh(t)
	ctx := t.Context()
	entries := []index.Entry{
		entry(0, full("acme", "full", "alice", t0.Add(123456789*time.Nanosecond))),
		entry(1, minimal("acme", "minimal", "alice", t0)),
		entry(2, withTime(full("globex", "full", "alice", t0), "2026-03-02T10:00:00.5+01:00")),
		entry(3, minimal("acme", "ünïcødé ✓ \"quoted\" <tag> & 'x'", "bøb", t0)),
	}
	applyAll(t, st, 0, entries...)
	for _, e := range entries {
		row, err := st.Get(ctx, e.Record.Tenant, e.Record.ID)
		if err != nil {
			t.Fatalf("Get(%s, %s): %v", e.Record.Tenant, e.Record.ID, err)
		}
		checkRow(t, row, e)
	}
}

// withTime sets r.Time verbatim, for times that are not written in UTC.
func withTime(r lineage.Record, rfc3339 string) lineage.Record {
	r.Time = rfc3339
	return r
}

// testLookupMany: a store that implements index.BatchLookup answers many keys at once exactly as
// Lookup answers each: found keys map to their Ref, absent ones (ids of another tenant, a tenant
// differing by case, records not applied yet, empty strings) are left out, and repeated keys
// are harmless.
func (s suite) testLookupMany(t *testing.T) {
	st := s.fresh(t)
	bl, ok := st.(index.BatchLookup)
	if !ok {
		t.Skip("the store does not implement index.BatchLookup")
	}
	ctx := t.Context()
	entries := searchFixture()
	applied := entries[:8]
	applyAll(t, st, 0, applied...)
	var keys []index.Key
	for _, e := range entries {
		k := index.Key{Tenant: e.Record.Tenant, ID: e.Record.ID}
		keys = append(keys, k, k, index.Key{Tenant: strings.ToUpper(k.Tenant), ID: k.ID})
	}
	keys = append(keys, index.Key{}, index.Key{Tenant: "acme"}, index.Key{ID: "plan-1"},
		index.Key{Tenant: "acme", ID: "plan-1' OR '1'='1"})
	got, err := bl.LookupMany(ctx, keys)
	if err != nil {
		t.Fatalf("LookupMany: %v", err)
	}
	checkLookupMany(t, got, applied)
	for k, ref := range got {
		if want, err := st.Lookup(ctx, k.Tenant, k.ID); err != nil || want != ref {
			t.Errorf("LookupMany(%v) = %+v, Lookup = %+v, %v", k, ref, want, err)
		}
	}
	for _, keys := range [][]index.Key{nil, {}, {{Tenant: "acme", ID: "nope"}}} {
		if got, err := bl.LookupMany(ctx, keys); err != nil || len(got) != 0 {
			t.Errorf("LookupMany(%v) = %v, %v; want nothing", keys, got, err)
		}
	}
}
