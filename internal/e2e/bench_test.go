package e2e

import (
	"context"
	"fmt"
	"testing"

	"github.com/lineage-audit/lineage/internal/loadgen"
	"github.com/lineage-audit/lineage/internal/testenv"
)

// BenchmarkEndToEnd runs the same ingest load through lineaged on each ledger driver (and on
// the ClickHouse index), side by side: LINEAGE_BENCH_N records as fast as possible (throughput), then N/5 records at a steady
// LINEAGE_BENCH_RATE records/s (publish→queryable latency below capacity). Run it with
// -benchtime=1x (`make bench` does).
func BenchmarkEndToEnd(b *testing.B) {
	n := envInt("LINEAGE_BENCH_N", 20000)
	rate := envInt("LINEAGE_BENCH_RATE", 1000)
	drivers := []struct {
		name  string
		flags func(b *testing.B) []string
	}{
		{"ledger=tessera", func(*testing.B) []string { return nil }},
		{"ledger=trillian", func(b *testing.B) []string {
			tr := testenv.StartTrillian(b)
			return []string{"--ledger", "trillian", "--trillian-addr", tr.Addr, "--trillian-tree-id", fmt.Sprint(tr.CreateTree(b))}
		}},
		// The same load with the ClickHouse index (Tessera ledger): ingest throughput per index.
		{"ledger=tessera,index=clickhouse", func(b *testing.B) []string {
			ch := testenv.StartClickHouse(b)
			return []string{"--index", "clickhouse", "--clickhouse-dsn", "clickhouse://" + ch.Addr + "/" + ch.DatabaseName()}
		}},
	}
	throughput := map[string]float64{}
	for _, drv := range drivers {
		b.Run(drv.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				natsAddr, httpAddr := freeAddr(b), freeAddr(b)
				d := startDaemon(b, b.TempDir(), natsAddr, httpAddr, append(drv.flags(b), "--log-level", "warn")...)
				o := loadgen.Options{NATSURL: "nats://" + natsAddr, API: d.url(""), N: n, SampleEvery: 10, Seed: 42}
				max, err := loadgen.Run(context.Background(), o)
				if err != nil {
					b.Fatal(err)
				}
				o.N, o.Rate, o.IDPrefix = n/5, rate, "steady-"
				steady, err := loadgen.Run(context.Background(), o)
				if err != nil {
					b.Fatal(err)
				}
				d.stop()
				b.Logf("%s max load: %s", drv.name, max)
				b.Logf("%s at %d/s:  %s", drv.name, rate, steady)
				throughput[drv.name] = max.Throughput()
				b.ReportMetric(max.Throughput(), "records/s")
				b.ReportMetric(float64(steady.P50.Milliseconds()), "p50-ms@rate")
				b.ReportMetric(float64(steady.P99.Milliseconds()), "p99-ms@rate")
			}
		})
	}
	// The ratio of the same run's throughputs is the figure the machine's load moves least.
	if tes, tri := throughput["ledger=tessera"], throughput["ledger=trillian"]; tes > 0 && tri > 0 {
		b.Logf("Tessera/Trillian throughput ratio, same run: %.1f× (%.0f / %.0f records/s)", tes/tri, tes, tri)
		fmt.Printf("Tessera/Trillian throughput ratio, same run: %.1f× (%.0f / %.0f records/s)\n", tes/tri, tes, tri)
	}
}
