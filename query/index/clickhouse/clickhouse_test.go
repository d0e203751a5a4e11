package clickhouse

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/testenv"
	"github.com/lineage-audit/lineage/query/index"
	"github.com/lineage-audit/lineage/query/index/indextest"
)

// testServer is the real ClickHouse server shared by this package's tests and benchmarks: each
// store gets its own database, so one server serves them all. It is started on first use (a
// test run that needs no server starts none) and stopped by TestMain; a server per test would
// add about half a second of graceful shutdown to each.
type testServer struct {
	ch *testenv.ClickHouse
	mu sync.Mutex
	// dbs maps a directory to its database: the conformance suite reopens "the store in dir"
	// to check durability, and for a server-side index that is the same database.
	dbs map[string]string
}

// shared is the process's server, see testServer.
var shared struct {
	once sync.Once
	dir  string
	ts   *testServer
	err  error
}

// startServer returns the shared server, starting it on first use.
func startServer(tb testing.TB) *testServer {
	tb.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "lineage-clickhouse-test-")
		if shared.err != nil {
			return
		}
		var ch *testenv.ClickHouse
		ch, shared.err = testenv.LaunchClickHouse(context.Background(), shared.dir)
		if shared.err == nil {
			shared.ts = &testServer{ch: ch, dbs: map[string]string{}}
		}
	})
	if shared.err != nil {
		tb.Fatalf("starting ClickHouse: %v", shared.err)
	}
	return shared.ts
}

// TestMain stops the shared server and removes its directory after all tests and benchmarks.
func TestMain(m *testing.M) {
	code := m.Run()
	if benchIndex.store != nil {
		benchIndex.store.Close() // the server's graceful stop waits for open connections
	}
	if shared.ts != nil {
		start := time.Now()
		if err := shared.ts.ch.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = max(code, 1)
		}
		if testing.Verbose() {
			fmt.Printf("ClickHouse %s: ready in %v, stopped in %v\n", shared.ts.ch.Version,
				shared.ts.ch.StartupTime.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		}
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// options returns Options for the database belonging to dir, naming a new database for a new dir.
func (ts *testServer) options(t testing.TB, dir string) Options {
	ts.mu.Lock()
	db, ok := ts.dbs[dir]
	if !ok {
		db = ts.ch.DatabaseName()
		ts.dbs[dir] = db
	}
	ts.mu.Unlock()
	return Options{Addr: ts.ch.Addr, Database: db, Logger: testLogger(t)}
}

// open opens the store of dir, failing the test on error; the caller closes it.
func (ts *testServer) open(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), ts.options(t, dir))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// fresh opens a store in a new database and closes it when the test ends.
func (ts *testServer) fresh(t testing.TB) *Store {
	t.Helper()
	s := ts.open(t, t.TempDir())
	t.Cleanup(func() { s.Close() })
	return s
}

// sql runs a statement of the test's own on the server, outside the driver.
func (ts *testServer) sql(t testing.TB, query string, args ...any) {
	t.Helper()
	conn, err := ts.ch.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Exec(context.Background(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// testLogger sends the driver's log lines to the test's output, shown with -v or on failure.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

// TestConformance runs the shared index.Store suite against a real ClickHouse server.
func TestConformance(t *testing.T) {
	ts := startServer(t)
	indextest.Run(t, func(t *testing.T, dir string) index.Store { return ts.open(t, dir) })
}

// applyAll applies batches, failing the test on error.
func applyAll(t testing.TB, s *Store, batches []index.Batch) {
	t.Helper()
	for _, b := range batches {
		if err := s.Apply(context.Background(), b); err != nil {
			t.Fatalf("Apply [%d,%d): %v", b.From, b.To, err)
		}
	}
}

// wantPosition fails the test unless the store's position is want.
func wantPosition(t testing.TB, s *Store, want uint64) {
	t.Helper()
	got, err := s.Position(context.Background())
	if err != nil {
		t.Fatalf("Position: %v", err)
	}
	if got != want {
		t.Fatalf("Position = %d, want %d", got, want)
	}
}

// count runs a count() query of the test's own through the driver's connection.
func count(t testing.TB, s *Store, query string) uint64 {
	t.Helper()
	var n uint64
	if err := s.conn.QueryRow(context.Background(), query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// checkIndexed fails the test unless the store answers exactly for applied (the entries below
// the position) and nothing else: each record table holds exactly one visible row per applied
// entry (a set comparison over the whole table, so a copy anywhere shows), every user's actions
// equal the brute-force answer, a sample of the records is found by Lookup and FindID and a
// sample of invisible ones is not, and a report-style aggregate (records per effect) counts each
// record once. Point lookups are sampled because each is a ClickHouse query of about 2 ms.
func checkIndexed(t *testing.T, s *Store, applied, invisible []index.Entry) {
	t.Helper()
	ctx := t.Context()
	want := make([]string, len(applied))
	byKey := map[string]index.Entry{}
	users := map[[2]string][]string{}
	for i, e := range applied {
		k := key(e.Record.Tenant, e.Record.ID, e.Index)
		want[i], byKey[k] = k, e
		u := [2]string{e.Record.Tenant, e.Record.User.ID}
		users[u] = append(users[u], k)
	}
	slices.Sort(want)
	for _, table := range []string{"records", "records_by_id"} {
		got := visibleKeys(t, s, "SELECT tenant, id, log_index FROM "+s.table(table)+
			" FINAL WHERE log_index < "+s.positionSQL())
		if !slices.Equal(got, want) {
			t.Fatalf("%s holds %d visible rows, want the %d applied records once each", table, len(got), len(want))
		}
	}
	// records_by_subject: one row per record and subject kind (none for a record without parent).
	var wantSubjects []string
	for _, e := range applied {
		r := e.Record
		wantSubjects = append(wantSubjects, key(r.Tenant, "1:"+r.Agent.ID, e.Index), key(r.Tenant, "2:"+r.Decision.Policy.ID, e.Index))
		if r.ParentID != "" {
			wantSubjects = append(wantSubjects, key(r.Tenant, "3:"+r.ParentID, e.Index))
		}
	}
	slices.Sort(wantSubjects)
	if got := visibleKeys(t, s, "SELECT tenant, concat(toString(kind), ':', subject), log_index FROM "+
		s.table("records_by_subject")+" FINAL WHERE log_index < "+s.positionSQL()); !slices.Equal(got, wantSubjects) {
		t.Fatalf("records_by_subject holds %d visible rows, want %d (one per applied record and subject)", len(got), len(wantSubjects))
	}
	checkSearch(t, s, applied, invisible)

	for i, e := range applied {
		if i%10 != 0 {
			continue
		}
		ref, err := s.Lookup(ctx, e.Record.Tenant, e.Record.ID)
		if err != nil || ref.Index != e.Index || ref.RecordHash != e.RecordHash {
			t.Fatalf("Lookup(%s, %s) = %+v, %v; want index %d", e.Record.Tenant, e.Record.ID, ref, err, e.Index)
		}
		refs, err := s.FindID(ctx, e.Record.ID)
		if err != nil {
			t.Fatalf("FindID(%s): %v", e.Record.ID, err)
		}
		var n int
		for _, r := range refs {
			if r.Tenant == e.Record.Tenant {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("FindID(%s) lists tenant %s %d times: %+v", e.Record.ID, e.Record.Tenant, n, refs)
		}
	}
	for u, keys := range users {
		slices.SortFunc(keys, func(a, b string) int {
			ea, eb := byKey[a], byKey[b]
			if c := ea.Time.Compare(eb.Time); c != 0 {
				return c
			}
			return int(ea.Index) - int(eb.Index)
		})
		rows, err := s.UserActions(ctx, index.UserQuery{Tenant: u[0], UserID: u[1], Limit: MaxLimit})
		if err != nil {
			t.Fatalf("UserActions(%s, %s): %v", u[0], u[1], err)
		}
		var got []string
		for _, r := range rows {
			got = append(got, key(r.Record.Tenant, r.Record.ID, r.Index))
		}
		if !slices.Equal(got, keys) {
			t.Fatalf("UserActions(%s, %s):\n got  %v\n want %v", u[0], u[1], got, keys)
		}
	}
	for i, e := range invisible {
		if i%10 != 0 {
			continue
		}
		if _, err := s.Lookup(ctx, e.Record.Tenant, e.Record.ID); !errors.Is(err, index.ErrNotFound) {
			t.Fatalf("Lookup(%s, %s) of unapplied index %d: err = %v, want ErrNotFound",
				e.Record.Tenant, e.Record.ID, e.Index, err)
		}
		if _, err := s.Get(ctx, e.Record.Tenant, e.Record.ID); !errors.Is(err, index.ErrNotFound) {
			t.Fatalf("Get(%s, %s) of unapplied index %d: err = %v, want ErrNotFound",
				e.Record.Tenant, e.Record.ID, e.Index, err)
		}
	}

	// An aggregate as reports will compute it: each record counts once.
	wantEffects := map[string]uint64{}
	for _, e := range applied {
		wantEffects[e.Record.Decision.Effect]++
	}
	rows, err := s.conn.Query(ctx, "SELECT effect, count() FROM "+s.table("records")+
		" FINAL WHERE log_index < "+s.positionSQL()+" GROUP BY effect")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	gotEffects := map[string]uint64{}
	for rows.Next() {
		var effect string
		var n uint64
		if err := rows.Scan(&effect, &n); err != nil {
			t.Fatal(err)
		}
		gotEffects[effect] = n
	}
	if fmt.Sprint(gotEffects) != fmt.Sprint(wantEffects) {
		t.Errorf("records per effect = %v, want %v", gotEffects, wantEffects)
	}
}

// visibleKeys runs a query of (tenant, string, log_index) rows and returns them as sorted keys.
func visibleKeys(t *testing.T, s *Store, query string) []string {
	t.Helper()
	rows, err := s.conn.Query(t.Context(), query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var tenant, id string
		var idx uint64
		if err := rows.Scan(&tenant, &id, &idx); err != nil {
			t.Fatal(err)
		}
		got = append(got, key(tenant, id, idx))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	return got
}

// checkSearch fails the test unless Records, PolicyStats and LookupMany answer for applied and
// nothing else, each record once however many copies crashed batches left: every agent's and
// policy's records and stats, a sample of parents (each query costs milliseconds), and a lookup
// of every applied and invisible key.
func checkSearch(t *testing.T, s *Store, applied, invisible []index.Entry) {
	t.Helper()
	ctx := t.Context()
	var queries []index.Query
	seen := map[string]bool{}
	add := func(q index.Query) {
		if k := fmt.Sprint(q); !seen[k] {
			seen[k] = true
			queries = append(queries, q)
		}
	}
	for i, e := range append(slices.Clone(applied), invisible...) {
		r := e.Record
		add(index.Query{Tenant: r.Tenant, AgentID: r.Agent.ID, Limit: MaxLimit})
		add(index.Query{Tenant: r.Tenant, PolicyID: r.Decision.Policy.ID, Limit: MaxLimit})
		if i%50 == 0 {
			add(index.Query{Tenant: r.Tenant, UserID: r.User.ID, Effects: []string{lineage.EffectDeny}, Limit: MaxLimit})
			if r.ParentID != "" {
				add(index.Query{Tenant: r.Tenant, ParentID: r.ParentID, Limit: MaxLimit})
			}
		}
	}
	// Limits are counted after copies are skipped: page through the policy queries (the largest
	// answers) with growing limits.
	for _, q := range slices.Clone(queries) {
		if q.PolicyID != "" {
			for limit := 1; limit < len(applied); limit = 3*limit + 1 {
				q.Limit = limit
				queries = append(queries, q)
			}
		}
	}
	for _, q := range queries {
		rows, err := s.Records(ctx, q)
		if err != nil {
			t.Fatalf("Records(%+v): %v", q, err)
		}
		var got, want []string
		for _, r := range rows {
			got = append(got, key(r.Record.Tenant, r.Record.ID, r.Index))
		}
		for _, e := range indextest.ReferenceRecords(applied, q) {
			want = append(want, key(e.Record.Tenant, e.Record.ID, e.Index))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Records(%+v):\n got  %d rows %v\n want %d rows %v", q, len(got), got, len(want), want)
		}
		if q.PolicyID == "" || q.Limit != MaxLimit {
			continue
		}
		st, err := s.PolicyStats(ctx, q.Tenant, q.PolicyID, time.Time{}, time.Time{})
		if err != nil {
			t.Fatalf("PolicyStats(%s, %s): %v", q.Tenant, q.PolicyID, err)
		}
		if ref := indextest.ReferencePolicyStats(applied, q.Tenant, q.PolicyID, time.Time{}, time.Time{}); !reflect.DeepEqual(st, ref) {
			t.Fatalf("PolicyStats(%s, %s) = %+v, want %+v", q.Tenant, q.PolicyID, st, ref)
		}
	}

	var keys []index.Key
	want := map[index.Key]index.Ref{}
	for _, e := range applied {
		k := index.Key{Tenant: e.Record.Tenant, ID: e.Record.ID}
		keys = append(keys, k)
		want[k] = index.Ref{Tenant: k.Tenant, ID: k.ID, Index: e.Index, RecordHash: e.RecordHash}
	}
	for _, e := range invisible {
		keys = append(keys, index.Key{Tenant: e.Record.Tenant, ID: e.Record.ID})
	}
	got, err := s.LookupMany(ctx, keys)
	if err != nil {
		t.Fatalf("LookupMany: %v", err)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("LookupMany found %d of %d keys, want exactly the %d applied ones", len(got), len(keys), len(want))
	}
}

// key describes a record as "tenant/id@index".
func key(tenant, id string, idx uint64) string { return fmt.Sprintf("%s/%s@%d", tenant, id, idx) }

// TestCrashBetweenInsertAndPosition: Apply writes rows, then the position, without a transaction
// around them. A crash in between leaves rows above the position; they must stay invisible, and
// re-applying the batch from the old position (what a restarted indexer does) must not count
// them twice, in any table, whether the crash hit after all rows, half-way through them, or the
// indexer restarts with different batch boundaries.
func TestCrashBetweenInsertAndPosition(t *testing.T) {
	ts := startServer(t)
	s := ts.fresh(t)
	ctx := t.Context()
	entries := indextest.GenerateRecords(3, 2500)
	b := indextest.Batches(entries, 500)
	applyAll(t, s, b[:1])

	// Crash after the rows of batch 1 were inserted, before its position: the rows are there
	// (the same INSERT Apply sends) but not covered by the position.
	if err := s.insertRecords(ctx, b[1].Entries); err != nil {
		t.Fatal(err)
	}
	wantPosition(t, s, b[0].To)
	checkIndexed(t, s, entries[:500], entries[500:])

	// The restarted indexer re-applies batch 1 from the position it reads.
	applyAll(t, s, b[1:2])
	wantPosition(t, s, b[1].To)
	if n := count(t, s, "SELECT count() FROM "+s.table("records")); n != 1500 {
		t.Fatalf("records holds %d rows on disk, want 1500 (1,000 records, 500 of them twice): "+
			"the test must exercise duplicate rows", n)
	}
	checkIndexed(t, s, entries[:1000], entries[1000:])
	checkLimits(t, s, entries[:1000])

	// Crash half-way through the rows of batch 2 (a part written, the rest lost).
	if err := s.insertRecords(ctx, b[2].Entries[:250]); err != nil {
		t.Fatal(err)
	}
	checkIndexed(t, s, entries[:1000], entries[1000:])
	applyAll(t, s, b[2:3])
	checkIndexed(t, s, entries[:1500], entries[1500:])

	// Crash after the rows of batch 3; the restarted indexer cuts the log differently, so the
	// left-over rows are covered by two smaller batches, and some stay above the position for
	// a while.
	if err := s.insertRecords(ctx, b[3].Entries); err != nil {
		t.Fatal(err)
	}
	mid := b[3].Entries[200].Index
	applyAll(t, s, []index.Batch{{From: b[3].From, To: mid, Entries: b[3].Entries[:200]}})
	checkIndexed(t, s, entries[:1700], entries[1700:])
	applyAll(t, s, []index.Batch{{From: mid, To: b[3].To, Entries: b[3].Entries[200:]}})
	checkIndexed(t, s, entries[:2000], entries[2000:])

	// Crash after the position of batch 4 was written, before Apply returned: the retry is
	// refused, as with SQLite's lost commit acknowledgement, and changes nothing.
	applyAll(t, s, b[4:5])
	if err := s.Apply(ctx, b[4]); !errors.Is(err, index.ErrPosition) {
		t.Fatalf("re-Apply of an applied batch: err = %v, want ErrPosition", err)
	}
	checkIndexed(t, s, entries, nil)

	// Merges remove the copies for good: the sorting keys really identify a log index (and,
	// in records_by_subject, a subject kind of it).
	subjectRows := 0
	for _, e := range entries {
		subjectRows += 2
		if e.Record.ParentID != "" {
			subjectRows++
		}
	}
	for _, table := range recordTables {
		want := uint64(len(entries))
		if table == "records_by_subject" {
			want = uint64(subjectRows)
		}
		ts.sql(t, "OPTIMIZE TABLE "+s.table(table)+" FINAL")
		if n := count(t, s, "SELECT count() FROM "+s.table(table)); n != want {
			t.Errorf("%s holds %d rows after OPTIMIZE FINAL, want %d", table, n, want)
		}
	}
}

// checkLimits: for the user with the most records, every Limit returns the first rows of the
// full answer, with the copies of re-applied rows skipped before the limit is counted.
func checkLimits(t *testing.T, s *Store, applied []index.Entry) {
	t.Helper()
	counts := map[[2]string]int{}
	var heavy [2]string
	for _, e := range applied {
		k := [2]string{e.Record.Tenant, e.Record.User.ID}
		counts[k]++
		if counts[k] > counts[heavy] {
			heavy = k
		}
	}
	all, err := s.UserActions(t.Context(), index.UserQuery{Tenant: heavy[0], UserID: heavy[1], Limit: MaxLimit})
	if err != nil || len(all) != counts[heavy] {
		t.Fatalf("UserActions(%s, %s) = %d rows, %v; want %d", heavy[0], heavy[1], len(all), err, counts[heavy])
	}
	for limit := 1; limit <= len(all); limit += 1 + limit/2 {
		rows, err := s.UserActions(t.Context(), index.UserQuery{Tenant: heavy[0], UserID: heavy[1], Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		var got, want []uint64
		for i := range rows {
			got = append(got, rows[i].Index)
		}
		for i := range all[:limit] {
			want = append(want, all[i].Index)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("UserActions(%s, %s, limit %d) = %v, want %v", heavy[0], heavy[1], limit, got, want)
		}
	}
}

// TestApplyDuplicate: the log holds each (tenant, id) once, so a second copy means a bug upstream;
// Apply must fail and leave the store as it was instead of hiding the duplicate, as SQLite does.
func TestApplyDuplicate(t *testing.T) {
	ts := startServer(t)
	s := ts.fresh(t)
	ctx := t.Context()
	if err := s.Apply(ctx, index.Batch{From: 0, To: 1, Entries: []index.Entry{testEntry(t, 0, "acme", "x")}}); err != nil {
		t.Fatal(err)
	}
	batches := []index.Batch{
		{From: 1, To: 2, Entries: []index.Entry{testEntry(t, 1, "acme", "x")}},
		{From: 1, To: 3, Entries: []index.Entry{testEntry(t, 1, "acme", "y"), testEntry(t, 2, "acme", "y")}},
		{From: 1, To: 3, Entries: []index.Entry{testEntry(t, 1, "acme", "z"), testEntry(t, 2, "acme", "x")}},
	}
	for _, b := range batches {
		err := s.Apply(ctx, b)
		if err == nil || errors.Is(err, index.ErrPosition) || !strings.Contains(err.Error(), "already stored") {
			t.Errorf("Apply of a duplicate id: err = %v, want a duplicate error", err)
		}
	}
	wantPosition(t, s, 1)
	for _, id := range []string{"y", "z"} {
		if _, err := s.Lookup(ctx, "acme", id); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("Lookup(acme, %s) after a failed batch: err = %v, want ErrNotFound", id, err)
		}
	}
	// The same id in another tenant is not a duplicate.
	if err := s.Apply(ctx, index.Batch{From: 1, To: 2,
		Entries: []index.Entry{testEntry(t, 1, "globex", "x")}}); err != nil {
		t.Errorf("Apply of globex/x after acme/x: %v", err)
	}
}

// TestApplyMalformed: batches the indexer must never build are rejected before anything is written.
func TestApplyMalformed(t *testing.T) {
	ts := startServer(t)
	s := ts.fresh(t)
	ctx := t.Context()
	e := func(idx uint64, id string) index.Entry { return testEntry(t, idx, "acme", id) }
	noRecord := e(0, "a")
	noRecord.Record = nil
	farTime := e(0, "a")
	farTime.Time = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := map[string]index.Batch{
		"inverted range":       {From: 0, To: 0, Entries: []index.Entry{e(0, "a")}},
		"index beyond To":      {From: 0, To: 2, Entries: []index.Entry{e(2, "a")}},
		"out of order":         {From: 0, To: 3, Entries: []index.Entry{e(1, "a"), e(0, "b")}},
		"repeated index":       {From: 0, To: 3, Entries: []index.Entry{e(1, "a"), e(1, "b")}},
		"no record":            {From: 0, To: 1, Entries: []index.Entry{noRecord}},
		"time beyond int64":    {From: 0, To: 1, Entries: []index.Entry{farTime}},
		"index beyond int64":   {From: 0, To: 1 << 63, Entries: []index.Entry{e(0, "a")}},
		"more entries than To": {From: 0, To: 1, Entries: []index.Entry{e(0, "a"), e(1, "b")}},
	}
	for name, b := range tests {
		if err := s.Apply(ctx, b); err == nil {
			t.Errorf("%s: Apply succeeded", name)
		}
	}
	wantPosition(t, s, 0)
	if n := count(t, s, "SELECT count() FROM "+s.table("records")); n != 0 {
		t.Errorf("records holds %d rows after rejected batches, want 0", n)
	}
}

// TestApplyCancelled: a cancelled context stops Apply and leaves nothing behind.
func TestApplyCancelled(t *testing.T) {
	ts := startServer(t)
	s := ts.fresh(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	b := indextest.Batches(indextest.GenerateRecords(1, 10), 10)[0]
	if err := s.Apply(ctx, b); !errors.Is(err, context.Canceled) {
		t.Errorf("Apply with a cancelled context: err = %v, want context.Canceled", err)
	}
	wantPosition(t, s, 0)
}

// TestReceivedFallback: an entry without a receive time is stored under its decision time (it
// must be placed in some partition), and one beyond DateTime's range is clamped, not refused:
// SQLite accepts both, and the two drivers must accept the same batches.
func TestReceivedFallback(t *testing.T) {
	ts := startServer(t)
	s := ts.fresh(t)
	noReceived := testEntry(t, 0, "acme", "a")
	noReceived.ReceivedAt = time.Time{}
	early := testEntry(t, 1, "acme", "b")
	early.ReceivedAt = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	late := testEntry(t, 2, "acme", "c")
	late.ReceivedAt = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
	applyAll(t, s, []index.Batch{{From: 0, To: 3, Entries: []index.Entry{noReceived, early, late}}})
	checkIndexed(t, s, []index.Entry{noReceived, early, late}, nil)
	if got, want := received(&noReceived), noReceived.Time; !got.Equal(want) {
		t.Errorf("received of an entry without ReceivedAt = %v, want its time %v", got, want)
	}
}

// TestOpenRejects: options that cannot work are refused up front, with the reason.
func TestOpenRejects(t *testing.T) {
	ts := startServer(t)
	tests := map[string]struct {
		o    Options
		want string
	}{
		"no address":        {Options{}, "neither DSN nor Addr"},
		"bad database name": {Options{Addr: ts.ch.Addr, Database: "a-b; DROP"}, "plain identifier"},
		"http":              {Options{DSN: "http://" + ts.ch.HTTPAddr + "/x"}, "native protocol"},
		"short retention":   {Options{Addr: ts.ch.Addr, Retention: 30 * 24 * time.Hour}, "ForceShortRetention"},
		"182 days":          {Options{Addr: ts.ch.Addr, Retention: 182 * 24 * time.Hour}, "six months"},
		"negative":          {Options{Addr: ts.ch.Addr, Retention: -time.Hour, ForceShortRetention: true}, "negative"},
		"unreachable":       {Options{Addr: "127.0.0.1:1", DialTimeout: time.Second}, "127.0.0.1:1"},
	}
	for name, tc := range tests {
		s, err := Open(t.Context(), tc.o)
		if err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded", name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, tc.want)
		}
	}
}

// TestDSN: a DSN connects like Addr does, and its database is used unless Database overrides it.
func TestDSN(t *testing.T) {
	ts := startServer(t)
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{DSN: "clickhouse://" + ts.ch.Addr + "/from_dsn"}, "from_dsn"},
		{Options{DSN: "clickhouse://" + ts.ch.Addr + "/from_dsn", Database: "override"}, "override"},
		{Options{DSN: "clickhouse://" + ts.ch.Addr}, DefaultDatabase},
	} {
		tc.o.Logger = testLogger(t)
		s, err := Open(t.Context(), tc.o)
		if err != nil {
			t.Fatalf("Open(%+v): %v", tc.o, err)
		}
		if s.Database() != tc.want {
			t.Errorf("Open(%+v) uses database %q, want %q", tc.o, s.Database(), tc.want)
		}
		wantPosition(t, s, 0)
		s.Close()
	}
}

// testEntry builds the entry at log index idx for a generated record renamed to tenant/id.
func testEntry(t testing.TB, idx uint64, tenant, id string) index.Entry {
	t.Helper()
	e := indextest.GenerateRecords(int64(idx), 1)[0]
	r := *e.Record
	r.Tenant, r.ID = tenant, id
	return withRecord(t, idx, r)
}

// withRecord is the entry at log index idx for r, with canonical bytes, hash and times to match.
func withRecord(t testing.TB, idx uint64, r lineage.Record) index.Entry {
	t.Helper()
	canonical, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	at, err := time.Parse(time.RFC3339Nano, r.Time)
	if err != nil {
		t.Fatal(err)
	}
	return index.Entry{Index: idx, Record: &r, Canonical: canonical,
		RecordHash: sha256.Sum256(canonical), Time: at, ReceivedAt: at.Add(time.Second)}
}

// TestMigrations: a new database is migrated to the latest version and records the server and
// features it was built with; reopening does not migrate again; a migration interrupted
// half-way (ClickHouse DDL is not transactional) is completed by the next Open without losing
// data; and a schema from a newer binary is refused.
func TestMigrations(t *testing.T) {
	ts := startServer(t)
	dir := t.TempDir()
	s := ts.open(t, dir)
	db := s.Database()
	versions := func() (n uint64, max uint32) {
		t.Helper()
		if err := s.conn.QueryRow(t.Context(), "SELECT count(), max(version) FROM "+
			s.table("schema_migrations")).Scan(&n, &max); err != nil {
			t.Fatal(err)
		}
		return n, max
	}
	if n, v := versions(); n != uint64(len(migrations)) || v != uint32(len(migrations)) {
		t.Errorf("schema_migrations has %d rows, version %d; want %d", n, v, len(migrations))
	}
	var server, feats string
	if err := s.conn.QueryRow(t.Context(), "SELECT server_version, features FROM "+
		s.table("schema_migrations")+" WHERE version = 1").Scan(&server, &feats); err != nil {
		t.Fatal(err)
	}
	if server != s.ServerVersion() || feats != s.feat.String() {
		t.Errorf("migration 1 recorded server %q features %q, want %q %q", server, feats, s.ServerVersion(), s.feat)
	}
	entries := indextest.GenerateRecords(5, 300)
	applyAll(t, s, indextest.Batches(entries, 100))
	s.Close()

	s = ts.open(t, dir)
	if n, _ := versions(); n != uint64(len(migrations)) {
		t.Errorf("after reopening, schema_migrations has %d rows, want %d", n, len(migrations))
	}
	// Lose the bookkeeping, as if the process died after the DDL and before recording it: the
	// next Open runs migration 1 again over the existing tables and keeps every record.
	ts.sql(t, "DROP TABLE "+s.table("schema_migrations"))
	s.Close()
	s = ts.open(t, dir)
	if n, v := versions(); n != uint64(len(migrations)) || v != uint32(len(migrations)) {
		t.Errorf("after a re-run, schema_migrations has %d rows, version %d; want %d", n, v, len(migrations))
	}
	wantPosition(t, s, 300)
	checkIndexed(t, s, entries, nil)
	s.Close()

	// A migration that stopped after some of its statements.
	half := ts.options(t, t.TempDir())
	partial := &Store{db: half.Database, feat: s.feat}
	stmts := migrations[0].stmts(partial)
	ts.sql(t, "CREATE DATABASE "+half.Database)
	for _, stmt := range stmts[:len(stmts)/2] {
		ts.sql(t, stmt)
	}
	s2, err := Open(t.Context(), half)
	if err != nil {
		t.Fatalf("Open after a half-done migration: %v", err)
	}
	applyAll(t, s2, indextest.Batches(entries, 100))
	checkIndexed(t, s2, entries, nil)
	s2.Close()

	// A schema version this binary does not know.
	ts.sql(t, "INSERT INTO "+db+".schema_migrations (version, name, applied_ns, server_version, features) "+
		"SELECT ?, 'from the future', 0, '', ''", uint32(len(migrations)+1))
	if s, err := Open(t.Context(), ts.options(t, dir)); err == nil || !strings.Contains(err.Error(), "newer") {
		if s != nil {
			s.Close()
		}
		t.Errorf("Open of a newer schema: err = %v, want a version error", err)
	}
}

// TestMigrationBackfill: an index built by a binary that knew only migration 1 is brought to
// the current schema by Open, and migration 2 back-fills records_by_subject from records, so
// agent, policy and parent queries answer for records applied before it existed; run again (as
// after a crash inside it), it only adds copies that reads skip.
func TestMigrationBackfill(t *testing.T) {
	ts := startServer(t)
	dir := t.TempDir()
	current := migrations
	migrations = migrations[:1]
	s := ts.open(t, dir)
	migrations = current
	entries := indextest.GenerateRecords(13, 1200)
	applyAll(t, s, indextest.Batches(entries[:1000], 250))
	// A crashed batch's rows above the position must stay invisible after the back-fill too.
	if err := s.insertRecords(t.Context(), entries[1000:1100]); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = ts.open(t, dir)
	defer func() { s.Close() }()
	if v, err := s.schemaVersion(t.Context()); err != nil || v != len(migrations) {
		t.Fatalf("schema version after Open = %d, %v; want %d", v, err, len(migrations))
	}
	if n := count(t, s, "SELECT count() FROM system.tables WHERE database = '"+s.Database()+
		"' AND name LIKE 'records_by_agent%'"); n != 0 {
		t.Errorf("records_by_agent and its view: %d left, want them dropped", n)
	}
	checkIndexed(t, s, entries[:1000], entries[1000:])

	if err := s.runMigration(t.Context(), 1); err != nil {
		t.Fatalf("migration 2 again: %v", err)
	}
	applyAll(t, s, []index.Batch{{From: 1000, To: 1200, Entries: entries[1000:]}})
	checkIndexed(t, s, entries, nil)
}

// TestRetention: a window shorter than six months needs ForceShortRetention; on a server without
// TTL the driver drops the partitions whose records were all received before the window, at
// Open, when called, and from Apply once the interval has passed; with TTL the tables carry it.
// The position never moves back, and records inside the window stay.
func TestRetention(t *testing.T) {
	ts := startServer(t)
	dir := t.TempDir()
	o := ts.options(t, dir)
	o.Retention = time.Hour
	if s, err := Open(t.Context(), o); err == nil || !strings.Contains(err.Error(), "ForceShortRetention") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open with a one-hour retention: err = %v, want a refusal", err)
	}
	o.Retention = MinRetention
	s, err := Open(t.Context(), o)
	if err != nil {
		t.Fatalf("Open with the minimum retention: %v", err)
	}
	defer func() { s.Close() }()

	now := time.Now()
	var old, recent []index.Entry
	for i, e := range indextest.GenerateRecords(9, 400) {
		if i%2 == 0 {
			e.ReceivedAt = now.AddDate(-1, 0, -i/100) // a year ago, in a few months' partitions
			old = append(old, e)
		} else {
			e.ReceivedAt = now.Add(-time.Duration(i) * time.Minute)
			recent = append(recent, e)
		}
	}
	all := append(slices.Clone(old), recent...)
	slices.SortFunc(all, func(a, b index.Entry) int { return int(a.Index) - int(b.Index) })
	applyAll(t, s, indextest.Batches(all, 100))

	if s.feat.ttl {
		// A server with TTL expires rows itself, during merges; check the tables carry it.
		for _, table := range recordTables {
			var engine string
			if err := s.conn.QueryRow(t.Context(), "SELECT engine_full FROM system.tables WHERE database = ? AND name = ?",
				s.Database(), table).Scan(&engine); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(engine, "TTL") {
				t.Errorf("%s has no TTL with retention set: %s", table, engine)
			}
		}
		return
	}

	// Applying did not expire anything yet: retention ran at Open, within the interval.
	checkIndexed(t, s, all, nil)
	if err := s.EnforceRetention(t.Context()); err != nil {
		t.Fatalf("EnforceRetention: %v", err)
	}
	wantPosition(t, s, 400)
	checkIndexed(t, s, recent, old)

	// The next Apply after the interval enforces retention by itself.
	s.lastRetention = time.Time{}
	late := testEntry(t, 400, "acme", "late")
	late.ReceivedAt = now.AddDate(-2, 0, 0)
	applyAll(t, s, []index.Batch{{From: 400, To: 401, Entries: []index.Entry{late}}})
	wantPosition(t, s, 401)
	checkIndexed(t, s, recent, append(old, late))

	// A reopen enforces retention at Open.
	s.Close()
	s, err = Open(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	checkIndexed(t, s, recent, old)

	// Retention 0 keeps everything, even years-old records.
	o2 := ts.options(t, t.TempDir())
	s2, err := Open(t.Context(), o2)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	applyAll(t, s2, indextest.Batches(all, 100))
	if err := s2.EnforceRetention(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkIndexed(t, s2, all, nil)
}

// TestForceShortRetention: ForceShortRetention allows windows below six months, for tests and
// deployments outside the EU AI Act's scope.
func TestForceShortRetention(t *testing.T) {
	ts := startServer(t)
	o := ts.options(t, t.TempDir())
	o.Retention, o.ForceShortRetention = time.Hour, true
	s, err := Open(t.Context(), o)
	if err != nil {
		t.Fatalf("Open with a forced one-hour retention: %v", err)
	}
	defer s.Close()
	e := testEntry(t, 0, "acme", "recent")
	e.ReceivedAt = time.Now()
	applyAll(t, s, []index.Batch{{From: 0, To: 1, Entries: []index.Entry{e}}})
	if err := s.EnforceRetention(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkIndexed(t, s, []index.Entry{e}, nil)
}

// TestQueriesUsePrimaryKey pins the physical plans: every query the driver runs must read each
// table it touches through that table's primary key (force_primary_key makes the server refuse
// otherwise), and read few rows beyond those it returns, or large indexes would be scanned.
// This is the ClickHouse counterpart of SQLite's query-plan test.
func TestQueriesUsePrimaryKey(t *testing.T) {
	ts := startServer(t)
	s := ts.fresh(t)
	entries := indextest.GenerateRecords(21, 30_000)
	applyAll(t, s, indextest.Batches(entries, 1000))
	// One part per partition, so the bounds below do not depend on how far merges have got.
	// OPTIMIZE … FINAL can return before a busy server has merged everything (seen as twice the
	// rows read), so it is repeated until system.parts shows one active part per partition.
	for _, table := range append(slices.Clone(recordTables), "position") {
		for try := 0; ; try++ {
			ts.sql(t, "OPTIMIZE TABLE "+s.table(table)+" FINAL")
			var split uint64
			if err := s.conn.QueryRow(t.Context(), `SELECT count() FROM (SELECT partition FROM system.parts
				WHERE database = ? AND table = ? AND active GROUP BY partition HAVING count() > 1)`, s.db, table).Scan(&split); err != nil {
				t.Fatal(err)
			}
			if split == 0 {
				break
			}
			if try == 50 {
				t.Fatalf("%s: %d partitions still have several parts after OPTIMIZE FINAL", table, split)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	var read atomic.Uint64
	ctx := clickhouse.Context(t.Context(),
		clickhouse.WithSettings(clickhouse.Settings{"force_primary_key": 1}),
		clickhouse.WithProgress(func(p *clickhouse.Progress) { read.Add(p.Rows) }))
	measure := func(name string, limit uint64, f func() error) {
		t.Helper()
		read.Store(0)
		if err := f(); err != nil {
			t.Errorf("%s under force_primary_key: %v", name, err)
			return
		}
		if n := read.Load(); n > limit {
			t.Errorf("%s read %d rows, want at most %d", name, n, limit)
		} else {
			t.Logf("%s read %d rows", name, n)
		}
	}
	// Granules are 1,024 rows and the records of one month sit in one or two partitions, so a
	// key lookup reads a few granules per table; 8,192 rows is generous and still a small
	// fraction of the 30,000-record tables.
	const slack = 8 * 1024
	e := entries[1234]
	measure("Lookup", slack, func() error { _, err := s.Lookup(ctx, e.Record.Tenant, e.Record.ID); return err })
	measure("FindID", slack, func() error { _, err := s.FindID(ctx, e.Record.ID); return err })
	measure("Get", 2*slack, func() error { _, err := s.Get(ctx, e.Record.Tenant, e.Record.ID); return err })
	measure("Position", slack, func() error { _, err := s.Position(ctx); return err })

	counts := map[[2]string]int{}
	var heavy [2]string
	for _, e := range entries {
		k := [2]string{e.Record.Tenant, e.Record.User.ID}
		counts[k]++
		if counts[k] > counts[heavy] {
			heavy = k
		}
	}
	q := index.UserQuery{Tenant: heavy[0], UserID: heavy[1]}
	measure(fmt.Sprintf("UserActions of a user with %d records", counts[heavy]), uint64(counts[heavy])+slack,
		func() error { _, err := s.UserActions(ctx, q); return err })

	// Records by the other subjects read the subject's key range of records_by_subject, then
	// the page's rows of records by their full key: a granule per row at most.
	r := e.Record
	parent := e.Record.ParentID
	for i := 1234; parent == ""; i++ {
		parent = entries[i].Record.ParentID
	}
	deny := []string{lineage.EffectDeny}
	for _, sq := range []struct {
		name string
		q    index.Query
	}{
		{"Records by user", index.Query{Tenant: heavy[0], UserID: heavy[1], Effects: deny}},
		{"Records by agent", index.Query{Tenant: r.Tenant, AgentID: r.Agent.ID, Limit: 100}},
		{"Records by policy", index.Query{Tenant: r.Tenant, PolicyID: r.Decision.Policy.ID, Effects: deny, Limit: 20}},
		{"Records by parent", index.Query{Tenant: r.Tenant, ParentID: parent}},
	} {
		var subjectRows uint64
		for _, x := range entries {
			if indextest.ReferenceRecords([]index.Entry{x}, index.Query{Tenant: sq.q.Tenant, UserID: sq.q.UserID,
				AgentID: sq.q.AgentID, PolicyID: sq.q.PolicyID, ParentID: sq.q.ParentID}) != nil {
				subjectRows++
			}
		}
		pageRows := uint64(min(max(sq.q.Limit, 0), int(subjectRows)))
		if sq.q.Limit == 0 {
			pageRows = subjectRows
		}
		measure(fmt.Sprintf("%s (%d rows of the subject)", sq.name, subjectRows), subjectRows+pageRows*1024+slack,
			func() error { _, err := s.Records(ctx, sq.q); return err })
	}
	policyRows := uint64(0)
	for _, x := range entries {
		if x.Record.Tenant == r.Tenant && x.Record.Decision.Policy.ID == r.Decision.Policy.ID {
			policyRows++
		}
	}
	measure(fmt.Sprintf("PolicyStats (%d decisions)", policyRows), policyRows+slack, func() error {
		_, err := s.PolicyStats(ctx, r.Tenant, r.Decision.Policy.ID, time.Time{}, time.Time{})
		return err
	})
	keys := make([]index.Key, 1000)
	for i := range keys {
		keys[i] = index.Key{Tenant: entries[i*29].Record.Tenant, ID: entries[i*29].Record.ID}
	}
	// As for Apply's duplicate check below: ids spread over the whole table may touch every
	// granule; what matters is that the key is used.
	measure("LookupMany of 1,000 ids", math.MaxUint64, func() error { _, err := s.LookupMany(ctx, keys); return err })

	b := index.Batch{From: 30_000, To: 31_000, Entries: indextest.GenerateRecords(22, 1000)}
	for i := range b.Entries {
		b.Entries[i].Index += 30_000
		b.Entries[i].Record.ID = fmt.Sprintf("fresh-%d", i) // not stored: the lookup finds nothing
	}
	// 1,000 ids scattered over the whole table may touch every granule, so only the use of the
	// key is checked here; at scale the check reads a granule per id, not the table.
	measure("Apply's duplicate check of 1,000 ids", math.MaxUint64, func() error { return s.checkDuplicates(ctx, b) })
}

// TestParseVersion covers the version strings servers report.
func TestParseVersion(t *testing.T) {
	for in, want := range map[string]serverVersion{
		"18.16.1":     {18, 16, 1},
		"24.8.4.13":   {24, 8, 4},
		"21.8":        {21, 8, 0},
		" 23.3.1.1\n": {23, 3, 1},
	} {
		got, err := parseVersion(in)
		if err != nil || got != want {
			t.Errorf("parseVersion(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "18", "x.y", "18.-1", "v24.8"} {
		if v, err := parseVersion(in); err == nil {
			t.Errorf("parseVersion(%q) = %v, want an error", in, v)
		}
	}
}

// TestSchemaVariants pins which server versions get which optional features in the DDL. Only the
// 18.16 variant runs in the tests (Debian packages no newer server); this keeps the newer variant
// from drifting unnoticed, and docs/CLICKHOUSE.md lists what only a newer server exercises.
func TestSchemaVariants(t *testing.T) {
	newer := []string{"LowCardinality", "CODEC(ZSTD", "bloom_filter", "fsync_after_insert", "ttl_only_drop_parts"}
	for _, tc := range []struct {
		version string
		modern  bool
	}{
		{"18.16.1", false}, {"21.3.20", false}, {"21.8.1", true}, {"24.8.4.13", true}, {"26.3.1", true},
	} {
		v, err := parseVersion(tc.version)
		if err != nil {
			t.Fatal(err)
		}
		s := &Store{db: "lineage", feat: featuresOf(v), retention: MinRetention}
		var all []string
		for _, m := range migrations {
			all = append(all, m.stmts(s)...)
		}
		ddl := strings.Join(all, "\n")
		for _, word := range newer {
			if strings.Contains(ddl, word) != tc.modern {
				t.Errorf("server %s: DDL mentions %s = %v, want %v", tc.version, word, !tc.modern, tc.modern)
			}
		}
		// records_by_subject is created after reconcileTTL first ran on older indexes, so it
		// carries the retention window from the start where the server has TTL.
		subject := migrations[1].stmts(s)[0]
		if strings.Contains(subject, "TTL "+ttlExpr(MinRetention)) != tc.modern {
			t.Errorf("server %s: records_by_subject TTL = %v, want %v:\n%s", tc.version, !tc.modern, tc.modern, subject)
		}
		if s.feat.ttl != tc.modern {
			t.Errorf("server %s: ttl = %v, want %v", tc.version, s.feat.ttl, tc.modern)
		}
	}
	if got := ttlExpr(MinRetention); got != "received + toIntervalSecond(15811200)" {
		t.Errorf("ttlExpr(MinRetention) = %q", got)
	}
}

// TestCheckRetention covers the retention window rules without a server.
func TestCheckRetention(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		d     time.Duration
		force bool
		ok    bool
	}{
		{0, false, true},
		{MinRetention, false, true},
		{10 * 365 * day, false, true},
		{MinRetention - time.Second, false, false},
		{30 * day, false, false},
		{30 * day, true, true},
		{time.Second, true, true},
		{time.Millisecond, true, false},
		{-day, true, false},
	} {
		if err := checkRetention(tc.d, tc.force); (err == nil) != tc.ok {
			t.Errorf("checkRetention(%v, force %v) = %v, want ok %v", tc.d, tc.force, err, tc.ok)
		}
	}
}

// TestServerLifecycle exercises the test helper's own contract on a server of its own: the
// server answers on Addr, NewDatabase gives a store a database of its own, and the process is
// gone (stopped by PID) once the test's cleanups have run.
func TestServerLifecycle(t *testing.T) {
	var pid int
	t.Run("server", func(t *testing.T) {
		ch := testenv.StartClickHouse(t)
		pid = ch.PID()
		t.Logf("ClickHouse %s ready in %v", ch.Version, ch.StartupTime)
		db := ch.NewDatabase(t)
		s, err := Open(t.Context(), Options{Addr: ch.Addr, Database: db, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		applyAll(t, s, indextest.Batches(indextest.GenerateRecords(1, 10), 10))
		wantPosition(t, s, 10)
	})
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("server pid %d after the test: kill -0 = %v, want ESRCH (no such process)", pid, err)
	}
}

// TestReset: Reset empties the index, so the next Open starts at position 0 and the log can be
// applied again; a Reset interrupted after any of its statements leaves a database that Open and
// re-applying the log turn into the right index; Reset refuses options Open would refuse before
// dropping anything, and a missing database is already reset.
func TestReset(t *testing.T) {
	ts := startServer(t)
	all := indextest.GenerateRecords(17, 350)
	entries, crashed := all[:300], all[300:]
	batches := indextest.Batches(entries, 100)
	// After the first k drops of Reset: what the next Open and indexer make of it.
	for k := 0; k <= len(resetOrder); k++ {
		dir := t.TempDir()
		o := ts.options(t, dir)
		s := ts.open(t, dir)
		applyAll(t, s, batches)
		// A crashed batch above the position, as a dying daemon may leave.
		if err := s.insertRecords(t.Context(), crashed); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if k == len(resetOrder) {
			if err := Reset(t.Context(), o); err != nil {
				t.Fatalf("Reset: %v", err)
			}
		}
		for _, table := range resetOrder[:k] {
			ts.sql(t, "DROP TABLE IF EXISTS "+o.Database+"."+table)
		}
		s = ts.open(t, dir)
		pos, err := s.Position(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case k <= 1: // only the bookkeeping is gone: the old index is intact
			wantPosition(t, s, batches[len(batches)-1].To)
		default: // everything left over is invisible until the log is applied again
			wantPosition(t, s, 0)
			keys := make([]index.Key, len(all))
			for i, e := range all {
				keys[i] = index.Key{Tenant: e.Record.Tenant, ID: e.Record.ID}
			}
			if found, err := s.LookupMany(t.Context(), keys); err != nil || len(found) != 0 {
				t.Fatalf("LookupMany after a reset found %d records, %v; want none", len(found), err)
			}
			applyAll(t, s, batches)
		}
		t.Logf("after %d of Reset's drops, Open found position %d", k, pos)
		checkIndexed(t, s, entries, crashed)
		s.Close()
	}

	dir := t.TempDir()
	s := ts.open(t, dir)
	applyAll(t, s, batches[:1])
	s.Close()
	o := ts.options(t, dir)
	o.Retention = time.Hour
	if err := Reset(t.Context(), o); err == nil || !strings.Contains(err.Error(), "ForceShortRetention") {
		t.Errorf("Reset with a retention Open refuses: err = %v, want a refusal", err)
	}
	s = ts.open(t, dir)
	wantPosition(t, s, batches[0].To) // nothing was dropped
	s.Close()
	if err := Reset(t.Context(), Options{Addr: ts.ch.Addr, Database: "never_created"}); err != nil {
		t.Errorf("Reset of a missing database: %v", err)
	}
}
