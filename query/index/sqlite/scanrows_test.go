package sqlite

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/query/index"
	"github.com/lineage-audit/lineage/query/index/indextest"
)

// TestScanRowsDecodesInParallel: answers bigger than a decode chunk are decoded by several
// goroutines while SQLite steps; every row must come back decoded, in order, whatever the limit
// (below, at and above chunk boundaries).
func TestScanRowsDecodesInParallel(t *testing.T) {
	s := fresh(t)
	ctx := t.Context()
	const n = 3*decodeChunk + 17
	gen := indextest.GenerateRecords(7, n)
	entries := make([]index.Entry, n)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range entries {
		r := *gen[i].Record
		r.Tenant, r.ID = "acme", fmt.Sprintf("r%06d", i)
		r.User = lineage.Person{ID: "alice", Issuer: "https://login.acme.example"}
		r.Time = base.Add(time.Duration(i) * time.Second).Format(time.RFC3339)
		entries[i] = withRecord(t, uint64(i), r)
	}
	for _, b := range indextest.Batches(entries, 500) {
		if err := s.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	for _, limit := range []int{1, decodeChunk - 1, decodeChunk, decodeChunk + 1, 2 * decodeChunk, n - 1, n, n + 100} {
		recs, err := s.Records(ctx, index.Query{Tenant: "acme", UserID: "alice", Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		users, err := s.UserActions(ctx, index.UserQuery{Tenant: "acme", UserID: "alice", Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		for _, rows := range [][]index.Row{recs, users} {
			if len(rows) != min(limit, n) {
				t.Fatalf("limit %d: %d rows", limit, len(rows))
			}
			for i, row := range rows {
				e := entries[i]
				got, _ := json.Marshal(row.Record)
				want, _ := json.Marshal(e.Record)
				if row.Index != e.Index || row.RecordHash != e.RecordHash || !bytes.Equal(row.Canonical, e.Canonical) || !bytes.Equal(got, want) {
					t.Fatalf("limit %d: row %d is not entry %d as applied", limit, i, e.Index)
				}
			}
		}
	}
}
