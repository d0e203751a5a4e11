package findings_test

import (
	"testing"
	"time"

	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/query/findings"
)

// BenchmarkEngine is the findings engine's cost per record on the ingest path: demo traffic
// with its failure modes, Observe per record, EndBatch and TakeDirty per 4,096 (the indexer's
// batch). The store's writes are measured apart (the SQLite driver's BenchmarkApplyFindings).
func BenchmarkEngine(b *testing.B) {
	recs := demo.Generate(demo.Options{Seed: 1, FailureModes: true}, 50_000)
	times := make([]time.Time, len(recs))
	for i := range recs {
		t, err := recs[i].ParsedTime()
		if err != nil {
			b.Fatal(err)
		}
		times[i] = t
	}
	cfg, err := findings.ParseConfig(demo.FindingsConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var e *findings.Engine
	var occ []findings.Occurrence
	for i := 0; i < b.N; i++ {
		j := i % len(recs)
		if j == 0 {
			e = findings.NewEngine(cfg)
		}
		occ = e.Observe(uint64(i), &recs[j], times[j], occ[:0])
		if (i+1)%4096 == 0 {
			occ = e.EndBatch(occ)
			if _, err := e.TakeDirty(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
