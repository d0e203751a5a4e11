package query_test

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
	recs := demo.Generate(demo.Options{}, 2000)
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
	now := time.Now()
	v1 := make([][]byte, len(recs))
	v2 := make([][]byte, len(recs))
	for i := range recs {
		c, err := recs[i].Canonical()
		if err != nil {
			b.Fatal(err)
		}
		v1[i] = lineage.NewEnvelope(c, now, false)
		red, fields, err := seal.Seal(ctx, keys, recs[i].Tenant, recs[i].ID, c, paths)
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
			b.ResetTimer()
			cpu0 := cpu(b)
			for i := 0; i < b.N; i++ {
				if _, err := dec.Decode(ctx, uint64(i), entries[i%len(entries)]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpu(b)-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/entry")
		})
	}
}

func cpu(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
