package demo

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/lineage-audit/lineage"
)

// Time layouts of record fields: decision times to the millisecond, token times (JWT iat/exp
// are whole seconds) to the second. Both are RFC 3339 in UTC.
const (
	layoutMilli  = "2006-01-02T15:04:05.000Z"
	layoutSecond = "2006-01-02T15:04:05Z"
)

// tokenLifetime is the lifetime of the exchanged delegation token. It outlasts every session,
// including a human review, so no demo action happens under an expired token (but in the
// expired-token failure mode, failure.go).
const tokenLifetime = 15 * time.Minute

// sessionCtx holds what every record of a session shares.
type sessionCtx struct {
	t        *tenant
	user     string
	planner  lineage.Agent
	executor lineage.Agent
	critic   lineage.Agent // the executor itself in a shared-identifier session
	baseID   string        // record ids are baseID-1, baseID-2, …
	caseRef  string        // e.g. "loan-application/LA-2026-004217"
	subject  string        // e.g. "CUST-104233"
	traceID  string
	tokenID  string
	issuedAt time.Time
	issued   string
	expires  string
	amount   int     // case amount in EUR, 0 if the domain has none
	risk     float64 // risk score in [0.05, 0.95], two decimals
	n        int     // records built so far
	// spans draws the records' span ids: the Generator's PRNG, or for the records a failure
	// mode adds, the failures' own, so that the other sessions' draws stay as they were.
	spans *rand.Rand
}

// build fills s with the records of one session that starts at offset at.
func (g *Generator) build(s *session, at time.Duration) {
	r := g.rng
	t := g.pickTenant()
	d := t.dom
	ci := r.IntN(len(t.crews))
	c := &t.crews[ci]
	escalated := r.Float64() < EscalationRate
	shared := r.Float64() < SharedAgentRate
	m := modeNone
	if g.fail != nil {
		m = g.fail.pick(s.seq, t, ci, escalated)
	}

	// Some employees use the agents far more than others.
	u := r.Float64()
	sc := sessionCtx{
		t:        t,
		user:     t.users[int(float64(len(t.users))*u*u)],
		planner:  c.planner,
		executor: c.executor,
		critic:   c.critic,
		baseID:   t.name + "-" + g.runTag + "-" + strconv.FormatUint(s.seq, 10),
		caseRef:  d.caseKind + "/" + string(appendPadded([]byte(d.casePrefix), r.IntN(1_000_000), 6)),
		subject:  string(appendPadded([]byte(d.subjectPrefix), 100_000+r.IntN(900_000), 6)),
		traceID:  g.hexID(r, 2),
		tokenID:  g.uuid(r),
		risk:     float64(5+r.IntN(91)) / 100,
		spans:    r,
	}
	if shared {
		sc.critic = c.executor
	}
	if d.amountMax > 0 {
		lo, hi := d.amountMin, d.amountMax
		if d.escalateAbove > 0 {
			if escalated {
				lo = d.escalateAbove + 500
			} else {
				hi = d.escalateAbove
			}
		}
		sc.amount = (lo + r.IntN(hi-lo+1)) / 500 * 500
		sc.amount = max(sc.amount, lo)
	}

	// The user's token was exchanged for the planner's just before the planner acted.
	t0 := at + ms(r.IntN(300))
	issued := g.start.Add(t0 - ms(100+r.IntN(800))).Truncate(time.Second)
	sc.issuedAt, sc.issued = issued, issued.Format(layoutSecond)
	sc.expires = issued.Add(tokenLifetime).Format(layoutSecond)

	// The planner's own decision: the root of the session's tree.
	ctx := ctxRisk
	if sc.amount > 0 {
		ctx = ctxAmount
	}
	plan := g.add(s, &sc, t0, "planner", sc.planner, "", srcGateway,
		lineage.Action{Type: "plan", Target: sc.caseRef},
		lineage.Decision{Effect: lineage.EffectAllow, Policy: d.planPolicy, Reason: "task within the delegated scope"},
		ctx, []string{"prompt-injection-filter", "rate-limit"}, nil)
	planID := plan.ID

	// The executor's actions, in the domain's order. The escalation step, if the session
	// escalates, is always taken and is always the last step.
	now := t0
	var escID string
	var escStep *step
	var escAt time.Duration
	escIdx := -1
	took := 0
	for i := range d.steps {
		st := &d.steps[i]
		if !(escalated && st.escalate) && r.Float64() >= st.p && !(took == 0 && i == len(d.steps)-1) {
			continue
		}
		took++
		now += ms(150 + r.IntN(2400))
		dec := lineage.Decision{Effect: lineage.EffectAllow, Policy: st.policy, Reason: st.allowReason}
		var extra []string
		switch {
		case escalated && st.escalate:
			dec.Effect, dec.Reason = lineage.EffectEscalate, st.escalateReason
		case r.Float64() < st.deny:
			dec.Effect, dec.Reason = lineage.EffectDeny, st.denyReason
		case r.Float64() < st.modify:
			dec.Effect, dec.Reason = lineage.EffectModify, st.modifyReason
			extra = st.modifySafeguards
		}
		rec := g.add(s, &sc, now, "executor", sc.executor, planID, st.src,
			lineage.Action{Type: st.action, Target: sc.target(st)}, dec, st.ctx, st.safeguards, extra)
		if dec.Effect == lineage.EffectEscalate {
			escID, escStep, escAt, escIdx = rec.ID, st, now, len(s.recs)-1
		}
	}
	if m == modeOutOfScope || m == modeScopeGrowth {
		now = g.fail.extraStep(g, s, &sc, m, now, planID)
	}

	// The critic reviews the executor's work.
	now += ms(200 + r.IntN(2800))
	g.add(s, &sc, now, "critic", sc.critic, planID, srcGateway,
		lineage.Action{Type: "review", Target: sc.caseRef},
		lineage.Decision{Effect: lineage.EffectAllow, Policy: d.planPolicy, Reason: "read-only review of the executor's output"},
		ctxNone, []string{"output-moderation"}, nil)

	// A human reviewer settles an escalated decision minutes later. The verdict is a decision
	// of its own, caused by the escalated one.
	if escStep != nil {
		reviewer := t.reviewers[r.IntN(len(t.reviewers))]
		for reviewer == sc.user { // four eyes: never the person who delegated the task
			reviewer = t.reviewers[r.IntN(len(t.reviewers))]
		}
		when := escAt + 30*time.Second + ms(r.IntN(270_000))
		ho := &lineage.HumanOversight{
			Reviewer: lineage.Person{ID: reviewer, Issuer: t.issuer},
			Outcome:  "approved",
			Time:     g.format(when-ms(200+r.IntN(1800)), layoutMilli),
		}
		dec := lineage.Decision{Effect: lineage.EffectAllow, Policy: d.reviewPolicy, Reason: "approved by a human reviewer"}
		if r.Float64() < 0.25 {
			ho.Outcome = "rejected"
			dec.Effect, dec.Reason = lineage.EffectDeny, "rejected by a human reviewer"
		}
		rec := g.add(s, &sc, when, "executor", sc.executor, escID, escStep.src,
			lineage.Action{Type: escStep.action, Target: sc.target(escStep)}, dec, escStep.ctx,
			escStep.safeguards, []string{"human-in-the-loop"})
		rec.HumanOversight = ho
		if g.fail != nil {
			m = g.fail.oversight(s, &sc, m, escIdx, escAt)
		}
	}
	if m != modeNone {
		g.fail.apply(s, &sc, c, m)
	}
}

// add appends a record of the session at offset at and returns it for the caller to complete.
// The pointer is valid until the next add.
func (g *Generator) add(s *session, sc *sessionCtx, at time.Duration, role string, agent lineage.Agent,
	parent string, src lineage.Source, action lineage.Action, dec lineage.Decision, ctx int,
	safeguards, extra []string) *lineage.Record {
	sc.n++
	t := sc.t
	actors := []string{agent.ID}
	if role != "planner" {
		actors = append(actors, sc.planner.ID) // RFC 8693 act chain, current actor first
	}
	model := *agent.Model
	system := t.system
	s.recs = append(s.recs, lineage.Record{
		Schema:   lineage.SchemaV1,
		ID:       sc.baseID + "-" + strconv.Itoa(sc.n),
		Time:     g.format(at, layoutMilli),
		Tenant:   t.name,
		Source:   src,
		User:     lineage.Person{ID: sc.user, Issuer: t.issuer},
		Agent:    lineage.Agent{ID: agent.ID, Model: &model},
		Role:     role,
		Action:   action,
		Decision: dec,
		Delegation: &lineage.Delegation{
			TokenID:   sc.tokenID,
			Issuer:    t.issuer,
			Mechanism: "rfc8693",
			Scope:     slices.Clone(t.dom.scope),
			IssuedAt:  sc.issued,
			ExpiresAt: sc.expires,
			Actors:    actors,
		},
		PolicyContext: sc.policyContext(ctx),
		ParentID:      parent,
		Trace:         &lineage.Trace{TraceID: sc.traceID, SpanID: g.hexID(sc.spans, 1)},
		AISystem:      &system,
		Safeguards:    append(append(make([]string, 0, len(safeguards)+len(extra)), safeguards...), extra...),
	})
	s.times = append(s.times, at)
	return &s.recs[len(s.recs)-1]
}

// target renders a step's action target for this session.
func (sc *sessionCtx) target(st *step) string {
	switch st.ent {
	case entCase:
		return st.pre + sc.caseRef + st.post
	case entSubject:
		return st.pre + sc.subject + st.post
	}
	return st.pre + st.post
}

// policyContext renders the small policy_context object of kind ctx, or nil. Numbers are
// written in their RFC 8785 form (shortest round-trip decimal), so canonicalization leaves
// them as they are.
func (sc *sessionCtx) policyContext(ctx int) []byte {
	var b []byte
	switch ctx {
	case ctxRisk:
		b = append(b, `{"jurisdiction":"EU","risk_score":`...)
		b = strconv.AppendFloat(b, sc.risk, 'f', -1, 64)
	case ctxAmount:
		b = append(b, `{"amount_eur":`...)
		b = strconv.AppendInt(b, int64(sc.amount), 10)
		b = append(b, `,"jurisdiction":"EU","risk_score":`...)
		b = strconv.AppendFloat(b, sc.risk, 'f', -1, 64)
	case ctxExport:
		b = append(b, `{"data_class":"`...)
		b = append(b, sc.t.dom.dataClass...)
		b = append(b, `","jurisdiction":"EU","recipient_region":"non-EU"`...)
	default:
		return nil
	}
	return append(b, '}')
}

// pickTenant draws a tenant by weight.
func (g *Generator) pickTenant() *tenant {
	u := g.rng.Float64()
	i, _ := slices.BinarySearch(g.weights, u)
	return g.tenants[min(i, len(g.tenants)-1)]
}

// hexID returns words random 64-bit words from r as lowercase hex, never all zero (W3C Trace
// Context forbids all-zero trace and span ids).
func (g *Generator) hexID(r *rand.Rand, words int) string {
	b := g.buf[:0]
	zero := true
	for i := 0; i < words; i++ {
		x := r.Uint64()
		if i == words-1 && zero && x == 0 {
			x = 1
		}
		zero = zero && x == 0
		b = appendHex(b, x, 16)
	}
	g.buf = b
	return string(b)
}

// uuid returns a random (version 4) UUID drawn from r, the usual form of a JWT "jti".
func (g *Generator) uuid(r *rand.Rand) string {
	hi, lo := r.Uint64(), r.Uint64()
	hi = hi&^0xf000 | 0x4000
	lo = lo&^(3<<62) | 2<<62
	b := appendHex(g.buf[:0], hi>>32, 8)
	b = append(b, '-')
	b = appendHex(b, hi>>16, 4)
	b = append(b, '-')
	b = appendHex(b, hi, 4)
	b = append(b, '-')
	b = appendHex(b, lo>>48, 4)
	b = append(b, '-')
	b = appendHex(b, lo, 12)
	g.buf = b
	return string(b)
}

// format renders the instant at offset at from Start in layout.
func (g *Generator) format(at time.Duration, layout string) string {
	g.buf = g.start.Add(at).AppendFormat(g.buf[:0], layout)
	return string(g.buf)
}

// ms is n milliseconds.
func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }
