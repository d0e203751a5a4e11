package query_test

import (
	"bytes"
	"encoding/json"
	"net/url"
	"testing"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/query"
	"github.com/lineage-audit/lineage/verify"
)

// TestAnswerJSONMatchesEncodingJSON holds the streamed encoder of the big answers to the bytes
// encoding/json (gin's c.JSON) writes for the same value: strings that need escaping (HTML
// characters, controls, U+2028, invalid UTF-8), omitted and empty fields, nil and empty slices,
// nested agents, proofs and none.
func TestAnswerJSONMatchesEncodingJSON(t *testing.T) {
	weird := []string{"", "plain", `q"uo\te`, "<script>&amp;</script>", "tab\tnl\ncr\rbs\bff\f\x00\x01\x1f\x7f",
		"line\u2028sep\u2029", "bad\xffutf8\xc3", "émoji 🎉 ünï", "\xed\xa0\x80surrogate"}
	node := func(i int, s string, proof bool) *query.ActionNode {
		n := &query.ActionNode{ID: "id-" + s, LogIndex: uint64(i) * 1e12, Time: s, Action: lineage.Action{Type: s, Target: s},
			Decision: lineage.Decision{Effect: "allow", Policy: lineage.Policy{ID: s, Version: s}, Reason: s},
			ParentID: s, Role: s, Agent: s, User: lineage.Person{ID: s, Issuer: s}, Tenant: s}
		if i%2 == 0 {
			n.HumanOversight = &lineage.HumanOversight{Reviewer: lineage.Person{ID: s}, Outcome: s, Time: s}
		}
		if proof {
			n.Proof = &query.Proof{Leaf: []byte(s), InclusionProof: [][]byte{[]byte(s), {1, 2, 3}, nil}}
			if i%4 == 1 { // a sealed leaf's openings (docs/ERASURE.md)
				n.Proof.Openings = []verify.Opening{{Path: "/user/id", Value: s, Nonce: []byte(s + "nonce")}, {Path: s, Value: "", Nonce: nil}}
			}
			if i%3 == 0 {
				n.Proof = &query.Proof{}
			}
		}
		return n
	}
	var all []*query.ActionNode
	for i, s := range weird {
		all = append(all, node(i, s, i%2 == 1), node(i+1, s, true))
	}
	tree := &query.UserTree{User: lineage.Person{ID: weird[3], Issuer: weird[5]}, Agents: []*query.AgentNode{
		{ID: weird[2], Roles: []string{weird[4], "r"}, Models: []string{}, Actions: all[:5], Agents: []*query.AgentNode{
			{ID: "sub", Delegations: []string{weird[6]}, Actions: []*query.ActionNode{}, Agents: []*query.AgentNode{}},
			{ID: "sub2", Actions: all[5:]},
		}},
		{ID: "empty"},
	}, Actions: len(all), Truncated: true}
	answers := []any{
		&query.UserLineage{Answer: query.Answer{Tenant: weird[3], CheckpointSize: 1 << 40, Checkpoint: "origin\n42\nabc=\n\n— sig\n",
			Flags: []query.Flag{{Kind: "unbound_user", Detail: weird[4], User: weird[6], RecordIDs: []string{"a<b"}}}, NextCursor: weird[3]},
			UserTree: tree, From: weird[7], To: "2026"},
		&query.UserLineage{Answer: query.Answer{Flags: []query.Flag{}}, UserTree: &query.UserTree{Agents: []*query.AgentNode{}}},
		&query.UserLineage{},
		&query.AgentLineage{Answer: query.Answer{Tenant: "t", Flags: []query.Flag{}}, Agent: weird[8],
			Users: []query.AgentUser{{Person: lineage.Person{ID: weird[3], Issuer: weird[6]}, Actions: 3}}, Actions: all},
		&query.AgentLineage{Users: []query.AgentUser{}, Actions: []*query.ActionNode{}},
		&query.AgentLineage{},
	}
	for i, a := range answers {
		got, err := query.EncodeAnswer(a)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("answer %d:\n got %s\nwant %s", i, got, want)
		}
	}

	// Real answers through the API (streamed, several chunks with proofs): re-encoding what
	// the client decoded gives the same bytes, and the answer verifies.
	recs := demo.Generate(demo.Options{Seed: 5, Tenants: 1}, 600)
	srv, _, v := apiRig(t, recs)
	user, agent, tenant := recs[0].User.ID, recs[0].Agent.ID, recs[0].Tenant
	for _, c := range []struct{ kind, subject string }{{"users", user}, {"agents", agent}} {
		for _, q := range []string{"", "&proofs=false", "&limit=3"} {
			raw := rawGet(t, srv.URL+"/v1/lineage/"+c.kind+"/"+url.PathEscape(c.subject)+"?tenant="+tenant+q)
			var back any = &query.UserLineage{}
			if c.kind == "agents" {
				back = &query.AgentLineage{}
			}
			if err := json.Unmarshal(raw, back); err != nil {
				t.Fatal(err)
			}
			if re, _ := json.Marshal(back); !bytes.Equal(re, raw) {
				t.Fatalf("%s%s: the streamed answer is not what encoding/json writes", c.kind, q)
			}
			if q != "&proofs=false" {
				if _, err := query.VerifyAnswer(c.kind, c.subject, raw, v); err != nil {
					t.Fatalf("%s%s: %v", c.kind, q, err)
				}
			}
		}
	}
}
