package demo

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/lineage-audit/lineage"
)

// This file bends a few sessions into the identity failures package query/findings detects
// (Options.FailureModes). Every choice here is drawn from a PRNG of its own, seeded from
// Options.Seed, and the records a failure adds draw their span ids from it too: the Generator's
// PRNG makes exactly the draws it makes without failures, so every session without a failure is
// byte for byte the session of the stream without them, and a seed still yields one stream.
//
// What each failure looks like, and the finding kind that reports it (findings.json holds the
// demo tenants' configuration that the thresholds below are measured against):
//
//   - service account (static_credential): every record of the session names the user
//     "svc-<crew>-batch@<company>", a batch job's account, instead of an employee.
//   - static API key (static_credential): the executor's records carry no delegation token,
//     only the scope of the application's API key (mechanism "api-key").
//   - http issuer (inferred_identity): the session's user is vouched for by a legacy SSO over
//     plain http ("http://sso.<company>/").
//   - unbound identity (inferred_identity): the records carry an identity object taken from a
//     forwarded e-mail header: claims without "iss".
//   - expired token (delegation_misuse): the session runs on a token issued 20 to 40 minutes
//     earlier with the usual 15-minute lifetime, reused from a cache after it expired.
//   - long-lived token (delegation_misuse): the token lives LongLivedLifetime, far beyond the
//     tenant's maximum (findings.json: 8h).
//   - actor chain (delegation_misuse): the executor acts on the planner's token without an
//     exchange, so its act chain is [planner].
//   - out of scope (out_of_scope): after its steps the executor also writes to the subject's
//     record (domain.oosStep), which needs a scope the user never delegates.
//   - scope growth (scope_escalation): after its steps the executor exchanges a second token
//     whose scope adds domain.growScope and acts under it (domain.growStep).
//   - unreviewed escalation (missing_oversight): an escalated decision whose human review never
//     comes.
//   - oversight gap (missing_oversight): once every OversightGapEvery oversight windows (the
//     first window of the stream included), one high-risk tenant's reviewers are away for a
//     whole window: its escalations from maxReviewDelay before the window to its end are
//     auto-approved without review, so the AI system decides through the window unreviewed.
//   - legacy agent (credential_rotation): one crew of the first tenant sometimes runs its
//     executor under the identity of the legacy namespace ("spiffe://<company>/ns/legacy/sa/
//     <crew>-executor"), first used LegacyAge before Start: the stream's first record is that
//     use, and the identity outlives the rotation period (findings.json: 30d) from the first
//     failure session on.
//
// Each of the scheduled modes (all but the oversight gap) falls due once in every FailureBlock
// sessions, at a position drawn from the seed, and takes the first session from there that fits
// it (out of scope and scope growth need a session without escalation, the unreviewed
// escalation an escalated one, the legacy agent its crew); a session carries at most one.

// mode is one failure a session may carry.
type mode int

const (
	modeNone mode = iota
	modeServiceAccount
	modeStaticKey
	modeHTTPIssuer
	modeUnboundIdentity
	modeExpiredToken
	modeLongLivedToken
	modeActorChain
	modeOutOfScope
	modeScopeGrowth
	modeUnreviewed
	modeLegacyAgent
	// modeOversightGap is not scheduled per block: it follows the oversight windows.
	modeOversightGap
	numModes
)

// firstScheduled and lastScheduled bound the modes scheduled once per FailureBlock sessions.
const (
	firstScheduled = modeServiceAccount
	lastScheduled  = modeLegacyAgent
)

var modeNames = [numModes]string{
	modeNone: "none", modeServiceAccount: "service-account", modeStaticKey: "static-api-key",
	modeHTTPIssuer: "http-issuer", modeUnboundIdentity: "unbound-identity", modeExpiredToken: "expired-token",
	modeLongLivedToken: "long-lived-token", modeActorChain: "actor-chain", modeOutOfScope: "out-of-scope",
	modeScopeGrowth: "scope-growth", modeUnreviewed: "unreviewed-escalation", modeLegacyAgent: "legacy-agent",
	modeOversightGap: "oversight-gap",
}

func (m mode) String() string { return modeNames[m] }

// Rates and time scales of the failure modes.
const (
	// FailureBlock is the number of consecutive sessions in which each scheduled failure mode
	// occurs once (about 0.33% of sessions each; 10,000 records, about 1,850 sessions, are six
	// blocks).
	FailureBlock = 300
	// OversightWindow is the oversight window of the demo tenants (findings.json's
	// oversight_window): long enough that clean traffic of the default tenants, whose
	// high-risk systems see a human review every few minutes, never goes a whole window
	// without one, and short enough that the first gap closes in the README's walkthrough.
	OversightWindow = 20 * time.Minute
	// OversightGapEvery: one oversight window in this many has an oversight gap.
	OversightGapEvery = 3
	// LegacyAge is how long before Start the legacy agent identity was first used; it exceeds
	// the demo tenants' rotation period (findings.json's rotation_period, 30d).
	LegacyAge = 40 * 24 * time.Hour
	// LongLivedLifetime is the lifetime of a long-lived delegation token.
	LongLivedLifetime = 30 * 24 * time.Hour
)

// maxReviewDelay bounds the time from an escalated decision to its human review (build in
// session.go draws it from [30s, 30s+270s)).
const maxReviewDelay = 5 * time.Minute

// failures is the state of Options.FailureModes.
type failures struct {
	g        *Generator
	rng      *rand.Rand
	seed     uint64
	due      [numModes]uint64 // the session at which each scheduled mode falls due in this block
	pending  [numModes]bool   // due and not yet placed
	highRisk []*tenant        // tenants whose AI system is high-risk, candidates for a gap
	gapBase  time.Time        // the oversight window of Start
	history  []lineage.Record // emitted before the first session
	legacy   struct {
		t    *tenant
		crew int
		id   string
	}
	// hook, when set (tests), is called with a session's base id for each failure placed.
	hook func(baseID string, m mode)
}

func newFailures(g *Generator, seed int64) *failures {
	f := &failures{
		g:       g,
		rng:     rand.New(rand.NewPCG(mix64(uint64(seed)^0x6661_696c_7572_65), 0x6661_696c_7572_65)), // "failure"
		seed:    uint64(seed),
		gapBase: g.start.Truncate(OversightWindow),
	}
	for _, t := range g.tenants {
		if t.system.RiskClass == "high" {
			f.highRisk = append(f.highRisk, t)
		}
	}
	t := g.tenants[0]
	f.legacy.t, f.legacy.crew = t, len(t.crews)-1
	c := &t.crews[f.legacy.crew]
	f.legacy.id = "spiffe://" + t.dns + "/ns/legacy/sa/" + c.name + "-executor"
	f.history = append(f.history, f.legacyFirstUse(c))
	return f
}

// legacyFirstUse is the first recorded decision of the legacy agent identity, LegacyAge before
// Start. It names no AI system: the identity predates the tenant's AI system inventory (and so
// the record opens no oversight window of its own).
func (f *failures) legacyFirstUse(c *crew) lineage.Record {
	g, t := f.g, f.legacy.t
	d := t.dom
	st := &d.steps[0]
	sc := sessionCtx{
		t:       t,
		caseRef: d.caseKind + "/" + string(appendPadded([]byte(d.casePrefix), f.rng.IntN(1_000_000), 6)),
		subject: string(appendPadded([]byte(d.subjectPrefix), 100_000+f.rng.IntN(900_000), 6)),
		risk:    float64(5+f.rng.IntN(91)) / 100,
	}
	at := g.start.Add(-LegacyAge)
	issued := at.Add(-ms(100 + f.rng.IntN(800))).Truncate(time.Second)
	model := *c.executor.Model
	return lineage.Record{
		Schema:   lineage.SchemaV1,
		ID:       t.name + "-" + g.runTag + "-legacy-1",
		Time:     at.Format(layoutMilli),
		Tenant:   t.name,
		Source:   st.src,
		User:     lineage.Person{ID: t.users[0], Issuer: t.issuer},
		Agent:    lineage.Agent{ID: f.legacy.id, Model: &model},
		Role:     "executor",
		Action:   lineage.Action{Type: st.action, Target: sc.target(st)},
		Decision: lineage.Decision{Effect: lineage.EffectAllow, Policy: st.policy, Reason: st.allowReason},
		Delegation: &lineage.Delegation{
			TokenID:   g.uuid(f.rng),
			Issuer:    t.issuer,
			Mechanism: "rfc8693",
			Scope:     slices.Clone(d.scope),
			IssuedAt:  issued.Format(layoutSecond),
			ExpiresAt: issued.Add(tokenLifetime).Format(layoutSecond),
			Actors:    []string{f.legacy.id},
		},
		PolicyContext: sc.policyContext(st.ctx),
		Trace:         &lineage.Trace{TraceID: g.hexID(f.rng, 2), SpanID: g.hexID(f.rng, 1)},
		Safeguards:    slices.Clone(st.safeguards),
	}
}

// pick returns the failure the session seq carries, given what build has drawn so far: its
// tenant, crew and whether it escalates. It draws only from the failures' PRNG.
func (f *failures) pick(seq uint64, t *tenant, crew int, escalated bool) mode {
	if seq%FailureBlock == 0 {
		for m := firstScheduled; m <= lastScheduled; m++ {
			f.due[m] = seq + uint64(f.rng.IntN(FailureBlock))
		}
	}
	for m := firstScheduled; m <= lastScheduled; m++ {
		if f.due[m] == seq {
			f.pending[m] = true
		}
	}
	for m := firstScheduled; m <= lastScheduled; m++ {
		if f.pending[m] && f.fits(m, t, crew, escalated) {
			f.pending[m] = false
			return m
		}
	}
	return modeNone
}

func (f *failures) fits(m mode, t *tenant, crew int, escalated bool) bool {
	switch m {
	case modeOutOfScope, modeScopeGrowth:
		return !escalated // the escalated step stays the executor's last word
	case modeUnreviewed:
		return escalated
	case modeLegacyAgent:
		return t == f.legacy.t && crew == f.legacy.crew
	}
	return true
}

// placed reports a failure placed in the session.
func (f *failures) placed(sc *sessionCtx, m mode) {
	if f.hook != nil {
		f.hook(sc.baseID, m)
	}
}

// extraStep adds the executor action of an out-of-scope or scope-growth session at about now
// and returns its time.
func (f *failures) extraStep(g *Generator, s *session, sc *sessionCtx, m mode, now time.Duration, parent string) time.Duration {
	d := sc.t.dom
	st := &d.oosStep
	if m == modeScopeGrowth {
		st = &d.growStep
	}
	now += ms(150 + f.rng.IntN(2400))
	spans := sc.spans
	sc.spans = f.rng
	rec := g.add(s, sc, now, "executor", sc.executor, parent, st.src,
		lineage.Action{Type: st.action, Target: sc.target(st)},
		lineage.Decision{Effect: lineage.EffectAllow, Policy: st.policy, Reason: st.allowReason},
		st.ctx, st.safeguards, nil)
	sc.spans = spans
	if m == modeScopeGrowth {
		// A step-up: a second token exchange, for the delegated scope and one more.
		issued := g.start.Add(now - ms(100+f.rng.IntN(800))).Truncate(time.Second)
		del := rec.Delegation
		del.TokenID = g.uuid(f.rng)
		del.Scope = append(del.Scope, d.growScope)
		del.IssuedAt = issued.Format(layoutSecond)
		del.ExpiresAt = issued.Add(tokenLifetime).Format(layoutSecond)
	}
	f.placed(sc, m)
	return now
}

// oversight runs once an escalated session's review is built (the session's last record):
// during an oversight gap the escalation is auto-approved and the review dropped; in an
// unreviewed-escalation session the review is dropped. It returns the failure left to apply.
func (f *failures) oversight(s *session, sc *sessionCtx, m mode, escIdx int, escAt time.Duration) mode {
	drop := func() {
		s.recs[len(s.recs)-1] = lineage.Record{}
		s.recs, s.times = s.recs[:len(s.recs)-1], s.times[:len(s.times)-1]
	}
	if f.inGap(sc.t, escAt) {
		e := &s.recs[escIdx]
		e.Decision.Effect = lineage.EffectAllow
		e.Decision.Reason = "auto-approved: no reviewer on duty, human review skipped"
		drop()
		f.placed(sc, modeOversightGap)
		if m == modeUnreviewed {
			f.pending[m] = true // the gap took its place; try the next escalation
			return modeNone
		}
		return m
	}
	if m == modeUnreviewed {
		drop()
		f.placed(sc, m)
		return modeNone
	}
	return m
}

// inGap reports whether tenant t's reviewers are away when an escalation at offset escAt would
// be reviewed: a review falls in [escAt, escAt+maxReviewDelay), so an escalation is caught when
// either end lies in a gap window of t.
func (f *failures) inGap(t *tenant, escAt time.Duration) bool {
	for _, x := range [...]time.Duration{escAt, escAt + maxReviewDelay} {
		k := int64(f.g.start.Add(x).Truncate(OversightWindow).Sub(f.gapBase) / OversightWindow)
		if k%OversightGapEvery == 0 && f.gapTenant(k) == t {
			return true
		}
	}
	return false
}

// gapTenant is the high-risk tenant whose reviewers are away in gap window k (nil if none).
func (f *failures) gapTenant(k int64) *tenant {
	if len(f.highRisk) == 0 {
		return nil
	}
	return f.highRisk[mix64(f.seed^uint64(k)*0x9e3779b97f4a7c15)%uint64(len(f.highRisk))]
}

// identityClaims is the identity object of an unbound-identity session: what a gateway took
// from a forwarded e-mail header. Its members are in RFC 8785 order, so it is canonical.
type identityClaims struct {
	Email         string `json:"email"`
	EmailVerified bool   `json:"email_verified"`
	Source        string `json:"source"`
	Sub           string `json:"sub"`
}

// apply bends a built session into failure m (the modes build does not handle itself).
func (f *failures) apply(s *session, sc *sessionCtx, c *crew, m mode) {
	t := sc.t
	executor := func(fn func(r *lineage.Record)) {
		for i := range s.recs {
			if r := &s.recs[i]; r.Role == "executor" && r.Agent.ID == sc.executor.ID {
				fn(r)
			}
		}
	}
	all := func(fn func(r *lineage.Record)) {
		for i := range s.recs {
			fn(&s.recs[i])
		}
	}
	switch m {
	case modeServiceAccount:
		user := "svc-" + c.name + "-batch@" + t.dns
		all(func(r *lineage.Record) { r.User.ID = user })
	case modeStaticKey:
		executor(func(r *lineage.Record) {
			r.Delegation = &lineage.Delegation{Mechanism: "api-key", Scope: r.Delegation.Scope}
		})
	case modeHTTPIssuer:
		iss := "http://sso." + t.dns + "/"
		all(func(r *lineage.Record) { r.User.Issuer = iss })
	case modeUnboundIdentity:
		obj, err := json.Marshal(identityClaims{Email: sc.user, Source: "x-forwarded-email", Sub: sc.user})
		if err != nil {
			panic("demo: identity claims: " + err.Error()) // a fixed struct of strings always marshals
		}
		all(func(r *lineage.Record) { r.IdentityObject = slices.Clone(obj) })
	case modeExpiredToken:
		first := f.g.start.Add(s.times[0])
		issued := first.Add(-20*time.Minute - ms(f.rng.IntN(20*60_000))).Truncate(time.Second)
		ia, ea := issued.Format(layoutSecond), issued.Add(tokenLifetime).Format(layoutSecond)
		all(func(r *lineage.Record) { r.Delegation.IssuedAt, r.Delegation.ExpiresAt = ia, ea })
	case modeLongLivedToken:
		ea := sc.issuedAt.Add(LongLivedLifetime).Format(layoutSecond)
		all(func(r *lineage.Record) { r.Delegation.ExpiresAt = ea })
	case modeActorChain:
		executor(func(r *lineage.Record) { r.Delegation.Actors = []string{sc.planner.ID} })
	case modeLegacyAgent:
		executor(func(r *lineage.Record) {
			r.Agent.ID = f.legacy.id
			r.Delegation.Actors[0] = f.legacy.id
		})
	default:
		return // placed by build itself
	}
	f.placed(sc, m)
}
