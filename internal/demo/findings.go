package demo

import (
	_ "embed" // findings.json
	"slices"
)

// findingsJSON is the findings configuration of the demo tenants; see FindingsConfig.
//
//go:embed findings.json
var findingsJSON []byte

// FindingsConfig returns the findings configuration of the demo tenants (a copy of the embedded
// findings.json), in the format query/findings.ParseConfig reads. With it, the demo's clean
// traffic raises no finding but the shared agent identity the demo always injects
// (SharedAgentRate), and Options.FailureModes raises every kind. What each value is for:
//
// The "default" section applies to every tenant, also the numbered repeats of the catalogue
// ("acme-bank-2") that the "tenants" section does not name; it sizes the windows to the demo's
// time scale (10,000 records, about 1,850 sessions, are about an hour of record time at the
// default Step):
//
//   - max_delegation_lifetime "8h", delegation_leeway "1m": the demo's tokens live 15 minutes;
//     the long-lived-token failure's live LongLivedLifetime, the expired-token failure's
//     expired at least 5 minutes before use.
//   - session_gap "10m": a user's work with one agent is one session while records come less
//     than 10 minutes apart; it spans the longest demo session (an escalation reviewed up to
//     five minutes later), so the scope-growth failure's step-up is seen within its session.
//   - review_window "10m": a human reviews an escalated decision within five minutes in the
//     demo, so an escalation still unreviewed after 10 minutes is the unreviewed-escalation
//     failure, reported 10 minutes of record time after it.
//   - oversight_window "20m" (OversightWindow) and high_risk_classes ["high"]: a high-risk AI
//     system (the credit and insurance pricing tenants) must see a human review in every
//     20-minute window. The default tenants' high-risk systems see one every two to four
//     minutes, so only the oversight-gap failure empties a window; the first gap is the
//     stream's first window, reported once record time passes its end (20 minutes, about 3,200
//     records). With more tenants than the default three, the traffic of each is thinner, and
//     a high-risk tenant far down the list (soylent-mutual, the eighth) may go a whole window
//     without an escalation, and so without a review, even without failure modes: a true
//     finding about that traffic, not a misconfiguration.
//   - rotation_period "30d": longer than any demo run at the default Step, so the crews' own
//     identities never trip it; the legacy agent identity, first used LegacyAge (40 days)
//     before Start, does from its first failure session on.
//   - service_account_patterns and require_identity_binding keep their defaults ("svc-*" among
//     the patterns; an identity object must name the user's issuer).
//
// The "tenants" section names the eight companies of the catalogue:
//
//   - trusted_issuers: the company's own OIDC provider ("https://login.<company>.example/"),
//     the issuer of its users and tokens. The http-issuer failure's legacy SSO is not https.
//   - action_scopes: the scope each action of the company's agents needs, by action type and
//     target pattern; the first matching rule decides. Each rule names a scope the catalogue
//     delegates to the company's crews (catalog.go, domain.scope), so clean traffic is in
//     scope, except two rules per company that clean traffic never matches: the write of the
//     out-of-scope failure (domain.oosStep, a scope never delegated) and the action of the
//     scope-growth failure (domain.growStep, the scope its step-up adds). Actions no delegated
//     scope covers (data exports, the wealth recommendation write) have no rule and are not
//     checked.
func FindingsConfig() []byte { return slices.Clone(findingsJSON) }
