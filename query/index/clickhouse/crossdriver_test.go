package clickhouse

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/query/index"
	"github.com/lineage-audit/lineage/query/index/indextest"
	"github.com/lineage-audit/lineage/query/index/sqlite"
)

// TestSameAnswersAsSQLite applies one generated record set (multi-tenant crews with delegations,
// denies and oversight events, non-record gaps in the log, batches of uneven sizes) to the SQLite
// driver and to this one, and requires deep-equal answers from both: Lookup, Get and FindID for
// every record and a few absent ones, UserActions for every (tenant, user), unbounded and
// over random windows and limits, Records for every subject with random filters, windows,
// cursors and limits (and page by page), PolicyStats over random windows, and LookupMany. The conformance suite checks each driver against a brute-force
// reference; this checks them against each other on exactly the values the API serves, down to
// the decoded records and empty-versus-nil results, so either can replace the other.
func TestSameAnswersAsSQLite(t *testing.T) {
	ts := startServer(t)
	ctx := t.Context()
	ch := ts.fresh(t)
	lite, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	stores := []index.Store{lite, ch}

	// 3,000 records keep the test to about twenty seconds: each point query is a ClickHouse
	// query of a few milliseconds, and every record is looked up and fetched from both stores.
	entries := indextest.GenerateRecords(2027, 3000)
	for i := range entries {
		entries[i].Index = uint64(i + i/50) // a non-record entry after every 50 records
	}
	rng := rand.New(rand.NewPCG(5, 6))
	var pos uint64
	for rest := entries; len(rest) > 0; {
		n := min(len(rest), []int{1, 13, 250, 1000}[rng.IntN(4)])
		b := index.Batch{From: pos, To: rest[n-1].Index + 1, Entries: rest[:n]}
		for _, st := range stores {
			if err := st.Apply(ctx, b); err != nil {
				t.Fatalf("%T.Apply [%d,%d): %v", st, b.From, b.To, err)
			}
		}
		pos, rest = b.To, rest[n:]
	}

	// same calls f on both stores and fails unless the results (values and errors) agree.
	same := func(what string, f func(index.Store) (any, error)) {
		t.Helper()
		want, werr := f(lite)
		got, gerr := f(ch)
		if (werr == nil) != (gerr == nil) || (werr != nil && errors.Is(werr, index.ErrNotFound) != errors.Is(gerr, index.ErrNotFound)) {
			t.Fatalf("%s: SQLite err = %v, ClickHouse err = %v", what, werr, gerr)
		}
		if !reflect.DeepEqual(got, withoutEnvelope(want)) {
			t.Fatalf("%s differs:\n SQLite     %+v\n ClickHouse %+v", what, want, got)
		}
	}
	same("Position", func(st index.Store) (any, error) { return st.Position(ctx) })

	users := map[[2]string]bool{}
	tenants := map[string]bool{}
	for _, e := range entries {
		r := e.Record
		users[[2]string{r.Tenant, r.User.ID}] = true
		tenants[r.Tenant] = true
		same("Lookup "+r.Tenant+"/"+r.ID, func(st index.Store) (any, error) { return st.Lookup(ctx, r.Tenant, r.ID) })
		same("Get "+r.Tenant+"/"+r.ID, func(st index.Store) (any, error) { return st.Get(ctx, r.Tenant, r.ID) })
	}
	for _, e := range entries[:500] {
		same("FindID "+e.Record.ID, func(st index.Store) (any, error) { return st.FindID(ctx, e.Record.ID) })
	}
	for _, k := range [][2]string{{"acme", "nope"}, {"ACME", entries[0].Record.ID}, {"", ""}} {
		same("Lookup of an absent record", func(st index.Store) (any, error) { return st.Lookup(ctx, k[0], k[1]) })
		same("Get of an absent record", func(st index.Store) (any, error) { return st.Get(ctx, k[0], k[1]) })
		same("FindID of an absent id", func(st index.Store) (any, error) { return st.FindID(ctx, k[1]) })
	}

	start, end := entries[0].Time, entries[0].Time
	for _, e := range entries {
		if e.Time.Before(start) {
			start = e.Time
		}
		if e.Time.After(end) {
			end = e.Time
		}
	}
	userList := slices.SortedFunc(maps.Keys(users), func(a, b [2]string) int {
		return cmp.Or(strings.Compare(a[0], b[0]), strings.Compare(a[1], b[1]))
	})
	for _, u := range userList {
		queries := []index.UserQuery{
			{Tenant: u[0], UserID: u[1]},                      // default limit
			{Tenant: u[0], UserID: u[1], Limit: len(entries)}, // everything
			{Tenant: u[0] + "x", UserID: u[1], Limit: 10},     // another tenant: nothing
		}
		for range 3 {
			from := start.Add(time.Duration(rng.Int64N(int64(end.Sub(start)))))
			if rng.IntN(3) == 0 {
				from = entries[rng.IntN(len(entries))].Time // on a record's time exactly
			}
			queries = append(queries, index.UserQuery{Tenant: u[0], UserID: u[1], From: from,
				To: from.Add(time.Duration(rng.Int64N(int64(10 * 24 * time.Hour)))), Limit: rng.IntN(40)})
		}
		for _, q := range queries {
			same("UserActions "+q.Tenant+"/"+q.UserID, func(st index.Store) (any, error) { return st.UserActions(ctx, q) })
		}
	}

	// The lineage API's queries: every shape the conformance suite generates, pages followed by
	// their cursors, and the policy aggregates over random windows.
	searches := indextest.SearchQueries(rng, entries)
	for _, q := range searches {
		same("Records "+fmt.Sprintf("%+v", q), func(st index.Store) (any, error) { return st.Records(ctx, q) })
	}
	for _, i := range rng.Perm(len(searches))[:10] {
		q := searches[i]
		q.Limit, q.After = 1+rng.IntN(40), nil
		for page := 0; page < 20; page++ {
			rows, err := lite.Records(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			same(fmt.Sprintf("Records page %d of %+v", page, q), func(st index.Store) (any, error) { return st.Records(ctx, q) })
			if len(rows) < q.Limit {
				break
			}
			last := rows[len(rows)-1]
			at, err := time.Parse(time.RFC3339Nano, last.Record.Time)
			if err != nil {
				t.Fatal(err)
			}
			q.After = &index.Cursor{TimeNS: at.UnixNano(), Index: last.Index}
		}
	}
	for _, tenant := range slices.Sorted(maps.Keys(tenants)) {
		for _, policy := range []string{entries[0].Record.Decision.Policy.ID, "no-such-policy"} {
			for range 5 {
				from := start.Add(time.Duration(rng.Int64N(int64(end.Sub(start)))))
				to := from.Add(time.Duration(rng.Int64N(int64(10 * 24 * time.Hour))))
				same("PolicyStats "+tenant+"/"+policy, func(st index.Store) (any, error) {
					return st.PolicyStats(ctx, tenant, policy, from, to)
				})
			}
			same("PolicyStats "+tenant+"/"+policy+" all time", func(st index.Store) (any, error) {
				return st.PolicyStats(ctx, tenant, policy, time.Time{}, time.Time{})
			})
		}
	}
	keys := make([]index.Key, 0, len(entries))
	for _, e := range entries {
		keys = append(keys, index.Key{Tenant: e.Record.Tenant, ID: e.Record.ID}, index.Key{Tenant: "x" + e.Record.Tenant, ID: e.Record.ID})
	}
	same("LookupMany", func(st index.Store) (any, error) { return st.(index.BatchLookup).LookupMany(ctx, keys) })
	t.Logf("%d records, %d tenants, %d users, %d searches: identical answers", len(entries), len(tenants), len(users), len(searches))
}

// withoutEnvelope clears the rows' envelope inputs (index.Row.ReceivedAt, SourceVerified), which
// the SQLite driver returns and ClickHouse does not store: answers rebuild leaves from them only
// where a driver has them (query/lineage_api.go).
func withoutEnvelope(v any) any {
	switch x := v.(type) {
	case index.Row:
		x.ReceivedAt, x.SourceVerified = time.Time{}, false
		return x
	case []index.Row:
		if x == nil {
			return x
		}
		out := make([]index.Row, len(x))
		for i, r := range x {
			out[i] = withoutEnvelope(r).(index.Row)
		}
		return out
	}
	return v
}
