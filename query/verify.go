package query

import (
	"bytes"
	"encoding/json"
	"fmt"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ledger"
	"golang.org/x/mod/sumdb/note"
)

// VerifyRecordProof checks an answer of GET /v1/records/{id} offline, trusting nothing but the
// log's public key v:
//  1. the checkpoint is a note signed by v, for v's log origin;
//  2. the leaf is a canonical Lineage envelope whose record is the one presented;
//  3. the inclusion proof places the leaf at the index in the checkpoint's tree.
//
// It returns the verified checkpoint.
func VerifyRecordProof(rp *RecordProof, v note.Verifier) (ledger.Checkpoint, error) {
	cp, err := ledger.OpenCheckpoint([]byte(rp.Checkpoint), v)
	if err != nil {
		return cp, fmt.Errorf("verify: checkpoint signature: %w", err)
	}
	env, err := lineage.DecodeEnvelope(rp.Leaf)
	if err != nil {
		return cp, fmt.Errorf("verify: leaf %d is not a valid ledger entry: %w", rp.Index, err)
	}
	if rp.Record != nil {
		presented, err := rp.Record.Canonical()
		if err != nil {
			return cp, fmt.Errorf("verify: presented record: %w", err)
		}
		if !bytes.Equal(presented, env.Canonical) {
			return cp, fmt.Errorf("verify: the record presented differs from the one in leaf %d", rp.Index)
		}
	}
	if err := ledger.VerifyInclusion(rp.Leaf, rp.Index, rp.InclusionProof, cp); err != nil {
		return cp, fmt.Errorf("verify: %w", err)
	}
	return cp, nil
}

// DecodeRecordProof parses a RecordProof strictly (as saved by `lineagectl verify --save`).
func DecodeRecordProof(b []byte) (*RecordProof, error) {
	var rp RecordProof
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&rp); err != nil {
		return nil, fmt.Errorf("verify: record proof: %w", err)
	}
	return &rp, nil
}

// VerifiedAnswer summarizes a lineage answer that passed VerifyAnswer.
type VerifiedAnswer struct {
	Checkpoint ledger.Checkpoint
	Actions    int
}

// VerifyAnswer checks a lineage answer (the raw JSON of GET /v1/lineage/{kind}/{subject})
// offline with the log's public key v alone:
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
		nodes = a.UserTree.nodes()
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
	env, err := lineage.DecodeEnvelope(n.Proof.Leaf)
	if err != nil {
		return fmt.Errorf("action %s: leaf %d is not a valid ledger entry: %w", n.ID, n.LogIndex, err)
	}
	if err := ledger.VerifyInclusion(n.Proof.Leaf, n.LogIndex, n.Proof.InclusionProof, cp); err != nil {
		return fmt.Errorf("action %s: %w", n.ID, err)
	}
	r := env.Record
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
