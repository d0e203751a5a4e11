package indextest

import (
	"cmp"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/query/index"
)

// t0 is the reference time of the hand-built fixtures.
var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// minimal returns a record with only the required fields set.
func minimal(tenant, id, user string, at time.Time) lineage.Record {
	return lineage.Record{
		Schema: lineage.SchemaV1,
		ID:     id,
		Time:   at.UTC().Format(time.RFC3339Nano),
		Tenant: tenant,
		Source: lineage.Source{ID: "gw-1", Type: "ai-gateway"},
		User:   lineage.Person{ID: user, Issuer: "https://login." + tenant + ".example"},
		Agent:  lineage.Agent{ID: "spiffe://" + tenant + ".example/agent/executor"},
		Action: lineage.Action{Type: "http.request", Target: "https://api.example.com/orders"},
		Decision: lineage.Decision{Effect: lineage.EffectAllow,
			Policy: lineage.Policy{ID: "crew-policy", Version: "7"}},
	}
}

// full returns a record with every optional field set, so a round trip through a driver is checked
// field by field.
func full(tenant, id, user string, at time.Time) lineage.Record {
	r := minimal(tenant, id, user, at)
	r.Agent.Model = &lineage.Model{Provider: "example-ai", Name: "executor-model", Version: "2026-01"}
	r.Role = "executor"
	r.Decision = lineage.Decision{Effect: lineage.EffectEscalate, Reason: "amount above limit",
		Policy: lineage.Policy{ID: "payments", Version: "12"}}
	r.Delegation = &lineage.Delegation{
		TokenID: "tok-1", Issuer: r.User.Issuer, Mechanism: "rfc8693",
		Scope:    []string{"payments:initiate", "accounts:read"},
		IssuedAt: "2026-03-02T08:59:00Z", ExpiresAt: "2026-03-02T09:59:00Z",
		Actors: []string{"spiffe://" + tenant + ".example/agent/executor",
			"spiffe://" + tenant + ".example/agent/planner"},
	}
	r.PolicyContext = json.RawMessage(`{"amount":{"currency":"EUR","value":25000},"limits":[1000,10000]}`)
	r.ParentID = "plan-" + id
	r.Trace = &lineage.Trace{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7"}
	r.AISystem = &lineage.AISystem{ID: "credit-scoring", Name: "Credit scoring", RiskClass: "high",
		UseCase: "creditworthiness assessment"}
	r.HumanOversight = &lineage.HumanOversight{
		Reviewer: lineage.Person{ID: "reviewer-7", Issuer: r.User.Issuer},
		Outcome:  "approved", Time: "2026-03-02T09:05:00Z",
	}
	r.Safeguards = []string{"pii-redaction", "amount-limit"}
	r.IdentityObject = json.RawMessage(`{"sub":"` + user + `","act":{"sub":"spiffe://` + tenant +
		`.example/agent/executor"}}`)
	return r
}

// entry wraps r as the ledger entry at log index idx, the way the indexer would.
func entry(idx uint64, r lineage.Record) index.Entry {
	canonical, err := canonicalOf(&r)
	if err != nil {
		panic(fmt.Sprintf("indextest: marshal fixture: %v", err))
	}
	at, err := time.Parse(time.RFC3339Nano, r.Time)
	if err != nil {
		panic(fmt.Sprintf("indextest: fixture time %q: %v", r.Time, err))
	}
	return index.Entry{
		Index:      idx,
		Record:     &r,
		Canonical:  canonical,
		RecordHash: sha256.Sum256(canonical),
		Time:       at,
		ReceivedAt: at.Add(time.Second),
	}
}

// checkRow fails the test unless row is what the store must return for e.
func checkRow(t *testing.T, row index.Row, e index.Entry) {
	t.Helper()
	if row.Index != e.Index {
		t.Errorf("%s/%s: Index = %d, want %d", e.Record.Tenant, e.Record.ID, row.Index, e.Index)
	}
	if row.RecordHash != e.RecordHash {
		t.Errorf("%s/%s: RecordHash = %x, want %x", e.Record.Tenant, e.Record.ID, row.RecordHash, e.RecordHash)
	}
	if string(row.Canonical) != string(e.Canonical) {
		t.Errorf("%s/%s: Canonical = %s, want %s", e.Record.Tenant, e.Record.ID, row.Canonical, e.Canonical)
	}
	if !reflect.DeepEqual(row.Record, *e.Record) {
		t.Errorf("%s/%s: Record = %+v, want %+v", e.Record.Tenant, e.Record.ID, row.Record, *e.Record)
	}
}

// rowKeys describes rows as "tenant/id@index", for readable comparisons.
func rowKeys(rows []index.Row) []string {
	keys := make([]string, len(rows))
	for i, r := range rows {
		keys[i] = fmt.Sprintf("%s/%s@%d", r.Record.Tenant, r.Record.ID, r.Index)
	}
	return keys
}

// entryKeys describes entries like rowKeys describes rows.
func entryKeys(entries []index.Entry) []string {
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = fmt.Sprintf("%s/%s@%d", e.Record.Tenant, e.Record.ID, e.Index)
	}
	return keys
}

// sameKeys fails the test unless got and want list the same records in the same order.
func sameKeys(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got  %s\n want %s", what, strings.Join(got, " "), strings.Join(want, " "))
	}
}

// bruteUserActions is the reference answer to q over entries: a plain filter and sort.
func bruteUserActions(entries []index.Entry, q index.UserQuery) []index.Entry {
	var out []index.Entry
	for _, e := range entries {
		if e.Record.Tenant != q.Tenant || e.Record.User.ID != q.UserID {
			continue
		}
		if !q.From.IsZero() && e.Time.Before(q.From) {
			continue
		}
		if !q.To.IsZero() && !e.Time.Before(q.To) {
			continue
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b index.Entry) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return cmp.Compare(a.Index, b.Index)
	})
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out
}

// canonicalOf returns r's RFC 8785 canonical JSON, as the index contract requires of
// Entry.Canonical, and rewrites r's free-form members in canonical form so that r is exactly
// what a store decodes from those bytes.
func canonicalOf(r *lineage.Record) ([]byte, error) {
	raw, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	canonical, err := lineage.Canonicalize(raw)
	if err != nil {
		return nil, err
	}
	var back lineage.Record
	if err := json.Unmarshal(canonical, &back); err != nil {
		return nil, err
	}
	r.PolicyContext, r.IdentityObject = back.PolicyContext, back.IdentityObject
	return canonical, nil
}
