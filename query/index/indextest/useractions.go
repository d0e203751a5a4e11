package indextest

import (
	"fmt"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/query/index"
)

// userFixture is acme/alice's history, applied in an order that is not time order, with two
// records at the same instant, one at a nanosecond offset, and records of other users and of the
// same user id in another tenant in between.
func userFixture() []index.Entry {
	h := time.Hour
	return []index.Entry{
		entry(0, minimal("acme", "a", "alice", t0.Add(2*h))),
		entry(1, minimal("acme", "b", "alice", t0)),
		entry(2, minimal("acme", "c", "bob", t0.Add(h))),
		entry(3, minimal("acme", "z", "alice", t0.Add(h))), // sorts after f by id, before it by index
		entry(4, minimal("globex", "e", "alice", t0.Add(30*time.Minute))),
		entry(5, minimal("acme", "f", "alice", t0.Add(h))), // same instant as z, later in the log
		entry(6, minimal("acme", "g", "alice", t0.Add(3*h))),
		entry(7, minimal("acme", "h", "alice", t0.Add(90*time.Minute+time.Nanosecond))),
	}
}

// testUserActionsWindow: the window is half-open, From <= time < To, so consecutive windows
// partition a history without overlap; a zero bound is open; results are ordered by time, then by
// log index for equal times; a window is an instant, whatever the time zone it is written in.
func (s suite) testUserActionsWindow(t *testing.T) {
	st := s.fresh(t)
	entries := userFixture()
	applyAll(t, st, 0, entries...)

	h := time.Hour
	cet := time.FixedZone("CET", 3600)
	tests := []struct {
		name     string
		from, to time.Time
		want     []string
	}{
		{"open", time.Time{}, time.Time{}, []string{"b@1", "z@3", "f@5", "h@7", "a@0", "g@6"}},
		{"from is inclusive", t0.Add(h), time.Time{}, []string{"z@3", "f@5", "h@7", "a@0", "g@6"}},
		{"to is exclusive", time.Time{}, t0.Add(2 * h), []string{"b@1", "z@3", "f@5", "h@7"}},
		{"closed", t0.Add(h), t0.Add(2 * h), []string{"z@3", "f@5", "h@7"}},
		{"empty window", t0.Add(h), t0.Add(h), nil},
		{"inverted window", t0.Add(2 * h), t0.Add(h), nil},
		{"nanosecond from", t0.Add(90*time.Minute + time.Nanosecond), t0.Add(2*h + time.Nanosecond), []string{"h@7", "a@0"}},
		{"nanosecond after", t0.Add(90*time.Minute + 2*time.Nanosecond), t0.Add(2*h + time.Nanosecond), []string{"a@0"}},
		{"to just after", time.Time{}, t0.Add(time.Nanosecond), []string{"b@1"}},
		{"to at first", time.Time{}, t0, nil},
		{"from at last", t0.Add(3 * h), time.Time{}, []string{"g@6"}},
		{"other time zone", t0.Add(h).In(cet), t0.Add(2 * h).In(cet), []string{"z@3", "f@5", "h@7"}},
		{"far past", time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), t0.Add(time.Nanosecond), []string{"b@1"}},
		{"far future", t0.Add(3 * h), time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), []string{"g@6"}},
		{"after everything", t0.Add(4 * h), time.Time{}, nil},
		{"from after year 2262", time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), time.Time{}, nil},
		{"to before year 1678", time.Time{}, time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := index.UserQuery{Tenant: "acme", UserID: "alice", From: tc.from, To: tc.to}
			rows, err := st.UserActions(t.Context(), q)
			if err != nil {
				t.Fatalf("UserActions: %v", err)
			}
			want := make([]string, len(tc.want))
			for i, k := range tc.want {
				want[i] = "acme/" + k
			}
			sameKeys(t, "UserActions", rowKeys(rows), want)
			sameKeys(t, "brute force (fixture check)", entryKeys(bruteUserActions(entries, q)), want)
			for _, r := range rows {
				checkRow(t, r, entries[r.Index])
			}
		})
	}
}

// testUserActionsLimit: Limit keeps the first rows in time order (not log order); 0 means the
// driver's default, which is at least a few rows.
func (s suite) testUserActionsLimit(t *testing.T) {
	st := s.fresh(t)
	entries := userFixture()
	applyAll(t, st, 0, entries...)
	tests := []struct {
		limit int
		from  time.Time
		want  []string
	}{
		{0, time.Time{}, []string{"b@1", "z@3", "f@5", "h@7", "a@0", "g@6"}},
		{1, time.Time{}, []string{"b@1"}},
		{2, time.Time{}, []string{"b@1", "z@3"}},
		{3, t0.Add(time.Hour), []string{"z@3", "f@5", "h@7"}},
		{6, time.Time{}, []string{"b@1", "z@3", "f@5", "h@7", "a@0", "g@6"}},
		{1000, time.Time{}, []string{"b@1", "z@3", "f@5", "h@7", "a@0", "g@6"}},
	}
	for _, tc := range tests {
		q := index.UserQuery{Tenant: "acme", UserID: "alice", From: tc.from, Limit: tc.limit}
		rows, err := st.UserActions(t.Context(), q)
		if err != nil {
			t.Fatalf("UserActions(limit %d): %v", tc.limit, err)
		}
		want := make([]string, len(tc.want))
		for i, k := range tc.want {
			want[i] = "acme/" + k
		}
		sameKeys(t, "UserActions", rowKeys(rows), want)
	}
}

// testTenantIsolation: a user id is meaningful only inside its tenant, so the same id in another
// tenant (including one that differs only by case) never shows up in lookups or user queries.
func (s suite) testTenantIsolation(t *testing.T) {
	st := s.fresh(t)
	ctx := t.Context()
	var entries []index.Entry
	add := func(r lineage.Record) { entries = append(entries, entry(uint64(len(entries)), r)) }
	for i, tenant := range []string{"acme", "globex", "Acme", "acme2", "acm"} {
		add(minimal(tenant, "rec", "alice", t0)) // same id, user and time in every tenant
		for j := 1; j <= 2; j++ {
			at := t0.Add(time.Duration(j)*time.Minute + time.Duration(i)*time.Second)
			add(minimal(tenant, fmt.Sprintf("rec-%d", j), "alice", at))
		}
		add(minimal(tenant, "rec-bob", "bob", t0))
	}
	applyAll(t, st, 0, entries...)

	for _, tenant := range []string{"acme", "globex", "Acme", "acme2", "acm", "ACME", "", "acme%", "a_me"} {
		q := index.UserQuery{Tenant: tenant, UserID: "alice"}
		rows, err := st.UserActions(ctx, q)
		if err != nil {
			t.Fatalf("UserActions(%q, alice): %v", tenant, err)
		}
		sameKeys(t, "UserActions("+tenant+", alice)", rowKeys(rows), entryKeys(bruteUserActions(entries, q)))
		for _, r := range rows {
			if r.Record.Tenant != tenant {
				t.Errorf("UserActions(%q, alice) returned a record of tenant %q", tenant, r.Record.Tenant)
			}
		}
	}
	for _, user := range []string{"ALICE", "alic", "alice%", ""} {
		rows, err := st.UserActions(ctx, index.UserQuery{Tenant: "acme", UserID: user})
		if err != nil || len(rows) != 0 {
			t.Errorf("UserActions(acme, %q) = %v, %v; want nothing", user, rowKeys(rows), err)
		}
	}
	for _, e := range entries {
		row, err := st.Get(ctx, e.Record.Tenant, e.Record.ID)
		if err != nil {
			t.Fatalf("Get(%s, %s): %v", e.Record.Tenant, e.Record.ID, err)
		}
		checkRow(t, row, e)
	}
}
