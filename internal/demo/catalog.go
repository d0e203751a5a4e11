package demo

import (
	"math/rand/v2"
	"strconv"

	"github.com/lineage-audit/lineage"
)

// This file holds the static shape of the demo world: which companies exist, what their AI
// systems do, which actions their agents take and how each enforcement point tends to decide.
// session.go turns it into traffic; failure.go bends some of it into the failure modes an audit
// looks for (Options.FailureModes), and findings.json maps the actions below to the scopes they
// need.

// Where an action's decision is made. The AI gateway sees model and tool calls; the OPA sidecar
// guards data stores and outbound mail, as it would in a typical deployment.
var (
	srcGateway = lineage.Source{ID: "gateway-eu-1", Type: "ai-gateway"}
	srcOPA     = lineage.Source{ID: "opa-sidecar", Type: "opa"}
)

// Which of a session's business entities an action's target names.
const (
	entNone    = iota // the target is fixed, e.g. "credit-bureau/report"
	entCase           // the case the session works on, e.g. "loan-application/LA-2026-004217"
	entSubject        // the person the case is about, e.g. "customers/CUST-104233"
)

// Which policy_context a record carries (all of them small objects, as §3 asks).
const (
	ctxNone   = iota
	ctxRisk   // {"jurisdiction":"EU","risk_score":0.42}
	ctxAmount // {"amount_eur":125000,"jurisdiction":"EU","risk_score":0.42}
	ctxExport // {"data_class":"pii","destination_region":"us-east-1","jurisdiction":"EU"}
)

// step is one kind of action an executor agent may take in a session of a domain, with the
// odds that a session includes it and that the enforcement point denies or modifies it.
type step struct {
	action string
	ent    int    // entNone, entCase or entSubject
	pre    string // target = pre + entity + post
	post   string
	src    lineage.Source
	policy lineage.Policy
	ctx    int // ctxNone, ctxRisk, ctxAmount or ctxExport

	p      float64 // probability that a session includes the step
	deny   float64 // probability of "deny", given the step happens
	modify float64 // probability of "modify", given the step happens and is not denied

	allowReason, denyReason, modifyReason string
	// escalate marks the step a session's human review hangs on (at most one per domain, and
	// the last step, so that the review's outcome is the session's last word).
	escalate       bool
	escalateReason string

	safeguards       []string // on every decision of the step
	modifySafeguards []string // added when the decision is "modify"
}

// domain is a line of business: the AI systems of all tenants in it share their agents'
// behaviour, policies and vocabulary.
type domain struct {
	caseKind      string // "loan-application"
	casePrefix    string // "LA-2026-"
	subjectKind   string // "customers"
	subjectPrefix string // "CUST-"
	dataClass     string // class of the personal data an export carries, for policy_context
	// The case amount in EUR shown in policy_context is drawn from [amountMin, amountMax]
	// (amountMax 0: the domain has no amounts). When escalateAbove is set, an escalated
	// session's amount is above it and every other session's is not, so the escalation
	// reason is borne out by the record's own context.
	amountMin, amountMax, escalateAbove int

	crews []string // crew names; agents are <crew>-planner, <crew>-executor, <crew>-critic
	scope []string // OAuth scopes the user delegates to a crew

	planPolicy   lineage.Policy // decides the planner's and the critic's actions
	reviewPolicy lineage.Policy // decides the human reviewer's verdict
	steps        []step

	// With Options.FailureModes, an out-of-scope session adds oosStep, an action needing a
	// scope the domain never delegates; a scope-growth session adds growStep under a second,
	// stepped-up token whose scope is the domain's plus growScope (findings.json maps both).
	oosStep   step
	growStep  step
	growScope string
}

// tenantSpec is one company in the catalogue.
type tenantSpec struct {
	slug       string // tenant id, matches ^[a-z0-9][a-z0-9_-]{0,62}$
	display    string
	dom        *domain
	systemSlug string
	systemName string
	riskClass  string // EU AI Act risk class of the AI system
	useCase    string
}

var lending = &domain{
	caseKind: "loan-application", dataClass: "personal", casePrefix: "LA-2026-",
	subjectKind: "customers", subjectPrefix: "CUST-",
	amountMin: 5_000, amountMax: 400_000, escalateAbove: 250_000,
	crews:        []string{"underwriting", "collections", "servicing"},
	scope:        []string{"loan-applications:read", "loan-applications:decide", "customers:read", "credit-reports:read", "email:send"},
	planPolicy:   lineage.Policy{ID: "lending.agent-scope", Version: "v5"},
	reviewPolicy: lineage.Policy{ID: "lending.human-review", Version: "v2"},
	steps: []step{
		{action: "db.read", ent: entSubject, pre: "customers/", src: srcOPA,
			policy: lineage.Policy{ID: "lending.data-minimisation", Version: "v4"}, ctx: ctxRisk,
			p: 0.9, deny: 0.01, modify: 0.08,
			allowReason:  "read within the purpose of the delegated application",
			denyReason:   "customer is not a party to the delegated loan application",
			modifyReason: "fields outside the purpose masked: national_id, date_of_birth",
			safeguards:   []string{"purpose-limitation"}, modifySafeguards: []string{"field-masking"}},
		{action: "tool.call", ent: entNone, pre: "credit-bureau/report", src: srcGateway,
			policy: lineage.Policy{ID: "lending.tool-allowlist", Version: "v2"}, ctx: ctxRisk,
			p: 0.8, deny: 0.03,
			allowReason: "credit bureau pull with recorded applicant consent",
			denyReason:  "no applicant consent on file for a credit bureau pull",
			safeguards:  []string{"rate-limit", "consent-check"}},
		{action: "model.invoke", ent: entNone, pre: "models/credit-risk-v7", src: srcGateway,
			policy: lineage.Policy{ID: "lending.model-governance", Version: "v1"}, ctx: ctxRisk,
			p: 0.7, modify: 0.04,
			allowReason:  "approved scoring model, version pinned",
			modifyReason: "protected attributes removed from model input",
			safeguards:   []string{"bias-monitoring"}, modifySafeguards: []string{"feature-suppression"}},
		{action: "data.export", ent: entSubject, pre: "s3://analytics-us-east-1/exports/", post: ".csv", src: srcOPA,
			policy: lineage.Policy{ID: "lending.pii-guard", Version: "v3"}, ctx: ctxExport,
			p: 0.05, deny: 0.9, modify: 1,
			denyReason:   "export of personal data outside the EU is not permitted (GDPR Art. 44)",
			modifyReason: "export pseudonymised before release",
			safeguards:   []string{"pii-redaction", "dlp-scan"}},
		{action: "email.send", ent: entSubject, pre: "customers/", post: "/email", src: srcOPA,
			policy: lineage.Policy{ID: "lending.pii-guard", Version: "v3"},
			p:      0.5, deny: 0.02, modify: 0.25,
			allowReason:  "outbound notice to the applicant",
			denyReason:   "message contains another customer's personal data",
			modifyReason: "account number redacted from outbound email",
			safeguards:   []string{"pii-redaction", "output-moderation"}},
		{action: "db.write", ent: entCase, post: "/decision", src: srcOPA,
			policy: lineage.Policy{ID: "lending.human-review", Version: "v2"}, ctx: ctxAmount,
			p: 0.6, deny: 0.01,
			allowReason:    "decision within automated approval limits",
			denyReason:     "decision does not cite the model output it relies on",
			escalate:       true,
			escalateReason: "credit decision above EUR 250,000 requires human review (EU AI Act Art. 14)",
			safeguards:     []string{"four-eyes"}},
	},
	oosStep: step{action: "db.write", ent: entSubject, pre: "customers/", post: "/contact", src: srcOPA,
		policy:      lineage.Policy{ID: "lending.data-minimisation", Version: "v4"},
		allowReason: "contact details updated from the application form",
		safeguards:  []string{"purpose-limitation"}},
	growStep: step{action: "db.write", ent: entCase, pre: "disbursements/", post: "/payout", src: srcOPA,
		policy: lineage.Policy{ID: "lending.agent-scope", Version: "v5"}, ctx: ctxAmount,
		allowReason: "disbursement scheduled under the stepped-up delegation",
		safeguards:  []string{"four-eyes"}},
	growScope: "disbursements:write",
}

var health = &domain{
	caseKind: "patient-case", dataClass: "health", casePrefix: "PC-",
	subjectKind: "patients", subjectPrefix: "PT-",
	crews:        []string{"intake", "scheduling", "billing"},
	scope:        []string{"patients:read", "appointments:write", "referrals:write", "email:send"},
	planPolicy:   lineage.Policy{ID: "health.agent-scope", Version: "v3"},
	reviewPolicy: lineage.Policy{ID: "health.clinician-review", Version: "v1"},
	steps: []step{
		{action: "db.read", ent: entSubject, pre: "patients/", post: "/record", src: srcOPA,
			policy: lineage.Policy{ID: "health.phi-guard", Version: "v6"}, ctx: ctxRisk,
			p: 0.9, deny: 0.02, modify: 0.15,
			allowReason:  "treatment relationship verified",
			denyReason:   "no treatment relationship between the delegating user and the patient",
			modifyReason: "clinical notes withheld; demographics only",
			safeguards:   []string{"purpose-limitation"}, modifySafeguards: []string{"field-masking"}},
		{action: "tool.call", ent: entNone, pre: "scheduling/slots", src: srcGateway,
			policy: lineage.Policy{ID: "health.tool-allowlist", Version: "v2"},
			p:      0.8, deny: 0.01,
			allowReason: "scheduling tool on the allow-list",
			denyReason:  "tool call outside clinic hours quota",
			safeguards:  []string{"rate-limit"}},
		{action: "data.export", ent: entSubject, pre: "https://partner-lab.example/upload/", src: srcOPA,
			policy: lineage.Policy{ID: "health.phi-guard", Version: "v6"}, ctx: ctxExport,
			p: 0.04, deny: 0.85, modify: 1,
			denyReason:   "health data export to a recipient without a data processing agreement",
			modifyReason: "export limited to the referral summary",
			safeguards:   []string{"pii-redaction", "dlp-scan"}},
		{action: "email.send", ent: entSubject, pre: "patients/", post: "/email", src: srcOPA,
			policy: lineage.Policy{ID: "health.phi-guard", Version: "v6"},
			p:      0.6, deny: 0.01, modify: 0.3,
			allowReason:  "appointment confirmation to the patient",
			denyReason:   "message addressed to a non-verified contact",
			modifyReason: "diagnosis codes removed from outbound email",
			safeguards:   []string{"pii-redaction", "output-moderation"}},
		{action: "db.write", ent: entCase, post: "/referral", src: srcOPA,
			policy:         lineage.Policy{ID: "health.clinician-review", Version: "v1"},
			p:              0.4,
			allowReason:    "routine referral",
			escalate:       true,
			escalateReason: "urgent referral requires clinician sign-off",
			safeguards:     []string{"four-eyes"}},
	},
	oosStep: step{action: "db.write", ent: entSubject, pre: "patients/", post: "/record", src: srcOPA,
		policy:      lineage.Policy{ID: "health.phi-guard", Version: "v6"},
		allowReason: "allergy list updated from the intake conversation",
		safeguards:  []string{"purpose-limitation"}},
	growStep: step{action: "db.write", ent: entSubject, pre: "prescriptions/", post: "/renewal", src: srcOPA,
		policy:      lineage.Policy{ID: "health.agent-scope", Version: "v3"},
		allowReason: "repeat prescription queued under the stepped-up delegation",
		safeguards:  []string{"four-eyes"}},
	growScope: "prescriptions:write",
}

var insurance = &domain{
	caseKind: "policy-quote", dataClass: "health", casePrefix: "Q-",
	subjectKind: "applicants", subjectPrefix: "APP-",
	amountMin: 50_000, amountMax: 2_000_000, escalateAbove: 1_000_000,
	crews:        []string{"pricing", "claims"},
	scope:        []string{"quotes:read", "quotes:price", "applicants:read", "medical-history:read", "email:send"},
	planPolicy:   lineage.Policy{ID: "insurance.agent-scope", Version: "v2"},
	reviewPolicy: lineage.Policy{ID: "insurance.underwriter-review", Version: "v3"},
	steps: []step{
		{action: "db.read", ent: entSubject, pre: "applicants/", src: srcOPA,
			policy: lineage.Policy{ID: "insurance.data-minimisation", Version: "v2"}, ctx: ctxRisk,
			p: 0.9, deny: 0.01, modify: 0.1,
			allowReason:  "read within the purpose of the quote",
			denyReason:   "applicant withdrew consent",
			modifyReason: "genetic test results removed (prohibited rating factor)",
			safeguards:   []string{"purpose-limitation"}, modifySafeguards: []string{"field-masking"}},
		{action: "tool.call", ent: entNone, pre: "actuarial/mortality-tables", src: srcGateway,
			policy:      lineage.Policy{ID: "insurance.tool-allowlist", Version: "v1"},
			p:           0.7,
			allowReason: "actuarial tables on the allow-list",
			safeguards:  []string{"rate-limit"}},
		{action: "model.invoke", ent: entNone, pre: "models/life-pricing-v4", src: srcGateway,
			policy: lineage.Policy{ID: "insurance.model-governance", Version: "v2"}, ctx: ctxRisk,
			p: 0.8, modify: 0.05,
			allowReason:  "approved pricing model, version pinned",
			modifyReason: "sex removed from pricing features (Test-Achats ruling)",
			safeguards:   []string{"bias-monitoring"}, modifySafeguards: []string{"feature-suppression"}},
		{action: "data.export", ent: entSubject, pre: "s3://reinsurer-share/", post: ".json", src: srcOPA,
			policy: lineage.Policy{ID: "insurance.pii-guard", Version: "v2"}, ctx: ctxExport,
			p: 0.05, deny: 0.8, modify: 1,
			denyReason:   "sharing health data with the reinsurer requires explicit consent",
			modifyReason: "export aggregated before release",
			safeguards:   []string{"pii-redaction", "dlp-scan"}},
		{action: "db.write", ent: entCase, post: "/premium", src: srcOPA,
			policy: lineage.Policy{ID: "insurance.underwriter-review", Version: "v3"}, ctx: ctxAmount,
			p: 0.6, deny: 0.01,
			allowReason:    "premium within automated pricing bands",
			denyReason:     "premium outside the filed rate table",
			escalate:       true,
			escalateReason: "sum insured above EUR 1,000,000 requires underwriter review",
			safeguards:     []string{"four-eyes"}},
	},
	oosStep: step{action: "db.write", ent: entSubject, pre: "applicants/", post: "/occupation", src: srcOPA,
		policy:      lineage.Policy{ID: "insurance.data-minimisation", Version: "v2"},
		allowReason: "declared occupation corrected from the medical questionnaire",
		safeguards:  []string{"purpose-limitation"}},
	growStep: step{action: "db.write", ent: entCase, pre: "policies/", post: "/bind", src: srcOPA,
		policy: lineage.Policy{ID: "insurance.agent-scope", Version: "v2"}, ctx: ctxAmount,
		allowReason: "policy bound at the quoted premium under the stepped-up delegation",
		safeguards:  []string{"four-eyes"}},
	growScope: "policies:write",
}

var wealth = &domain{
	caseKind: "portfolio-review", dataClass: "personal", casePrefix: "PR-",
	subjectKind: "clients", subjectPrefix: "CL-",
	amountMin: 10_000, amountMax: 5_000_000,
	crews:        []string{"research", "advisory"},
	scope:        []string{"portfolios:read", "market-data:read", "clients:read", "email:send"},
	planPolicy:   lineage.Policy{ID: "wealth.agent-scope", Version: "v1"},
	reviewPolicy: lineage.Policy{ID: "wealth.suitability-review", Version: "v2"},
	steps: []step{
		{action: "tool.call", ent: entNone, pre: "market-data/quotes", src: srcGateway,
			policy: lineage.Policy{ID: "wealth.tool-allowlist", Version: "v3"},
			p:      0.9, deny: 0.01,
			allowReason: "licensed market data feed",
			denyReason:  "market data licence quota exhausted",
			safeguards:  []string{"rate-limit"}},
		{action: "db.read", ent: entSubject, pre: "clients/", src: srcOPA,
			policy: lineage.Policy{ID: "wealth.data-minimisation", Version: "v1"}, ctx: ctxRisk,
			p: 0.8, modify: 0.06,
			allowReason:  "client file read for the delegated review",
			modifyReason: "tax identifiers masked",
			safeguards:   []string{"purpose-limitation"}, modifySafeguards: []string{"field-masking"}},
		{action: "email.send", ent: entSubject, pre: "clients/", post: "/email", src: srcOPA,
			policy: lineage.Policy{ID: "wealth.comms-guard", Version: "v2"},
			p:      0.5, deny: 0.04, modify: 0.2,
			allowReason:  "research summary to the client",
			denyReason:   "unapproved performance forecast in client communication (MiFID II)",
			modifyReason: "risk disclaimer appended",
			safeguards:   []string{"output-moderation"}},
		{action: "db.write", ent: entCase, post: "/recommendation", src: srcOPA,
			policy: lineage.Policy{ID: "wealth.suitability-review", Version: "v2"}, ctx: ctxAmount,
			p:              0.5,
			allowReason:    "recommendation within the client's risk profile",
			escalate:       true,
			escalateReason: "recommendation outside the client's risk profile requires adviser sign-off",
			safeguards:     []string{"four-eyes"}},
	},
	oosStep: step{action: "db.write", ent: entSubject, pre: "clients/", post: "/risk-profile", src: srcOPA,
		policy:      lineage.Policy{ID: "wealth.data-minimisation", Version: "v1"},
		allowReason: "client risk profile updated from the review",
		safeguards:  []string{"purpose-limitation"}},
	growStep: step{action: "trade.execute", ent: entSubject, pre: "orders/", post: "/rebalance", src: srcGateway,
		policy:      lineage.Policy{ID: "wealth.agent-scope", Version: "v1"},
		allowReason: "rebalancing order placed under the stepped-up delegation",
		safeguards:  []string{"four-eyes"}},
	growScope: "orders:write",
}

// catalogue lists the companies a demo is drawn from, in order; Options.Tenants takes a prefix
// (and repeats the list with a numeric suffix beyond its end). The risk classes follow the EU AI
// Act: credit scoring is Annex III 5(b) and life and health insurance pricing is Annex III 5(c),
// so both are high-risk; patient scheduling and research summaries are not in Annex III.
var catalogue = []tenantSpec{
	{"acme-bank", "Acme Bank", lending, "credit-copilot", "Credit Copilot", "high",
		"creditworthiness evaluation of natural persons (Annex III 5(b))"},
	{"globex-lending", "Globex Lending", lending, "underwriting-assistant", "Underwriting Assistant", "high",
		"consumer loan underwriting (Annex III 5(b))"},
	{"initech-health", "Initech Health", health, "patient-intake", "Patient Intake Assistant", "limited",
		"patient intake and appointment scheduling"},
	{"umbrella-insurance", "Umbrella Insurance", insurance, "life-pricing", "Life Pricing Agent", "high",
		"risk assessment and pricing in life and health insurance (Annex III 5(c))"},
	{"hooli-credit", "Hooli Credit", lending, "credit-limit-agent", "Credit Limit Agent", "high",
		"credit limit decisions for card holders (Annex III 5(b))"},
	{"stark-wealth", "Stark Wealth", wealth, "advisor-copilot", "Advisor Copilot", "minimal",
		"investment research summaries for human advisers"},
	{"wayne-care", "Wayne Care", health, "care-navigator", "Care Navigator", "limited",
		"referral routing and patient messaging"},
	{"soylent-mutual", "Soylent Mutual", insurance, "claims-pricing", "Claims and Pricing Agent", "high",
		"health insurance pricing (Annex III 5(c))"},
}

// models are the AI models agents run on. Crews mix providers, as real deployments do.
var models = []lineage.Model{
	{Provider: "anthropic", Name: "claude-sonnet-4-5", Version: "20250929"},
	{Provider: "openai", Name: "gpt-4.1", Version: "2025-04-14"},
	{Provider: "openai", Name: "gpt-4.1-mini", Version: "2025-04-14"},
	{Provider: "mistral", Name: "mistral-large", Version: "2411"},
	{Provider: "google", Name: "gemini-2.5-pro", Version: "001"},
	{Provider: "meta", Name: "llama-3.3-70b-instruct", Version: "2024-12-06"},
}

var firstNames = []string{
	"alice", "bob", "carla", "david", "elena", "farid", "grace", "hiro", "ines", "jonas",
	"kemal", "lucia", "marta", "nikhil", "olga", "pierre", "quinn", "rosa", "samir", "tanja",
	"ugo", "vera", "wei", "xenia", "yusuf", "zoe", "anders", "beatriz", "chidi", "dagny",
}

var lastNames = []string{
	"nguyen", "schmidt", "rossi", "garcia", "kowalski", "dubois", "jansen", "novak", "silva",
	"andersen", "okafor", "haddad", "tanaka", "murphy", "ivanova", "moreau", "fischer", "costa",
	"lindqvist", "papadopoulos", "kaya", "oconnor", "horvat", "berg", "mendes",
}

// tenant is a company of the catalogue with its directory filled in: users, crews and the AI
// system. It is built from its index alone, not from Options.Seed, so every demo run shows the
// same companies, employees and agents, and only the traffic differs between seeds.
type tenant struct {
	name      string
	dns       string // DNS name of the company, e.g. "acme-bank.example"
	dom       *domain
	issuer    string // OIDC issuer of users and delegation tokens
	users     []string
	reviewers []string // users who act as human overseers (the last few of users)
	crews     []crew
	system    lineage.AISystem
}

// crew is one planner/executor/critic team.
type crew struct {
	name                      string
	planner, executor, critic lineage.Agent
}

// newTenant builds the i-th tenant of the catalogue.
func newTenant(i int) *tenant {
	spec := catalogue[i%len(catalogue)]
	name, display := spec.slug, spec.display
	if k := i / len(catalogue); k > 0 {
		name += "-" + strconv.Itoa(k+1)
		display += " " + strconv.Itoa(k+1)
	}
	rng := rand.New(rand.NewPCG(uint64(i), 0x7465_6e61_6e74)) // "tenant"
	dns := name + ".example"
	t := &tenant{
		name:   name,
		dns:    dns,
		dom:    spec.dom,
		issuer: "https://login." + dns + "/",
		system: lineage.AISystem{
			ID:        name + "/" + spec.systemSlug,
			Name:      display + " " + spec.systemName,
			RiskClass: spec.riskClass,
			UseCase:   spec.useCase,
		},
	}

	n := 18 + rng.IntN(5) // "about 20 users"
	seen := make(map[string]bool, n)
	for len(t.users) < n {
		u := firstNames[rng.IntN(len(firstNames))] + "." + lastNames[rng.IntN(len(lastNames))] + "@" + dns
		if !seen[u] {
			seen[u] = true
			t.users = append(t.users, u)
		}
	}
	t.reviewers = t.users[n-3:]

	for _, c := range spec.dom.crews {
		agent := func(role string) lineage.Agent {
			m := models[rng.IntN(len(models))]
			return lineage.Agent{ID: "spiffe://" + dns + "/ns/agents/sa/" + c + "-" + role, Model: &m}
		}
		t.crews = append(t.crews, crew{name: c, planner: agent("planner"), executor: agent("executor"), critic: agent("critic")})
	}
	return t
}
