package findings

import (
	"testing"
	"time"
)

// FuzzParseConfig: the configuration decoder never panics, and what it accepts resolves to
// configurations that pass their own checks.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"default":{"rotation_period":"45d","action_scopes":[{"action":"db.write","target":"cases/*","scopes":["cases:write"]}]},"tenants":{"acme":{"disabled":["scope_escalation"],"trusted_issuers":["https://login.acme.example/"],"session_gap":"10m"}}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"tenants":{"a":{"sensitive_scope_patterns":[],"require_identity_binding":false}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		for _, tc := range c.tenants {
			if err := tc.check(); err != nil {
				t.Fatalf("accepted a tenant config that fails its check: %v", err)
			}
		}
	})
}

// FuzzLoadState: state read back from a store never panics the engine, whatever the bytes.
func FuzzLoadState(f *testing.F) {
	f.Add("agent", "spiffe://a", []byte(`{"first":{"id":"r1","log_index":3,"time":"2026-11-02T09:00:00Z"},"roles":[{"value":"planner","evidence":{"id":"r1","log_index":3,"time":"2026-11-02T09:00:00Z"}}]}`))
	f.Add("session", "u\x00a", []byte(`{"start":{"id":"r1","log_index":1,"time":"2026-11-02T09:00:00Z"},"last":"2026-11-02T09:05:00Z","scopes":["a","b"]}`))
	f.Add("oversight_window", "s\x00t", []byte(`{"system":"s","start":"2026-11-02T09:00:00Z","decisions":2}`))
	f.Add("watermark", "", []byte(`"2026-11-02T09:00:00Z"`))
	f.Fuzz(func(t *testing.T, space, key string, value []byte) {
		e := NewEngine(nil)
		if err := e.Load([]StateItem{{Tenant: "acme", Space: space, Key: key, Value: value}}); err != nil {
			return
		}
		r := rec("after-load", time.Minute)
		out := e.Observe(1, r, t0.Add(time.Minute), nil)
		out = e.EndBatch(out)
		if _, err := e.TakeDirty(); err != nil {
			t.Fatal(err)
		}
		_ = out
	})
}
