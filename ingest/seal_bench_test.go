package ingest

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/ledger/seal"
	"github.com/lineage-audit/lineage/ledger/seal/sqlitekeys"
)

// BenchmarkIngestSealing measures what erasure adds to the ingester's per-record work, in
// process CPU time per record (user + system, so the key store's SQLite work counts), on the
// demo stream with /user/id and /action/target sealed (docs/ERASURE.md, "Cost"):
//
//	go test -run XXX -bench IngestSealing -benchtime 4000x ./ingest
//
// "validate" is the work both modes share (the strict decode and the canonical form);
// "entry-off" builds the v1 entry (erasure off), "entry-on" seals the record with the real
// SQLite key store and builds the v2 entry (erasure on). The cost of erasure per record is
// entry-on minus entry-off.
func BenchmarkIngestSealing(b *testing.B) {
	ctx := context.Background()
	recs := demo.Generate(demo.Options{}, 2000)
	raw := make([][]byte, len(recs))
	canon := make([][]byte, len(recs))
	for i := range recs {
		c, err := recs[i].Canonical()
		if err != nil {
			b.Fatal(err)
		}
		raw[i], canon[i] = c, c
	}
	mk, _, err := seal.GenerateMasterKey()
	if err != nil {
		b.Fatal(err)
	}
	keys, err := sqlitekeys.OpenSQLite(ctx, filepath.Join(b.TempDir(), "keys.sqlite"), mk, sqlitekeys.SQLiteOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer keys.Close()
	paths, err := seal.NewPaths(seal.Path{Pointer: "/action/target", Subject: "/user/id"})
	if err != nil {
		b.Fatal(err)
	}
	s := &Sealer{Keys: keys, Paths: func(string) *seal.Paths { return paths }}
	for i := range recs { // the subjects' keys exist: the steady state of a running tenant
		if _, _, err := s.seal(ctx, recs[i].Tenant, recs[i].ID, canon[i]); err != nil {
			b.Fatal(err)
		}
	}
	now := time.Now()
	run := func(b *testing.B, f func(i int)) {
		b.ResetTimer()
		cpu0 := processCPU(b)
		for i := 0; i < b.N; i++ {
			f(i % len(recs))
		}
		b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/record")
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
	b.Run("entry-on", func(b *testing.B) {
		run(b, func(i int) {
			red, fields, err := s.seal(ctx, recs[i].Tenant, recs[i].ID, canon[i])
			if err != nil {
				b.Fatal(err)
			}
			if _, err := seal.NewEnvelopeV2(red, fields, now, false); err != nil {
				b.Fatal(err)
			}
		})
	})
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
