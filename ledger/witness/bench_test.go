package witness

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/ledger/ledgertest"
)

// BenchmarkWitnessLatency measures what witnessing adds to a checkpoint with three local
// litewitness processes and a quorum of all three: one iteration appends an entry and waits
// until the witnessed log serves a checkpoint covering it. Reported:
//   - round-p50-ms / round-p99-ms: from the witnessing loop first seeing a new checkpoint of the
//     log to its cosignatures meeting the quorum (lineage_witness_latency_seconds);
//   - added-p50-ms / added-p99-ms: from the log's checkpoint covering the entry (seen by a 1 ms
//     poll) to the witnessed log serving one, which adds the loop's poll interval (50 ms here,
//     as lineaged uses) to the round.
//
// docs/WITNESSES.md quotes the figures of: go test -run '^$' -bench WitnessLatency -benchtime 100x ./ledger/witness
func BenchmarkWitnessLatency(b *testing.B) {
	k := newLogKey(b, "lineage.test/bench")
	inner := openTessera(b, b.TempDir(), k)
	ws := startWitnesses(b, 3, k)
	p := policyFor(b, ws, "all")
	w := newWitnessed(b, inner, k, p, ModeHold, "")
	var mu sync.Mutex
	var rounds []time.Duration
	w.observe = func(d time.Duration) {
		mu.Lock()
		rounds = append(rounds, d)
		mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	appendEntries(b, inner, "warm-up", 1)
	w.waitServed(b, 1, nil)
	mu.Lock()
	rounds = nil
	mu.Unlock()

	var added []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		idx, err := ledgertest.AddAll(ctx, inner, [][]byte{[]byte(fmt.Sprintf(`{"bench":%d,"t":%d}`, i, time.Now().UnixNano()))})
		if err != nil {
			b.Fatal(err)
		}
		want := idx[0] + 1
		var tInner time.Time
		deadline := time.Now().Add(waitLong)
		for {
			now := time.Now()
			if now.After(deadline) {
				b.Fatalf("checkpoint %d not served in %v", want, waitLong)
			}
			if tInner.IsZero() {
				if cp, err := inner.Checkpoint(ctx); err == nil && cp.Size >= want {
					tInner = now
				}
			}
			if cp, err := w.Checkpoint(ctx); err == nil && cp.Size >= want {
				if tInner.IsZero() {
					tInner = now
				}
				added = append(added, now.Sub(tInner))
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	ms := func(ds []time.Duration, q float64) float64 {
		if len(ds) == 0 {
			return 0
		}
		s := slices.Clone(ds)
		slices.Sort(s)
		i := int(q*float64(len(s))+0.5) - 1
		i = max(0, min(i, len(s)-1))
		return float64(s[i].Microseconds()) / 1000
	}
	b.ReportMetric(ms(rounds, 0.5), "round-p50-ms")
	b.ReportMetric(ms(rounds, 0.99), "round-p99-ms")
	b.ReportMetric(ms(added, 0.5), "added-p50-ms")
	b.ReportMetric(ms(added, 0.99), "added-p99-ms")
	b.ReportMetric(float64(len(rounds)), "checkpoints")
	for _, x := range p.Witnesses {
		for _, r := range []string{ResultOK, ResultConflict, ResultRefused, ResultUnreachable, ResultBadResponse} {
			if v := w.requests(x.Name, r); v > 0 {
				b.Logf("requests{%s,%s} = %v", x.Name, r, v)
			}
		}
	}
	slices.Sort(rounds)
	b.Logf("slowest rounds: %v", rounds[max(0, len(rounds)-5):])
	b.Logf("%d checkpoints witnessed; round p50 %.1f ms p99 %.1f ms; added p50 %.1f ms p99 %.1f ms",
		len(rounds), ms(rounds, 0.5), ms(rounds, 0.99), ms(added, 0.5), ms(added, 0.99))
}
