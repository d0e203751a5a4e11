package verify

import (
	"bytes"
	"encoding/json"
	"fmt"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ledger"
	"golang.org/x/mod/sumdb/note"
)

// The lineage answers of the query API (GET /v1/lineage/{kind}/{subject}, served by
// query/lineage_api.go; the query package aliases these types). Every lineage answer is
// verifiable: it names one signed checkpoint (Checkpoint, the note as published) and every
// action in it carries its log index, the exact ledger entry (leaf) and an inclusion proof
// against that checkpoint. VerifyAnswer re-checks a whole answer with the log's public key alone.

// Proof is what makes one action verifiable.
type Proof struct {
	Leaf           []byte   `json:"leaf"`
	InclusionProof [][]byte `json:"inclusion_proof"`
	// Openings are the clear values of the leaf's sealed fields shown in the action (a v2
	// leaf, docs/ERASURE.md); a sealed field without one is erased. Absent for a v1 leaf.
	Openings []Opening `json:"openings,omitempty"`
}

// Flag points an auditor at something wrong in the answer's records.
type Flag struct {
	// Kind is "shared_agent_id" (one agent identity acting in several roles of a crew: the
	// actions cannot be told apart by identity) or "unbound_user" (the authorizing user is not
	// bound to an identity-provider issuer URL).
	Kind      string   `json:"kind"`
	Detail    string   `json:"detail"`
	Agent     string   `json:"agent,omitempty"`
	User      string   `json:"user,omitempty"`
	RecordIDs []string `json:"record_ids,omitempty"`
}

// Answer is what every lineage answer shares.
type Answer struct {
	Tenant         string `json:"tenant"`
	CheckpointSize uint64 `json:"checkpoint_size"`
	// Checkpoint is the signed note every proof in the answer is against.
	Checkpoint string `json:"checkpoint"`
	Flags      []Flag `json:"flags"`
	// NextCursor continues the answer (pass it as cursor=); empty on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// UserLineage is the answer of GET /v1/lineage/users/{user_id}.
type UserLineage struct {
	Answer
	*UserTree
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

// AgentLineage is the answer of GET /v1/lineage/agents/{agent_id}: the users the agent acted
// for (in this page) and its actions.
type AgentLineage struct {
	Answer
	Agent   string        `json:"agent"`
	Users   []AgentUser   `json:"users"`
	Actions []*ActionNode `json:"actions"`
}

// AgentUser is a natural person an agent acted for.
type AgentUser struct {
	lineage.Person
	Actions int `json:"actions"`
}

// ActionChain is the answer of GET /v1/lineage/actions/{id}: the action and every action that
// caused it, up to the root, the natural person who authorized it, the delegation actor chain,
// and the human-oversight events along the way.
type ActionChain struct {
	Answer
	// Chain starts with the requested action and ends at the root action.
	Chain []*ActionNode `json:"chain"`
	// AuthorizedBy is the natural person at the root of the chain.
	AuthorizedBy lineage.Person `json:"authorized_by"`
	// Delegation is the root's delegation (token, scope, actor chain), when it has one.
	Delegation *lineage.Delegation `json:"delegation,omitempty"`
	// Oversight are the human-oversight events on the chain or recorded directly under it.
	Oversight []*ActionNode `json:"oversight"`
	// Complete is false when a parent named in the chain is not in the log (or not visible).
	Complete bool `json:"complete"`
}

// PolicyDecisions is the answer of GET /v1/lineage/policies/{policy_id}.
type PolicyDecisions struct {
	Answer
	Policy   string        `json:"policy"`
	Stats    PolicyStats   `json:"stats"`
	Examples []*ActionNode `json:"examples"`
}

// PolicyStats counts a policy's decisions in a window. It has the fields of
// query/index.PolicyStats, which the query API converts into it.
type PolicyStats struct {
	Total     int            `json:"total"`
	ByEffect  map[string]int `json:"by_effect"`
	ByVersion map[string]int `json:"by_version"`
}

// UserTree is everything one user authorized in a window: the agents acting for them, nested
// by delegation (agent → sub-agent), each with the actions it took.
type UserTree struct {
	User lineage.Person `json:"user"`
	// Agents are the top-level agents: those the user delegated to directly.
	Agents []*AgentNode `json:"agents"`
	// Actions is the number of actions in the tree.
	Actions int `json:"actions"`
	// Truncated is set when the window holds more actions than this page (see next_cursor).
	Truncated bool `json:"truncated"`
}

// AgentNode is one agent in the tree with its actions and the sub-agents it delegated to.
type AgentNode struct {
	ID          string        `json:"id"`
	Roles       []string      `json:"roles,omitempty"`
	Models      []string      `json:"models,omitempty"`
	Delegations []string      `json:"delegations,omitempty"`
	Actions     []*ActionNode `json:"actions"`
	Agents      []*AgentNode  `json:"agents,omitempty"`
}

// ActionNode is one decision record in the tree.
type ActionNode struct {
	ID             string                  `json:"id"`
	LogIndex       uint64                  `json:"log_index"`
	Time           string                  `json:"time"`
	Action         lineage.Action          `json:"action"`
	Decision       lineage.Decision        `json:"decision"`
	ParentID       string                  `json:"parent_id,omitempty"`
	Role           string                  `json:"role,omitempty"`
	HumanOversight *lineage.HumanOversight `json:"human_oversight,omitempty"`
	// Agent, User and Tenant repeat the record's own, so a verifier can match them to the leaf.
	Agent  string         `json:"agent"`
	User   lineage.Person `json:"user"`
	Tenant string         `json:"tenant"`
	// Proof makes the action verifiable against the answer's checkpoint.
	Proof *Proof `json:"proof,omitempty"`
}

// Nodes lists every action in the tree.
func (t *UserTree) Nodes() []*ActionNode {
	var out []*ActionNode
	var walk func([]*AgentNode)
	walk = func(as []*AgentNode) {
		for _, a := range as {
			out = append(out, a.Actions...)
			walk(a.Agents)
		}
	}
	walk(t.Agents)
	return out
}

// VerifiedAnswer summarizes a lineage answer that passed VerifyAnswer.
type VerifiedAnswer struct {
	Checkpoint ledger.Checkpoint
	Actions    int
}

// AnswerKinds are the kinds of lineage answer VerifyAnswer knows, as they appear in the path
// GET /v1/lineage/{kind}/{subject}.
var AnswerKinds = []string{"users", "agents", "actions", "policies"}

// VerifyAnswer checks a lineage answer (the raw JSON of GET /v1/lineage/{kind}/{subject}, or
// with kind "findings" of GET /v1/findings?tenant={subject}) offline with the log's public key v
// alone:
//   - its checkpoint is a note signed by v;
//   - every action carries a leaf and an inclusion proof that verify against that checkpoint;
//   - every action's fields are exactly those of the record in its leaf (nothing in the
//     answer was made up or altered), and the record belongs to the answer's tenant and subject
//     (the user, agent or policy asked about; for an action chain, each link is the parent of
//     the one before and the authorizing person is the root's user).
//
// It cannot prove completeness (that no matching record was left out); the log's consistency
// and an auditor's own queries over the tiles address that.
func VerifyAnswer(kind, subject string, raw []byte, v note.Verifier) (VerifiedAnswer, error) {
	var res VerifiedAnswer
	var head Answer
	if err := json.Unmarshal(raw, &head); err != nil {
		return res, fmt.Errorf("verify: answer: %w", err)
	}
	cp, err := ledger.OpenCheckpoint([]byte(head.Checkpoint), v)
	if err != nil {
		return res, fmt.Errorf("verify: checkpoint signature: %w", err)
	}
	if cp.Size != head.CheckpointSize {
		return res, fmt.Errorf("verify: answer says checkpoint size %d, the signed checkpoint %d", head.CheckpointSize, cp.Size)
	}
	res.Checkpoint = cp
	var nodes []*ActionNode
	check := func(n *ActionNode) error { return nil }
	switch kind {
	case "users":
		var a UserLineage
		if err := json.Unmarshal(raw, &a); err != nil || a.UserTree == nil {
			return res, fmt.Errorf("verify: user answer: %v", err)
		}
		nodes = a.UserTree.Nodes()
		check = func(n *ActionNode) error {
			if n.User.ID != subject {
				return fmt.Errorf("action %s was authorized by %s, not %s", n.ID, n.User.ID, subject)
			}
			return nil
		}
	case "agents":
		var a AgentLineage
		if err := json.Unmarshal(raw, &a); err != nil {
			return res, fmt.Errorf("verify: agent answer: %w", err)
		}
		nodes = a.Actions
		check = func(n *ActionNode) error {
			if n.Agent != subject {
				return fmt.Errorf("action %s is by agent %s, not %s", n.ID, n.Agent, subject)
			}
			return nil
		}
	case "policies":
		var a PolicyDecisions
		if err := json.Unmarshal(raw, &a); err != nil {
			return res, fmt.Errorf("verify: policy answer: %w", err)
		}
		nodes = a.Examples
		check = func(n *ActionNode) error {
			if n.Decision.Policy.ID != subject {
				return fmt.Errorf("decision %s is by policy %s, not %s", n.ID, n.Decision.Policy.ID, subject)
			}
			return nil
		}
	case "actions":
		var a ActionChain
		if err := json.Unmarshal(raw, &a); err != nil {
			return res, fmt.Errorf("verify: action answer: %w", err)
		}
		if len(a.Chain) == 0 || a.Chain[0].ID != subject {
			return res, fmt.Errorf("verify: the chain does not start at action %s", subject)
		}
		for i := 0; i+1 < len(a.Chain); i++ {
			if a.Chain[i].ParentID != a.Chain[i+1].ID {
				return res, fmt.Errorf("verify: chain link %d: %s's parent is %q, not %s", i, a.Chain[i].ID, a.Chain[i].ParentID, a.Chain[i+1].ID)
			}
		}
		if root := a.Chain[len(a.Chain)-1]; root.User != a.AuthorizedBy {
			return res, fmt.Errorf("verify: authorized_by %v is not the root action's user %v", a.AuthorizedBy, root.User)
		}
		nodes = append(append(nodes, a.Chain...), a.Oversight...)
	case "findings":
		var a Findings
		if err := json.Unmarshal(raw, &a); err != nil {
			return res, fmt.Errorf("verify: findings answer: %w", err)
		}
		if a.Tenant != subject {
			return res, fmt.Errorf("verify: the answer is about tenant %s, not %s", a.Tenant, subject)
		}
		if nodes, err = findingsNodes(&a); err != nil {
			return res, fmt.Errorf("verify: %w", err)
		}
	default:
		return res, fmt.Errorf("verify: unknown answer kind %q", kind)
	}
	for _, n := range nodes {
		if err := verifyNode(n, head.Tenant, cp); err != nil {
			return res, fmt.Errorf("verify: %w", err)
		}
		if err := check(n); err != nil {
			return res, fmt.Errorf("verify: %w", err)
		}
	}
	res.Actions = len(nodes)
	return res, nil
}

// verifyNode checks one action against its leaf and the checkpoint.
func verifyNode(n *ActionNode, tenant string, cp ledger.Checkpoint) error {
	if n.Proof == nil {
		return fmt.Errorf("action %s has no proof (ask with proofs=true)", n.ID)
	}
	r, _, _, err := LeafRecord(n.Proof.Leaf, n.Proof.Openings)
	if err != nil {
		return fmt.Errorf("action %s: leaf %d is not a valid ledger entry with the openings given: %w", n.ID, n.LogIndex, err)
	}
	if err := ledger.VerifyInclusion(n.Proof.Leaf, n.LogIndex, n.Proof.InclusionProof, cp); err != nil {
		return fmt.Errorf("action %s: %w", n.ID, err)
	}
	want := ActionNode{ID: r.ID, LogIndex: n.LogIndex, Time: r.Time, Action: r.Action, Decision: r.Decision,
		ParentID: r.ParentID, Role: r.Role, HumanOversight: r.HumanOversight, Agent: r.Agent.ID, User: r.User, Tenant: r.Tenant, Proof: n.Proof}
	got, _ := json.Marshal(n)
	exp, _ := json.Marshal(&want)
	if !bytes.Equal(got, exp) {
		return fmt.Errorf("action %s (log index %d) differs from the record in its leaf", n.ID, n.LogIndex)
	}
	if r.Tenant != tenant {
		return fmt.Errorf("action %s belongs to tenant %s, not %s", n.ID, r.Tenant, tenant)
	}
	return nil
}
