package findings

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	lineage "github.com/lineage-audit/lineage"
)

// Bounds on the state one tenant keeps; beyond them new keys are not tracked (Truncated counts
// them) rather than letting a flood of distinct ids exhaust memory.
const (
	maxStatePerTenant = 1 << 20
	maxRolesPerAgent  = 16
	maxScopesTracked  = 64
)

// OwnSourceType is the source type of the records Lineage itself logs (an export run,
// exporters/report/scan.go ExportSourceType): they are not agent actions and are not checked.
const OwnSourceType = "lineage"

// Engine detects findings in log order. It is not safe for concurrent use: one indexer feeds it.
type Engine struct {
	cfg     *Configs
	tenants map[string]*tenantState
	dirty   map[stateKey]struct{}
	// Truncated counts keys not tracked because a tenant's state was full.
	Truncated uint64
}

// NewEngine returns an engine with empty state (nil cfg: Default for every tenant).
func NewEngine(cfg *Configs) *Engine {
	return &Engine{cfg: cfg, tenants: map[string]*tenantState{}, dirty: map[stateKey]struct{}{}}
}

// State spaces, the StateItem.Space values.
const (
	spaceWatermark = "watermark"
	spaceAgent     = "agent"
	spaceSession   = "session"
	spacePending   = "escalation"
	spaceReviewed  = "reviewed"
	spaceWindow    = "oversight_window"
)

type stateKey struct{ tenant, space, key string }

// StateItem is one piece of engine state: Value is its JSON, nil when it was deleted.
type StateItem struct {
	Tenant, Space, Key string
	Value              []byte
}

type tenantState struct {
	cfg       *Config
	watermark time.Time
	size      int
	agents    map[string]*agentState
	sessions  map[string]*sessionState // user \x00 agent
	pending   map[string]*escalation   // escalated record id
	reviewed  map[string]time.Time     // reviews logged before the escalation they settle
	windows   map[string]*oversightWin // AI system id \x00 window start
}

type seen struct {
	Value    string   `json:"value"`
	Evidence Evidence `json:"evidence"`
}

type agentState struct {
	First    Evidence `json:"first"`
	User     string   `json:"user,omitempty"`
	Roles    []seen   `json:"roles,omitempty"`
	Systems  []seen   `json:"systems,omitempty"`
	Rotation bool     `json:"rotation_reported,omitempty"`
}

type sessionState struct {
	Start  Evidence  `json:"start"`
	Last   time.Time `json:"last"`
	Scopes []string  `json:"scopes"`
	Grown  bool      `json:"grown,omitempty"`
}

type escalation struct {
	Evidence Evidence `json:"evidence"`
	Agent    string   `json:"agent"`
	User     string   `json:"user"`
}

type oversightWin struct {
	System    string     `json:"system"`
	Start     time.Time  `json:"start"`
	Decisions uint64     `json:"decisions"`
	Reviews   uint64     `json:"reviews"`
	Evidence  []Evidence `json:"evidence,omitempty"`
}

func (e *Engine) tenant(name string) *tenantState {
	ts := e.tenants[name]
	if ts == nil {
		ts = &tenantState{
			cfg: e.cfg.For(name), agents: map[string]*agentState{}, sessions: map[string]*sessionState{},
			pending: map[string]*escalation{}, reviewed: map[string]time.Time{}, windows: map[string]*oversightWin{},
		}
		e.tenants[name] = ts
	}
	return ts
}

func (e *Engine) touch(tenant, space, key string) { e.dirty[stateKey{tenant, space, key}] = struct{}{} }

// room reports whether the tenant may track one more key.
func (e *Engine) room(ts *tenantState) bool {
	if ts.size >= maxStatePerTenant {
		e.Truncated++
		return false
	}
	ts.size++
	return true
}

// Observe checks the record at log index idx, whose time is t (rec.Time parsed), and appends
// the occurrences it shows to out. Records must come in log order; call EndBatch after each run
// of them to close the windows the newest records passed.
func (e *Engine) Observe(idx uint64, rec *lineage.Record, t time.Time, out []Occurrence) []Occurrence {
	if rec == nil || rec.Source.Type == OwnSourceType {
		// Lineage's own records (an export run) are not agent actions, and their wall-clock
		// times must not move the tenant's record-time watermark.
		return out
	}
	ts := e.tenant(rec.Tenant)
	cfg := ts.cfg
	ev := Evidence{ID: rec.ID, Index: idx, Time: t}
	if t.After(ts.watermark) {
		ts.watermark = t
		e.touch(rec.Tenant, spaceWatermark, "")
	}
	occ := func(k Kind, sev Severity, key, note, expl string) {
		ev := ev
		ev.Note = note
		out = append(out, Occurrence{Tenant: rec.Tenant, Kind: k, Severity: sev, Key: key,
			Agent: rec.Agent.ID, User: rec.User.ID, Evidence: ev, Explanation: expl})
	}
	d := rec.Delegation
	hasToken := d != nil && d.TokenID != ""

	if cfg.enabled(StaticCredential) {
		if !hasToken {
			occ(StaticCredential, High, "no-delegation:"+rec.Agent.ID, "no delegation token",
				fmt.Sprintf("Agent %s acted without a delegation token: the enforcement point names user %s, but nothing proves that person delegated the action; the credential identifies the application, not the person or the agent.", rec.Agent.ID, rec.User.ID))
		}
		if matchAny(cfg.ServiceAccounts, rec.User.ID) {
			occ(StaticCredential, High, "service-account:"+rec.User.ID, "user is a service account",
				fmt.Sprintf("The authorizing user %s is a service account, not a natural person: no person is accountable for the actions it authorized.", rec.User.ID))
		}
	}
	if cfg.enabled(InferredIdentity) {
		out = e.inferred(cfg, rec, ev, out)
	}
	if cfg.enabled(DelegationMisuse) && hasToken {
		out = delegationMisuse(cfg, rec, ev, t, out)
	}
	if cfg.enabled(OutOfScope) && len(cfg.ActionScopes) > 0 {
		out = outOfScope(cfg, rec, ev, out)
	}
	out = e.agent(ts, rec, ev, out)
	if cfg.enabled(ScopeEscalation) && d != nil && len(d.Scope) > 0 {
		out = e.session(ts, rec, ev, out)
	}
	e.oversight(ts, rec, ev)
	return out
}

// inferred checks that a trusted identity provider established the user's identity.
func (e *Engine) inferred(cfg *Config, rec *lineage.Record, ev Evidence, out []Occurrence) []Occurrence {
	iss := rec.User.Issuer
	add := func(sev Severity, key, note, expl string) {
		ev := ev
		ev.Note = note
		out = append(out, Occurrence{Tenant: rec.Tenant, Kind: InferredIdentity, Severity: sev, Key: key,
			Agent: rec.Agent.ID, User: rec.User.ID, Evidence: ev, Explanation: expl})
	}
	if u, err := url.Parse(iss); iss == "" || err != nil || u.Scheme != "https" || u.Host == "" {
		add(High, "issuer-not-https:"+iss, "issuer "+quote(iss)+" is not an https identity provider",
			fmt.Sprintf("Users are vouched for by issuer %s, which is not an https identity provider: their identity is asserted by the enforcement point, not verified.", quote(iss)))
	} else if len(cfg.TrustedIssuers) > 0 && !slices.Contains(cfg.TrustedIssuers, iss) {
		add(High, "issuer-untrusted:"+iss, "issuer "+quote(iss)+" is not trusted by the tenant",
			fmt.Sprintf("Users are vouched for by issuer %s, which is not one of the tenant's trusted identity providers.", quote(iss)))
	}
	if cfg.RequireIdentityBinding != nil && *cfg.RequireIdentityBinding && len(rec.IdentityObject) > 0 && !bindsIssuer(rec.IdentityObject, iss) {
		add(Medium, "unbound-identity:"+rec.User.ID, "identity object does not name issuer "+quote(iss),
			fmt.Sprintf("The identity object of user %s's actions does not bind the user to an identity provider (no iss claim equal to %s): the identity is inferred, not established.", rec.User.ID, quote(iss)))
	}
	return out
}

// bindsIssuer reports whether an identity object (decoded claims, or a JWT as a JSON string)
// carries an "iss" or "issuer" claim equal to iss. A JWT's payload is read without checking its
// signature: this is a check that the binding is there, not that it is authentic.
func bindsIssuer(obj json.RawMessage, iss string) bool {
	var claims map[string]json.RawMessage
	if obj[0] == '"' {
		var tok string
		if json.Unmarshal(obj, &tok) != nil {
			return false
		}
		parts := strings.Split(tok, ".")
		if len(parts) != 3 {
			return false
		}
		payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
		if err != nil {
			return false
		}
		obj = payload
	}
	if json.Unmarshal(obj, &claims) != nil {
		return false
	}
	for _, name := range []string{"iss", "issuer"} {
		var v string
		if raw, ok := claims[name]; ok && json.Unmarshal(raw, &v) == nil && v == iss {
			return true
		}
	}
	return false
}

func delegationMisuse(cfg *Config, rec *lineage.Record, ev Evidence, t time.Time, out []Occurrence) []Occurrence {
	d := rec.Delegation
	add := func(sev Severity, key, note, expl string) {
		ev := ev
		ev.Note = note
		out = append(out, Occurrence{Tenant: rec.Tenant, Kind: DelegationMisuse, Severity: sev, Key: key,
			Agent: rec.Agent.ID, User: rec.User.ID, Evidence: ev, Explanation: expl})
	}
	leeway := time.Duration(cfg.DelegationLeeway)
	ia, iaErr := time.Parse(time.RFC3339Nano, d.IssuedAt)
	ea, eaErr := time.Parse(time.RFC3339Nano, d.ExpiresAt)
	if eaErr == nil && t.After(ea.Add(leeway)) {
		add(High, "expired:"+d.TokenID, fmt.Sprintf("decided %s after the token expired", t.Sub(ea).Round(time.Second)),
			fmt.Sprintf("Delegation token %s was used after it expired at %s: the user's authority had ended.", d.TokenID, d.ExpiresAt))
	}
	if iaErr == nil && t.Before(ia.Add(-leeway)) {
		add(High, "not-yet-valid:"+d.TokenID, fmt.Sprintf("decided %s before the token was issued", ia.Sub(t).Round(time.Second)),
			fmt.Sprintf("Delegation token %s was used before it was issued at %s.", d.TokenID, d.IssuedAt))
	}
	if iaErr == nil && eaErr == nil && cfg.MaxDelegationLifetime > 0 && ea.Sub(ia) > time.Duration(cfg.MaxDelegationLifetime) {
		add(Medium, "long-lived:"+d.TokenID, "token lives "+ea.Sub(ia).String(),
			fmt.Sprintf("Delegation token %s lives %s (issued %s, expires %s), longer than the tenant's maximum of %s: a long-lived token is a standing credential.", d.TokenID, ea.Sub(ia), d.IssuedAt, d.ExpiresAt, time.Duration(cfg.MaxDelegationLifetime)))
	}
	if len(d.Actors) > 0 && d.Actors[0] != rec.Agent.ID {
		add(High, "actor-chain:"+rec.Agent.ID+"\x00"+d.Actors[0], "act chain starts with "+d.Actors[0],
			fmt.Sprintf("Agent %s acted on a delegation whose actor chain starts with %s: the token was issued to another actor.", rec.Agent.ID, d.Actors[0]))
	}
	return out
}

func outOfScope(cfg *Config, rec *lineage.Record, ev Evidence, out []Occurrence) []Occurrence {
	// A denied action is the policy doing its job: only actions that went ahead count.
	if e := rec.Decision.Effect; e != lineage.EffectAllow && e != lineage.EffectModify {
		return out
	}
	i := slices.IndexFunc(cfg.ActionScopes, func(r ScopeRule) bool {
		return r.Action == rec.Action.Type && (r.Target == "" || Match(r.Target, rec.Action.Target))
	})
	if i < 0 {
		return out
	}
	need := cfg.ActionScopes[i].Scopes
	var granted []string
	if rec.Delegation != nil {
		granted = rec.Delegation.Scope
	}
	if slices.ContainsFunc(need, func(s string) bool { return slices.Contains(granted, s) }) {
		return out
	}
	ev.Note = fmt.Sprintf("%s %s needs %s; granted %s", rec.Action.Type, rec.Action.Target, strings.Join(need, " or "), list(granted))
	return append(out, Occurrence{Tenant: rec.Tenant, Kind: OutOfScope, Severity: High,
		Key: rec.Agent.ID + "\x00" + rec.Action.Type, Agent: rec.Agent.ID, User: rec.User.ID, Evidence: ev,
		Explanation: fmt.Sprintf("Agent %s performed %s actions its delegation did not grant: they need %s.", rec.Agent.ID, rec.Action.Type, strings.Join(need, " or "))})
}

// agent tracks an agent identity's roles, AI systems and age.
func (e *Engine) agent(ts *tenantState, rec *lineage.Record, ev Evidence, out []Occurrence) []Occurrence {
	cfg := ts.cfg
	id := rec.Agent.ID
	a := ts.agents[id]
	if a == nil {
		if !e.room(ts) {
			return out
		}
		a = &agentState{First: ev, User: rec.User.ID}
		ts.agents[id] = a
		e.touch(rec.Tenant, spaceAgent, id)
	} else if ev.Time.Before(a.First.Time) {
		a.First = ev
		e.touch(rec.Tenant, spaceAgent, id)
	}
	shared := func(list *[]seen, what, value string) {
		if value == "" || slices.ContainsFunc(*list, func(s seen) bool { return s.Value == value }) || len(*list) >= maxRolesPerAgent {
			return
		}
		*list = append(*list, seen{Value: value, Evidence: ev})
		e.touch(rec.Tenant, spaceAgent, id)
		if len(*list) < 2 || !cfg.enabled(SharedAgent) {
			return
		}
		vals := make([]string, len(*list))
		for i, s := range *list {
			vals[i] = s.Value
		}
		expl := fmt.Sprintf("Agent identity %s acts in %d %s (%s): its actions cannot be attributed to one of them, which defeats separation of duties.", id, len(vals), what, strings.Join(vals, ", "))
		from := len(*list) - 1
		if from == 1 {
			from = 0 // the first value becomes evidence too
		}
		for _, s := range (*list)[from:] {
			ev := s.Evidence
			ev.Note = strings.TrimSuffix(what, "s") + " " + s.Value
			out = append(out, Occurrence{Tenant: rec.Tenant, Kind: SharedAgent, Severity: Medium, Key: id,
				Agent: id, Evidence: ev, Explanation: expl})
		}
	}
	shared(&a.Roles, "roles", rec.Role)
	if rec.AISystem != nil {
		shared(&a.Systems, "AI systems", rec.AISystem.ID)
	}
	if cfg.enabled(CredentialRotation) && !a.Rotation && cfg.RotationPeriod > 0 &&
		ev.Time.Sub(a.First.Time) > time.Duration(cfg.RotationPeriod) {
		a.Rotation = true
		e.touch(rec.Tenant, spaceAgent, id)
		age := ev.Time.Sub(a.First.Time)
		expl := fmt.Sprintf("Agent identity %s has been in use for %d days (first seen %s), longer than the tenant's rotation period of %d days: its credential has not been rotated.",
			id, int(age.Hours()/24), a.First.Time.Format(time.RFC3339), int(time.Duration(cfg.RotationPeriod).Hours()/24))
		first := a.First
		first.Note = "first seen"
		out = append(out, Occurrence{Tenant: rec.Tenant, Kind: CredentialRotation, Severity: Medium, Key: id, Agent: id, Evidence: first, Explanation: expl})
		ev.Note = fmt.Sprintf("still in use after %d days", int(age.Hours()/24))
		out = append(out, Occurrence{Tenant: rec.Tenant, Kind: CredentialRotation, Severity: Medium, Key: id, Agent: id, User: rec.User.ID, Evidence: ev, Explanation: expl})
	}
	return out
}

// session follows the scope one user delegates to one agent within a session.
func (e *Engine) session(ts *tenantState, rec *lineage.Record, ev Evidence, out []Occurrence) []Occurrence {
	cfg := ts.cfg
	k := rec.User.ID + "\x00" + rec.Agent.ID
	scopes := rec.Delegation.Scope
	s := ts.sessions[k]
	// A session ends once the tenant's newest record is more than the gap past its last one,
	// the same rule EndBatch forgets sessions by, so where batches end does not matter.
	if s != nil && ts.watermark.Sub(s.Last) > time.Duration(cfg.SessionGap) {
		s = nil // a new session; the old one is replaced
	}
	if s == nil {
		if _, ok := ts.sessions[k]; !ok && !e.room(ts) {
			return out
		}
		s = &sessionState{Start: ev, Last: ev.Time, Scopes: setOf(scopes)}
		ts.sessions[k] = s
		e.touch(rec.Tenant, spaceSession, k)
		return out
	}
	if ev.Time.After(s.Last) {
		s.Last = ev.Time
		e.touch(rec.Tenant, spaceSession, k)
	}
	var added []string
	for _, sc := range scopes {
		if _, found := slices.BinarySearch(s.Scopes, sc); !found && !slices.Contains(added, sc) {
			added = append(added, sc)
		}
	}
	if len(added) == 0 {
		return out
	}
	before := slices.Clone(s.Scopes)
	if len(s.Scopes)+len(added) <= maxScopesTracked {
		s.Scopes = setOf(append(s.Scopes, added...))
	}
	e.touch(rec.Tenant, spaceSession, k)
	sev := Info
	if slices.ContainsFunc(added, func(sc string) bool { return matchAny(cfg.SensitiveScopes, sc) }) {
		sev = Medium
	}
	key := rec.User.ID + "\x00" + rec.Agent.ID + "\x00" + s.Start.Time.UTC().Format(time.RFC3339Nano)
	expl := fmt.Sprintf("During user %s's session from %s, agent %s's delegated scope grew from %s to %s.",
		rec.User.ID, s.Start.Time.UTC().Format(time.RFC3339), rec.Agent.ID, list(before), list(s.Scopes))
	if !s.Grown {
		s.Grown = true
		start := s.Start
		start.Note = "session starts with " + list(before)
		out = append(out, Occurrence{Tenant: rec.Tenant, Kind: ScopeEscalation, Severity: sev, Key: key, Agent: rec.Agent.ID, User: rec.User.ID, Evidence: start, Explanation: expl})
	}
	ev.Note = "scope grows by " + list(added)
	return append(out, Occurrence{Tenant: rec.Tenant, Kind: ScopeEscalation, Severity: sev, Key: key, Agent: rec.Agent.ID, User: rec.User.ID, Evidence: ev, Explanation: expl})
}

// oversight tracks escalations waiting for their review and high-risk AI systems' reviews.
func (e *Engine) oversight(ts *tenantState, rec *lineage.Record, ev Evidence) {
	cfg := ts.cfg
	tenant := rec.Tenant
	if !cfg.enabled(MissingOversight) {
		return
	}
	if rec.Decision.Effect == lineage.EffectEscalate {
		if _, ok := ts.reviewed[rec.ID]; ok {
			delete(ts.reviewed, rec.ID)
			ts.size--
			e.touch(tenant, spaceReviewed, rec.ID)
		} else if _, ok := ts.pending[rec.ID]; !ok && e.room(ts) {
			ts.pending[rec.ID] = &escalation{Evidence: ev, Agent: rec.Agent.ID, User: rec.User.ID}
			e.touch(tenant, spacePending, rec.ID)
		}
	}
	if rec.HumanOversight != nil && rec.ParentID != "" {
		if p, ok := ts.pending[rec.ParentID]; ok && ts.watermark.After(p.Evidence.Time.Add(time.Duration(cfg.ReviewWindow))) {
			// Late: the window closed (EndBatch reports the escalation by the same rule,
			// whether or not it has run since), so the review does not settle it.
		} else if ok {
			delete(ts.pending, rec.ParentID)
			ts.size--
			e.touch(tenant, spacePending, rec.ParentID)
		} else if _, ok := ts.reviewed[rec.ParentID]; !ok && e.room(ts) {
			ts.reviewed[rec.ParentID] = ev.Time
			e.touch(tenant, spaceReviewed, rec.ParentID)
		}
	}
	sys := rec.AISystem
	if sys == nil || !slices.ContainsFunc(cfg.HighRiskClasses, func(c string) bool { return strings.EqualFold(c, sys.RiskClass) }) {
		return
	}
	w := time.Duration(cfg.OversightWindow)
	start := ev.Time.Truncate(w)
	if !ts.watermark.Before(start.Add(w)) {
		// The window has closed (the tenant's newest record is past its end; EndBatch closes
		// it by the same rule, whether or not it has run since): a late record does not count.
		return
	}
	k := sys.ID + "\x00" + start.UTC().Format(time.RFC3339Nano)
	win := ts.windows[k]
	if win == nil {
		if !e.room(ts) {
			return
		}
		win = &oversightWin{System: sys.ID, Start: start}
		ts.windows[k] = win
	}
	if rec.HumanOversight != nil {
		win.Reviews++
	} else {
		win.Decisions++
		if len(win.Evidence) < MaxEvidence {
			win.Evidence = append(win.Evidence, ev)
		}
	}
	e.touch(tenant, spaceWindow, k)
}

// EndBatch closes, for every tenant, the windows its newest record time has passed, appending
// the occurrences that shows to out, and forgets state no later record can need.
func (e *Engine) EndBatch(out []Occurrence) []Occurrence {
	for _, name := range sortedKeys(e.tenants) {
		ts := e.tenants[name]
		cfg := ts.cfg
		wm := ts.watermark
		review := time.Duration(cfg.ReviewWindow)
		for _, id := range sortedKeys(ts.pending) {
			p := ts.pending[id]
			if !wm.After(p.Evidence.Time.Add(review)) {
				continue
			}
			ev := p.Evidence
			ev.Note = "escalated; no human review within " + review.String()
			out = append(out, Occurrence{Tenant: name, Kind: MissingOversight, Severity: High, Key: "escalation:" + id,
				Agent: p.Agent, User: p.User, Evidence: ev,
				Explanation: fmt.Sprintf("Decision %s was escalated to a human at %s, but no human-oversight record settled it within %s (EU AI Act Art. 14).", id, p.Evidence.Time.UTC().Format(time.RFC3339), review)})
			delete(ts.pending, id)
			ts.size--
			e.touch(name, spacePending, id)
		}
		for id, at := range ts.reviewed {
			if wm.After(at.Add(2 * review)) {
				delete(ts.reviewed, id)
				ts.size--
				e.touch(name, spaceReviewed, id)
			}
		}
		for k, s := range ts.sessions {
			if wm.Sub(s.Last) > time.Duration(cfg.SessionGap) {
				delete(ts.sessions, k)
				ts.size--
				e.touch(name, spaceSession, k)
			}
		}
		w := time.Duration(cfg.OversightWindow)
		for _, k := range sortedKeys(ts.windows) {
			win := ts.windows[k]
			if wm.Before(win.Start.Add(w)) {
				continue
			}
			if win.Reviews == 0 && win.Decisions > 0 {
				expl := fmt.Sprintf("High-risk AI system %s made %d decisions between %s and %s and no human reviewed any of them (EU AI Act Art. 14).",
					win.System, win.Decisions, win.Start.UTC().Format(time.RFC3339), win.Start.Add(w).UTC().Format(time.RFC3339))
				for _, ev := range win.Evidence {
					ev.Note = "decision without human oversight in its window"
					out = append(out, Occurrence{Tenant: name, Kind: MissingOversight, Severity: High,
						Key: "window:" + k, Evidence: ev, Explanation: expl})
				}
			}
			delete(ts.windows, k)
			ts.size--
			e.touch(name, spaceWindow, k)
		}
	}
	return out
}

// TakeDirty returns the state changed since the last call (deleted items with a nil Value), in
// a stable order, and forgets it.
func (e *Engine) TakeDirty() ([]StateItem, error) {
	keys := make([]stateKey, 0, len(e.dirty))
	for k := range e.dirty {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b stateKey) int {
		return strings.Compare(a.tenant+"\x00"+a.space+"\x00"+a.key, b.tenant+"\x00"+b.space+"\x00"+b.key)
	})
	items := make([]StateItem, 0, len(keys))
	for _, k := range keys {
		v, err := e.value(k)
		if err != nil {
			return nil, fmt.Errorf("findings: state %s/%s: %w", k.tenant, k.space, err)
		}
		items = append(items, StateItem{Tenant: k.tenant, Space: k.space, Key: k.key, Value: v})
	}
	clear(e.dirty)
	return items, nil
}

func (e *Engine) value(k stateKey) ([]byte, error) {
	ts := e.tenants[k.tenant]
	if ts == nil {
		return nil, nil
	}
	var v any
	switch k.space {
	case spaceWatermark:
		v = ts.watermark
	case spaceAgent:
		if a := ts.agents[k.key]; a != nil {
			v = a
		}
	case spaceSession:
		if s := ts.sessions[k.key]; s != nil {
			v = s
		}
	case spacePending:
		if p := ts.pending[k.key]; p != nil {
			v = p
		}
	case spaceReviewed:
		if t, ok := ts.reviewed[k.key]; ok {
			v = t
		}
	case spaceWindow:
		if w := ts.windows[k.key]; w != nil {
			v = w
		}
	default:
		return nil, fmt.Errorf("unknown space %q", k.space)
	}
	if v == nil {
		return nil, nil
	}
	return json.Marshal(v)
}

// Load restores state a store kept (items with a Value; deleted items are skipped). Call it on
// a new Engine before the first Observe.
func (e *Engine) Load(items []StateItem) error {
	for _, it := range items {
		if it.Value == nil {
			continue
		}
		ts := e.tenant(it.Tenant)
		var err error
		switch it.Space {
		case spaceWatermark:
			err = json.Unmarshal(it.Value, &ts.watermark)
		case spaceAgent:
			a := new(agentState)
			err, ts.agents[it.Key] = json.Unmarshal(it.Value, a), a
		case spaceSession:
			s := new(sessionState)
			err, ts.sessions[it.Key] = json.Unmarshal(it.Value, s), s
		case spacePending:
			p := new(escalation)
			err, ts.pending[it.Key] = json.Unmarshal(it.Value, p), p
		case spaceReviewed:
			var t time.Time
			err = json.Unmarshal(it.Value, &t)
			ts.reviewed[it.Key] = t
		case spaceWindow:
			w := new(oversightWin)
			err, ts.windows[it.Key] = json.Unmarshal(it.Value, w), w
		default:
			err = fmt.Errorf("unknown space %q", it.Space)
		}
		if err != nil {
			return fmt.Errorf("findings: load state %s/%s/%s: %w", it.Tenant, it.Space, it.Key, err)
		}
		if it.Space != spaceWatermark {
			ts.size++
		}
	}
	return nil
}

func setOf(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > maxScopesTracked {
		out = out[:maxScopesTracked]
	}
	return out
}

func list(s []string) string {
	if len(s) == 0 {
		return "nothing"
	}
	return "[" + strings.Join(s, " ") + "]"
}

func quote(s string) string {
	if s == "" {
		return `""`
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
