package indextest

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/query/index"
)

// GenerateRecords returns n ledger entries, with log indexes 0..n-1, that look like the traffic of
// several tenants' agent crews, so drivers are tested and benchmarked on realistic shapes rather
// than uniform rows. The same seed always yields the same entries.
//
// Each crew task is started by one user of one tenant (users are Zipf-distributed, so a few users
// own most of the actions, as in real deployments) and runs under one RFC 8693 delegation token:
// a planner action, then executor actions caused by it (parent_id), some reviewed by a critic
// action caused by the executor. Executors are sometimes denied, modified or escalated; escalations
// and some high-risk actions carry a human_oversight review. Tenants reuse user ids and record ids
// (record ids are unique per tenant only), so cross-tenant leaks are visible. Records reach the log
// in arrival order, which differs from decision-time order, and some share a timestamp.
//
// Canonical is encoding/json's encoding of the record, standing in for RFC 8785 here: drivers
// store those bytes opaquely. RecordHash is SHA-256 over Canonical.
func GenerateRecords(seed int64, n int) []index.Entry {
	g := &generator{
		rng:   rand.New(rand.NewPCG(uint64(seed), 0x6c696e65616765)),
		tasks: map[string]int{},
	}
	g.users = rand.NewZipf(g.rng, 1.1, 1, genUsersPerTenant-1)
	recs := make([]genRecord, 0, n+8)
	for len(recs) < n {
		recs = g.task(recs)
	}
	recs = recs[:n]
	// The log sequences records in arrival order; equal arrivals keep generation order.
	slices.SortStableFunc(recs, func(a, b genRecord) int { return a.arrival.Compare(b.arrival) })

	entries := make([]index.Entry, n)
	for i, r := range recs {
		canonical, err := canonicalOf(r.rec)
		if err != nil {
			panic(fmt.Sprintf("indextest: marshal generated record: %v", err))
		}
		entries[i] = index.Entry{
			Index:          uint64(i),
			Record:         r.rec,
			Canonical:      canonical,
			RecordHash:     sha256.Sum256(canonical),
			Time:           r.time,
			ReceivedAt:     r.arrival,
			SourceVerified: r.verified,
		}
	}
	return entries
}

// Batches cuts entries (in log order) into consecutive batches of up to size entries that cover
// the log from 0 to the last entry's index + 1, gaps included: a gap between two entries stands
// for non-record log entries and belongs to the batch of the entry after it.
func Batches(entries []index.Entry, size int) []index.Batch {
	var out []index.Batch
	var from uint64
	for chunk := range slices.Chunk(entries, size) {
		to := chunk[len(chunk)-1].Index + 1
		out = append(out, index.Batch{From: from, To: to, Entries: chunk})
		from = to
	}
	return out
}

// Shape of the generated data.
const (
	genUsersPerTenant = 200
	genWindow         = 30 * 24 * time.Hour
)

// genTenants are the generated tenants; "Acme" differs from "acme" only by case, so a driver that
// folds case in tenant comparisons fails.
var genTenants = []string{"acme", "globex", "initech", "Acme"}

// genBase is the start of the generated window.
var genBase = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// genRecord is a generated record before it is sequenced.
type genRecord struct {
	rec      *lineage.Record
	time     time.Time
	arrival  time.Time
	verified bool
}

// generator holds the random state of one GenerateRecords call.
type generator struct {
	rng   *rand.Rand
	users *rand.Zipf
	tasks map[string]int // tasks generated so far per tenant
}

// task appends one crew task's records to recs.
func (g *generator) task(recs []genRecord) []genRecord {
	tenant := genTenants[g.rng.IntN(len(genTenants))]
	g.tasks[tenant]++
	taskNo := g.tasks[tenant]
	user := lineage.Person{
		ID:     fmt.Sprintf("user-%03d", g.users.Uint64()),
		Issuer: "https://login." + tenant + ".example",
	}
	start := genBase.Add(time.Duration(g.rng.Int64N(int64(genWindow/time.Second))) * time.Second)
	traceID := fmt.Sprintf("%016x%016x", g.rng.Uint64(), g.rng.Uint64())
	highRisk := g.rng.IntN(3) == 0
	ai := &lineage.AISystem{ID: "support-assistant", Name: "Support assistant",
		RiskClass: "limited", UseCase: "customer support"}
	if highRisk {
		ai = &lineage.AISystem{ID: "credit-scoring", Name: "Credit scoring",
			RiskClass: "high", UseCase: "creditworthiness assessment (Annex III 5(b))"}
	}
	agent := func(name string) string { return "spiffe://" + tenant + ".example/agent/" + name }
	delegation := func(actors ...string) *lineage.Delegation {
		return &lineage.Delegation{
			TokenID:   fmt.Sprintf("tok-%s-%05d", tenant, taskNo),
			Issuer:    user.Issuer,
			Mechanism: "rfc8693",
			Scope:     []string{"tasks:run", "data:read"},
			IssuedAt:  start.Format(time.RFC3339),
			ExpiresAt: start.Add(time.Hour).Format(time.RFC3339),
			Actors:    actors,
		}
	}
	step := 0
	at := start
	newRecord := func(role, agentID string) *lineage.Record {
		rec := &lineage.Record{
			Schema: lineage.SchemaV1,
			ID:     fmt.Sprintf("task-%05d-%d", taskNo, step),
			Time:   at.Format(time.RFC3339Nano),
			Tenant: tenant,
			Source: lineage.Source{ID: "gateway-" + tenant, Type: "ai-gateway"},
			User:   user,
			Agent: lineage.Agent{ID: agentID, Model: &lineage.Model{
				Provider: "example-ai", Name: role + "-model", Version: "2026-01"}},
			Role: role,
			Decision: lineage.Decision{Effect: lineage.EffectAllow,
				Policy: lineage.Policy{ID: "crew-policy", Version: "7"}},
			Trace:    &lineage.Trace{TraceID: traceID, SpanID: fmt.Sprintf("%016x", g.rng.Uint64())},
			AISystem: ai,
		}
		step++
		return rec
	}
	emit := func(rec *lineage.Record) {
		recs = append(recs, genRecord{
			rec:      rec,
			time:     at,
			arrival:  at.Add(time.Duration(g.rng.Int64N(int64(2 * time.Minute)))),
			verified: g.rng.IntN(4) != 0,
		})
		at = at.Add(g.step())
	}

	planner := newRecord("planner", agent("planner"))
	planner.Action = lineage.Action{Type: "plan", Target: fmt.Sprintf("task/%d", taskNo)}
	planner.Delegation = delegation(agent("planner"))
	planner.PolicyContext = json.RawMessage(fmt.Sprintf(`{"task":%d,"tools":["http","db"]}`, taskNo))
	planner.IdentityObject = json.RawMessage(fmt.Sprintf(
		`{"sub":%q,"iss":%q,"act":{"sub":%q}}`, user.ID, user.Issuer, agent("planner")))
	emit(planner)

	for range 1 + g.rng.IntN(3) {
		executorID := agent(fmt.Sprintf("executor-%d", g.rng.IntN(3)))
		exec := newRecord("executor", executorID)
		exec.ParentID = planner.ID
		exec.Action = genActions[g.rng.IntN(len(genActions))]
		exec.Delegation = delegation(executorID, agent("planner"))
		g.decide(exec, user, at, highRisk)
		emit(exec)

		if g.rng.IntN(2) == 0 {
			critic := newRecord("critic", agent("critic"))
			critic.ParentID = exec.ID
			critic.Action = lineage.Action{Type: "review", Target: exec.ID}
			critic.Delegation = delegation(agent("critic"), agent("planner"))
			critic.Safeguards = []string{"output-review"}
			emit(critic)
		}
	}
	return recs
}

// genActions are the executor actions generated.
var genActions = []lineage.Action{
	{Type: "http.request", Target: "https://api.example.com/v1/orders"},
	{Type: "db.query", Target: "postgres://crm/customers"},
	{Type: "file.write", Target: "s3://reports/summary.pdf"},
	{Type: "email.send", Target: "mailto:customer@example.com"},
	{Type: "payment.initiate", Target: "iban:DE89370400440532013000"},
}

// decide sets an executor action's effect: mostly allowed, sometimes denied, modified or escalated
// to a human, whose review is recorded; high-risk actions are sometimes reviewed even when allowed.
func (g *generator) decide(rec *lineage.Record, user lineage.Person, at time.Time, highRisk bool) {
	review := func(outcome string) {
		rec.HumanOversight = &lineage.HumanOversight{
			Reviewer: lineage.Person{ID: fmt.Sprintf("reviewer-%d", g.rng.IntN(4)), Issuer: user.Issuer},
			Outcome:  outcome,
			Time:     at.Add(5 * time.Minute).Format(time.RFC3339),
		}
	}
	switch p := g.rng.IntN(100); {
	case p < 12:
		rec.Decision.Effect = lineage.EffectDeny
		rec.Decision.Reason = "action outside delegated scope"
	case p < 16:
		rec.Decision.Effect = lineage.EffectModify
		rec.Decision.Reason = "personal data redacted"
		rec.Safeguards = []string{"pii-redaction"}
	case p < 20:
		rec.Decision.Effect = lineage.EffectEscalate
		rec.Decision.Reason = "amount above autonomous limit"
		review([]string{"approved", "rejected"}[g.rng.IntN(2)])
	case highRisk && p < 40:
		review("approved")
	}
}

// step is the time between two actions of a task. A fifth are simultaneous, so queries must order
// ties by log index; some are sub-second, so drivers must keep nanoseconds.
func (g *generator) step() time.Duration {
	switch g.rng.IntN(5) {
	case 0:
		return 0
	case 1:
		return time.Duration(g.rng.Int64N(int64(time.Second)))
	default:
		return time.Duration(1+g.rng.IntN(30)) * time.Second
	}
}
