package query

import (
	"testing"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/query/index"
)

func row(i uint64, id, agent, parent string, actors ...string) index.Row {
	r := lineage.Record{ID: id, Agent: lineage.Agent{ID: agent}, ParentID: parent,
		User: lineage.Person{ID: "alice", Issuer: "https://idp"}, Time: "2026-11-01T00:00:00Z",
		Decision: lineage.Decision{Effect: "allow"}}
	if len(actors) > 0 {
		r.Delegation = &lineage.Delegation{TokenID: "tok", Actors: actors}
	}
	return index.Row{Index: i, Record: r}
}

func TestBuildUserTree(t *testing.T) {
	rows := []index.Row{
		row(0, "p1", "planner", "", "planner"),
		row(1, "e1", "executor", "p1", "executor", "planner"),
		row(2, "c1", "critic", "p1"),                       // no act chain: nested through parent_id
		row(3, "x1", "executor", "e1"),                     // same agent as parent: stays at executor
		row(4, "s1", "solo", ""),                           // direct agent
		row(5, "o1", "critic", "missing"),                  // parent outside the answer: top level
		row(6, "d1", "sub", "", "sub", "exec2", "planner"), // three-level act chain
	}
	tree := BuildUserTree(lineage.Person{ID: "alice"}, rows, false)
	if tree.Actions != len(rows) {
		t.Fatalf("actions = %d", tree.Actions)
	}
	paths := map[string]string{}
	var walk func(n *AgentNode, prefix string)
	walk = func(n *AgentNode, prefix string) {
		p := prefix + "/" + n.ID
		for _, a := range n.Actions {
			paths[a.ID] = p
		}
		for _, c := range n.Agents {
			walk(c, p)
		}
	}
	for _, a := range tree.Agents {
		walk(a, "")
	}
	want := map[string]string{
		"p1": "/planner", "e1": "/planner/executor", "c1": "/planner/critic", "x1": "/planner/executor",
		"s1": "/solo", "o1": "/critic", "d1": "/planner/exec2/sub",
	}
	for id, p := range want {
		if paths[id] != p {
			t.Errorf("%s at %q, want %q", id, paths[id], p)
		}
	}
	// Log indexes travel with the actions.
	if tree.Agents[0].Actions[0].LogIndex != 0 || tree.Agents[0].Agents[0].Actions[0].LogIndex != 1 {
		t.Errorf("log indexes not carried: %+v", tree.Agents[0])
	}
}

func TestBuildUserTreeParentCycle(t *testing.T) {
	rows := []index.Row{row(0, "a", "x", "b"), row(1, "b", "y", "a")}
	tree := BuildUserTree(lineage.Person{ID: "alice"}, rows, false)
	if tree.Actions != 2 {
		t.Fatalf("a parent cycle lost actions: %d", tree.Actions)
	}
}
