package indextest

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/query/index"
)

// Agents and policies of searchFixture. The agent ids are the same strings in every tenant, so
// an agent query that leaks across tenants shows.
const (
	planner  = "spiffe://crew.example/agent/planner"
	executor = "spiffe://crew.example/agent/executor"
	critic   = "spiffe://crew.example/agent/critic"
	crew     = "crew-policy"
	payments = "payments"
)

// searchRecord is one row of searchFixture.
type searchRecord struct {
	tenant, id, user, agent, policy, version, parent, effect, action string
	at                                                               time.Duration // after t0
}

// searchFixture is two small crews of acme, applied out of time order, with ties on time (which
// order by log index), a nanosecond offset, every effect, two policies with two versions, a
// parent with several children, and records in tenants "globex" and "Acme" that reuse acme's
// ids, users and agents.
func searchFixture() []index.Entry {
	m := time.Minute
	rows := []searchRecord{
		{"acme", "plan-1", "alice", planner, crew, "7", "", "allow", "plan", 0},
		{"acme", "exec-1", "alice", executor, payments, "12", "plan-1", "deny", "payment.initiate", m},
		{"acme", "exec-2", "alice", executor, payments, "12", "plan-1", "allow", "http.request", m},
		{"acme", "crit-1", "alice", critic, crew, "7", "exec-2", "allow", "review", 2 * m},
		{"globex", "plan-1", "alice", planner, crew, "7", "", "allow", "plan", 0},
		{"acme", "exec-3", "bob", executor, payments, "13", "plan-2", "escalate", "payment.initiate", m},
		{"acme", "plan-2", "bob", planner, crew, "7", "", "allow", "plan", 0},
		{"acme", "exec-4", "alice", executor, payments, "13", "plan-1", "modify", "db.query", 30*time.Second + time.Nanosecond},
		{"Acme", "exec-1", "alice", executor, payments, "12", "plan-1", "deny", "payment.initiate", m},
		{"acme", "exec-5", "alice", executor, payments, "12", "plan-1", "deny", "payment.initiate", 3 * m},
		{"globex", "exec-1", "alice", executor, payments, "12", "plan-1", "allow", "payment.initiate", m},
		{"acme", "crit-2", "bob", critic, crew, "8", "exec-3", "deny", "review", m},
	}
	// Action targets for the target filter: prefixes, and data with LIKE's pattern and escape
	// characters (%, _, \) next to rows that such a character, taken as a wildcard, would match.
	targets := map[string]string{
		"acme/plan-1":   `C:\reports\q1`,
		"acme/exec-1":   "customers/42",
		"acme/exec-2":   "customers/42/orders",
		"acme/crit-1":   "Customers/9",
		"acme/exec-4":   "100%/refund",
		"acme/exec-5":   "100x/refund",
		"acme/exec-3":   "customers_eu/7",
		"acme/plan-2":   "customersXeu/7",
		"acme/crit-2":   `C:Xreports`,
		"globex/exec-1": "customers/42",
		"Acme/exec-1":   "customers/42",
	}
	entries := make([]index.Entry, len(rows))
	for i, r := range rows {
		rec := minimal(r.tenant, r.id, r.user, t0.Add(r.at))
		rec.Agent = lineage.Agent{ID: r.agent}
		rec.Decision = lineage.Decision{Effect: r.effect, Policy: lineage.Policy{ID: r.policy, Version: r.version}}
		if r.effect != lineage.EffectAllow {
			rec.Decision.Reason = "fixture"
		}
		rec.Action.Type = r.action
		if target, ok := targets[r.tenant+"/"+r.id]; ok {
			rec.Action.Target = target
		}
		rec.ParentID = r.parent
		entries[i] = entry(uint64(i), rec)
	}
	return entries
}

// searchCase is a Records query over searchFixture with its answer, as "id@index" in acme (or
// "tenant/id@index" for other tenants).
type searchCase struct {
	name string
	q    index.Query
	want []string
}

// testRecordsSubjects: each subject selects what it names, in (time, log index) order, and
// nothing of another tenant, whatever the case of its name.
func (s suite) testRecordsSubjects(t *testing.T) {
	m := time.Minute
	s.runSearchCases(t, []searchCase{
		{"user", index.Query{UserID: "alice"}, []string{"plan-1@0", "exec-4@7", "exec-1@1", "exec-2@2", "crit-1@3", "exec-5@9"}},
		{"other user", index.Query{UserID: "bob"}, []string{"plan-2@6", "exec-3@5", "crit-2@11"}},
		{"agent", index.Query{AgentID: executor}, []string{"exec-4@7", "exec-1@1", "exec-2@2", "exec-3@5", "exec-5@9"}},
		{"agent of other tenant", index.Query{Tenant: "globex", AgentID: executor}, []string{"globex/exec-1@10"}},
		{"policy", index.Query{PolicyID: crew}, []string{"plan-1@0", "plan-2@6", "crit-2@11", "crit-1@3"}},
		{"policy ties by index", index.Query{PolicyID: payments, From: t0.Add(m), To: t0.Add(2 * m)},
			[]string{"exec-1@1", "exec-2@2", "exec-3@5"}},
		{"parent", index.Query{ParentID: "plan-1"}, []string{"exec-4@7", "exec-1@1", "exec-2@2", "exec-5@9"}},
		{"parent of one", index.Query{ParentID: "exec-2"}, []string{"crit-1@3"}},
		{"parent in case-variant tenant", index.Query{Tenant: "Acme", ParentID: "plan-1"}, []string{"Acme/exec-1@8"}},
		{"leaf has no children", index.Query{ParentID: "exec-5"}, nil},
		{"unknown user", index.Query{UserID: "ALICE"}, nil},
		{"unknown agent", index.Query{AgentID: strings.ToUpper(executor)}, nil},
		{"unknown policy", index.Query{PolicyID: "crew"}, nil},
		{"tenant by case", index.Query{Tenant: "ACME", UserID: "alice"}, nil},
		{"pattern characters", index.Query{Tenant: "a_me", UserID: "alice"}, nil},
	})
}

// testRecordsFilters: every filter narrows each subject, and they combine with AND.
func (s suite) testRecordsFilters(t *testing.T) {
	m := time.Minute
	s.runSearchCases(t, []searchCase{
		{"from inclusive", index.Query{UserID: "alice", From: t0.Add(m)}, []string{"exec-1@1", "exec-2@2", "crit-1@3", "exec-5@9"}},
		{"to exclusive", index.Query{UserID: "alice", To: t0.Add(m)}, []string{"plan-1@0", "exec-4@7"}},
		{"nanosecond window", index.Query{AgentID: executor, From: t0.Add(30*time.Second + time.Nanosecond),
			To: t0.Add(30*time.Second + 2*time.Nanosecond)}, []string{"exec-4@7"}},
		{"empty window", index.Query{PolicyID: payments, From: t0.Add(m), To: t0.Add(m)}, nil},
		{"inverted window", index.Query{PolicyID: payments, From: t0.Add(2 * m), To: t0.Add(m)}, nil},
		{"other time zone", index.Query{ParentID: "plan-1", From: t0.Add(m).In(time.FixedZone("X", -5*3600)),
			To: t0.Add(3 * m).In(time.FixedZone("Y", 2*3600))}, []string{"exec-1@1", "exec-2@2"}},
		{"far past and future", index.Query{UserID: "bob", From: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
			To: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}, []string{"plan-2@6", "exec-3@5", "crit-2@11"}},
		{"from after year 2262", index.Query{UserID: "bob", From: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}, nil},
		{"to before year 1678", index.Query{PolicyID: crew, To: time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)}, nil},
		{"effect", index.Query{UserID: "alice", Effects: []string{"deny"}}, []string{"exec-1@1", "exec-5@9"}},
		{"effects", index.Query{PolicyID: payments, Effects: []string{"deny", "escalate"}}, []string{"exec-1@1", "exec-3@5", "exec-5@9"}},
		{"effect no match", index.Query{ParentID: "plan-1", Effects: []string{"escalate"}}, nil},
		{"action type", index.Query{AgentID: executor, ActionTypes: []string{"payment.initiate"}},
			[]string{"exec-1@1", "exec-3@5", "exec-5@9"}},
		{"action types", index.Query{UserID: "alice", ActionTypes: []string{"plan", "review", "db.query"}},
			[]string{"plan-1@0", "exec-4@7", "crit-1@3"}},
		{"action type is exact", index.Query{UserID: "alice", ActionTypes: []string{"payment"}}, nil},
		{"agent narrows user", index.Query{UserID: "alice", Agent: critic}, []string{"crit-1@3"}},
		{"agent narrows policy", index.Query{PolicyID: crew, Agent: planner}, []string{"plan-1@0", "plan-2@6"}},
		{"agent narrows parent", index.Query{ParentID: "exec-3", Agent: executor}, nil},
		{"all filters", index.Query{PolicyID: payments, Agent: executor, Effects: []string{"deny", "allow"},
			ActionTypes: []string{"payment.initiate", "http.request"}, From: t0.Add(m), To: t0.Add(3 * m)},
			[]string{"exec-1@1", "exec-2@2"}},
		{"target", index.Query{UserID: "alice", ActionTarget: "customers/42"}, []string{"exec-1@1"}},
		{"target is exact", index.Query{UserID: "alice", ActionTarget: "customers/4"}, nil},
		{"target prefix", index.Query{UserID: "alice", ActionTarget: "customers/*"}, []string{"exec-1@1", "exec-2@2"}},
		{"target prefix includes equal", index.Query{UserID: "alice", ActionTarget: "customers/42*"}, []string{"exec-1@1", "exec-2@2"}},
		{"target prefix is case-sensitive", index.Query{UserID: "alice", ActionTarget: "Customers/*"}, []string{"crit-1@3"}},
		{"target prefix with _", index.Query{UserID: "bob", ActionTarget: "customers_eu/*"}, []string{"exec-3@5"}},
		{"target prefix with %", index.Query{UserID: "alice", ActionTarget: "100%/*"}, []string{"exec-4@7"}},
		{"target prefix %", index.Query{UserID: "alice", ActionTarget: "%*"}, nil},
		{"target prefix with \\", index.Query{UserID: "alice", ActionTarget: `C:\*`}, []string{"plan-1@0"}},
		{"target prefix \\ escapes nothing", index.Query{UserID: "bob", ActionTarget: `C:\Xr*`}, nil},
		{"target star inside is literal", index.Query{UserID: "alice", ActionTarget: "customers/*/orders"}, nil},
		{"target lone star", index.Query{ParentID: "plan-1", ActionTarget: "*"}, []string{"exec-4@7", "exec-1@1", "exec-2@2", "exec-5@9"}},
		{"target of agent", index.Query{AgentID: executor, ActionTarget: "customers*"}, []string{"exec-1@1", "exec-2@2", "exec-3@5"}},
		{"target of policy", index.Query{PolicyID: payments, ActionTarget: "100*"}, []string{"exec-4@7", "exec-5@9"}},
		{"target of parent", index.Query{ParentID: "plan-1", ActionTarget: "100x/refund"}, []string{"exec-5@9"}},
		{"target of other tenant", index.Query{Tenant: "globex", AgentID: executor, ActionTarget: "customers/*"}, []string{"globex/exec-1@10"}},
		{"target with filters", index.Query{AgentID: executor, ActionTarget: "customers*", Effects: []string{"deny", "escalate"},
			From: t0.Add(time.Minute), Limit: 1}, []string{"exec-1@1"}},
		{"target after a tie", index.Query{PolicyID: payments, ActionTarget: "customers*",
			After: &index.Cursor{TimeNS: t0.Add(m).UnixNano(), Index: 1}}, []string{"exec-2@2", "exec-3@5"}},
		{"target no match", index.Query{UserID: "alice", ActionTarget: "nothing/*"}, nil},
		{"quotes in filters", index.Query{UserID: "alice", Effects: []string{`de'ny`, `\`}, ActionTypes: []string{"x', 'plan"}}, nil},
		{"limit", index.Query{UserID: "alice", Limit: 2}, []string{"plan-1@0", "exec-4@7"}},
		{"limit after filters", index.Query{PolicyID: payments, Effects: []string{"deny"}, Limit: 1}, []string{"exec-1@1"}},
		{"negative limit is the default", index.Query{ParentID: "plan-1", Limit: -1}, []string{"exec-4@7", "exec-1@1", "exec-2@2", "exec-5@9"}},
		{"after a tie", index.Query{PolicyID: payments, After: &index.Cursor{TimeNS: t0.Add(m).UnixNano(), Index: 1}},
			[]string{"exec-2@2", "exec-3@5", "exec-5@9"}},
		{"after the last of a tie", index.Query{AgentID: executor, After: &index.Cursor{TimeNS: t0.Add(m).UnixNano(), Index: 5}},
			[]string{"exec-5@9"}},
		{"after between rows", index.Query{UserID: "alice", After: &index.Cursor{TimeNS: t0.Add(90 * time.Second).UnixNano(), Index: 0}},
			[]string{"crit-1@3", "exec-5@9"}},
		{"after with filters", index.Query{UserID: "alice", Effects: []string{"allow"}, Limit: 1,
			After: &index.Cursor{TimeNS: t0.UnixNano(), Index: 0}}, []string{"exec-2@2"}},
		{"after everything", index.Query{ParentID: "plan-1", After: &index.Cursor{TimeNS: t0.Add(3 * m).UnixNano(), Index: 9}}, nil},
	})
}

// runSearchCases applies searchFixture and checks each case's answer, and checks it against the
// reference answer too, so the expectations written here cannot drift from ReferenceRecords. A
// case without a tenant asks acme.
func (s suite) runSearchCases(t *testing.T, cases []searchCase) {
	st := s.fresh(t)
	entries := searchFixture()
	applyAll(t, st, 0, entries...)
	byIndex := map[uint64]index.Entry{}
	for _, e := range entries {
		byIndex[e.Index] = e
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			if q.Tenant == "" {
				q.Tenant = "acme"
			}
			rows, err := st.Records(t.Context(), q)
			if err != nil {
				t.Fatalf("Records(%+v): %v", q, err)
			}
			if rows == nil {
				t.Errorf("Records(%+v) = nil, want an empty slice", q)
			}
			want := make([]string, len(tc.want))
			for i, k := range tc.want {
				if !strings.Contains(k, "/") {
					k = "acme/" + k
				}
				want[i] = k
			}
			sameKeys(t, "Records", rowKeys(rows), want)
			sameKeys(t, "reference (fixture check)", entryKeys(ReferenceRecords(entries, q)), want)
			for _, r := range rows {
				checkRow(t, r, byIndex[r.Index])
			}
		})
	}
}

// testRecordsErrors: a query must name exactly one subject; an empty tenant is just a tenant
// with no records.
func (s suite) testRecordsErrors(t *testing.T) {
	st := s.fresh(t)
	applyAll(t, st, 0, searchFixture()...)
	if rows, err := st.Records(t.Context(), index.Query{PolicyID: crew}); err != nil || len(rows) != 0 {
		t.Errorf("Records of the empty tenant = %v, %v; want nothing", rowKeys(rows), err)
	}
	for _, q := range []index.Query{
		{Tenant: "acme"},
		{Tenant: "acme", Agent: executor, Effects: []string{"deny"}},
		{Tenant: "acme", UserID: "alice", AgentID: executor},
		{Tenant: "acme", PolicyID: crew, ParentID: "plan-1"},
		{Tenant: "acme", UserID: "alice", AgentID: executor, PolicyID: crew, ParentID: "plan-1"},
	} {
		if rows, err := st.Records(t.Context(), q); err == nil {
			t.Errorf("Records(%+v) = %d rows, want an error", q, len(rows))
		}
	}
}

// testRecordsPaging: following the cursor of each page's last row, with any page size,
// reproduces the unpaged answer exactly: no row twice, none skipped, even inside ties.
func (s suite) testRecordsPaging(t *testing.T) {
	st := s.fresh(t)
	entries := searchFixture()
	applyAll(t, st, 0, entries...)
	for _, q := range []index.Query{
		{Tenant: "acme", UserID: "alice"},
		{Tenant: "acme", AgentID: executor},
		{Tenant: "acme", PolicyID: payments},
		{Tenant: "acme", PolicyID: crew, Effects: []string{"allow"}},
		{Tenant: "acme", ParentID: "plan-1", From: t0.Add(time.Minute)},
		{Tenant: "acme", UserID: "alice", ActionTarget: "customers/*"},
		{Tenant: "acme", AgentID: executor, ActionTarget: "customers*"},
		{Tenant: "acme", PolicyID: payments, ActionTarget: "100*"},
	} {
		all := recordsOf(t, st, q)
		sameKeys(t, fmt.Sprintf("Records(%+v)", q), rowKeys(all), entryKeys(ReferenceRecords(entries, q)))
		for size := 1; size <= len(all)+1; size++ {
			checkPaging(t, st, q, size, all)
		}
	}
}

// checkPaging pages through q with pages of size rows and fails unless the pages, in order, are
// exactly all.
func checkPaging(t *testing.T, st index.Store, q index.Query, size int, all []index.Row) {
	t.Helper()
	var got []index.Row
	q.Limit, q.After = size, nil
	for range len(all) + 2 {
		page := recordsOf(t, st, q)
		if len(page) > size {
			t.Fatalf("Records(%+v) returned %d rows, more than its limit", q, len(page))
		}
		got = append(got, page...)
		if len(page) < size {
			break
		}
		q.After = cursorOf(t, page[len(page)-1])
	}
	sameKeys(t, fmt.Sprintf("pages of %d of %+v", size, q), rowKeys(got), rowKeys(all))
}

// cursorOf is the cursor that continues after r, computed as the API does: from the record's
// own time and log index.
func cursorOf(t *testing.T, r index.Row) *index.Cursor {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, r.Record.Time)
	if err != nil {
		t.Fatalf("record %s: time %q: %v", r.Record.ID, r.Record.Time, err)
	}
	return &index.Cursor{TimeNS: at.UnixNano(), Index: r.Index}
}

// recordsOf runs Records and fails the test on error.
func recordsOf(t *testing.T, st index.Store, q index.Query) []index.Row {
	t.Helper()
	rows, err := st.Records(t.Context(), q)
	if err != nil {
		t.Fatalf("Records(%+v): %v", q, err)
	}
	return rows
}

// testPolicyStats: a policy's decisions are counted once each, by effect and by version, within
// the window, and only in the tenant asked for.
func (s suite) testPolicyStats(t *testing.T) {
	st := s.fresh(t)
	entries := searchFixture()
	applyAll(t, st, 0, entries...)
	m := time.Minute
	tests := []struct {
		name             string
		tenant, policy   string
		from, to         time.Time
		total            int
		effects, version map[string]int
	}{
		{"all time", "acme", payments, time.Time{}, time.Time{}, 5,
			map[string]int{"allow": 1, "deny": 2, "escalate": 1, "modify": 1}, map[string]int{"12": 3, "13": 2}},
		{"window", "acme", payments, t0.Add(m), t0.Add(3 * m), 3,
			map[string]int{"allow": 1, "deny": 1, "escalate": 1}, map[string]int{"12": 2, "13": 1}},
		{"versions", "acme", crew, time.Time{}, time.Time{}, 4,
			map[string]int{"allow": 3, "deny": 1}, map[string]int{"7": 3, "8": 1}},
		{"to exclusive", "acme", crew, time.Time{}, t0, 0, map[string]int{}, map[string]int{}},
		{"from inclusive", "acme", crew, t0.Add(2 * m), time.Time{}, 1, map[string]int{"allow": 1}, map[string]int{"7": 1}},
		{"other tenant", "Acme", payments, time.Time{}, time.Time{}, 1, map[string]int{"deny": 1}, map[string]int{"12": 1}},
		{"tenant by case", "ACME", payments, time.Time{}, time.Time{}, 0, map[string]int{}, map[string]int{}},
		{"unknown policy", "acme", "Payments", time.Time{}, time.Time{}, 0, map[string]int{}, map[string]int{}},
		{"inverted window", "acme", payments, t0.Add(3 * m), t0, 0, map[string]int{}, map[string]int{}},
		{"from after year 2262", "acme", payments, time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), time.Time{}, 0, map[string]int{}, map[string]int{}},
		{"to before year 1678", "acme", payments, time.Time{}, time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC), 0, map[string]int{}, map[string]int{}},
	}
	for _, tc := range tests {
		got, err := st.PolicyStats(t.Context(), tc.tenant, tc.policy, tc.from, tc.to)
		if err != nil {
			t.Fatalf("%s: PolicyStats: %v", tc.name, err)
		}
		want := index.PolicyStats{Total: tc.total, ByEffect: tc.effects, ByVersion: tc.version}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: PolicyStats(%s, %s) = %+v, want %+v", tc.name, tc.tenant, tc.policy, got, want)
		}
		if ref := ReferencePolicyStats(entries, tc.tenant, tc.policy, tc.from, tc.to); !reflect.DeepEqual(ref, want) {
			t.Errorf("%s: reference = %+v, want %+v (fixture check)", tc.name, ref, want)
		}
	}
}
