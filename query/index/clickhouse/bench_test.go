package clickhouse

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/query/index"
	"github.com/lineage-audit/lineage/query/index/indextest"
)

// benchRecords is the size of the index the query benchmarks share. The default matches the
// SQLite driver's and keeps the one-off build (applying, then merging) to seconds on a
// 2-core machine; for the production-sized figure run
//
//	go test -run - -bench . ./query/index/clickhouse -args -bench-records=1000000
var benchRecords = flag.Int("bench-records", 200_000, "records in the index built for the query benchmarks")

// BenchmarkApply measures the indexer's write path: batches of generated records, each applied
// with its position, into an index that grows as the benchmark runs, on a fresh database. One op
// is one batch. ClickHouse writes a new part per INSERT (three, with the views), whose cost barely
// depends on its size, so the sub-benchmarks show what larger indexer batches buy: 1,000 records
// is the indexer's group-commit size, 10,000 what ClickHouse's own guidance prefers.
func BenchmarkApply(b *testing.B) {
	for _, size := range []int{1000, 10_000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			ts := startServer(b)
			s := ts.open(b, b.TempDir())
			defer s.Close()
			entries := indextest.GenerateRecords(1, b.N*size)
			batches := indextest.Batches(entries, size)
			ctx := context.Background()
			b.ResetTimer()
			for _, batch := range batches {
				if err := s.Apply(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(len(entries))/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(indexBytes(b, s, true))/float64(len(entries)), "disk-B/record")
		})
	}
}

// benchIndex is the index shared by the query benchmarks, built once per process because building
// it takes far longer than any one benchmark. Its database lives on the shared server, which
// TestMain stops.
var benchIndex struct {
	once    sync.Once
	store   *Store
	entries []index.Entry
	err     error
}

// sharedIndex returns the query benchmarks' index, building it on first use. After applying,
// the tables are merged (OPTIMIZE … FINAL), as the server's background merges would leave them
// in steady state, so the figures do not depend on how many parts the build happened to leave.
func sharedIndex(b *testing.B) (*Store, []index.Entry) {
	ts := startServer(b)
	benchIndex.once.Do(func() {
		start := time.Now()
		o := ts.options(b, "bench-index")
		o.Logger = slog.New(slog.DiscardHandler) // outlives this benchmark's output
		if benchIndex.store, benchIndex.err = Open(context.Background(), o); benchIndex.err != nil {
			return
		}
		benchIndex.entries = indextest.GenerateRecords(1, *benchRecords)
		// Built in batches of 10,000, not the indexer's 1,000: the build is set-up, not what is
		// measured, and larger inserts make it several times faster (see BenchmarkApply).
		for _, batch := range indextest.Batches(benchIndex.entries, 10_000) {
			if benchIndex.err = benchIndex.store.Apply(context.Background(), batch); benchIndex.err != nil {
				return
			}
		}
		applied := time.Since(start)
		for _, t := range append(slices.Clone(recordTables), "position") {
			if benchIndex.err = benchIndex.store.conn.Exec(context.Background(),
				"OPTIMIZE TABLE "+benchIndex.store.table(t)+" FINAL"); benchIndex.err != nil {
				return
			}
		}
		b.Logf("built a %d-record index (%.0f MB on disk) in %v: applied in %v (%.0f records/s), merged in %v",
			len(benchIndex.entries), float64(indexBytes(b, benchIndex.store, false))/1e6,
			time.Since(start).Round(time.Millisecond), applied.Round(time.Millisecond),
			float64(len(benchIndex.entries))/applied.Seconds(), (time.Since(start) - applied).Round(time.Millisecond))
	})
	if benchIndex.err != nil {
		b.Fatalf("building the benchmark index: %v", benchIndex.err)
	}
	return benchIndex.store, benchIndex.entries
}

// reportIndex adds the shared index's size to a query benchmark's metrics, so every figure says
// what it was measured on.
func reportIndex(b *testing.B, s *Store, entries []index.Entry) {
	b.ReportMetric(float64(len(entries)), "index-records")
	b.ReportMetric(float64(indexBytes(b, s, false))/1e6, "index-MB")
}

// BenchmarkUserActions measures the auditor's main query, "everything done on behalf of this
// user", for a user with about 10,000 actions in a shared index of -bench-records records: the
// whole history up to the default limit, one day of it, and one hour. Besides the mean (ns/op) it
// reports the median and 99th-percentile latency, which is what an auditor waiting on the UI sees.
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
			lat := latencies{}
			for b.Loop() {
				start := time.Now()
				got, err := s.UserActions(context.Background(), q)
				if err != nil {
					b.Fatal(err)
				}
				lat.add(time.Since(start))
				rows = len(got)
			}
			lat.report(b)
			reportIndex(b, s, entries)
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
	lat := latencies{}
	for b.Loop() {
		e := entries[rng.IntN(len(entries))]
		start := time.Now()
		if _, err := s.Lookup(context.Background(), e.Record.Tenant, e.Record.ID); err != nil {
			b.Fatal(err)
		}
		lat.add(time.Since(start))
	}
	lat.report(b)
	reportIndex(b, s, entries)
}

// BenchmarkGet measures fetching one record with its canonical bytes, what the API does for
// GET /v1/records/{id} and for every node of a lineage tree, on random records of the shared index.
func BenchmarkGet(b *testing.B) {
	s, entries := sharedIndex(b)
	rng := rand.New(rand.NewPCG(3, 4))
	lat := latencies{}
	for b.Loop() {
		e := entries[rng.IntN(len(entries))]
		start := time.Now()
		if _, err := s.Get(context.Background(), e.Record.Tenant, e.Record.ID); err != nil {
			b.Fatal(err)
		}
		lat.add(time.Since(start))
	}
	lat.report(b)
	reportIndex(b, s, entries)
}

// latencies collects per-operation durations for percentile metrics.
type latencies []time.Duration

// add records one operation's duration.
func (l *latencies) add(d time.Duration) { *l = append(*l, d) }

// report adds p50-ms and p99-ms metrics to b.
func (l latencies) report(b *testing.B) {
	if len(l) == 0 {
		return
	}
	slices.Sort(l)
	pct := func(p float64) float64 {
		return float64(l[min(len(l)-1, int(p*float64(len(l))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
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
		d := max(c-n, n-c)
		if best < 0 || d < best || (d == best && (k[0] < tenant || (k[0] == tenant && k[1] < user))) {
			tenant, user, count, best = k[0], k[1], c, d
		}
	}
	return tenant, user, count
}

// indexBytes is the size on disk of the index's active parts, all tables included; with merge
// set, the tables are merged first so the figure does not depend on how far background merges
// have got.
func indexBytes(tb testing.TB, s *Store, merge bool) uint64 {
	ctx := context.Background()
	if merge {
		for _, t := range recordTables {
			if err := s.conn.Exec(ctx, "OPTIMIZE TABLE "+s.table(t)+" FINAL"); err != nil {
				tb.Fatal(err)
			}
		}
	}
	var n uint64
	if err := s.conn.QueryRow(ctx, "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = ? AND active",
		s.db).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// BenchmarkRecords measures the lineage API's queries by subject on the shared index, at the
// API's page sizes (the page plus one row, to know whether another follows): an agent's actions
// (1,000 a page), a policy's examples (20) and denies (1,000), an action's children, and a user's
// denies. Pages by agent and policy are read from records_by_subject and then fetched from
// records by key, one granule per row at worst, where a user's page is one key range.
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
	_, user, _ := userWithAbout(entries, 10_000)
	deny := []string{"deny"}
	for _, bc := range []struct {
		name string
		q    index.Query
	}{
		{"agent/page=1000", index.Query{AgentID: agent, Limit: 1001}},
		{"agent/page=100", index.Query{AgentID: agent, Limit: 101}},
		{"policy/page=20", index.Query{PolicyID: entries[0].Record.Decision.Policy.ID, Limit: 21}},
		{"policy/deny/page=1000", index.Query{PolicyID: entries[0].Record.Decision.Policy.ID, Effects: deny, Limit: 1001}},
		{"parent", index.Query{ParentID: entries[0].Record.ID, Limit: 101}},
		{"user/deny/page=1000", index.Query{UserID: user, Effects: deny, Limit: 1001}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			q := bc.q
			q.Tenant = tenant
			if q.UserID != "" {
				q.Tenant, _, _ = userWithAbout(entries, 10_000)
			}
			var rows int
			lat := latencies{}
			for b.Loop() {
				start := time.Now()
				got, err := s.Records(context.Background(), q)
				if err != nil {
					b.Fatal(err)
				}
				lat.add(time.Since(start))
				rows = len(got)
			}
			lat.report(b)
			reportIndex(b, s, entries)
			b.ReportMetric(float64(rows), "rows/op")
		})
	}
}

// BenchmarkPolicyStats measures the policy report's aggregate over a quarter of the shared index
// (one tenant's decisions under the generated crews' one policy), all time and one day.
func BenchmarkPolicyStats(b *testing.B) {
	s, entries := sharedIndex(b)
	r := entries[0].Record
	day := time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)
	for _, w := range []struct {
		name     string
		from, to time.Time
	}{{"all", time.Time{}, time.Time{}}, {"day", day, day.Add(24 * time.Hour)}} {
		b.Run(w.name, func(b *testing.B) {
			var total int
			lat := latencies{}
			for b.Loop() {
				start := time.Now()
				st, err := s.PolicyStats(context.Background(), r.Tenant, r.Decision.Policy.ID, w.from, w.to)
				if err != nil {
					b.Fatal(err)
				}
				lat.add(time.Since(start))
				total = st.Total
			}
			lat.report(b)
			reportIndex(b, s, entries)
			b.ReportMetric(float64(total), "decisions")
		})
	}
}

// BenchmarkLookupMany measures ingest's deduplication question for a batch of 1,000 records, as
// one LookupMany and as 1,000 Lookups; one op is one batch.
func BenchmarkLookupMany(b *testing.B) {
	s, entries := sharedIndex(b)
	rng := rand.New(rand.NewPCG(5, 6))
	batch := func() []index.Key {
		keys := make([]index.Key, 1000)
		for i := range keys {
			e := entries[rng.IntN(len(entries))]
			keys[i] = index.Key{Tenant: e.Record.Tenant, ID: e.Record.ID}
			if i%2 == 0 {
				keys[i].ID += "-new" // half are new records, as in steady ingest
			}
		}
		return keys
	}
	b.Run("LookupMany", func(b *testing.B) {
		lat := latencies{}
		for b.Loop() {
			keys := batch()
			start := time.Now()
			if _, err := s.LookupMany(context.Background(), keys); err != nil {
				b.Fatal(err)
			}
			lat.add(time.Since(start))
		}
		lat.report(b)
	})
	b.Run("Lookup×1000", func(b *testing.B) {
		lat := latencies{}
		for b.Loop() {
			keys := batch()
			start := time.Now()
			for _, k := range keys {
				if _, err := s.Lookup(context.Background(), k.Tenant, k.ID); err != nil && !errors.Is(err, index.ErrNotFound) {
					b.Fatal(err)
				}
			}
			lat.add(time.Since(start))
		}
		lat.report(b)
	})
}
