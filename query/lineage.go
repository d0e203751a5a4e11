package query

import (
	"slices"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/query/index"
	"github.com/lineage-audit/lineage/verify"
)

// The tree types are defined with the other answer types in verify/answer.go.
type (
	// UserTree is everything one user authorized in a window: the agents acting for them,
	// nested by delegation (agent → sub-agent), each with the actions it took.
	UserTree = verify.UserTree
	// AgentNode is one agent in the tree with its actions and the sub-agents it delegated to.
	AgentNode = verify.AgentNode
	// ActionNode is one decision record in the tree.
	ActionNode = verify.ActionNode
)

// actionNode summarizes a row for an answer.
func actionNode(row *index.Row) *ActionNode {
	r := &row.Record
	return &ActionNode{
		ID: r.ID, LogIndex: row.Index, Time: r.Time, Action: r.Action, Decision: r.Decision,
		ParentID: r.ParentID, Role: r.Role, HumanOversight: r.HumanOversight,
		Agent: r.Agent.ID, User: r.User, Tenant: r.Tenant,
	}
}

// BuildUserTree nests the user's rows (ordered by time) into the agent tree.
//
// An action's place in the tree is its agent path from the user down:
//   - with a delegation act chain, the chain reversed (RFC 8693 lists the current actor
//     outermost, so the first delegate is last), ending in the record's own agent;
//   - otherwise, if its parent action is in the answer, the parent's path, extended by this
//     agent when it differs from the parent's (a planner spawning an executor);
//   - otherwise the agent alone, directly under the user.
func BuildUserTree(user lineage.Person, rows []index.Row, truncated bool) *UserTree {
	t := &UserTree{User: user, Agents: []*AgentNode{}, Truncated: truncated}
	byID := make(map[string]*lineage.Record, len(rows))
	for i := range rows {
		byID[rows[i].Record.ID] = &rows[i].Record
	}
	paths := make(map[string][]string, len(rows))
	var pathOf func(r *lineage.Record, depth int) []string
	pathOf = func(r *lineage.Record, depth int) []string {
		if p, ok := paths[r.ID]; ok {
			return p
		}
		var p []string
		switch {
		case r.Delegation != nil && len(r.Delegation.Actors) > 0:
			p = slices.Clone(r.Delegation.Actors)
			slices.Reverse(p)
			if p[len(p)-1] != r.Agent.ID {
				p = append(p, r.Agent.ID)
			}
		case r.ParentID != "" && byID[r.ParentID] != nil && depth < 64: // depth guards parent cycles
			p = slices.Clone(pathOf(byID[r.ParentID], depth+1))
			if len(p) == 0 || p[len(p)-1] != r.Agent.ID {
				p = append(p, r.Agent.ID)
			}
		default:
			p = []string{r.Agent.ID}
		}
		paths[r.ID] = p
		return p
	}
	for i := range rows {
		r := &rows[i].Record
		node := treeNode(t, pathOf(r, 0))
		addFacts(node, r)
		node.Actions = append(node.Actions, actionNode(&rows[i]))
		t.Actions++
	}
	return t
}

// treeNode finds or creates the node of t at path.
func treeNode(t *UserTree, path []string) *AgentNode {
	level := &t.Agents
	var n *AgentNode
	for _, id := range path {
		n = nil
		for _, c := range *level {
			if c.ID == id {
				n = c
				break
			}
		}
		if n == nil {
			n = &AgentNode{ID: id, Actions: []*ActionNode{}}
			*level = append(*level, n)
		}
		level = &n.Agents
	}
	return n
}

func addFacts(n *AgentNode, r *lineage.Record) {
	addUnique(&n.Roles, r.Role)
	if m := r.Agent.Model; m != nil {
		addUnique(&n.Models, m.Provider+"/"+m.Name+"@"+m.Version)
	}
	if d := r.Delegation; d != nil {
		addUnique(&n.Delegations, d.TokenID)
	}
}

func addUnique(s *[]string, v string) {
	if v != "" && !slices.Contains(*s, v) {
		*s = append(*s, v)
	}
}
