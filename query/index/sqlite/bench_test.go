package sqlite

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/query/index"
	"github.com/lineage-audit/lineage/query/index/indextest"
)

// benchRecords is the size of the index BenchmarkUserActions and BenchmarkLookup query. The
// default keeps the one-off build around ten seconds on a 2-core machine; for the production-sized
// figure (a build of one to two minutes) run
//
//	go test -run - -bench UserActions ./query/index/sqlite -args -bench-records=1000000
var benchRecords = flag.Int("bench-records", 200_000, "records in the index built for the query benchmarks")

// TestMain removes the query benchmarks' shared index after all tests and benchmarks ran.
func TestMain(m *testing.M) {
	code := m.Run()
	if benchDB.dir != "" {
		benchDB.store.Close()
		os.RemoveAll(benchDB.dir)
	}
	os.Exit(code)
}

// BenchmarkApply measures the indexer's write path: batches of generated records, each applied
// in one transaction, into an index that grows as the benchmark runs; b.N is in thousands of
// records. batch=1000 was the indexer's batch; batch=4096 is query.DefaultIndexBatch.
func BenchmarkApply(b *testing.B) {
	for _, size := range []int{1000, 4096} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := openTest(b, b.TempDir())
			defer s.Close()
			entries := indextest.GenerateRecords(1, b.N*1000)
			batches := indextest.Batches(entries, size)
			ctx := context.Background()
			b.ReportAllocs()
			cpu0 := processCPU(b)
			b.ResetTimer()
			for _, batch := range batches {
				if err := s.Apply(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			// Wall time is mostly I/O waits on a busy disk; CPU time is what batching saves.
			b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(len(entries)), "cpu-µs/record")
			b.ReportMetric(float64(len(entries))/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(dbBytes(b, s))/float64(len(entries)), "disk-B/record")
		})
	}
}

// processCPU is the user+system CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchDB is the index shared by the query benchmarks, built once per process because building
// it takes far longer than any one benchmark.
var benchDB struct {
	once    sync.Once
	dir     string
	store   *Store
	entries []index.Entry
	err     error
}

// sharedIndex returns the query benchmarks' index, building it on first use.
func sharedIndex(b *testing.B) (*Store, []index.Entry) {
	benchDB.once.Do(func() {
		start := time.Now()
		benchDB.dir, benchDB.err = os.MkdirTemp("", "lineage-sqlite-bench-")
		if benchDB.err != nil {
			return
		}
		benchDB.store, benchDB.err = Open(context.Background(), filepath.Join(benchDB.dir, "index.db"))
		if benchDB.err != nil {
			return
		}
		benchDB.entries = indextest.GenerateRecords(1, *benchRecords)
		for _, batch := range indextest.Batches(benchDB.entries, 1000) {
			if benchDB.err = benchDB.store.Apply(context.Background(), batch); benchDB.err != nil {
				return
			}
		}
		b.Logf("built a %d-record index (%.0f MB) in %v", len(benchDB.entries),
			float64(dbBytes(b, benchDB.store))/1e6, time.Since(start).Round(time.Millisecond))
	})
	if benchDB.err != nil {
		b.Fatalf("building the benchmark index: %v", benchDB.err)
	}
	return benchDB.store, benchDB.entries
}

// BenchmarkUserActions measures the auditor's main query, "everything done on behalf of this
// user", for a user with about 10,000 actions in a shared index of -bench-records records: the
// whole history up to the default limit, one day of it, and one hour.
func BenchmarkUserActions(b *testing.B) {
	s, entries := sharedIndex(b)
	tenant, user, count := userWithAbout(entries, 10_000)
	b.Logf("index of %d records; user %s/%s has %d actions", len(entries), tenant, user, count)
	day := time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)
	windows := []struct {
		name     string
		from, to time.Time
	}{
		{"all", time.Time{}, time.Time{}},
		{"day", day, day.Add(24 * time.Hour)},
		{"hour", day.Add(12 * time.Hour), day.Add(13 * time.Hour)},
	}
	for _, w := range windows {
		b.Run(w.name, func(b *testing.B) {
			q := index.UserQuery{Tenant: tenant, UserID: user, From: w.from, To: w.to}
			var rows int
			for b.Loop() {
				got, err := s.UserActions(context.Background(), q)
				if err != nil {
					b.Fatal(err)
				}
				rows = len(got)
			}
			b.ReportMetric(float64(rows), "rows/op")
			if rows > 0 {
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
			}
		})
	}
}

// BenchmarkLookup measures the id → log index lookup that ingest's deduplication runs at start-up,
// on random records of the shared index.
func BenchmarkLookup(b *testing.B) {
	s, entries := sharedIndex(b)
	rng := rand.New(rand.NewPCG(1, 2))
	for b.Loop() {
		e := entries[rng.IntN(len(entries))]
		if _, err := s.Lookup(context.Background(), e.Record.Tenant, e.Record.ID); err != nil {
			b.Fatal(err)
		}
	}
}

// userWithAbout returns the (tenant, user) whose number of entries is closest to n, and that
// number; ties go to the first in (tenant, user) order, so the choice is deterministic.
func userWithAbout(entries []index.Entry, n int) (tenant, user string, count int) {
	counts := map[[2]string]int{}
	for _, e := range entries {
		counts[[2]string{e.Record.Tenant, e.Record.User.ID}]++
	}
	best := -1
	for k, c := range counts {
		d := abs(c - n)
		if best < 0 || d < best || (d == best && (k[0] < tenant || (k[0] == tenant && k[1] < user))) {
			tenant, user, count, best = k[0], k[1], c, d
		}
	}
	return tenant, user, count
}

// abs is |x|.
func abs(x int) int { return max(x, -x) }

// dbBytes is the size of the database file once the write-ahead log is checkpointed into it, so
// the figure does not depend on how full the WAL happens to be.
func dbBytes(tb testing.TB, s *Store) int64 {
	if _, err := s.db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		tb.Fatal(err)
	}
	var path string
	if err := s.db.QueryRow(`SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&path); err != nil {
		tb.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	return fi.Size()
}

// BenchmarkRecords measures the lineage API's queries by subject at the API's page sizes, the
// same cases as the ClickHouse driver's BenchmarkRecords, for side-by-side figures.
func BenchmarkRecords(b *testing.B) {
	s, entries := sharedIndex(b)
	tenant := entries[0].Record.Tenant
	agent := entries[0].Record.Agent.ID
	for _, e := range entries {
		if e.Record.Tenant == tenant && e.Record.Role == "executor" {
			agent = e.Record.Agent.ID
			break
		}
	}
	userTenant, user, _ := userWithAbout(entries, 10_000)
	policy := entries[0].Record.Decision.Policy.ID
	deny := []string{"deny"}
	for _, bc := range []struct {
		name string
		q    index.Query
	}{
		{"agent/page=1000", index.Query{Tenant: tenant, AgentID: agent, Limit: 1001}},
		{"agent/page=100", index.Query{Tenant: tenant, AgentID: agent, Limit: 101}},
		{"policy/page=20", index.Query{Tenant: tenant, PolicyID: policy, Limit: 21}},
		{"policy/deny/page=1000", index.Query{Tenant: tenant, PolicyID: policy, Effects: deny, Limit: 1001}},
		{"parent", index.Query{Tenant: tenant, ParentID: entries[0].Record.ID, Limit: 101}},
		{"user/deny/page=1000", index.Query{Tenant: userTenant, UserID: user, Effects: deny, Limit: 1001}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var rows int
			for b.Loop() {
				got, err := s.Records(context.Background(), bc.q)
				if err != nil {
					b.Fatal(err)
				}
				rows = len(got)
			}
			b.ReportMetric(float64(rows), "rows/op")
		})
	}
}

// BenchmarkPolicyStats measures the policy report's aggregate over one tenant's decisions, as
// the ClickHouse driver's benchmark of the same name does.
func BenchmarkPolicyStats(b *testing.B) {
	s, entries := sharedIndex(b)
	r := entries[0].Record
	var total int
	for b.Loop() {
		st, err := s.PolicyStats(context.Background(), r.Tenant, r.Decision.Policy.ID, time.Time{}, time.Time{})
		if err != nil {
			b.Fatal(err)
		}
		total = st.Total
	}
	b.ReportMetric(float64(total), "decisions")
}

// BenchmarkLookupMany measures ingest's deduplication question for a batch of 1,000 records
// (half of them new), as one LookupMany; one op is one batch.
func BenchmarkLookupMany(b *testing.B) {
	s, entries := sharedIndex(b)
	rng := rand.New(rand.NewPCG(5, 6))
	keys := make([]index.Key, 1000)
	for b.Loop() {
		for i := range keys {
			e := entries[rng.IntN(len(entries))]
			keys[i] = index.Key{Tenant: e.Record.Tenant, ID: e.Record.ID}
			if i%2 == 0 {
				keys[i].ID += "-new"
			}
		}
		if _, err := s.LookupMany(context.Background(), keys); err != nil {
			b.Fatal(err)
		}
	}
}
