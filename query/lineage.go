package query

import (
	"slices"
	"strconv"
	"strings"

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
	// Nodes by path, and the facts each node already lists: an agent may take thousands of
	// actions, each with its own delegation token, so neither is searched linearly.
	nodes := map[string]*AgentNode{}
	facts := map[*AgentNode]map[string]bool{}
	for i := range rows {
		r := &rows[i].Record
		path := pathOf(r, 0)
		key := pathKey(path)
		node := nodes[key]
		if node == nil {
			node = treeNode(t, path)
			nodes[key] = node
			facts[node] = map[string]bool{}
		}
		addFacts(node, r, facts[node])
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

// addFacts adds the record's role, model and delegation token to the node's lists, each once
// (seen holds the "kind\x00value" pairs the node lists already).
func addFacts(n *AgentNode, r *lineage.Record, seen map[string]bool) {
	addUnique(&n.Roles, "r\x00", r.Role, seen)
	if m := r.Agent.Model; m != nil {
		addUnique(&n.Models, "m\x00", m.Provider+"/"+m.Name+"@"+m.Version, seen)
	}
	if d := r.Delegation; d != nil {
		addUnique(&n.Delegations, "d\x00", d.TokenID, seen)
	}
}

func addUnique(s *[]string, kind, v string, seen map[string]bool) {
	if v == "" {
		return
	}
	if k := kind + v; !seen[k] {
		seen[k] = true
		*s = append(*s, v)
	}
}

// pathKey is an unambiguous map key for an agent path: each id is length-prefixed, so no id's
// content (even a NUL, possible in records logged before the control-character rule) can make
// two paths collide.
func pathKey(path []string) string {
	var b strings.Builder
	for _, p := range path {
		b.WriteString(strconv.Itoa(len(p)))
		b.WriteByte(':')
		b.WriteString(p)
	}
	return b.String()
}
