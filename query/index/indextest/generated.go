package indextest

import (
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/query/index"
)

// testGenerated applies a few thousand generated crew records in batches of uneven sizes, with
// non-record entries between them, and checks every lookup, hundreds of user queries and
// hundreds of Records and PolicyStats queries against a brute-force filter over the same records.
func (s suite) testGenerated(t *testing.T) {
	st := s.fresh(t)
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(2026, 4))

	entries := GenerateRecords(1, 4000)
	// Every 37th log entry is not a decision record, so indexes have gaps.
	for i := range entries {
		entries[i].Index = uint64(i + i/36)
	}
	var pos uint64
	for rest := entries; len(rest) > 0; {
		n := min(len(rest), []int{1, 7, 100, 500, 1000}[rng.IntN(5)])
		b := index.Batch{From: pos, To: rest[n-1].Index + 1, Entries: rest[:n]}
		if len(rest) == n {
			b.To += 3 // the log ends with non-record entries
		}
		apply(t, st, b)
		pos, rest = b.To, rest[n:]
	}
	wantPosition(t, st, pos)

	t.Run("Lookup", func(t *testing.T) {
		for _, e := range entries {
			ref, err := st.Lookup(ctx, e.Record.Tenant, e.Record.ID)
			if err != nil {
				t.Fatalf("Lookup(%s, %s): %v", e.Record.Tenant, e.Record.ID, err)
			}
			if ref.Index != e.Index || ref.RecordHash != e.RecordHash {
				t.Errorf("Lookup(%s, %s) = index %d hash %x, want %d %x",
					e.Record.Tenant, e.Record.ID, ref.Index, ref.RecordHash, e.Index, e.RecordHash)
			}
		}
	})

	t.Run("FindID", func(t *testing.T) {
		byID := map[string][]string{}
		for _, e := range entries {
			byID[e.Record.ID] = append(byID[e.Record.ID], e.Record.Tenant)
		}
		for _, e := range entries[:300] {
			refs, err := st.FindID(ctx, e.Record.ID)
			if err != nil {
				t.Fatalf("FindID(%s): %v", e.Record.ID, err)
			}
			var tenants []string
			for _, r := range refs {
				tenants = append(tenants, r.Tenant)
			}
			slices.Sort(tenants)
			want := slices.Sorted(slices.Values(byID[e.Record.ID]))
			if !slices.Equal(tenants, want) {
				t.Errorf("FindID(%s) tenants = %v, want %v", e.Record.ID, tenants, want)
			}
		}
	})

	t.Run("Get", func(t *testing.T) {
		for _, i := range rng.Perm(len(entries))[:300] {
			e := entries[i]
			row, err := st.Get(ctx, e.Record.Tenant, e.Record.ID)
			if err != nil {
				t.Fatalf("Get(%s, %s): %v", e.Record.Tenant, e.Record.ID, err)
			}
			checkRow(t, row, e)
		}
	})

	t.Run("UserActions", func(t *testing.T) {
		for _, q := range generatedQueries(rng, entries) {
			rows, err := st.UserActions(ctx, q)
			if err != nil {
				t.Fatalf("UserActions(%+v): %v", q, err)
			}
			want := bruteUserActions(entries, q)
			if got, wantKeys := rowKeys(rows), entryKeys(want); !slices.Equal(got, wantKeys) {
				t.Fatalf("UserActions(%s/%s, [%s, %s), limit %d):\n got  %d rows %s\n want %d rows %s",
					q.Tenant, q.UserID, fmtTime(q.From), fmtTime(q.To), q.Limit,
					len(got), strings.Join(got, " "), len(wantKeys), strings.Join(wantKeys, " "))
			}
			for i := range rows {
				checkRow(t, rows[i], want[i])
			}
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		if _, err := st.Lookup(ctx, "acme", "task-99999-0"); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("Lookup of an id never generated: err = %v, want ErrNotFound", err)
		}
	})

	searchGenerated(t, st, entries, rng)
}

// generatedQueries returns user queries over entries: every (tenant, user) unbounded, the same user
// ids in tenants where they never acted, and random windows whose bounds often fall exactly on a
// record's time, with and without limits.
func generatedQueries(rng *rand.Rand, entries []index.Entry) []index.UserQuery {
	users := map[[2]string]bool{}
	tenants := map[string]bool{}
	for _, e := range entries {
		users[[2]string{e.Record.Tenant, e.Record.User.ID}] = true
		tenants[e.Record.Tenant] = true
	}
	var qs []index.UserQuery
	all := len(entries) + 1
	for _, u := range sortedPairs(users) {
		qs = append(qs, index.UserQuery{Tenant: u[0], UserID: u[1], Limit: all})
		for _, tenant := range slices.Sorted(maps.Keys(tenants)) {
			if !users[[2]string{tenant, u[1]}] {
				qs = append(qs, index.UserQuery{Tenant: tenant, UserID: u[1], Limit: all})
			}
		}
	}
	bound := func() time.Time {
		switch rng.IntN(4) {
		case 0:
			return time.Time{}
		case 1: // between records
			return genBase.Add(time.Duration(rng.Int64N(int64(genWindow))))
		default: // exactly at a record
			return entries[rng.IntN(len(entries))].Time
		}
	}
	for range 400 {
		e := entries[rng.IntN(len(entries))] // a user weighted by activity
		q := index.UserQuery{Tenant: e.Record.Tenant, UserID: e.Record.User.ID, From: bound(), To: bound(), Limit: all}
		if rng.IntN(2) == 0 && !q.From.IsZero() && !q.To.IsZero() && q.To.Before(q.From) {
			q.From, q.To = q.To, q.From
		}
		if rng.IntN(3) == 0 {
			q.Limit = 1 + rng.IntN(50)
		}
		qs = append(qs, q)
	}
	return qs
}

// sortedPairs returns the keys of m in order, so the queries do not depend on map iteration.
func sortedPairs(m map[[2]string]bool) [][2]string {
	keys := make([][2]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int {
		if c := strings.Compare(a[0], b[0]); c != 0 {
			return c
		}
		return strings.Compare(a[1], b[1])
	})
	return keys
}

// fmtTime prints a window bound, "open" for the zero time.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "open"
	}
	return t.Format(time.RFC3339Nano)
}
