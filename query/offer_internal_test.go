package query

import (
	"testing"

	"github.com/lineage-audit/lineage/query/index"
)

// The hand-off is bounded in bytes as well as entries (records near the 64 KiB limit would
// otherwise hold gigabytes), and never keeps an entry the indexer has already passed.
func TestOfferBounds(t *testing.T) {
	ix := &Indexer{position: newProgress(5)}
	ix.Offer([]index.Entry{{Index: 3}, {Index: 4}, {Index: 5}})
	if len(ix.offered) != 1 || ix.offered[5].Index != 5 {
		t.Fatalf("offers below the position were kept: %v", len(ix.offered))
	}
	big := make([]byte, 1<<20)
	var es []index.Entry
	for i := uint64(6); i < 106; i++ {
		es = append(es, index.Entry{Index: i, Canonical: big})
	}
	ix.Offer(es)
	want := 1 + (MaxOfferedBytes-offeredCost(index.Entry{Index: 5}))/offeredCost(es[0])
	if len(ix.offered) != want || ix.offeredBytes > MaxOfferedBytes {
		t.Fatalf("held %d entries, %d bytes; want %d entries, at most %d bytes", len(ix.offered), ix.offeredBytes, want, MaxOfferedBytes)
	}
	// The indexer read 5..19 from the log meanwhile: taking from 20 forgets everything below.
	got := ix.takeOffered(20, 4)
	if len(got) != 4 || got[0].Index != 20 {
		t.Fatalf("took %d entries", len(got))
	}
	for i := range ix.offered {
		if i < 24 {
			t.Fatalf("entry %d below the position is still held", i)
		}
	}
	sum := 0
	for _, e := range ix.offered {
		sum += offeredCost(e)
	}
	if sum != ix.offeredBytes {
		t.Fatalf("offeredBytes %d, held entries cost %d", ix.offeredBytes, sum)
	}
}
