package query_test

import (
	"context"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/sealbench"
	"github.com/lineage-audit/lineage/ledger/seal"
	"github.com/lineage-audit/lineage/query"
)

// BenchmarkDecodeSealed measures what erasure adds to reading the log (the indexer, the
// findings worker, rebuild-index), in process CPU time per entry, on the demo stream with
// /user/id and /action/target sealed: "off" decodes v1 entries, "on" decodes v2 entries and
// opens their sealed fields with the SQLite key store.
//
//	go test -run XXX -bench DecodeSealed -benchtime 4000x ./query
func BenchmarkDecodeSealed(b *testing.B) {
	ctx := context.Background()
	set := sealbench.New(b, 2000)
	recs, keys := set.Records, set.Keys
	now := time.Now()
	v1 := make([][]byte, len(recs))
	v2 := make([][]byte, len(recs))
	for i, c := range set.Canonical {
		v1[i] = lineage.NewEnvelope(c, now, false)
		red, fields, err := seal.Seal(ctx, keys, recs[i].Tenant, recs[i].ID, c, set.Paths)
		if err != nil {
			b.Fatal(err)
		}
		if v2[i], err = seal.NewEnvelopeV2(red, fields, now, false); err != nil {
			b.Fatal(err)
		}
	}
	dec := query.Decoder{Keys: keys}
	for name, entries := range map[string][][]byte{"off": v1, "on": v2} {
		b.Run(name, func(b *testing.B) {
			sealbench.RunCPU(b, "entry", func(i int) {
				if _, err := dec.Decode(ctx, uint64(i), entries[i%len(entries)]); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}
