package query_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/ledgertest"
	"github.com/lineage-audit/lineage/ledger/tessera"
	"github.com/lineage-audit/lineage/query"
	"github.com/lineage-audit/lineage/query/index/sqlite"
	"io"
)

// BenchmarkLineageAPI measures the query API over a real Tessera log and SQLite index of
// LINEAGE_BENCH_RECORDS records (default 1,000,000; building it takes a few minutes): the user
// tree for a user with 10,000 actions (one page, without and with proofs), a page of 1,000
// actions with proofs, and single inclusion proofs. Each reports p50/p99 over its iterations.
func BenchmarkLineageAPI(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("LINEAGE_BENCH_RECORDS")); err == nil && v > 0 {
		n = v
	}
	srv, user, tenant, size := buildBenchAPI(b, n)
	get := func(b *testing.B, u string) {
		resp, err := http.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("GET %s: %d", u, resp.StatusCode)
		}
	}
	userURL := srv.URL + "/v1/lineage/users/" + url.PathEscape(user) + "?tenant=" + tenant
	cases := []struct {
		name string
		url  func(i int) string
	}{
		{"user-10k-actions-no-proofs", func(int) string { return userURL + "&limit=10000&proofs=false" }},
		{"user-10k-actions-with-proofs", func(int) string { return userURL + "&limit=10000" }},
		{"user-page-1000-with-proofs", func(int) string { return userURL + "&limit=1000" }},
		{"inclusion-proof", func(i int) string {
			return fmt.Sprintf("%s/v1/proofs/inclusion?index=%d&size=%d", srv.URL, (uint64(i)*7919)%size, size)
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for i := 0; i < b.N; i++ {
				start := time.Now()
				get(b, c.url(i))
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99-ms")
		})
	}
}

// benchDir is where the benchmark keeps its log and index of n records between runs: building
// the 1M-record log takes minutes. LINEAGE_BENCH_DIR overrides the parent directory (default
// the system temp dir); a directory without its "ready" file is rebuilt from scratch, and one
// whose index.sqlite was deleted gets a new index built from its log (to measure an index
// schema change on the same log).
func benchDir(n int) string {
	parent := os.Getenv("LINEAGE_BENCH_DIR")
	if parent == "" {
		parent = os.TempDir()
	}
	return filepath.Join(parent, fmt.Sprintf("lineage-bench-api-%d", n))
}

// benchMeta is what the cached build remembers besides the log and the index.
type benchMeta struct {
	Tenant, User string
	Actions      int
}

// buildBenchAPI appends n demo records to a Tessera log in batches, indexes them into SQLite,
// and serves the API; a build of the same size cached by an earlier run (benchDir) is reused.
// It returns the user with the fewest actions among those with at least 10k (else the user with
// the most).
func buildBenchAPI(b *testing.B, n int) (*httptest.Server, string, string, uint64) {
	b.Helper()
	start := time.Now()
	dir := benchDir(n)
	ctx := context.Background()
	var meta benchMeta
	if raw, err := os.ReadFile(filepath.Join(dir, "ready")); err == nil && json.Unmarshal(raw, &meta) == nil {
		b.Logf("reusing the %d-record log and index in %s", n, dir)
		if _, err := os.Stat(filepath.Join(dir, "index.sqlite")); errors.Is(err, fs.ErrNotExist) {
			reindexBench(b, dir, n)
		}
	} else {
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		meta = buildBenchData(b, dir, n)
		raw, _ := json.Marshal(meta)
		if err := os.WriteFile(filepath.Join(dir, "ready"), raw, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	_, vkey, err := ledger.LoadOrCreateSigner(filepath.Join(dir, "log.key"), "lineage.bench/api")
	if err != nil {
		b.Fatal(err)
	}
	v, _ := ledger.NewVerifier(vkey)
	lg, err := tessera.OpenReadOnly(filepath.Join(dir, "log"), v)
	if err != nil {
		b.Fatal(err)
	}
	store, err := sqlite.Open(ctx, filepath.Join(dir, "index.sqlite"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	srv := httptest.NewServer((&query.API{Log: lg, Store: store, Verifier: vkey}).Handler())
	b.Cleanup(srv.Close)
	b.Logf("opened a %d-record log and index in %s; user %s has %d actions", n, time.Since(start).Round(time.Millisecond), meta.User, meta.Actions)
	return srv, meta.User, meta.Tenant, uint64(n)
}

// buildBenchData writes the log and the index of n demo records into dir.
func buildBenchData(b *testing.B, dir string, n int) benchMeta {
	start := time.Now()
	ctx := context.Background()
	signer, vkey, err := ledger.LoadOrCreateSigner(filepath.Join(dir, "log.key"), "lineage.bench/api")
	if err != nil {
		b.Fatal(err)
	}
	v, _ := ledger.NewVerifier(vkey)
	o := tessera.DefaultOptions(filepath.Join(dir, "log"), signer, v)
	o.BatchMaxSize = 4000
	lg, err := tessera.Open(ctx, o)
	if err != nil {
		b.Fatal(err)
	}
	defer lg.Close(context.Background())
	g := demo.New(demo.Options{Seed: 77, Tenants: 3})
	counts := map[[2]string]int{}
	batch := make([][]byte, 0, 4000)
	now := time.Now()
	for i := 0; i < n; i++ {
		r := g.Next()
		counts[[2]string{r.Tenant, r.User.ID}]++
		c, err := r.Canonical()
		if err != nil {
			b.Fatal(err)
		}
		batch = append(batch, lineage.NewEnvelope(c, now, false))
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := ledgertest.AddAll(ctx, lg, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if _, err := ledgertest.WaitCheckpoint(ctx, lg, v, uint64(n)); err != nil {
		b.Fatal(err)
	}
	indexBench(b, lg, dir, n)
	var best [2]string
	for k, c := range counts {
		if c >= 10000 && (best[1] == "" || c < counts[best]) {
			best = k
		}
	}
	if best[1] == "" {
		for k, c := range counts {
			if c > counts[best] {
				best = k
			}
		}
	}
	b.Logf("built a %d-record log and index in %s", n, time.Since(start).Round(time.Second))
	return benchMeta{Tenant: best[0], User: best[1], Actions: counts[best]}
}

// indexBench indexes the n entries of lg into dir/index.sqlite.
func indexBench(b *testing.B, lg ledger.Log, dir string, n int) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "index.sqlite"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	ix, err := query.NewIndexer(ctx, lg, store, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ix.BatchSize = 5000
	for ix.Position() < uint64(n) {
		if _, err := ix.Step(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// reindexBench builds a new index of the cached log in dir.
func reindexBench(b *testing.B, dir string, n int) {
	start := time.Now()
	_, vkey, err := ledger.LoadOrCreateSigner(filepath.Join(dir, "log.key"), "lineage.bench/api")
	if err != nil {
		b.Fatal(err)
	}
	v, _ := ledger.NewVerifier(vkey)
	lg, err := tessera.OpenReadOnly(filepath.Join(dir, "log"), v)
	if err != nil {
		b.Fatal(err)
	}
	indexBench(b, lg, dir, n)
	b.Logf("indexed the cached %d-record log again in %s", n, time.Since(start).Round(time.Second))
}
