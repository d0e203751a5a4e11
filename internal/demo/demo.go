// Package demo generates realistic, deterministic decision traffic from multi-tenant AI-agent
// deployments: the records `lineagectl publish --demo N` sends, and the input of benchmarks and
// end-to-end tests of the ingest → ledger → index → report pipeline.
//
// The world it simulates: a few companies (tenants such as "acme-bank", "globex-lending",
// "initech-health"), each with about twenty employees who sign in through the company's OIDC
// provider, one AI system (with its EU AI Act risk class: credit scoring and life and health
// insurance pricing are high-risk) and a few crews of agents. In a session an employee delegates
// a task to a crew's planner through an RFC 8693 token exchange; the planner records its plan and
// spawns an executor and a critic, whose records name the planner's record as parent_id and
// carry the act chain [self, planner]. The executor reads data, calls tools and sends mail; the
// enforcement points (an AI gateway and an OPA sidecar) mostly allow, sometimes deny (a personal
// data export out of the EU), sometimes modify (redaction). About 3% of sessions escalate a
// decision to a human reviewer, whose verdict is a further record with human_oversight. About
// 1% of sessions reuse the executor's identity for the critic: the "shared agent identifier"
// failure mode an audit should surface. Options.FailureModes adds, at similarly low rates, every
// other failure mode package query/findings detects (failure.go), and FindingsConfig is the
// findings configuration of the demo tenants.
//
// Everything is drawn from one seeded PRNG, so a seed always yields the same records, byte for
// byte; record ids include a tag derived from the seed, so runs with different seeds do not
// collide in the ledger while a rerun with the same seed is deduplicated by ingest, as a real
// redelivery would be.
package demo

import (
	"container/heap"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/lineage-audit/lineage"
)

// Options configures a Generator. The zero value is valid: it yields three tenants' traffic
// from seed 0 starting at 2026-11-01T00:00:00Z, one session every two seconds.
type Options struct {
	// Seed selects the traffic; the same seed always yields the same records.
	Seed int64
	// Tenants is the number of tenants whose sessions interleave (default 3, also for a
	// negative value). The first eight are distinct companies; beyond that the catalogue
	// repeats with a numeric suffix ("acme-bank-2").
	Tenants int
	// Start is the time of the first session (default 2026-11-01T00:00:00Z). Record times are
	// written in UTC with millisecond precision.
	Start time.Time
	// Step is the time between the starts of consecutive sessions (default 2s, also for a
	// negative value). Sessions last a few seconds (minutes when a human reviews a decision),
	// so with the default several are in flight at once and their records interleave.
	Step time.Duration
	// FailureModes adds the identity failures query/findings detects, each in about one
	// session of every FailureBlock (see failure.go for what each looks like): a service
	// account as the user, an executor on a static API key, an http issuer, an identity object
	// without an issuer, an expired token, a 30-day token, an actor chain naming the planner,
	// an out-of-scope write, a mid-session scope step-up, an escalation nobody reviews, a
	// high-risk system's reviewers away for a whole oversight window (one tenant, one window
	// in OversightGapEvery) and an agent identity older than the rotation period (its first
	// record, LegacyAge before Start, is the first record of the stream). Off (the default),
	// the stream is exactly what it was before this option existed; on, the sessions without
	// a failure are still exactly those of the stream without it.
	FailureModes bool
}

// DefaultStart is the Start of Options that leave it zero: a fixed instant, so that the same
// seed yields the same records on any day.
var DefaultStart = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// Defaults of Options fields left zero.
const (
	// DefaultTenants is the Tenants of Options that leave it zero.
	DefaultTenants = 3
	// DefaultStep is the Step of Options that leave it zero (or negative).
	DefaultStep = 2 * time.Second
)

// Fractions of sessions with the rare events an audit looks for.
const (
	// EscalationRate is the fraction of sessions in which a decision is escalated to a human
	// reviewer (EU AI Act Art. 14 oversight).
	EscalationRate = 0.03
	// SharedAgentRate is the fraction of sessions in which the critic runs under the
	// executor's workload identity, so two roles share one agent id.
	SharedAgentRate = 0.01
)

// maxActive bounds the sessions in flight, and so the Generator's memory, whatever Step is.
// When Step is so short that more sessions would overlap, later sessions start late (at the
// time of the last record returned) instead, which keeps record times non-decreasing.
const maxActive = 1024

// Generator yields the records of interleaved sessions one at a time, in non-decreasing time
// order, holding only the sessions in flight: a million records need no more memory than ten.
// A Generator is not safe for concurrent use.
type Generator struct {
	rng     *rand.Rand
	start   time.Time
	step    time.Duration
	runTag  string
	tenants []*tenant
	weights []float64 // cumulative tenant weights, last = 1

	seq    uint64        // sessions started so far
	last   time.Duration // offset from start of the last record returned
	active sessionHeap
	free   []*session // finished sessions, reused to spare the allocator
	buf    []byte     // scratch for formatting

	fail *failures // nil unless Options.FailureModes
}

// New returns a Generator for o. Zero fields of o take their defaults (see Options).
func New(o Options) *Generator {
	if o.Tenants <= 0 {
		o.Tenants = DefaultTenants
	}
	if o.Start.IsZero() {
		o.Start = DefaultStart
	}
	if o.Step <= 0 {
		o.Step = DefaultStep
	}
	g := &Generator{
		rng:   rand.New(rand.NewPCG(uint64(o.Seed), 0x6c69_6e65_6167_65)), // "lineage"
		start: o.Start.UTC(),
		step:  o.Step,
	}
	g.runTag = string(appendHex(nil, mix64(uint64(o.Seed))>>32, 8))

	// Traffic is skewed towards the first tenants, as it is between real customers of a
	// service: tenant i has weight 1/(1+i/3).
	var total float64
	for i := 0; i < o.Tenants; i++ {
		g.tenants = append(g.tenants, newTenant(i))
		total += 1 / (1 + float64(i)/3)
		g.weights = append(g.weights, total)
	}
	for i := range g.weights {
		g.weights[i] /= total
	}
	if o.FailureModes {
		g.fail = newFailures(g, o.Seed)
	}
	return g
}

// Generate returns the first n records of New(o): a convenience for tests and small demos.
func Generate(o Options, n int) []lineage.Record {
	g := New(o)
	out := make([]lineage.Record, n)
	for i := range out {
		out[i] = g.Next()
	}
	return out
}

// Next returns the next record. It never fails and never runs out.
//
// Sessions start every Step; the records of all sessions in flight are merged by time, so
// sessions of different tenants interleave while every record still follows its parent.
func (g *Generator) Next() lineage.Record {
	if f := g.fail; f != nil && len(f.history) > 0 {
		r := f.history[0]
		f.history = f.history[1:]
		return r
	}
	for len(g.active) == 0 || (len(g.active) < maxActive && g.nominalStart() <= g.active[0].at()) {
		g.startSession()
	}
	s := g.active[0]
	r := s.recs[s.pos]
	s.recs[s.pos] = lineage.Record{} // the caller owns it now; do not keep it alive
	g.last = s.times[s.pos]
	s.pos++
	if s.pos == len(s.recs) {
		heap.Pop(&g.active)
		g.free = append(g.free, s)
	} else {
		heap.Fix(&g.active, 0)
	}
	return r
}

// nominalStart is when the next session starts if the in-flight bound does not delay it.
func (g *Generator) nominalStart() time.Duration {
	return time.Duration(g.seq) * g.step
}

// startSession builds the next session's records and puts it in flight.
func (g *Generator) startSession() {
	var s *session
	if n := len(g.free); n > 0 {
		s, g.free = g.free[n-1], g.free[:n-1]
		s.recs, s.times, s.pos = s.recs[:0], s.times[:0], 0
	} else {
		s = &session{}
	}
	s.seq = g.seq
	g.seq++
	at := max(time.Duration(s.seq)*g.step, g.last)
	g.build(s, at)
	heap.Push(&g.active, s)
}

// session is one user's task for one crew: its records, built up front (a session has fewer
// than ten), and the position of the next one to return.
type session struct {
	seq   uint64
	recs  []lineage.Record
	times []time.Duration // offset from Generator.start of each record, non-decreasing
	pos   int
}

func (s *session) at() time.Duration { return s.times[s.pos] }

// sessionHeap orders sessions in flight by the time of their next record, then by start order,
// so that the merge is deterministic.
type sessionHeap []*session

func (h sessionHeap) Len() int { return len(h) }
func (h sessionHeap) Less(i, j int) bool {
	if a, b := h[i].at(), h[j].at(); a != b {
		return a < b
	}
	return h[i].seq < h[j].seq
}
func (h sessionHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *sessionHeap) Push(x any)   { *h = append(*h, x.(*session)) }
func (h *sessionHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return s
}

// mix64 is the SplitMix64 finaliser, a bijection that spreads a seed's bits.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// appendHex appends the low 4*digits bits of x as zero-padded lowercase hex.
func appendHex(dst []byte, x uint64, digits int) []byte {
	const hexDigits = "0123456789abcdef"
	for i := digits - 1; i >= 0; i-- {
		dst = append(dst, hexDigits[(x>>(4*uint(i)))&0xf])
	}
	return dst
}

// appendPadded appends n in decimal, zero-padded to width digits.
func appendPadded(dst []byte, n, width int) []byte {
	var b [20]byte
	s := strconv.AppendInt(b[:0], int64(n), 10)
	for i := len(s); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}
