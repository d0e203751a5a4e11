package ingest

import (
	"context"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/sealbench"
	"github.com/lineage-audit/lineage/ledger/seal"
)

// BenchmarkIngestSealing measures what erasure adds to the ingester's per-record work, in
// process CPU time per record (user + system, so the key store's SQLite work counts), on the
// demo stream with /user/id and /action/target sealed (docs/ERASURE.md, "Cost"):
//
//	go test -run XXX -bench IngestSealing -benchtime 4000x ./ingest
//
// "validate" is the work both modes share (the strict decode and the canonical form);
// "entry-off" builds the v1 entry (erasure off), "entry-on" seals the record with the real
// SQLite key store (with its key cache, the default) and builds the v2 entry (erasure on),
// "entry-on-nocache" the same with every key read from the file. The cost of erasure per
// record is entry-on minus entry-off.
func BenchmarkIngestSealing(b *testing.B) {
	ctx := context.Background()
	set := sealbench.New(b, 2000)
	recs, canon, raw := set.Records, set.Canonical, set.Canonical
	s := &Sealer{Keys: set.Keys, Paths: func(string) *seal.Paths { return set.Paths }}
	for i := range recs { // the subjects' keys exist: the steady state of a running tenant
		if _, _, err := s.seal(ctx, recs[i].Tenant, recs[i].ID, canon[i]); err != nil {
			b.Fatal(err)
		}
	}
	now := time.Now()
	run := func(b *testing.B, f func(i int)) {
		sealbench.RunCPU(b, "record", func(i int) { f(i % len(recs)) })
	}
	b.Run("validate", func(b *testing.B) {
		run(b, func(i int) {
			r, err := lineage.DecodeRecord(raw[i])
			if err != nil {
				b.Fatal(err)
			}
			if _, err := r.Canonical(); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("entry-off", func(b *testing.B) {
		run(b, func(i int) { _ = lineage.NewEnvelope(canon[i], now, false) })
	})
	for _, v := range []struct {
		name string
		s    *Sealer
	}{{"entry-on", s}, {"entry-on-nocache", &Sealer{Keys: set.NoCache, Paths: s.Paths}}} {
		b.Run(v.name, func(b *testing.B) {
			run(b, func(i int) {
				red, fields, err := v.s.seal(ctx, recs[i].Tenant, recs[i].ID, canon[i])
				if err != nil {
					b.Fatal(err)
				}
				if _, err := seal.NewEnvelopeV2(red, fields, now, false); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}
