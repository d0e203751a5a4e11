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
// opens their sealed fields with the SQLite key store and its key cache (the default),
// "on-nocache" without the cache.
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
	for _, v := range []struct {
		name    string
		dec     query.Decoder
		entries [][]byte
	}{
		{"off", query.Decoder{Keys: keys}, v1},
		{"on", query.Decoder{Keys: keys}, v2},
		{"on-nocache", query.Decoder{Keys: set.NoCache}, v2},
	} {
		b.Run(v.name, func(b *testing.B) {
			sealbench.RunCPU(b, "entry", func(i int) {
				if _, err := v.dec.Decode(ctx, uint64(i), v.entries[i%len(v.entries)]); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}
