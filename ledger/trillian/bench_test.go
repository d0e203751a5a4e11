package trillian_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/ledgertest"
	"github.com/lineage-audit/lineage/ledger/tessera"
	"github.com/lineage-audit/lineage/ledger/trillian"
)

// BenchmarkAppend measures durable appends the way the ingester makes them: 1,000 adds, then
// wait for all their futures, repeated. records/s counts entries durably stored (futures
// resolved); checkpoint-lag-ms is how long after the last add a signed checkpoint covered it.
// The Tessera POSIX driver runs the same loop beside it, so one run gives the side-by-side
// figures (both with their DefaultOptions, ~700-byte entries as in docs/ARCHITECTURE.md, "Performance principles").
func BenchmarkAppend(b *testing.B) {
	e := newEnv(b)
	b.Run("driver=trillian", func(b *testing.B) {
		o := trillian.DefaultOptions(e.tr.Addr, e.tr.CreateTree(b), b.TempDir(), e.signer, e.v)
		l, err := trillian.Open(context.Background(), o)
		if err != nil {
			b.Fatal(err)
		}
		benchAppend(b, l, e)
	})
	b.Run("driver=tessera", func(b *testing.B) {
		l, err := tessera.Open(context.Background(), tessera.DefaultOptions(b.TempDir(), e.signer, e.v))
		if err != nil {
			b.Fatal(err)
		}
		benchAppend(b, l, e)
	})
}

func benchAppend(b *testing.B, l ledger.Log, e *env) {
	const batch = 1000
	entry := func(i int) []byte { return []byte(fmt.Sprintf(`{"record":%d,"pad":"%0660d"}`, i, i)) }
	ctx := context.Background()
	es := make([][]byte, 0, batch)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i += batch {
		es = es[:0]
		for j := i; j < min(i+batch, b.N); j++ {
			es = append(es, entry(j))
		}
		if _, err := ledgertest.AddAll(ctx, l, es); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
	n, err := l.Size(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := ledgertest.WaitCheckpoint(ctx, l, e.v, n); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(time.Since(start)-elapsed)/float64(time.Millisecond), "checkpoint-lag-ms")
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := l.Close(cctx); err != nil {
		b.Fatal(err)
	}
}
