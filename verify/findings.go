package verify

import "fmt"

// Findings is the answer of GET /v1/findings: one tenant's findings (query/findings), each with
// its evidence records, every record verifiable against the answer's checkpoint like any other
// lineage answer's actions.
type Findings struct {
	Answer
	Findings []*FindingNode `json:"findings"`
}

// FindingNode is one finding (the fields of query/findings.Finding) with its evidence records.
type FindingNode struct {
	ID          string          `json:"id"`
	Tenant      string          `json:"tenant"`
	Kind        string          `json:"kind"`
	Severity    string          `json:"severity"`
	Key         string          `json:"key"`
	Agent       string          `json:"agent,omitempty"`
	User        string          `json:"user,omitempty"`
	First       string          `json:"first_time"`
	Last        string          `json:"last_time"`
	FirstIndex  uint64          `json:"first_log_index"`
	LastIndex   uint64          `json:"last_log_index"`
	Count       uint64          `json:"count"`
	Explanation string          `json:"explanation"`
	Evidence    []*EvidenceNode `json:"evidence"`
}

// EvidenceNode is one record supporting a finding: what it shows (Note) and the record itself.
// Record is nil when the record is beyond the answer's checkpoint or no longer in the index
// (retention); Missing then says why.
type EvidenceNode struct {
	ID       string      `json:"id"`
	LogIndex uint64      `json:"log_index"`
	Note     string      `json:"note,omitempty"`
	Record   *ActionNode `json:"record,omitempty"`
	Missing  string      `json:"missing,omitempty"`
}

// findingsNodes checks what the findings answer claims about its evidence and returns the
// records to verify.
func findingsNodes(a *Findings) ([]*ActionNode, error) {
	var nodes []*ActionNode
	for _, f := range a.Findings {
		if f.Tenant != a.Tenant {
			return nil, fmt.Errorf("finding %s belongs to tenant %s, not %s", f.ID, f.Tenant, a.Tenant)
		}
		for _, e := range f.Evidence {
			if e.Record == nil {
				continue
			}
			if e.Record.ID != e.ID || e.Record.LogIndex != e.LogIndex {
				return nil, fmt.Errorf("finding %s: evidence %s at %d carries record %s at %d", f.ID, e.ID, e.LogIndex, e.Record.ID, e.Record.LogIndex)
			}
			nodes = append(nodes, e.Record)
		}
	}
	return nodes, nil
}
