package findings

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written in JSON as a Go duration string ("90m", "8h") or whole
// days ("90d").
type Duration time.Duration

// UnmarshalJSON reads "8h", "90d" or "0".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string such as \"8h\" or \"90d\": %w", err)
	}
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration in Go's notation.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func parseDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseUint(n, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("duration %q: want whole days such as \"90d\"", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: %w", s, err)
	}
	if v < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	return v, nil
}

// ScopeRule says which scopes an action needs: an action whose type equals Action (and whose
// target matches Target, a pattern, when set) is in scope only if its delegation grants at least
// one of Scopes. The first matching rule of a tenant decides; actions no rule matches are not
// checked.
type ScopeRule struct {
	Action string   `json:"action"`
	Target string   `json:"target,omitempty"`
	Scopes []string `json:"scopes"`
}

// Config holds one tenant's thresholds and patterns. In a File, a tenant's zero fields (absent
// from the JSON) take the default's value; an explicitly empty list ([]) clears it.
type Config struct {
	// Disabled kinds are not reported for the tenant.
	Disabled []Kind `json:"disabled,omitempty"`
	// ServiceAccounts are patterns ("*" matches any run of characters) of user ids that name a
	// service account, not a natural person (static_credential).
	ServiceAccounts []string `json:"service_account_patterns,omitempty"`
	// TrustedIssuers are the identity providers the tenant trusts for users (inferred_identity);
	// empty trusts any https issuer.
	TrustedIssuers []string `json:"trusted_issuers,omitempty"`
	// RequireIdentityBinding reports users whose record has no identity object naming the
	// user's issuer ("iss" or "issuer" member) (inferred_identity).
	RequireIdentityBinding *bool `json:"require_identity_binding,omitempty"`
	// MaxDelegationLifetime is the longest a delegation token may live (delegation_misuse).
	MaxDelegationLifetime Duration `json:"max_delegation_lifetime,omitempty"`
	// DelegationLeeway is the clock skew allowed around a token's lifetime.
	DelegationLeeway Duration `json:"delegation_leeway,omitempty"`
	// ActionScopes maps actions to the scopes they need (out_of_scope).
	ActionScopes []ScopeRule `json:"action_scopes,omitempty"`
	// SessionGap ends a user's session with an agent after this long without a record
	// (scope_escalation).
	SessionGap Duration `json:"session_gap,omitempty"`
	// SensitiveScopes are patterns of scopes whose appearance during a session makes a
	// scope_escalation medium rather than info.
	SensitiveScopes []string `json:"sensitive_scope_patterns,omitempty"`
	// ReviewWindow is how long an escalation may wait for its human review (missing_oversight).
	ReviewWindow Duration `json:"review_window,omitempty"`
	// OversightWindow is the window within which a high-risk AI system's decisions need at least
	// one human review (missing_oversight).
	OversightWindow Duration `json:"oversight_window,omitempty"`
	// HighRiskClasses are the ai_system.risk_class values that are high-risk.
	HighRiskClasses []string `json:"high_risk_classes,omitempty"`
	// RotationPeriod is the longest an agent identity may be in use (credential_rotation).
	RotationPeriod Duration `json:"rotation_period,omitempty"`
}

// Default is the configuration of tenants a File does not name, and what unset fields inherit.
func Default() Config {
	yes := true
	return Config{
		ServiceAccounts: []string{
			"svc-*", "svc_*", "service-*", "system:serviceaccount:*", "*@*.iam.gserviceaccount.com",
			"*-bot", "*[bot]", "spiffe://*",
		},
		RequireIdentityBinding: &yes,
		MaxDelegationLifetime:  Duration(8 * time.Hour),
		DelegationLeeway:       Duration(time.Minute),
		SessionGap:             Duration(30 * time.Minute),
		SensitiveScopes:        []string{"*prod*", "*admin*", "*:write", "*:delete"},
		ReviewWindow:           Duration(24 * time.Hour),
		OversightWindow:        Duration(24 * time.Hour),
		HighRiskClasses:        []string{"high"},
		RotationPeriod:         Duration(90 * 24 * time.Hour),
	}
}

// File is the findings configuration file (lineaged --findings-config, docs/FINDINGS.md).
type File struct {
	Default *Config           `json:"default,omitempty"`
	Tenants map[string]Config `json:"tenants,omitempty"`
}

// MaxConfigSize bounds the configuration file.
const MaxConfigSize = 1 << 20

// Configs resolves each tenant's configuration.
type Configs struct {
	def     Config
	tenants map[string]Config
}

// NewConfigs resolves a File: the default over Default(), each tenant over the default.
func NewConfigs(f File) (*Configs, error) {
	c := &Configs{def: Default(), tenants: map[string]Config{}}
	if f.Default != nil {
		c.def = merge(c.def, *f.Default)
	}
	if err := c.def.check(); err != nil {
		return nil, fmt.Errorf("findings config: default: %w", err)
	}
	for t, tc := range f.Tenants {
		if t == "" {
			return nil, errors.New("findings config: empty tenant name")
		}
		m := merge(c.def, tc)
		if err := m.check(); err != nil {
			return nil, fmt.Errorf("findings config: tenant %q: %w", t, err)
		}
		c.tenants[t] = m
	}
	return c, nil
}

// ParseConfig reads a configuration file strictly (unknown members are errors).
func ParseConfig(data []byte) (*Configs, error) {
	if len(data) > MaxConfigSize {
		return nil, fmt.Errorf("findings config: %d bytes, more than %d", len(data), MaxConfigSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("findings config: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("findings config: data after the JSON object")
	}
	return NewConfigs(f)
}

// For returns a tenant's configuration.
func (c *Configs) For(tenant string) *Config {
	if c == nil {
		d := Default()
		return &d
	}
	if tc, ok := c.tenants[tenant]; ok {
		return &tc
	}
	return &c.def
}

// merge lays o's set fields over base.
func merge(base, o Config) Config {
	m := base
	if o.Disabled != nil {
		m.Disabled = o.Disabled
	}
	if o.ServiceAccounts != nil {
		m.ServiceAccounts = o.ServiceAccounts
	}
	if o.TrustedIssuers != nil {
		m.TrustedIssuers = o.TrustedIssuers
	}
	if o.RequireIdentityBinding != nil {
		m.RequireIdentityBinding = o.RequireIdentityBinding
	}
	if o.ActionScopes != nil {
		m.ActionScopes = o.ActionScopes
	}
	if o.SensitiveScopes != nil {
		m.SensitiveScopes = o.SensitiveScopes
	}
	if o.HighRiskClasses != nil {
		m.HighRiskClasses = o.HighRiskClasses
	}
	for _, d := range []struct{ dst, src *Duration }{
		{&m.MaxDelegationLifetime, &o.MaxDelegationLifetime},
		{&m.DelegationLeeway, &o.DelegationLeeway},
		{&m.SessionGap, &o.SessionGap},
		{&m.ReviewWindow, &o.ReviewWindow},
		{&m.OversightWindow, &o.OversightWindow},
		{&m.RotationPeriod, &o.RotationPeriod},
	} {
		if *d.src != 0 {
			*d.dst = *d.src
		}
	}
	return m
}

func (c *Config) check() error {
	for _, k := range c.Disabled {
		if !KnownKind(k) {
			return fmt.Errorf("disabled: unknown kind %q", k)
		}
	}
	for i, r := range c.ActionScopes {
		if r.Action == "" || len(r.Scopes) == 0 {
			return fmt.Errorf("action_scopes[%d]: needs an action and at least one scope", i)
		}
	}
	if c.OversightWindow != 0 && time.Duration(c.OversightWindow) < time.Minute {
		return errors.New("oversight_window: at least 1m")
	}
	return nil
}

// enabled reports whether kind k is reported for the tenant.
func (c *Config) enabled(k Kind) bool { return !slices.Contains(c.Disabled, k) }

// Match reports whether s matches pattern p, where "*" matches any run of characters (also
// none) and every other character matches itself.
func Match(p, s string) bool {
	star, pi, si := -1, 0, 0
	mark := 0
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(p) && p[pi] == s[si]:
			pi++
			si++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

func matchAny(ps []string, s string) bool {
	return slices.ContainsFunc(ps, func(p string) bool { return Match(p, s) })
}
