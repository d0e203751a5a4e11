package query_test

import (
	"context"
	"testing"

	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/ledger/ledgertest"
	"github.com/lineage-audit/lineage/query"
	"github.com/lineage-audit/lineage/query/index"
)

// The indexer applies offered entries from its position on as far as they go without a gap, and
// reads a batch from the log when the entry at its position was not offered (forgetting the
// offers in that batch). Offered entries here carry a marker hash so the test can tell which
// source each row came from.
func TestIndexerTakesOfferedEntries(t *testing.T) {
	ctx := context.Background()
	lg, store, v, _, _ := testLog(t, "lineage.test/indexer")
	recs := demo.Generate(demo.Options{Seed: 9, Tenants: 2}, 30)
	raw := envelopes(t, recs)
	if _, err := ledgertest.AddAll(ctx, lg, raw); err != nil {
		t.Fatal(err)
	}
	if _, err := ledgertest.WaitCheckpoint(ctx, lg, v, uint64(len(recs))); err != nil {
		t.Fatal(err)
	}
	ix, err := query.NewIndexer(ctx, lg, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ix.BatchSize = 10
	marker := [32]byte{0xAB}
	offer := func(from, to uint64, skip uint64) {
		var es []index.Entry
		for i := from; i < to; i++ {
			if i == skip {
				continue
			}
			e, err := query.DecodeEntry(i, raw[i])
			if err != nil {
				t.Fatal(err)
			}
			e.RecordHash = marker
			es = append(es, e)
		}
		ix.Offer(es)
	}
	offer(0, 10, 99)  // the whole first batch
	offer(10, 20, 15) // the second batch but entry 15: 10-14 from the offer, then 15-24 from the log
	offer(27, 28, 99) // in the batch read from the log: forgotten, 27 comes from the log too
	for ix.Position() < uint64(len(recs)) {
		if _, err := ix.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range recs {
		ref, err := store.Lookup(ctx, r.Tenant, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if ref.Index != uint64(i) {
			t.Fatalf("record %d stored at index %d", i, ref.Index)
		}
		if fromOffer := ref.RecordHash == marker; fromOffer != (i < 15) {
			t.Errorf("entry %d: taken from the offer = %v, want %v", i, fromOffer, i < 15)
		}
	}
}
