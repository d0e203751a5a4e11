// Package sealbench sets up the erasure benchmarks of the ingester (ingest/seal_bench_test.go)
// and of the log reader (query/sealed_bench_test.go): the demo stream, a SQLite key store and
// the sealed paths, and a loop that reports process CPU time per operation.
package sealbench

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/ledger/seal"
	"github.com/lineage-audit/lineage/ledger/seal/sqlitekeys"
)

// Setup is what both benchmarks start from.
type Setup struct {
	// Records are n demo records, and Canonical their canonical forms.
	Records   []lineage.Record
	Canonical [][]byte
	// Keys is a SQLite key store under b.TempDir with a fresh master key and the default key
	// cache, NoCache the same file opened without a cache; both closed when the benchmark ends.
	Keys, NoCache *sqlitekeys.SQLiteStore
	// Paths seals /user/id and /action/target (docs/ERASURE.md, "Cost").
	Paths *seal.Paths
}

// New returns the setup for n demo records.
func New(b *testing.B, n int) *Setup {
	b.Helper()
	s := &Setup{Records: demo.Generate(demo.Options{}, n)}
	s.Canonical = make([][]byte, len(s.Records))
	for i := range s.Records {
		c, err := s.Records[i].Canonical()
		if err != nil {
			b.Fatal(err)
		}
		s.Canonical[i] = c
	}
	mk, _, err := seal.GenerateMasterKey()
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "keys.sqlite")
	s.Keys, err = sqlitekeys.OpenSQLite(context.Background(), path, mk, sqlitekeys.SQLiteOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Keys.Close() })
	s.NoCache, err = sqlitekeys.OpenSQLite(context.Background(), path, mk, sqlitekeys.SQLiteOptions{CacheSize: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.NoCache.Close() })
	s.Paths, err = seal.NewPaths(seal.Path{Pointer: "/action/target", Subject: "/user/id"})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// RunCPU resets the timer, calls f(i) for i from 0 to b.N-1 and reports the process CPU time (user +
// system) per call as the metric "cpu-µs/<unit>".
func RunCPU(b *testing.B, unit string, f func(i int)) {
	b.ResetTimer()
	cpu0 := processCPU(b)
	for i := 0; i < b.N; i++ {
		f(i)
	}
	b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/"+unit)
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
