package report

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	lineage "github.com/lineage-audit/lineage"
)

// maxInventory bounds every map the aggregator keeps (persons, agents, models, policies,
// safeguards, AI systems, lineage edges, open escalations). Real deployments have hundreds of
// each, not millions; the bound keeps a hostile or broken publisher from turning an export into
// an out-of-memory kill. Entries beyond it are counted and reported as a finding.
const maxInventory = 100_000

// maxListed bounds the per-row lists (agents of a model, models of an agent).
const maxListed = 32

// aggregator computes everything in the report except the per-record and per-use rows, which
// are streamed. It holds one entry per distinct person, agent, model, policy and day, never one
// per record. Every string it keeps is cloned (cl): the strings of a decoded record share one
// buffer, and keeping one of them would keep the whole record alive.
type aggregator struct {
	kind Kind

	summary    Summary
	systems    map[string]*aiSystemAgg
	persons    map[personKey]*personAgg
	agents     map[string]*agentAgg
	models     map[modelKey]*modelAgg
	policies   map[lineage.Policy]*PolicyRow
	safeguards map[string]uint64
	edges      map[[2]string]uint64
	userRecs   map[string]uint64 // lineage figure: records per "user:<id>" node
	truncated  map[string]uint64 // inventory name → entries not kept

	// Escalations in the period waiting for a human review record (any time in the log), and
	// reviews seen before the escalation they settle (ingest order need not be causal order).
	pendingEsc    map[string]struct{}
	reviewedEarly map[string]struct{}

	noDelegation    []string // examples
	outsideValidity uint64
	invalidExamples []string

	days             map[int64]uint64 // retention: Unix day → records held
	held             uint64
	earliest, latest time.Time
	undecodable      []uint64
	undecodableN     uint64
}

type personKey struct{ id, issuer string }

type modelKey struct{ provider, name, version string }

type aiSystemAgg struct {
	row         AISystemRow
	first, last time.Time
}

type personAgg struct {
	row         PersonRow
	authorizes  bool
	reviews     bool
	first, last time.Time
}

type agentAgg struct {
	row         AgentRow
	first, last time.Time
}

type modelAgg struct {
	row ModelRow
}

func newAggregator(kind Kind) *aggregator {
	return &aggregator{
		kind:          kind,
		systems:       map[string]*aiSystemAgg{},
		persons:       map[personKey]*personAgg{},
		agents:        map[string]*agentAgg{},
		models:        map[modelKey]*modelAgg{},
		policies:      map[lineage.Policy]*PolicyRow{},
		safeguards:    map[string]uint64{},
		edges:         map[[2]string]uint64{},
		userRecs:      map[string]uint64{},
		truncated:     map[string]uint64{},
		pendingEsc:    map[string]struct{}{},
		reviewedEarly: map[string]struct{}{},
		days:          map[int64]uint64{},
		summary:       Summary{OversightOutcomes: map[string]int{}},
	}
}

// room tells whether a map of size n may take a new key, and counts the refusal otherwise.
func (a *aggregator) room(name string, n int) bool {
	if n < maxInventory {
		return true
	}
	a.truncated[name]++
	return false
}

// held counts a record of the tenant (and AI system) anywhere in the log: the retention view.
func (a *aggregator) hold(t time.Time) {
	a.held++
	if a.earliest.IsZero() || t.Before(a.earliest) {
		a.earliest = t
	}
	if t.After(a.latest) {
		a.latest = t
	}
	a.days[unixDay(t)]++
}

// cl clones a string taken from a record before it is kept.
func cl(s string) string { return strings.Clone(s) }

func unixDay(t time.Time) int64 { return t.Unix() / 86400 }

// review notes a human-oversight record (anywhere in the log) settling the escalated decision
// parent.
func (a *aggregator) review(parent string) {
	if _, ok := a.pendingEsc[parent]; ok {
		delete(a.pendingEsc, parent)
		return
	}
	if a.room("reviews", len(a.reviewedEarly)) {
		a.reviewedEarly[cl(parent)] = struct{}{}
	}
}

// add aggregates one record in scope.
func (a *aggregator) add(rec *lineage.Record, t time.Time, row *DecisionRow) {
	s := &a.summary
	s.Records++
	countEffect(&s.Effects, rec.Decision.Effect)

	if sys := rec.AISystem; sys != nil {
		g := a.systems[sys.ID]
		if g == nil && a.room("ai_systems", len(a.systems)) {
			g = &aiSystemAgg{row: AISystemRow{ID: cl(sys.ID), Name: cl(sys.Name), RiskClass: cl(sys.RiskClass), UseCase: cl(sys.UseCase)}}
			a.systems[g.row.ID] = g
		}
		if g != nil {
			g.row.Records++
			g.first, g.last = minTime(g.first, t), maxTime(g.last, t)
		}
	}

	if p := a.person(rec.User.ID, rec.User.Issuer); p != nil {
		p.authorizes = true
		p.row.RecordsAuthorized++
		p.first, p.last = minTime(p.first, t), maxTime(p.last, t)
	}
	if ho := rec.HumanOversight; ho != nil {
		s.OversightEvents++
		if _, ok := s.OversightOutcomes[ho.Outcome]; ok {
			s.OversightOutcomes[ho.Outcome]++
		} else if len(s.OversightOutcomes) < maxListed {
			s.OversightOutcomes[cl(ho.Outcome)] = 1
		}
		if p := a.person(ho.Reviewer.ID, ho.Reviewer.Issuer); p != nil {
			p.reviews = true
			p.row.Reviews++
			switch strings.ToLower(ho.Outcome) {
			case "approved", "approve", "accepted":
				p.row.ReviewsApproved++
			case "rejected", "reject", "denied":
				p.row.ReviewsRejected++
			}
			p.first, p.last = minTime(p.first, t), maxTime(p.last, t)
		}
	}

	ag := a.agents[rec.Agent.ID]
	if ag == nil && a.room("agents", len(a.agents)) {
		ag = &agentAgg{row: AgentRow{ID: cl(rec.Agent.ID), Roles: []string{}, Models: []string{}}}
		a.agents[ag.row.ID] = ag
	}
	if ag != nil {
		ag.row.Records++
		countEffect(&ag.row.Effects, rec.Decision.Effect)
		if rec.Role != "" {
			ag.row.Roles = addCapped(ag.row.Roles, rec.Role, maxListed)
		}
		if m := rec.Agent.Model; m != nil {
			ag.row.Models = addCapped(ag.row.Models, modelLabel(m), maxListed)
		}
		ag.first, ag.last = minTime(ag.first, t), maxTime(ag.last, t)
	}
	if m := rec.Agent.Model; m != nil {
		k := modelKey{m.Provider, m.Name, m.Version}
		g := a.models[k]
		if g == nil && a.room("models", len(a.models)) {
			g = &modelAgg{row: ModelRow{Provider: cl(m.Provider), Name: cl(m.Name), Version: cl(m.Version), Agents: []string{}}}
			a.models[modelKey{g.row.Provider, g.row.Name, g.row.Version}] = g
		}
		if g != nil {
			g.row.Records++
			g.row.Agents = addCapped(g.row.Agents, rec.Agent.ID, maxListed)
		}
	}

	pol := a.policies[rec.Decision.Policy]
	if pol == nil && a.room("policies", len(a.policies)) {
		pol = &PolicyRow{ID: cl(rec.Decision.Policy.ID), Version: cl(rec.Decision.Policy.Version)}
		a.policies[lineage.Policy{ID: pol.ID, Version: pol.Version}] = pol
	}
	if pol != nil {
		pol.Records++
		countEffect(&pol.Effects, rec.Decision.Effect)
	}
	for _, sg := range rec.Safeguards {
		if _, ok := a.safeguards[sg]; ok {
			a.safeguards[sg]++
		} else if a.room("safeguards", len(a.safeguards)) {
			a.safeguards[cl(sg)] = 1
		}
	}
	a.addEdges(rec)

	switch {
	case rec.Decision.Effect == lineage.EffectEscalate:
		s.Escalations++
		if _, ok := a.reviewedEarly[rec.ID]; ok {
			delete(a.reviewedEarly, rec.ID)
		} else if a.room("escalations", len(a.pendingEsc)) {
			a.pendingEsc[cl(rec.ID)] = struct{}{}
		}
	}
	if rec.Delegation == nil || rec.Delegation.TokenID == "" {
		s.RecordsWithoutDelegation++
		if len(a.noDelegation) < 20 {
			a.noDelegation = append(a.noDelegation, cl(rec.ID))
		}
	}
	if row.DelegationValid != "" {
		a.outsideValidity++
		if len(a.invalidExamples) < 20 {
			a.invalidExamples = append(a.invalidExamples, rec.ID+" ("+row.DelegationValid+")")
		}
	}
}

func (a *aggregator) person(id, issuer string) *personAgg {
	k := personKey{id, issuer}
	p := a.persons[k]
	if p == nil && a.room("persons", len(a.persons)) {
		p = &personAgg{row: PersonRow{ID: cl(id), Issuer: cl(issuer)}}
		a.persons[personKey{p.row.ID, p.row.Issuer}] = p
	}
	return p
}

// addEdges adds the record's delegation chain to the lineage graph: the user delegated to the
// first actor of the RFC 8693 chain (its innermost, last element), which delegated on to the
// next, down to the acting agent.
func (a *aggregator) addEdges(rec *lineage.Record) {
	chain := []string{"user:" + rec.User.ID}
	if d := rec.Delegation; d != nil && len(d.Actors) > 0 {
		for i := len(d.Actors) - 1; i >= 0; i-- {
			chain = append(chain, "agent:"+d.Actors[i])
		}
		if d.Actors[0] != rec.Agent.ID {
			chain = append(chain, "agent:"+rec.Agent.ID)
		}
	} else {
		chain = append(chain, "agent:"+rec.Agent.ID)
	}
	a.userRecs[chain[0]]++
	for i := 0; i+1 < len(chain); i++ {
		k := [2]string{chain[i], chain[i+1]}
		if k[0] == k[1] {
			continue
		}
		if _, ok := a.edges[k]; ok || a.room("lineage", len(a.edges)) {
			a.edges[k]++
		}
	}
}

// use is told about each finished use, to count uses per person and AI system.
func (a *aggregator) use(u *useAgg) {
	a.summary.Uses++
	if g := a.systems[u.AISystem]; g != nil {
		g.row.Uses++
	}
	for _, p := range u.Users {
		if g := a.persons[personKey{p[0], p[1]}]; g != nil {
			g.row.UsesAuthorized++
		}
	}
}

func countEffect(c *EffectCounts, effect string) {
	switch effect {
	case lineage.EffectAllow:
		c.Allow++
	case lineage.EffectDeny:
		c.Deny++
	case lineage.EffectModify:
		c.Modify++
	case lineage.EffectEscalate:
		c.Escalate++
	}
}

func modelLabel(m *lineage.Model) string {
	s := m.Provider + "/" + m.Name
	if m.Version != "" {
		s += "@" + m.Version
	}
	return s
}

// addCapped appends (a clone of) v to an insertion-ordered set of at most max items.
func addCapped(set []string, v string, max int) []string {
	if len(set) >= max || slices.Contains(set, v) {
		return set
	}
	return append(set, cl(v))
}

func minTime(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// FormatTime is how aggregated times appear in reports, and the export service's jobs show
// times the same way: RFC 3339 UTC with as many fractional digits as needed.
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// fill writes the aggregates into the report header, sorted for stable output.
func (a *aggregator) fill(h *Header, gapDays int) {
	h.Summary = a.summary
	for _, g := range a.systems {
		g.row.FirstSeen, g.row.LastSeen = FormatTime(g.first), FormatTime(g.last)
		g.row.HighRisk = strings.EqualFold(g.row.RiskClass, "high")
		h.AISystems = append(h.AISystems, g.row)
	}
	slices.SortFunc(h.AISystems, func(x, y AISystemRow) int { return cmp.Compare(x.ID, y.ID) })
	h.Summary.AISystems = len(h.AISystems)

	for _, p := range a.persons {
		p.row.Roles = []string{}
		if p.authorizes {
			p.row.Roles = append(p.row.Roles, "authorizing-user")
			h.Summary.AuthorizingPersons++
		}
		if p.reviews {
			p.row.Roles = append(p.row.Roles, "oversight-reviewer")
			h.Summary.OversightReviewers++
		}
		p.row.FirstSeen, p.row.LastSeen = FormatTime(p.first), FormatTime(p.last)
		h.Persons = append(h.Persons, p.row)
	}
	slices.SortFunc(h.Persons, func(x, y PersonRow) int {
		return cmp.Or(cmp.Compare(y.RecordsAuthorized+y.Reviews, x.RecordsAuthorized+x.Reviews), cmp.Compare(x.ID, y.ID), cmp.Compare(x.Issuer, y.Issuer))
	})

	for _, g := range a.agents {
		g.row.FirstSeen, g.row.LastSeen = FormatTime(g.first), FormatTime(g.last)
		g.row.SharedIdentity = len(g.row.Roles) > 1
		slices.Sort(g.row.Roles)
		slices.Sort(g.row.Models)
		h.Agents = append(h.Agents, g.row)
	}
	slices.SortFunc(h.Agents, func(x, y AgentRow) int { return cmp.Compare(x.ID, y.ID) })
	h.Summary.Agents = len(h.Agents)

	providers := map[string]*ProviderRow{}
	for _, g := range a.models {
		slices.Sort(g.row.Agents)
		h.Models = append(h.Models, g.row)
		p := providers[g.row.Provider]
		if p == nil {
			p = &ProviderRow{Provider: g.row.Provider, Models: []string{}}
			providers[g.row.Provider] = p
		}
		p.Records += g.row.Records
		p.Models = addCapped(p.Models, g.row.Name+"@"+g.row.Version, maxListed)
	}
	slices.SortFunc(h.Models, func(x, y ModelRow) int {
		return cmp.Or(cmp.Compare(x.Provider, y.Provider), cmp.Compare(x.Name, y.Name), cmp.Compare(x.Version, y.Version))
	})
	h.Summary.Models = len(h.Models)
	for _, p := range providers {
		slices.Sort(p.Models)
		h.Providers = append(h.Providers, *p)
	}
	slices.SortFunc(h.Providers, func(x, y ProviderRow) int { return cmp.Compare(x.Provider, y.Provider) })

	for _, p := range a.policies {
		h.Policies = append(h.Policies, *p)
	}
	slices.SortFunc(h.Policies, func(x, y PolicyRow) int {
		return cmp.Or(cmp.Compare(x.ID, y.ID), cmp.Compare(x.Version, y.Version))
	})
	for k, n := range a.safeguards {
		h.Safeguards = append(h.Safeguards, SafeguardRow{Safeguard: k, Records: n})
	}
	slices.SortFunc(h.Safeguards, func(x, y SafeguardRow) int {
		return cmp.Or(cmp.Compare(y.Records, x.Records), cmp.Compare(x.Safeguard, y.Safeguard))
	})
	for k, n := range a.edges {
		h.Lineage = append(h.Lineage, EdgeRow{From: k[0], To: k[1], Records: n})
	}
	slices.SortFunc(h.Lineage, func(x, y EdgeRow) int {
		return cmp.Or(cmp.Compare(x.From, y.From), cmp.Compare(x.To, y.To))
	})

	h.Summary.EscalationsWithoutReview = uint64(len(a.pendingEsc))
	h.Retention = a.retention(gapDays)
	h.Findings = a.findings(h)
}

// retentionMonths is what Art. 19(1) and 26(6) require logs to be kept for, at least.
const retentionMonths = 6

// retention computes the coverage view from the per-day counts.
func (a *aggregator) retention(gapDays int) Retention {
	r := Retention{MinimumMonths: retentionMonths, GapThresholdDays: gapDays, Gaps: []Gap{}, Months: []MonthRow{}, RecordsHeld: a.held}
	r.Note = "Coverage counts every record of the tenant" +
		" (and AI system, when the export names one) that the log holds, over the log's whole life, not only the reporting period."
	if a.held == 0 {
		return r
	}
	r.EarliestRecord, r.LatestRecord = FormatTime(a.earliest), FormatTime(a.latest)
	r.CoverageDays = int(a.latest.Sub(a.earliest).Hours() / 24)
	r.MeetsMinimum = !a.earliest.AddDate(0, retentionMonths, 0).After(a.latest)
	first, last := unixDay(a.earliest), unixDay(a.latest)
	months := map[string]uint64{}
	run := int64(0)
	for d := first; d <= last; d++ {
		n := a.days[d]
		if n > 0 {
			months[time.Unix(d*86400, 0).UTC().Format("2006-01")] += n
			if run >= int64(gapDays) {
				r.Gaps = append(r.Gaps, Gap{From: dayString(d - run), To: dayString(d - 1), Days: int(run)})
			}
			run = 0
			continue
		}
		run++
	}
	for m, n := range months {
		r.Months = append(r.Months, MonthRow{Month: m, Records: n})
	}
	slices.SortFunc(r.Months, func(x, y MonthRow) int { return cmp.Compare(x.Month, y.Month) })
	return r
}

// plural renders "1 thing" or "n things".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func dayString(d int64) string { return time.Unix(d*86400, 0).UTC().Format(time.DateOnly) }

// findings lists what an auditor should look at, most severe first.
func (a *aggregator) findings(h *Header) []Finding {
	var f []Finding
	add := func(sev, code, msg string, items []string) {
		if len(items) > 20 {
			items = items[:20]
		}
		f = append(f, Finding{Severity: sev, Code: code, Message: msg, Items: items})
	}
	s := &h.Summary
	if s.Records == 0 {
		add("info", "no_records", "No record of the tenant falls in the period and scope of this export.", nil)
	}
	if a.undecodableN > 0 {
		var items []string
		for _, i := range a.undecodable {
			items = append(items, fmt.Sprint(i))
		}
		add("high", "undecodable_entries", fmt.Sprintf("%d log entries that mention the tenant are not valid Lineage entries; they are in the signed log but cannot be read (log indexes listed).", a.undecodableN), items)
	}
	r := &h.Retention
	if r.RecordsHeld > 0 && !r.MeetsMinimum {
		span := plural(r.CoverageDays, "day", "days")
		if r.CoverageDays == 0 {
			span = "less than a day"
		}
		add("high", "retention_below_minimum", fmt.Sprintf(
			"The log holds %s of records (earliest %s, latest %s). Art. 19(1) and 26(6) require logs to be kept for at least %d months: unless the system has been in use for less than that, records are missing.",
			span, r.EarliestRecord, r.LatestRecord, retentionMonths), nil)
	}
	if len(r.Gaps) > 0 {
		var items []string
		for _, g := range r.Gaps {
			items = append(items, fmt.Sprintf("%s to %s (%d days)", g.From, g.To, g.Days))
		}
		add("medium", "retention_gap", fmt.Sprintf("%s of %d or more days without any record inside the coverage: the system was idle, or its logs were not kept.", plural(len(r.Gaps), "period", "periods"), r.GapThresholdDays), items)
	}
	if len(a.pendingEsc) > 0 {
		ids := make([]string, 0, len(a.pendingEsc))
		for id := range a.pendingEsc {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		add("high", "escalation_without_review", fmt.Sprintf("%s escalated to a human, but the log holds no human-oversight record settling it (Art. 14).", plural(len(a.pendingEsc), "decision was", "decisions were")), ids)
	}
	if s.RecordsWithoutDelegation > 0 {
		sev := "medium"
		if a.kind == KindFannieMae {
			sev = "high"
		}
		add(sev, "records_without_delegation", fmt.Sprintf("%d AI actions carry no delegation token: the natural person who authorized them is only named by the enforcement point, not proven by a delegation.", s.RecordsWithoutDelegation), a.noDelegation)
	}
	if a.outsideValidity > 0 {
		add("high", "delegation_outside_validity", fmt.Sprintf("%d AI actions were decided outside the lifetime of their delegation token (expired or not yet valid, with 60 s leeway).", a.outsideValidity), a.invalidExamples)
	}
	var shared []string
	for _, ag := range h.Agents {
		if ag.SharedIdentity {
			shared = append(shared, ag.ID+" ("+strings.Join(ag.Roles, ", ")+")")
		}
	}
	if len(shared) > 0 {
		add("medium", "shared_agent_identity", fmt.Sprintf("%s in more than one role: their actions cannot be attributed to one role, which defeats separation of duties.", plural(len(shared), "agent identity acts", "agent identities act")), shared)
	}
	if s.RecordsWithoutAISystem > 0 && a.kind == KindEUAIAct {
		add("info", "records_without_ai_system", fmt.Sprintf("%d records of the tenant in the period name no AI system and are not part of this report.", s.RecordsWithoutAISystem), nil)
	}
	if a.kind == KindEUAIAct {
		var low []string
		for _, sys := range h.AISystems {
			if !sys.HighRisk {
				low = append(low, sys.ID+" (risk class "+cmp.Or(sys.RiskClass, "not declared")+")")
			}
		}
		if len(low) > 0 {
			add("info", "not_high_risk", "Art. 12 and 19 apply to high-risk (Annex III) systems; these systems are not declared high-risk and are reported for completeness.", low)
		}
	}
	if len(a.truncated) > 0 {
		var items []string
		for name, n := range a.truncated {
			items = append(items, fmt.Sprintf("%s: %d not listed", name, n))
		}
		slices.Sort(items)
		add("medium", "inventory_truncated", fmt.Sprintf("Some inventories exceeded %d distinct entries; the excess is counted but not listed.", maxInventory), items)
	}
	rank := map[string]int{"high": 0, "medium": 1, "info": 2}
	slices.SortStableFunc(f, func(x, y Finding) int { return cmp.Compare(rank[x.Severity], rank[y.Severity]) })
	if f == nil {
		f = []Finding{}
	}
	return f
}
