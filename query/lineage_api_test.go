package query_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/query"
)

func rawGet(t *testing.T, u string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	return b
}

func TestLineageQueriesVerifyOffline(t *testing.T) {
	recs := demo.Generate(demo.Options{Seed: 9, Tenants: 1}, 400)
	tenant := recs[0].Tenant
	// A crew that reuses one agent identity as executor and critic, and a user whose issuer is
	// not an identity provider: both must be flagged.
	shared := recs[1]
	shared.ID, shared.Role, shared.Agent.ID = "shared-1", "critic", recs[1].Agent.ID
	unbound := recs[2]
	unbound.ID, unbound.User.Issuer = "unbound-1", "local-directory"
	recs = append(recs, shared, unbound)
	srv, _, v := apiRig(t, recs)
	base := srv.URL + "/v1/lineage/"

	// User tree, paged: the pages together hold exactly the user's records, each verifiable.
	user := recs[0].User.ID
	want := map[string]bool{}
	for _, r := range recs {
		if r.User.ID == user {
			want[r.ID] = true
		}
	}
	got := map[string]bool{}
	cursor := ""
	pages := 0
	for {
		u := base + "users/" + url.PathEscape(user) + "?tenant=" + tenant + "&limit=7"
		if cursor != "" {
			u += "&cursor=" + cursor
		}
		raw := rawGet(t, u)
		res, err := query.VerifyAnswer("users", user, raw, v)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		var ul query.UserLineage
		json.Unmarshal(raw, &ul)
		if res.Actions != ul.Actions {
			t.Fatalf("verified %d of %d actions", res.Actions, ul.Actions)
		}
		collect(ul.Agents, got)
		pages++
		if cursor = ul.NextCursor; cursor == "" {
			break
		}
	}
	if len(got) != len(want) || pages < 2 {
		t.Fatalf("pages returned %d records in %d pages, want %d", len(got), pages, len(want))
	}

	// Filters: only denies, only one action type.
	raw := rawGet(t, base+"users/"+url.PathEscape(user)+"?tenant="+tenant+"&effect=deny&effect=modify&proofs=false")
	var ul query.UserLineage
	json.Unmarshal(raw, &ul)
	for id := range collect(ul.Agents, map[string]bool{}) {
		for _, r := range recs {
			if r.ID == id && r.Decision.Effect != "deny" && r.Decision.Effect != "modify" {
				t.Fatalf("effect filter let %s (%s) through", id, r.Decision.Effect)
			}
		}
	}

	// Agent: its actions and the users it acted for; the shared identity is flagged.
	agent := recs[1].Agent.ID
	raw = rawGet(t, base+"agents/"+url.PathEscape(agent)+"?tenant="+tenant+"&limit=99999")
	if _, err := query.VerifyAnswer("agents", agent, raw, v); err != nil {
		t.Fatal(err)
	}
	var al query.AgentLineage
	json.Unmarshal(raw, &al)
	n := 0
	for _, r := range recs {
		if r.Agent.ID == agent {
			n++
		}
	}
	if len(al.Actions) != n || len(al.Users) == 0 || !hasFlag(al.Flags, "shared_agent_id") {
		t.Fatalf("agent answer: %d actions (want %d), %d users, flags %+v", len(al.Actions), n, len(al.Users), al.Flags)
	}

	// Action chain: from a deep action up to the authorizing person.
	var deep lineage.Record
	for _, r := range recs[:400] {
		if r.ParentID != "" {
			deep = r
		}
	}
	raw = rawGet(t, base+"actions/"+url.PathEscape(deep.ID)+"?tenant="+tenant)
	if _, err := query.VerifyAnswer("actions", deep.ID, raw, v); err != nil {
		t.Fatal(err)
	}
	var ch query.ActionChain
	json.Unmarshal(raw, &ch)
	if len(ch.Chain) < 2 || !ch.Complete || ch.AuthorizedBy != deep.User || ch.Chain[len(ch.Chain)-1].ParentID != "" {
		t.Fatalf("chain of %s: %d links, complete %v, authorized by %v", deep.ID, len(ch.Chain), ch.Complete, ch.AuthorizedBy)
	}
	// An escalated action shows the human review recorded under it.
	for _, r := range recs {
		if r.HumanOversight != nil && r.ParentID != "" {
			raw = rawGet(t, base+"actions/"+url.PathEscape(r.ParentID)+"?tenant="+tenant)
			json.Unmarshal(raw, &ch)
			if len(ch.Oversight) == 0 || ch.Oversight[0].HumanOversight == nil {
				t.Fatalf("the review %s under %s is not in the chain's oversight", r.ID, r.ParentID)
			}
			if _, err := query.VerifyAnswer("actions", r.ParentID, raw, v); err != nil {
				t.Fatal(err)
			}
			break
		}
	}

	// Policy: counts by effect match the records; examples verify.
	pol := recs[0].Decision.Policy.ID
	raw = rawGet(t, base+"policies/"+url.PathEscape(pol)+"?tenant="+tenant)
	if _, err := query.VerifyAnswer("policies", pol, raw, v); err != nil {
		t.Fatal(err)
	}
	var pd query.PolicyDecisions
	json.Unmarshal(raw, &pd)
	byEffect := map[string]int{}
	for _, r := range recs {
		if r.Decision.Policy.ID == pol {
			byEffect[r.Decision.Effect]++
		}
	}
	for e, c := range byEffect {
		if pd.Stats.ByEffect[e] != c {
			t.Fatalf("policy %s: %s = %d, want %d", pol, e, pd.Stats.ByEffect[e], c)
		}
	}
	raw = rawGet(t, base+"users/"+url.PathEscape(unbound.User.ID)+"?tenant="+tenant)
	json.Unmarshal(raw, &ul)
	if !hasFlag(ul.Flags, "unbound_user") {
		t.Fatalf("a user with issuer %q is not flagged: %+v", unbound.User.Issuer, ul.Flags)
	}

	// Tampering with any part of an answer is caught offline.
	raw = rawGet(t, base+"agents/"+url.PathEscape(agent)+"?tenant="+tenant)
	for name, mutate := range map[string]func(*query.AgentLineage){
		"effect changed":      func(a *query.AgentLineage) { a.Actions[0].Decision.Effect = "allow-ish" },
		"foreign leaf":        func(a *query.AgentLineage) { a.Actions[0].Proof = a.Actions[1].Proof },
		"proof removed":       func(a *query.AgentLineage) { a.Actions[0].Proof = nil },
		"index moved":         func(a *query.AgentLineage) { a.Actions[0].LogIndex++ },
		"checkpoint replaced": func(a *query.AgentLineage) { a.Checkpoint = strings.Replace(a.Checkpoint, "\n", "\n\n", 1) },
		"record id changed":   func(a *query.AgentLineage) { a.Actions[0].ID += "x" },
	} {
		var a query.AgentLineage
		json.Unmarshal(raw, &a)
		mutate(&a)
		b, _ := json.Marshal(a)
		if _, err := query.VerifyAnswer("agents", agent, b, v); err == nil {
			t.Errorf("%s: the answer still verified", name)
		}
	}
}

func collect(as []*query.AgentNode, into map[string]bool) map[string]bool {
	for _, a := range as {
		for _, x := range a.Actions {
			into[x.ID] = true
		}
		collect(a.Agents, into)
	}
	return into
}

func hasFlag(fs []query.Flag, kind string) bool {
	for _, f := range fs {
		if f.Kind == kind {
			return true
		}
	}
	return false
}

// TestLineageActionTarget: action_target narrows the user, agent and policy answers to one
// target or, ending in *, to a literal prefix (LIKE's % and _ included), pages consistently with
// the cursor, and refuses what it cannot answer.
func TestLineageActionTarget(t *testing.T) {
	recs := demo.Generate(demo.Options{Seed: 3, Tenants: 1}, 120)
	tenant, user := recs[0].Tenant, recs[0].User.ID
	var mine []int // the user's records
	for i, r := range recs {
		if r.User.ID == user {
			mine = append(mine, i)
		}
	}
	if len(mine) < 6 {
		t.Fatalf("user %s has %d records, the test needs 6", user, len(mine))
	}
	for k, target := range []string{"customers/42", "customers/42/orders", "Customers/9", "customers_eu/1", "customersXeu/1", "100%/off"} {
		recs[mine[k]].Action.Target = target
	}
	srv, _, v := apiRig(t, recs)
	base := srv.URL + "/v1/lineage/"

	// ids asks endpoint about subject with the extra query and returns the action ids of all
	// pages, following next_cursor.
	ids := func(endpoint, subject, extra string) []string {
		t.Helper()
		var out []string
		cursor := ""
		for range len(recs) + 1 {
			u := base + endpoint + "/" + url.PathEscape(subject) + "?tenant=" + tenant + "&proofs=false&limit=2" + extra
			if cursor != "" {
				u += "&cursor=" + cursor
			}
			raw := rawGet(t, u)
			var ul query.UserLineage
			var ans struct {
				Actions, Examples []*query.ActionNode
			}
			if endpoint == "users" {
				if err := json.Unmarshal(raw, &ul); err != nil {
					t.Fatal(err)
				}
				for id := range collect(ul.Agents, map[string]bool{}) {
					out = append(out, id)
				}
			} else if err := json.Unmarshal(raw, &ans); err != nil || json.Unmarshal(raw, &ul.Answer) != nil {
				t.Fatal(err)
			}
			for _, a := range append(ans.Actions, ans.Examples...) {
				out = append(out, a.ID)
			}
			if cursor = ul.NextCursor; cursor == "" {
				return out
			}
		}
		t.Fatalf("%s %s%s: the cursor never ends", endpoint, subject, extra)
		return nil
	}
	want := func(match func(r lineage.Record) bool, target func(string) bool) []string {
		var out []string
		for _, r := range recs {
			if match(r) && target(r.Action.Target) {
				out = append(out, r.ID)
			}
		}
		return out
	}
	same := func(what string, got, want []string) {
		t.Helper()
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: got %v, want %v", what, got, want)
		}
	}
	exact := func(s string) func(string) bool { return func(x string) bool { return x == s } }
	prefix := func(s string) func(string) bool { return func(x string) bool { return strings.HasPrefix(x, s) } }
	byUser := func(r lineage.Record) bool { return r.User.ID == user }
	for _, tc := range []struct{ param, target string }{
		{"customers/42", "customers/42"},
		{"customers/*", "customers/"},
		{"customers_eu/*", "customers_eu/"},
		{"100%25/*", "100%/"}, // the URL encoding of 100%/*
		{"%25*", "%"},
		{"customers/4", "customers/4"},
		{"nothing/*", "nothing/"},
	} {
		match := exact(tc.target)
		if strings.HasSuffix(tc.param, "*") {
			match = prefix(tc.target)
		}
		same("user, action_target="+tc.param, ids("users", user, "&action_target="+tc.param), want(byUser, match))
	}
	// The brute-force answers are not vacuous: the prefix finds both rewritten targets and
	// neither the other case nor the underscore's.
	got := ids("users", user, "&action_target=customers/*")
	for k, in := range []bool{true, true, false, false} {
		if id := recs[mine[k]].ID; slices.Contains(got, id) != in {
			t.Errorf("customers/* matched %v: %s (%s) in it is %v", got, id, recs[mine[k]].Action.Target, !in)
		}
	}

	// Agent and policy answers filter the same way, and combine with the other filters.
	agent, pol := recs[mine[0]].Agent.ID, recs[mine[0]].Decision.Policy.ID
	same("agent", ids("agents", agent, "&action_target=customers*"),
		want(func(r lineage.Record) bool { return r.Agent.ID == agent }, prefix("customers")))
	same("policy", ids("policies", pol, "&action_target=customers/42"),
		want(func(r lineage.Record) bool { return r.Decision.Policy.ID == pol }, exact("customers/42")))
	eff := recs[mine[0]].Decision.Effect
	same("policy with effect", ids("policies", pol, "&action_target=customers*&effect="+eff),
		want(func(r lineage.Record) bool { return r.Decision.Policy.ID == pol && r.Decision.Effect == eff }, prefix("customers")))

	// A filtered answer verifies like any other.
	raw := rawGet(t, base+"users/"+url.PathEscape(user)+"?tenant="+tenant+"&action_target=customers/*")
	if _, err := query.VerifyAnswer("users", user, raw, v); err != nil {
		t.Fatal(err)
	}
	rawGet(t, base+"users/"+url.PathEscape(user)+"?tenant="+tenant+"&action_target="+strings.Repeat("a", query.MaxActionTarget))

	for _, bad := range []string{"*", "%2A", "a&action_target=b", strings.Repeat("a", query.MaxActionTarget+1), "%FF*", "a%00b"} {
		for _, endpoint := range []string{"users/" + url.PathEscape(user), "agents/" + url.PathEscape(agent), "policies/" + url.PathEscape(pol)} {
			resp, err := http.Get(base + endpoint + "?tenant=" + tenant + "&action_target=" + bad)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%s action_target=%.20s: status %d, want 400", endpoint, bad, resp.StatusCode)
			}
		}
	}
}
